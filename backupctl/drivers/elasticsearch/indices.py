"""Which indices a restore touches, and what they are called afterwards."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from backupctl.catalog.manifest import Manifest
from backupctl.errors import UsageError
from backupctl.policy.elasticsearch import ElasticsearchRestore

_JAVA_GROUP = re.compile(r"\$(\d+)")


def java_replacement(replacement: str) -> str:
    """Elasticsearch's ``rename_replacement`` uses Java's ``$1``; Python's re wants ``\\1``."""
    return _JAVA_GROUP.sub(lambda m: f"\\g<{m.group(1)}>", replacement.replace("\\", "\\\\"))


@dataclass(frozen=True)
class IndexMap:
    """Snapshot index -> the index it is restored as."""

    targets: dict[str, str]
    renamed: bool

    @property
    def sources(self) -> list[str]:
        return sorted(self.targets)

    @property
    def restored(self) -> list[str]:
        return [self.targets[s] for s in self.sources]


def index_map(
    manifest: Manifest, options: ElasticsearchRestore, only: list[str] | None
) -> IndexMap:
    """The indices of ``manifest`` to restore (all, or those matching ``only``) and their
    names after the restore. Raises UsageError when ``only`` matches nothing."""
    stored = sorted((manifest.details.get("indices") or {}).keys())
    chosen = stored
    if only:
        chosen = [name for name in stored if any(fnmatch.fnmatchcase(name, p) for p in only)]
        if not chosen:
            raise UsageError(
                f"--indices {','.join(only)} matches none of the snapshot's indices "
                f"({', '.join(stored[:10]) or 'none'})"
            )
    if options.mode != "rename":
        return IndexMap({name: name for name in chosen}, renamed=False)
    try:
        pattern = re.compile(options.rename_pattern)
    except re.error as exc:
        raise UsageError(f"restore.rename_pattern is not a valid regex: {exc}") from exc
    replacement = java_replacement(options.rename_replacement)
    targets = {name: pattern.sub(replacement, name) for name in chosen}
    clashes = [s for s, t in targets.items() if s == t]
    if clashes:
        raise UsageError(
            f"rename mode would restore {', '.join(clashes[:5])} under the same name; "
            "check restore.rename_pattern and rename_replacement"
        )
    return IndexMap(targets, renamed=True)
