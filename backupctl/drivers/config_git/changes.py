"""From a snapshot to a Git tree, and what changed between two recorded states."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from backupctl.drivers.config_git.gitrepo import LINK_MODE, GitRepository, TreeEntry
from backupctl.drivers.config_git.snapshot import (
    METADATA_PATH,
    Attributes,
    Snapshot,
    metadata_json,
    parse_metadata,
    printable,
    tree_path,
)


@dataclass(frozen=True)
class Entry:
    """One path of a recorded state: its Git mode and blob (none for a directory)."""

    mode: str  # "100644", "100755", "120000", or "dir"
    sha: str
    attributes: Attributes | None  # None when the commit has no metadata for it


State = dict[str, Entry]  # absolute path -> entry


def build_tree(git: GitRepository, snapshot: Snapshot) -> tuple[str, State]:
    """Store every file, link target and the metadata as blobs; write the tree.

    Returns the tree id and the state it records. Raises ToolError when git fails
    (e.g. a file vanished between the scan and the read)."""
    files, links = snapshot.of_kind("file"), snapshot.of_kind("link")
    file_ids = git.hash_paths([os.fsencode(p) for p in files])
    targets = [os.readlink(os.fsencode(p)) for p in links]
    meta = metadata_json(snapshot.entries)
    *link_ids, meta_id = git.hash_contents([*targets, meta])
    state: State = {}
    for path, sha in zip(files, file_ids, strict=True):
        attrs = snapshot.entries[path]
        state[path] = Entry("100755" if attrs.mode & 0o111 else "100644", sha, attrs)
    for path, sha in zip(links, link_ids, strict=True):
        state[path] = Entry(LINK_MODE, sha, snapshot.entries[path])
    for path in snapshot.of_kind("dir"):
        state[path] = Entry("dir", "", snapshot.entries[path])
    blobs = [TreeEntry(e.mode, e.sha, tree_path(p)) for p, e in state.items() if e.mode != "dir"]
    blobs.append(TreeEntry("100644", meta_id, METADATA_PATH))
    return git.write_tree(blobs), state


def read_state(git: GitRepository, commit: str) -> State:
    """The state a commit records (attributes from its metadata, when it has some)."""
    entries = git.ls_tree(commit)
    meta = [e for e in entries if e.path == METADATA_PATH]
    attrs = parse_metadata(next(git.read_blobs([meta[0].sha]))) if meta else {}
    state: State = {}
    for entry in entries:
        if entry.path != METADATA_PATH:
            path = "/" + os.fsdecode(entry.path)
            state[path] = Entry(entry.mode, entry.sha, attrs.get(path))
    for path, item in attrs.items():
        if item.kind == "dir":
            state[path] = Entry("dir", "", item)
    return state


@dataclass
class Changes:
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def counts(self) -> str:
        return f"{len(self.changed)} changed, {len(self.added)} added, {len(self.removed)} removed"

    def paths(self, limit: int) -> str:
        """The first ``limit`` paths (changed, then added, then removed), "…" for the rest."""
        every = [*self.changed, *self.added, *self.removed]
        shown = ", ".join(every[:limit])
        return shown + (", …" if len(every) > limit else "")


def compare(old: State, new: State) -> Changes:
    """What differs: content, type, mode or owner. A directory is named only when its
    own attributes changed or nothing inside it explains its coming or going."""
    changes = Changes()
    for path in sorted(new.keys() & old.keys()):
        if _differs(old[path], new[path]):
            changes.changed.append(_shown(path, new[path]))
    changes.added = _without_explained(new, sorted(new.keys() - old.keys()))
    changes.removed = _without_explained(old, sorted(old.keys() - new.keys()))
    return changes


def _differs(old: Entry, new: Entry) -> bool:
    if (old.mode, old.sha) != (new.mode, new.sha):
        return True
    return None not in (old.attributes, new.attributes) and old.attributes != new.attributes


def _without_explained(state: State, paths: list[str]) -> list[str]:
    ancestors = {os.path.dirname(p) for p in paths}
    ancestors |= {a for p in list(ancestors) for a in _parents(p)}
    return [_shown(p, state[p]) for p in paths if not (state[p].mode == "dir" and p in ancestors)]


def _parents(path: str) -> list[str]:
    parents = []
    while (parent := os.path.dirname(path)) != path:
        parents.append(parent)
        path = parent
    return parents


def _shown(path: str, entry: Entry) -> str:
    return printable(path) + ("/" if entry.mode == "dir" else "")


def commit_message(policy: str, changes: Changes, trailers: dict[str, str]) -> str:
    """``configs: 2 changed, 1 added, 0 removed: /etc/a, …``, every path, then trailers."""
    lines = [f"{policy}: {changes.counts}: {changes.paths(3)}", ""]
    for verb, paths in (
        ("changed", changes.changed),
        ("added", changes.added),
        ("removed", changes.removed),
    ):
        lines += [f"{verb}: {path}" for path in paths]
    lines.append("")
    lines += [f"{key}: {value}" for key, value in trailers.items()]
    return "\n".join(lines) + "\n"
