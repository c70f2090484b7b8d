"""A real, tiny filesystem for disk-full tests: a tmpfs, or an ext4 loop device when
tmpfs cannot be mounted. Mounting needs root; without it (or when the kernel refuses
both) the test is skipped with the reason. Everything mounted is unmounted at teardown,
whatever happened."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def _why(proc: subprocess.CompletedProcess[str]) -> str:
    return f"`{' '.join(proc.args)}` exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()}"


def _unmount(path: Path) -> None:
    if _run("umount", str(path)).returncode != 0:  # still busy: detach it anyway
        _run("umount", "--lazy", str(path))


def _mount_tiny(path: Path, size_mb: int, image_dir: Path) -> Callable[[], None]:
    """Mount a ``size_mb`` filesystem on ``path``; return how to unmount it. Skips the
    test, with the commands' errors, when neither a tmpfs nor a loop device mounts."""
    path.mkdir(parents=True, exist_ok=True)
    tmpfs = _run("mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(path))
    if tmpfs.returncode == 0:
        return lambda: _unmount(path)
    image = image_dir / f"{path.name}.ext4"
    steps = [
        ("truncate", "-s", f"{size_mb}M", str(image)),
        ("mkfs.ext4", "-q", "-F", "-m", "0", str(image)),
        ("mount", "-o", "loop", str(image), str(path)),
    ]
    for step in steps:
        if shutil.which(step[0]) is None:
            pytest.skip(f"cannot mount a tiny filesystem: {_why(tmpfs)}; {step[0]} is missing")
        done = _run(*step)
        if done.returncode != 0:
            image.unlink(missing_ok=True)
            pytest.skip(f"cannot mount a tiny filesystem: {_why(tmpfs)}; {_why(done)}")

    def unmount() -> None:
        _unmount(path)
        image.unlink(missing_ok=True)

    return unmount


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Callable[[str | Path, int], Path]]:
    """``mount(where, size_mb) -> Path``: a fresh, tiny filesystem on ``tmp_path/where``, or
    on ``where`` itself when it is an absolute path (removed again at teardown)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny filesystem needs root")
    unmounts: list[Callable[[], None]] = []

    def mount(where: str | Path, size_mb: int) -> Path:
        path = Path(where) if Path(where).is_absolute() else tmp_path / where
        unmount = _mount_tiny(path, size_mb, tmp_path)
        if path.is_relative_to(tmp_path):
            unmounts.append(unmount)
        else:
            unmounts.append(lambda: (unmount(), shutil.rmtree(path, ignore_errors=True)))
        return path

    try:
        yield mount
    finally:
        for unmount in reversed(unmounts):
            unmount()
