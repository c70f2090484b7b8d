#!/usr/bin/env python3
"""Benchmark: backing up a new model version against a full copy of the model directory.

A model directory of ``--files`` weight files (default 20) totalling ``--size-mb`` MiB
(default 2048) of incompressible random bytes, plus a ``VERSION`` file, is backed up
with the ``model`` driver (``version_from: VERSION``, a ``file://`` repository on the
same filesystem). Then one weight file (about 100 MB at the defaults) is rewritten
with new random bytes, ``VERSION`` is bumped, and ``backupctl backup`` runs again. The
new version's wall time and the bytes it adds to the repository are compared with a
full copy of the directory::

    cp -r model copy

and with the first (full) backup. The issue's target: the new version costs **at most
10%** of the full copy's time and of its bytes.

Run from the repository root::

    python3 bench/bench_model_version.py --size-mb 2048 --repeat 3

Needs the project's Python dependencies and a little over 3x ``--size-mb`` free in the
work directory's filesystem (the model, one copy, the repository). The page cache is
not dropped: the model is read from memory by ``cp`` and by backupctl alike. Results
go to ``bench/results/model-version-<date>.json``.
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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from _common import (  # first: it puts the repository root on sys.path
    POLICY_NAME,
    REPO_ROOT,
    RUN_TIMEOUT,
    default_backupctl_cmd,
    git_describe,
    host_environment,
    install_signal_handlers,
    make_workdir,
    run_backupctl,
)

TARGET_RATIO = 0.10  # new version / full copy, for both time and bytes
WRITE_CHUNK = 4 << 20  # random bytes are generated and written 4 MiB at a time


# --------------------------------------------------------------------------- data types


@dataclass
class Run:
    """One measured (or warm-up) operation."""

    op: str  # "cp", "first-backup", "new-version", "unchanged"
    repetition: int  # 0 = warm-up
    seconds: float  # wall time, spawn to exit
    bytes_written: int  # cp: bytes of the copy; backupctl: growth of the repository
    peak_rss_kb: int | None = None  # backupctl only: VmHWM of its Python process
    fsync_seconds: float | None = None  # cp only: ``sync FILES...`` of the copy, after it
    in_process_seconds: float | None = None  # manifest started_at..finished_at
    new_bytes: int | None = None  # manifest details: raw bytes of the blobs it stored
    new_stored_bytes: int | None = None
    version: str | None = None
    changed_file: str | None = None
    model_cached: float | None = None  # share of the model in the page cache before the run
    load1: float = 0.0  # 1-minute load average before the run (the machine is shared)
    note: str = ""


@dataclass
class Model:
    """The generated model directory."""

    root: Path
    shards: list[str]  # file names of the weight files
    shard_bytes: int
    version: int = 1

    @property
    def total_bytes(self) -> int:
        return dir_bytes(self.root)


@dataclass
class Setup:
    workdir: Path
    model: Model
    policy_dir: Path
    repo: Path
    state: Path
    logs: Path
    backupctl_cmd: list[str]
    runs: list[Run] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def measured(self, op: str) -> list[Run]:
        return [r for r in self.runs if r.op == op and r.repetition > 0]


# --------------------------------------------------------------------------- files


def dir_bytes(root: Path) -> int:
    """Sum of the sizes (st_size) of the regular files under ``root``."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def cached_fraction(root: Path) -> float | None:
    """Share of the bytes of the files in ``root`` that are in the page cache (fincore)."""
    if shutil.which("fincore") is None:
        return None
    files = sorted(str(p) for p in root.iterdir() if p.is_file())
    res = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES,SIZE", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        return None
    pairs = [line.split() for line in res.stdout.splitlines() if line.strip()]
    size = sum(int(p[1]) for p in pairs)
    return sum(int(p[0]) for p in pairs) / size if size else None


def write_random(path: Path, size: int) -> None:
    """Write ``size`` bytes of os.urandom to ``path`` in place (same inode if it exists)."""
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            n = min(WRITE_CHUNK, left)
            fh.write(os.urandom(n))
            left -= n


def generate_model(root: Path, size_mb: int, files: int) -> Model:
    """Write ``files`` weight shards of ``size_mb / files`` MiB each and ``VERSION``."""
    root.mkdir(parents=True)
    shard_bytes = size_mb * 2**20 // files
    shards = [f"model-{i:05d}-of-{files:05d}.safetensors" for i in range(1, files + 1)]
    started = time.monotonic()
    for name in shards:
        write_random(root / name, shard_bytes)
    (root / "VERSION").write_text("v1\n")
    os.sync()
    print(
        f"generated {files} files of {shard_bytes / 2**20:.1f} MiB "
        f"({files * shard_bytes:,} bytes) in {time.monotonic() - started:.0f}s",
        flush=True,
    )
    return Model(root, shards, shard_bytes)


def change_one_file(model: Model, repetition: int) -> str:
    """Rewrite one shard in place with new random bytes and bump VERSION; return its name."""
    name = model.shards[(repetition - 1) % len(model.shards)]
    write_random(model.root / name, model.shard_bytes)
    model.version += 1
    (model.root / "VERSION").write_text(f"v{model.version}\n")
    return name


def write_policy(setup_dir: Path, model_root: Path, repo: Path) -> Path:
    """The model policy: driver defaults (zstd level 1, 4 files at once)."""
    policy = {
        "version": 1,
        "name": POLICY_NAME,
        "driver": "model",
        "path": str(model_root),
        "version_from": "VERSION",
        "repository": f"file://{repo}",
        "schedule": {"check": "*/15 * * * *"},
        "retention": {"keep_versions": 100},  # nothing is pruned during the benchmark
        "objectives": {"rpo": "24h", "rto": "1h"},
    }
    policy_dir = setup_dir / "policies"
    policy_dir.mkdir()
    (policy_dir / f"{POLICY_NAME}.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    return policy_dir


# --------------------------------------------------------------------------- the runs


def run_cp(setup: Setup, repetition: int) -> Run:
    """Time ``cp -r model copy`` (then, separately, ``sync`` of the copied files).

    The previous run's copy is deleted right before (outside the timing), never
    earlier. On a VM with free page reporting (virtio-balloon), memory that stays free
    for a few seconds goes back to the host, and faulting 2 GiB of it in again made
    ``cp -r`` take 2-6 s instead of 0.6 s; a copy that replaces the one just deleted
    reuses its pages.
    The deletion is not done before the backups either: with ``-o discard`` its 2 GiB
    of discards would compete with backupctl's fsyncs.
    """
    copy = setup.workdir / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    os.sync()
    cached = cached_fraction(setup.model.root)
    load1 = os.getloadavg()[0]
    started = time.perf_counter()
    subprocess.run(["cp", "-r", str(setup.model.root), str(copy)], check=True, timeout=RUN_TIMEOUT)
    seconds = time.perf_counter() - started
    files = sorted(str(p) for p in copy.iterdir())
    started = time.perf_counter()
    subprocess.run(["sync", *files], check=True, timeout=RUN_TIMEOUT)
    fsync_seconds = time.perf_counter() - started
    written = dir_bytes(copy)
    return Run(
        "cp",
        repetition,
        seconds,
        written,
        fsync_seconds=fsync_seconds,
        model_cached=cached,
        load1=load1,
    )


def run_backup(setup: Setup, op: str, repetition: int, changed: str | None = None) -> Run:
    """Time ``backupctl backup POLICY --json`` once; bytes = growth of the repository."""
    os.sync()
    before = dir_bytes(setup.repo) if setup.repo.exists() else 0
    cached = cached_fraction(setup.model.root)
    load1 = os.getloadavg()[0]
    tag = f"{op}-{repetition}"
    out = setup.logs / f"{tag}.json"
    args = ["--policies", str(setup.policy_dir), "--state-dir", str(setup.state)]
    timed = run_backupctl(
        setup.backupctl_cmd,
        [*args, "backup", POLICY_NAME, "--json"],
        out,
        setup.logs / f"{tag}.log",
    )
    if timed.returncode != 0:
        raise RuntimeError(
            f"backupctl {tag} failed with exit {timed.returncode}:\n{timed.log_tail}"
        )
    written = dir_bytes(setup.repo) - before
    report = json.loads(out.read_text())
    run = Run(op, repetition, timed.seconds, written, timed.peak_rss_kb, changed_file=changed)
    run.model_cached, run.load1 = cached, load1
    if "details" not in report:  # nothing changed: {"changed": false, "reason": ...}
        run.note = str(report.get("reason", ""))
        return run
    details = report["details"]
    run.in_process_seconds = (
        datetime.fromisoformat(report["finished_at"]) - datetime.fromisoformat(report["started_at"])
    ).total_seconds()
    run.new_bytes = details["new_bytes"]
    run.new_stored_bytes = details["new_stored_bytes"]
    run.version = details["version"]
    return run


def check_run(setup: Setup, run: Run) -> None:
    """Record a warning when backupctl stored more or less than what changed."""
    model = setup.model
    version_bytes = (model.root / "VERSION").stat().st_size
    if run.op == "first-backup":
        expected = len(model.shards) * model.shard_bytes + version_bytes
    elif run.op == "new-version":
        expected = model.shard_bytes + version_bytes
    else:
        if run.version is not None or run.bytes_written != 0:
            setup.warnings.append(
                f"rep {run.repetition}: the unchanged check stored a version ({run.version}, "
                f"{run.bytes_written:,} bytes)"
            )
        return
    if run.new_bytes != expected:
        setup.warnings.append(
            f"{run.op} rep {run.repetition}: stored {run.new_bytes:,} new bytes, "
            f"expected {expected:,}"
        )
    if run.version != f"v{model.version}":
        setup.warnings.append(f"{run.op}: version {run.version}, expected v{model.version}")


def record(setup: Setup, run: Run) -> None:
    setup.runs.append(run)
    label = "warm-up" if run.repetition == 0 else f"rep {run.repetition}"
    extra = [f"load {run.load1:.1f}"]
    if run.model_cached is not None:
        extra.append(f"model {run.model_cached:.0%} cached")
    if run.fsync_seconds is not None:
        extra.append(f"+ sync {run.fsync_seconds:.2f}s")
    if run.peak_rss_kb:
        extra.append(f"peak RSS {run.peak_rss_kb / 1024:.1f} MiB")
    if run.changed_file:
        extra.append(f"changed {run.changed_file}")
    if run.note:
        extra.append(run.note)
    print(
        f"  {label:7s} {run.op:12s} {run.seconds:7.2f}s {run.bytes_written / 2**20:9.1f} MiB"
        f"  {', '.join(extra)}",
        flush=True,
    )


def bench(setup: Setup, repeat: int, warmup: bool) -> None:
    """Take the first backup, then run an unmeasured warm-up pair and ``repeat`` pairs.

    Each pair is one ``cp -r`` and one new version (change a file, back up). Each new
    version is followed by a backup with nothing changed (the scheduled check), which
    is reported but not part of the verdict. Odd repetitions copy first, even ones back
    up first. The warm-up pair comes after the first backup, so that every measured
    ``cp -r`` replaces a copy deleted just before it (see ``run_cp``), and the runs
    right after writing 4 GiB (model, first backup) are not measured.
    """
    if warmup:  # .pyc files
        run_backupctl(
            setup.backupctl_cmd,
            ["--version"],
            setup.logs / "warmup.out",
            setup.logs / "warmup.log",
        )
    first = run_backup(setup, "first-backup", 1)
    check_run(setup, first)
    record(setup, first)
    for rep in range(0 if warmup else 1, repeat + 1):
        order = ["new-version", "cp"] if rep % 2 == 0 else ["cp", "new-version"]
        for op in order:
            if op == "cp":
                record(setup, run_cp(setup, rep))
                continue
            changed = change_one_file(setup.model, rep)
            run = run_backup(setup, "new-version", rep, changed)
            check_run(setup, run)
            record(setup, run)
            unchanged = run_backup(setup, "unchanged", rep)
            check_run(setup, unchanged)
            record(setup, unchanged)
    shutil.rmtree(setup.workdir / "copy", ignore_errors=True)


# --------------------------------------------------------------------------- report


def _median(runs: list[Run], attr: str) -> float:
    return float(statistics.median(getattr(r, attr) for r in runs))


def summary(setup: Setup) -> dict[str, Any]:
    cp = setup.measured("cp")
    first = setup.measured("first-backup")
    new = setup.measured("new-version")
    unchanged = setup.measured("unchanged")
    cp_s = _median(cp, "seconds")
    cp_sync_s = statistics.median(r.seconds + (r.fsync_seconds or 0) for r in cp)
    cp_b = _median(cp, "bytes_written")
    first_s, first_b = first[0].seconds, first[0].bytes_written
    new_s, new_b = _median(new, "seconds"), _median(new, "bytes_written")

    def span(runs: list[Run]) -> list[float]:
        return [round(min(r.seconds for r in runs), 3), round(max(r.seconds for r in runs), 3)]

    cached = [r.model_cached for r in setup.runs if r.repetition > 0 and r.model_cached is not None]
    return {
        "model_bytes": setup.model.total_bytes,
        "model_cached_min": round(min(cached), 4) if cached else None,
        "changed_file_bytes": setup.model.shard_bytes,
        "cp_median_s": round(cp_s, 3),
        "cp_range_s": span(cp),
        "cp_plus_sync_median_s": round(cp_sync_s, 3),
        "cp_bytes": int(cp_b),
        "first_backup_s": round(first_s, 3),
        "first_backup_bytes": first_b,
        "first_backup_in_process_s": round(first[0].in_process_seconds or 0.0, 3),
        "first_backup_peak_rss_mb": round((first[0].peak_rss_kb or 0) / 1024, 1),
        "new_version_median_s": round(new_s, 3),
        "new_version_range_s": span(new),
        "new_version_bytes": int(new_b),
        "new_version_in_process_median_s": round(_median(new, "in_process_seconds"), 3),
        "new_version_peak_rss_mb": round(max(r.peak_rss_kb or 0 for r in new) / 1024, 1),
        "unchanged_median_s": round(_median(unchanged, "seconds"), 3),
        "unchanged_range_s": span(unchanged),
        "unchanged_bytes": int(_median(unchanged, "bytes_written")),
        "unchanged_peak_rss_mb": round(max(r.peak_rss_kb or 0 for r in unchanged) / 1024, 1),
        "new_vs_cp_time": round(new_s / cp_s, 4),
        "new_vs_cp_bytes": round(new_b / cp_b, 4),
        "new_vs_cp_plus_sync_time": round(new_s / cp_sync_s, 4),
        "new_vs_first_time": round(new_s / first_s, 4),
        "new_vs_first_bytes": round(new_b / first_b, 4),
        "first_vs_cp_time": round(first_s / cp_s, 4),
        "first_vs_cp_plus_sync_time": round(first_s / cp_sync_s, 4),
    }


def markdown_table(s: dict[str, Any]) -> str:
    def row(name: str, secs: str, written: int, rss: str, cp_t: str, cp_b: str) -> str:
        return f"| {name} | {secs} | {written:,} | {rss} | {cp_t} | {cp_b} |"

    def span(key: str) -> str:
        low, high = s[key]
        return f"{low:.2f}-{high:.2f}"

    cp_s, cp_b = s["cp_median_s"], s["cp_bytes"]
    lines = [
        "| operation | median s (min-max) | bytes written | peak RSS MiB "
        "| time / `cp -r` | bytes / `cp -r` |",
        "|---|---:|---:|---:|---:|---:|",
        row("`cp -r` (full copy)", f"{cp_s:.2f} ({span('cp_range_s')})", cp_b, "-", "1", "1"),
        row(
            "`cp -r` + `sync` of the copy",
            f"{s['cp_plus_sync_median_s']:.2f}",
            cp_b,
            "-",
            f"{s['cp_plus_sync_median_s'] / cp_s:.3f}",
            "1",
        ),
        row(
            "first backup (one run)",
            f"{s['first_backup_s']:.2f}",
            s["first_backup_bytes"],
            f"{s['first_backup_peak_rss_mb']:.1f}",
            f"{s['first_vs_cp_time']:.3f}",
            f"{s['first_backup_bytes'] / cp_b:.3f}",
        ),
        row(
            "**new version** (1 file changed)",
            f"{s['new_version_median_s']:.2f} ({span('new_version_range_s')})",
            s["new_version_bytes"],
            f"{s['new_version_peak_rss_mb']:.1f}",
            f"**{s['new_vs_cp_time']:.3f}**",
            f"**{s['new_vs_cp_bytes']:.3f}**",
        ),
        row(
            "unchanged (check, nothing stored)",
            f"{s['unchanged_median_s']:.2f} ({span('unchanged_range_s')})",
            s["unchanged_bytes"],
            f"{s['unchanged_peak_rss_mb']:.1f}",
            f"{s['unchanged_median_s'] / cp_s:.3f}",
            f"{s['unchanged_bytes'] / cp_b:.3f}",
        ),
    ]
    return "\n".join(lines)


def verdicts(s: dict[str, Any]) -> list[str]:
    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    t, b = s["new_vs_cp_time"], s["new_vs_cp_bytes"]
    return [
        f"new version time <= {TARGET_RATIO:.2f} x cp -r: {mark(t <= TARGET_RATIO)} "
        f"({s['new_version_median_s']:.2f} s / {s['cp_median_s']:.2f} s = {t:.3f})",
        f"new version bytes <= {TARGET_RATIO:.2f} x cp -r: {mark(b <= TARGET_RATIO)} "
        f"({s['new_version_bytes']:,} / {s['cp_bytes']:,} = {b:.3f})",
    ]


def information(s: dict[str, Any]) -> list[str]:
    overhead = s["new_version_median_s"] - s["new_version_in_process_median_s"]
    lines = [
        f"info: new version vs first backup: time {s['new_vs_first_time']:.3f}, "
        f"bytes {s['new_vs_first_bytes']:.3f}",
        f"info: first backup time / cp -r: {s['first_vs_cp_time']:.3f} "
        f"(/ cp -r + sync: {s['first_vs_cp_plus_sync_time']:.3f})",
        f"info: new version time / (cp -r + sync): {s['new_vs_cp_plus_sync_time']:.3f}",
        f"info: new version: {s['new_version_in_process_median_s']:.2f} s inside the manifest "
        f"window, {overhead:.2f} s outside it (start-up, imports, catalog, exit)",
    ]
    if s["model_cached_min"] is not None:
        lines.append(
            f"info: share of the model in the page cache before each run: at least "
            f"{s['model_cached_min']:.1%} (no cache is dropped)"
        )
    return lines


def environment(setup: Setup) -> dict[str, Any]:
    def first_line(argv: list[str]) -> str:
        res = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (res.stdout or res.stderr).splitlines()[0].strip() if res.returncode == 0 else ""

    fs = first_line(["findmnt", "-no", "SOURCE,FSTYPE", "--target", str(setup.workdir)])
    return {
        **host_environment(),
        "cp": first_line(["cp", "--version"]),
        "filesystem": fs,
        "backupctl_cmd": setup.backupctl_cmd,
        "backupctl_commit": git_describe(),
        "pycache_prefix": os.environ.get("PYTHONPYCACHEPREFIX", ""),
        "workdir": str(setup.workdir),
    }


def write_results(path: Path, args: argparse.Namespace, setup: Setup, env: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    s = summary(setup)
    doc = {
        "benchmark": "model-version",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "arguments": {
            "size_mb": args.size_mb,
            "files": args.files,
            "repeat": args.repeat,
            "warmup": args.warmup,
        },
        "targets": {"new_vs_cp_time": TARGET_RATIO, "new_vs_cp_bytes": TARGET_RATIO},
        "environment": env,
        "summary": s,
        "runs": [asdict(r) for r in setup.runs],
        "warnings": setup.warnings,
        "verdicts": verdicts(s),
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size-mb", type=int, default=2048, help="model size in MiB (default 2048)"
    )
    parser.add_argument("--files", type=int, default=20, help="weight files (default 20)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="measured cp runs and new versions (default 3)"
    )
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the unmeasured cp -r and backupctl --version",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the model, copy, repository and logs live (default: a new dir in"
        " /tmp); must not exist yet or be empty",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--json-out",
        type=Path,
        default=None,
        help="results file (default: bench/results/model-version-<date>.json)",
    )
    args = parser.parse_args(argv)
    if args.size_mb <= 0 or args.files < 1 or args.repeat < 1:
        parser.error("--size-mb, --files and --repeat must be positive")
    return args


def use_bytecode_cache(prefix: Path) -> None:
    """Let the backupctl processes write and reuse .pyc files, in ``prefix``.

    An installed backupctl has compiled bytecode. A checkout run with
    PYTHONDONTWRITEBYTECODE=1 (as in this sandbox) compiles its ~90 modules from source
    on every invocation, about 0.04 s here. The cache lives in the work directory, so
    nothing is written into the source tree; the first backup and the warm-up fill it.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)


def check_space(workdir: Path, args: argparse.Namespace) -> None:
    """Refuse to start without room for the model, a copy, and the repository's versions."""
    free = shutil.disk_usage(workdir).free
    size = args.size_mb * 2**20
    needed = int((3 * size + args.repeat * size / args.files) * 1.05)
    if free < needed:
        raise SystemExit(
            f"{workdir}: {free / 2**30:.1f} GiB free, the benchmark needs about "
            f"{needed / 2**30:.1f} GiB at --size-mb {args.size_mb}; pass a smaller --size-mb"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    workdir = make_workdir(args.workdir, "bench-model-version-")
    stamp = datetime.now().strftime("%Y-%m-%d-%H%M")
    json_out = args.json_out or REPO_ROOT / "bench" / "results" / f"model-version-{stamp}.json"
    failed = False
    try:
        check_space(workdir, args)
        logs = workdir / "logs"
        logs.mkdir()
        use_bytecode_cache(workdir / "pycache")
        model = generate_model(workdir / "model", args.size_mb, args.files)
        repo = workdir / "repo"
        setup = Setup(
            workdir,
            model,
            write_policy(workdir, model.root, repo),
            repo,
            workdir / "state",
            logs,
            default_backupctl_cmd(),
        )
        env = environment(setup)
        print(f"{env['cpus']} CPUs, {env['filesystem']}, workdir {workdir}", flush=True)
        bench(setup, args.repeat, args.warmup)
        write_results(json_out, args, setup, env)
    except KeyboardInterrupt:
        print(f"interrupted; work directory {workdir} removed unless --keep", file=sys.stderr)
        return 130
    except Exception:
        failed = True
        print(f"failed; logs are kept in {workdir}", file=sys.stderr)
        raise
    finally:
        if not (args.keep or failed):
            shutil.rmtree(workdir, ignore_errors=True)
    s = summary(setup)
    print()
    print(markdown_table(s))
    print()
    for line in verdicts(s):
        print(line)
    for line in information(s):
        print(line)
    for line in setup.warnings:
        print(f"warning: {line}")
    print(f"\nresults: {json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
