"""Benchmark: client-side repository encryption (AES-256-GCM in 1 MiB chunks) against the
plain repository, on the same data.

Per run it streams ``--size-mib`` MiB of random (incompressible) bytes, in 1 MiB writes,
into a file:// repository and reads the object back, once through the plain
``LocalRepository`` and once through ``EncryptedRepository`` over it; the order alternates
between runs. It also times the cipher alone, in memory, against a plain copy of the same chunks,
to show what encryption costs without the disk. Throughput is MiB of plaintext per second.

    .venv/bin/python bench/bench_encryption.py [--size-mib 512] [--repeat 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

import cryptography  # noqa: E402

from backupctl.storage.base import Repository  # noqa: E402
from backupctl.storage.encryption import (  # noqa: E402
    CHUNK_SIZE,
    EncryptedRepository,
    decrypt_stream,
    encrypt_stream,
)
from backupctl.storage.local import LocalRepository  # noqa: E402

MIB = 1 << 20
KEY = os.urandom(32)


def plaintext(size_mib: int, block: bytes) -> Iterator[bytes]:
    """``size_mib`` MiB as 1 MiB writes: a random 16 MiB block, cycled (no RNG in the
    timing), each write a distinct slice of it."""
    for n in range(size_mib):
        offset = (n % (len(block) // MIB)) * MIB
        yield block[offset : offset + MIB]


def time_repository(repo: Repository, size_mib: int, block: bytes) -> tuple[float, float, str]:
    """Return (write seconds, read seconds, sha256 of what was read back)."""
    start = time.perf_counter()
    with repo.open_write("bench/object") as writer:
        for data in plaintext(size_mib, block):
            writer.write(data)
        writer.commit()
    wrote = time.perf_counter() - start
    start = time.perf_counter()
    digest = hashlib.sha256()
    for data in repo.iter_read("bench/object"):
        digest.update(data)
    read = time.perf_counter() - start
    repo.delete("bench/object")
    return wrote, read, digest.hexdigest()


def time_in_memory(size_mib: int, block: bytes) -> tuple[float, float, float]:
    """Time, in memory with no disk: a plain copy of every chunk, encryption, decryption.
    Decryption reads one sealed 16 MiB object again and again (the same amount of data,
    without holding ``size_mib`` MiB of ciphertext). Return the three durations."""
    start = time.perf_counter()
    for data in plaintext(size_mib, block):
        bytearray(data)  # the copy a pass-through makes
    copy = time.perf_counter() - start
    start = time.perf_counter()
    for _sealed in encrypt_stream(plaintext(size_mib, block), KEY, "bench/object"):
        pass
    encrypt = time.perf_counter() - start
    sealed = list(encrypt_stream([block], KEY, "bench/object"))
    rounds = max(1, size_mib // (len(block) // MIB))
    start = time.perf_counter()
    total = 0
    for _ in range(rounds):
        total += sum(len(c) for c in decrypt_stream(sealed, KEY, "bench/object"))
    decrypt = (time.perf_counter() - start) * size_mib * MIB / total
    return copy, encrypt, decrypt


def _rate(size_mib: int, seconds: list[float]) -> float:
    return size_mib / statistics.median(seconds)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    block = os.urandom(16 * MIB)
    expected = hashlib.sha256(b"".join(plaintext(args.size_mib, block))).hexdigest()
    plain_repo = LocalRepository(workdir / "plain")
    makers: dict[str, Callable[[], Repository]] = {
        "plain": lambda: plain_repo,
        "encrypted": lambda: EncryptedRepository(LocalRepository(workdir / "encrypted"), KEY),
    }
    times: dict[str, dict[str, list[float]]] = {name: {"write": [], "read": []} for name in makers}
    for run_no in range(args.repeat + 1):  # run 0 warms up and is not counted
        order = list(makers) if run_no % 2 else list(reversed(makers))
        for name in order:
            wrote, read, digest = time_repository(makers[name](), args.size_mib, block)
            if digest != expected:
                raise SystemExit(f"{name}: read back different bytes")
            if run_no:
                times[name]["write"].append(wrote)
                times[name]["read"].append(read)
    rates = {
        f"file:// repository, {name}": {
            op: round(_rate(args.size_mib, t), 1) for op, t in ops.items()
        }
        for name, ops in times.items()
    }
    memory = [time_in_memory(args.size_mib, block) for _ in range(args.repeat)]
    rates["in memory: plain copy"] = {
        "write": round(_rate(args.size_mib, [m[0] for m in memory]), 1),
        "read": round(_rate(args.size_mib, [m[0] for m in memory]), 1),
    }
    rates["in memory: AES-256-GCM"] = {
        "write": round(_rate(args.size_mib, [m[1] for m in memory]), 1),
        "read": round(_rate(args.size_mib, [m[2] for m in memory]), 1),
    }
    return {"rates_mib_s": rates, "seconds": times}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new dir in /tmp")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-encryption-", dir=args.workdir or "/tmp"))
    try:
        measured = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rates = measured["rates_mib_s"]
    print(f"{args.size_mib} MiB, {args.repeat} runs (median), chunks of {CHUNK_SIZE // MIB} MiB\n")
    print("| path | write (encrypt) MiB/s | read (decrypt) MiB/s |")
    print("|---|---:|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate['write']:.0f} | {rate['read']:.0f} |")
    plain, encrypted = (rates[f"file:// repository, {n}"] for n in ("plain", "encrypted"))
    slow_w, slow_r = plain["write"] / encrypted["write"], plain["read"] / encrypted["read"]
    print(f"\nencrypted / plain time: write x{slow_w:.2f}, read x{slow_r:.2f}")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H%M")
    json_out = args.json_out or REPO_ROOT / "bench" / "results" / f"encryption-{stamp}.json"
    json_out.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "benchmark": "encryption",
        "size_mib": args.size_mib,
        "repeat": args.repeat,
        "chunk_bytes": CHUNK_SIZE,
        **measured,
        "slowdown": {"write": round(slow_w, 2), "read": round(slow_r, 2)},
        "environment": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "cryptography": cryptography.__version__,
            "aes_ni": "aes" in Path("/proc/cpuinfo").read_text().split(),
        },
    }
    json_out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
