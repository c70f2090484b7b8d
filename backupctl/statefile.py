"""Small JSON files in the state directory that several processes update: changed under
an flock, written to a temporary file, fsynced and renamed, so no update is lost and no
reader ever sees half a file.

Everything backupctl creates for itself (state, local repositories, reports, scratch
areas) is private, whatever the umask: directories 0700 (``private_dir``), files 0600
(``write_atomic``, ``open_private``). The CLI also sets the umask to 077
(``use_private_umask``), so what the tools it runs create (mbstream, mariadb-binlog, git,
a recovery mariadbd) is private too; hooks get the umask backupctl was started with.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PRIVATE_UMASK = 0o077
#: the umask the process had before use_private_umask (None: never called)
_inherited_umask: int | None = None


def use_private_umask() -> int:
    """Set the process umask to 077; return the one it replaced (also kept for hooks,
    see ``inherited_umask``)."""
    global _inherited_umask
    previous = os.umask(PRIVATE_UMASK)
    if previous != PRIVATE_UMASK or _inherited_umask is None:
        _inherited_umask = previous
    return previous


def inherited_umask() -> int | None:
    """The umask backupctl was started with, when ``use_private_umask`` replaced it: what
    the operator's own commands (hooks) should get back. None otherwise."""
    return _inherited_umask


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents as 0700 directories whatever the umask
    (``mkdir -p`` gives parents the default mode); directories that exist keep theirs.
    Return ``path``. Raises OSError."""
    missing = []
    current = Path(path)
    while not current.is_dir() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE_DIR_MODE)
        except FileExistsError:
            if directory.is_dir():
                continue  # another process made it meanwhile
            raise
        os.chmod(directory, PRIVATE_DIR_MODE)  # the umask may have taken bits away
    return path


def open_private(path: Path, mode: str = "w", *, exclusive: bool = False) -> IO[Any]:
    """Open ``path`` for writing (``mode`` "w" or "wb"), created or truncated as a 0600
    file whatever the umask; ``exclusive``: fail when it exists. Raises OSError."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    flags |= os.O_EXCL if exclusive else os.O_TRUNC
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # an existing file keeps its mode otherwise
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_path`` (created, with its directory, when missing).
    Keep the block short. Raises OSError."""
    private_dir(lock_path.parent)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def write_atomic(path: Path, text: str | bytes, mode: int = PRIVATE_FILE_MODE) -> None:
    """Replace ``path`` with ``text`` (or bytes) all at once (temporary file in the same
    directory, fsync, rename, fsync of the directory); the file gets ``mode`` whatever the
    umask. Raises OSError."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb" if isinstance(text, bytes) else "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
