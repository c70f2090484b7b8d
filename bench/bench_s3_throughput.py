#!/usr/bin/env python3
"""Benchmark: backupctl's parallel S3 transfers against boto3's s3transfer, through a
proxy that caps each connection's rate.

moto's S3 server runs behind ``bench/_throttle_proxy.py``, a TCP relay that caps **each
connection** at ``--rate-mb`` MiB/s in each direction, as a real object store does: one
connection is slow, only parallel connections go faster. For every N in ``--streams``
the same object of ``--size-mb`` MiB (random, incompressible, generated once into the
work directory) goes through the proxy:

- **upload**: backupctl's ``S3Repository.open_write(key, size_hint)`` with
  ``upload_concurrency=N``, fed the file in 1 MiB writes, then ``commit()``; against
  s3transfer's ``client.upload_file(FILE, ...)`` with ``TransferConfig(max_concurrency=N,
  multipart_chunksize=P, multipart_threshold=P)``, where P is the part size backupctl's
  ``PartSizer`` picks for that size hint (16 MiB up to ~100 GiB). Each stored object is
  checked against the file by its multipart ETag (MD5 of the parts' MD5s, so it also
  proves both tools cut the file into parts of P), then deleted.
- **download**: backupctl's ``S3Repository.iter_read(key)`` with
  ``download_concurrency=N``, every chunk hashed with SHA-256 and dropped; against
  s3transfer's ``client.download_fileobj(...)`` with the same TransferConfig into a
  sink that hashes with SHA-256 what it is given and keeps nothing. The sink has no
  ``seek``, so s3transfer, like backupctl, must hand the bytes on in order. Both hashes
  must equal the file's.

Each measured operation runs in its own child process (this script with ``--child``):
the child times the transfer alone (not its interpreter start-up or imports) and reads
its own peak RSS (``VmHWM`` in /proc/self/status) at the end, so the RSS is that of one
operation. A ``baseline`` child that only imports both tools and builds their clients
gives the RSS before any transfer. Every N gets a fresh moto server (moto's memory grows
with every upload). Per N and direction, an unmeasured warm-up pair comes first (unless
``--no-warmup``), then ``--repeat`` pairs, interleaved in alternating order; figures are
medians. The proxy logs every connection, so each run also records how many connections
it opened and how many were open at once (moto's server closes every connection after
one request, so here a connection is a request); the CPU seconds of the child, of moto's
server and of the proxy show which of them, if any, was the limit.

Targets (from the issue): backupctl at least 0.9 times s3transfer's throughput at every N
and in both directions; backupctl scales at least 3 times from 1 to 4 streams; backupctl's
peak RSS at most 150 MiB + N * part size. Sizes and rates are in MiB (2^20 bytes): the
issue's "MB/s" is MiB/s here.

moto is a single Python process, and it is slow where S3 is not: every ranged GET reads
the whole object (~200 ms of its CPU for a 16 MiB range of a 256 MiB object) and
CompleteMultipartUpload copies the whole object (~1 s for 256 MiB). On 2 cores it
carries ~70-110 MiB/s in all, so at 40 MiB/s per connection N=4 and N=8 measure moto,
not the clients. Rows where moto was busy at least 80% of a transfer are marked
*server-bound*. To see the clients with moto out of the way, lower the rate (~8 min)::

    .venv/bin/python bench/bench_s3_throughput.py --size-mb 128 --rate-mb 10 --repeat 3

botocore adds a CRC32 to every part by default, and both tools then declare
``ChecksumAlgorithm=CRC32`` when they create the upload and list each part's CRC32 at
completion. ``--request-checksums when_required`` turns checksums off in both tools.

Run from the repository root (~6.5 minutes on 2 cores)::

    .venv/bin/python bench/bench_s3_throughput.py --size-mb 256 --rate-mb 40 --repeat 3

Needs only the project's Python dependencies (boto3, moto[server]); no root. moto keeps
objects in memory (the download object, one upload and its copies at completion), so
keep ``--size-mb`` modest: 512 MiB takes ~16 minutes, as moto's work per download grows
with the square of the size. moto's server and the proxy are stopped on every exit path,
including Ctrl-C and SIGTERM. Results go to ``bench/results/s3-throughput-<date>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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
    REPO_ROOT,
    add_run_args,
    add_warmup_arg,
    begin,
    git_describe,
    host_environment,
    interleaved,
    mark,
    print_summary,
    read_vmhwm_kb,
    rep_label,
    stop_process,
    workdir_cleanup,
    write_results_doc,
)

from backupctl.storage.parts import MAX_PARTS, MIB, PartSizer
from backupctl.storage.spec import RepositorySpec
from tests.support.motoserver import FAKE_CREDENTIALS, REAL_AWS_SETTINGS, moto_server

BENCH_NAME = "s3-throughput"
BUCKET = "bench-s3-throughput"
PREFIX = "bench"  # backupctl's repository prefix; s3transfer gets the same full keys
DOWNLOAD_KEY = "download/object.bin"
TOOLS = {"raw": "s3transfer", "backupctl": "backupctl"}  # interleaved() names -> ours
DIRECTIONS = ("upload", "download")
TARGET_RATIO = 0.9
TARGET_SCALING = 3.0
RSS_BASE_MIB = 150
SERVER_BOUND = 0.8  # moto's CPU seconds per second of transfer from which it is the limit
CHILD_TIMEOUT = 900.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the child


def full_key(key: str) -> str:
    return f"{PREFIX}/{key}"


def backupctl_repo(endpoint: str, streams: int) -> Any:
    """backupctl's S3Repository on ``endpoint`` with N parts and N ranges in flight, built
    as ``storage.factory`` builds it from a policy's repository spec."""
    from backupctl.storage.s3 import S3Repository

    spec = RepositorySpec(
        url=f"s3://{BUCKET}/{PREFIX}",
        endpoint_url=endpoint,
        region="us-east-1",
        upload_concurrency=streams,
        download_concurrency=streams,
        # the same as s3transfer gets from the environment (see child_env)
        checksums=os.environ.get("AWS_REQUEST_CHECKSUM_CALCULATION", "when_supported"),
    )
    return S3Repository.from_spec(spec)


def boto_client(endpoint: str) -> Any:
    """A plain boto3 client with backupctl's client settings (one try, the same
    timeouts, path-style addressing), so the two differ only in how they transfer."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": "path"},
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", config=config
    )


def transfer_config(streams: int, part_size: int) -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=part_size,
        multipart_chunksize=part_size,
        max_concurrency=streams,
        use_threads=True,
    )


class HashSink:
    """A write-only, unseekable file object: hashes what it gets, keeps nothing."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return len(data)


def child(job: dict[str, Any]) -> dict[str, Any]:
    """Run one operation (``job``: op, tool, streams, endpoint, key, file, size,
    part_size); return its seconds, bytes, digest, CPU seconds and peak RSS."""
    op, tool, streams = job["op"], job["tool"], int(job["streams"])
    # both tools' modules and clients in every child, so their baselines are the same
    repo = backupctl_repo(job["endpoint"], streams)
    client = boto_client(job["endpoint"])
    config = transfer_config(streams, int(job["part_size"]))
    digest, size = "", 0
    cpu_before = os.times()
    started = time.perf_counter()
    if op == "upload" and tool == "backupctl":
        writer = repo.open_write(job["key"], size_hint=int(job["size"]))
        with open(job["file"], "rb") as fh:
            while chunk := fh.read(MIB):
                writer.write(chunk)
        writer.commit()
        size = writer.bytes_written
    elif op == "upload":
        client.upload_file(job["file"], BUCKET, full_key(job["key"]), Config=config)
        size = os.path.getsize(job["file"])
    elif op == "download" and tool == "backupctl":
        sha = hashlib.sha256()
        for chunk in repo.iter_read(job["key"]):
            sha.update(chunk)
            size += len(chunk)
        digest = sha.hexdigest()
    elif op == "download":
        sink = HashSink()
        client.download_fileobj(BUCKET, full_key(job["key"]), sink, Config=config)
        digest, size = sink.sha.hexdigest(), sink.size
    elif op != "baseline":
        raise ValueError(f"unknown op {op!r}")
    seconds = time.perf_counter() - started
    cpu_after = os.times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {
        "seconds": seconds,
        "bytes": size,
        "sha256": digest,
        "cpu_seconds": cpu,
        "peak_rss_kb": read_vmhwm_kb(os.getpid()),
    }


# --------------------------------------------------------------------------- servers


def child_env(workdir: Path, request_checksums: str) -> dict[str, str]:
    """This environment without real AWS settings, with moto's fake credentials, an
    empty AWS config (nothing from the home directory) and botocore's
    ``request_checksum_calculation``."""
    env = {k: v for k, v in os.environ.items() if k not in REAL_AWS_SETTINGS}
    env.update(FAKE_CREDENTIALS)
    env["AWS_REQUEST_CHECKSUM_CALCULATION"] = request_checksums
    env["AWS_CONFIG_FILE"] = str(workdir / "aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(workdir / "aws-credentials")
    env["TMPDIR"] = str(workdir / "tmp")  # moto spools objects > 5 MiB to temporary files
    return env


@contextmanager
def throttle_proxy(
    upstream: str, rate_mb: float, log_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start ``_throttle_proxy.py`` in front of ``upstream``; stop it on exit."""
    script = Path(__file__).with_name("_throttle_proxy.py")
    hostport = upstream.removeprefix("http://")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(script), "--upstream", hostport, "--rate-mb", str(rate_mb)],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # "listening on PORT"
        if not line.startswith("listening on "):
            raise RuntimeError(f"the throttling proxy did not start: {line!r}")
        yield proc, f"http://127.0.0.1:{int(line.split()[-1])}"
    finally:
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def vmrss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class ProxyLog:
    """The proxy's connection log, read run by run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def window(self, timeout: float = 5.0) -> tuple[int, int]:
        """(connections opened, most open at once) since ``mark()``, once every
        connection opened since then is closed again (or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.path) as fh:
                fh.seek(self.offset)
                lines = [line.split() for line in fh.read().splitlines()]
            opened = {w[1] for w in lines if w and w[0] == "open"}
            closed = {w[1] for w in lines if w and w[0] == "close"}
            if opened <= closed or time.monotonic() > deadline:
                peak = max((int(w[2]) for w in lines if w and w[0] == "open"), default=0)
                return len(opened), peak
            time.sleep(0.05)


# --------------------------------------------------------------------------- the object


def make_object(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their SHA-256."""
    sha = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 * MIB))
            sha.update(chunk)
            fh.write(chunk)
            left -= len(chunk)
    return sha.hexdigest()


def multipart_etag(path: Path, part_size: int) -> str:
    """The ETag S3 (and moto) gives a multipart upload of ``path`` in ``part_size``
    parts: MD5 of the parts' binary MD5s, a dash, the number of parts."""
    digests = []
    with open(path, "rb") as fh:
        while part := fh.read(part_size):
            digests.append(hashlib.md5(part, usedforsecurity=False).digest())
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


# --------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One timed operation by one tool."""

    direction: str
    streams: int
    tool: str  # "s3transfer" or "backupctl"
    repetition: int  # 0 is the unmeasured warm-up
    seconds: float
    mib_per_s: float
    peak_rss_kb: int | None
    cpu_seconds: float  # the child's, during the transfer
    moto_cpu_seconds: float
    proxy_cpu_seconds: float
    connections: int  # opened through the proxy
    peak_connections: int  # open at once
    load_before: float

    @property
    def moto_busy(self) -> float:
        """moto's CPU seconds per second of the transfer: near 1.0, its one interpreter
        (one GIL) was the limit, not the proxy or the client."""
        return self.moto_cpu_seconds / self.seconds


@dataclass
class Setup:
    """What every run needs: the object, its digests, the servers of the current N."""

    workdir: Path
    env: dict[str, str]
    rate_mib: float
    file: Path
    size: int
    sha256: str
    part_size: int
    etag: str
    # the servers of the current N (see ``servers``)
    endpoint: str = ""  # the proxy's URL
    direct: Any = None  # a boto3 client straight to moto, for work outside the timing
    moto_pid: int = 0
    proxy_pid: int = 0
    proxy_log: ProxyLog | None = None


@contextmanager
def servers(setup: Setup, streams: int) -> Iterator[None]:
    """A fresh moto server (nothing left from the previous N: moto's memory grows with
    every upload) with the bucket and the download object, and the proxy in front of it.
    The download object goes straight to moto, unthrottled and unmeasured."""
    tag = f"x{streams}"
    (setup.workdir / "tmp").mkdir(exist_ok=True)  # the servers' TMPDIR (see child_env)
    with (
        moto_server(setup.workdir / f"moto-{tag}.log", setup.env) as (moto, moto_url),
        throttle_proxy(moto_url, setup.rate_mib, setup.workdir / f"proxy-{tag}.log") as (
            proxy,
            proxy_url,
        ),
    ):
        direct = boto_client(moto_url)
        direct.create_bucket(Bucket=BUCKET)
        direct.upload_file(
            str(setup.file),
            BUCKET,
            full_key(DOWNLOAD_KEY),
            Config=transfer_config(4, setup.part_size),
        )
        setup.endpoint, setup.direct = proxy_url, direct
        setup.moto_pid, setup.proxy_pid = moto.pid, proxy.pid
        setup.proxy_log = ProxyLog(setup.workdir / f"proxy-{tag}.log")
        yield


def run_child(setup: Setup, job: dict[str, Any]) -> dict[str, Any]:
    """Run ``job`` in a child process; return what it reported."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)]
    done = subprocess.run(
        argv, capture_output=True, env=setup.env, cwd=REPO_ROOT, timeout=CHILD_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{job['tool']} {job['op']} x{job['streams']} failed ({done.returncode}):\n"
            f"{done.stderr.decode(errors='replace')[-3000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def job_for(setup: Setup, direction: str, tool: str, streams: int, rep: int) -> dict[str, Any]:
    key = DOWNLOAD_KEY if direction == "download" else f"upload/{tool}-{streams}-{rep}.bin"
    return {
        "op": direction,
        "tool": tool,
        "streams": streams,
        "endpoint": setup.endpoint,
        "key": key,
        "file": str(setup.file),
        "size": setup.size,
        "part_size": setup.part_size,
    }


def check_outcome(setup: Setup, job: dict[str, Any], got: dict[str, Any]) -> None:
    """Outside the timing: the download hashed to the file's SHA-256, or the upload is
    stored with the file's size and multipart ETag (then it is deleted)."""
    what = f"{job['tool']} {job['op']} x{job['streams']}"
    if got["bytes"] != setup.size:
        raise RuntimeError(f"{what}: {got['bytes']} bytes, expected {setup.size}")
    if job["op"] == "download":
        if got["sha256"] != setup.sha256:
            raise RuntimeError(f"{what}: SHA-256 {got['sha256']} != {setup.sha256}")
        return
    key = full_key(job["key"])
    head = setup.direct.head_object(Bucket=BUCKET, Key=key)
    setup.direct.delete_object(Bucket=BUCKET, Key=key)
    etag = str(head["ETag"]).strip('"')
    if head["ContentLength"] != setup.size or etag != setup.etag:
        raise RuntimeError(
            f"{what}: stored {head['ContentLength']} bytes with ETag {etag}, expected "
            f"{setup.size} bytes with {setup.etag}"
        )


def run_one(setup: Setup, direction: str, tool: str, streams: int, rep: int) -> Run:
    job = job_for(setup, direction, tool, streams, rep)
    load = os.getloadavg()[0]
    assert setup.proxy_log is not None, "no servers: run inside servers()"
    setup.proxy_log.mark()
    moto_before, proxy_before = cpu_seconds(setup.moto_pid), cpu_seconds(setup.proxy_pid)
    got = run_child(setup, job)
    connections, peak = setup.proxy_log.window()
    moto_cpu = cpu_seconds(setup.moto_pid) - moto_before
    proxy_cpu = cpu_seconds(setup.proxy_pid) - proxy_before
    check_outcome(setup, job, got)
    seconds = float(got["seconds"])
    return Run(
        direction,
        streams,
        TOOLS[tool],
        rep,
        seconds,
        setup.size / MIB / seconds,
        got["peak_rss_kb"],
        float(got["cpu_seconds"]),
        moto_cpu,
        proxy_cpu,
        connections,
        peak,
        load,
    )


def print_run(run: Run, setup: Setup) -> None:
    rss = f"{run.peak_rss_kb / 1024:6.1f} MiB" if run.peak_rss_kb else "-"
    print(
        f"  {rep_label(run.repetition):7s} {run.direction:8s} x{run.streams} {run.tool:10s}"
        f" {run.seconds:6.2f}s {run.mib_per_s:6.1f} MiB/s  RSS {rss}"
        f"  cpu {run.cpu_seconds:4.1f}s moto {run.moto_cpu_seconds:4.1f}s"
        f" ({run.moto_busy:.0%})"
        f" proxy {run.proxy_cpu_seconds:4.1f}s  conns {run.connections}"
        f" (peak {run.peak_connections})  moto RSS {vmrss_mib(setup.moto_pid):.0f} MiB",
        flush=True,
    )


@dataclass
class Result:
    streams: list[int]
    part_size: int
    rate_mib: float
    baseline_rss_kb: int | None
    runs: list[Run] = field(default_factory=list)

    def measured(self, direction: str, streams: int, tool: str) -> list[Run]:
        return [
            r
            for r in self.runs
            if r.direction == direction
            and r.streams == streams
            and r.tool == tool
            and r.repetition > 0
        ]

    def median(self, direction: str, streams: int, tool: str, attr: str = "mib_per_s") -> float:
        values = [float(getattr(r, attr)) for r in self.measured(direction, streams, tool)]
        return float(statistics.median(values))

    def peak_rss_mib(self, direction: str, streams: int, tool: str) -> float:
        runs = self.measured(direction, streams, tool)
        return max(r.peak_rss_kb or 0 for r in runs) / 1024

    def moto_busy(self, direction: str, streams: int, tool: str) -> float:
        runs = self.measured(direction, streams, tool)
        return float(statistics.median(r.moto_busy for r in runs))

    def server_bound(self, direction: str, streams: int) -> bool:
        """True when moto was busy most of the time for either tool: the figure then
        says more about moto on this machine than about the clients."""
        return any(
            self.moto_busy(direction, streams, tool) >= SERVER_BOUND for tool in TOOLS.values()
        )

    def ratio(self, direction: str, streams: int) -> float:
        return self.median(direction, streams, "backupctl") / self.median(
            direction, streams, "s3transfer"
        )

    def rss_bound_mib(self, streams: int) -> float:
        return RSS_BASE_MIB + streams * self.part_size / MIB

    def scaling(self, direction: str, tool: str) -> float | None:
        if 1 not in self.streams or 4 not in self.streams:
            return None
        return self.median(direction, 4, tool) / self.median(direction, 1, tool)

    def summary(self) -> dict[str, Any]:
        rows = []
        for direction in DIRECTIONS:
            for n in self.streams:
                rows.append(
                    {
                        "direction": direction,
                        "streams": n,
                        "ideal_mib_per_s": n * self.rate_mib,
                        **{
                            f"{tool}_{what}": round(self.median(direction, n, tool, attr), 3)
                            for tool in TOOLS.values()
                            for what, attr in (
                                ("mib_per_s", "mib_per_s"),
                                ("seconds", "seconds"),
                                ("cpu_s", "cpu_seconds"),
                                ("moto_cpu_s", "moto_cpu_seconds"),
                                ("proxy_cpu_s", "proxy_cpu_seconds"),
                                ("peak_connections", "peak_connections"),
                                ("connections", "connections"),
                            )
                        },
                        "ratio": round(self.ratio(direction, n), 3),
                        "backupctl_moto_busy": round(self.moto_busy(direction, n, "backupctl"), 2),
                        "s3transfer_moto_busy": round(
                            self.moto_busy(direction, n, "s3transfer"), 2
                        ),
                        "server_bound": self.server_bound(direction, n),
                        "backupctl_peak_rss_mib": round(
                            self.peak_rss_mib(direction, n, "backupctl"), 1
                        ),
                        "s3transfer_peak_rss_mib": round(
                            self.peak_rss_mib(direction, n, "s3transfer"), 1
                        ),
                        "rss_bound_mib": self.rss_bound_mib(n),
                    }
                )
        scaling = {
            f"{tool}_{direction}": (
                None if (s := self.scaling(direction, tool)) is None else round(s, 2)
            )
            for direction in DIRECTIONS
            for tool in TOOLS.values()
        }
        return {
            "part_size_mib": self.part_size / MIB,
            "baseline_rss_mib": round((self.baseline_rss_kb or 0) / 1024, 1),
            "rows": rows,
            "scaling_4_over_1": scaling,
        }


def bench(setup: Setup, streams: list[int], repeat: int, warmup: bool) -> Result:
    """Every direction at every N, both tools interleaved (s3transfer first in odd
    repetitions, backupctl first in even ones; repetition 0 is the warm-up), on a fresh
    moto server per N."""
    result = Result(streams, setup.part_size, setup.rate_mib, None)
    for n in streams:
        with servers(setup, n):
            if result.baseline_rss_kb is None:
                baseline = run_child(setup, job_for(setup, "baseline", "backupctl", 1, 0))
                result.baseline_rss_kb = baseline["peak_rss_kb"]
                print(
                    f"  baseline child (imports, both clients): RSS "
                    f"{baseline['peak_rss_kb'] / 1024:.1f} MiB",
                    flush=True,
                )
            for direction in DIRECTIONS:
                for rep, tool in interleaved(repeat, warmup):
                    run = run_one(setup, direction, tool, n, rep)
                    result.runs.append(run)
                    print_run(run, setup)
    return result


# --------------------------------------------------------------------------- report


def markdown_tables(r: Result) -> str:
    lines = [
        f"part size {r.part_size / MIB:.0f} MiB, {r.rate_mib:g} MiB/s per connection; "
        f"baseline RSS (imports, clients) {(r.baseline_rss_kb or 0) / 1024:.1f} MiB",
        "",
        "| direction | N | N x rate | s3transfer MiB/s | backupctl MiB/s | ratio "
        "| backupctl peak RSS MiB | bound MiB | s3transfer peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for direction in DIRECTIONS:
        for n in r.streams:
            star = "*" if r.server_bound(direction, n) else ""
            lines.append(
                f"| {direction} | {n}{star} | {n * r.rate_mib:g} "
                f"| {r.median(direction, n, 's3transfer'):.1f} "
                f"| {r.median(direction, n, 'backupctl'):.1f} "
                f"| {r.ratio(direction, n):.2f} "
                f"| {r.peak_rss_mib(direction, n, 'backupctl'):.0f} "
                f"| {r.rss_bound_mib(n):.0f} "
                f"| {r.peak_rss_mib(direction, n, 's3transfer'):.0f} |"
            )
    if any(r.server_bound(d, n) for d in DIRECTIONS for n in r.streams):
        lines += [
            "",
            f"\\* server-bound: moto's one interpreter was busy >= {SERVER_BOUND:.0%} of the "
            "transfer for at least one tool; the throughput there is moto's on this machine, "
            "not the proxy's cap.",
        ]
    lines += [
        "",
        "| direction | N | tool | median s | CPU s: client / moto / proxy | moto busy "
        "| connections opened (peak at once) |",
        "|---|---:|---|---:|---|---:|---|",
    ]
    for direction in DIRECTIONS:
        for n in r.streams:
            for tool in TOOLS.values():

                def med(attr: str, d: str = direction, k: int = n, t: str = tool) -> float:
                    return r.median(d, k, t, attr)

                lines.append(
                    f"| {direction} | {n} | {tool} | {med('seconds'):.2f} "
                    f"| {med('cpu_seconds'):.1f} / {med('moto_cpu_seconds'):.1f} / "
                    f"{med('proxy_cpu_seconds'):.1f} "
                    f"| {r.moto_busy(direction, n, tool):.0%} "
                    f"| {med('connections'):.0f} ({med('peak_connections'):.0f}) |"
                )
    return "\n".join(lines)


def verdicts(r: Result) -> list[str]:
    lines = []
    for direction in DIRECTIONS:
        ratios = {n: r.ratio(direction, n) for n in r.streams}
        ok = all(x >= TARGET_RATIO for x in ratios.values())
        listed = ", ".join(
            f"x{n} {x:.2f}{'*' if r.server_bound(direction, n) else ''}" for n, x in ratios.items()
        )
        lines.append(f"{direction} ratio >= {TARGET_RATIO} at every N: {mark(ok)} ({listed})")
    for direction in DIRECTIONS:
        s = r.scaling(direction, "backupctl")
        t = r.scaling(direction, "s3transfer")
        if s is None or t is None:
            lines.append(f"{direction} scaling 1 -> 4 streams: not measured (needs 1 and 4)")
            continue
        bound = " (x4 server-bound*)" if r.server_bound(direction, 4) else ""
        lines.append(
            f"backupctl {direction} scaling 1 -> 4 streams >= {TARGET_SCALING:g}x: "
            f"{mark(s >= TARGET_SCALING)} ({s:.2f}x; s3transfer {t:.2f}x){bound}"
        )
    over = [
        f"{d} x{n} {r.peak_rss_mib(d, n, 'backupctl'):.0f} > {r.rss_bound_mib(n):.0f}"
        for d in DIRECTIONS
        for n in r.streams
        if r.peak_rss_mib(d, n, "backupctl") > r.rss_bound_mib(n)
    ]
    worst = max(
        r.peak_rss_mib(d, n, "backupctl") - r.rss_bound_mib(n)
        for d in DIRECTIONS
        for n in r.streams
    )
    detail = "; ".join(over) if over else f"closest: {-worst:.0f} MiB under"
    lines.append(
        f"backupctl peak RSS <= {RSS_BASE_MIB} MiB + N x {r.part_size / MIB:.0f} MiB: "
        f"{mark(not over)} ({detail})"
    )
    if any(r.server_bound(d, n) for d in DIRECTIONS for n in r.streams):
        lines.append("* server-bound: moto, not the proxy's cap, was the limit (see the table)")
    return lines


def environment(workdir: Path) -> dict[str, Any]:
    from importlib.metadata import version

    env = {
        **host_environment(),
        **{pkg: version(pkg) for pkg in ("boto3", "botocore", "s3transfer", "moto")},
        "backupctl_commit": git_describe(),
        "workdir": str(workdir),
    }
    print(
        f"{env['cpus']} CPUs, boto3 {env['boto3']}, s3transfer {env['s3transfer']}, "
        f"moto {env['moto']}, workdir {workdir}",
        flush=True,
    )
    return env


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=256, help="MiB in the object (default: 256)")
    parser.add_argument(
        "--rate-mb",
        type=float,
        default=40.0,
        help="MiB/s per connection and direction at the proxy (default: 40)",
    )
    parser.add_argument(
        "--streams", default="1,2,4,8", help="N, comma-separated (default: 1,2,4,8)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="measured runs per tool, N, direction"
    )
    parser.add_argument(
        "--request-checksums",
        choices=("when_supported", "when_required"),
        default="when_supported",
        help="botocore's request_checksum_calculation in both tools (backupctl: the "
        "repository's checksums option; default when_supported: a CRC32 per part and "
        "ChecksumAlgorithm=CRC32 on CreateMultipartUpload; when_required: neither)",
    )
    add_warmup_arg(parser, "skip the unmeasured warm-up pair per N and direction")
    add_run_args(
        parser, holds="the object, moto's spool and the logs", results=BENCH_NAME, buffer_pool=None
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one operation, as JSON
    args = parser.parse_args(argv)
    if args.child is None:
        try:
            args.streams = [int(n) for n in args.streams.split(",")]
        except ValueError:
            parser.error("--streams needs integers, e.g. 1,2,4,8")
        if any(n < 1 or n > 64 for n in args.streams):
            parser.error("--streams: each N must be 1..64 (backupctl's limits)")
        if args.size_mb <= 0 or args.rate_mb <= 0 or args.repeat < 1:
            parser.error("--size-mb and --rate-mb must be positive, --repeat at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    workdir, json_out = begin(args, BENCH_NAME)
    size = args.size_mb * MIB
    # the size of backupctl's first part for this size hint, with the spec's default
    # part_size_mb (the stored ETags prove both tools used it)
    default_part = RepositorySpec(url=f"s3://{BUCKET}/{PREFIX}").part_size_mb * MIB
    part_size = PartSizer(default_part, size, MAX_PARTS).next(1, 0)
    with workdir_cleanup(workdir, args.keep, "moto's server and the proxy were stopped"):
        env = child_env(workdir, args.request_checksums)
        os.environ.clear()
        os.environ.update(env)  # the direct client's fake credentials
        host_env = environment(workdir)
        file = workdir / "object.bin"
        print(f"generating {args.size_mb} MiB of random bytes ...", flush=True)
        digest = make_object(file, size)
        setup = Setup(
            workdir,
            env,
            args.rate_mb,
            file,
            size,
            digest,
            part_size,
            multipart_etag(file, part_size),
        )
        print(
            f"object {args.size_mb} MiB in parts of {part_size // MIB} MiB, "
            f"{args.rate_mb:g} MiB/s per connection, streams {args.streams}, "
            f"request checksums {args.request_checksums}",
            flush=True,
        )
        result = bench(setup, args.streams, args.repeat, args.warmup)
        write_results_doc(
            json_out,
            BENCH_NAME,
            args,
            {
                "ratio_at_least": TARGET_RATIO,
                "scaling_1_to_4_at_least": TARGET_SCALING,
                "peak_rss_mib_at_most": f"{RSS_BASE_MIB} + N x part size",
            },
            host_env,
            summary=result.summary(),
            runs=[asdict(run) | {"moto_busy": round(run.moto_busy, 3)} for run in result.runs],
            verdicts=verdicts(result),
        )
    print_summary(markdown_tables(result), verdicts(result), json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
