"""Benchmark: retention decisions over 100,000 catalogued backups, and `backupctl list`
with 10,000 backups in the catalog.

Targets (issue #7): a prune decision pass under 2 s; `list` under 1 s.

    .venv/bin/python bench/bench_catalog.py [--decisions 100000] [--listed 10000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backupctl.catalog.index import Catalog
from backupctl.catalog.manifest import Artifact, Manifest
from backupctl.retention import chain_decisions

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def history(count: int) -> list[Manifest]:
    """A full every 24 backups, binlogs between, one every 15 minutes back in time."""
    items = []
    for n in range(count):
        finished = NOW - timedelta(minutes=15 * n)
        kind = "full" if n % 24 == 0 else "binlog"
        key = f"shop/{kind}/{finished:%Y%m%dT%H%M%SZ}-{n:06x}/data.zst"
        items.append(
            Manifest(
                backup_id=f"{finished:%Y%m%dT%H%M%SZ}-{n:06x}",
                policy="shop",
                driver="mariadb",
                kind=kind,
                started_at=finished - timedelta(minutes=1),
                finished_at=finished,
                artifacts=[
                    Artifact(name="data.zst", key=key, raw_bytes=1, stored_bytes=1, sha256="0")
                ],
                details={"binlog": {"file": "mysql-bin.000001", "position": 4}},
            )
        )
    return items


def time_decisions(count: int, repeat: int) -> list[float]:
    backups = history(count)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        chain_decisions(backups, "full", "binlog", timedelta(days=30), timedelta(days=7), NOW)
        runs.append(time.perf_counter() - start)
    return runs


def time_list(count: int, repeat: int, work: Path) -> list[float]:
    catalog = Catalog(work / "state" / "catalog.sqlite")
    catalog.replace_repository("file:///bench", history(count))
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "backupctl",
                "--state-dir",
                str(work / "state"),
                "--policies",
                str(work / "none"),
                "list",
                "--json",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        runs.append(time.perf_counter() - start)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--listed", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    decide = time_decisions(args.decisions, args.repeat)
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        (Path(tmp) / "none").mkdir()
        listed = time_list(args.listed, args.repeat, Path(tmp))
    d, l_ = statistics.median(decide), statistics.median(listed)
    print("| measure | median s | target | verdict |")
    print("|---|---:|---:|---|")
    for what, value, target in (
        (f"retention decisions, {args.decisions:,} backups", d, 2),
        (f"`backupctl list --json`, {args.listed:,} backups", l_, 1),
    ):
        print(f"| {what} | {value:.2f} | {target} | {'met' if value < target else 'MISSED'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
