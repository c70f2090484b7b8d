"""Cluster state of the test double: indices, their documents and aliases, shard health.

The model is a single node holding every primary (``data_nodes`` decides how many
replicas can be assigned, so a default index with one replica is yellow, as on a
single-node Elasticsearch). Documents become visible to counts on refresh: explicit,
``?refresh`` on a write, or once ``index.refresh_interval`` (default 1s) has passed
since the first unrefreshed change. A restored index recovers: its primaries are
initializing (status red) until ``recovering_until``.
"""

from __future__ import annotations

import copy
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .mappings import apply_dynamic
from .names import has_wildcard, simple_match, validate_index_name
from .values import as_list, index_settings, new_uuid, now_millis, parse_time

DEFAULT_SETTINGS = {"index.number_of_shards": "1", "index.number_of_replicas": "1"}
VERSION_CREATED = "8512000"
STATUS_RANK = {"red": 0, "yellow": 1, "green": 2}
EMPTY_INDEX_BYTES = 225


def shard_of(doc_id: str, shards: int) -> int:
    """The shard a document id routes to (a stable hash; not Elasticsearch's murmur3)."""
    return zlib.crc32(doc_id.encode()) % shards


@dataclass
class Doc:
    source: dict[str, Any]
    version: int
    seq_no: int
    primary_term: int = 1


@dataclass
class Index:
    name: str
    uuid: str
    settings: dict[str, Any]
    mappings: dict[str, Any]
    aliases: dict[str, dict[str, Any]]
    creation_date: int
    state: str = "open"
    docs: dict[str, Doc] = field(default_factory=dict)
    searchable: dict[str, Doc] = field(default_factory=dict)
    changed_at: float | None = None
    next_seq_no: int = 0
    deleted: int = 0
    recovering_until: float = 0.0
    restored_from: tuple[str, str] | None = None  # (repository, snapshot) while recovering

    @property
    def shards(self) -> int:
        return int(self.settings.get("index.number_of_shards", "1"))

    @property
    def replicas(self) -> int:
        return int(self.settings.get("index.number_of_replicas", "1"))

    def shard_of(self, doc_id: str) -> int:
        return shard_of(doc_id, self.shards)

    def recovering(self, now: float) -> bool:
        return now < self.recovering_until

    def refresh(self) -> None:
        self.searchable = dict(self.docs)
        self.changed_at = None

    def visible(self, now: float) -> dict[str, Doc]:
        """The documents a search sees: those of the last (possibly periodic) refresh."""
        if self.changed_at is not None:
            interval = parse_time(self.settings.get("index.refresh_interval", "1s"), "")
            if interval is not None and now - self.changed_at >= interval:
                self.refresh()
        return self.searchable

    def store_bytes(self) -> int:
        return EMPTY_INDEX_BYTES + sum(
            len(json.dumps(doc.source, separators=(",", ":"))) for doc in self.docs.values()
        )

    def put(self, doc_id: str, source: dict[str, Any], now: float) -> tuple[Doc, bool]:
        apply_dynamic(self.mappings, source)
        previous = self.docs.get(doc_id)
        doc = Doc(
            copy.deepcopy(source), (previous.version + 1) if previous else 1, self.next_seq_no
        )
        self.next_seq_no += 1
        self.docs[doc_id] = doc
        if previous is not None:
            self.deleted += 1
        self._changed(now)
        return doc, previous is None

    def remove(self, doc_id: str, now: float) -> Doc | None:
        previous = self.docs.pop(doc_id, None)
        if previous is not None:
            self.next_seq_no += 1
            self.deleted += 1
            self._changed(now)
        return previous

    def _changed(self, now: float) -> None:
        if self.changed_at is None:
            self.changed_at = now

    def rendered_settings(self) -> dict[str, Any]:
        return {
            **self.settings,
            "index.uuid": self.uuid,
            "index.creation_date": str(self.creation_date),
            "index.provided_name": self.name,
            "index.version.created": VERSION_CREATED,
        }


@dataclass(frozen=True)
class Targets:
    """How a multi-target expression resolves (``IndicesOptions``)."""

    wildcards: frozenset[str] = frozenset({"open"})
    ignore_unavailable: bool = False
    allow_no_indices: bool = True
    forbid_closed: bool = False


def shard_health(idx: Index, nodes: int, now: float) -> dict[str, Any]:
    """Health of one shard (its primary and replicas) of ``idx``."""
    replicas = idx.replicas
    if idx.recovering(now):
        return {
            "status": "red",
            "primary_active": False,
            "active_shards": 0,
            "relocating_shards": 0,
            "initializing_shards": 1,
            "unassigned_shards": replicas,
            "unassigned_primary_shards": 0,
        }
    assigned = min(replicas, max(nodes - 1, 0))
    return {
        "status": "green" if assigned == replicas else "yellow",
        "primary_active": True,
        "active_shards": 1 + assigned,
        "relocating_shards": 0,
        "initializing_shards": 0,
        "unassigned_shards": replicas - assigned,
        "unassigned_primary_shards": 0,
    }


def index_health(idx: Index, nodes: int, now: float, with_shards: bool = False) -> dict[str, Any]:
    shards = {str(n): shard_health(idx, nodes, now) for n in range(idx.shards)}
    worst = min((s["status"] for s in shards.values()), key=STATUS_RANK.__getitem__)
    health: dict[str, Any] = {
        "status": worst,
        "number_of_shards": idx.shards,
        "number_of_replicas": idx.replicas,
        "active_primary_shards": sum(s["primary_active"] for s in shards.values()),
    }
    for key in ("active_shards", "relocating_shards", "initializing_shards"):
        health[key] = sum(s[key] for s in shards.values())
    for key in ("unassigned_shards", "unassigned_primary_shards"):
        health[key] = sum(s[key] for s in shards.values())
    if with_shards:
        health["shards"] = shards
    return health


class Cluster:
    """Indices, aliases and cluster settings, guarded by the node's lock."""

    def __init__(self, name: str, clock: Callable[[], float], data_nodes: int = 1) -> None:
        self.name = name
        self.uuid = new_uuid()
        self.clock = clock
        self.data_nodes = data_nodes
        self.indices: dict[str, Index] = {}
        self.persistent: dict[str, Any] = {}
        self.transient: dict[str, Any] = {}

    def setting(self, key: str, default: str) -> str:
        return str(self.transient.get(key, self.persistent.get(key, default)))

    # ----------------------------------------------------------------- aliases
    def aliases(self) -> dict[str, list[Index]]:
        found: dict[str, list[Index]] = {}
        for idx in sorted(self.indices.values(), key=lambda i: i.name):
            for alias in idx.aliases:
                found.setdefault(alias, []).append(idx)
        return found

    def add_alias(self, idx: Index, alias: str, props: dict[str, Any]) -> None:
        if alias in self.indices:
            raise errors.EsError(
                400,
                "invalid_alias_name_exception",
                f"Invalid alias name [{alias}]: an index or data stream exists with the same "
                "name as the alias",
            )
        validate_index_name(alias)
        idx.aliases[alias] = {k: v for k, v in props.items() if v is not None}
        writers = [i.name for i in self.aliases()[alias] if i.aliases[alias].get("is_write_index")]
        if len(writers) > 1:
            del idx.aliases[alias]
            raise errors.illegal_argument(
                f"alias [{alias}] has more than one write index [{','.join(writers)}]"
            )

    # ----------------------------------------------------------------- resolution
    def resolve(self, expression: Any, targets: Targets) -> list[Index]:
        """Concrete indices named by ``expression`` (names, aliases, wildcards, _all)."""
        expressions = as_list(expression) or ["_all"]
        found: dict[str, Index] = {}
        wildcard_seen = False
        aliases = self.aliases()
        for expr in expressions:
            if expr.startswith("-") and wildcard_seen:
                for name in [n for n in found if simple_match(expr[1:], n)]:
                    del found[name]
            elif has_wildcard(expr):
                wildcard_seen = True
                found.update((i.name, i) for i in self._wildcard(expr, aliases, targets))
            elif expr in self.indices:
                found[expr] = self.indices[expr]
            elif expr in aliases:
                found.update((i.name, i) for i in aliases[expr])
            elif not targets.ignore_unavailable:
                raise errors.index_not_found(expr)
        result = self._without_closed(sorted(found.values(), key=lambda i: i.name), targets)
        if not result and not targets.allow_no_indices:
            raise errors.index_not_found(",".join(expressions))
        return result

    @staticmethod
    def _without_closed(indices: list[Index], targets: Targets) -> list[Index]:
        """``forbid_closed``: a closed index fails the request, or is skipped if lenient."""
        if not targets.forbid_closed:
            return indices
        closed = [i for i in indices if i.state == "close"]
        if closed and not targets.ignore_unavailable:
            raise errors.index_closed(closed[0].name, closed[0].uuid)
        return [i for i in indices if i.state != "close"]

    def _wildcard(
        self, expr: str, aliases: dict[str, list[Index]], targets: Targets
    ) -> list[Index]:
        states = targets.wildcards
        if "all" in states:
            states = frozenset({"open", "closed", "hidden"})
        wanted = {
            state for state, flag in (("open", "open"), ("close", "closed")) if flag in states
        }
        hidden_ok = "hidden" in states or expr.startswith(".")
        matched = [i for i in self.indices.values() if simple_match(expr, i.name)]
        for alias, members in aliases.items():
            if simple_match(expr, alias):
                matched.extend(members)
        return [
            i
            for i in matched
            if i.state in wanted
            and (hidden_ok or i.settings.get("index.hidden") != "true")
            and (hidden_ok or not i.name.startswith("."))
        ]

    def write_index(self, name: str) -> Index:
        """The index a document write to ``name`` goes to (auto-creating it)."""
        if name in self.indices:
            return self.indices[name]
        members = self.aliases().get(name)
        if members is not None:
            writers = [i for i in members if i.aliases[name].get("is_write_index") is True]
            if writers:
                return writers[0]
            if len(members) == 1 and members[0].aliases[name].get("is_write_index") is not False:
                return members[0]
            raise errors.illegal_argument(
                f"no write index is defined for alias [{name}]. The write index may be "
                "explicitly disabled using is_write_index=false or the alias points to "
                "multiple indices without one being designated as a write index"
            )
        if self.setting("action.auto_create_index", "true") == "false":
            raise errors.index_not_found(name)
        return self.create_index(name, {}, {}, {})

    # ----------------------------------------------------------------- lifecycle
    def create_index(
        self,
        name: str,
        settings: dict[str, Any],
        mappings: dict[str, Any],
        aliases: dict[str, dict[str, Any]],
    ) -> Index:
        validate_index_name(name)
        if name in self.indices:
            raise errors.index_exists(name, self.indices[name].uuid)
        if name in self.aliases():
            raise errors.invalid_index_name(name, "already exists as alias")
        flat = {**DEFAULT_SETTINGS, **index_settings(settings)}
        check_shard_settings(flat)
        idx = Index(name, new_uuid(), flat, copy.deepcopy(mappings), {}, now_millis())
        self.indices[name] = idx
        try:
            for alias, props in aliases.items():
                self.add_alias(idx, alias, props or {})
        except errors.EsError:
            del self.indices[name]
            raise
        return idx

    def health(self, indices: list[Index], level: str) -> dict[str, Any]:
        now = self.clock()
        per_index = {
            i.name: index_health(i, self.data_nodes, now, level == "shards") for i in indices
        }
        statuses = [h["status"] for h in per_index.values()] or ["green"]
        total = {
            key: sum(h[key] for h in per_index.values())
            for key in (
                "active_primary_shards",
                "active_shards",
                "relocating_shards",
                "initializing_shards",
                "unassigned_shards",
                "unassigned_primary_shards",
            )
        }
        all_shards = total["active_shards"] + total["initializing_shards"]
        all_shards += total["unassigned_shards"]
        body: dict[str, Any] = {
            "cluster_name": self.name,
            "status": min(statuses, key=STATUS_RANK.__getitem__),
            "timed_out": False,
            "number_of_nodes": self.data_nodes,
            "number_of_data_nodes": self.data_nodes,
            **total,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": (
                100.0 * total["active_shards"] / all_shards if all_shards else 100.0
            ),
        }
        if level in ("indices", "shards"):
            body["indices"] = per_index
        return body


def check_shard_settings(flat: dict[str, Any]) -> None:
    for key, low in (("index.number_of_shards", 1), ("index.number_of_replicas", 0)):
        value = flat.get(key)
        try:
            number = int(str(value))
        except ValueError:
            raise errors.illegal_argument(
                f"Failed to parse value [{value}] for setting [{key}]"
            ) from None
        if number < low:
            raise errors.illegal_argument(
                f"Failed to parse value [{value}] for setting [{key}] must be >= {low}"
            )
