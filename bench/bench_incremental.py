#!/usr/bin/env python3
"""Benchmark: MariaDB incremental backups and the restore of a chain, against raw tools.

Two measurements on the same generated database, after about 2% of its rows (a
contiguous range of the most recent rows of each table) were updated since the full:

1. **Incremental backup.** ``backupctl backup POLICY --type incremental --json`` against
   the pipeline an operator would script by hand, with the same ``--incremental-lsn`` (the
   full's to_lsn, which backupctl uses too)::

       mariabackup --backup --stream=mbstream --incremental-lsn=N ... | zstd -1 -T2 > file

   The full is taken once. Every backupctl incremental builds on it: the incremental's
   directory is deleted from the repository after each run (backupctl forgets it at the
   start of the next run), and each manifest is checked to name the full as its parent.
   Reported: stored bytes of the full and of the incremental and their ratio, the median
   wall time of each tool and their ratio.

2. **Restore of a chain.** The chain full -> incremental -> incremental -> incremental
   (an update of ~2% of the rows and an InnoDB checkpoint before each incremental) is
   restored in place by ``backupctl restore POLICY --yes --json`` and by the raw sequence
   (``_restore_common``: extract and prepare the full, extract and
   ``--prepare --incremental-dir`` each incremental, then the same stop/start hooks and
   moves as ``bench_restore.py``) from the very objects backupctl stored. After every
   restore the tables must have the CHECKSUM TABLE values recorded right after the last
   incremental. Reported: median wall time of each and their ratio, the ratio of the
   comparable steps, the median of every step, and backupctl's peak RSS.

Both tools run several times each, interleaved and in alternating order. InnoDB on an
idle throwaway server does not checkpoint by itself, and mariabackup's to_lsn is the
checkpoint at the start of the backup, so the benchmark has the server flush and
checkpoint (``ThrowawayServer.checkpoint``) before each backup of the chain.

Run from the repository root (as root, with what ``bench_restore.py`` needs; results go
to ``bench/results/incremental-<date>.json``)::

    .venv/bin/python bench/bench_incremental.py --size 1200 --repeat 3

Every ``mariadbd`` on a datadir under the work directory is stopped at exit, including
on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import (  # first: it puts the repository root on sys.path
    Timed,
    add_run_args,
    add_warmup_arg,
    begin,
    data_artifact,
    default_backupctl_cmd,
    environment,
    fill_database,
    fmt_range,
    fresh_dir,
    interleaved,
    manifest_window,
    mark,
    median_of,
    peak_rss_mb,
    print_summary,
    raw_backup,
    rep_label,
    run_backupctl,
    span,
    tool_ratio,
    workdir_cleanup,
    write_client_cnf,
    write_results_doc,
)
from _restore_common import (
    APPLY,
    CLOSING_STEPS,
    COMPARABLE,
    STEPS,
    RestoreRun,
    RestoreSetup,
    add_verify_level_arg,
    backupctl_backup,
    bench_restores,
    restore_bench_setup,
    restore_summary,
    restore_table,
    run_backupctl_restore,
    run_raw_restore,
    step_table,
)

from backupctl.demo.server import ThrowawayServer, checksum_tables

DATABASE = "shop"
MARKER = f"`{DATABASE}`.`bench_marker`"  # written before each restore; a restore removes it
TARGET_BYTES_SHARE = 0.05  # incremental stored bytes / full stored bytes
TARGET_BACKUP_RATIO = 1.15  # backupctl incremental backup / raw incremental backup
TARGET_RESTORE_RATIO = 1.2  # backupctl restore of the chain / raw restore of the chain
CHECKPOINT_TIMEOUT = 300.0  # seconds InnoDB may take to flush and checkpoint on a busy VM
#: what one round of changes updates: the most recent ``--update-pct`` % of each table's
#: rows (ids are 1..rows), in columns without an index and of a fixed size, so the rows
#: change in place. A page-level incremental holds every page touched: updates spread
#: evenly over a table would touch every page, recent rows are clustered, as in service.
UPDATES = (
    ("order_items", "qty = qty + 1"),
    ("orders", "total = total + 1"),
    ("customers", "country = IF(country = 'DE', 'FR', 'DE')"),
)


def step_rows(incrementals: int) -> list[tuple[str, str]]:
    """What each row of the restore step table means, in backupctl's order."""
    return [
        ("check-backup", STEPS["check-backup"]),
        ("fetch-extract", f"the full: {STEPS['fetch-extract']}"),
        ("prepare", f"{STEPS['prepare']} of the full"),
        *(
            (f"{APPLY}{n}", f"incremental {n}: extract beside + --prepare --incremental-dir")
            for n in range(1, incrementals + 1)
        ),
        *(
            (name, STEPS[name])
            for name in ("stop-services", "ensure-stopped", "move-aside", "move-into-place")
        ),
        *((name, STEPS[name]) for name in CLOSING_STEPS),
    ]


# --------------------------------------------------------------------------- data types


@dataclass
class Link:
    """One backup backupctl stored: the full, or an incremental of the chain."""

    kind: str  # "full" or "incremental"
    backup_id: str
    object_path: Path  # <repo>/<policy>/<kind>/<id>/data.mbstream.zst
    raw_bytes: int  # mbstream bytes of the data object
    stored_bytes: int  # compressed bytes of the data object
    manifest_stored_bytes: int  # every artifact (the data object and mariabackup's log)
    seconds: float  # how long ``backupctl backup`` took
    to_lsn: int
    parent: str | None = None  # incrementals only
    incremental_lsn: int | None = None  # incrementals only


@dataclass
class BackupRun:
    """One timed incremental backup, by either tool."""

    tool: str  # "raw" or "backupctl"
    repetition: int  # 0 is the unmeasured warm-up
    seconds: float  # wall time
    raw_bytes: int  # mbstream bytes
    stored_bytes: int  # the data object (raw: the file)
    manifest_stored_bytes: int | None = None  # backupctl: every artifact
    peak_rss_kb: int | None = None  # backupctl only
    in_process_seconds: float | None = None  # backupctl only: manifest finished - started
    load_before: float = 0.0  # 1-minute load average when the run started

    @property
    def outside_seconds(self) -> float:
        """backupctl: wall time outside the manifest window (start-up, choosing the parent,
        catalog, exit)."""
        return self.seconds - (self.in_process_seconds or 0.0)


@dataclass
class Result:
    """Every run of both measurements, and their summaries."""

    target_mb: int
    table_bytes: int
    table_rows: int  # rows of the updated tables
    updated_rows: int  # rows one round of changes updates
    full: Link
    startup_seconds: list[float] = field(default_factory=list)  # ``backupctl --version``
    backup_runs: list[BackupRun] = field(default_factory=list)
    chain: list[Link] = field(default_factory=list)  # the incrementals, oldest first
    restore_runs: list[RestoreRun] = field(default_factory=list)

    # ------------------------------------------------------------------ backup

    @property
    def incremental_stored_bytes(self) -> int:
        """Median stored bytes of backupctl's incremental (every artifact of its manifest)."""
        return int(median_of(self.backup_runs, "backupctl", "manifest_stored_bytes"))

    @property
    def bytes_share(self) -> float:
        return self.incremental_stored_bytes / self.full.manifest_stored_bytes

    @property
    def backup_ratio(self) -> float:
        return tool_ratio(self.backup_runs)

    def backup_summary(self) -> dict[str, Any]:
        runs = self.backup_runs
        in_process = median_of(runs, "backupctl", "in_process_seconds")
        return {
            "full_raw_bytes": self.full.raw_bytes,
            "full_stored_bytes": self.full.manifest_stored_bytes,
            "full_data_stored_bytes": self.full.stored_bytes,
            "full_backup_s": round(self.full.seconds, 3),
            "backupctl_incremental_stored_bytes": self.incremental_stored_bytes,
            "backupctl_incremental_data_stored_bytes": int(
                median_of(runs, "backupctl", "stored_bytes")
            ),
            "backupctl_incremental_raw_bytes": int(median_of(runs, "backupctl", "raw_bytes")),
            "raw_incremental_stored_bytes": int(median_of(runs, "raw", "stored_bytes")),
            "raw_incremental_raw_bytes": int(median_of(runs, "raw", "raw_bytes")),
            "bytes_share": round(self.bytes_share, 4),
            "raw_median_s": round(median_of(runs, "raw"), 3),
            "raw_range_s": span(runs, "raw"),
            "backupctl_median_s": round(median_of(runs, "backupctl"), 3),
            "backupctl_range_s": span(runs, "backupctl"),
            "ratio": round(self.backup_ratio, 3),
            "backupctl_in_process_median_s": round(in_process, 3),
            "backupctl_outside_median_s": round(median_of(runs, "backupctl", "outside_seconds"), 3),
            "backupctl_in_process_vs_raw_ratio": round(in_process / median_of(runs, "raw"), 3),
            "backupctl_version_median_s": round(statistics.median(self.startup_seconds), 3),
            "backupctl_peak_rss_mb": round(peak_rss_mb(runs), 1),
        }

    # ------------------------------------------------------------------ restore

    @property
    def restore_ratio(self) -> float:
        return tool_ratio(self.restore_runs)

    @property
    def comparable_ratio(self) -> float:
        return tool_ratio(self.restore_runs, "comparable_seconds")

    def restore_summary(self) -> dict[str, Any]:
        names = [name for name, _ in step_rows(len(self.chain))]
        return restore_summary(self.restore_runs, names, apply=True)


@dataclass(frozen=True)
class Setup(RestoreSetup):
    """Where things are for one benchmark session."""

    client_cnf: Path  # [client] option file for the raw mariabackup (0600)

    @property
    def raw_out(self) -> Path:
        return self.workdir / "raw-out"


# --------------------------------------------------------------------------- set-up


@contextmanager
def bench_setup(
    workdir: Path, buffer_pool: str, backupctl_cmd: list[str], verify_level: str
) -> Iterator[Setup]:
    """Start a private MariaDB with a backup user; write credentials, hooks and the policy.

    The server (and whatever a hook or backupctl started on its datadir) is stopped when
    the block exits, whatever the reason.
    """
    with restore_bench_setup(workdir, buffer_pool, backupctl_cmd, verify_level) as (server, setup):
        yield Setup(**vars(setup), client_cnf=write_client_cnf(server))


def table_rows(instance: ThrowawayServer) -> dict[str, int]:
    """Rows of each updated table (its ids are 1..rows)."""
    conn = instance.connect()
    try:
        with conn.cursor() as cur:
            rows = {}
            for table, _ in UPDATES:
                cur.execute(f"SELECT MAX(id) FROM `{DATABASE}`.`{table}`")
                rows[table] = int(cur.fetchone()[0])
            return rows
    finally:
        conn.close()


def update_recent_rows(instance: ThrowawayServer, pct: float) -> int:
    """One round of changes: update the most recent ``pct`` % of the rows of each table in
    ``UPDATES``; return the number of rows updated."""
    conn = instance.connect()
    updated = 0
    try:
        with conn.cursor() as cur:
            for table, assignment in UPDATES:
                cur.execute(f"SELECT MAX(id) FROM `{DATABASE}`.`{table}`")
                top = int(cur.fetchone()[0])
                count = max(1, round(top * pct / 100))
                cur.execute(
                    f"UPDATE `{DATABASE}`.`{table}` SET {assignment} WHERE id > %s",
                    (top - count,),
                )
                updated += cur.rowcount
    finally:
        conn.close()
    return updated


def checksums(instance: ThrowawayServer) -> dict[str, int | None]:
    """CHECKSUM TABLE of every table of the database."""
    conn = instance.connect()
    try:
        return checksum_tables(conn, [DATABASE])
    finally:
        conn.close()


def take_backup(setup: Setup, kind: str, label: str) -> tuple[dict[str, Any], Link, Timed]:
    """Run ``backupctl backup POLICY --type KIND --json``; return its manifest, what it
    stored and its timing."""
    manifest, timed, path = backupctl_backup(setup, label, "--type", kind)
    if manifest["kind"] != kind:
        why = manifest["details"].get("instead_of_incremental")
        raise RuntimeError(f"backupctl took a {manifest['kind']} instead of a {kind}: {why}")
    data, details = data_artifact(manifest), manifest["details"]
    link = Link(
        manifest["kind"],
        manifest["backup_id"],
        path,
        data["raw_bytes"],
        data["stored_bytes"],
        manifest["stored_bytes"],
        timed.seconds,
        int(details["lsn"]["to_lsn"]),
        details.get("parent"),
        details.get("incremental_lsn"),
    )
    return manifest, link, timed


def check_parent(link: Link, parent: Link) -> None:
    """Raise unless the incremental ``link`` builds on ``parent`` from its to_lsn."""
    if link.parent != parent.backup_id or link.incremental_lsn != parent.to_lsn:
        raise RuntimeError(
            f"incremental {link.backup_id} builds on {link.parent} from LSN "
            f"{link.incremental_lsn}, not on {parent.backup_id} from {parent.to_lsn}"
        )


def startup_seconds(setup: Setup, runs: int = 3) -> list[float]:
    """Wall times of ``backupctl --version``: interpreter start-up, imports and exit, the
    cost every invocation pays before and after its work (for the analysis)."""
    times = []
    for n in range(runs):
        timed = run_backupctl(
            setup.backupctl_cmd,
            ["--version"],
            setup.logs / f"version-{n}.out",
            setup.logs / f"version-{n}.log",
        )
        if timed.returncode != 0:
            raise RuntimeError(f"backupctl --version failed ({timed.returncode})")
        times.append(round(timed.seconds, 3))
    return times


# --------------------------------------------------------------------------- backups


def run_raw_backup(setup: Setup, lsn: int, repetition: int) -> BackupRun:
    """Time ``mariabackup --backup --stream=mbstream --incremental-lsn=LSN | zstd -1 -T2 >
    file`` once."""
    target = fresh_dir(setup.raw_out) / "incremental.mbstream.zst"
    log_path = setup.logs / f"raw-backup-{repetition}.log"
    lsn_option = f"--incremental-lsn={lsn}"
    return BackupRun(
        "raw", repetition, *raw_backup(setup.client_cnf, setup.live, target, log_path, lsn_option)
    )


def run_backupctl_backup(setup: Setup, full: Link, repetition: int) -> BackupRun:
    """Time ``backupctl backup POLICY --type incremental --json`` once, check it built on
    ``full``, then delete it from the repository so that the next run builds on ``full``
    again (backupctl forgets it when its next run syncs the catalog)."""
    manifest, link, timed = take_backup(setup, "incremental", f"backup-incremental-{repetition}")
    check_parent(link, full)
    shutil.rmtree(link.object_path.parent)
    return BackupRun(
        "backupctl",
        repetition,
        link.seconds,
        link.raw_bytes,
        link.stored_bytes,
        link.manifest_stored_bytes,
        timed.peak_rss_kb,
        manifest_window(manifest),
    )


def bench_backups(setup: Setup, result: Result, repeat: int, warmup: bool) -> None:
    """Both tools take the incremental of the same changes on the same full, interleaved
    (an unmeasured warm-up pair first)."""
    full = result.full
    runners: dict[str, Callable[[Setup, int], BackupRun]] = {
        "raw": lambda s, rep: run_raw_backup(s, full.to_lsn, rep),
        "backupctl": lambda s, rep: run_backupctl_backup(s, full, rep),
    }
    for rep, tool in interleaved(repeat, warmup):
        shutil.rmtree(setup.raw_out, ignore_errors=True)
        os.sync()
        load = os.getloadavg()[0]
        run = runners[tool](setup, rep)
        run.load_before = load
        result.backup_runs.append(run)
        extra = ""
        if run.peak_rss_kb:
            extra = (
                f", {run.in_process_seconds:.2f}s in the manifest window"
                f", peak RSS {run.peak_rss_kb / 1024:.1f} MiB"
            )
        print(
            f"  {rep_label(rep)} {tool:9s} {run.seconds:7.2f}s, {run.raw_bytes:,} mbstream "
            f"bytes, {run.stored_bytes:,} stored{extra} [load {load:.1f}]",
            flush=True,
        )
    shutil.rmtree(setup.raw_out, ignore_errors=True)


def build_chain(
    setup: Setup, result: Result, incrementals: int, pct: float
) -> dict[str, int | None]:
    """Take the chain's incrementals with backupctl: the first on the changes already
    made, each next one after another round of changes; every one after a checkpoint.
    Return the tables' checksums right after the last."""
    for number in range(1, incrementals + 1):
        if number > 1:
            update_recent_rows(setup.instance, pct)
        setup.instance.checkpoint(CHECKPOINT_TIMEOUT)
        _, link, _ = take_backup(setup, "incremental", f"chain-{number}")
        check_parent(link, result.chain[-1] if result.chain else result.full)
        result.chain.append(link)
        print(
            f"  incremental {number} {link.backup_id}: {link.raw_bytes:,} mbstream bytes, "
            f"{link.stored_bytes:,} stored, in {link.seconds:.1f}s",
            flush=True,
        )
    return checksums(setup.instance)


# --------------------------------------------------------------------------- restores


def check_restored(setup: Setup, tool: str, wanted: dict[str, int | None]) -> None:
    """After a run (outside the timing): the server runs on the last incremental's data,
    every table with the checksum recorded right after it, the marker gone."""
    got = checksums(setup.instance)
    if got != wanted:
        differ = sorted(
            name for name in set(got) | set(wanted) if got.get(name) != wanted.get(name)
        )
        raise RuntimeError(
            f"after the {tool} restore the tables differ from the last incremental: {differ} "
            f"(got {got}, wanted {wanted})"
        )


def bench_chain_restores(
    setup: Setup, result: Result, wanted: dict[str, int | None], repeat: int, warmup: bool
) -> None:
    """Restore the chain with both tools, interleaved, as the backups were."""
    full, chain = result.full.object_path, [link.object_path for link in result.chain]
    newest = result.chain[-1].backup_id
    result.restore_runs = bench_restores(
        setup,
        MARKER,
        {
            "raw": lambda rep: run_raw_restore(setup, full, chain, rep, f"raw-restore-{rep}"),
            "backupctl": lambda rep: run_backupctl_restore(
                setup, rep, f"backupctl-restore-{rep}", newest
            ),
        },
        lambda tool: check_restored(setup, tool, wanted),
        repeat,
        warmup,
    )


def bench(setup: Setup, args: argparse.Namespace) -> Result:
    """Generate the data, take the full, change ~pct % of the rows, then measure the
    incremental backups and the restores of the chain."""
    print(f"size {args.size} MB:", flush=True)
    table_bytes = fill_database(setup.instance, DATABASE, args.size)
    rows = sum(table_rows(setup.instance).values())
    setup.instance.checkpoint(CHECKPOINT_TIMEOUT)  # what the first incremental builds on
    _, full, _ = take_backup(setup, "full", "backup-full")
    print(
        f"  full {full.backup_id}: {full.raw_bytes:,} mbstream bytes, "
        f"{full.manifest_stored_bytes:,} stored, in {full.seconds:.1f}s (to_lsn {full.to_lsn})",
        flush=True,
    )
    updated = update_recent_rows(setup.instance, args.update_pct)
    print(f"  updated {updated:,} of {rows:,} rows ({100 * updated / rows:.2f}%)", flush=True)
    setup.instance.checkpoint(CHECKPOINT_TIMEOUT)
    result = Result(args.size, table_bytes, rows, updated, full)
    result.startup_seconds = startup_seconds(setup)
    print(
        "  backupctl --version: " + ", ".join(f"{t:.2f}s" for t in result.startup_seconds),
        flush=True,
    )
    print("incremental backups:", flush=True)
    bench_backups(setup, result, args.repeat, args.warmup)
    print(f"chain of {full.backup_id} + {args.incrementals} incrementals:", flush=True)
    wanted = build_chain(setup, result, args.incrementals, args.update_pct)
    print("restores of the chain:", flush=True)
    bench_chain_restores(setup, result, wanted, args.repeat, args.warmup)
    return result


# --------------------------------------------------------------------------- report


def markdown_tables(r: Result) -> str:
    """The bytes table, the backup time table, the restore table and its steps."""
    b, s = r.backup_summary(), r.restore_summary()
    full_stored = r.full.manifest_stored_bytes
    lines = [
        f"{r.target_mb} MB of table data ({r.table_bytes / 2**20:.0f} MiB of .ibd), "
        f"{r.updated_rows:,} of {r.table_rows:,} rows "
        f"({100 * r.updated_rows / r.table_rows:.2f}%) updated per round",
        "",
        "| backup | mbstream bytes | stored bytes | stored / full's |",
        "|---|---:|---:|---:|",
        f"| full (backupctl, once) | {r.full.raw_bytes:,} | {full_stored:,} | 1 |",
        f"| incremental, backupctl (median) | {b['backupctl_incremental_raw_bytes']:,} "
        f"| {b['backupctl_incremental_stored_bytes']:,} | {b['bytes_share']:.4f} |",
        f"| incremental, raw (median) | {b['raw_incremental_raw_bytes']:,} "
        f"| {b['raw_incremental_stored_bytes']:,} "
        f"| {b['raw_incremental_stored_bytes'] / full_stored:.4f} |",
        *(
            f"| chain incremental {n} (backupctl) | {link.raw_bytes:,} "
            f"| {link.manifest_stored_bytes:,} | {link.manifest_stored_bytes / full_stored:.4f} |"
            for n, link in enumerate(r.chain, start=1)
        ),
        "",
        "| incremental backup | raw median s (min-max) | backupctl median s (min-max) | ratio "
        "| backupctl inside / outside the manifest window s | inside / raw "
        "| backupctl --version s | backupctl peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| {b['raw_incremental_raw_bytes']:,} mbstream bytes "
        f"| {b['raw_median_s']:.2f} ({fmt_range(b['raw_range_s'])}) "
        f"| {b['backupctl_median_s']:.2f} ({fmt_range(b['backupctl_range_s'])}) "
        f"| {b['ratio']:.3f} "
        f"| {b['backupctl_in_process_median_s']:.2f} / {b['backupctl_outside_median_s']:.2f} "
        f"| {b['backupctl_in_process_vs_raw_ratio']:.3f} "
        f"| {b['backupctl_version_median_s']:.2f} "
        f"| {b['backupctl_peak_rss_mb']:.1f} |",
        "",
        *restore_table([(f"restore of full + {len(r.chain)} incrementals", "in place")], s),
        "",
        *step_table(s, step_rows(len(r.chain)), [*COMPARABLE, f"{APPLY}*"]),
    ]
    return "\n".join(lines)


def verdicts(r: Result) -> list[str]:
    """Return one line per target from the issue: met or missed, with the numbers."""
    b, s = r.backup_summary(), r.restore_summary()
    return [
        f"incremental stored bytes <= {TARGET_BYTES_SHARE:.0%} of the full's: "
        f"{mark(r.bytes_share <= TARGET_BYTES_SHARE)} ({r.incremental_stored_bytes:,} / "
        f"{r.full.manifest_stored_bytes:,} = {r.bytes_share:.4f})",
        f"incremental backup ratio <= {TARGET_BACKUP_RATIO}: "
        f"{mark(r.backup_ratio <= TARGET_BACKUP_RATIO)} ({r.backup_ratio:.3f})",
        f"incremental backup: backupctl {b['backupctl_in_process_median_s']:.2f}s inside the "
        f"manifest window ({b['backupctl_in_process_vs_raw_ratio']:.3f} of raw), "
        f"{b['backupctl_outside_median_s']:.2f}s outside it (start-up, choosing the parent, "
        f"catalog, exit; backupctl --version alone: {b['backupctl_version_median_s']:.2f}s)"
        " (for information)",
        f"restore of full + {len(r.chain)} incrementals ratio <= {TARGET_RESTORE_RATIO}: "
        f"{mark(r.restore_ratio <= TARGET_RESTORE_RATIO)} ({r.restore_ratio:.3f})",
        f"restore comparable-steps ratio: {r.comparable_ratio:.3f} against the same raw steps, "
        f"{s['comparable_vs_raw_wall_ratio']:.3f} against the whole raw sequence"
        " (for information)",
        f"backupctl peak RSS: backup {peak_rss_mb(r.backup_runs):.1f} MiB, restore "
        f"{peak_rss_mb(r.restore_runs):.1f} MiB (for information)",
    ]


def write_results(
    path: Path, args: argparse.Namespace, env: dict[str, Any], result: Result
) -> None:
    """Write every run and the summaries as JSON to ``path``."""

    def link(item: Link) -> dict[str, Any]:
        return {**asdict(item), "object_path": str(item.object_path)}

    write_results_doc(
        path,
        "incremental",
        args,
        {
            "bytes_share": TARGET_BYTES_SHARE,
            "backup_ratio": TARGET_BACKUP_RATIO,
            "restore_ratio": TARGET_RESTORE_RATIO,
        },
        env,
        target_mb=result.target_mb,
        table_bytes=result.table_bytes,
        table_rows=result.table_rows,
        updated_rows_per_round=result.updated_rows,
        backupctl_version_s=result.startup_seconds,
        full=link(result.full),
        chain=[link(item) for item in result.chain],
        backup_summary=result.backup_summary(),
        restore_summary=result.restore_summary(),
        backup_runs=[
            {**asdict(run), "outside_seconds": round(run.outside_seconds, 3)}
            for run in result.backup_runs
        ],
        restore_runs=[run.record(apply=True) for run in result.restore_runs],
        verdicts=verdicts(result),
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1200, help="table data in MB (default: 1200)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per tool")
    add_warmup_arg(parser, "skip the unmeasured warm-up pairs")
    parser.add_argument(
        "--update-pct",
        type=float,
        default=2.0,
        help="share of the most recent rows of each table updated per round (default: 2.0)",
    )
    parser.add_argument(
        "--incrementals",
        type=int,
        default=3,
        help="incrementals in the restored chain (default: 3)",
    )
    add_verify_level_arg(parser)
    add_run_args(parser, holds="the server, repository and logs", results="incremental")
    args = parser.parse_args(argv)
    if args.size <= 0 or args.repeat < 1 or args.incrementals < 1:
        parser.error("--size needs a positive integer, --repeat and --incrementals at least 1")
    if not 0 < args.update_pct <= 100:
        parser.error("--update-pct must be in (0, 100]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir, json_out = begin(args, "incremental")
    with workdir_cleanup(workdir, args.keep, "the MariaDB server was stopped"):
        with bench_setup(
            workdir, args.buffer_pool, default_backupctl_cmd(), args.verify_level
        ) as setup:
            env = environment(setup.instance, setup.backupctl_cmd, workdir)
            env["pythondontwritebytecode"] = os.environ.get("PYTHONDONTWRITEBYTECODE", "")
            env["pythonpycacheprefix"] = os.environ.get("PYTHONPYCACHEPREFIX", "")
            result = bench(setup, args)
        write_results(json_out, args, env, result)
    print_summary(markdown_tables(result), verdicts(result), json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
