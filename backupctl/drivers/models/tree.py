"""A model directory as a list of entries: files (size, mode, sha256), directories and
symlinks, with a tree hash over all of them.

Hashing every file of a multi-GB model on each check would cost more than the copy of
what changed, so a file whose size, mtime, ctime and inode equal the previous version's
reuses that version's hash (as restic does).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backupctl.errors import BackupFailed

CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    path: str  # relative, "/"-separated
    kind: str  # "file" | "dir" | "symlink"
    mode: int
    size: int = 0
    sha256: str = ""
    target: str = ""  # symlinks
    mtime_ns: int = 0
    ctime_ns: int = 0
    inode: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in ("", 0) or k == "mode"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(**data)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        for name in sorted(dirnames):
            yield here / name
        for name in sorted(filenames):
            yield here / name


def scan_tree(root: Path, previous: dict[str, Entry] | None = None) -> list[Entry]:
    """Every entry under ``root``; hashes reused from ``previous`` when the stat matches.

    Raises BackupFailed when ``root`` is not a directory or a file cannot be read.
    """
    if not root.is_dir():
        raise BackupFailed(f"model directory {root} does not exist or is not a directory")
    previous = previous or {}
    entries = []
    for path in _walk(root):
        rel = path.relative_to(root).as_posix()
        try:
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                entries.append(Entry(rel, "symlink", 0o777, target=os.readlink(path)))
            elif stat.S_ISDIR(info.st_mode):
                entries.append(Entry(rel, "dir", stat.S_IMODE(info.st_mode)))
            elif stat.S_ISREG(info.st_mode):
                entries.append(_file_entry(path, rel, info, previous.get(rel)))
        except OSError as exc:
            raise BackupFailed(f"cannot read {path}: {exc.strerror}") from exc
    return entries


def _file_entry(path: Path, rel: str, info: os.stat_result, before: Entry | None) -> Entry:
    same = (
        before is not None
        and before.kind == "file"
        and before.size == info.st_size
        and before.mtime_ns == info.st_mtime_ns
        and before.ctime_ns == info.st_ctime_ns  # a restored mtime still changes ctime
        and before.inode == info.st_ino
    )
    digest = before.sha256 if same and before is not None else file_sha256(path)
    return Entry(
        rel,
        "file",
        stat.S_IMODE(info.st_mode),
        size=info.st_size,
        sha256=digest,
        mtime_ns=info.st_mtime_ns,
        ctime_ns=info.st_ctime_ns,
        inode=info.st_ino,
    )


def tree_hash(entries: list[Entry]) -> str:
    """sha256 over every entry's path, kind, mode, content hash and link target."""
    digest = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.path):
        digest.update(f"{e.path}\0{e.kind}\0{e.mode:o}\0{e.sha256}\0{e.target}\n".encode())
    return digest.hexdigest()


def read_version(root: Path, version_from: str, entries: list[Entry]) -> str:
    """The version: the stripped content of file ``version_from``, or the tree hash."""
    if version_from == "content-hash":
        return tree_hash(entries)[:16]
    path = root / version_from
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise BackupFailed(f"cannot read the version file {path}: {exc.strerror}") from exc
    if not text:
        raise BackupFailed(f"the version file {path} is empty")
    return text.splitlines()[0][:200]
