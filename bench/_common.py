"""Helpers shared by the benchmarks in ``bench/``: the private server, process timing, RSS,
the raw tools' pipelines, the figures over interleaved runs, arguments and results files.

Importing this module puts the repository root on ``sys.path``, so the benchmarks can
import ``backupctl`` when run as plain scripts from anywhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

import structlog
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from backupctl.demo.sample_data import generate, table_sizes  # noqa: E402
from backupctl.demo.server import ThrowawayServer  # noqa: E402
from backupctl.drivers.mariadb.instance import MariaDBInstance  # noqa: E402
from backupctl.proc import process_args  # noqa: E402

BENCH_USER = "bench"
POLICY_NAME = "bench"
POLL_SECONDS = 0.02  # how often the peak RSS of the backupctl process is sampled
RUN_TIMEOUT = 3600.0


# --------------------------------------------------------------------------- processes


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into KeyboardInterrupt so that every ``finally`` runs."""
    raise KeyboardInterrupt


def install_signal_handlers() -> None:
    """Make SIGTERM and SIGINT raise KeyboardInterrupt (even if SIGINT was ignored)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def quiet_logging() -> None:
    """Keep the package's info logs (server started, data generated) off our output."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc`` if it still runs (SIGTERM, then SIGKILL after 30 s) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


def read_vmhwm_kb(pid: int) -> int | None:
    """Return the peak resident set size (VmHWM, KiB) of ``pid``, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def wait_sampling_rss(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Wait for ``proc`` to exit, sampling its own VmHWM; return the last value seen.

    VmHWM only grows, so the last sample is the peak up to ``POLL_SECONDS`` before the
    exit. Only this process is measured, never its children (mariabackup, mbstream).
    """
    peak: int | None = None
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        sample = read_vmhwm_kb(proc.pid)
        if sample is not None:
            peak = max(peak or 0, sample)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc.args!r} still runs after {timeout:.0f}s")
        time.sleep(POLL_SECONDS)
    return peak


@dataclass
class Timed:
    """One finished run of backupctl: wall time, its peak RSS, the log's tail on failure."""

    seconds: float
    peak_rss_kb: int | None
    returncode: int
    log_tail: str


def default_backupctl_cmd() -> list[str]:
    """``.venv/bin/python -m backupctl`` when the project venv exists, else this Python."""
    venv_python = REPO_ROOT / ".venv" / "bin" / "python"
    python = str(venv_python) if venv_python.exists() else sys.executable
    return [python, "-m", "backupctl"]


def run_backupctl(cmd: list[str], args: list[str], stdout_path: Path, log_path: Path) -> Timed:
    """Run ``cmd args`` (with ``--log-format json`` first), timed, sampling its VmHWM.

    stdout goes to ``stdout_path`` and the JSON log lines to ``log_path``. The wall time
    runs from spawning the process to its exit: a cron job or an operator pays for
    interpreter start-up, imports and exit too.
    """
    argv = [*cmd, "--log-format", "json", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with open(log_path, "wb") as log_fh, open(stdout_path, "wb") as out_fh:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out_fh, stderr=log_fh, cwd=REPO_ROOT, env=env)
        try:
            peak_kb = wait_sampling_rss(proc, RUN_TIMEOUT)
            seconds = time.perf_counter() - started
        finally:
            stop_process(proc)
    tail = "" if proc.returncode == 0 else log_path.read_text(errors="replace")[-2000:]
    return Timed(seconds, peak_kb, proc.returncode, tail)


def tool_version(argv: list[str]) -> str:
    """Return the last non-empty output line of a ``--version`` call."""
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = [line for line in (res.stdout + res.stderr).splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown"


def check_run(argv: list[str], log_fh: IO[bytes]) -> None:
    """Run ``argv`` with its output in ``log_fh``; raise when it fails."""
    log_fh.write(f"$ {' '.join(argv)}\n".encode())
    log_fh.flush()
    rc = subprocess.run(argv, stdout=log_fh, stderr=log_fh, timeout=RUN_TIMEOUT).returncode
    if rc != 0:
        raise RuntimeError(f"{argv[0]} failed with exit {rc}; see {log_fh.name}")


def pipe(first: list[str], second: list[str], log_fh: IO[bytes]) -> float:
    """Run ``first | second`` (output and errors to ``log_fh``); return its wall seconds."""
    log_fh.write(f"$ {' '.join(first)} | {' '.join(second)}\n".encode())
    log_fh.flush()
    started = time.perf_counter()
    producer = subprocess.Popen(first, stdout=subprocess.PIPE, stderr=log_fh)
    try:
        consumer = subprocess.Popen(second, stdin=producer.stdout, stdout=log_fh, stderr=log_fh)
        assert producer.stdout is not None
        producer.stdout.close()  # the consumer holds the read end now
        try:
            consumer_rc = consumer.wait(RUN_TIMEOUT)
            producer_rc = producer.wait(RUN_TIMEOUT)
        finally:
            stop_process(consumer)
    finally:
        stop_process(producer)
    seconds = time.perf_counter() - started
    if producer_rc != 0 or consumer_rc != 0:
        raise RuntimeError(f"{first[0]} | {second[0]} failed ({producer_rc}, {consumer_rc})")
    return seconds


def extract(source: Path, staging: Path, log_fh: IO[bytes]) -> None:
    """``zstd -dc source | mbstream -x -C staging`` (``staging`` is created)."""
    staging.mkdir()
    pipe(["zstd", "-dcq", str(source)], ["mbstream", "-x", "-C", str(staging)], log_fh)


def decompressed_size(path: Path) -> int:
    """Return the size of ``path`` once decompressed by ``zstd -dc`` (outside any timing)."""
    proc = subprocess.Popen(["zstd", "-dcq", str(path)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    size = 0
    try:
        while chunk := proc.stdout.read(1 << 20):
            size += len(chunk)
        proc.wait(RUN_TIMEOUT)
    finally:
        proc.stdout.close()
        stop_process(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"zstd -dc {path} failed with exit {proc.returncode}")
    return size


def other_mariadbd(workdir: Path) -> int:
    """Count mariadbd processes on the machine that this benchmark did not start."""
    mine = f"--datadir={workdir}/"
    return sum(
        1
        for _, args in process_args()
        if os.path.basename(args[0]) == "mariadbd" and not any(a.startswith(mine) for a in args)
    )


# --------------------------------------------------------------------------- runs and figures


def interleaved(repeat: int, warmup: bool) -> Iterator[tuple[int, str]]:
    """(repetition, tool) of interleaved runs: an unmeasured warm-up pair (repetition 0)
    unless ``warmup`` is false, then ``repeat`` pairs; repetition ``i`` runs raw first when
    ``i`` is odd and backupctl first when even, so that neither always follows the other."""
    for rep in range(0 if warmup else 1, repeat + 1):
        for tool in ("raw", "backupctl") if rep % 2 else ("backupctl", "raw"):
            yield rep, tool


def rep_label(repetition: int) -> str:
    return "warm-up" if repetition == 0 else f"rep {repetition}"


def measured(runs: Sequence[Any], tool: str) -> list[Any]:
    """The runs of ``tool`` without the warm-up (repetition 0)."""
    return [r for r in runs if r.tool == tool and r.repetition > 0]


def median_of(runs: Sequence[Any], tool: str, attr: str = "seconds") -> float:
    """Median of ``attr`` over the measured runs of ``tool``."""
    return float(statistics.median(getattr(r, attr) for r in measured(runs, tool)))


def tool_ratio(runs: Sequence[Any], attr: str = "seconds") -> float:
    """Median backupctl / median raw of ``attr``."""
    return median_of(runs, "backupctl", attr) / median_of(runs, "raw", attr)


def span(runs: Sequence[Any], tool: str) -> list[float]:
    """[fastest, slowest] measured wall time of ``tool``: the noise to expect."""
    times = [r.seconds for r in measured(runs, tool)]
    return [round(min(times), 3), round(max(times), 3)]


def peak_rss_mb(runs: Sequence[Any]) -> float:
    """The largest VmHWM of backupctl over its measured runs, in MiB."""
    return max(r.peak_rss_kb or 0 for r in measured(runs, "backupctl")) / 1024


def mark(ok: bool) -> str:
    """A verdict: met or MISSED."""
    return "met" if ok else "MISSED"


def fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fmt_range(bounds: Sequence[float]) -> str:
    return f"{bounds[0]:.2f}-{bounds[1]:.2f}"


# --------------------------------------------------------------------------- files


def write_secret(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` with mode 0600 (created so, never readable by others)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def fresh_dir(path: Path) -> Path:
    """Remove ``path`` if present and create it empty."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@contextmanager
def workdir_cleanup(workdir: Path, keep: bool, on_interrupt: str) -> Iterator[None]:
    """Run a benchmark's body: Ctrl-C exits 130 saying ``on_interrupt``; a failure keeps
    ``workdir`` for its logs; otherwise (and after Ctrl-C) it is removed unless ``keep``."""
    failed = False
    try:
        yield
    except KeyboardInterrupt:
        print(f"interrupted; {on_interrupt}", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception:
        failed = True
        print(f"failed; logs are kept in {workdir}", file=sys.stderr)
        raise
    finally:
        if not (keep or failed):
            shutil.rmtree(workdir, ignore_errors=True)


def print_summary(tables: str, verdict_lines: list[str], json_out: Path) -> None:
    """The end of every benchmark's output: tables, one verdict per line, the results file."""
    print()
    print(tables)
    print()
    for line in verdict_lines:
        print(line)
    print(f"\nresults: {json_out}")


def make_workdir(requested: Path | None, prefix: str) -> Path:
    """Return an empty work directory: ``requested`` (created) or a new one in /tmp."""
    if requested is None:
        return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    requested.mkdir(parents=True, exist_ok=True)
    if any(requested.iterdir()):
        raise SystemExit(f"--workdir {requested} is not empty")
    return requested.resolve()


# --------------------------------------------------------------------------- arguments


def add_warmup_arg(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--no-warmup", dest="warmup", action="store_false", help=help_text)


def add_run_args(
    parser: argparse.ArgumentParser,
    *,
    holds: str,
    results: str,
    buffer_pool: str | None = "innodb-buffer-pool-size",
) -> None:
    """--workdir (where ``holds`` live), --keep, --buffer-pool (unless ``buffer_pool`` is
    None; it is the help) and --json-out (default: bench/results/``results``-<date>.json)."""
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help=f"where {holds} live (default: a new dir in /tmp); must not exist yet or be empty",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    if buffer_pool is not None:
        parser.add_argument("--buffer-pool", default="256M", help=buffer_pool)
    parser.add_argument(
        "--json-out",
        type=Path,
        default=None,
        help=f"results file (default: bench/results/{results}-<date>.json)",
    )


def compile_bytecode() -> None:
    """Compile backupctl's modules as ``pip install`` does: an editable checkout under
    PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module at every start and
    charge backupctl ~0.3 s per run that no installed copy pays."""
    subprocess.run(
        [default_backupctl_cmd()[0], "-m", "compileall", "-q", str(REPO_ROOT / "backupctl")],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def begin(args: argparse.Namespace, name: str) -> tuple[Path, Path]:
    """Quiet logs, signal handlers, the work directory (``--workdir`` or a new
    /tmp/bench-``name``-*); return it and the results file (``--json-out`` or
    bench/results/``name``-<date>.json)."""
    quiet_logging()
    install_signal_handlers()
    compile_bytecode()
    workdir = make_workdir(args.workdir, f"bench-{name}-")
    stamp = datetime.now().strftime("%Y-%m-%d-%H%M")
    return workdir, args.json_out or REPO_ROOT / "bench" / "results" / f"{name}-{stamp}.json"


def write_results_doc(
    path: Path,
    benchmark: str,
    args: argparse.Namespace,
    targets: dict[str, Any],
    env: dict[str, Any],
    **body: Any,
) -> None:
    """Write a results file: the benchmark, the date, the arguments (all but where the
    files go), the targets, the environment, then ``body`` in its order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arguments = {k: v for k, v in vars(args).items() if k not in ("workdir", "keep", "json_out")}
    doc = {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "arguments": arguments,
        "targets": targets,
        "environment": env,
        **body,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


# --------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class BenchServer:
    """The private server of a benchmark and the credentials of its ``bench`` user."""

    instance: ThrowawayServer
    password: str
    password_file: Path  # 0600, for the policy's ``password_file``
    secrets_dir: Path  # 0700


def base_policy(server: BenchServer, repository: Path) -> dict[str, Any]:
    """The MariaDB policy both benchmarks use: ``zstd -1`` with 2 threads, over TCP."""
    return {
        "version": 1,
        "name": POLICY_NAME,
        "driver": "mariadb",
        "connection": {
            "host": "127.0.0.1",
            "port": server.instance.port,
            "user": BENCH_USER,
            "password_file": str(server.password_file),
        },
        "datadir": str(server.instance.datadir),
        "repository": f"file://{repository}",
        "schedule": {"full": "0 2 * * *"},
        "retention": {"full": "30d"},
        "objectives": {"rpo": "24h", "rto": "1h"},
        "backup": {"compression_level": 1, "compression_threads": 2},
    }


def write_policy(policy_dir: Path, policy: dict[str, Any]) -> None:
    """Write ``policy`` as ``policy_dir/<POLICY_NAME>.yaml`` (the directory is created)."""
    policy_dir.mkdir(parents=True, exist_ok=True)
    (policy_dir / f"{POLICY_NAME}.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))


def write_client_cnf(server: BenchServer) -> Path:
    """A 0600 ``[client]`` option file with the ``bench`` user, for the raw mariabackup."""
    return write_secret(
        server.secrets_dir / "client.cnf",
        f"[client]\nuser={BENCH_USER}\npassword={server.password}\n"
        f"host=127.0.0.1\nport={server.instance.port}\n",
    )


def raw_backup(
    client_cnf: Path,
    datadir: Path,
    target: Path,
    log_path: Path,
    *options: str,
    fsync: bool = False,
) -> tuple[float, int, int]:
    """Time ``mariabackup --backup --stream=mbstream OPTIONS ... | zstd -1 -T2 > target``
    once; return its wall seconds, its mbstream bytes and the bytes of ``target``.

    mariabackup's --target-dir is ``target``'s directory/target (emptied first). With
    ``fsync`` the file is also fsynced before the clock stops, the durability backupctl
    pays for when it commits an artifact.
    """
    tmp = fresh_dir(target.parent / "target")
    argv = [
        "mariabackup",
        f"--defaults-extra-file={client_cnf}",
        "--backup",
        "--stream=mbstream",
        *options,
        f"--datadir={datadir}",
        f"--target-dir={tmp}",
    ]
    with open(log_path, "wb") as log_fh, open(target, "wb") as out_fh:
        started = time.perf_counter()
        backup = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log_fh)
        try:
            zstd = subprocess.Popen(["zstd", "-1", "-T2", "-q"], stdin=backup.stdout, stdout=out_fh)
            assert backup.stdout is not None
            backup.stdout.close()  # zstd holds the read end now
            try:
                zstd_rc = zstd.wait(RUN_TIMEOUT)
                backup_rc = backup.wait(RUN_TIMEOUT)
                if fsync:
                    os.fsync(out_fh.fileno())
                seconds = time.perf_counter() - started
            finally:
                stop_process(zstd)
        finally:
            stop_process(backup)
    log_text = log_path.read_text(errors="replace")
    if backup_rc != 0 or zstd_rc != 0 or "completed OK!" not in log_text:
        raise RuntimeError(
            f"raw pipeline failed (mariabackup {backup_rc}, zstd {zstd_rc}):\n{log_text[-2000:]}"
        )
    return seconds, decompressed_size(target), target.stat().st_size


def data_artifact(manifest: dict[str, Any]) -> dict[str, Any]:
    """The mbstream artifact of a MariaDB backup's manifest (not mariabackup's log)."""
    return next(a for a in manifest["artifacts"] if a["key"].endswith("/data.mbstream.zst"))


def manifest_window(manifest: dict[str, Any]) -> float:
    """Seconds from the manifest's ``started_at`` to its ``finished_at``."""
    return (
        datetime.fromisoformat(manifest["finished_at"])
        - datetime.fromisoformat(manifest["started_at"])
    ).total_seconds()


def _servers_under(root: Path) -> list[int]:
    """Pids of mariadbd processes whose ``--datadir`` lies under ``root``."""
    prefix = f"--datadir={root.resolve()}/"
    return [
        pid
        for pid, args in process_args()
        if os.path.basename(args[0]) == "mariadbd" and any(a.startswith(prefix) for a in args)
    ]


def stop_servers_under(root: Path, timeout: float = 60) -> None:
    """Stop every mariadbd on a datadir under ``root`` (SIGTERM, SIGKILL after ``timeout``).

    These are the benchmark's own servers, including ones a hook or backupctl started
    (a restarted server after a restore, a recovery instance left by a killed run).
    """
    pids = _servers_under(root)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if p in _servers_under(root)]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


@contextmanager
def bench_server(workdir: Path, buffer_pool: str) -> Iterator[BenchServer]:
    """Start a private MariaDB (binlog on, loopback port) with a ``bench`` backup user.

    The server, and any other mariadbd on a datadir under ``workdir``, is stopped when
    the block exits, whatever the reason.
    """
    instance = ThrowawayServer.create(
        workdir / "mariadb", binlog=True, networking=True, buffer_pool=buffer_pool
    )
    try:
        instance.start()
        password = secrets.token_urlsafe(18)
        instance.create_user(BENCH_USER, password)
        secrets_dir = workdir / "secrets"
        secrets_dir.mkdir(mode=0o700, exist_ok=True)
        password_file = write_secret(secrets_dir / "password", password)
        yield BenchServer(instance, password, password_file, secrets_dir)
    finally:
        instance.stop()
        stop_servers_under(workdir)


def fill_database(instance: MariaDBInstance, database: str, target_mb: int) -> int:
    """(Re)generate the sample database at ``target_mb`` MiB; return its ``.ibd`` bytes.

    Waits until InnoDB has flushed every dirty page, so the backups that follow copy
    a quiet server and do not race the page cleaner.
    """
    conn = instance.connect()
    try:
        started = time.monotonic()
        generate(conn, database, target_mb)
        print(f"  generated {target_mb} MB in {time.monotonic() - started:.0f}s", flush=True)
        wait_for_clean_buffer_pool(conn)
        return sum(table_sizes(conn, database).values())
    finally:
        conn.close()


def wait_for_clean_buffer_pool(conn: Any, timeout: float = 600) -> None:
    """Make InnoDB flush all dirty pages and wait (at most ``timeout`` s) until it has.

    The default ``innodb_io_capacity`` (200 pages/s) would take minutes for a freshly
    generated gigabyte, so the flush rate is raised first (the server is idle).
    """
    started = time.monotonic()
    with conn.cursor() as cur:
        cur.execute("SET GLOBAL innodb_io_capacity_max = 100000")
        cur.execute("SET GLOBAL innodb_io_capacity = 50000")
        cur.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        while time.monotonic() - started < timeout:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
            if int(cur.fetchone()[1]) == 0:
                print(f"  flushed dirty pages in {time.monotonic() - started:.0f}s", flush=True)
                return
            time.sleep(0.5)
    print("  warning: dirty pages remain after flushing", file=sys.stderr)


def host_environment() -> dict[str, Any]:
    """The machine a benchmark ran on, for its results file."""
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def environment(
    instance: MariaDBInstance, backupctl_cmd: list[str], workdir: Path
) -> dict[str, Any]:
    """Describe the machine and the tool versions for the results file; print the line
    every benchmark starts with (MariaDB version, CPUs, work directory)."""
    env = {
        **host_environment(),
        "mariadb": instance.server_version(),
        "mariabackup": tool_version(["mariabackup", "--version"]),
        "zstd": tool_version(["zstd", "--version"]),
        "backupctl_cmd": backupctl_cmd,
        "backupctl_commit": git_describe(),
        "workdir": str(workdir),
    }
    print(f"MariaDB {env['mariadb']}, {env['cpus']} CPUs, workdir {workdir}", flush=True)
    return env


def git_describe() -> str:
    """The commit of the working tree, with ``-dirty`` when it has local changes."""
    res = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return res.stdout.strip() or "unknown"
