"""Stream a stored backup back into a directory, and prepare it with mariabackup."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import structlog

from backupctl.catalog.manifest import Artifact, Manifest
from backupctl.errors import ToolError, VerificationFailed
from backupctl.pipeline import decompress
from backupctl.proc import grow_pipe, require_tool, tail_text
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


def extract(
    repo: Repository, manifest: Manifest, target: Path, progress: ProgressFactory = no_progress
) -> None:
    """Fetch, decompress and ``mbstream -x`` the backup into ``target`` (no temporary archive),
    checking the stored object's sha256 on the way.

    Raises VerificationFailed when the object does not match its manifest (corrupt),
    ToolError when mbstream fails on an intact object.
    """
    artifact = manifest.artifact(DATA_ARTIFACT)
    mbstream = require_tool("mbstream", "mariadb-backup")
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [mbstream, "-x", "-C", str(target)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stderr is not None
    grow_pipe(proc.stdin.fileno())
    stored = _Checked(repo, artifact.key)
    errors = _StderrReader(proc.stderr)  # never let a full stderr pipe block mbstream
    failure: BaseException | None = None
    try:
        with progress("extracting", artifact.raw_bytes) as advance:
            for chunk in decompress(stored, artifact.raw_bytes):
                proc.stdin.write(chunk)
                advance(len(chunk))
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
        raise ToolError(f"mbstream -x failed (exit {returncode}): {tail_text(err, 5)}")


def prepare(target: Path, mariabackup: str = "mariabackup", use_memory: str = "256M") -> str:
    """Run ``mariabackup --prepare`` on an extracted backup; return its log.

    Raises VerificationFailed when it fails or does not say "completed OK!".
    """
    binary = require_tool(mariabackup, "mariadb-backup")
    proc = subprocess.run(
        [binary, "--prepare", f"--target-dir={target}", f"--use-memory={use_memory}"],
        capture_output=True,
        text=True,
        check=False,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 or OK_MARK not in tail_text(output, 5):
        raise VerificationFailed(
            f"mariabackup --prepare failed (exit {proc.returncode}):\n{tail_text(output, 10)}"
        )
    return output
