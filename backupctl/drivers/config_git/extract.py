"""Bringing a commit's files back into a directory, and checking what was written.

Files land at their absolute path under the target (``/etc/nginx/nginx.conf`` ->
``TARGET/etc/nginx/nginx.conf``). Nothing is ever written outside the target: every
tree path is checked component by component, parents must be real directories, and
files are created with ``O_EXCL | O_NOFOLLOW``. Modes come from the commit's metadata
(owners too, when running as root).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from backupctl.checks import CheckResult
from backupctl.drivers.config_git.details import is_object_id
from backupctl.drivers.config_git.gitrepo import (
    LINK_MODE,
    GitRepository,
    TreeEntry,
    file_object_id,
    object_id,
)
from backupctl.drivers.config_git.snapshot import (
    METADATA_PATH,
    Attributes,
    parse_metadata,
    printable,
)
from backupctl.errors import UsageError, VerificationFailed


@dataclass
class Selection:
    """What a restore writes: the blobs and directories of one commit, under ``prefix``."""

    commit: str
    prefix: str  # "/" for everything, else an absolute path
    blobs: list[TreeEntry] = field(default_factory=list)
    attributes: dict[str, Attributes] = field(default_factory=dict)

    @property
    def directories(self) -> list[str]:
        return sorted(p for p, a in self.attributes.items() if a.kind == "dir")

    def describe(self) -> str:
        links = sum(1 for b in self.blobs if b.mode == LINK_MODE)
        where = "" if self.prefix == "/" else f" under {self.prefix}"
        return (
            f"{len(self.blobs) - links} file(s), {links} link(s) and "
            f"{len(self.directories)} director(ies){where} of commit {self.commit[:12]}"
        )


def select(git: GitRepository, commit: str, only: Path | None) -> Selection:
    """The entries of ``commit`` at or under ``only`` (an absolute path; None: all).

    Raises UsageError when ``only`` is relative or the commit holds nothing there."""
    if only is not None and not only.is_absolute():
        raise UsageError(f"--path must be absolute (as in the policy's paths), got {only}")
    prefix = os.path.normpath(str(only)) if only is not None else "/"
    if not is_object_id(commit):  # from the manifest: never an option or a rev expression
        raise VerificationFailed(f"refusing commit id {commit!r} from the manifest (tampered?)")
    entries = git.ls_tree(commit)
    meta = [e for e in entries if e.path == METADATA_PATH]
    try:
        attributes = parse_metadata(next(git.read_blobs([meta[0].sha]))) if meta else {}
    except (ValueError, LookupError, TypeError, AttributeError) as exc:
        raise VerificationFailed(f"unreadable metadata in commit {commit[:12]}: {exc}") from None
    _refuse_escapes(commit, entries, attributes)
    chosen = Selection(commit, prefix)
    for entry in entries:
        if entry.path != METADATA_PATH and _within("/" + os.fsdecode(entry.path), prefix):
            chosen.blobs.append(entry)
    chosen.attributes = {p: a for p, a in attributes.items() if _within(p, prefix)}
    if not chosen.blobs and not chosen.attributes:
        raise UsageError(f"{prefix} is not in commit {commit[:12]}")
    return chosen


def _refuse_escapes(
    commit: str, entries: list[TreeEntry], attributes: dict[str, Attributes]
) -> None:
    """Refuse, before anything is written, a commit whose tree could write outside the
    target: a path with ``..``, ``.`` or empty parts, or one inside another file or link
    (written through a symlink), and metadata for such paths. Git never makes these; a
    tree crafted with ``git mktree``/``hash-object`` can. Raises VerificationFailed."""
    leaves = {e.path for e in entries}
    for entry in entries:
        parts = entry.path.split(b"/")
        inside = [b"/".join(parts[:i]) for i in range(1, len(parts))]
        if any(part in (b"", b".", b"..") for part in parts) or leaves.intersection(inside):
            raise VerificationFailed(
                f"refusing commit {commit[:12]}: its tree holds {entry.path!r}, which would "
                "be written outside the target directory (a crafted tree?)"
            )
    for name, attrs in attributes.items():
        path = os.fsencode(name)
        unsafe = not path.startswith(b"/") or any(
            part in (b".", b"..") for part in path.split(b"/")
        )
        if unsafe or (attrs.kind == "dir" and path.lstrip(b"/") in leaves):
            raise VerificationFailed(
                f"refusing commit {commit[:12]}: its metadata names {name!r} (tampered?)"
            )


def _within(path: str, prefix: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def destination(target: Path, tree_path: bytes) -> Path:
    """Where a tree path goes under ``target``. Raises VerificationFailed for a path that
    could leave it (empty, ``.`` or ``..`` components)."""
    parts = tree_path.split(b"/")
    if any(part in (b"", b".", b"..") for part in parts):
        raise VerificationFailed(f"refusing unsafe path {tree_path!r} in the commit")
    return target.joinpath(*(os.fsdecode(p) for p in parts))


def _make_parents(target: Path, path: Path) -> None:
    current = target
    for part in path.relative_to(target).parts[:-1]:
        current = current / part
        try:
            os.mkdir(current, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                raise VerificationFailed(
                    f"{current} is not a directory; refusing to write through it"
                ) from None


def _apply(path: Path, attrs: Attributes | None, default_mode: int) -> None:
    if attrs is not None and os.geteuid() == 0:
        os.lchown(path, attrs.uid, attrs.gid)  # before chmod: chown clears set-id bits
    if not path.is_symlink():
        os.chmod(path, attrs.mode if attrs is not None else default_mode)


def extract(git: GitRepository, chosen: Selection, target: Path) -> str:
    """Write ``chosen`` under ``target`` (which must be empty); return a detail."""
    written = 0
    contents = git.read_blobs([b.sha for b in chosen.blobs])
    for blob, data in zip(chosen.blobs, contents, strict=True):
        path = destination(target, blob.path)
        _make_parents(target, path)
        attrs = chosen.attributes.get("/" + os.fsdecode(blob.path))
        if blob.mode == LINK_MODE:
            os.symlink(data, path)
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(path, flags, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        _apply(path, attrs, 0o755 if blob.mode == "100755" else 0o644)
        written += len(data)
    for directory in chosen.directories:
        path = destination(target, os.fsencode(directory).lstrip(b"/"))
        _make_parents(target, path / "x")
    # directory modes last, deepest first: a 0500 directory must not stop the writes
    for path in sorted(_dirs_under(target), key=lambda p: len(p.parts), reverse=True):
        attrs = chosen.attributes.get("/" + path.relative_to(target).as_posix())
        _apply(path, attrs, 0o755)
    return f"wrote {chosen.describe()} ({written} bytes) into {target}"


def _dirs_under(target: Path) -> list[Path]:
    return [Path(d) for d, _subdirs, _files in os.walk(target) if Path(d) != target]


def verify(git: GitRepository, chosen: Selection, target: Path) -> list[CheckResult]:
    """Named checks: every written file and link against its blob id, every mode (and
    owner, when running as root) against the commit's metadata."""
    object_format = git.object_format()
    wrong = [
        printable(str(destination(target, b.path)))
        for b in chosen.blobs
        if not _same_blob(destination(target, b.path), b, object_format)
    ]
    modes, owners = _attribute_differences(chosen, target)
    checks = [
        _check(
            "content",
            wrong,
            f"{len(chosen.blobs)} file(s) and link(s) byte-identical "
            f"to commit {chosen.commit[:12]}",
        ),
        _check("modes", modes, f"{len(chosen.attributes)} entries with the recorded modes"),
    ]
    if os.geteuid() == 0:
        checks.append(_check("owners", owners, "every entry with the recorded owner"))
    else:
        checks.append(CheckResult("owners", True, "not applied: restoring as a non-root user"))
    return checks


def _same_blob(path: Path, blob: TreeEntry, object_format: str) -> bool:
    if blob.mode == LINK_MODE:
        target = os.readlink(os.fsencode(path)) if path.is_symlink() else None
        return target is not None and object_id(target, object_format) == blob.sha
    return path.is_file() and file_object_id(path, object_format) == blob.sha


def _attribute_differences(chosen: Selection, target: Path) -> tuple[list[str], list[str]]:
    modes, owners = [], []
    for name, attrs in chosen.attributes.items():
        path = destination(target, os.fsencode(name).lstrip(b"/"))
        if not os.path.lexists(path):
            modes.append(f"{printable(str(path))} (missing)")
            continue
        st = path.lstat()
        # Linux keeps no mode on a symlink
        if attrs.kind != "link" and stat.S_IMODE(st.st_mode) != attrs.mode:
            found = f"{stat.S_IMODE(st.st_mode):04o}, not {attrs.mode:04o}"
            modes.append(f"{printable(str(path))} ({found})")
        if (st.st_uid, st.st_gid) != (attrs.uid, attrs.gid):
            owners.append(
                f"{printable(str(path))} ({st.st_uid}:{st.st_gid}, not {attrs.uid}:{attrs.gid})"
            )
    return modes, owners


def _check(name: str, problems: list[str], ok: str) -> CheckResult:
    if not problems:
        return CheckResult(name, True, ok)
    return CheckResult(name, False, f"{len(problems)} differ: {', '.join(problems[:5])}")


def clear(target: Path) -> int:
    """Remove everything inside ``target`` (made writable first); return how many went."""
    if not target.is_dir() or target.is_symlink():
        return 0
    for directory, subdirs, _files in os.walk(target):  # first let us in and write
        for name in subdirs:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
    removed = 0
    for directory, subdirs, files in os.walk(target, topdown=False):
        for name in files:
            os.unlink(os.path.join(directory, name))
            removed += 1
        for name in subdirs:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                os.unlink(path)
            else:
                os.rmdir(path)
            removed += 1
    return removed
