"""What the in-place restore benchmarks share (``bench_restore.py``, ``bench_incremental.py``):
the set-up with stop/start hooks, the raw restore sequence, one ``backupctl restore``, the
interleaved runs, and their figures and tables.

The raw sequence is what an operator would script by hand, from the very objects backupctl
stored::

    zstd -dc full | mbstream -x -C STAGING; mariabackup --prepare --target-dir=STAGING
    for each incremental: zstd -dc incr | mbstream -x -C SIDE
        mariabackup --prepare --target-dir=STAGING --incremental-dir=SIDE
    stop.sh; mv DATADIR DATADIR.raw-aside; mv STAGING DATADIR
    chown -R --reference=DATADIR.raw-aside DATADIR; start.sh
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import (  # first: it puts the repository root on sys.path
    POLICY_NAME,
    BenchServer,
    Timed,
    base_policy,
    bench_server,
    check_run,
    data_artifact,
    extract,
    fmt_range,
    fmt_seconds,
    interleaved,
    measured,
    median_of,
    other_mariadbd,
    peak_rss_mb,
    rep_label,
    run_backupctl,
    span,
    tool_ratio,
    write_policy,
)

from backupctl.demo.server import ThrowawayServer

#: the steps both restores do, without the hooks (plus every apply-incremental-N)
COMPARABLE = ("move-aside", "fetch-extract", "prepare", "move-into-place")
APPLY = "apply-incremental-"
#: what each step of a restore means; the raw sequence names its steps alike
STEPS = {
    "check-backup": "every link's objects present, free space",
    "fetch-extract": "read + sha256 + zstd -d + mbstream -x",
    "prepare": "mariabackup --prepare",
    "stop-services": "stop.sh (the stop hook)",
    "ensure-stopped": "no process, socket or port left on the datadir",
    "move-aside": "rename the live datadir aside",
    "move-into-place": "chown -R, chmod, rename staging into place",
    "start-recovery-instance": "private mariadbd on the restored datadir",
    "verify": "the checks of restore.verify_level (--verify-level)",
    "stop-recovery-instance": "shut the private mariadbd down",
    "start-services": "start.sh (the start hook; waits for a ping)",
    "health-check": "SELECT VERSION() over the policy's connection",
}
#: backupctl's last steps of a restore in place, in its order
CLOSING_STEPS = (
    "start-recovery-instance",
    "verify",
    "stop-recovery-instance",
    "start-services",
    "health-check",
)


# --------------------------------------------------------------------------- data types


@dataclass
class RestoreRun:
    """One timed in-place restore, by either tool."""

    tool: str  # "raw" or "backupctl"
    repetition: int  # 0 is the unmeasured warm-up
    seconds: float  # wall time
    steps: dict[str, float]  # backupctl: its report's step seconds; raw: timed here
    peak_rss_kb: int | None = None  # backupctl only
    load_before: float = 0.0  # 1-minute load average when the run started
    other_mariadbd: int = 0  # mariadbd processes on the machine that are not ours

    @property
    def apply_seconds(self) -> float:
        return sum(sec for name, sec in self.steps.items() if name.startswith(APPLY))

    @property
    def comparable_seconds(self) -> float:
        return sum(self.steps.get(name, 0.0) for name in COMPARABLE) + self.apply_seconds

    @property
    def outside_steps_seconds(self) -> float:
        """Wall time not in any step: start-up, catalog, plan, journal, report, exit."""
        return self.seconds - sum(self.steps.values())

    def record(self, apply: bool = False) -> dict[str, Any]:
        """The run for the results file, with the derived figures (``apply_seconds`` too
        with ``apply``)."""
        derived = {"comparable_seconds": round(self.comparable_seconds, 3)}
        if apply:
            derived["apply_seconds"] = round(self.apply_seconds, 3)
        derived["outside_steps_seconds"] = round(self.outside_steps_seconds, 3)
        return {**asdict(self), **derived}


@dataclass(frozen=True)
class RestoreSetup:
    """Where things are for one benchmark session."""

    workdir: Path
    instance: ThrowawayServer
    policy_dir: Path
    state_dir: Path  # backupctl's catalog, journals and restore reports
    repo: Path
    logs: Path  # one log (and backupctl output) per run
    stop_hook: Path
    start_hook: Path
    backupctl_cmd: list[str]

    @property
    def live(self) -> Path:
        return self.instance.datadir

    @property
    def raw_staging(self) -> Path:
        return self.live.parent / f".{self.live.name}.raw-staging"

    def raw_side(self, number: int) -> Path:
        return self.live.parent / f".{self.live.name}.raw-incremental-{number}"

    @property
    def raw_aside(self) -> Path:
        return self.live.parent / f"{self.live.name}.raw-aside"

    def backupctl_args(self, *args: str) -> list[str]:
        return ["--policies", str(self.policy_dir), "--state-dir", str(self.state_dir), *args]


# --------------------------------------------------------------------------- set-up


def add_verify_level_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verify-level",
        choices=("quick", "standard", "full"),
        default="standard",
        help="backupctl's restore.verify_level (default: standard, as an incident restore)",
    )


@contextmanager
def restore_bench_setup(
    workdir: Path, buffer_pool: str, backupctl_cmd: list[str], verify_level: str
) -> Iterator[tuple[BenchServer, RestoreSetup]]:
    """Start a private MariaDB with a backup user; write the hooks and the policy (the
    shared one plus restore hooks that stop/start the server, and ``verify_level``).

    The server (and whatever a hook or backupctl started on its datadir) is stopped when
    the block exits, whatever the reason.
    """
    with bench_server(workdir, buffer_pool) as server:
        stop, start = server.instance.write_service_hooks(workdir / "hooks")
        repo = workdir / "repo"
        policy = base_policy(server, repo)
        policy["restore"] = {
            "stop": [str(stop)],
            "start": [str(start)],
            "health_timeout": "120s",
            "verify_level": verify_level,
        }
        write_policy(workdir / "policies", policy)
        logs = workdir / "logs"
        logs.mkdir()
        setup = RestoreSetup(
            workdir,
            server.instance,
            workdir / "policies",
            workdir / "state",
            repo,
            logs,
            stop,
            start,
            backupctl_cmd,
        )
        yield server, setup


def backupctl_backup(
    setup: RestoreSetup, label: str, *options: str
) -> tuple[dict[str, Any], Timed, Path]:
    """Run ``backupctl backup POLICY OPTIONS --json`` (output and log under ``label``);
    return its manifest, its timing and the data object, checked to be the one the
    manifest describes."""
    out = setup.logs / f"{label}.json"
    timed = run_backupctl(
        setup.backupctl_cmd,
        setup.backupctl_args("backup", POLICY_NAME, *options, "--json"),
        out,
        setup.logs / f"{label}.log",
    )
    if timed.returncode != 0:
        raise RuntimeError(f"backupctl backup failed ({timed.returncode}):\n{timed.log_tail}")
    manifest: dict[str, Any] = json.loads(out.read_text())
    data = data_artifact(manifest)
    path = setup.repo / data["key"]
    if not path.is_file() or path.stat().st_size != data["stored_bytes"]:
        raise RuntimeError(f"{path} is not the object the manifest describes")
    return manifest, timed, path


# --------------------------------------------------------------------------- the two runs


def run_raw_restore(
    setup: RestoreSetup, full: Path, incrementals: Sequence[Path], repetition: int, log: str
) -> RestoreRun:
    """Time the operator's sequence once, step by step, from the first command to the last.

    The full is extracted and prepared, each incremental extracted beside it and applied
    (``--prepare --incremental-dir``); only then is the server stopped (the downtime an
    operator would choose), the result moved into place and the server started again.
    The start script returns once the server answers a ping, which stands in for
    backupctl's health check. The extracted incrementals are removed by ``settle``,
    outside the timing. The log is ``logs/<log>.log``.
    """
    live, staging, aside = setup.live, setup.raw_staging, setup.raw_aside
    steps: dict[str, float] = {}

    @contextmanager
    def step(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        steps[name] = round(time.perf_counter() - started, 3)

    log_path = setup.logs / f"{log}.log"
    with open(log_path, "wb") as log_fh:
        started = time.perf_counter()
        with step("fetch-extract"):
            extract(full, staging, log_fh)
        with step("prepare"):
            check_run(["mariabackup", "--prepare", f"--target-dir={staging}"], log_fh)
        for number, incremental in enumerate(incrementals, start=1):
            side = setup.raw_side(number)
            with step(f"{APPLY}{number}"):
                extract(incremental, side, log_fh)
                check_run(
                    [
                        "mariabackup",
                        "--prepare",
                        f"--target-dir={staging}",
                        f"--incremental-dir={side}",
                    ],
                    log_fh,
                )
        with step("stop-services"):
            check_run([str(setup.stop_hook)], log_fh)
        with step("move-aside"):
            check_run(["mv", str(live), str(aside)], log_fh)
        with step("move-into-place"):
            check_run(["mv", str(staging), str(live)], log_fh)
            check_run(["chown", "-R", f"--reference={aside}", str(live)], log_fh)
            check_run(["chmod", f"--reference={aside}", str(live)], log_fh)
        with step("start-services"):
            check_run([str(setup.start_hook)], log_fh)
        seconds = time.perf_counter() - started
    prepared = log_path.read_text(errors="replace").count("completed OK!")
    if prepared != 1 + len(incrementals):
        raise RuntimeError(
            f"{prepared} mariabackup --prepare runs completed OK, not {1 + len(incrementals)}"
            f" ({log_path})"
        )
    return RestoreRun("raw", repetition, seconds, steps)


def run_backupctl_restore(
    setup: RestoreSetup, repetition: int, name: str, backup_id: str | None = None
) -> RestoreRun:
    """Time ``backupctl restore POLICY --yes --json`` once and sample its RSS; check it
    restored ``backup_id`` when one is given. Report and log are ``logs/<name>.{json,log}``."""
    report_path = setup.logs / f"{name}.json"
    timed = run_backupctl(
        setup.backupctl_cmd,
        setup.backupctl_args("restore", POLICY_NAME, "--yes", "--json"),
        report_path,
        setup.logs / f"{name}.log",
    )
    if timed.returncode != 0:
        raise RuntimeError(f"backupctl restore failed ({timed.returncode}):\n{timed.log_tail}")
    report = json.loads(report_path.read_text())
    if not report["passed"]:
        raise RuntimeError(f"backupctl restore did not pass: {report['error']}")
    restored = report["backup"]["backup_id"]
    if backup_id is not None and restored != backup_id:
        raise RuntimeError(f"backupctl restored {restored}, not {backup_id}")
    steps = {s["name"]: float(s["seconds"]) for s in report["steps"]}
    return RestoreRun("backupctl", repetition, timed.seconds, steps, timed.peak_rss_kb)


def settle(setup: RestoreSetup, marker: str) -> None:
    """Between runs, outside the timing: delete what the last run moved aside or left
    beside, leave a ``marker`` table a restore must remove, and flush dirty pages to disk."""
    parent, name = setup.live.parent, setup.live.name
    for path in [
        *parent.glob(f"{name}.aside-*"),  # backupctl's
        *parent.glob(f".{name}.restore-*"),  # backupctl's staging, on a failure
        *parent.glob(f".{name}.incremental-*"),  # backupctl's, on a failure
        *parent.glob(f".{name}.raw-incremental-*"),  # raw_side(N)
        setup.raw_aside,
        setup.raw_staging,
    ]:
        shutil.rmtree(path, ignore_errors=True)
    if not setup.instance.is_running():
        raise RuntimeError("the server is not running before a restore")
    conn = setup.instance.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE OR REPLACE TABLE {marker} (id INT PRIMARY KEY)")
    finally:
        conn.close()
    os.sync()


def bench_restores(
    setup: RestoreSetup,
    marker: str,
    runners: Mapping[str, Callable[[int], RestoreRun]],
    check: Callable[[str], None],
    repeat: int,
    warmup: bool,
) -> list[RestoreRun]:
    """Restore with both tools (``runners[tool](repetition)``), interleaved; ``check(tool)``
    after each run (outside the timing) that the server runs on the restored data."""
    runs = []
    for rep, tool in interleaved(repeat, warmup):
        settle(setup, marker)
        load, others = os.getloadavg()[0], other_mariadbd(setup.workdir)
        run = runners[tool](rep)
        run.load_before, run.other_mariadbd = load, others
        check(tool)
        runs.append(run)
        busiest = sorted(run.steps.items(), key=lambda kv: -kv[1])[:4]
        detail = ", ".join(f"{name} {sec:.1f}" for name, sec in busiest)
        rss = f", peak RSS {run.peak_rss_kb / 1024:.1f} MiB" if run.peak_rss_kb else ""
        print(
            f"  {rep_label(rep)} {tool:9s} {run.seconds:7.2f}s ({detail}){rss}"
            f" [load {load:.1f}, other mariadbd {others}]",
            flush=True,
        )
    settle(setup, marker)
    return runs


# --------------------------------------------------------------------------- figures


def step_median(runs: Sequence[RestoreRun], tool: str, step: str) -> float | None:
    values = [r.steps[step] for r in measured(runs, tool) if step in r.steps]
    return statistics.median(values) if values else None


def restore_summary(
    runs: Sequence[RestoreRun], steps: Iterable[str], apply: bool = False
) -> dict[str, Any]:
    """Medians, spans and ratios of the restores, and the median of each of ``steps`` per
    tool (with ``apply``, the apply-incremental steps' sums too)."""
    step_medians = {
        tool: {
            name: round(m, 3) for name in steps if (m := step_median(runs, tool, name)) is not None
        }
        for tool in ("backupctl", "raw")
    }
    summary = {
        "raw_median_s": round(median_of(runs, "raw"), 3),
        "raw_range_s": span(runs, "raw"),
        "backupctl_median_s": round(median_of(runs, "backupctl"), 3),
        "backupctl_range_s": span(runs, "backupctl"),
        "ratio": round(tool_ratio(runs), 3),
        "raw_comparable_median_s": round(median_of(runs, "raw", "comparable_seconds"), 3),
        "backupctl_comparable_median_s": round(
            median_of(runs, "backupctl", "comparable_seconds"), 3
        ),
        "comparable_ratio": round(tool_ratio(runs, "comparable_seconds"), 3),
        "comparable_vs_raw_wall_ratio": round(
            median_of(runs, "backupctl", "comparable_seconds") / median_of(runs, "raw"), 3
        ),
    }
    if apply:
        summary["raw_apply_median_s"] = round(median_of(runs, "raw", "apply_seconds"), 3)
        summary["backupctl_apply_median_s"] = round(
            median_of(runs, "backupctl", "apply_seconds"), 3
        )
    summary["backupctl_outside_steps_median_s"] = round(
        median_of(runs, "backupctl", "outside_steps_seconds"), 3
    )
    summary["backupctl_peak_rss_mb"] = round(peak_rss_mb(runs), 1)
    summary["step_medians_s"] = step_medians
    return summary


def restore_table(lead: Sequence[tuple[str, str]], s: dict[str, Any]) -> list[str]:
    """The Markdown summary table of the restores: the ``lead`` (header, cell) columns,
    then the wall times, their ratio, the comparable-steps ratio and the peak RSS."""
    return [
        "| "
        + " | ".join(header for header, _ in lead)
        + " | raw median s (min-max) | backupctl median s (min-max) | ratio "
        "| comparable-steps ratio | backupctl peak RSS MiB |",
        "|---|" + "---:|" * (len(lead) + 4),
        "| "
        + " | ".join(cell for _, cell in lead)
        + f" | {s['raw_median_s']:.2f} ({fmt_range(s['raw_range_s'])}) "
        f"| {s['backupctl_median_s']:.2f} ({fmt_range(s['backupctl_range_s'])}) "
        f"| {s['ratio']:.3f} "
        f"| {s['comparable_ratio']:.3f} "
        f"({s['backupctl_comparable_median_s']:.2f} / {s['raw_comparable_median_s']:.2f}) "
        f"| {s['backupctl_peak_rss_mb']:.1f} |",
    ]


def step_table(
    s: dict[str, Any], rows: Sequence[tuple[str, str]], comparable: Sequence[str]
) -> list[str]:
    """The Markdown table of the step medians of both tools, ``rows`` (name, what) first,
    then the time outside the steps, the ``comparable`` steps' sum and the wall time."""
    medians = s["step_medians_s"]
    return [
        "| step | what | backupctl median s | raw median s |",
        "|---|---|---:|---:|",
        *(
            f"| {name} | {what} | {fmt_seconds(medians['backupctl'].get(name))} "
            f"| {fmt_seconds(medians['raw'].get(name))} |"
            for name, what in rows
        ),
        f"| (outside the steps) | interpreter start-up, imports, catalog, plan, journal, "
        f"report, exit | {s['backupctl_outside_steps_median_s']:.2f} | - |",
        f"| **comparable steps** | {' + '.join(comparable)} "
        f"| {s['backupctl_comparable_median_s']:.2f} | {s['raw_comparable_median_s']:.2f} |",
        f"| **wall time** | | {s['backupctl_median_s']:.2f} | {s['raw_median_s']:.2f} |",
    ]
