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
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pymysql
import structlog

from backupctl.drivers.base import FollowContext
from backupctl.drivers.mariadb import connection
from backupctl.drivers.mariadb.binlog import (
    purged_before,
    sequence,
    server_binlogs,
    server_position,
    shipped_binlogs,
)
from backupctl.drivers.mariadb.binlog_events import BinlogScan
from backupctl.drivers.mariadb.binlog_seal import Sealer, SealJob
from backupctl.drivers.mariadb.binlog_stream import (
    StreamIndex,
    append_segment,
    read_streams,
)
from backupctl.errors import BackupctlError, BackupFailed, ServerUnreachable
from backupctl.locks import FOLLOW_LANE, policy_lock
from backupctl.policy.mariadb import MariaDBPolicy
from backupctl.proc import dies_with_us, lock_fds, require_tool, secret_file, tail_text
from backupctl.redaction import scrub
from backupctl.statefile import open_private, private_dir, write_atomic

log = structlog.get_logger()

BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # a connection that lasted this long resets the backoff


@dataclass
class _Open:
    """One binlog in the spool: how far it was read and stored."""

    scan: BinlogScan
    index: StreamIndex | None = None
    submitted: bool = False  # closed, complete in its stream, handed to the sealer


@dataclass
class FollowStatus:
    """Written to ``status.json`` after every flush, for status and metrics."""

    connected: bool = False
    file: str | None = None
    stored_position: int = 0
    last_event_at: str | None = None
    last_gtid: str | None = None
    last_flush_at: str | None = None
    #: when the server's own binlog position was last found equal to what is stored: the
    #: repository held everything the server had written then (an idle server stays
    #: current without new events)
    current_at: str | None = None
    reconnects: int = 0
    sealed: list[str] = field(default_factory=list)


class BinlogFollower:
    """Streams one policy's binlogs into its repository until ``stop`` is set."""

    def __init__(self, policy: MariaDBPolicy, context: FollowContext):
        self.policy, self.context = policy, context
        self.repo, self.stop = context.repo, context.stop
        self.work = context.layout.follow(policy.name)
        self.spool = self.work / "spool"
        self.interval = policy.backup.binlog_flush_interval.total_seconds()
        self.rotate_every = policy.backup.binlog_rotate_interval.total_seconds()
        self.status = FollowStatus()
        self._open: dict[str, _Open] = {}
        self._streams: dict[tuple[str, int], StreamIndex] = {}
        self._server_id = 0

    def run(self) -> None:
        """Follow until stopped. Raises LockHeldError when another follower runs."""
        layout, name = self.context.layout, self.policy.name
        with policy_lock(layout, name, purpose="binlog follow", lane=FOLLOW_LANE):
            self.sealer = Sealer(
                self.policy, self.repo, self.context.store_backup, max(self.interval, 1.0)
            )
            try:
                self._supervise()
            finally:
                self.sealer.close()
                self._note_sealed()
                self.status.connected = False
                self._write_status()
            log.info("binlog follow stopped", stored_up_to=self.status.last_event_at)

    def _supervise(self) -> None:
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

    def _follow_once(self) -> None:
        start = self._start_file()
        # a restarted mariadb-binlog rewrites its files from the start: read them afresh
        self.sealer.drop_pending()
        self._note_sealed()
        shutil.rmtree(self.spool, ignore_errors=True)
        private_dir(self.spool)
        self._open.clear()
        self._streams = {(s.file, s.created): s for s in read_streams(self.repo, self.policy.name)}
        proc, err_path = self._spawn(start)
        log.info("binlog follow: streaming", start=start, flush_interval=self.interval)
        self.status.connected = True
        rotated = time.monotonic()
        try:
            while proc.poll() is None and not self.stop.wait(self.interval):
                self.flush()
                if time.monotonic() - rotated >= self.rotate_every:
                    self._rotate()
                    rotated = time.monotonic()
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
            detail = scrub(tail_text(err_path.read_text(errors="replace"), 3))
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
            open_private(err_path, "wb") as err,
        ):
            proc = subprocess.Popen(
                dies_with_us(
                    [
                        binary,
                        f"--defaults-extra-file={cnf}",
                        "--read-from-remote-server",
                        "--raw",
                        "--stop-never",
                        f"--result-file={self.spool}/",
                        start,
                    ]
                ),
                stdout=subprocess.DEVNULL,
                stderr=err,
                pass_fds=(fd, *lock_fds()),
                start_new_session=True,  # Ctrl-C and SIGTERM reach us, and we stop it
            )
        return proc, err_path

    def flush(self) -> None:
        """Store new complete events of every spooled binlog; hand closed ones (complete
        in their streams by then) to the sealer."""
        self._note_sealed()
        files = sorted(
            (p for p in self.spool.iterdir() if p.suffix[1:].isdigit()),
            key=lambda p: sequence(p.name),
        )
        for number, path in enumerate(files):
            state = self._open.setdefault(path.name, _Open(BinlogScan()))
            if state.submitted:
                continue
            with open(path, "rb") as fh:
                state.scan.feed(fh)
                if state.scan.created is None:
                    continue  # not even its format description yet
                closed = number < len(files) - 1  # the server moved on to a newer binlog
                streamed = (path.name, state.scan.created) in self._streams
                if not closed or state.index is not None or streamed:
                    # (a binlog seen only once closed, e.g. when catching up, goes to the
                    # sealer directly rather than being stored twice)
                    self._store_tail(path.name, state, fh)
                size = fh.seek(0, 2)
            if closed:
                if state.scan.end != size:
                    raise BackupFailed(
                        f"{path.name} ends inside an event ({size - state.scan.end} stray bytes)"
                    )
                state.submitted = True
                job = SealJob(path, state.scan.info(), self._server_id, state.index)
                self.sealer.submit(job)
        now = datetime.now(UTC).isoformat()
        self.status.last_flush_at = now
        if self._caught_up():
            self.status.current_at = now
        self._write_status()

    def _caught_up(self) -> bool:
        """True when the server's current binlog ends where what is stored of it ends (asked
        over SQL: a connection that silently died would otherwise look current)."""
        if self.status.file is None:
            return False
        try:
            file, position = server_position(self.policy)
        except (BackupctlError, pymysql.MySQLError) as exc:
            log.debug("binlog follow: cannot read the server's position", error=str(exc))
            return False
        return (file, position) == (self.status.file, self.status.stored_position)

    def _note_sealed(self) -> None:
        for name in self.sealer.take_sealed():
            self._open.pop(name, None)
            self.status.sealed = [*self.status.sealed[-9:], name]

    def _rotate(self) -> None:
        """FLUSH BINARY LOGS, so no binlog stays open (and its stream grows) for long."""
        try:
            server_binlogs(self.policy, rotate=True)
        except BackupctlError as exc:
            log.warning("binlog follow: could not rotate the binlog", error=str(exc))

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

    def _write_status(self) -> None:
        data = {**self.status.__dict__, "pid": os.getpid(), "policy": self.policy.name}
        private_dir(self.work)
        write_atomic(self.work / "status.json", json.dumps(data, indent=1))
