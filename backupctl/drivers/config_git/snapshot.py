"""What the policy's paths hold right now: files, symlinks and directories with their
permission bits and owners, minus what the excludes name.

Git records only whether a file is executable, so the exact modes (and owners) of every
entry go into the tree as ``.backupctl-metadata.json``; a restore applies them.
Directories are recorded there too, so empty ones come back.
"""

from __future__ import annotations

import fnmatch
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

METADATA_PATH = b".backupctl-metadata.json"

Kind = Literal["file", "link", "dir"]


@dataclass(frozen=True)
class Attributes:
    """What Git does not keep about an entry: its type, exact mode and owner."""

    kind: Kind
    mode: int  # permission bits, set-id and sticky bits included
    uid: int
    gid: int

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "mode": f"{self.mode:04o}", "uid": self.uid, "gid": self.gid}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attributes:
        return cls(data["type"], int(data["mode"], 8), int(data["uid"]), int(data["gid"]))


@dataclass
class Snapshot:
    """The entries found under the policy's paths (absolute path -> attributes)."""

    entries: dict[str, Attributes] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # sockets, devices, .git directories
    unreadable: list[str] = field(default_factory=list)

    def of_kind(self, kind: Kind) -> list[str]:
        return sorted(p for p, a in self.entries.items() if a.kind == kind)


def is_excluded(path: str, patterns: Iterable[str]) -> bool:
    """True when a pattern matches: by name without a '/', by absolute path with one."""
    name = os.path.basename(path)
    for pattern in patterns:
        if "/" in pattern:
            if fnmatch.fnmatchcase(path, pattern.rstrip("/") or "/"):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def scan(paths: Iterable[Path], exclude: list[str], skip: Iterable[Path] = ()) -> Snapshot:
    """Walk ``paths`` without following symlinks; never reads file contents."""
    found = Snapshot()
    skipped = {os.path.normpath(p) for p in skip}
    for root in paths:
        top = os.path.normpath(str(root))
        if is_excluded(top, exclude):
            found.excluded.append(top)
            continue
        try:
            info = os.lstat(top)
        except FileNotFoundError:
            found.missing.append(top)
            continue
        _visit(found, top, info, exclude, skipped)
    return found


def _visit(
    found: Snapshot, top: str, info: os.stat_result, exclude: list[str], skipped: set[str]
) -> None:
    stack = [(top, info)]
    while stack:
        path, st = stack.pop()
        if path in found.entries:
            continue  # the policy lists it twice, or a path inside another one
        kind = _kind(st.st_mode)
        if kind is None or path in skipped:
            found.skipped.append(path)
            continue
        found.entries[path] = Attributes(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        if kind == "file":
            found.sizes[path] = st.st_size
            if not os.access(path, os.R_OK):
                found.unreadable.append(path)
        elif kind == "dir":
            stack.extend(_children(found, path, exclude))


def _children(
    found: Snapshot, directory: str, exclude: list[str]
) -> list[tuple[str, os.stat_result]]:
    try:
        with os.scandir(directory) as items:
            children = sorted(items, key=lambda e: e.name, reverse=True)
    except PermissionError:
        found.unreadable.append(directory)
        return []
    result = []
    for child in children:
        path = os.path.join(directory, child.name)
        if child.name.lower() == ".git":  # Git refuses such paths in a tree
            found.skipped.append(path)
        elif is_excluded(path, exclude):
            found.excluded.append(path)
        else:
            try:
                result.append((path, child.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue  # removed while we walked
    return result


def _kind(mode: int) -> Kind | None:
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return None


def printable(path: str) -> str:
    """A path for messages and manifests: undecodable bytes and control characters
    escaped (``\\xff``, ``\\n``)."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def tree_path(path: str) -> bytes:
    """``/etc/nginx/nginx.conf`` -> ``b"etc/nginx/nginx.conf"`` (the path inside the tree)."""
    return os.fsencode(path).lstrip(b"/")


def metadata_json(entries: dict[str, Attributes]) -> bytes:
    """The metadata blob: deterministic, so an unchanged snapshot gives the same tree."""
    body = {"format": 1, "entries": {p: a.to_json() for p, a in sorted(entries.items())}}
    return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()


def parse_metadata(raw: bytes) -> dict[str, Attributes]:
    """Read a metadata blob back (absolute path -> attributes)."""
    data = json.loads(raw)
    return {path: Attributes.from_json(item) for path, item in data["entries"].items()}
