"""Sealing closed binlogs into binlog backups, in the background.

Sealing a large binlog (compressing it again as one object) takes seconds; the
follower must keep storing new events meanwhile, so seals run on their own thread,
oldest binlog first. A closed binlog's stream is complete before its seal is asked
for, so the chain never depends on the seal; the seal only replaces many segments
with one object, and its stream goes once the binlog backup is recorded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from backupctl.drivers.base import StoreBackup
from backupctl.drivers.mariadb.binlog import BINLOG_KIND, sequence, store_binlog
from backupctl.drivers.mariadb.binlog_stream import StreamIndex, remove_stream
from backupctl.drivers.mariadb.details import BinlogDetails
from backupctl.drivers.session import BackupSession
from backupctl.errors import BackupctlError, LockHeldError
from backupctl.policy.mariadb import MariaDBPolicy
from backupctl.storage.base import Repository

log = structlog.get_logger()


@dataclass(frozen=True)
class SealJob:
    path: Path  # the complete binlog in the spool
    info: dict[str, Any]  # its description (from the follower's scan)
    server_id: int
    stream: StreamIndex | None  # its stream in the repository, removed once sealed


class Sealer:
    """A thread sealing submitted binlogs; ``take_sealed()`` says which are done."""

    def __init__(
        self,
        policy: MariaDBPolicy,
        repo: Repository,
        store_backup: StoreBackup,
        retry_after: float,
    ):
        self.policy, self.repo, self.store_backup = policy, repo, store_backup
        self.retry_after = retry_after
        self._pending: dict[str, SealJob] = {}
        self._sealed: list[str] = []
        self._busy: str | None = None
        self._cond = threading.Condition()
        self._closing = False
        self._generation = 0  # bumped when pending seals are dropped
        self._thread = threading.Thread(target=self._loop, name="binlog-sealer", daemon=True)
        self._thread.start()

    def submit(self, job: SealJob) -> None:
        with self._cond:
            self._pending[job.path.name] = job
            self._cond.notify_all()

    def take_sealed(self) -> list[str]:
        """Names sealed since the last call."""
        with self._cond:
            done, self._sealed = self._sealed, []
            return done

    def drop_pending(self) -> None:
        """Forget seals not started, and wait for the one under way (before the spool is
        cleared on reconnect: those binlogs are fetched, and submitted, again)."""
        with self._cond:
            self._pending.clear()
            self._generation += 1
            while self._busy is not None:
                self._cond.wait()

    def close(self) -> None:
        """Finish the seal under way, leave the others (their streams are complete)."""
        with self._cond:
            self._closing = True
            self._pending.clear()
            self._cond.notify_all()
        self._thread.join()

    def _next(self) -> tuple[SealJob, int] | None:
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if self._closing:
                return None
            name = min(self._pending, key=sequence)
            self._busy = name
            return self._pending.pop(name), self._generation

    def _loop(self) -> None:
        while (item := self._next()) is not None:
            job, generation = item
            try:
                sealed = self._seal(job)
            except (BackupctlError, OSError) as exc:
                log.error(
                    "binlog follow: sealing failed; will retry", file=job.path.name, error=str(exc)
                )
                sealed = False
            with self._cond:
                self._busy = None
                if sealed:
                    self._sealed.append(job.path.name)
                elif not self._closing and generation == self._generation:
                    self._pending.setdefault(job.path.name, job)
                self._cond.notify_all()
                if not sealed:
                    self._cond.wait(self.retry_after)

    def _seal(self, job: SealJob) -> bool:
        level = self.policy.backup.compression_level

        def produce(session: BackupSession) -> BinlogDetails:
            info = store_binlog(session, job.path, level, described=job.info)
            return BinlogDetails(
                server_id=job.server_id, binlogs=[info], purged_before_shipping=[], source="follow"
            )

        try:
            self.store_backup(BINLOG_KIND, produce)
        except LockHeldError:
            log.debug("binlog follow: policy busy, sealing later", file=job.path.name)
            return False
        if job.stream is not None:
            remove_stream(self.repo, job.stream)
        job.path.unlink(missing_ok=True)
        return True
