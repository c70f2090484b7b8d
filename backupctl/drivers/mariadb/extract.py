"""Stream a stored backup back into a directory, and prepare it with mariabackup."""

from __future__ import annotations

import subprocess
from pathlib import Path

import structlog

from backupctl.catalog.manifest import Manifest
from backupctl.errors import ToolError, VerificationFailed
from backupctl.pipeline import decompress
from backupctl.proc import require_tool, tail_text
from backupctl.progress import ProgressFactory, no_progress
from backupctl.storage.base import Repository

DATA_ARTIFACT = "data.mbstream.zst"
LOG_ARTIFACT = "mariabackup.log.zst"
OK_MARK = "completed OK!"

log = structlog.get_logger()


def extract(
    repo: Repository, manifest: Manifest, target: Path, progress: ProgressFactory = no_progress
) -> None:
    """Fetch, decompress and ``mbstream -x`` the backup into ``target`` (no temporary archive).

    Raises VerificationFailed when the stream is corrupt, ToolError when mbstream fails.
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
    try:
        with progress("extracting", artifact.raw_bytes) as advance:
            for chunk in decompress(repo.iter_read(artifact.key)):
                proc.stdin.write(chunk)
                advance(len(chunk))
        proc.stdin.close()
    except BrokenPipeError:
        pass
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    err = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        raise ToolError(f"mbstream -x failed (exit {proc.returncode}): {tail_text(err, 5)}")


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
