"""A model directory as a list of entries: files (size, mode, sha256), directories and
symlinks, with a tree hash over all of them.

Hashing every file of a multi-GB model on each check would cost more than the copy of
what changed, so a file whose size, mtime, ctime and inode equal the previous version's
reuses that version's hash (as restic does).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backupctl.errors import BackupFailed, VerificationFailed

CHUNK = 1 << 20
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


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


def safe_entries(raw: object, where: str) -> list[Entry]:
    """The entries a manifest lists (``details.entries``), refused unless each stays in the
    model directory: a relative path without ``.``/``..`` or empty parts, listed once,
    under a directory listed before it (so never under a symlink), a known kind, a mode
    without file-type bits, a sha256 for files, a symlink target that stays in the tree.

    A tampered repository must not make a restore write, chmod or point outside the
    staging directory. Raises VerificationFailed naming the first offending entry."""

    def refuse(what: str) -> VerificationFailed:
        return VerificationFailed(f"refusing model version {where}: {what} (tampered?)")

    if not isinstance(raw, list):
        raise refuse("its manifest has no list of entries")
    entries: list[Entry] = []
    kinds: dict[str, str] = {}
    for item in raw:
        try:
            entry = Entry.from_dict(item) if isinstance(item, dict) else None
        except TypeError:
            entry = None
        if (
            entry is None
            or not isinstance(entry.path, str)
            or entry.kind not in ("file", "dir", "symlink")
            or not isinstance(entry.mode, int)
            or not 0 <= entry.mode <= 0o7777
        ):
            raise refuse(f"malformed entry {str(item)[:120]}")
        parts = entry.path.split("/")
        if "\0" in entry.path or any(part in ("", ".", "..") for part in parts):
            raise refuse(f"path {entry.path!r} would leave the model directory")
        if entry.path in kinds:
            raise refuse(f"path {entry.path!r} is listed twice")
        parent = "/".join(parts[:-1])
        if parent and kinds.get(parent) != "dir":
            found = kinds.get(parent, "not listed before it")
            raise refuse(f"{entry.path!r} is not inside a directory (its parent is {found})")
        if entry.kind == "file" and not (
            isinstance(entry.sha256, str) and _SHA256_RE.match(entry.sha256)
        ):
            raise refuse(f"file {entry.path!r} has no valid sha256")
        if entry.kind == "symlink":
            target = entry.target if isinstance(entry.target, str) else ""
            inside = posixpath.normpath(posixpath.join(parent, target))
            escapes = inside == ".." or inside.startswith("../")
            if not target or "\0" in target or target.startswith("/") or escapes:
                raise refuse(f"symlink {entry.path!r} points outside the model ({target!r})")
        kinds[entry.path] = entry.kind
        entries.append(entry)
    return entries
