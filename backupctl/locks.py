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
from backupctl.layout import StateLayout
from backupctl.statefile import PRIVATE_FILE_MODE, private_dir


@contextmanager
def policy_lock(layout: StateLayout, policy: str, purpose: str = "backup") -> Iterator[None]:
    """Hold the lock of ``policy`` for the duration of the block.

    Raises LockHeldError at once (no waiting) when another process holds it.
    """
    private_dir(layout.locks)
    path = layout.lock(policy)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
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


def follow_lock(policy: str) -> str:
    """The lock name ``binlog follow`` holds for ``policy`` (beside the policy's own lock)."""
    return f"{policy}.follow"


def lock_holder(layout: StateLayout, name: str) -> str | None:
    """Describe who holds lock ``name``, or None when nobody does (checked, not taken)."""
    path = layout.lock(name)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder_text(path) or "another process"
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _holder_text(path: Path) -> str:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return ""
    if not holder:
        return ""
    return (
        f"{holder.get('purpose', 'run')} by pid {holder.get('pid')}"
        f" on {holder.get('host')}, since {holder.get('since')}"
    )


def _held_message(policy: str, path: Path) -> str:
    who = _holder_text(path)
    return (
        f"another run of policy {policy!r} is in progress{f' ({who})' if who else ''}; lock {path}"
    )
