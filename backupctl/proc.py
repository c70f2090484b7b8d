"""Running external tools: secrets through memory-backed files, never argv."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from backupctl.errors import ToolError


def dies_with_us(argv: list[str]) -> list[str]:
    """``argv`` run under ``setpriv --pdeathsig KILL`` (util-linux): the kernel kills the
    tool when the thread that started it dies, so a ``kill -9`` of backupctl leaves no
    ``mariabackup --prepare`` working on a directory a ``--resume`` will touch, and no
    ``mariadb-binlog --stop-never`` streaming on. Only for a child the starting thread
    waits for (a worker thread that exits first would kill it). Without setpriv, as is."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


#: lock descriptors the tools this thread starts on a locked policy's files hold too
_LOCK_FDS: ContextVar[tuple[int, ...]] = ContextVar("lock_fds", default=())


@contextmanager
def children_hold(fd: int) -> Iterator[None]:
    """Within the block, tools started with ``pass_fds=lock_fds()`` share the open lock
    file ``fd``: its flock then stays held while one of them still works, even after
    backupctl itself was killed, so a ``--resume`` cannot start a second ``mariabackup
    --prepare`` (or a second binlog stream) on the same directory. Per thread (context)."""
    token = _LOCK_FDS.set((*_LOCK_FDS.get(), fd))
    try:
        yield
    finally:
        _LOCK_FDS.reset(token)


def lock_fds() -> tuple[int, ...]:
    """The lock descriptors a tool started now should hold (see children_hold)."""
    return _LOCK_FDS.get()


def require_tool(name: str, package: str) -> str:
    """Return the full path of ``name``. Raises ToolError naming the Debian package."""
    if os.sep in name:
        if os.access(name, os.X_OK):
            return name
        raise ToolError(f"{name} is not an executable file")
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        raise ToolError(f"{name} not found: install the Debian package {package}")
    return path


@contextmanager
def secret_file(content: str) -> Iterator[tuple[str, int]]:
    """Yield (path, fd) of a 0600 in-memory file holding ``content``.

    The file lives in an anonymous memfd: it is never on a disk and disappears with
    the last process holding it, even after SIGKILL. Pass ``fd`` in ``pass_fds`` so
    the child can open ``path`` (``/dev/fd/N``).
    """
    fd = os.memfd_create("backupctl-secret", os.MFD_CLOEXEC)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, content.encode())
        yield f"/dev/fd/{fd}", fd
    finally:
        os.close(fd)


F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, Linux


def grow_pipe(fd: int, size: int = 1 << 20) -> None:
    """Ask for a bigger pipe buffer: the default 64 KiB makes a fast producer and consumer
    wake each other up for every few pages. Harmless when refused."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_SETPIPE_SZ, size)


def option_value(value: str) -> str:
    """Quote a value for a MySQL/MariaDB option file."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def mysql_option_file(group: str, options: dict[str, str | int | None]) -> str:
    """Return the text of an option file with one ``[group]`` and the non-None options."""
    lines = [f"[{group}]"]
    for key, value in options.items():
        if value is not None:
            lines.append(f"{key}={option_value(str(value))}")
    return "\n".join(lines) + "\n"


def process_args() -> Iterator[tuple[int, list[str]]]:
    """Yield (pid, argv) of every process whose command line can be read."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            raw = cmdline.read_bytes()
        except OSError:  # it exited meanwhile
            continue
        if raw:
            yield int(cmdline.parent.name), raw.decode(errors="replace").rstrip("\0").split("\0")


def tail_text(text: str, lines: int = 20) -> str:
    """Return the last ``lines`` non-empty lines of ``text``."""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])
