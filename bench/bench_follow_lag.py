#!/usr/bin/env python3
"""Benchmark: the recovery point lag of ``backupctl binlog follow`` (commit -> durable).

A writer commits one small INSERT every 200 ms on a private MariaDB while
``backupctl binlog follow`` streams the binlog into a local repository. A watcher
thread asks the repository every 50 ms for the newest restorable transaction, the way
a point-in-time restore would (``binlog_chain`` from the full backup's coordinates).
The lag of a commit is the time from COMMIT returning to the end of the first poll
that finds its GTID restorable. Four phases, each with the small commits:

- steady: nothing else;
- burst: a bulk writer adds a few MiB of rows per second;
- rotate: ``FLUSH BINARY LOGS`` every few seconds, so the follower seals binlogs;
- fill: a stored procedure commits small transactions as fast as the server can until
  the server rotates its binlog at ``max_binlog_size`` (1 GiB by default), then the
  phase goes on while the follower seals that binlog.

Reported per flush interval and phase: p50/p95/max lag and the number of commits; per
flush interval the follower's peak RSS and CPU time, and how long its seals took.

Run from the repository root::

    python3 bench/bench_follow_lag.py --flush-interval 2,1 --seconds 60

Needs root (or a user that may run ``mariadbd``), the Debian packages mariadb-server,
mariadb-backup and mariadb-client, and the project's Python dependencies. The private
``mariadbd`` and the follower are stopped at exit, including on Ctrl-C and SIGTERM.
Results go to ``bench/results/follow-lag-<date>.json``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import (  # first: it puts the repository root on sys.path
    POLICY_NAME,
    REPO_ROOT,
    BenchServer,
    add_run_args,
    base_policy,
    begin,
    bench_server,
    default_backupctl_cmd,
    environment,
    fresh_dir,
    mark,
    print_summary,
    read_vmhwm_kb,
    run_backupctl,
    stop_process,
    tool_version,
    workdir_cleanup,
    write_policy,
    write_results_doc,
)

from backupctl.catalog.manifest import Manifest, scan_manifests
from backupctl.drivers.mariadb.binlog_stream import read_streams
from backupctl.drivers.mariadb.instance import MariaDBInstance
from backupctl.drivers.mariadb.pitr import binlog_chain
from backupctl.proc import process_args
from backupctl.storage.local import LocalRepository

DATABASE = "bench"
TABLE = f"`{DATABASE}`.`follow_lag`"
TARGET_LAG_S = 5.0
REPO_POLL_S = 0.05  # how often the watcher asks the repository for the newest GTID
SMALL_PAYLOAD = 100  # bytes of each tracked small commit
BULK_PAYLOAD = 256 * 1024  # bytes of each bulk commit in the burst phase
WARMUP_TIMEOUT = 60.0  # the follower's first commit must be durable by then
DRAIN_TIMEOUT = 30.0  # after the writers stop, how long to wait for the last commit
STOP_TIMEOUT = 60.0  # SIGTERM to exit
FILL_PROCEDURE = f"`{DATABASE}`.`fill`"  # commits N small transactions server-side
FILL_CHUNK = 20_000  # transactions per CALL of the procedure
FILL_TIMEOUT = 1800.0  # the fill phase ends by then even if the server never rotated
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- data types


@dataclass
class Commit:
    """One committed transaction and when it became restorable from the repository."""

    phase: str
    writer: str  # "small" or "bulk"
    gtid: str
    committed: float  # time.monotonic() right after COMMIT returned
    payload_bytes: int
    durable: float | None = None  # time.monotonic() of the first poll that saw it

    @property
    def seq(self) -> int:
        return gtid_seq(self.gtid)

    @property
    def lag(self) -> float | None:
        return None if self.durable is None else self.durable - self.committed


@dataclass
class ProcessUsage:
    """Peak RSS and CPU seconds of one process over the measured window."""

    peak_rss_kb: int | None = None
    cpu_seconds: float | None = None


@dataclass
class Seal:
    """A closed binlog the follower stored as a binlog backup, from its log."""

    file: str
    raw_bytes: int
    started_s: float  # since the measured window began
    seconds: float  # "backup started" to "backup complete"; no new segment meanwhile


@dataclass
class IntervalResult:
    """Everything measured with one ``binlog_flush_interval``."""

    flush_interval: int
    load_before: float
    commits: list[Commit] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    startup_seconds: float = 0.0  # follower spawn -> its first commit durable
    window_seconds: float = 0.0  # measured phases + drain
    window_started: float = 0.0  # time.monotonic() when the measured phases began
    window_started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    follower: ProcessUsage = field(default_factory=ProcessUsage)
    binlog_reader: ProcessUsage = field(default_factory=ProcessUsage)  # mariadb-binlog
    poll_median_ms: float = 0.0
    poll_max_ms: float = 0.0
    transient_gaps: int = 0  # polls that found a gap in the chain
    list_errors: int = 0  # polls that failed: an object vanished while listed
    open_segments: int = 0  # segments of the binlog still open at the end
    raw_bytes: int = 0  # binlog bytes stored: sealed binlogs and open streams
    stored_bytes: int = 0
    index_bytes: int = 0  # size of the largest index.json at the end
    seals: list[Seal] = field(default_factory=list)
    rotations: int = 0  # FLUSH BINARY LOGS, and the server's own rotation when filling
    filled_transactions: int = 0  # committed server-side by the filler
    reconnects: int = 0
    stop_seconds: float = 0.0
    exit_code: int | None = None
    stopped_cleanly: bool = False  # "binlog follow stopped" in its log
    status_gtid_ok: bool = False  # status.json's last_gtid is the server's last GTID

    def phase_lags(self, phase: str) -> list[float]:
        return [c.lag for c in self.commits if c.phase == phase and c.lag is not None]

    def not_durable(self, phase: str) -> int:
        return sum(1 for c in self.commits if c.phase == phase and c.lag is None)

    def phases(self) -> list[str]:
        return list(dict.fromkeys(c.phase for c in self.commits))

    def summary(self) -> dict[str, Any]:
        per_phase = {}
        for phase in self.phases():
            lags = self.phase_lags(phase)
            commits = [c for c in self.commits if c.phase == phase]
            per_phase[phase] = {
                "commits": len(commits),
                "payload_mib": round(sum(c.payload_bytes for c in commits) / 2**20, 1),
                "seconds": round(self.phase_seconds.get(phase, 0.0), 1),
                "not_durable": self.not_durable(phase),
                "p50_s": round(percentile(lags, 50), 3),
                "p95_s": round(percentile(lags, 95), 3),
                "max_s": round(max(lags), 3),
                "min_s": round(min(lags), 3),
            }
        return {"phases": per_phase}


# --------------------------------------------------------------------------- helpers


def gtid_seq(gtid: str) -> int:
    """The sequence number of a GTID like "0-1-42" (0 for an empty one)."""
    return int(gtid.rsplit("-", 1)[1]) if gtid else 0


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile of ``values``, interpolated linearly between ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far (not its children), None once gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def binlog_reader_pid(state_dir: Path) -> int | None:
    """The pid of the follower's ``mariadb-binlog`` (it writes under ``state_dir``)."""
    prefix = f"--result-file={state_dir}/"
    for pid, args in process_args():
        if os.path.basename(args[0]) == "mariadb-binlog" and any(
            a.startswith(prefix) for a in args
        ):
            return pid
    return None


def usage_between(pid: int | None, cpu_start: float | None) -> ProcessUsage:
    """Peak RSS of ``pid`` so far and its CPU seconds since ``cpu_start``."""
    if pid is None:
        return ProcessUsage()
    cpu_now = cpu_seconds(pid)
    spent = None if cpu_now is None or cpu_start is None else cpu_now - cpu_start
    return ProcessUsage(read_vmhwm_kb(pid), spent)


# --------------------------------------------------------------------------- writers


class Deadline:
    """When a phase ends; a filler moves it once the server has rotated its binlog."""

    def __init__(self, at: float):
        self.at = at

    def passed(self, when: float | None = None) -> bool:
        return (time.monotonic() if when is None else when) >= self.at


class PhaseThread(threading.Thread):
    """A thread of one phase with its own connection; it stops at the deadline or ``stop``."""

    def __init__(self, instance: MariaDBInstance, name: str, deadline: Deadline, stop: Any):
        super().__init__(name=name, daemon=True)
        self.instance, self.deadline, self.stop = instance, deadline, stop
        self.commits: list[Commit] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn = self.instance.connect()
            try:
                with conn.cursor() as cur:
                    self.work(cur)
            finally:
                conn.close()
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def work(self, cur: Any) -> None:
        raise NotImplementedError

    def wait_until(self, at: float) -> bool:
        """Sleep until ``at``; False when the phase is over (deadline passed or stopped)."""
        return not self.deadline.passed(at) and not self.stop.wait(max(0.0, at - time.monotonic()))


class Writer(PhaseThread):
    """Commits one INSERT of ``payload_bytes`` every ``period`` s until the deadline.

    Each INSERT is its own transaction (autocommit). The commit time is taken as soon
    as the statement returns, then ``@@last_gtid`` is read on the same session.
    """

    def __init__(
        self,
        instance: MariaDBInstance,
        phase: str,
        kind: str,
        payload_bytes: int,
        period: float,
        deadline: Deadline,
        stop: threading.Event,
    ):
        super().__init__(instance, f"writer-{phase}-{kind}", deadline, stop)
        self.phase, self.kind, self.payload_bytes, self.period = phase, kind, payload_bytes, period

    def work(self, cur: Any) -> None:
        sql = f"INSERT INTO {TABLE} (phase, payload) VALUES (%s, %s)"
        next_at = time.monotonic()
        while self.wait_until(next_at):
            # literal random hex: the binlog carries the bytes in any binlog_format
            payload = os.urandom(self.payload_bytes // 2).hex()
            cur.execute(sql, (self.phase, payload))
            committed = time.monotonic()
            cur.execute("SELECT @@last_gtid")
            gtid = str(cur.fetchone()[0])
            self.commits.append(Commit(self.phase, self.kind, gtid, committed, len(payload)))
            next_at += self.period


class Rotator(PhaseThread):
    """Runs ``FLUSH BINARY LOGS`` every ``period`` s until the deadline.

    The server closes its binlog and opens a new one: the follower must seal the closed
    one into a binlog backup and start a new stream, as after a server restart.
    """

    def __init__(
        self, instance: MariaDBInstance, period: float, deadline: Deadline, stop: threading.Event
    ):
        super().__init__(instance, "rotator", deadline, stop)
        self.period = period
        self.rotations = 0

    def work(self, cur: Any) -> None:
        next_at = time.monotonic() + self.period
        while self.wait_until(next_at):
            cur.execute("FLUSH BINARY LOGS")
            self.rotations += 1
            next_at += self.period


class Filler(PhaseThread):
    """Commits small transactions server-side, as fast as the server can, until the
    server rotates its binlog by itself at ``max_binlog_size``; then it moves the
    deadline to ``tail`` seconds later, to measure the lag while the follower seals the
    full binlog."""

    def __init__(
        self, instance: MariaDBInstance, tail: float, deadline: Deadline, stop: threading.Event
    ):
        super().__init__(instance, "filler", deadline, stop)
        self.tail = tail
        self.transactions = 0
        self.rotations = 0

    def work(self, cur: Any) -> None:
        cur.execute("SHOW MASTER STATUS")
        first = cur.fetchone()[0]
        while not self.deadline.passed() and not self.stop.is_set():
            cur.execute(f"CALL {FILL_PROCEDURE}({FILL_CHUNK})")
            self.transactions += FILL_CHUNK
            cur.execute("SHOW MASTER STATUS")
            if cur.fetchone()[0] != first:
                self.rotations = 1
                self.deadline.at = time.monotonic() + self.tail
                return


def commit_once(instance: MariaDBInstance) -> Commit:
    """Commit one small INSERT outside the measured phases."""
    conn = instance.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO {TABLE} (phase, payload) VALUES ('warm-up', 'x')")
            committed = time.monotonic()
            cur.execute("SELECT @@last_gtid")
            return Commit("warm-up", "small", str(cur.fetchone()[0]), committed, 1)
    finally:
        conn.close()


@dataclass(frozen=True)
class Phase:
    """One measured phase: small commits at ``rate`` per second, and optionally a bulk
    writer (``bulk_mb_s`` MiB of rows per second), binlog rotations every
    ``rotate_every`` s, or a server-side filler up to the server's own rotation (then
    ``seconds`` is only an upper bound and the phase lasts ``fill_tail`` s after it)."""

    name: str
    seconds: float
    rate: float
    bulk_mb_s: float = 0.0
    rotate_every: float = 0.0
    fill_tail: float | None = None


@dataclass
class PhaseRun:
    """What one phase did."""

    commits: list[Commit]
    seconds: float
    rotations: int
    filled_transactions: int


def phase_threads(
    instance: MariaDBInstance, phase: Phase, deadline: Deadline, stop: threading.Event
) -> list[PhaseThread]:
    """The threads that make up ``phase``: always the small writer, then the extras."""
    threads: list[PhaseThread] = [
        Writer(instance, phase.name, "small", SMALL_PAYLOAD, 1 / phase.rate, deadline, stop)
    ]
    if phase.bulk_mb_s > 0:
        period = BULK_PAYLOAD / (phase.bulk_mb_s * 2**20)
        threads.append(Writer(instance, phase.name, "bulk", BULK_PAYLOAD, period, deadline, stop))
    if phase.rotate_every > 0:
        threads.append(Rotator(instance, phase.rotate_every, deadline, stop))
    if phase.fill_tail is not None:
        threads.append(Filler(instance, phase.fill_tail, deadline, stop))
    return threads


def run_phase(instance: MariaDBInstance, phase: Phase) -> PhaseRun:
    """Run the threads of one phase until its deadline and collect what they did."""
    stop = threading.Event()
    started = time.monotonic()
    threads = phase_threads(instance, phase, Deadline(started + phase.seconds), stop)
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():  # joined in steps, so that Ctrl-C gets through
                thread.join(0.5)
                if thread.error is not None:
                    break
            if thread.error is not None:
                raise RuntimeError(f"{thread.name} failed: {thread.error}") from thread.error
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    return PhaseRun(
        commits=sorted((c for t in threads for c in t.commits), key=lambda c: c.committed),
        seconds=time.monotonic() - started,
        rotations=sum(getattr(t, "rotations", 0) for t in threads),
        filled_transactions=sum(getattr(t, "transactions", 0) for t in threads),
    )


# --------------------------------------------------------------------------- the watcher


class DurableWatcher(threading.Thread):
    """Polls the repository for the newest restorable GTID every ``REPO_POLL_S``.

    "Restorable" is what a point-in-time restore would find: the newest ``last_gtid`` in
    the binlog chain after the full backup, sealed binlogs and streams alike. A poll's
    time is taken when it *ends*, so a lag is never under-estimated. It also samples the
    follower's VmHWM.
    """

    def __init__(self, repo: LocalRepository, full: Manifest, follower_pid: int):
        super().__init__(name="durable-watcher", daemon=True)
        self.repo, self.full, self.follower_pid = repo, full, follower_pid
        self.stop = threading.Event()
        self.times: list[float] = []  # when the restorable sequence number rose ...
        self.seqs: list[int] = []  # ... to this
        self.poll_seconds: list[float] = []
        self.gaps = 0
        self.list_errors = 0
        self.follower_peak_kb: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.poll_once()
                self.stop.wait(REPO_POLL_S)
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def poll_once(self) -> None:
        started = time.monotonic()
        try:
            links, gap = binlog_chain(self.repo, self.full)
        except FileNotFoundError:
            # LocalRepository.list() stats every file it walked; a seal deleting the
            # stream's segments meanwhile makes it fail. Counted, and polled again.
            self.list_errors += 1
            return
        newest = max((gtid_seq(link.info.last_gtid or "") for link in links), default=0)
        done = time.monotonic()
        self.poll_seconds.append(done - started)
        self.gaps += gap is not None
        if newest > (self.seqs[-1] if self.seqs else 0):
            self.times.append(done)  # first, so that times is never shorter than seqs
            self.seqs.append(newest)
        if (rss := read_vmhwm_kb(self.follower_pid)) is not None:
            self.follower_peak_kb = rss

    def durable_at(self, seq: int) -> float | None:
        """When transaction ``seq`` was first seen restorable, or None if not yet."""
        index = bisect.bisect_left(self.seqs, seq)
        return self.times[index] if index < len(self.seqs) else None

    def wait_durable(self, seq: int, timeout: float) -> float | None:
        """Wait (at most ``timeout`` s) until ``seq`` is restorable; return when it was."""
        deadline = time.monotonic() + timeout
        while (at := self.durable_at(seq)) is None and time.monotonic() < deadline:
            if self.error is not None:
                raise RuntimeError(f"the watcher failed: {self.error}") from self.error
            time.sleep(REPO_POLL_S)
        return at

    def finish(self) -> None:
        """Stop polling, after one last poll; raise what the thread hit."""
        self.stop.set()
        self.join(30)
        if self.error is not None:
            raise RuntimeError(f"the watcher failed: {self.error}") from self.error
        self.poll_once()


# --------------------------------------------------------------------------- the follower


@dataclass(frozen=True)
class IntervalDirs:
    """Where one flush interval's policy, repository, state and logs live."""

    root: Path

    @property
    def policies(self) -> Path:
        return self.root / "policies"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def backupctl_args(self, *args: str) -> list[str]:
        return ["--policies", str(self.policies), "--state-dir", str(self.state), *args]


def write_interval_policy(server: BenchServer, dirs: IntervalDirs, flush_interval: int) -> None:
    """The bench policy with continuous binlogs, flushed every ``flush_interval`` s."""
    policy = base_policy(server, dirs.repo)
    policy["schedule"]["binlog"] = "continuous"
    policy["backup"]["binlog_flush_interval"] = f"{flush_interval}s"
    write_policy(dirs.policies, policy)


@contextmanager
def follower(cmd: list[str], dirs: IntervalDirs) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``backupctl binlog follow`` for the block; it is always stopped at the end."""
    argv = [*cmd, "--log-format", "json", *dirs.backupctl_args("binlog", "follow", POLICY_NAME)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with (
        open(dirs.logs / "follow.log", "wb") as log_fh,
        open(dirs.logs / "follow.out", "wb") as out_fh,
    ):
        proc = subprocess.Popen(argv, stdout=out_fh, stderr=log_fh, cwd=REPO_ROOT, env=env)
        try:
            yield proc
        finally:
            stop_process(proc)


def stop_follower(proc: subprocess.Popen[bytes]) -> tuple[int | None, float]:
    """SIGTERM the follower; return its exit code (None if it had to be killed) and the
    seconds it took to exit."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = None
    return code, time.monotonic() - started


def start_fresh_binlog(instance: MariaDBInstance) -> None:
    """Rotate the server's binlog and purge the older ones, so that every interval's
    follower starts on a small binlog rather than on the previous interval's data."""
    conn = instance.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("FLUSH BINARY LOGS")
            cur.execute("SHOW MASTER STATUS")
            current = cur.fetchone()[0]
            cur.execute(f"PURGE BINARY LOGS TO '{current}'")
    finally:
        conn.close()


def server_gtid(instance: MariaDBInstance) -> str:
    """The server's newest binlogged GTID (domain 0)."""
    conn = instance.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            positions = str(cur.fetchone()[0]).split(",")
    finally:
        conn.close()
    return next((p for p in positions if p.startswith("0-")), "")


def prepare_server(instance: MariaDBInstance, max_binlog_mb: int) -> None:
    """Create the table and the filler's procedure; set the binlog size.

    ``innodb_flush_log_at_trx_commit=0`` lets the filler commit 60k+ transactions per
    second on a VM disk (5k with 2). It does not change what is measured: the binlog is
    written at COMMIT either way (``sync_binlog=0``, the default), and the lag runs from
    COMMIT to the repository.
    """
    conn = instance.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL innodb_flush_log_at_trx_commit = 0")
            if max_binlog_mb > 0:
                cur.execute(f"SET GLOBAL max_binlog_size = {max_binlog_mb * 2**20}")
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
                " phase VARCHAR(16) NOT NULL, payload LONGTEXT NOT NULL) ENGINE=InnoDB"
            )
            cur.execute(
                f"CREATE OR REPLACE PROCEDURE {FILL_PROCEDURE}(n INT) BEGIN"
                " DECLARE i INT DEFAULT 0; WHILE i < n DO"
                f" INSERT INTO {TABLE} (phase, payload) VALUES ('fill', REPEAT('x', 100));"
                " SET i = i + 1; END WHILE; END"
            )
    finally:
        conn.close()


def take_full_backup(cmd: list[str], dirs: IntervalDirs, repo: LocalRepository) -> Manifest:
    timed = run_backupctl(
        cmd,
        dirs.backupctl_args("backup", POLICY_NAME, "--json"),
        dirs.logs / "backup.json",
        dirs.logs / "backup.log",
    )
    if timed.returncode != 0:
        raise RuntimeError(
            f"backupctl backup failed with exit {timed.returncode}:\n{timed.log_tail}"
        )
    return max(
        (m for m in scan_manifests(repo, POLICY_NAME) if m.kind == "full"),
        key=lambda m: m.started_at,
    )


def record_stored(result: IntervalResult, repo: LocalRepository) -> None:
    """What the follower left in the repository: bytes, open segments, index size."""
    streams = read_streams(repo, POLICY_NAME)
    sealed = [m for m in scan_manifests(repo, POLICY_NAME) if m.kind == "binlog"]
    segments = [seg for s in streams for seg in s.segments]
    result.open_segments = len(segments)
    result.raw_bytes = sum(seg.raw_bytes for seg in segments) + sum(m.raw_bytes for m in sealed)
    result.stored_bytes = sum(seg.stored_bytes for seg in segments) + sum(
        m.stored_bytes for m in sealed
    )
    result.index_bytes = max((len(s.model_dump_json(indent=1)) for s in streams), default=0)


def parse_seals(log_path: Path, since: datetime) -> list[Seal]:
    """The seals in the follower's JSON log: file, bytes, start (s after ``since``) and
    started..complete seconds."""
    started: dict[str, datetime] = {}
    shipped: dict[str, tuple[str, int]] = {}
    seals = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        backup_id, event = entry.get("backup_id"), entry.get("event")
        if backup_id is None or "timestamp" not in entry:
            continue
        at = datetime.fromisoformat(entry["timestamp"])
        if event == "backup started":
            started[backup_id] = at
        elif event == "binlog shipped":
            shipped[backup_id] = (entry["file"], int(entry["bytes"]))
        elif event == "backup complete" and backup_id in started and backup_id in shipped:
            file, size = shipped[backup_id]
            begun = started[backup_id]
            seals.append(
                Seal(file, size, (begun - since).total_seconds(), (at - begun).total_seconds())
            )
    return seals


def check_status(result: IntervalResult, dirs: IntervalDirs, instance: MariaDBInstance) -> None:
    """Compare the follower's final status.json with the server's newest GTID."""
    path = dirs.state / "binlog-follow" / POLICY_NAME / "status.json"
    status = json.loads(path.read_text()) if path.exists() else {}
    result.reconnects = int(status.get("reconnects", 0))
    last = status.get("last_gtid") or ""
    result.status_gtid_ok = bool(last) and gtid_seq(last) == gtid_seq(server_gtid(instance))


# --------------------------------------------------------------------------- one interval


def measure(
    result: IntervalResult,
    instance: MariaDBInstance,
    proc: subprocess.Popen[bytes],
    watcher: DurableWatcher,
    dirs: IntervalDirs,
    phases: list[Phase],
    spawned: float,
) -> None:
    """Run the phases against a running follower; fill ``result`` up to before the stop.

    A first commit, unmeasured, waits until the follower streams (``spawned`` is when it
    was started). CPU time counts from then to the end of the drain.
    """
    first = commit_once(instance)
    if watcher.wait_durable(first.seq, WARMUP_TIMEOUT) is None:
        raise RuntimeError(f"the first commit was not durable after {WARMUP_TIMEOUT:.0f}s")
    result.startup_seconds = time.monotonic() - spawned
    reader = binlog_reader_pid(dirs.state)
    cpu_start = (cpu_seconds(proc.pid), cpu_seconds(reader) if reader else None)
    started = result.window_started = time.monotonic()
    result.window_started_at = datetime.now(UTC)
    for phase in phases:
        done = run_phase(instance, phase)
        result.commits += done.commits
        result.phase_seconds[phase.name] = done.seconds
        result.rotations += done.rotations
        result.filled_transactions += done.filled_transactions
        extra = f", {done.filled_transactions:,} server-side" if done.filled_transactions else ""
        print(
            f"    {phase.name}: {len(done.commits)} commits{extra} in {done.seconds:.0f}s",
            flush=True,
        )
    if result.commits:
        watcher.wait_durable(result.commits[-1].seq, DRAIN_TIMEOUT)
    result.window_seconds = time.monotonic() - started
    result.follower = usage_between(proc.pid, cpu_start[0])
    result.follower.peak_rss_kb = max(
        result.follower.peak_rss_kb or 0, watcher.follower_peak_kb or 0
    )
    if reader is not None and binlog_reader_pid(dirs.state) == reader:
        result.binlog_reader = usage_between(reader, cpu_start[1])


def bench_interval(
    server: BenchServer,
    workdir: Path,
    cmd: list[str],
    flush_interval: int,
    phases: list[Phase],
    keep: bool,
) -> IntervalResult:
    """Full backup, follower, the measured phases, SIGTERM: one flush interval."""
    print(f"flush interval {flush_interval}s:", flush=True)
    instance = server.instance
    dirs = IntervalDirs(fresh_dir(workdir / f"flush-{flush_interval}s"))
    for sub in (dirs.policies, dirs.logs):
        sub.mkdir()
    write_interval_policy(server, dirs, flush_interval)
    start_fresh_binlog(instance)
    repo = LocalRepository(dirs.repo)
    full = take_full_backup(cmd, dirs, repo)
    result = IntervalResult(flush_interval, os.getloadavg()[0])
    with follower(cmd, dirs) as proc:
        spawned = time.monotonic()
        watcher = DurableWatcher(repo, full, proc.pid)
        watcher.start()
        try:
            measure(result, instance, proc, watcher, dirs, phases, spawned)
            result.exit_code, result.stop_seconds = stop_follower(proc)
        finally:
            watcher.finish()
    for commit in result.commits:
        commit.durable = watcher.durable_at(commit.seq)
    polls = sorted(watcher.poll_seconds)
    result.poll_median_ms = percentile(polls, 50) * 1000
    result.poll_max_ms = polls[-1] * 1000
    result.transient_gaps = watcher.gaps
    result.list_errors = watcher.list_errors
    log_text = (dirs.logs / "follow.log").read_text(errors="replace")
    result.stopped_cleanly = "binlog follow stopped" in log_text
    record_stored(result, repo)
    result.seals = parse_seals(dirs.logs / "follow.log", result.window_started_at)
    check_status(result, dirs, instance)
    if not keep:  # the repository and the spool hold a gigabyte or more after a fill
        for path in (dirs.repo, dirs.state):
            shutil.rmtree(path, ignore_errors=True)
    print(
        f"    stopped: exit {result.exit_code} in {result.stop_seconds:.2f}s,"
        f" peak RSS {(result.follower.peak_rss_kb or 0) / 1024:.1f} MiB",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------- report


def _mib(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


def _cpu(usage: ProcessUsage, window: float) -> str:
    if usage.cpu_seconds is None:
        return "-"
    return f"{usage.cpu_seconds:.1f} ({100 * usage.cpu_seconds / window:.0f}%)"


def _longest_seal(r: IntervalResult) -> str:
    if not r.seals:
        return "-"
    seal = max(r.seals, key=lambda s: s.seconds)
    return f"{seal.seconds:.2f} ({seal.raw_bytes / 2**20:.1f})"


def markdown_tables(results: list[IntervalResult]) -> str:
    """The lag per interval and phase, then the follower's cost per interval."""
    lines = [
        "| flush interval | phase | commits (MiB written) | p50 lag s | p95 lag s | max lag s "
        "| not durable |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for phase, s in r.summary()["phases"].items():
            filled = f", +{r.filled_transactions:,} server-side" if phase == "fill" else ""
            lines.append(
                f"| {r.flush_interval} s | {phase} ({s['seconds']:.0f} s{filled}) "
                f"| {s['commits']} ({s['payload_mib']:.1f}) "
                f"| {s['p50_s']:.2f} | {s['p95_s']:.2f} | {s['max_s']:.2f} | {s['not_durable']} |"
            )
    lines += [
        "",
        "| flush interval | follower peak RSS MiB | follower CPU s (% of window) "
        "| mariadb-binlog peak RSS MiB / CPU s | binlog MiB stored (raw) "
        "| open segments, index.json KiB | seals (rotations), longest s (MiB) "
        "| repository poll ms median / max | SIGTERM: exit code, s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        reader = r.binlog_reader
        reader_cpu = "-" if reader.cpu_seconds is None else f"{reader.cpu_seconds:.1f}"
        lines.append(
            f"| {r.flush_interval} s | {_mib(r.follower.peak_rss_kb)} "
            f"| {_cpu(r.follower, r.window_seconds)} "
            f"| {_mib(reader.peak_rss_kb)} / {reader_cpu} "
            f"| {r.stored_bytes / 2**20:.1f} ({r.raw_bytes / 2**20:.1f}) "
            f"| {r.open_segments}, {r.index_bytes / 1024:.1f} "
            f"| {len(r.seals)} ({r.rotations}), {_longest_seal(r)} "
            f"| {r.poll_median_ms:.1f} / {r.poll_max_ms:.1f} "
            f"| {r.exit_code}, {r.stop_seconds:.2f} |"
        )
    return "\n".join(lines)


def verdicts(results: list[IntervalResult]) -> list[str]:
    """One line per flush interval and phase for the target, then the checks of a
    clean run: every commit durable, exit 0 on SIGTERM, the last GTID in status.json."""
    lines = []
    for r in results:
        for phase, s in r.summary()["phases"].items():
            ok = not s["not_durable"] and s["p95_s"] < TARGET_LAG_S and s["max_s"] < TARGET_LAG_S
            lost = f", {s['not_durable']} never durable" if s["not_durable"] else ""
            lines.append(
                f"flush {r.flush_interval}s, {phase}: p95 and max lag < {TARGET_LAG_S:.0f} s: "
                f"{mark(ok)} (p95 {s['p95_s']:.2f} s, max {s['max_s']:.2f} s over "
                f"{s['commits']} commits{lost})"
            )
    for r in results:
        clean = r.exit_code == 0 and r.stopped_cleanly and r.status_gtid_ok
        lines.append(
            f"flush {r.flush_interval}s: SIGTERM -> exit 0 with the last GTID stored: "
            f"{mark(clean)} (exit {r.exit_code}, reconnects {r.reconnects}, "
            f"transient chain gaps {r.transient_gaps}, polls failed listing {r.list_errors})"
        )
    return lines


def write_results(
    path: Path, args: argparse.Namespace, env: dict[str, Any], results: list[IntervalResult]
) -> None:
    """Write every commit and the summaries as JSON to ``path``."""
    intervals = []
    for r in results:
        data = asdict(r)
        data["window_started_at"] = r.window_started_at.isoformat()
        data["commits"] = [
            {
                "phase": c.phase,
                "writer": c.writer,
                "gtid": c.gtid,
                "committed_s": round(c.committed - r.window_started, 3),
                "lag_s": c.lag,
            }
            for c in r.commits
        ]
        intervals.append({**data, "summary": r.summary()})
    write_results_doc(
        path,
        "follow-lag",
        args,
        {"lag_s": TARGET_LAG_S, "repo_poll_s": REPO_POLL_S},
        env,
        intervals=intervals,
        verdicts=verdicts(results),
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--flush-interval",
        default="2",
        help="comma-separated binlog_flush_interval values in whole seconds (default: 2)",
    )
    parser.add_argument(
        "--seconds", type=float, default=60, help="length of the steady phase (default 60)"
    )
    parser.add_argument(
        "--rate", type=float, default=5, help="small commits per second (default 5)"
    )
    parser.add_argument(
        "--burst-seconds",
        type=float,
        default=20,
        help="length of the burst phase after the steady one; 0 skips it (default 20)",
    )
    parser.add_argument(
        "--burst-mb-s",
        type=float,
        default=4,
        help="MiB of rows per second the bulk writer adds in the burst phase (default 4)",
    )
    parser.add_argument(
        "--rotate-seconds",
        type=float,
        default=20,
        help="length of the rotate phase after the burst; 0 skips it (default 20)",
    )
    parser.add_argument(
        "--rotate-every",
        type=float,
        default=5,
        help="seconds between FLUSH BINARY LOGS in the rotate phase (default 5)",
    )
    parser.add_argument(
        "--max-binlog-mb",
        type=int,
        default=1024,
        help="max_binlog_size of the server in MiB; the fill phase commits small"
        " transactions until the server rotates at it; 0 skips the phase (default 1024,"
        " the server's default)",
    )
    parser.add_argument(
        "--fill-tail",
        type=float,
        default=20,
        help="seconds the fill phase goes on after the server's rotation (default 20)",
    )
    add_run_args(parser, holds="the server, repositories and logs", results="follow-lag")
    args = parser.parse_args(argv)
    args.flush_interval = [int(s) for s in args.flush_interval.split(",") if s.strip()]
    if not args.flush_interval or min(args.flush_interval) <= 0:
        parser.error("--flush-interval needs positive whole seconds")
    if args.seconds <= 0 or args.rate <= 0 or args.rotate_every <= 0:
        parser.error("--seconds, --rate and --rotate-every must be positive")
    if min(args.burst_seconds, args.burst_mb_s, args.rotate_seconds, args.fill_tail) < 0:
        parser.error("the burst, rotate and fill options must not be negative")
    if not (args.max_binlog_mb == 0 or 4 <= args.max_binlog_mb <= 1024):
        parser.error("--max-binlog-mb is 0 (no fill phase) or 4 to 1024 (the server's limit)")
    return args


def phases_of(args: argparse.Namespace) -> list[Phase]:
    """steady, then burst and rotate unless their length is 0."""
    phases = [
        Phase("steady", args.seconds, args.rate),
        Phase("burst", args.burst_seconds, args.rate, bulk_mb_s=args.burst_mb_s),
        Phase("rotate", args.rotate_seconds, args.rate, rotate_every=args.rotate_every),
    ]
    if args.max_binlog_mb > 0:
        phases.append(Phase("fill", FILL_TIMEOUT, args.rate, fill_tail=args.fill_tail))
    return [p for p in phases if p.seconds > 0]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir, json_out = begin(args, "follow-lag")
    phases = phases_of(args)
    cmd = default_backupctl_cmd()
    results: list[IntervalResult] = []
    with workdir_cleanup(workdir, args.keep, "the follower and the MariaDB server were stopped"):
        with bench_server(workdir, args.buffer_pool) as server:
            env = environment(server.instance, cmd, workdir)
            env["mariadb_binlog"] = tool_version(["mariadb-binlog", "--version"])
            prepare_server(server.instance, args.max_binlog_mb)
            for interval in args.flush_interval:
                results.append(bench_interval(server, workdir, cmd, interval, phases, args.keep))
        write_results(json_out, args, env, results)
    print_summary(markdown_tables(results), verdicts(results), json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
