"""``backupctl binlog follow``: continuous binlog streaming, supervised.

A ``mariadb-binlog --read-from-remote-server --raw --stop-never`` process copies the
server's binlogs into a private spool directory as they are written. Every flush
interval the follower stores what arrived (complete events only) as a segment of the
binlog's stream in the repository, and seals each binlog the server has closed into
an ordinary binlog backup. mariadb-binlog does not reconnect on its own: when it
exits, the follower starts it again, with backoff, from the first binlog not sealed
yet; bytes already stored are not stored twice.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import structlog

from backupctl.catalog.index import Catalog
from backupctl.drivers.mariadb import connection
from backupctl.drivers.mariadb.binlog import (
    BINLOG_KIND,
    purged_before,
    sequence,
    server_binlogs,
    shipped_binlogs,
    store_binlog,
)
from backupctl.drivers.mariadb.binlog_events import BinlogScan
from backupctl.drivers.mariadb.binlog_stream import (
    StreamIndex,
    append_segment,
    read_streams,
    remove_stream,
)
from backupctl.errors import BackupctlError, LockHeldError, ServerUnreachable
from backupctl.jobs import BackupSession, run_backup
from backupctl.policy.mariadb import MariaDBPolicy
from backupctl.proc import redact, require_tool, secret_file, tail_text
from backupctl.scheduling.locks import follow_lock, policy_lock
from backupctl.storage.base import Repository

log = structlog.get_logger()

BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # a connection that lasted this long resets the backoff


@dataclass
class _Open:
    """One binlog in the spool: how far it was read and stored."""

    scan: BinlogScan
    index: StreamIndex | None = None


@dataclass
class FollowStatus:
    """Written to ``status.json`` after every flush, for status and metrics."""

    connected: bool = False
    file: str | None = None
    stored_position: int = 0
    last_event_at: str | None = None
    last_gtid: str | None = None
    last_flush_at: str | None = None
    reconnects: int = 0
    sealed: list[str] = field(default_factory=list)


class BinlogFollower:
    """Streams one policy's binlogs into its repository until ``stop`` is set."""

    def __init__(
        self,
        policy: MariaDBPolicy,
        repo: Repository,
        catalog: Catalog,
        state_dir: Path,
        stop: threading.Event,
    ):
        self.policy, self.repo, self.catalog = policy, repo, catalog
        self.state_dir, self.stop = state_dir, stop
        self.work = state_dir / "binlog-follow" / policy.name
        self.spool = self.work / "spool"
        self.interval = policy.backup.binlog_flush_interval.total_seconds()
        self.status = FollowStatus()
        self._open: dict[str, _Open] = {}
        self._streams: dict[tuple[str, int], StreamIndex] = {}
        self._server_id = 0

    def run(self) -> None:
        """Follow until stopped. Raises LockHeldError when another follower runs."""
        with policy_lock(self.state_dir, follow_lock(self.policy.name), purpose="binlog follow"):
            backoff = 1.0
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    self._follow_once()
                except ServerUnreachable as exc:
                    log.warning("binlog follow: server unreachable", error=str(exc))
                except BackupctlError as exc:
                    if not self.status.reconnects and self.status.last_flush_at is None:
                        raise  # misconfigured from the start: say so instead of retrying
                    log.warning("binlog follow: cannot stream", error=str(exc))
                if self.stop.is_set():
                    break
                self.status.connected = False
                self.status.reconnects += 1
                self._write_status()
                backoff = 1.0 if time.monotonic() - started > STABLE_AFTER else backoff
                log.info("binlog follow: reconnecting", in_seconds=backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            log.info("binlog follow stopped", stored_up_to=self.status.last_event_at)

    def _follow_once(self) -> None:
        start = self._start_file()
        # a restarted mariadb-binlog rewrites its files from the start: read them afresh
        shutil.rmtree(self.spool, ignore_errors=True)
        self.spool.mkdir(parents=True)
        self._open.clear()
        self._streams = {(s.file, s.created): s for s in read_streams(self.repo, self.policy.name)}
        proc, err_path = self._spawn(start)
        log.info("binlog follow: streaming", start=start, flush_interval=self.interval)
        self.status.connected = True
        try:
            while proc.poll() is None and not self.stop.wait(self.interval):
                self.flush()
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.flush()  # whatever arrived before it ended
        if not self.stop.is_set():
            detail = redact(tail_text(err_path.read_text(errors="replace"), 3))
            log.warning("binlog follow: connection lost", exit=proc.returncode, error=detail)

    def _start_file(self) -> str:
        """The first binlog on the server that is not sealed in the repository yet."""
        closed, current, server_id = server_binlogs(self.policy, rotate=False)
        self._server_id = server_id
        names = [*closed, current]
        shipped = shipped_binlogs(self.repo, self.policy.name, current)
        if missing := purged_before(names, shipped):
            log.warning(
                "binlogs were purged on the server before they were shipped", missing=missing
            )
        newest = max((sequence(n) for n in shipped), default=-1)
        return next((n for n in names if sequence(n) > newest and n not in shipped), current)

    def _spawn(self, start: str) -> tuple[subprocess.Popen[bytes], Path]:
        binary = require_tool("mariadb-binlog", "mariadb-client")
        err_path = self.work / "mariadb-binlog.err"
        with (
            secret_file(connection.client_options(self.policy.connection)) as (cnf, fd),
            open(err_path, "wb") as err,
        ):
            proc = subprocess.Popen(
                [
                    binary,
                    f"--defaults-extra-file={cnf}",
                    "--read-from-remote-server",
                    "--raw",
                    "--stop-never",
                    f"--result-file={self.spool}/",
                    start,
                ],
                stdout=subprocess.DEVNULL,
                stderr=err,
                pass_fds=(fd,),
                start_new_session=True,  # Ctrl-C and SIGTERM reach us, and we stop it
            )
        return proc, err_path

    def flush(self) -> None:
        """Store new complete events of every spooled binlog; seal the closed ones."""
        files = sorted(
            (p for p in self.spool.iterdir() if p.suffix[1:].isdigit()),
            key=lambda p: sequence(p.name),
        )
        for number, path in enumerate(files):
            closed = number < len(files) - 1
            state = self._open.setdefault(path.name, _Open(BinlogScan()))
            with open(path, "rb") as fh:
                state.scan.feed(fh)
                if state.scan.created is None:
                    continue  # not even its format description yet
                if closed and self._seal(path, state):
                    continue
                self._store_tail(path.name, state, fh)
        self.status.last_flush_at = datetime.now(UTC).isoformat()
        self._write_status()

    def _store_tail(self, name: str, state: _Open, fh: IO[bytes]) -> None:
        assert state.scan.created is not None
        if state.index is None:
            key = (name, state.scan.created)
            state.index = self._streams.get(key) or StreamIndex(
                policy=self.policy.name,
                file=name,
                created=state.scan.created,
                server_id=self._server_id,
                updated_at=datetime.now(UTC),
            )
        index = state.index
        if state.scan.end <= index.end:
            return
        level = self.policy.backup.compression_level
        append_segment(self.repo, index, fh, state.scan.end - index.end, state.scan.info(), level)
        self.status.file, self.status.stored_position = name, index.end
        self.status.last_event_at = index.info.get("last_event_at")
        self.status.last_gtid = index.info.get("last_gtid") or self.status.last_gtid
        log.debug("binlog follow: segment stored", file=name, position=index.end)

    def _seal(self, path: Path, state: _Open) -> bool:
        """Store a closed binlog as a binlog backup; False while a backup holds the lock."""

        def produce(session: BackupSession) -> dict[str, Any]:
            info = store_binlog(session, path, self.policy.backup.compression_level)
            return {
                "server_id": self._server_id,
                "binlogs": [info],
                "purged_before_shipping": [],
                "source": "follow",
            }

        try:
            run_backup(
                self.policy, self.repo, self.catalog, self.state_dir, BINLOG_KIND, produce=produce
            )
        except LockHeldError:
            log.debug("binlog follow: policy busy, sealing later", file=path.name)
            return False
        if state.index is not None:
            remove_stream(self.repo, state.index)
        elif (stale := self._streams.get((path.name, state.scan.created or 0))) is not None:
            remove_stream(self.repo, stale)
        self.status.sealed = [*self.status.sealed[-9:], path.name]
        info = state.scan.info()
        if (
            self.status.last_event_at is None
            or (info["last_event_at"] or "") > self.status.last_event_at
        ):
            self.status.last_event_at = info["last_event_at"]
            self.status.last_gtid = info["last_gtid"] or self.status.last_gtid
        path.unlink()
        del self._open[path.name]
        return True

    def _write_status(self) -> None:
        data = {**self.status.__dict__, "pid": os.getpid(), "policy": self.policy.name}
        tmp = self.work / "status.json.tmp"
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.work / "status.json")
