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
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from backupctl.errors import LockHeldError
from backupctl.layout import StateLayout
from backupctl.proc import children_hold
from backupctl.statefile import PRIVATE_FILE_MODE, private_dir
from backupctl.storage.base import Repository


def lane_lock(policy: str, lane: str = "") -> str:
    """The name of ``policy``'s lock for ``lane`` ("": its main lock). Backups of a kind in
    a lane of its own (binlogs) never wait for the others (a night's full backup)."""
    return f"{policy}.{lane}" if lane else policy


@contextmanager
def policy_lock(
    layout: StateLayout, policy: str, purpose: str = "backup", lane: str = ""
) -> Iterator[None]:
    """Hold the lock of ``policy`` (of its ``lane``) for the duration of the block.

    Raises LockHeldError at once (no waiting) when another process holds it.
    """
    private_dir(layout.locks)
    path = layout.lock(lane_lock(policy, lane))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeldError(_held_message(policy, lane, path)) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "purpose": purpose,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            with children_hold(fd):
                yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def lanes_locked(
    layout: StateLayout,
    repo: Repository | None,
    policy: str,
    lanes: Iterable[str],
    purpose: str,
) -> Iterator[None]:
    """Hold ``policy``'s locks of ``lanes`` (the main one first): here and, with ``repo``,
    across every host sharing it. Raises LockHeldError (holding none) when one is taken."""
    with ExitStack() as held:
        for lane in sorted(set(lanes)):
            held.enter_context(policy_lock(layout, policy, purpose, lane))
            if repo is not None:
                held.enter_context(repo.lock(policy, purpose, lane))
        yield


#: the lane ``binlog follow`` holds for a policy (beside the policy's own locks)
FOLLOW_LANE = "follow"
#: the lane ``copy`` runs under: prune holds it too (every driver's all_lanes), so
#: nothing a copy reads is deleted under it; a restore does not wait for it
COPY_LANE = "copy"


def follow_lock(policy: str) -> str:
    """The lock name ``binlog follow`` holds for ``policy``."""
    return lane_lock(policy, FOLLOW_LANE)


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
    pid, host = holder.get("pid"), holder.get("host")
    text = f"{holder.get('purpose', 'run')} by pid {pid} on {host}, since {holder.get('since')}"
    if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        # killed, but a tool it started works on: held until that tool ends
        text += f"; pid {pid} is gone, a tool it started still holds the lock (fuser {path})"
    return text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _held_message(policy: str, lane: str, path: Path) -> str:
    who = _holder_text(path)
    what = f"{lane} run" if lane else "run"
    return (
        f"another {what} of policy {policy!r} is in progress{f' ({who})' if who else ''}; "
        f"lock {path}"
    )
