"""Per-policy locks: flock on a file in the state directory.

The kernel releases an flock when its holder dies, so a lock left by a killed
process can never block the next run.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backupctl.errors import LockHeldError


@contextmanager
def policy_lock(state_dir: Path, policy: str, purpose: str = "backup") -> Iterator[None]:
    """Hold the lock of ``policy`` for the duration of the block.

    Raises LockHeldError at once (no waiting) when another process holds it.
    """
    lock_dir = state_dir / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{policy}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeldError(_held_message(policy, path)) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "purpose": purpose,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _held_message(policy: str, path: Path) -> str:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    who = ""
    if holder:
        who = (
            f" ({holder.get('purpose', 'run')} by pid {holder.get('pid')}"
            f" on {holder.get('host')}, since {holder.get('since')})"
        )
    return f"another run of policy {policy!r} is in progress{who}; lock {path}"
