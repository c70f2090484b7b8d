"""Which indices a restore touches, and what they are called afterwards."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

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


#: a backing index's name after its data stream's: ``.ds-<stream>-2026.11.22-000001``
_BACKING_SUFFIX = re.compile(r"^\d{4}\.\d{2}\.\d{2}-\d{6}$")
_BACKING_PREFIXES = (".ds-", ".fs-")


def data_stream_of(index: str, streams: list[str]) -> str | None:
    """The data stream among ``streams`` that ``index`` is a backing index of, or None
    (the longest name wins: ``logs-app``'s indices also start with ``.ds-logs-``)."""
    for prefix in _BACKING_PREFIXES:
        if not index.startswith(prefix):
            continue
        rest = index[len(prefix) :]
        for stream in sorted(streams, key=len, reverse=True):
            if rest.startswith(stream + "-") and _BACKING_SUFFIX.match(rest[len(stream) + 1 :]):
                return stream
    return None


def java_replacement(replacement: str) -> str:
    """Elasticsearch's ``rename_replacement`` uses Java's ``$1``; Python's re wants ``\\1``."""
    return _JAVA_GROUP.sub(lambda m: f"\\g<{m.group(1)}>", replacement.replace("\\", "\\\\"))


@dataclass(frozen=True)
class IndexMap:
    """What a restore names (indices, and data streams by their names) -> what each is
    called afterwards. A data stream's backing indices come back with it; system indices
    only through their feature state, never by name."""

    targets: dict[str, str]
    renamed: bool
    #: the sources that are data streams: name -> their backing indices in the snapshot
    data_streams: dict[str, list[str]] = field(default_factory=dict)
    #: system indices of the snapshot left out (restored only with their feature state)
    system: tuple[str, ...] = ()
    #: throwaway copies (a deep verify's, a drill's): no replicas, no lifecycle
    copies: bool = False

    @property
    def sources(self) -> list[str]:
        return sorted(self.targets)

    @property
    def restored(self) -> list[str]:
        return [self.targets[s] for s in self.sources]

    @property
    def plain(self) -> list[str]:
        """The sources that are indices (not data streams)."""
        return [s for s in self.sources if s not in self.data_streams]

    def is_stream(self, source: str) -> bool:
        return source in self.data_streams


def index_map(
    manifest: Manifest,
    options: ElasticsearchRestore,
    only: list[str] | None,
    copies: bool = False,
) -> IndexMap:
    """What to restore from ``manifest`` (everything, or what matches ``only``: index and
    data stream names) and the names after the restore. Raises UsageError when ``only``
    matches nothing, VerificationFailed for names no snapshot can hold (``check_names``)."""
    details = check_names(manifest)
    system = details.system_indices
    streams: dict[str, list[str]] = {name: [] for name in details.data_streams or []}
    plain = []
    for index in sorted(details.indices):
        if index in system:
            continue
        stream = data_stream_of(index, list(streams))
        if stream is not None:
            streams[stream].append(index)
        else:
            plain.append(index)
    stored = sorted([*plain, *streams])
    chosen = stored
    if only:
        chosen = [name for name in stored if any(fnmatch.fnmatchcase(name, p) for p in only)]
        if not chosen:
            raise UsageError(
                f"--indices {','.join(only)} matches none of the snapshot's indices "
                f"({', '.join(stored[:10]) or 'none'})"
            )
    kept = {name: streams[name] for name in chosen if name in streams}
    skipped = tuple(sorted(system))
    if options.mode != "rename":
        return IndexMap({n: n for n in chosen}, False, kept, skipped, copies)
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
    return IndexMap(targets, True, kept, skipped, copies)
