"""Putting a materialised version in front of the service in one atomic step.

A served path that is a symlink is repointed with rename(2) over a new link. A real
directory is swapped with its replacement by renameat2(RENAME_EXCHANGE), so the path
always names a complete directory (two renames are the fallback where the kernel or
filesystem cannot exchange).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

from backupctl.errors import BackupctlError

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; return False when the system cannot (nothing changed)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported here
        return False
    raise BackupctlError(f"cannot swap {a} and {b}: {os.strerror(errno)}")


def swap_in(new: Path, served: Path) -> str:
    """Make ``served`` the content of directory ``new``; ``new`` then holds what was served
    (or, for a symlink, stays where it is and the link points at it). Returns how."""
    if served.is_symlink():
        link = served.with_name(f".{served.name}.link-{os.getpid()}")
        link.unlink(missing_ok=True)
        link.symlink_to(new)
        old_target = os.readlink(served)
        os.replace(link, served)
        return f"symlink {served} -> {new} (was -> {old_target})"
    if not served.exists():
        os.rename(new, served)
        return f"{new} renamed to {served}"
    if exchange(new, served):
        return f"{served} swapped with the restored version (renameat2 exchange)"
    aside = new.with_name(new.name + ".old")
    os.rename(served, aside)
    os.rename(new, served)
    os.rename(aside, new)
    return f"{served} replaced by rename (no atomic exchange on this filesystem)"
