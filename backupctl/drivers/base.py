"""The Driver interface: what every driver does, typed by its policy and restore options.

A driver knows how to write a backup's artifacts (through a ``BackupSession``), how to
choose the backup a restore asks for, the steps that restore it or drill it, how to
check it deeply and which backups its retention keeps. Everything generic (ids, locks,
manifests, cleanup of failed runs, the catalog, journals, reports) lives in
``backupctl.operations``; drivers never write manifests or journals themselves.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from backupctl.catalog.manifest import Manifest
from backupctl.catalog.query import PolicyBackups, RecoveryWindow
from backupctl.checks import CheckResult
from backupctl.errors import NotFoundError, UsageError
from backupctl.layout import StateLayout
from backupctl.locks import COPY_LANE
from backupctl.policy.common import PolicyBase
from backupctl.policy.options import RestoreOptions
from backupctl.progress import ProgressFactory, no_progress

if TYPE_CHECKING:
    from backupctl.catalog.index import Catalog
    from backupctl.drivers.session import BackupSession
    from backupctl.retention import Decision
    from backupctl.runbook.step import Step
    from backupctl.storage.base import Repository

PolicyT = TypeVar("PolicyT", bound=PolicyBase)
OptionsT = TypeVar("OptionsT", bound=RestoreOptions)


@dataclass(frozen=True)
class RestoreRun:
    """The run a restore's steps belong to: its id (journal, recovery directory, hook
    environment), the state directory, progress display, and whether it is a resumed
    run (an interrupted one taken up again with ``--resume`` or ``--rollback``)."""

    run_id: str
    layout: StateLayout
    progress: ProgressFactory = no_progress
    resuming: bool = False


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


#: manifest details a driver's ``backup`` returns: a typed document, or plain JSON data
Details = BaseModel | dict[str, Any]


@dataclass(frozen=True)
class KindChoice:
    """The kind a backup will be, what it builds on, and why, when it is not what was
    asked."""

    kind: str
    #: the backup this one builds on (an incremental's parent)
    basis: Manifest | None = None
    #: why another kind is taken than the one asked for
    reason: str | None = None


class Driver(abc.ABC, Generic[PolicyT, OptionsT]):
    """Base of every driver, generic over its policy model and its restore options (the
    policy model names the options model in ``restore_options``). Subclasses set ``name``
    and ``kinds`` (the first is the main kind: the backups a restore starts from)."""

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    #: kinds backed up beside the others, under a lock of their own: kind -> lane (a
    #: night's full backup must not stop the hourly binlogs and breach the RPO)
    lanes: ClassVar[Mapping[str, str]] = {}

    #: where a rebuild of the whole stack restores this driver's policies: configuration
    #: first (services read it), then databases, models, search indices (rebuilt last:
    #: they are derived data); equal ranks may run side by side
    rebuild_rank: ClassVar[int] = 50
    #: a new host's package makes the live directory this driver restores into (MariaDB's
    #: datadir): a rebuild creates it empty where it is missing, for the restore to
    #: move aside
    new_host_makes_live_dir: ClassVar[bool] = False

    def __init__(self, policy: PolicyT):
        self.policy = policy

    @classmethod
    def lane_of(cls, kind: str) -> str:
        """The lock lane ``kind`` is backed up under ("": the main one)."""
        return cls.lanes.get(kind, "")

    @classmethod
    def all_lanes(cls) -> list[str]:
        """Every lane of this driver, the main one first, with the lane copies to other
        repositories run under (prune holds them all; restore all but the copy lane)."""
        return sorted({"", COPY_LANE, *cls.lanes.values()})

    @classmethod
    def lane_kinds(cls, lane: str) -> tuple[str, ...]:
        """The kinds backed up under ``lane``."""
        return tuple(kind for kind in cls.kinds if cls.lane_of(kind) == lane)

    @property
    def main_kind(self) -> str:
        return self.kinds[0]

    @property
    def point_kinds(self) -> tuple[str, ...]:
        """The kinds a restore can start from (default: the main kind)."""
        return (self.main_kind,)

    def choose_kind(
        self, kind: str, backups: PolicyBackups, repo: Repository, fallback: bool
    ) -> KindChoice:
        """What a backup asked to be ``kind`` will be: that kind, or another one when it
        cannot be taken (an incremental with nothing to build on becomes a full, unless
        ``fallback`` is False: then it raises BackupFailed saying why)."""
        return KindChoice(kind)

    # -- backups -------------------------------------------------------------------------

    @abc.abstractmethod
    def backup(self, kind: str, session: BackupSession) -> Details:
        """Write the backup's artifacts through ``session``; return the manifest's details.
        Raises BackupFailed / ToolError (the caller removes what was written),
        IncompleteBackup (recorded as failed) or NothingChanged (nothing stored)."""

    @classmethod
    def chains(cls, manifests: list[Manifest]) -> list[list[Manifest]]:
        """The chains among one policy's ``manifests`` (backups restored together, base
        first), for ``list``; default none."""
        return []

    @classmethod
    def note(cls, manifest: Manifest) -> str:
        """A short note on a backup for listings (e.g. its version)."""
        return ""

    def names(self, manifest: Manifest) -> Sequence[str]:
        """Other names a backup is known by besides its id (a snapshot's, a version)."""
        return ()

    # -- verification ----------------------------------------------------------------------

    def depends_on(self, repo: Repository, manifest: Manifest) -> list[Manifest]:
        """The other backups a restore of ``manifest`` needs, read from ``repo``, oldest
        first (an incremental's chain: its base full and the incrementals between);
        default none. Raises VerificationFailed naming a link that is gone or broken."""
        return []

    def verify_quick(self, repo: Repository, manifest: Manifest) -> list[CheckResult]:
        """Checks beyond the stored objects' checksums that need no restore (default: none)."""
        return []

    @abc.abstractmethod
    def verify_deep(self, repo: Repository, manifest: Manifest, scratch: Path) -> list[CheckResult]:
        """Restore ``manifest`` into ``scratch`` and check it; return named checks."""

    # -- retention -------------------------------------------------------------------------

    @abc.abstractmethod
    def retention(self, backups: list[Manifest], now: datetime) -> list[Decision]:
        """Keep or delete each of the policy's backups (oldest first), with reasons."""

    def collect_garbage(self, repo: Repository, kept: list[Manifest], now: datetime) -> int:
        """After pruning (as of ``now``): remove shared objects no kept backup needs and
        leftovers retention has let go; return how many."""
        return 0

    def delete_backup(self, repo: Repository, manifest: Manifest) -> str:
        """Delete what the backup keeps outside the repository; return a detail."""
        return "nothing outside the repository"

    # -- restores and drills ---------------------------------------------------------------

    def choose_backup(self, options: OptionsT, backups: PolicyBackups) -> Manifest:
        """The backup ``options`` ask for: ``BACKUP_ID`` (any of the backup's names), else
        the newest restorable one of the main kind. Raises NotFoundError / UsageError."""
        if options.backup_id is not None:
            found = backups.find(options.backup_id)
            if found.kind not in self.point_kinds:
                starts = " or ".join(self.point_kinds)
                raise UsageError(
                    f"backup {found.backup_id} is a {found.kind} backup: a restore starts "
                    f"from a {starts} backup"
                )
            return found
        return backups.newest()

    def options_at(self, moment: datetime, backups: PolicyBackups, staging: Path) -> OptionsT:
        """The options of a restore to the data as it was at ``moment``, in place
        (``staging``: for a driver that restores beside the live data). Default: the newest
        restorable backup finished at or before it. Raises NotFoundError when none is."""
        before = [m for m in backups.restorable() if m.finished_at <= moment]
        if not before:
            raise NotFoundError(
                f"policy {self.policy.name!r} has no backup finished at or before "
                f"{moment.isoformat()}"
            )
        options: OptionsT = self.policy.restore_options(  # type: ignore[assignment]
            backup_id=before[-1].backup_id
        )
        return options

    def point_reached(self, options: OptionsT, manifest: Manifest) -> datetime:
        """The moment a restore with ``options`` of ``manifest`` brings the data back to
        (default: the backup's end; a point-in-time restore: its target)."""
        return manifest.finished_at

    def rebuild_options(self, repo: Repository, backups: PolicyBackups, staging: Path) -> OptionsT:
        """The options of a restore onto a new host after the old one was lost: the newest
        point the backups reach, in place (``staging``: a directory of this rebuild for a
        driver that restores beside the live data). Default: the newest backup."""
        options: OptionsT = self.policy.restore_options()  # type: ignore[assignment]
        return options

    @abc.abstractmethod
    def restore_steps(
        self, repo: Repository, manifest: Manifest, options: OptionsT, run: RestoreRun
    ) -> list[Step]:
        """The ordered steps that restore ``manifest`` as ``options`` ask. Raises
        UsageError for what cannot be done (before anything changes)."""

    @abc.abstractmethod
    def drill_plan(
        self, repo: Repository, manifest: Manifest, run: RestoreRun, sandbox: Path
    ) -> DrillPlan:
        """Steps that restore ``manifest`` into ``sandbox`` (and nowhere else: live services
        are never touched), verify it, and clean up."""

    def recovery_window(
        self, repo: Repository, restorable: list[Manifest]
    ) -> RecoveryWindow | None:
        """The recoverability window the restorable backups (oldest first) cover."""
        if not restorable:
            return None
        return RecoveryWindow(restorable[0].finished_at, restorable[-1].finished_at)


#: ``store(kind, produce)``: take one backup of the policy whose artifacts ``produce``
#: writes (returning its details), recorded like any other; raises LockHeldError while
#: another run of the policy holds its lock
StoreBackup = Callable[[str, Callable[["BackupSession"], Details]], Manifest]


@dataclass(frozen=True)
class FollowContext:
    """What a continuously streaming driver gets from ``backupctl binlog follow``."""

    repo: Repository
    catalog: Catalog
    layout: StateLayout
    stop: threading.Event
    #: records a backup the follower made (a sealed binlog), as ``backup`` would
    store_backup: StoreBackup


class Follower(abc.ABC):
    """A driver that can also stream changes continuously (``binlog follow``)."""

    @abc.abstractmethod
    def follow(self, context: FollowContext) -> None:
        """Stream changes into ``context.repo`` until ``context.stop`` is set. Raises
        LockHeldError when another follower runs, BackupctlError when it cannot start."""
