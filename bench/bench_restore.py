#!/usr/bin/env python3
"""Benchmark: an in-place ``backupctl restore`` against the raw restore sequence.

The raw sequence is what an operator would script by hand, from the very object
backupctl stored (``<repo>/<policy>/full/<backup id>/data.mbstream.zst``)::

    zstd -dc data.mbstream.zst | mbstream -x -C STAGING
    mariabackup --prepare --target-dir=STAGING
    stop.sh; mv DATADIR DATADIR.raw-aside; mv STAGING DATADIR
    chown -R --reference=DATADIR.raw-aside DATADIR; start.sh

``stop.sh``/``start.sh`` stop and start the server like a service manager; backupctl
runs the same two scripts as its restore hooks. One backup is taken, then both tools
restore it several times each, interleaved and in alternating order. Reported: median
wall time of each and their ratio, the ratio of backupctl's comparable steps
(move-aside + fetch-extract + prepare + move-into-place) to the same raw steps, the
median of every step, and backupctl's peak RSS (VmHWM of its Python process only).

Run from the repository root::

    python3 bench/bench_restore.py --size 1000 --repeat 3

Needs root, the Debian packages mariadb-server, mariadb-backup, mariadb-client and
zstd, and the project's Python dependencies. The private ``mariadbd`` (and any server a
hook or backupctl started on its datadir) is stopped at exit, including on Ctrl-C and
SIGTERM. Results go to ``bench/results/restore-<date>.json``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import (  # first: it puts the repository root on sys.path
    add_run_args,
    add_warmup_arg,
    begin,
    data_artifact,
    default_backupctl_cmd,
    environment,
    fill_database,
    mark,
    peak_rss_mb,
    print_summary,
    tool_ratio,
    workdir_cleanup,
    write_results_doc,
)
from _restore_common import (
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

from backupctl.drivers.mariadb.instance import MariaDBInstance

DATABASE = "shop"
MARKER = f"`{DATABASE}`.`bench_marker`"  # written before each run; a restore removes it
TARGET_RATIO = 1.2
# the rows of the step table, in the order of backupctl's restore of a full when this
# benchmark was written; raw names its steps alike
STEP_ROWS = [
    (name, STEPS[name])
    for name in (
        "stop-services",
        "ensure-stopped",
        "move-aside",
        "fetch-extract",
        "prepare",
        "move-into-place",
        *CLOSING_STEPS,
    )
]


# --------------------------------------------------------------------------- data types


@dataclass
class Backup:
    """The one backup every run restores."""

    backup_id: str
    object_path: Path  # <repo>/<policy>/full/<id>/data.mbstream.zst
    raw_bytes: int  # mbstream bytes
    stored_bytes: int  # compressed bytes
    seconds: float  # how long ``backupctl backup`` took


@dataclass
class Result:
    """Every run, and their summary."""

    target_mb: int
    table_bytes: int
    backup: Backup
    runs: list[RestoreRun] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return tool_ratio(self.runs)

    @property
    def comparable_ratio(self) -> float:
        return tool_ratio(self.runs, "comparable_seconds")

    @property
    def peak_rss_mb(self) -> float:
        """The largest VmHWM of backupctl over its measured runs, in MiB."""
        return peak_rss_mb(self.runs)

    def summary(self) -> dict[str, Any]:
        return restore_summary(self.runs, [name for name, _ in STEP_ROWS])


# --------------------------------------------------------------------------- set-up


def take_backup(setup: RestoreSetup) -> Backup:
    """Take the one full backup (``backupctl backup --json``) that every run restores."""
    manifest, timed, path = backupctl_backup(setup, "backup")
    data = data_artifact(manifest)
    return Backup(
        manifest["backup_id"], path, data["raw_bytes"], data["stored_bytes"], timed.seconds
    )


# --------------------------------------------------------------------------- the runs


def check_restored(setup: RestoreSetup, tool: str, tables: int) -> None:
    """After a run (outside timing): the server runs on the backup's data, marker gone."""
    conn = setup.instance.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                (DATABASE,),
            )
            names = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    if "bench_marker" in names or len(names) != tables:
        raise RuntimeError(f"{tool} left {sorted(names)}: not the {tables} tables of the backup")


def count_tables(instance: MariaDBInstance) -> int:
    conn = instance.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                (DATABASE,),
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def bench(setup: RestoreSetup, target_mb: int, repeat: int, warmup: bool) -> Result:
    """Generate the data, take one backup, then restore it with both tools, interleaved.

    Repetition ``i`` runs raw first when ``i`` is odd and backupctl first when even. An
    unmeasured warm-up pair (repetition 0) comes first.
    """
    print(f"size {target_mb} MB:", flush=True)
    table_bytes = fill_database(setup.instance, DATABASE, target_mb)
    tables = count_tables(setup.instance)
    backup = take_backup(setup)
    print(
        f"  backup {backup.backup_id}: {backup.raw_bytes:,} mbstream bytes, "
        f"{backup.stored_bytes:,} stored, in {backup.seconds:.1f}s",
        flush=True,
    )
    result = Result(target_mb, table_bytes, backup)
    result.runs = bench_restores(
        setup,
        MARKER,
        {
            "raw": lambda rep: run_raw_restore(setup, backup.object_path, [], rep, f"raw-{rep}"),
            "backupctl": lambda rep: run_backupctl_restore(setup, rep, f"backupctl-{rep}"),
        },
        lambda tool: check_restored(setup, tool, tables),
        repeat,
        warmup,
    )
    return result


# --------------------------------------------------------------------------- report


def markdown_tables(r: Result) -> str:
    """The summary table and the per-step table, as Markdown."""
    s = r.summary()
    lead = [
        ("table data", f"{r.target_mb} MB ({r.table_bytes / 2**20:.0f} MiB of .ibd)"),
        ("mbstream / stored bytes", f"{r.backup.raw_bytes:,} / {r.backup.stored_bytes:,}"),
    ]
    return "\n".join([*restore_table(lead, s), "", *step_table(s, STEP_ROWS, COMPARABLE)])


def verdicts(r: Result) -> list[str]:
    return [
        f"ratio <= {TARGET_RATIO}: {mark(r.ratio <= TARGET_RATIO)} ({r.ratio:.3f})",
        f"comparable-steps ratio: {r.comparable_ratio:.3f} against the same raw steps, "
        f"{r.summary()['comparable_vs_raw_wall_ratio']:.3f} against the whole raw sequence"
        " (for information)",
        f"backupctl peak RSS: {r.peak_rss_mb:.1f} MiB (for information)",
    ]


def write_results(
    path: Path, args: argparse.Namespace, env: dict[str, Any], result: Result
) -> None:
    """Write every run and the summary as JSON to ``path``."""
    backup = asdict(result.backup)
    backup["object_path"] = str(result.backup.object_path)
    write_results_doc(
        path,
        "restore",
        args,
        {"ratio": TARGET_RATIO},
        env,
        target_mb=result.target_mb,
        table_bytes=result.table_bytes,
        backup=backup,
        summary=result.summary(),
        runs=[run.record() for run in result.runs],
        verdicts=verdicts(result),
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="table data in MB (default: 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per tool")
    add_warmup_arg(parser, "skip the unmeasured warm-up pair")
    add_verify_level_arg(parser)
    add_run_args(parser, holds="the server, repository and logs", results="restore")
    args = parser.parse_args(argv)
    if args.size <= 0 or args.repeat < 1:
        parser.error("--size needs a positive integer and --repeat at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir, json_out = begin(args, "restore")
    with workdir_cleanup(workdir, args.keep, "the MariaDB server was stopped"):
        cmd = default_backupctl_cmd()
        with restore_bench_setup(workdir, args.buffer_pool, cmd, args.verify_level) as (_, setup):
            env = environment(setup.instance, setup.backupctl_cmd, workdir)
            result = bench(setup, args.size, args.repeat, args.warmup)
        write_results(json_out, args, env, result)
    print_summary(markdown_tables(result), verdicts(result), json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
