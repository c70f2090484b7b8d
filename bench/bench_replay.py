#!/usr/bin/env python3
"""Benchmark: backupctl's point-in-time binlog replay against ``mariadb-binlog | mariadb``.

One full backup is taken, then a row-format workload writes ``--binlog-mb`` MiB of
binlog (1000-row INSERT and UPDATE transactions) and ``backupctl backup --type binlog``
ships it. backupctl then restores to the last GTID::

    backupctl restore POLICY --to-gtid LAST --target-datadir DIR --yes --json

and its ``replay-binlogs`` step (each stored binlog streams from the repository through
zstd into its own ``mariadb-binlog -``, all into one ``mariadb`` session on the recovery
instance; nothing lands in scratch) is compared with the
command an operator would type on uncompressed copies of the very same binlog files,
against a server started like backupctl's recovery instance on the same prepared
backup::

    mariadb-binlog --no-defaults --start-position=POS FILES... \\
        | mariadb --no-defaults --socket=SOCK -uroot --binary-mode

Both tools run several times each, interleaved and in alternating order. Every run ends
with the same tables as the source server (CHECKSUM TABLE and row counts), which proves
the replay was complete. Reported: median replay seconds and MiB/s of each, their ratio,
backupctl's restore steps and where its replay step spends its time.

Run from the repository root::

    python3 bench/bench_replay.py --binlog-mb 500 --repeat 3

``--scratch-mb 512`` puts the temporary directory (``TMPDIR``: where root's recovery
instance has its run directory, the replay's scratch and, under gtid_strict_mode, its
private binlog) on a tmpfs of that size, for both tools, so a replay of more binlog than
that proves it streams (``--binlog-mb 2048 --scratch-mb 512``; needs root).

Needs root, the Debian packages mariadb-server, mariadb-backup, mariadb-client and
zstd, and the project's Python dependencies. Every ``mariadbd`` the benchmark (or
backupctl) started under the work directory is stopped at exit, including on Ctrl-C
and SIGTERM. Results go to ``bench/results/replay-<date>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import (  # first: it puts the repository root on sys.path
    POLICY_NAME,
    REPO_ROOT,
    RUN_TIMEOUT,
    Timed,
    add_run_args,
    add_warmup_arg,
    base_policy,
    begin,
    bench_server,
    check_run,
    data_artifact,
    default_backupctl_cmd,
    environment,
    extract,
    fmt_seconds,
    interleaved,
    mark,
    other_mariadbd,
    pipe,
    print_summary,
    read_vmhwm_kb,
    rep_label,
    stop_process,
    tool_version,
    workdir_cleanup,
    write_policy,
    write_results_doc,
)

from backupctl.demo.server import checksum_tables
from backupctl.drivers.mariadb.instance import MariaDBInstance

DATABASE = "replay"
ITEMS = f"`{DATABASE}`.`items`"  # ~1.1 KB rows: inserted and updated in batches
LEDGER = f"`{DATABASE}`.`ledger`"  # ~100 B rows: inserted in batches
TARGET_RATIO = 1.1
BATCH_ROWS = 1000  # rows per transaction
BASE_ITEMS = 20_000  # rows in the full backup, so the first updates have rows to hit
MAX_BINLOG_SIZE = 100 * 2**20  # Debian's default; the server runs --no-defaults (1 GiB)
# what an operator's raw replay runs into: a server with no network, no grant checks, no
# replication and no binlog. backupctl's recovery instance (service_steps._instance)
# keeps a private binlog as it replays, to check where the replay ended: that costs it
RECOVERY_ARGS = ["--skip-grant-tables", "--skip-slave-start", "--skip-log-bin"]
POLL_SECONDS = 0.02
STEP_ROWS = [
    ("check-target", "the target datadir is empty"),
    ("fetch-extract", "read + sha256 + zstd -d + mbstream -x of the full backup"),
    ("prepare", "mariabackup --prepare"),
    ("move-into-place", "chown, rename staging into place"),
    ("start-recovery-instance", "private mariadbd on the restored datadir"),
    ("replay-binlogs", "repository \\| zstd -d \\| mariadb-binlog - \\| mariadb, per binlog"),
    ("verify", "the checks of restore.verify_level after a replay (tables present, CHECK TABLE)"),
    ("stop-recovery-instance", "shut the private mariadbd down"),
]


# --------------------------------------------------------------------------- data types


@dataclass
class Workload:
    """The full backup, the binlogs written after it, and the state they lead to."""

    backup_id: str
    full_object: Path  # <repo>/<policy>/full/<id>/data.mbstream.zst
    start_file: str  # the full backup's binlog coordinates
    start_position: int
    start_gtid: str | None
    last_gtid: str  # the last transaction of the workload: the replay target
    binlogs: list[Path]  # uncompressed copies of the chain, in order (the raw run's input)
    binlog_bytes: int  # bytes of those files from the backup's position on
    stored_bytes: int  # what the chain takes in the repository (zstd)
    transactions: int
    generate_seconds: float
    ship_seconds: float  # ``backupctl backup --type binlog``
    expected: dict[str, Any]  # checksums and row counts of the source after the workload

    @property
    def binlog_mib(self) -> float:
        return self.binlog_bytes / 2**20


@dataclass
class Run:
    """One timed replay, by either tool."""

    tool: str  # "raw" or "backupctl"
    repetition: int  # 0 is the unmeasured warm-up
    replay_seconds: float  # raw: the pipeline; backupctl: its replay-binlogs step
    wall_seconds: float  # raw: the same; backupctl: the whole restore command
    steps: dict[str, float] = field(default_factory=dict)  # backupctl's report
    peak_rss_kb: int | None = None  # backupctl's Python process only
    load_before: float = 0.0  # 1-minute load average when the run started
    other_mariadbd: int = 0  # mariadbd processes on the machine that are not ours


@dataclass
class Result:
    """Every run, and their summary."""

    workload: Workload
    runs: list[Run] = field(default_factory=list)

    def measured(self, tool: str) -> list[Run]:
        """Return the runs of ``tool`` without the warm-up."""
        return [r for r in self.runs if r.tool == tool and r.repetition > 0]

    def median(self, tool: str, attr: str = "replay_seconds") -> float | None:
        values = [getattr(r, attr) for r in self.measured(tool)]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def span(self, tool: str) -> tuple[float, float]:
        """(fastest, slowest) measured replay of ``tool``: the noise to expect."""
        times = [r.replay_seconds for r in self.measured(tool)]
        return min(times), max(times)

    def step_median(self, step: str) -> float | None:
        values = [r.steps[step] for r in self.measured("backupctl") if step in r.steps]
        return statistics.median(values) if values else None

    def replay(self, tool: str) -> float:
        value = self.median(tool)
        assert value is not None
        return value

    @property
    def ratio(self) -> float:
        return self.replay("backupctl") / self.replay("raw")

    @property
    def pair_ratios(self) -> list[float]:
        """backupctl / raw within each measured repetition: the two ran back to back, so
        load that comes and goes hits both; less noisy than the ratio of the medians."""
        raw = {r.repetition: r.replay_seconds for r in self.measured("raw")}
        return [
            r.replay_seconds / raw[r.repetition]
            for r in self.measured("backupctl")
            if r.repetition in raw
        ]

    def mib_per_s(self, tool: str) -> float:
        return self.workload.binlog_mib / self.replay(tool)

    def summary(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "binlog_bytes": self.workload.binlog_bytes,
            "raw_replay_median_s": rounded(self.replay("raw")),
            "raw_replay_range_s": [round(t, 3) for t in self.span("raw")],
            "raw_mib_per_s": round(self.mib_per_s("raw"), 2),
            "backupctl_replay_median_s": rounded(self.replay("backupctl")),
            "backupctl_replay_range_s": [round(t, 3) for t in self.span("backupctl")],
            "backupctl_mib_per_s": round(self.mib_per_s("backupctl"), 2),
            "ratio": round(self.ratio, 3),
            "pair_ratios": [round(x, 3) for x in self.pair_ratios],
            "pair_ratio_median": round(statistics.median(self.pair_ratios), 3),
            "backupctl_wall_median_s": rounded(self.median("backupctl", "wall_seconds")),
            "backupctl_peak_rss_mb": round(
                max(r.peak_rss_kb or 0 for r in self.measured("backupctl")) / 1024, 1
            ),
            "step_medians_s": {
                name: rounded(self.step_median(name))
                for name, _ in STEP_ROWS
                if self.step_median(name) is not None
            },
        }


@dataclass(frozen=True)
class Setup:
    """Where things are for one benchmark session."""

    workdir: Path
    instance: MariaDBInstance  # the source server
    policy_dir: Path
    state_dir: Path  # backupctl's catalog, journals and restore reports
    logs: Path  # one log (and backupctl report) per run
    restores: Path  # the datadirs both tools replay into, one per run
    recovery_buffer_pool: str  # of backupctl's recovery instance and the raw server
    backupctl_cmd: list[str]

    @property
    def golden(self) -> Path:
        """The full backup, extracted and prepared once: each raw run starts from a copy."""
        return self.workdir / "golden"

    def backupctl_args(self, *args: str) -> list[str]:
        return ["--policies", str(self.policy_dir), "--state-dir", str(self.state_dir), *args]


# --------------------------------------------------------------------------- set-up


@contextmanager
def bench_setup(
    workdir: Path, buffer_pool: str, recovery_buffer_pool: str, backupctl_cmd: list[str]
) -> Iterator[Setup]:
    """Start the source server with a backup user and write the policy.

    Every mariadbd under ``workdir`` (the source, backupctl's recovery instances, the
    raw servers) is stopped when the block exits, whatever the reason.
    """
    with bench_server(workdir, buffer_pool) as server:
        policy = base_policy(server, workdir / "repo")
        policy["restore"] = {"recovery_buffer_pool": recovery_buffer_pool}
        policy_dir = workdir / "policies"
        write_policy(policy_dir, policy)
        for sub in ("logs", "restores"):
            (workdir / sub).mkdir()
        yield Setup(
            workdir,
            server.instance,
            policy_dir,
            workdir / "state",
            workdir / "logs",
            workdir / "restores",
            recovery_buffer_pool,
            backupctl_cmd,
        )


def backupctl_json(setup: Setup, name: str, *args: str) -> tuple[dict[str, Any], float]:
    """Run ``backupctl ARGS`` (``--json``); return its parsed output and wall seconds."""
    out, log = setup.logs / f"{name}.json", setup.logs / f"{name}.log"
    timed = run_watched(setup.backupctl_cmd, setup.backupctl_args(*args), out, log)
    if timed.returncode != 0:
        raise RuntimeError(f"backupctl {' '.join(args)} failed:\n{timed.log_tail}")
    return json.loads(out.read_text()), timed.seconds


# --------------------------------------------------------------------------- the workload


def _payload(id_sql: str, version_sql: str) -> str:
    """1024 hex characters from eight SHA-512 digests: compressible like real text (~2x)."""
    digests = ", ".join(f"SHA2(CONCAT({id_sql}, '/{i}/', {version_sql}), 512)" for i in range(8))
    return f"CONCAT({digests})"


def _stamp(txn: int) -> str:
    return f"TIMESTAMP('2026-01-01') + INTERVAL {txn} SECOND"


def insert_items(cur: Any, first: int, txn: int) -> None:
    """Insert ``BATCH_ROWS`` items with ids ``first + 1 ..``, one transaction."""
    id_sql = f"{first} + seq"
    cur.execute(
        f"INSERT INTO {ITEMS} (id, account, status, amount, version, updated_at, payload)"
        f" SELECT {id_sql}, ({id_sql}) * 7 % 5000,"
        " ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'closed'),"
        f" ({id_sql}) * 7919 % 100000 / 100, 0, {_stamp(txn)}, {_payload(id_sql, '0')}"
        f" FROM `{DATABASE}`.seq_1_to_{BATCH_ROWS}"
    )


def update_items(cur: Any, low: int, txn: int) -> None:
    """Update ``BATCH_ROWS`` consecutive items from id ``low`` (row images: before + after)."""
    cur.execute(
        f"UPDATE {ITEMS} SET version = version + 1,"
        " status = ELT(1 + (id + version) % 4, 'new', 'paid', 'shipped', 'closed'),"
        f" amount = amount + 1, updated_at = {_stamp(txn)}, payload = {_payload('id', 'version')}"
        f" WHERE id BETWEEN {low} AND {low + BATCH_ROWS - 1}"
    )


def insert_ledger(cur: Any, first: int, items: int) -> None:
    """Insert ``BATCH_ROWS`` small ledger rows that point at existing items."""
    id_sql = f"{first} + seq"
    cur.execute(
        f"INSERT INTO {LEDGER} (id, item_id, delta, note)"
        f" SELECT {id_sql}, 1 + ({id_sql}) * 31 % {items},"
        f" CAST(({id_sql}) % 2000 AS SIGNED) - 1000,"
        f" CONCAT('txn ', {id_sql}, ' ', LEFT(MD5({id_sql}), 20))"
        f" FROM `{DATABASE}`.seq_1_to_{BATCH_ROWS}"
    )


def create_schema(instance: MariaDBInstance) -> None:
    """Create the two tables and the items the full backup holds."""
    conn = instance.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"SET GLOBAL max_binlog_size = {MAX_BINLOG_SIZE}")
            cur.execute(f"CREATE DATABASE {DATABASE}")
            cur.execute(
                f"CREATE TABLE {ITEMS} (id BIGINT UNSIGNED NOT NULL PRIMARY KEY,"
                " account INT UNSIGNED NOT NULL, status VARCHAR(16) NOT NULL,"
                " amount DECIMAL(12,2) NOT NULL, version INT UNSIGNED NOT NULL,"
                " updated_at DATETIME NOT NULL, payload VARCHAR(1100) NOT NULL,"
                " KEY idx_account (account), KEY idx_updated (updated_at)) ENGINE=InnoDB"
            )
            cur.execute(
                f"CREATE TABLE {LEDGER} (id BIGINT UNSIGNED NOT NULL PRIMARY KEY,"
                " item_id BIGINT UNSIGNED NOT NULL, delta INT NOT NULL,"
                " note VARCHAR(64) NOT NULL, KEY idx_item (item_id)) ENGINE=InnoDB"
            )
            for first in range(0, BASE_ITEMS, BATCH_ROWS):
                insert_items(cur, first, 0)
    finally:
        conn.close()


def binlog_bytes_since(cur: Any, start_file: str, start_position: int) -> int:
    """Bytes the server's binlogs hold from ``start_file:start_position`` on."""
    cur.execute("SHOW BINARY LOGS")
    sizes = [int(size) for name, size, *_ in cur.fetchall() if name >= start_file]
    return sum(sizes) - start_position


def generate_binlogs(
    instance: MariaDBInstance, start_file: str, start_position: int, target_bytes: int
) -> tuple[int, str]:
    """Write row-format transactions until the binlogs hold ``target_bytes`` after the
    backup's position; return (transactions, the last GTID).

    Each cycle is three transactions of ``BATCH_ROWS`` rows: new items, an update of a
    random range of existing items (the row image holds the row before and after), new
    ledger rows. The random ranges come from a fixed seed, so the workload repeats.
    """
    rng = random.Random(42)
    conn = instance.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION binlog_format = 'ROW'")  # the server default is MIXED
            items, ledger, txn = BASE_ITEMS, 0, 0
            while binlog_bytes_since(cur, start_file, start_position) < target_bytes:
                insert_items(cur, items, txn + 1)
                items += BATCH_ROWS
                update_items(cur, rng.randint(1, items - BATCH_ROWS + 1), txn + 2)
                insert_ledger(cur, ledger, items)
                ledger += BATCH_ROWS
                txn += 3
            cur.execute("SELECT @@gtid_binlog_pos")
            last_gtid = str(cur.fetchone()[0])
    finally:
        conn.close()
    if "," in last_gtid:
        raise RuntimeError(f"expected one GTID domain, the server has {last_gtid}")
    return txn, last_gtid


def table_state(instance: MariaDBInstance) -> dict[str, Any]:
    """CHECKSUM TABLE and row count of every table of the benchmark database."""
    conn = instance.connect()
    try:
        checksums = checksum_tables(conn, [DATABASE])
        rows = {}
        with conn.cursor() as cur:
            for name in checksums:
                schema, table = name.split(".")
                cur.execute(f"SELECT COUNT(*) FROM `{schema}`.`{table}`")
                rows[name] = int(cur.fetchone()[0])
    finally:
        conn.close()
    return {"checksums": checksums, "rows": rows}


def copy_chain(setup: Setup, shipped: dict[str, Any], start_file: str) -> list[Path]:
    """Copy the binlogs of the chain (the backup's file on) out of the source's datadir,
    checking each against the size backupctl stored."""
    target = setup.workdir / "binlogs"
    target.mkdir()
    copies = []
    for info in sorted(shipped["details"]["binlogs"], key=lambda b: b["file"]):
        if info["file"] < start_file:
            continue
        copy = target / info["file"]
        shutil.copyfile(setup.instance.datadir / info["file"], copy)
        if copy.stat().st_size != info["size"]:
            raise RuntimeError(f"{copy} is not the binlog backupctl shipped")
        copies.append(copy)
    return copies


def build_workload(setup: Setup, target_mib: int) -> Workload:
    """Full backup, workload, binlog backup; keep copies of the binlogs for the raw runs."""
    create_schema(setup.instance)
    full, seconds = backupctl_json(setup, "backup-full", "backup", POLICY_NAME, "--json")
    coords = full["details"]["binlog"]
    if full["details"].get("gtid_strict_mode"):  # the raw side would need it too then
        raise RuntimeError("the source runs gtid_strict_mode: RECOVERY_ARGS would not match")
    print(
        f"  full backup {full['backup_id']} in {seconds:.1f}s, binlog coordinates "
        f"{coords['file']}:{coords['position']} (GTID {coords['gtid']})",
        flush=True,
    )
    started = time.monotonic()
    transactions, last_gtid = generate_binlogs(
        setup.instance, coords["file"], coords["position"], target_mib * 2**20
    )
    generate_seconds = time.monotonic() - started
    expected = table_state(setup.instance)
    shipped, ship_seconds = backupctl_json(
        setup, "backup-binlog", "backup", POLICY_NAME, "--type", "binlog", "--json"
    )
    binlogs = copy_chain(setup, shipped, coords["file"])
    stored = sum(
        a["stored_bytes"]
        for a in shipped["artifacts"]
        if Path(a["key"]).name.removesuffix(".zst") in {p.name for p in binlogs}
    )
    data = data_artifact(full)
    workload = Workload(
        backup_id=full["backup_id"],
        full_object=setup.workdir / "repo" / data["key"],
        start_file=coords["file"],
        start_position=int(coords["position"]),
        start_gtid=coords["gtid"],
        last_gtid=last_gtid,
        binlogs=binlogs,
        binlog_bytes=sum(p.stat().st_size for p in binlogs) - int(coords["position"]),
        stored_bytes=stored,
        transactions=transactions,
        generate_seconds=generate_seconds,
        ship_seconds=ship_seconds,
        expected=expected,
    )
    print(
        f"  {transactions} transactions up to GTID {last_gtid} in {generate_seconds:.0f}s: "
        f"{workload.binlog_mib:.1f} MiB of binlog in {len(binlogs)} file(s), "
        f"{stored / 2**20:.1f} MiB stored, shipped in {ship_seconds:.1f}s; "
        f"rows {expected['rows']}",
        flush=True,
    )
    return workload


# --------------------------------------------------------------------------- processes


def run_watched(
    cmd: list[str],
    args: list[str],
    stdout_path: Path,
    log_path: Path,
) -> Timed:
    """``_common.run_backupctl``, sampling the peak RSS every 20 ms."""
    argv = [*cmd, "--log-format", "json", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    peak: int | None = None
    with open(log_path, "wb") as log_fh, open(stdout_path, "wb") as out_fh:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out_fh, stderr=log_fh, cwd=REPO_ROOT, env=env)
        try:
            while proc.poll() is None:
                if (sample := read_vmhwm_kb(proc.pid)) is not None:
                    peak = max(peak or 0, sample)
                if time.perf_counter() - started > RUN_TIMEOUT:
                    raise TimeoutError(f"{argv!r} still runs after {RUN_TIMEOUT:.0f}s")
                time.sleep(POLL_SECONDS)
            seconds = time.perf_counter() - started
        finally:
            stop_process(proc)
    tail = "" if proc.returncode == 0 else log_path.read_text(errors="replace")[-2000:]
    return Timed(seconds, peak, proc.returncode, tail)


# --------------------------------------------------------------------------- the two runs


def recovery_instance(setup: Setup, datadir: Path, name: str) -> MariaDBInstance:
    """A server on ``datadir`` started like backupctl's recovery instance."""
    return MariaDBInstance.for_datadir(
        datadir,
        setup.workdir / "run" / name,
        networking=False,
        binlog=False,
        buffer_pool=setup.recovery_buffer_pool,
        extra_args=RECOVERY_ARGS,
    )


def prepare_golden(setup: Setup, workload: Workload) -> None:
    """Extract and prepare the full backup once, outside any timing (as backupctl does)."""
    with open(setup.logs / "golden.log", "wb") as log_fh:
        extract(workload.full_object, setup.golden, log_fh)
        check_run(["mariabackup", "--prepare", f"--target-dir={setup.golden}"], log_fh)


def check_replayed(setup: Setup, datadir: Path, name: str, workload: Workload) -> None:
    """Outside timing: the replayed tables equal the source's (checksums, row counts)."""
    instance = recovery_instance(setup, datadir, f"check-{name}")
    try:
        instance.start(timeout=600)
        state = table_state(instance)
    finally:
        instance.stop(timeout=600)
    if state != workload.expected:
        raise RuntimeError(f"{name}: replayed tables differ from the source: {state}")


def run_raw(setup: Setup, workload: Workload, repetition: int) -> Run:
    """Time ``mariadb-binlog | mariadb`` once, into a server on a copy of the prepared
    backup; copying and starting it are outside the timing."""
    name = f"raw-{repetition}"
    datadir = setup.restores / name
    with open(setup.logs / f"{name}.log", "wb") as log_fh:
        check_run(["cp", "-a", str(setup.golden), str(datadir)], log_fh)
        instance = recovery_instance(setup, datadir, name)
        try:
            instance.start(timeout=600)
            os.sync()
            seconds = pipe(
                [
                    "mariadb-binlog",
                    "--no-defaults",
                    f"--start-position={workload.start_position}",
                    *map(str, workload.binlogs),
                ],
                [
                    "mariadb",
                    "--no-defaults",
                    f"--socket={instance.socket}",
                    "-uroot",
                    "--binary-mode",
                ],
                log_fh,
            )
        finally:
            instance.stop(timeout=600)
    check_replayed(setup, datadir, name, workload)
    shutil.rmtree(datadir)
    return Run("raw", repetition, seconds, seconds)


def run_backupctl_replay(setup: Setup, workload: Workload, repetition: int) -> Run:
    """Time ``backupctl restore --to-gtid LAST --target-datadir DIR --yes --json`` once.

    The replay figure is the report's ``replay-binlogs`` step.
    """
    name = f"backupctl-{repetition}"
    datadir = setup.restores / name
    report_path, log_path = setup.logs / f"{name}.json", setup.logs / f"{name}.log"
    args = setup.backupctl_args(
        "restore",
        POLICY_NAME,
        "--to-gtid",
        workload.last_gtid,
        "--target-datadir",
        str(datadir),
        "--yes",
        "--json",
    )
    timed = run_watched(setup.backupctl_cmd, args, report_path, log_path)
    if timed.returncode != 0:
        raise RuntimeError(f"backupctl restore failed ({timed.returncode}):\n{timed.log_tail}")
    report = json.loads(report_path.read_text())
    if not report["passed"]:
        raise RuntimeError(f"backupctl restore did not pass: {report['error']}")
    steps = {s["name"]: float(s["seconds"]) for s in report["steps"]}
    check_replayed(setup, datadir, name, workload)
    shutil.rmtree(datadir)
    replay = steps["replay-binlogs"]
    return Run("backupctl", repetition, replay, timed.seconds, steps, timed.peak_rss_kb)


def bench(setup: Setup, target_mib: int, repeat: int, warmup: bool) -> Result:
    """Build the workload, then replay it with both tools, interleaved.

    Repetition ``i`` runs raw first when ``i`` is odd and backupctl first when even. An
    unmeasured warm-up pair (repetition 0) comes first.
    """
    print(f"binlog {target_mib} MiB:", flush=True)
    workload = build_workload(setup, target_mib)
    setup.instance.stop()  # idle from here on; keep its CPU and memory out of the runs
    prepare_golden(setup, workload)
    result = Result(workload)
    for rep, tool in interleaved(repeat, warmup):
        os.sync()
        load, others = os.getloadavg()[0], other_mariadbd(setup.workdir)
        if tool == "raw":
            run = run_raw(setup, workload, rep)
        else:
            run = run_backupctl_replay(setup, workload, rep)
        run.load_before, run.other_mariadbd = load, others
        result.runs.append(run)
        print_run(run, workload)
    return result


def print_run(run: Run, workload: Workload) -> None:
    detail = ""
    if run.tool == "backupctl":
        parts = f"restore {run.wall_seconds:.1f}s"
        if run.peak_rss_kb:
            parts += f", peak RSS {run.peak_rss_kb / 1024:.1f} MiB"
        detail = f" ({parts})"
    print(
        f"  {rep_label(run.repetition)} {run.tool:9s} replay {run.replay_seconds:7.2f}s"
        f" = {workload.binlog_mib / run.replay_seconds:5.1f} MiB/s{detail}"
        f" [load {run.load_before:.1f}, other mariadbd {run.other_mariadbd}]",
        flush=True,
    )


# --------------------------------------------------------------------------- report


def markdown_tables(r: Result) -> str:
    """The summary table and backupctl's step table, as Markdown."""
    s, w = r.summary(), r.workload
    lines = [
        "| binlog | raw replay median s (min-max) | raw MiB/s "
        "| backupctl replay-binlogs median s (min-max) | backupctl MiB/s | ratio "
        "| backupctl restore wall s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| {w.binlog_mib:.1f} MiB in {len(w.binlogs)} file(s), {w.transactions} transactions "
        f"({w.stored_bytes / 2**20:.1f} MiB stored) "
        f"| {s['raw_replay_median_s']:.2f} "
        f"({s['raw_replay_range_s'][0]:.2f}-{s['raw_replay_range_s'][1]:.2f}) "
        f"| {s['raw_mib_per_s']:.1f} "
        f"| {s['backupctl_replay_median_s']:.2f} "
        f"({s['backupctl_replay_range_s'][0]:.2f}-{s['backupctl_replay_range_s'][1]:.2f}) "
        f"| {s['backupctl_mib_per_s']:.1f} "
        f"| {s['ratio']:.3f} "
        f"| {fmt_seconds(s['backupctl_wall_median_s'])} |",
        "",
        "| backupctl step | what | median s |",
        "|---|---|---:|",
    ]
    for name, what in STEP_ROWS:
        lines.append(f"| {name} | {what} | {fmt_seconds(s['step_medians_s'].get(name))} |")
    lines += [
        "| **wall time** | the whole restore command "
        f"| {fmt_seconds(s['backupctl_wall_median_s'])} |",
    ]
    return "\n".join(lines)


def verdicts(r: Result) -> list[str]:
    s = r.summary()
    return [
        f"replay ratio <= {TARGET_RATIO}: {mark(r.ratio <= TARGET_RATIO)} ({r.ratio:.3f}; "
        f"{s['backupctl_mib_per_s']:.1f} vs {s['raw_mib_per_s']:.1f} MiB/s)",
        f"median ratio within a repetition: {s['pair_ratio_median']:.3f}"
        f" (per repetition: {', '.join(f'{x:.3f}' for x in s['pair_ratios'])}; for information)",
        f"backupctl restore wall time: {fmt_seconds(s['backupctl_wall_median_s'])} s, "
        f"peak RSS {s['backupctl_peak_rss_mb']:.1f} MiB (for information)",
    ]


def write_results(
    path: Path, args: argparse.Namespace, env: dict[str, Any], result: Result
) -> None:
    """Write every run and the summary as JSON to ``path``."""
    workload = asdict(result.workload)
    workload["full_object"] = str(result.workload.full_object)
    workload["binlogs"] = [p.name for p in result.workload.binlogs]
    write_results_doc(
        path,
        "replay",
        args,
        {"ratio": TARGET_RATIO},
        env,
        workload=workload,
        summary=result.summary(),
        runs=[asdict(run) for run in result.runs],
        verdicts=verdicts(result),
    )


@contextmanager
def scratch_filesystem(path: Path, size_mb: int | None) -> Iterator[None]:
    """With ``size_mb``: a tmpfs of that size on ``path``, the temporary directory of every
    process started in the block, unmounted whatever happens."""
    if not size_mb:
        yield
        return
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size_mb}m,mode=0700"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], check=False)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--binlog-mb", type=int, default=500, help="MiB of binlog to replay (default: 500)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per tool")
    add_warmup_arg(parser, "skip the unmeasured warm-up pair")
    add_run_args(
        parser,
        holds="the servers, repository and logs",
        results="replay",
        buffer_pool="innodb-buffer-pool-size of the source server",
    )
    parser.add_argument(
        "--recovery-buffer-pool",
        default="512M",
        help="innodb-buffer-pool-size of both replaying servers (the policy's"
        " restore.recovery_buffer_pool; default: 512M, backupctl's default)",
    )
    parser.add_argument(
        "--scratch-mb",
        type=int,
        default=None,
        help="put the temporary directory (the replay's scratch) on a tmpfs of this many"
        " MiB (needs root); default: no limit",
    )
    args = parser.parse_args(argv)
    if args.scratch_mb is not None and (args.scratch_mb < 16 or os.geteuid() != 0):
        parser.error("--scratch-mb needs at least 16 and root (it mounts a tmpfs)")
    if args.binlog_mb <= 0 or args.repeat < 1:
        parser.error("--binlog-mb needs a positive integer and --repeat at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir, json_out = begin(args, "replay")
    with workdir_cleanup(workdir, args.keep, "the MariaDB servers were stopped"):
        with (
            scratch_filesystem(workdir / "tmp", args.scratch_mb),
            bench_setup(
                workdir, args.buffer_pool, args.recovery_buffer_pool, default_backupctl_cmd()
            ) as setup,
        ):
            env = environment(setup.instance, setup.backupctl_cmd, workdir)
            env["mariadb_binlog"] = tool_version(["mariadb-binlog", "--version"])
            env["scratch_mb"] = args.scratch_mb
            result = bench(setup, args.binlog_mb, args.repeat, args.warmup)
        write_results(json_out, args, env, result)
    print_summary(markdown_tables(result), verdicts(result), json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
