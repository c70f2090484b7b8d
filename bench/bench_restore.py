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
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import yaml
from _common import (  # first: it puts the repository root on sys.path
    POLICY_NAME,
    REPO_ROOT,
    RUN_TIMEOUT,
    base_policy,
    bench_server,
    default_backupctl_cmd,
    environment,
    fill_database,
    install_signal_handlers,
    make_workdir,
    print_summary,
    quiet_logging,
    run_backupctl,
    stop_process,
    workdir_cleanup,
)

from backupctl.drivers.mariadb.instance import MariaDBInstance

DATABASE = "shop"
MARKER = f"`{DATABASE}`.`bench_marker`"  # written before each run; a restore removes it
TARGET_RATIO = 1.2
# the steps both tools do; their sum gives the comparable-steps ratio
COMPARABLE = ("move-aside", "fetch-extract", "prepare", "move-into-place")
# what each row of the step table means, in backupctl's order; raw names its steps alike
STEP_ROWS = [
    ("stop-services", "stop.sh (the stop hook)"),
    ("ensure-stopped", "no process, socket or port left on the datadir"),
    ("move-aside", "rename the live datadir aside"),
    ("fetch-extract", "read + sha256 + zstd -d + mbstream -x"),
    ("prepare", "mariabackup --prepare"),
    ("move-into-place", "chown -R, chmod, rename staging into place"),
    ("start-recovery-instance", "private mariadbd on the restored datadir"),
    ("verify", "CHECK TABLE, tables vs manifest, row counts"),
    ("stop-recovery-instance", "shut the private mariadbd down"),
    ("start-services", "start.sh (the start hook; waits for a ping)"),
    ("health-check", "SELECT VERSION() over the policy's connection"),
]


# --------------------------------------------------------------------------- data types


@dataclass
class Run:
    """One timed in-place restore, by either tool."""

    tool: str  # "raw" or "backupctl"
    repetition: int  # 0 is the unmeasured warm-up
    seconds: float  # wall time
    steps: dict[str, float]  # backupctl: its report's step seconds; raw: timed here
    peak_rss_kb: int | None = None  # backupctl only
    load_before: float = 0.0  # 1-minute load average when the run started
    other_mariadbd: int = 0  # mariadbd processes on the machine that are not ours

    @property
    def comparable_seconds(self) -> float:
        return sum(self.steps.get(name, 0.0) for name in COMPARABLE)

    @property
    def outside_steps_seconds(self) -> float:
        """Wall time not in any step: start-up, catalog, plan, journal, report, exit."""
        return self.seconds - sum(self.steps.values())


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
    runs: list[Run] = field(default_factory=list)

    def measured(self, tool: str) -> list[Run]:
        """Return the runs of ``tool`` without the warm-up."""
        return [r for r in self.runs if r.tool == tool and r.repetition > 0]

    def median(self, tool: str, attr: str = "seconds") -> float:
        return float(statistics.median(getattr(r, attr) for r in self.measured(tool)))

    def span(self, tool: str) -> tuple[float, float]:
        """(fastest, slowest) measured wall time of ``tool``: the noise to expect."""
        times = [r.seconds for r in self.measured(tool)]
        return min(times), max(times)

    def step_median(self, tool: str, step: str) -> float | None:
        values = [r.steps[step] for r in self.measured(tool) if step in r.steps]
        return statistics.median(values) if values else None

    @property
    def ratio(self) -> float:
        return self.median("backupctl") / self.median("raw")

    @property
    def comparable_ratio(self) -> float:
        return self.median("backupctl", "comparable_seconds") / self.median(
            "raw", "comparable_seconds"
        )

    @property
    def peak_rss_mb(self) -> float:
        """The largest VmHWM of backupctl over its measured runs, in MiB."""
        return max(r.peak_rss_kb or 0 for r in self.measured("backupctl")) / 1024

    def summary(self) -> dict[str, Any]:
        steps = {
            tool: {
                name: round(m, 3)
                for name, _ in STEP_ROWS
                if (m := self.step_median(tool, name)) is not None
            }
            for tool in ("backupctl", "raw")
        }
        return {
            "raw_median_s": round(self.median("raw"), 3),
            "raw_range_s": [round(t, 3) for t in self.span("raw")],
            "backupctl_median_s": round(self.median("backupctl"), 3),
            "backupctl_range_s": [round(t, 3) for t in self.span("backupctl")],
            "ratio": round(self.ratio, 3),
            "raw_comparable_median_s": round(self.median("raw", "comparable_seconds"), 3),
            "backupctl_comparable_median_s": round(
                self.median("backupctl", "comparable_seconds"), 3
            ),
            "comparable_ratio": round(self.comparable_ratio, 3),
            "comparable_vs_raw_wall_ratio": round(
                self.median("backupctl", "comparable_seconds") / self.median("raw"), 3
            ),
            "backupctl_outside_steps_median_s": round(
                self.median("backupctl", "outside_steps_seconds"), 3
            ),
            "backupctl_peak_rss_mb": round(self.peak_rss_mb, 1),
            "step_medians_s": steps,
        }


@dataclass(frozen=True)
class Setup:
    """Where things are for one benchmark session."""

    workdir: Path
    instance: MariaDBInstance
    policy_dir: Path
    state_dir: Path  # backupctl's catalog, journals and restore reports
    logs: Path  # one log (and backupctl report) per run
    stop_hook: Path
    start_hook: Path
    backupctl_cmd: list[str]

    @property
    def live(self) -> Path:
        return self.instance.datadir

    @property
    def raw_staging(self) -> Path:
        return self.live.parent / f".{self.live.name}.raw-staging"

    @property
    def raw_aside(self) -> Path:
        return self.live.parent / f"{self.live.name}.raw-aside"

    def backupctl_args(self, *args: str) -> list[str]:
        return ["--policies", str(self.policy_dir), "--state-dir", str(self.state_dir), *args]


# --------------------------------------------------------------------------- set-up


def write_policy(setup_dir: Path, policy: dict[str, Any], stop: Path, start: Path) -> None:
    """Write the policy: the shared one plus restore hooks that stop/start the server."""
    policy["restore"] = {"stop": [str(stop)], "start": [str(start)], "health_timeout": "120s"}
    setup_dir.mkdir(parents=True, exist_ok=True)
    (setup_dir / f"{POLICY_NAME}.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))


@contextmanager
def bench_setup(workdir: Path, buffer_pool: str, backupctl_cmd: list[str]) -> Iterator[Setup]:
    """Start a private MariaDB with a backup user; write the hooks and the policy.

    The server (and whatever a hook or backupctl started on its datadir) is stopped when
    the block exits, whatever the reason.
    """
    with bench_server(workdir, buffer_pool) as server:
        stop, start = server.instance.write_service_hooks(workdir / "hooks")
        policy_dir = workdir / "policies"
        write_policy(policy_dir, base_policy(server, workdir / "repo"), stop, start)
        logs = workdir / "logs"
        logs.mkdir()
        yield Setup(
            workdir,
            server.instance,
            policy_dir,
            workdir / "state",
            logs,
            stop,
            start,
            backupctl_cmd,
        )


def take_backup(setup: Setup) -> Backup:
    """Take the one full backup (``backupctl backup --json``) that every run restores."""
    timed = run_backupctl(
        setup.backupctl_cmd,
        setup.backupctl_args("backup", POLICY_NAME, "--json"),
        setup.logs / "backup.json",
        setup.logs / "backup.log",
    )
    if timed.returncode != 0:
        raise RuntimeError(f"backupctl backup failed ({timed.returncode}):\n{timed.log_tail}")
    manifest = json.loads((setup.logs / "backup.json").read_text())
    data = next(a for a in manifest["artifacts"] if a["key"].endswith("/data.mbstream.zst"))
    path = setup.workdir / "repo" / POLICY_NAME / "full" / manifest["backup_id"]
    path = path / "data.mbstream.zst"
    if not path.is_file() or path.stat().st_size != data["stored_bytes"]:
        raise RuntimeError(f"{path} is not the object the manifest describes")
    return Backup(
        manifest["backup_id"], path, data["raw_bytes"], data["stored_bytes"], timed.seconds
    )


# --------------------------------------------------------------------------- the two runs


def _check(argv: list[str], log_fh: IO[bytes]) -> None:
    """Run ``argv`` with its output in the run's log; raise when it fails."""
    log_fh.write(f"$ {' '.join(argv)}\n".encode())
    log_fh.flush()
    rc = subprocess.run(argv, stdout=log_fh, stderr=log_fh, timeout=RUN_TIMEOUT).returncode
    if rc != 0:
        raise RuntimeError(f"{argv[0]} failed with exit {rc}; see {log_fh.name}")


def _extract(source: Path, staging: Path, log_fh: IO[bytes]) -> None:
    """``zstd -dc source | mbstream -x -C staging``."""
    staging.mkdir()
    zstd = subprocess.Popen(["zstd", "-dcq", str(source)], stdout=subprocess.PIPE, stderr=log_fh)
    try:
        mbstream = subprocess.Popen(
            ["mbstream", "-x", "-C", str(staging)], stdin=zstd.stdout, stderr=log_fh
        )
        assert zstd.stdout is not None
        zstd.stdout.close()  # mbstream holds the read end now
        try:
            mb_rc = mbstream.wait(RUN_TIMEOUT)
            zstd_rc = zstd.wait(RUN_TIMEOUT)
        finally:
            stop_process(mbstream)
    finally:
        stop_process(zstd)
    if zstd_rc != 0 or mb_rc != 0:
        raise RuntimeError(f"zstd -dc | mbstream -x failed ({zstd_rc}, {mb_rc})")


def run_raw(setup: Setup, backup: Backup, repetition: int) -> Run:
    """Time the operator's sequence once, step by step, from the first command to the last.

    The server is stopped after the backup is prepared (the downtime an operator would
    choose) and started again at the end; the start script returns once the server
    answers a ping, which stands in for backupctl's health check.
    """
    live, staging, aside = setup.live, setup.raw_staging, setup.raw_aside
    steps: dict[str, float] = {}

    @contextmanager
    def step(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        steps[name] = round(time.perf_counter() - started, 3)

    with open(setup.logs / f"raw-{repetition}.log", "wb") as log_fh:
        started = time.perf_counter()
        with step("fetch-extract"):
            _extract(backup.object_path, staging, log_fh)
        with step("prepare"):
            _check(["mariabackup", "--prepare", f"--target-dir={staging}"], log_fh)
        with step("stop-services"):
            _check([str(setup.stop_hook)], log_fh)
        with step("move-aside"):
            _check(["mv", str(live), str(aside)], log_fh)
        with step("move-into-place"):
            _check(["mv", str(staging), str(live)], log_fh)
            _check(["chown", "-R", f"--reference={aside}", str(live)], log_fh)
            _check(["chmod", f"--reference={aside}", str(live)], log_fh)
        with step("start-services"):
            _check([str(setup.start_hook)], log_fh)
        seconds = time.perf_counter() - started
    if "completed OK!" not in (setup.logs / f"raw-{repetition}.log").read_text(errors="replace"):
        raise RuntimeError(f"mariabackup --prepare did not complete OK (raw-{repetition}.log)")
    return Run("raw", repetition, seconds, steps)


def run_backupctl_restore(setup: Setup, repetition: int) -> Run:
    """Time ``backupctl restore POLICY --yes --json`` once and sample its RSS."""
    report_path = setup.logs / f"backupctl-{repetition}.json"
    timed = run_backupctl(
        setup.backupctl_cmd,
        setup.backupctl_args("restore", POLICY_NAME, "--yes", "--json"),
        report_path,
        setup.logs / f"backupctl-{repetition}.log",
    )
    if timed.returncode != 0:
        raise RuntimeError(f"backupctl restore failed ({timed.returncode}):\n{timed.log_tail}")
    report = json.loads(report_path.read_text())
    if not report["passed"]:
        raise RuntimeError(f"backupctl restore did not pass: {report['error']}")
    steps = {s["name"]: float(s["seconds"]) for s in report["steps"]}
    return Run("backupctl", repetition, timed.seconds, steps, timed.peak_rss_kb)


def other_mariadbd(workdir: Path) -> int:
    """Count mariadbd processes on the machine that this benchmark did not start."""
    mine = f"--datadir={workdir}/"
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if os.path.basename(args[0]) == "mariadbd" and not any(a.startswith(mine) for a in args):
            count += 1
    return count


def settle(setup: Setup) -> None:
    """Between runs, outside the timing: delete what the last run moved aside, leave a
    marker table a restore must remove, and flush dirty pages to disk."""
    parent = setup.live.parent
    for path in [
        *parent.glob(f"{setup.live.name}.aside-*"),  # backupctl's
        *parent.glob(f".{setup.live.name}.restore-*"),  # backupctl's staging, on a failure
        setup.raw_aside,
        setup.raw_staging,
    ]:
        shutil.rmtree(path, ignore_errors=True)
    if not setup.instance.is_running():
        raise RuntimeError("the server is not running before a restore")
    conn = setup.instance.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE OR REPLACE TABLE {MARKER} (id INT PRIMARY KEY)")
    finally:
        conn.close()
    os.sync()


def check_restored(setup: Setup, tool: str, tables: int) -> None:
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


def bench(setup: Setup, target_mb: int, repeat: int, warmup: bool) -> Result:
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
    for rep in range(0 if warmup else 1, repeat + 1):
        order = ["raw", "backupctl"] if rep % 2 else ["backupctl", "raw"]
        for tool in order:
            settle(setup)
            load, others = os.getloadavg()[0], other_mariadbd(setup.workdir)
            if tool == "raw":
                run = run_raw(setup, backup, rep)
            else:
                run = run_backupctl_restore(setup, rep)
            run.load_before, run.other_mariadbd = load, others
            check_restored(setup, tool, tables)
            result.runs.append(run)
            label = "warm-up" if rep == 0 else f"rep {rep}"
            busiest = sorted(run.steps.items(), key=lambda kv: -kv[1])[:4]
            detail = ", ".join(f"{name} {sec:.1f}" for name, sec in busiest)
            rss = f", peak RSS {run.peak_rss_kb / 1024:.1f} MiB" if run.peak_rss_kb else ""
            print(
                f"  {label} {tool:9s} {run.seconds:7.2f}s ({detail}){rss}"
                f" [load {load:.1f}, other mariadbd {others}]",
                flush=True,
            )
    settle(setup)
    return result


# --------------------------------------------------------------------------- report


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown_tables(r: Result) -> str:
    """The summary table and the per-step table, as Markdown."""
    s = r.summary()
    lines = [
        "| table data | mbstream / stored bytes | raw median s (min-max) "
        "| backupctl median s (min-max) | ratio | comparable-steps ratio "
        "| backupctl peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| {r.target_mb} MB ({r.table_bytes / 2**20:.0f} MiB of .ibd) "
        f"| {r.backup.raw_bytes:,} / {r.backup.stored_bytes:,} "
        f"| {s['raw_median_s']:.2f} ({s['raw_range_s'][0]:.2f}-{s['raw_range_s'][1]:.2f}) "
        f"| {s['backupctl_median_s']:.2f} "
        f"({s['backupctl_range_s'][0]:.2f}-{s['backupctl_range_s'][1]:.2f}) "
        f"| {s['ratio']:.3f} "
        f"| {s['comparable_ratio']:.3f} "
        f"({s['backupctl_comparable_median_s']:.2f} / {s['raw_comparable_median_s']:.2f}) "
        f"| {s['backupctl_peak_rss_mb']:.1f} |",
        "",
        "| step | what | backupctl median s | raw median s |",
        "|---|---|---:|---:|",
    ]
    medians = s["step_medians_s"]
    for name, what in STEP_ROWS:
        lines.append(
            f"| {name} | {what} | {_s(medians['backupctl'].get(name))} "
            f"| {_s(medians['raw'].get(name))} |"
        )
    lines += [
        f"| (outside the steps) | interpreter start-up, imports, catalog, plan, journal, "
        f"report, exit | {s['backupctl_outside_steps_median_s']:.2f} | - |",
        f"| **comparable steps** | {' + '.join(COMPARABLE)} "
        f"| {s['backupctl_comparable_median_s']:.2f} | {s['raw_comparable_median_s']:.2f} |",
        f"| **wall time** | | {s['backupctl_median_s']:.2f} | {s['raw_median_s']:.2f} |",
    ]
    return "\n".join(lines)


def verdicts(r: Result) -> list[str]:
    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

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
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = asdict(result.backup)
    backup["object_path"] = str(result.backup.object_path)
    doc = {
        "benchmark": "restore",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "arguments": {
            "size": args.size,
            "repeat": args.repeat,
            "warmup": args.warmup,
            "buffer_pool": args.buffer_pool,
        },
        "targets": {"ratio": TARGET_RATIO},
        "environment": env,
        "target_mb": result.target_mb,
        "table_bytes": result.table_bytes,
        "backup": backup,
        "summary": result.summary(),
        "runs": [
            {
                **asdict(run),
                "comparable_seconds": round(run.comparable_seconds, 3),
                "outside_steps_seconds": round(run.outside_steps_seconds, 3),
            }
            for run in result.runs
        ],
        "verdicts": verdicts(result),
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="table data in MB (default: 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per tool")
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the unmeasured warm-up pair",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the server, repository and logs live (default: a new dir in /tmp);"
        " must not exist yet or be empty",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--buffer-pool", default="256M", help="innodb-buffer-pool-size")
    parser.add_argument(
        "--json-out",
        type=Path,
        default=None,
        help="results file (default: bench/results/restore-<date>.json)",
    )
    args = parser.parse_args(argv)
    if args.size <= 0 or args.repeat < 1:
        parser.error("--size needs a positive integer and --repeat at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logging()
    install_signal_handlers()
    workdir = make_workdir(args.workdir, "bench-restore-")
    stamp = datetime.now().strftime("%Y-%m-%d-%H%M")
    json_out = args.json_out or REPO_ROOT / "bench" / "results" / f"restore-{stamp}.json"
    with workdir_cleanup(workdir, args.keep, "the MariaDB server was stopped"):
        with bench_setup(workdir, args.buffer_pool, default_backupctl_cmd()) as setup:
            env = environment(setup.instance, setup.backupctl_cmd, workdir)
            print(f"MariaDB {env['mariadb']}, {env['cpus']} CPUs, workdir {workdir}", flush=True)
            result = bench(setup, args.size, args.repeat, args.warmup)
        write_results(json_out, args, env, result)
    print_summary(markdown_tables(result), verdicts(result), json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
