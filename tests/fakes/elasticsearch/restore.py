"""Restoring a snapshot, with the checks and messages of ``RestoreService``.

Every index is checked before any is touched (the real restore is one cluster-state
update): the aliases the restore would leave are validated too, so an alias that would
end up with two write indices fails the whole restore (500 ``illegal_state_exception``)
with nothing changed. A restored index is open, holds the documents the snapshot stored
(failed shards of a partial restore come back empty) and recovers for
``controls.recovery_delay`` seconds: its health is red until then.

System indices come back only as part of a feature state (``feature_states``, or every
feature with ``include_global_state`` and no ``feature_states``): naming one in
``indices`` is refused, a pattern skips them. A restored feature state replaces the
feature's live system indices and is never renamed. A data stream named (or matched) by
``indices`` comes back with its backing indices; backing indices named alone come back
as loose hidden indices. ``rename_pattern``/``rename_replacement`` rename a data stream
and, past their ``.ds-`` prefix, its backing indices. A data stream of the same name is
replaced (its backing indices that the snapshot does not hold stay, as loose indices: see
elastic/elasticsearch#74319); an open index of the same name as a restored one refuses
the restore.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import errors
from .cluster import BACKING_PREFIX, DataStream, Doc, Index, check_shard_settings
from .names import expand, simple_match, validate_index_name
from .repository import Repository
from .values import as_list, index_settings, new_uuid, now_millis, parse_bool

if TYPE_CHECKING:
    from .node import Node

RESTORE_KEYS = {
    "indices",
    "ignore_unavailable",
    "allow_no_indices",
    "expand_wildcards",
    "include_global_state",
    "include_aliases",
    "partial",
    "rename_pattern",
    "rename_replacement",
    "index_settings",
    "ignore_index_settings",
    "feature_states",
}
UNMODIFIABLE = {
    "index.number_of_shards",
    "index.version.created",
    "index.uuid",
    "index.creation_date",
    "index.history.uuid",
}
UNREMOVABLE = UNMODIFIABLE | {"index.number_of_replicas", "index.auto_expand_replicas"}
_NAMED_GROUP = re.compile(r"\(\?<([A-Za-z][A-Za-z0-9]*)>")


@dataclass
class RestoreResult:
    snapshot: str
    indices: list[str]
    shards_total: int
    shards_failed: int


@dataclass
class _Plan:
    target: str
    source: str
    payload: dict[str, Any]
    settings: dict[str, Any]
    existing: Index | None
    failed_shards: list[int]
    aliases: dict[str, dict[str, Any]]


def java_pattern(pattern: str) -> re.Pattern[str]:
    """A Java regex as Python's ``re`` reads it (``(?<name>...)`` groups included)."""
    try:
        return re.compile(_NAMED_GROUP.sub(r"(?P<\1>", pattern))
    except re.error as error:
        raise errors.illegal_argument(f"invalid rename_pattern [{pattern}]: {error}") from None


def java_replacement(replacement: str, match: re.Match[str]) -> str:
    """``Matcher.appendReplacement``: ``$n``, ``${name}`` and ``\\`` escapes."""
    out: list[str] = []
    pos = 0
    while pos < len(replacement):
        char = replacement[pos]
        if char == "\\" and pos + 1 < len(replacement):
            out.append(replacement[pos + 1])
            pos += 2
        elif char == "$":
            text, pos = _group_reference(replacement, pos + 1, match)
            out.append(text)
        else:
            out.append(char)
            pos += 1
    return "".join(out)


def _group_reference(replacement: str, pos: int, match: re.Match[str]) -> tuple[str, int]:
    if pos < len(replacement) and replacement[pos] == "{":
        end = replacement.find("}", pos)
        if end < 0:
            raise errors.illegal_argument("named capturing group is missing trailing '}'")
        return match.group(replacement[pos + 1 : end]) or "", end + 1
    if pos >= len(replacement) or not replacement[pos].isdigit():
        raise errors.illegal_argument("Illegal group reference")
    number = int(replacement[pos])
    pos += 1
    while pos < len(replacement) and replacement[pos].isdigit():
        longer = number * 10 + int(replacement[pos])
        if longer > (match.re.groups or 0):
            break
        number, pos = longer, pos + 1
    if number > (match.re.groups or 0):
        raise errors.EsError(500, "index_out_of_bounds_exception", f"No group {number}")
    return match.group(number) or "", pos


def rename(name: str, pattern: str | None, replacement: str | None) -> str:
    if pattern is None or replacement is None:
        return name
    return java_pattern(pattern).sub(lambda m: java_replacement(replacement, m), name)


def rename_backing(name: str, pattern: str | None, replacement: str | None) -> str:
    """``RestoreService.renameIndex`` of a data stream's backing index: the rename applies
    past the ``.ds-`` prefix, which is put back."""
    if not name.startswith(BACKING_PREFIX):
        return rename(name, pattern, replacement)
    return BACKING_PREFIX + rename(name[len(BACKING_PREFIX) :], pattern, replacement)


def _options(body: Any) -> dict[str, Any]:
    body = body or {}
    if not isinstance(body, dict):
        raise errors.parse_error("malformed restore request")
    for key in body:
        if key not in RESTORE_KEYS:
            raise errors.illegal_argument(f"Unknown parameter {key}")
    return {
        "indices": as_list(body.get("indices")),
        "ignore_unavailable": parse_bool(body.get("ignore_unavailable", False)),
        "include_global_state": parse_bool(body.get("include_global_state", False)),
        "include_aliases": parse_bool(body.get("include_aliases", True)),
        "partial": parse_bool(body.get("partial", False)),
        "rename_pattern": body.get("rename_pattern"),
        "rename_replacement": body.get("rename_replacement"),
        "index_settings": index_settings(body.get("index_settings")),
        "ignore_index_settings": as_list(body.get("ignore_index_settings")),
        "feature_states": [str(f) for f in body.get("feature_states") or []],
    }


def _settings(
    snapshot_settings: dict[str, Any], options: dict[str, Any], label: str
) -> dict[str, Any]:
    settings = dict(snapshot_settings)
    # RestoreService.updateIndexSettings: ignored keys are taken as written (no "index."
    # prefix added), exact names or simple patterns; unremovable ones survive patterns
    for key in options["ignore_index_settings"]:
        if "*" not in key and key in UNREMOVABLE:
            raise errors.snapshot_restore(label, f"cannot remove setting [{key}] on restore")
        for name in [n for n in settings if simple_match(key, n) and n not in UNREMOVABLE]:
            del settings[name]
    for key, value in options["index_settings"].items():
        if key in UNMODIFIABLE:
            raise errors.snapshot_restore(label, f"cannot modify setting [{key}] on restore")
        settings[key] = value
    check_shard_settings(settings)
    return settings


def restore(node: Node, repo_name: str, snapshot: str, body: Any) -> RestoreResult:
    """Validate the whole restore, then apply it."""
    repo = node.snapshots.repository(repo_name)
    entry = repo.catalog()["snapshots"].get(snapshot)
    if entry is None:
        raise errors.snapshot_restore(f"{repo_name}:{snapshot}", "snapshot does not exist")
    job = _Restore(node, repo, entry["info"], _options(body), entry.get("data_streams") or {})
    plans, streams, doomed = job.plan()
    now = node.clock()
    for name in doomed:
        node.cluster.indices.pop(name, None)
    for plan in plans:
        job.apply(plan, now)
    for stream in streams:
        node.cluster.data_streams[stream.name] = stream
    return RestoreResult(
        snapshot,
        [p.target for p in plans],
        sum(int(p.settings["index.number_of_shards"]) for p in plans),
        sum(len(p.failed_shards) for p in plans),
    )


@dataclass
class _Restore:
    node: Node
    repo: Repository
    info: dict[str, Any]
    options: dict[str, Any]
    stored_streams: dict[str, dict[str, Any]]

    @property
    def label(self) -> str:
        return f"{self.repo.name}:{self.info['snapshot']}/{self.info['uuid']}"

    def plan(self) -> tuple[list[_Plan], list[DataStream], list[str]]:
        """(index plans, data streams to (re)place, live system indices to delete)."""
        info, options = self.info, self.options
        if info["state"] not in ("SUCCESS", "PARTIAL"):
            raise errors.snapshot_restore(
                self.label, f"unsupported snapshot state [{info['state']}]"
            )
        if options["include_global_state"] and not info["include_global_state"]:
            raise errors.snapshot_restore(
                self.label,
                "cannot restore global state since the snapshot was created without global state",
            )
        features = self._feature_states()
        feature_indices = [i for indices in features.values() for i in indices]
        requested = list(options["indices"] or ["*"])
        stream_names, _ = expand(requested, sorted(self.stored_streams))
        streams = {n: self.stored_streams[n] for n in stream_names}
        backing = [i for n in stream_names for i in streams[n]["indices"]]
        requested = [r for r in requested if r not in streams] + backing
        system = {i for f in info.get("feature_states") or [] for i in f["indices"]}
        explicit = sorted(system.intersection(requested))
        if explicit:
            raise errors.illegal_argument(
                f"requested system indices [{', '.join(explicit)}], but system indices can only "
                "be restored as part of a feature state"
            )
        available = [i for i in info["indices"] if i not in system]
        names, missing = expand(requested, available) if requested else ([], [])
        if missing and not options["ignore_unavailable"]:
            raise errors.index_not_found(missing[0])
        names += [i for i in feature_indices if i not in names]
        failed: dict[str, list[int]] = {}
        for failure in info["failures"]:
            failed.setdefault(failure["index"], []).append(failure["shard_id"])
        doomed = self._doomed(features)
        targets = self._targets(names, set(backing), set(feature_indices))
        plans = [self._check(t, s, failed.get(s, []), doomed) for t, s in targets.items()]
        self._check_aliases(plans, doomed)
        return plans, self._streams(streams, targets), doomed

    def _feature_states(self) -> dict[str, list[str]]:
        """``RestoreService.getFeatureStatesToRestore``: feature name -> its indices."""
        stored = {f["feature_name"]: f["indices"] for f in self.info.get("feature_states") or []}
        requested = self.options["feature_states"]
        if not requested:
            chosen = dict(stored) if self.options["include_global_state"] else {}
        elif len(requested) == 1 and requested[0].lower() == "none":
            chosen = {}
        else:
            if "none" in requested:
                raise errors.snapshot_restore(
                    self.label,
                    "the feature_states value [none] indicates that no feature states should be "
                    "restored, but other feature states were requested: "
                    f"[{', '.join(sorted(set(requested)))}]",
                )
            unknown = sorted(set(requested) - set(stored))
            if unknown:
                raise errors.snapshot_restore(
                    self.label,
                    f"requested feature states [[{', '.join(unknown)}]] are not present in "
                    "snapshot",
                )
            chosen = {name: stored[name] for name in sorted(set(requested))}
        absent = [name for name in chosen if name not in self.node.cluster.features]
        if absent:
            raise errors.snapshot_restore(
                self.label,
                f"requested feature states [{', '.join(absent)}] are present in snapshot but "
                "those features are not installed on the current master node",
            )
        return chosen

    def _doomed(self, features: dict[str, list[str]]) -> list[str]:
        """The live system indices of the restored features: deleted first."""
        cluster = self.node.cluster
        doomed = []
        for name in features:
            feature = cluster.features[name]
            doomed += [
                i.name
                for i in cluster.indices.values()
                if i.system == name or (i.system is not None and feature.owns(i.name))
            ]
        return sorted(doomed)

    def _targets(self, names: list[str], backing: set[str], system: set[str]) -> dict[str, str]:
        """Renamed index -> index in the snapshot."""
        pattern = self.options["rename_pattern"]
        replacement = self.options["rename_replacement"]
        targets: dict[str, str] = {}
        for name in names:
            if name in system:
                target = name  # system indices are never renamed
            elif name in backing:
                target = rename_backing(name, pattern, replacement)
            else:
                target = rename(name, pattern, replacement)
            if target in targets:
                raise errors.snapshot_restore(
                    f"{self.repo.name}:{self.info['snapshot']}",
                    f"indices [{name}] and [{targets[target]}] are renamed into the same index "
                    f"[{target}]",
                )
            targets[target] = name
        return targets

    def _streams(
        self, streams: dict[str, dict[str, Any]], targets: dict[str, str]
    ) -> list[DataStream]:
        pattern = self.options["rename_pattern"]
        replacement = self.options["rename_replacement"]
        restored = []
        for described in streams.values():
            stream = DataStream.from_description(described)
            stream.name = rename(stream.name, pattern, replacement)
            stream.indices = [
                t
                for t in (rename_backing(i, pattern, replacement) for i in stream.indices)
                if t in targets
            ]
            restored.append(stream)
        return restored

    def _check_aliases(self, plans: list[_Plan], doomed: list[str]) -> None:
        """The aliases as the restore would leave them, validated as ``Metadata`` is."""
        cluster = self.node.cluster
        views = cluster.alias_views()
        for name in doomed:
            views.pop(name, None)
        for plan in plans:
            views[plan.target] = plan.aliases
        cluster.check_aliases(views)

    def _check(
        self, target: str, source: str, failed_shards: list[int], doomed: list[str]
    ) -> _Plan:
        label = self.label
        if failed_shards and not self.options["partial"]:
            raise errors.snapshot_restore(
                label, f"index [{source}] wasn't fully snapshotted - cannot restore"
            )
        payload = self.repo.store.read_index(self.info["uuid"], source)
        if payload is None:
            raise errors.snapshot_restore(label, f"index [{source}] is missing from the repository")
        settings = _settings(payload["settings"], self.options, label)
        existing = None if target in doomed else self.node.cluster.indices.get(target)
        if existing is None:
            validate_index_name(target)
            if target in self.node.cluster.aliases():
                raise errors.invalid_index_name(target, "already exists as alias")
        elif existing.state != "close":
            raise errors.snapshot_restore(
                label,
                f"cannot restore index [{target}] because an open index with same name already "
                "exists in the cluster. Either close or delete the existing index or restore the "
                "index under a different name by providing a rename pattern and replacement name",
            )
        elif failed_shards:
            raise errors.snapshot_restore(
                label, f"cannot restore partial index [{target}] because such index already exists"
            )
        elif existing.shards != int(settings["index.number_of_shards"]):
            raise errors.snapshot_restore(
                label,
                f"cannot restore index [{target}] with [{existing.shards}] shards from a snapshot "
                f"of index [{source}] with [{settings['index.number_of_shards']}] shards",
            )
        if self.options["include_aliases"] or payload.get("system"):
            aliases = payload["aliases"]
        else:
            aliases = dict(existing.aliases) if existing is not None else {}
        return _Plan(target, source, payload, settings, existing, failed_shards, aliases)

    def apply(self, plan: _Plan, now: float) -> None:
        existing = plan.existing
        aliases = plan.aliases
        idx = Index(
            name=plan.target,
            uuid=existing.uuid if existing is not None else new_uuid(),
            settings=plan.settings,
            mappings=plan.payload["mappings"],
            aliases=aliases,
            creation_date=plan.payload.get("creation_date", now_millis()),
            system=plan.payload.get("system"),
            node_name=self.node.cluster.node_name,
        )
        for seq_no, (doc_id, doc) in enumerate(plan.payload["docs"].items()):
            idx.docs[doc_id] = Doc(doc["source"], doc["version"], seq_no)
        idx.next_seq_no = len(idx.docs)
        idx.refresh()
        idx.recovering_until = now + max(self.node.controls.recovery_delay, 0.0)
        idx.restored_from = (self.repo.name, self.info["snapshot"])
        self.node.cluster.indices[plan.target] = idx
