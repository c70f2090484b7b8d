"""Which indices a restore touches, and what they are called afterwards."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from backupctl.catalog.manifest import Manifest
from backupctl.drivers.elasticsearch.details import SnapshotDetails
from backupctl.errors import UsageError, VerificationFailed
from backupctl.policy.elasticsearch import ElasticsearchRestore

_JAVA_GROUP = re.compile(r"\$(\d+)")
#: Elasticsearch's rules for index, snapshot and repository names: lowercase, none of
#: \ / * ? " < > | space , # :, not starting with - _ +, not . or .., at most 255 bytes.
#: Wildcards and commas are what matter here: "*" in a name from a manifest would make a
#: restore close (or delete) every index, a prune delete every snapshot.
_ES_NAME = re.compile(r'^(?![-_+])(?!\.{1,2}$)[^\\/*?"<>| ,#:A-Z\x00-\x1f]{1,255}$')
_ES_REPOSITORY = re.compile(r'^(?![-_+])(?!\.{1,2}$)[^\\/*?"<>| ,#\x00-\x1f]{1,255}$')


def check_names(manifest: Manifest) -> SnapshotDetails:
    """The manifest's details, once they are known to fit and to name only plain
    Elasticsearch names as snapshot, repository and indices (they go into API paths).
    Raises VerificationFailed naming the backup when they do not."""
    details = SnapshotDetails.of(manifest)
    names = [("snapshot", details.snapshot, _ES_NAME)]
    names += [("repository", details.repository, _ES_REPOSITORY)]
    names += [("index", name, _ES_NAME) for name in details.indices]
    for what, name, rule in names:
        if not rule.match(name) or len(name.encode()) > 255:
            raise VerificationFailed(
                f"refusing backup {manifest.backup_id}: its manifest names the {what} "
                f"{name!r}, not a plain Elasticsearch name (tampered?)"
            )
    return details


def copies_under(prefix: str, restore: ElasticsearchRestore) -> ElasticsearchRestore:
    """Restore options that bring every index back as ``<prefix><name>`` (a deep verify's
    or a drill's copies, never the live indices), waiting and verifying as ``restore``."""
    return ElasticsearchRestore(
        mode="rename",
        rename_pattern="(.+)",
        rename_replacement=f"{prefix}$1",
        wait_for=restore.wait_for,
        recovery_timeout=restore.recovery_timeout,
        verify=restore.verify,
    )


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
    names after the restore. Raises UsageError when ``only`` matches nothing,
    VerificationFailed for names no snapshot can hold (``check_names``)."""
    stored = sorted(check_names(manifest).indices)
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
