"""What every command shares: where policies and state are, loaded lazily."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from backupctl.catalog.index import Catalog
from backupctl.log import LogFormat
from backupctl.policy.common import PolicyBase
from backupctl.policy.loader import find_policy, load_policies
from backupctl.progress import ProgressFactory, choose_progress
from backupctl.storage.base import Repository
from backupctl.storage.factory import open_repository


@dataclass
class AppContext:
    policies_path: Path
    state_dir: Path
    log_format: LogFormat
    verbose: int = 0
    _policies: list[PolicyBase] | None = field(default=None, repr=False)

    def policies(self) -> list[PolicyBase]:
        """Every policy (raises PolicyError / NotFoundError)."""
        if self._policies is None:
            self._policies = load_policies(self.policies_path)
        return self._policies

    def policy(self, name: str) -> PolicyBase:
        return find_policy(self.policies(), name)

    def catalog(self) -> Catalog:
        return Catalog(self.state_dir / "catalog.sqlite")

    def repository(self, policy: PolicyBase) -> Repository:
        return open_repository(policy.manifest_repository)

    @property
    def progress(self) -> ProgressFactory:
        return choose_progress(self.log_format)
