"""The Driver interface.

A driver knows how to produce a backup's artifacts and how to check them deeply.
Everything generic (ids, locks, manifests, cleanup of failed runs, the catalog)
lives in ``backupctl.jobs``; drivers never write manifests themselves.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from backupctl.checks import CheckResult
from backupctl.errors import UnsupportedOperation
from backupctl.policy.common import PolicyBase
from backupctl.progress import ProgressFactory, no_progress

if TYPE_CHECKING:
    import threading

    from backupctl.catalog.index import Catalog
    from backupctl.catalog.manifest import Manifest
    from backupctl.jobs import BackupSession
    from backupctl.retention import Decision
    from backupctl.runbook.step import Step
    from backupctl.storage.base import Repository


@dataclass(frozen=True)
class RecoveryWindow:
    """The earliest and latest points a policy can be restored to, and what breaks it."""

    earliest: datetime
    latest: datetime
    gap: str | None = None


@dataclass(frozen=True)
class RestoreRequest:
    """What a restore was asked to do. ``target_datadir`` None means in place."""

    run_id: str
    state_dir: Path
    target_datadir: Path | None = None
    progress: ProgressFactory = no_progress
    to_time: datetime | None = None  # point-in-time recovery target (aware)
    to_gtid: str | None = None  # or: replay up to and including this GTID
    indices: list[str] | None = None  # Elasticsearch: restore only these (patterns)
    at: str | None = None  # config-git: the commit, backup id or time asked for (--at)
    target_dir: Path | None = None  # config-git: write the files into this empty directory
    path: Path | None = None  # config-git: only this file or directory (absolute)

    @property
    def in_place(self) -> bool:
        return self.target_datadir is None


@dataclass(frozen=True)
class DrillPlan:
    """How a driver proves a backup restores, in a sandbox: the steps, the moment the
    restored data reaches (for RPO), and the step whose success means "verified" (RTO)."""

    steps: list[Step]
    recovery_point: datetime
    verified_after: str
    #: the drilled data reaches the policy's newest recoverable point even when the backup
    #: drilled is an older one (MariaDB replays the unbroken binlog chain to its end)
    reaches_newest: bool = False


class Driver(abc.ABC):
    """Base of every driver. Subclasses set ``name``, ``policy_model`` and ``kinds``."""

    name: ClassVar[str]
    policy_model: ClassVar[type[PolicyBase]]
    kinds: ClassVar[tuple[str, ...]]

    def __init__(self, policy: PolicyBase):
        self.policy = policy

    @property
    def default_kind(self) -> str:
        return self.kinds[0]

    @abc.abstractmethod
    def backup(self, kind: str, session: BackupSession) -> dict[str, Any]:
        """Write the backup's artifacts through ``session``; return driver details for the
        manifest. Raises BackupFailed / ToolError; the caller removes what was written."""

    def verify_quick(self, repo: Repository, manifest: Manifest) -> list[CheckResult]:
        """Checks beyond the stored objects' checksums that need no restore (default: none)."""
        return []

    def retention(self, backups: list[Manifest], now: datetime) -> list[Decision]:
        """Keep or delete each of the policy's backups (oldest first), with reasons."""
        raise UnsupportedOperation(f"retention of {self.name} backups is not implemented yet")

    @classmethod
    def note(cls, manifest: Manifest) -> str:
        """A short note on a backup for listings (e.g. its version)."""
        return ""

    def collect_garbage(self, repo: Repository, kept: list[Manifest]) -> int:
        """After pruning: remove shared objects no kept backup needs; return how many."""
        return 0

    def delete_backup(self, repo: Repository, manifest: Manifest) -> str:
        """Delete what the backup keeps outside backupctl's repository; return a detail."""
        return "nothing outside the repository"

    def verify_deep(self, repo: Repository, manifest: Manifest, scratch: Path) -> list[CheckResult]:
        """Restore ``manifest`` into ``scratch`` and check it; return named checks."""
        raise UnsupportedOperation(f"the {self.name} driver has no deep verification yet")

    def restore_steps(
        self, repo: Repository, manifest: Manifest, request: RestoreRequest
    ) -> list[Step]:
        """Return the ordered steps that restore ``manifest`` as ``request`` asks."""
        raise UnsupportedOperation(f"the {self.name} driver cannot restore yet")

    @classmethod
    def can_drill(cls) -> bool:
        return cls.drill_plan is not Driver.drill_plan

    def drill_plan(
        self, repo: Repository, manifest: Manifest, request: RestoreRequest
    ) -> DrillPlan:
        """Steps that restore ``manifest`` into the sandbox ``request.target_dir`` (and
        nowhere else: live services are never touched), verify it, and clean up."""
        raise UnsupportedOperation(f"the {self.name} driver has no recovery drill yet")

    def base_for_point(
        self, fulls: list[Manifest], to_time: datetime | None, to_gtid: str | None
    ) -> Manifest:
        """The backup to start a point-in-time restore from (fulls oldest first)."""
        raise UnsupportedOperation(f"the {self.name} driver cannot restore to a point in time")

    def backup_at(self, backups: list[Manifest], at: str, moment: datetime | None) -> Manifest:
        """The backup ``--at`` names (a driver's own id for it, or ``moment``, the text
        read as a time when it is one), among ``backups`` (oldest first)."""
        raise UnsupportedOperation(f"--at is not for {self.name} policies")

    def previous_backup(self, backups: list[Manifest]) -> Manifest:
        """The backup before the one in service now (``restore --previous``)."""
        raise UnsupportedOperation(f"--previous is for model policies, not {self.name}")

    def follow(
        self, repo: Repository, catalog: Catalog, state_dir: Path, stop: threading.Event
    ) -> None:
        """Stream changes into ``repo`` continuously until ``stop`` is set."""
        raise UnsupportedOperation(f"the {self.name} driver has nothing to follow continuously")

    def recovery_window(self, repo: Repository, fulls: list[Manifest]) -> RecoveryWindow | None:
        """The recoverability window given the policy's full backups (oldest first)."""
        if not fulls:
            return None
        return RecoveryWindow(fulls[0].finished_at, fulls[-1].finished_at)
