"""What every operation needs from the host, in one object the command line builds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from backupctl.catalog.index import Catalog
from backupctl.catalog.query import PolicyBackups, RecoveryModel
from backupctl.clock import Clock, utc_now
from backupctl.errors import UsageError
from backupctl.history import RunHistory, RunHistoryError
from backupctl.layout import StateLayout
from backupctl.observability.reporter import RunReporter
from backupctl.policy.common import PolicyBase
from backupctl.progress import ProgressFactory, no_progress
from backupctl.storage.base import Repository
from backupctl.storage.factory import open_repository
from backupctl.storage.spec import RepositorySpec


def policy_repository(policy: PolicyBase) -> Repository:
    """The repository where backupctl keeps ``policy``'s manifests. Raises RepositoryError."""
    return open_repository(policy.manifest_repository)


@dataclass(frozen=True)
class Context:
    """The state directory, how to open a policy's repository, how to show progress,
    whom to tell about finished runs, and the clock decisions are taken by."""

    layout: StateLayout
    progress: ProgressFactory = no_progress
    #: told about every backup and drill (default: the run history, log and webhooks)
    reporter: RunReporter | None = None
    clock: Clock = utc_now
    repositories: Callable[[PolicyBase], Repository] = policy_repository
    #: how a policy's other repositories (its copies) are opened
    open_spec: Callable[[RepositorySpec], Repository] = open_repository
    _reporter: RunReporter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_reporter", self.reporter or RunReporter(self.layout))

    @property
    def runs(self) -> RunReporter:
        return self._reporter

    def catalog(self) -> Catalog:
        return Catalog(self.layout.catalog)

    def repository(self, policy: PolicyBase) -> Repository:
        """``policy``'s repository, opened. Raises RepositoryError / EncryptionError."""
        return self.repositories(policy)

    def repository_named(self, policy: PolicyBase, name: str) -> Repository:
        """``policy``'s repository called ``name`` (its first one: as ``repository``),
        opened. Raises UsageError for an unknown name, RepositoryError / EncryptionError."""
        if name == policy.repository_names[0]:
            return self.repository(policy)
        try:
            spec = policy.repository_named(name)
        except KeyError:
            names = ", ".join(policy.repository_names)
            raise UsageError(
                f"policy {policy.name!r} has no repository {name!r} (it has: {names})"
            ) from None
        return self.open_spec(spec)

    def backups(self, policy: PolicyBase, model: RecoveryModel) -> PolicyBackups:
        """``policy``'s catalogued backups, read through its driver's rules, with the last
        check that found nothing changed (from the run history; unknown if unreadable)."""
        try:
            record = RunHistory(self.layout).of_policy(policy.name).get(model.main_kind)
        except RunHistoryError:
            record = None
        unchanged = record.last_unchanged if record is not None else None
        return self.catalog().backups(policy.name, model, unchanged)
