"""Which backups of a policy can be restored, and the window they cover: one answer for
``list``, ``status``, ``restore``, drills and the metrics, so they never disagree.

The driver says what its main kind is (the backups a restore starts from), by which
other names a backup is known (a snapshot, a model version) and how far its backups
reach (MariaDB: to the end of the binlog chain); the catalog says which backups exist;
the run history says when a check last found nothing changed (the newest backup was
still current then).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from backupctl.catalog.manifest import Manifest
from backupctl.errors import NotFoundError

if TYPE_CHECKING:
    from backupctl.storage.base import Repository


@dataclass(frozen=True)
class RecoveryWindow:
    """The earliest and latest points a policy can be restored to, and what breaks it."""

    earliest: datetime
    latest: datetime
    gap: str | None = None


class RecoveryModel(Protocol):
    """What a driver tells the query about its backups."""

    @property
    def main_kind(self) -> str:
        """The kind a backup is by default (``full``, ``snapshot``, ``version``, ``commit``)."""
        ...

    @property
    def point_kinds(self) -> tuple[str, ...]:
        """The kinds a restore can start from (MariaDB: fulls and incrementals)."""
        ...

    def names(self, manifest: Manifest) -> Sequence[str]:
        """Other names the backup is known by (a snapshot's, a model version)."""
        ...

    def recovery_window(
        self, repo: Repository, restorable: list[Manifest]
    ) -> RecoveryWindow | None:
        """The window the restorable backups (oldest first) cover; None when empty."""
        ...


def _order(manifest: Manifest) -> tuple[datetime, str]:
    return (manifest.finished_at, manifest.backup_id)


class PolicyBackups:
    """One policy's catalogued backups, read through its driver's rules."""

    def __init__(
        self,
        policy: str,
        manifests: list[Manifest],
        model: RecoveryModel,
        last_unchanged: datetime | None = None,
    ):
        self.policy = policy
        self.all = sorted(manifests, key=_order)
        self.model = model
        #: the last check that found nothing changed since the newest backup
        self.last_unchanged = last_unchanged

    @property
    def main_kind(self) -> str:
        return self.model.main_kind

    def restorable(self, kind: str | None = None) -> list[Manifest]:
        """The restorable backups of ``kind`` (default: every kind a restore can start
        from), oldest first."""
        wanted = (kind,) if kind else self.model.point_kinds
        return [m for m in self.all if m.kind in wanted and m.restorable]

    def newest(self, kind: str | None = None) -> Manifest:
        """The newest restorable backup of ``kind`` (default: every kind a restore can
        start from). Raises NotFoundError saying what to do."""
        found = self.restorable(kind)
        if not found:
            raise NotFoundError(
                f"no complete backup of policy {self.policy!r} in the catalog "
                "(run `backupctl catalog sync` on a new host)"
            )
        return found[-1]

    def newest_of_any_kind(self) -> Manifest:
        """The newest restorable backup, whatever its kind. Raises NotFoundError."""
        found = [m for m in self.all if m.restorable]
        if not found:
            raise NotFoundError(
                f"no complete backup of policy {self.policy!r} in the catalog "
                "(run `backupctl catalog sync` on a new host)"
            )
        return found[-1]

    def find(self, backup_id: str, kind: str | None = None) -> Manifest:
        """The backup called ``backup_id`` (its id, or another name the driver knows it
        by; the newest of that name wins), restorable or not, of ``kind`` when given.
        Raises NotFoundError."""
        found = None
        for manifest in self.all:
            if kind is not None and manifest.kind != kind:
                continue
            if backup_id == manifest.backup_id or backup_id in self.model.names(manifest):
                found = manifest
        if found is None:
            raise NotFoundError(f"policy {self.policy!r} has no backup {backup_id!r}")
        return found

    def window(self, repo: Repository) -> RecoveryWindow | None:
        """The recoverability window; a later check that found nothing changed moves its
        end (the newest backup was still current then). None: nothing is restorable.
        Raises RepositoryError when the driver must read the repository and cannot."""
        found = self.model.recovery_window(repo, self.restorable())
        if found is None:
            return None
        latest = found.latest
        if self.last_unchanged is not None:
            latest = max(latest, self.last_unchanged)
        return RecoveryWindow(found.earliest, latest, found.gap)
