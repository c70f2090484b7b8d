"""Stream a stored backup back into a directory, and prepare it with mariabackup."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import structlog

from backupctl.catalog.manifest import Artifact, Manifest
from backupctl.errors import ToolError, VerificationFailed
from backupctl.pipeline import decompress
from backupctl.proc import dies_with_us, grow_pipe, lock_fds, require_tool, tail_text
from backupctl.progress import ProgressFactory, no_progress
from backupctl.storage.base import Repository

DATA_ARTIFACT = "data.mbstream.zst"
LOG_ARTIFACT = "mariabackup.log.zst"
OK_MARK = "completed OK!"

log = structlog.get_logger()


class _Checked:
    """Chunks of a stored object, hashed on the way; ``verify()`` compares with the manifest."""

    def __init__(self, repo: Repository, key: str):
        self._chunks = repo.iter_read(key)
        self._digest = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._digest.update(chunk)
            self.size += len(chunk)
            yield chunk

    def drain(self) -> None:
        for _ in self:
            pass

    def matches(self, artifact: Artifact) -> bool:
        return self.size == artifact.stored_bytes and self._digest.hexdigest() == artifact.sha256


class _StderrReader:
    """Reads a child's stderr in a thread, so the child never blocks on it."""

    def __init__(self, stream: IO[bytes]):
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self._chunks.append(line)

    def text(self) -> str:
        self._thread.join(30)
        return b"".join(self._chunks).decode(errors="replace")


def _close(stream: IO[bytes]) -> None:
    with contextlib.suppress(BrokenPipeError):  # the child exited early: its status says why
        stream.close()


#: what mbstream prints when it skips a file it will not write: it still exits 0 (10.11)
_MBSTREAM_REFUSALS = ("invalid filename", "failed to create file")


class _UnsafeName(Exception):
    """The stream names a file outside the target directory."""


class _StreamNames:
    """Follows the chunk headers of the mbstream (xbstream) format through the bytes fed to
    ``mbstream -x`` and refuses, before mbstream has read the whole name, a file name that
    is absolute, has a ``..`` part or a NUL byte: a stream from a tampered repository must
    not write outside the target. Headers: magic ``XBSTCK01``, flags (1), type (1), path
    length (4, LE), path, then for payload chunks length (8), offset (8), checksum (4) and
    the payload, which is only counted."""

    _FIXED = 14

    def __init__(self, where: str):
        self.where = where
        self._header = bytearray()
        self._skip = 0

    def _wanted(self) -> int:
        head = self._header
        if len(head) < self._FIXED:
            return self._FIXED
        path_len = int.from_bytes(head[10:14], "little")
        return self._FIXED + path_len + (0 if head[9:10] == b"E" else 20)

    def check(self, chunk: bytes) -> None:
        """Raise _UnsafeName when ``chunk`` completes the header of an unsafe name."""
        view, pos = memoryview(chunk), 0
        while pos < len(view):
            if self._skip:
                step = min(self._skip, len(view) - pos)
                self._skip, pos = self._skip - step, pos + step
                continue
            take = min(self._wanted() - len(self._header), len(view) - pos)
            self._header += view[pos : pos + take]
            pos += take
            if len(self._header) == self._wanted():
                self._end_of_header()

    def _end_of_header(self) -> None:
        head = self._header
        if len(head) == self._FIXED:  # the path length is known only now
            if head[:8] != b"XBSTCK01":
                raise _UnsafeName(f"{self.where} is not an mbstream (no chunk magic)")
            if int.from_bytes(head[10:14], "little") >= 4096:
                raise _UnsafeName(f"{self.where}: a file name longer than 4096 bytes")
            return
        path_len = int.from_bytes(head[10:14], "little")
        name = bytes(head[self._FIXED : self._FIXED + path_len])
        parts = name.split(b"/")
        if not name or name.startswith(b"/") or b"\0" in name or b".." in parts:
            raise _UnsafeName(
                f"refusing {self.where}: the stream names the file {name!r}, outside the "
                "target directory (tampered with?)"
            )
        if head[9:10] != b"E":
            start = self._FIXED + path_len
            self._skip = int.from_bytes(head[start : start + 8], "little")
        self._header = bytearray()


def extract(
    repo: Repository,
    manifest: Manifest,
    target: Path,
    progress: ProgressFactory = no_progress,
    parallel: int = 1,
) -> None:
    """Fetch, decompress and ``mbstream -x`` the backup into ``target`` (no temporary archive),
    checking the stored object's sha256 on the way; ``parallel``: mbstream's threads
    writing files (``-p``, the policy's ``backup.parallel``).

    Raises VerificationFailed when the object does not match its manifest (corrupt) or
    names a file outside ``target`` (tampered), ToolError when mbstream fails on an intact
    object.
    """
    artifact = manifest.artifact(DATA_ARTIFACT)
    mbstream = require_tool("mbstream", "mariadb-backup")
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        dies_with_us([mbstream, "-x", f"--parallel={max(1, parallel)}", "-C", str(target)]),
        pass_fds=lock_fds(),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stderr is not None
    grow_pipe(proc.stdin.fileno())
    stored = _Checked(repo, artifact.key)
    errors = _StderrReader(proc.stderr)  # never let a full stderr pipe block mbstream
    names = _StreamNames(f"{repo.url}/{artifact.key}")
    failure: BaseException | None = None
    try:
        with progress("extracting", artifact.raw_bytes) as advance:
            for chunk in decompress(stored, artifact.raw_bytes):
                names.check(chunk)
                proc.stdin.write(chunk)
                advance(len(chunk))
    except _UnsafeName as exc:
        proc.kill()
        proc.wait()
        raise VerificationFailed(str(exc)) from None
    except (BrokenPipeError, VerificationFailed) as exc:
        failure = exc
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        _close(proc.stdin)  # on every path: mbstream must see the end of its input
    returncode = proc.wait()
    err = errors.text()
    if failure is not None or returncode != 0:
        stored.drain()  # tell corruption in the repository apart from a tool failure
    if not stored.matches(artifact):
        raise VerificationFailed(
            f"{repo.url}/{artifact.key} does not match its manifest (sha256/size): corrupt object"
        )
    if isinstance(failure, VerificationFailed):
        raise failure
    if returncode != 0:
        if full := _no_space(target, err, "mbstream -x", artifact.raw_bytes):
            raise full
        raise ToolError(f"mbstream -x failed (exit {returncode}): {tail_text(err, 5)}")
    if any(refusal in err for refusal in _MBSTREAM_REFUSALS):
        raise VerificationFailed(f"mbstream -x skipped files of the stream: {tail_text(err, 5)}")


#: how mbstream ("Errcode: 28") and InnoDB ("error number 28") say ENOSPC
_NO_SPACE_MARKS = ("No space left on device", "Errcode: 28", "error number 28")


def _no_space(target: Path, output: str, tool: str, needed: int = 0) -> ToolError | None:
    """Return a ToolError naming ``target`` and its filesystem's space when ``output`` says
    the disk filled up, else None."""
    if not any(mark in output for mark in _NO_SPACE_MARKS):
        return None
    space = ""
    with contextlib.suppress(OSError):
        usage = shutil.disk_usage(target if target.exists() else target.parent)
        space = f"; {usage.free >> 20} MiB free of {usage.total >> 20} MiB"
    if needed:
        space += f"; the backup is {needed >> 20} MiB unpacked"
    lines = [line for line in output.splitlines() if any(m in line for m in _NO_SPACE_MARKS)]
    said = "".join(ch for ch in lines[-1] if ch.isprintable()).strip()
    return ToolError(f"no space left on device writing {target} ({tool}{space}): {said}")


#: bounds of the default ``--use-memory`` of a prepare (a quarter of the available memory)
PREPARE_MEMORY_MIN, PREPARE_MEMORY_MAX = 256 << 20, 16 << 30


def _available_memory() -> int:
    """MemAvailable: what can be used without swapping (the live server keeps its share)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo") as fh:
            line = next(line for line in fh if line.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def default_prepare_memory(available: int | None = None) -> str:
    """``--use-memory`` for a prepare: a quarter of the available memory, from 256M to 16G.
    The live server still runs while a restore prepares, so it must not be starved; a
    bigger buffer pool applies a night of redo on a large server far faster."""
    share = (_available_memory() if available is None else available) // 4
    return f"{min(PREPARE_MEMORY_MAX, max(PREPARE_MEMORY_MIN, share)) >> 20}M"


def prepare(
    target: Path,
    mariabackup: str = "mariabackup",
    use_memory: str | None = None,
    incremental_dir: Path | None = None,
) -> str:
    """Run ``mariabackup --prepare`` on an extracted backup, or with ``incremental_dir``
    apply that extracted incremental to the prepared backup in ``target``; return its log.
    ``use_memory`` (e.g. "4G"): its buffer pool, by default ``default_prepare_memory()``.

    Raises VerificationFailed when it fails or does not say "completed OK!".
    """
    binary = require_tool(mariabackup, "mariadb-backup")
    memory = use_memory or default_prepare_memory()
    argv = [binary, "--prepare", f"--target-dir={target}", f"--use-memory={memory}"]
    if incremental_dir is not None:
        argv.append(f"--incremental-dir={incremental_dir}")
    proc = subprocess.run(
        dies_with_us(argv),
        pass_fds=lock_fds(),
        capture_output=True,
        text=True,
        check=False,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 and (full := _no_space(target, output, "mariabackup --prepare")):
        raise full  # the disk, not the backup: not a verification failure
    if proc.returncode != 0 or OK_MARK not in tail_text(output, 5):
        raise VerificationFailed(
            f"mariabackup --prepare failed (exit {proc.returncode}):\n{tail_text(output, 10)}"
        )
    return output
