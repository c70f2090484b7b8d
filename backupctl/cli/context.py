"""What every command shares: where policies and state are, loaded lazily."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from backupctl.catalog.index import Catalog
from backupctl.log import LogFormat
from backupctl.observability.metrics import push, registry_for, write_textfile
from backupctl.observability.runs import RunReporter
from backupctl.observability.status import PolicyStatus, policy_statuses
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
    #: rewritten after every run (--metrics-textfile / BACKUPCTL_METRICS_TEXTFILE)
    metrics_textfile: Path | None = None
    #: pushed to after every run (--pushgateway / BACKUPCTL_PUSHGATEWAY)
    pushgateway: str | None = None
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

    def statuses(self) -> list[PolicyStatus]:
        """Every policy's status now (raises PolicyError for invalid policies)."""
        return policy_statuses(
            self.policies(), self.catalog(), self.repository, self.state_dir, datetime.now(UTC)
        )

    def metrics_registry(self) -> CollectorRegistry:
        return registry_for(self.statuses)

    def publish_metrics(self, textfile: Path | None = None, gateway: str | None = None) -> None:
        """Write the metrics to ``textfile`` and push them to ``gateway`` (each when given).
        Raises MetricsError."""
        registry = self.metrics_registry()
        if textfile is not None:
            write_textfile(registry, textfile)
        if gateway is not None:
            push(registry, gateway)

    def reporter(self) -> RunReporter:
        """What every run reports to: the run history, the log, the policy's webhooks, and
        the configured textfile or Pushgateway."""
        if self.metrics_textfile is None and self.pushgateway is None:
            return RunReporter(self.state_dir)
        return RunReporter(
            self.state_dir, lambda: self.publish_metrics(self.metrics_textfile, self.pushgateway)
        )
