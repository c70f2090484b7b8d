#!/usr/bin/env python3
"""Benchmark: ``backupctl backup`` of a MariaDB full backup against the raw pipeline.

The raw pipeline is what an operator would script by hand::

    mariabackup --backup --stream=mbstream ... | zstd -1 -T2 > file

Both run on the same generated database, several times each, interleaved (and in
alternating order) so that drift such as page-cache state or CPU frequency hits both
equally. Reported per database size: median wall time of each, their ratio (median
backupctl / median raw), backupctl's peak RSS (VmHWM of the backupctl Python process
only; mariabackup's memory is not counted), and raw/stored bytes of both outputs.

Run from the repository root::

    python3 bench/bench_full_backup.py --sizes 250,1000 --repeat 3

Needs root (or a user that may run ``mariadbd``), the Debian packages mariadb-server,
mariadb-backup and zstd, and the project's Python dependencies. A private ``mariadbd``
runs on a loopback port under the work directory and is always stopped at exit,
including on Ctrl-C and SIGTERM. Results go to ``bench/results/full-backup-<date>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import (  # first: it puts the repository root on sys.path
    POLICY_NAME,
    add_run_args,
    add_warmup_arg,
    base_policy,
    begin,
    bench_server,
    default_backupctl_cmd,
    environment,
    fill_database,
    fmt_range,
    fresh_dir,
    interleaved,
    manifest_window,
    mark,
    print_summary,
    raw_backup,
    rep_label,
    run_backupctl,
    workdir_cleanup,
    write_client_cnf,
    write_policy,
    write_results_doc,
)

from backupctl.drivers.mariadb.instance import MariaDBInstance

DATABASE = "bench"
TARGET_RATIO = 1.15
TARGET_RSS_MB = 150.0
FLAT_RSS_MB = 10.0  # "flat": peak RSS may grow at most this much from the smallest size


# --------------------------------------------------------------------------- data types


@dataclass
class Run:
    """One timed backup, by either tool."""

    tool: str  # "raw" or "backupctl"
    repetition: int  # 0 is the unmeasured warm-up
    seconds: float
    raw_bytes: int
    stored_bytes: int
    peak_rss_kb: int | None = None  # backupctl only
    in_process_seconds: float | None = None  # backupctl only: manifest finished - started


@dataclass
class SizeResult:
    """Every run at one database size, and their summary."""

    target_mb: int
    table_bytes: int
    runs: list[Run] = field(default_factory=list)

    def measured(self, tool: str) -> list[Run]:
        """Return the runs of ``tool`` without the warm-up."""
        return [r for r in self.runs if r.tool == tool and r.repetition > 0]

    def median_seconds(self, tool: str) -> float:
        return statistics.median(r.seconds for r in self.measured(tool))

    def seconds_range(self, tool: str) -> tuple[float, float]:
        """Return (fastest, slowest) measured wall time of ``tool``: the noise to expect."""
        times = [r.seconds for r in self.measured(tool)]
        return min(times), max(times)

    @property
    def ratio(self) -> float:
        return self.median_seconds("backupctl") / self.median_seconds("raw")

    @property
    def peak_rss_mb(self) -> float:
        """The largest VmHWM of backupctl over all its runs at this size, in MiB."""
        return max(r.peak_rss_kb or 0 for r in self.measured("backupctl")) / 1024

    def median_bytes(self, tool: str, attr: str) -> int:
        return int(statistics.median(getattr(r, attr) for r in self.measured(tool)))

    def fixed_overhead_seconds(self) -> float:
        """Median of backupctl's wall time outside the manifest's started..finished window.

        That is interpreter start, imports, policy loading, catalog update and exit:
        a cost per invocation that does not grow with the database.
        """
        return statistics.median(
            r.seconds - (r.in_process_seconds or 0.0) for r in self.measured("backupctl")
        )

    def summary(self) -> dict[str, Any]:
        in_process = [r.in_process_seconds or 0.0 for r in self.measured("backupctl")]
        return {
            "raw_median_s": round(self.median_seconds("raw"), 3),
            "raw_range_s": [round(t, 3) for t in self.seconds_range("raw")],
            "backupctl_median_s": round(self.median_seconds("backupctl"), 3),
            "backupctl_range_s": [round(t, 3) for t in self.seconds_range("backupctl")],
            "backupctl_in_process_median_s": round(statistics.median(in_process), 3),
            "backupctl_fixed_overhead_median_s": round(self.fixed_overhead_seconds(), 3),
            "ratio": round(self.ratio, 3),
            "backupctl_peak_rss_mb": round(self.peak_rss_mb, 1),
            "raw_raw_bytes": self.median_bytes("raw", "raw_bytes"),
            "raw_stored_bytes": self.median_bytes("raw", "stored_bytes"),
            "backupctl_raw_bytes": self.median_bytes("backupctl", "raw_bytes"),
            "backupctl_stored_bytes": self.median_bytes("backupctl", "stored_bytes"),
        }


@dataclass(frozen=True)
class Setup:
    """Where things are for one benchmark session."""

    workdir: Path
    instance: MariaDBInstance
    client_cnf: Path  # [client] option file for the raw mariabackup (0600)
    policy_dir: Path
    backupctl_cmd: list[str]
    raw_fsync: bool = False  # fsync the raw output inside the timing, as backupctl does


# --------------------------------------------------------------------------- set-up


@contextmanager
def bench_setup(
    workdir: Path, buffer_pool: str, backupctl_cmd: list[str], raw_fsync: bool = False
) -> Iterator[Setup]:
    """Start a private MariaDB with a backup user, write credentials and the policy.

    The server is stopped when the block exits, whatever the reason.
    """
    with bench_server(workdir, buffer_pool) as server:
        client_cnf = write_client_cnf(server)
        policy_dir = workdir / "policies"
        write_policy(policy_dir, base_policy(server, workdir / "out" / "repo"))
        yield Setup(workdir, server.instance, client_cnf, policy_dir, backupctl_cmd, raw_fsync)


# --------------------------------------------------------------------------- the two runs


def run_raw(setup: Setup, repetition: int) -> Run:
    """Time ``mariabackup --backup --stream=mbstream | zstd -1 -T2 > file`` once.

    With ``setup.raw_fsync`` the file is also fsynced before the clock stops, the
    durability backupctl pays for when it commits an artifact.
    """
    raw = fresh_dir(setup.workdir / "out") / "raw"
    raw.mkdir()
    target, log_path = raw / "backup.mbstream.zst", raw / "mariabackup.log"
    timed = raw_backup(
        setup.client_cnf, setup.instance.datadir, target, log_path, fsync=setup.raw_fsync
    )
    return Run("raw", repetition, *timed)


def run_backupctl_backup(setup: Setup, repetition: int) -> Run:
    """Time ``backupctl backup`` once (fresh repository and state dir) and sample its RSS."""
    out = fresh_dir(setup.workdir / "out")
    args = ["--policies", str(setup.policy_dir), "--state-dir", str(out / "state")]
    timed = run_backupctl(
        setup.backupctl_cmd,
        [*args, "backup", POLICY_NAME, "--json"],
        out / "manifest.json",
        out / "backupctl.log",
    )
    if timed.returncode != 0:
        raise RuntimeError(f"backupctl failed with exit {timed.returncode}:\n{timed.log_tail}")
    manifest = json.loads((out / "manifest.json").read_text())
    data = max(manifest["artifacts"], key=lambda a: a["raw_bytes"])  # the mbstream, not the log
    in_process = manifest_window(manifest)
    return Run(
        "backupctl",
        repetition,
        timed.seconds,
        data["raw_bytes"],
        data["stored_bytes"],
        timed.peak_rss_kb,
        in_process,
    )


def settle(setup: Setup) -> None:
    """Drop the outputs of the last run and flush dirty pages to disk (outside timing)."""
    shutil.rmtree(setup.workdir / "out", ignore_errors=True)
    os.sync()


def bench_size(setup: Setup, target_mb: int, repeat: int, warmup: bool) -> SizeResult:
    """Generate ``target_mb`` of data, then run both tools ``repeat`` times, interleaved.

    Repetition ``i`` runs raw first when ``i`` is odd and backupctl first when even, so
    that neither always follows the other. An unmeasured warm-up pair (repetition 0)
    fills the page cache first.
    """
    print(f"size {target_mb} MB:", flush=True)
    result = SizeResult(target_mb, fill_database(setup.instance, DATABASE, target_mb))
    runners = {"raw": run_raw, "backupctl": run_backupctl_backup}
    for rep, tool in interleaved(repeat, warmup):
        settle(setup)
        run = runners[tool](setup, rep)
        result.runs.append(run)
        rss = f", peak RSS {run.peak_rss_kb / 1024:.1f} MiB" if run.peak_rss_kb else ""
        print(f"  {rep_label(rep)} {tool:9s} {run.seconds:7.2f}s{rss}", flush=True)
    settle(setup)
    return result


# --------------------------------------------------------------------------- report


def markdown_table(results: list[SizeResult]) -> str:
    """Render the summary of each size as a Markdown table."""
    lines = [
        "| table data | raw median s (min-max) | backupctl median s (min-max) | ratio "
        "| backupctl peak RSS MiB "
        "| mbstream bytes raw / backupctl | stored bytes raw / backupctl "
        "| backupctl fixed overhead s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r.summary()
        lines.append(
            f"| {r.target_mb} MB ({r.table_bytes / 2**20:.0f} MiB of .ibd) "
            f"| {s['raw_median_s']:.2f} ({fmt_range(s['raw_range_s'])}) "
            f"| {s['backupctl_median_s']:.2f} ({fmt_range(s['backupctl_range_s'])}) "
            f"| {s['ratio']:.3f} "
            f"| {s['backupctl_peak_rss_mb']:.1f} "
            f"| {s['raw_raw_bytes']:,} / {s['backupctl_raw_bytes']:,} "
            f"| {s['raw_stored_bytes']:,} / {s['backupctl_stored_bytes']:,} "
            f"| {s['backupctl_fixed_overhead_median_s']:.2f} |"
        )
    return "\n".join(lines)


def verdicts(results: list[SizeResult]) -> list[str]:
    """Return one line per target from the issue: met or missed, with the numbers."""
    worst_ratio = max(r.ratio for r in results)
    worst_rss = max(r.peak_rss_mb for r in results)
    growth = max(r.peak_rss_mb for r in results) - min(r.peak_rss_mb for r in results)
    return [
        f"ratio <= {TARGET_RATIO}: {mark(worst_ratio <= TARGET_RATIO)} (worst {worst_ratio:.3f})",
        f"peak RSS < {TARGET_RSS_MB:.0f} MiB: {mark(worst_rss < TARGET_RSS_MB)} "
        f"(worst {worst_rss:.1f} MiB)",
        f"RSS flat across sizes (<= {FLAT_RSS_MB:.0f} MiB growth): "
        f"{mark(growth <= FLAT_RSS_MB)} (growth {growth:.1f} MiB)",
    ]


def write_results(
    path: Path, args: argparse.Namespace, env: dict[str, Any], results: list[SizeResult]
) -> None:
    """Write every run and the summaries as JSON to ``path``."""
    write_results_doc(
        path,
        "full-backup",
        args,
        {"ratio": TARGET_RATIO, "peak_rss_mb": TARGET_RSS_MB, "flat_rss_mb": FLAT_RSS_MB},
        env,
        sizes=[
            {
                "target_mb": r.target_mb,
                "table_bytes": r.table_bytes,
                "summary": r.summary(),
                "runs": [asdict(run) for run in r.runs],
            }
            for r in results
        ],
        verdicts=verdicts(results),
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="250,1000",
        help="comma-separated table data sizes in MB (default: 250,1000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per tool and size")
    add_warmup_arg(parser, "skip the unmeasured warm-up pair before each size")
    add_run_args(parser, holds="the server and outputs", results="full-backup")
    parser.add_argument(
        "--raw-fsync",
        action="store_true",
        help="fsync the raw pipeline's output inside its timing (backupctl"
        " fsyncs every artifact it commits)",
    )
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not args.sizes or min(args.sizes) <= 0 or args.repeat < 1:
        parser.error("--sizes needs positive integers and --repeat at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir, json_out = begin(args, "full-backup")
    results: list[SizeResult] = []
    with workdir_cleanup(workdir, args.keep, "the MariaDB server was stopped"):
        with bench_setup(
            workdir, args.buffer_pool, default_backupctl_cmd(), args.raw_fsync
        ) as setup:
            env = environment(setup.instance, setup.backupctl_cmd, workdir)
            for target_mb in args.sizes:
                results.append(bench_size(setup, target_mb, args.repeat, args.warmup))
        write_results(json_out, args, env, results)
    print_summary(markdown_table(results), verdicts(results), json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
