"""Cluster state of the test double: indices, their documents and aliases, shard health.

The model is a single node holding every primary (``data_nodes`` decides how many
replicas can be assigned, so a default index with one replica is yellow, as on a
single-node Elasticsearch). Documents become visible to counts on refresh: explicit,
``?refresh`` on a write, or once ``index.refresh_interval`` (default 1s) has passed
since the first unrefreshed change. A restored index recovers: its primaries are
initializing (status red) until ``recovering_until``.

Besides indices the cluster holds composable index templates (``IndexTemplate``), data
streams (``DataStream``: hidden backing indices ``.ds-<name>-<yyyy.MM.dd>-<generation>``,
the newest the write index) and system features (``Feature``: the system indices a
feature owns, which only the side channel can create). Alias changes are checked as a
whole, as ``Metadata.Builder`` does: an alias with two write indices, or hidden on some
indices and not on others, fails the change (500 ``illegal_state_exception``).
"""

from __future__ import annotations

import copy
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .mappings import apply_dynamic, lucene_docs
from .names import has_wildcard, simple_match, validate_alias_name, validate_index_name
from .values import as_list, index_settings, new_uuid, now_millis, parse_time, utc_date

DEFAULT_SETTINGS = {"index.number_of_shards": "1", "index.number_of_replicas": "1"}
VERSION_CREATED = "8512000"
STATUS_RANK = {"red": 0, "yellow": 1, "green": 2}
EMPTY_INDEX_BYTES = 225
BACKING_PREFIX = ".ds-"
TIMESTAMP_FIELD = "@timestamp"
AliasViews = dict[str, dict[str, dict[str, Any]]]  # index -> alias -> properties


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
    system: str | None = None  # the feature owning this system index
    node_name: str = ""  # the node its shards would be allocated to

    @property
    def unassigned(self) -> bool:
        """Allocation filtering leaves no node for its primaries."""
        return not allocation_allows(self.settings, self.node_name)

    @property
    def hidden(self) -> bool:
        return str(self.settings.get("index.hidden", "false")).lower() == "true"

    @property
    def shards(self) -> int:
        return int(self.settings.get("index.number_of_shards", "1"))

    @property
    def replicas(self) -> int:
        return int(self.settings.get("index.number_of_replicas", "1"))

    def shard_of(self, doc_id: str) -> int:
        return shard_of(doc_id, self.shards)

    def recovering(self, now: float) -> bool:
        """Its primaries are not active: initializing after a restore, or unassigned."""
        return now < self.recovering_until or self.unassigned

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

    def lucene_count(self, docs: dict[str, Doc]) -> int:
        """Lucene documents of ``docs``: nested objects count as documents of their own."""
        return sum(lucene_docs(self.mappings, doc.source) for doc in docs.values())

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
            self.deleted += lucene_docs(self.mappings, previous.source)
        self._changed(now)
        return doc, previous is None

    def remove(self, doc_id: str, now: float) -> Doc | None:
        previous = self.docs.pop(doc_id, None)
        if previous is not None:
            self.next_seq_no += 1
            self.deleted += lucene_docs(self.mappings, previous.source)
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
    """How a multi-target expression resolves (``IndicesOptions``). ``data_streams``:
    whether the API takes data streams (their backing indices); when not, a data
    stream's name is left out, as ``IndexNameExpressionResolver`` does in 8.x (an
    index-only API given only a data stream's name does nothing, or answers
    ``index_not_found_exception`` when ``allow_no_indices`` is false)."""

    wildcards: frozenset[str] = frozenset({"open"})
    ignore_unavailable: bool = False
    allow_no_indices: bool = True
    forbid_closed: bool = False
    data_streams: bool = True


@dataclass
class DataStream:
    """A data stream: its backing indices, oldest first (the last is the write index)."""

    name: str
    indices: list[str]
    generation: int
    hidden: bool = False
    system: bool = False
    timestamp_field: str = TIMESTAMP_FIELD

    @property
    def write_index(self) -> str:
        return self.indices[-1]

    def describe(self) -> dict[str, Any]:
        """What a snapshot keeps of it (global metadata)."""
        return {
            "name": self.name,
            "indices": list(self.indices),
            "generation": self.generation,
            "hidden": self.hidden,
            "system": self.system,
            "timestamp_field": self.timestamp_field,
        }

    @classmethod
    def from_description(cls, described: dict[str, Any]) -> DataStream:
        return cls(
            described["name"],
            list(described["indices"]),
            int(described["generation"]),
            bool(described.get("hidden", False)),
            bool(described.get("system", False)),
            described.get("timestamp_field", TIMESTAMP_FIELD),
        )


def backing_index_name(data_stream: str, generation: int, millis: int) -> str:
    """``DataStream.getDefaultBackingIndexName``: ``.ds-<name>-<yyyy.MM.dd>-<000001>``."""
    return f"{BACKING_PREFIX}{data_stream}-{utc_date(millis)}-{generation:06d}"


@dataclass
class IndexTemplate:
    """A composable index template (``PUT /_index_template/{name}``)."""

    name: str
    index_patterns: list[str]
    template: dict[str, Any]
    priority: int | None = None
    version: int | None = None
    meta: dict[str, Any] | None = None
    data_stream: dict[str, Any] | None = None
    allow_auto_create: bool | None = None

    def matches(self, name: str) -> bool:
        return any(simple_match(p, name) for p in self.index_patterns)

    def render(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"index_patterns": list(self.index_patterns)}
        if self.template:
            rendered["template"] = copy.deepcopy(self.template)
        rendered["composed_of"] = []
        if self.priority is not None:
            rendered["priority"] = self.priority
        if self.version is not None:
            rendered["version"] = self.version
        if self.meta is not None:
            rendered["_meta"] = copy.deepcopy(self.meta)
        if self.data_stream is not None:
            rendered["data_stream"] = {
                "hidden": bool(self.data_stream.get("hidden", False)),
                "allow_custom_routing": bool(self.data_stream.get("allow_custom_routing", False)),
            }
        if self.allow_auto_create is not None:
            rendered["allow_auto_create"] = self.allow_auto_create
        return rendered


@dataclass
class Feature:
    """A system feature (``GET /_features``) and the names of its system indices
    (index names or ``*`` patterns, as a ``SystemIndexDescriptor`` has them)."""

    name: str
    description: str
    patterns: list[str] = field(default_factory=list)

    def owns(self, index: str) -> bool:
        return any(simple_match(p, index) for p in self.patterns)


def allocation_allows(settings: dict[str, Any], node_name: str) -> bool:
    """``FilterAllocationDecider`` for the one node: ``index.routing.allocation.require``
    (every attribute must match), ``include`` (one must) and ``exclude`` (none may), on
    the node's ``_name``, ``_host``, ``_ip`` and ``_host_ip`` (it has no custom
    attributes)."""
    node = {"_name": node_name, "_host": "127.0.0.1", "_ip": "127.0.0.1"}
    node["_host_ip"] = node["_ip"]

    def matches(attribute: str, values: Any) -> bool:
        value = node.get(attribute)
        return value is not None and any(simple_match(v, value) for v in as_list(values))

    prefix = "index.routing.allocation."
    rules: dict[str, dict[str, Any]] = {"require": {}, "include": {}, "exclude": {}}
    for key, values in settings.items():
        if key.startswith(prefix) and values not in (None, ""):
            kind, _, attribute = key[len(prefix) :].partition(".")
            if kind in rules and attribute:
                rules[kind][attribute] = values
    if not all(matches(a, v) for a, v in rules["require"].items()):
        return False
    if rules["include"] and not any(matches(a, v) for a, v in rules["include"].items()):
        return False
    return not any(matches(a, v) for a, v in rules["exclude"].items())


def shard_health(idx: Index, nodes: int, now: float) -> dict[str, Any]:
    """Health of one shard (its primary and replicas) of ``idx``."""
    replicas = idx.replicas
    if idx.unassigned:
        return {
            "status": "red",
            "primary_active": False,
            "active_shards": 0,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 1 + replicas,
        }
    if idx.recovering(now):
        return {
            "status": "red",
            "primary_active": False,
            "active_shards": 0,
            "relocating_shards": 0,
            "initializing_shards": 1,
            "unassigned_shards": replicas,
        }
    assigned = min(replicas, max(nodes - 1, 0))
    return {
        "status": "green" if assigned == replicas else "yellow",
        "primary_active": True,
        "active_shards": 1 + assigned,
        "relocating_shards": 0,
        "initializing_shards": 0,
        "unassigned_shards": replicas - assigned,
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
    health["unassigned_shards"] = sum(s["unassigned_shards"] for s in shards.values())
    if with_shards:
        health["shards"] = shards
    return health


class Cluster:
    """Indices, aliases, data streams, templates, features and cluster settings, guarded
    by the node's lock."""

    def __init__(self, name: str, clock: Callable[[], float], data_nodes: int = 1) -> None:
        self.name = name
        self.uuid = new_uuid()
        self.clock = clock
        self.data_nodes = data_nodes
        self.indices: dict[str, Index] = {}
        self.data_streams: dict[str, DataStream] = {}
        self.templates: dict[str, IndexTemplate] = {}
        self.features: dict[str, Feature] = {}
        self.persistent: dict[str, Any] = {}
        self.transient: dict[str, Any] = {}
        self.node_name = ""

    def setting(self, key: str, default: str) -> str:
        return str(self.transient.get(key, self.persistent.get(key, default)))

    def parent_stream(self, index: str) -> DataStream | None:
        """The data stream ``index`` backs, if any."""
        return next((ds for ds in self.data_streams.values() if index in ds.indices), None)

    # ----------------------------------------------------------------- aliases
    def aliases(self) -> dict[str, list[Index]]:
        found: dict[str, list[Index]] = {}
        for idx in sorted(self.indices.values(), key=lambda i: i.name):
            for alias in idx.aliases:
                found.setdefault(alias, []).append(idx)
        return found

    def alias_views(self) -> AliasViews:
        """Every index's aliases, as a copy to stage changes on."""
        return {name: copy.deepcopy(idx.aliases) for name, idx in self.indices.items()}

    def stage_alias(self, views: AliasViews, index: str, alias: str, props: dict[str, Any]) -> None:
        """Add (or replace) ``alias`` on ``index`` in ``views``, with the per-action checks
        of ``MetadataIndexAliasesService`` / ``AliasValidator``."""
        parent = self.parent_stream(index)
        if parent is not None:
            raise errors.illegal_argument(
                f"The provided index [{index}] is a backing index belonging to data stream "
                f"[{parent.name}]. Data stream backing indices don't support alias operations."
            )
        if alias in views or alias in self.data_streams:
            raise errors.EsError(
                400,
                "invalid_alias_name_exception",
                f"Invalid alias name [{alias}]: an index or data stream exists with the same name "
                "as the alias",
            )
        validate_alias_name(alias)
        kept = {k: v for k, v in props.items() if v is not None}
        routing = kept.pop("routing", None)
        if routing is not None:
            kept.setdefault("index_routing", routing)
            kept.setdefault("search_routing", routing)
        if "," in str(kept.get("index_routing", "")):
            raise errors.illegal_argument(
                f"alias [{alias}] has several index routing values associated with it"
            )
        if "filter" in kept and not isinstance(kept["filter"], dict):
            raise errors.illegal_argument(f"failed to parse filter for alias [{alias}]")
        for key in ("is_write_index", "is_hidden"):
            if key in kept and not isinstance(kept[key], bool):
                kept[key] = str(kept[key]).lower() == "true"
        order: tuple[str, ...] = (
            "filter",
            "index_routing",
            "search_routing",
            "is_write_index",
            "is_hidden",
        )
        ordered: dict[str, Any] = {k: kept[k] for k in order if k in kept}
        views[index][alias] = ordered

    @staticmethod
    def check_aliases(views: AliasViews) -> None:
        """``Metadata.Builder``'s validation of every alias after a change."""
        members: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for index in sorted(views):
            for alias, props in views[index].items():
                members.setdefault(alias, []).append((index, props))
        for alias, entries in sorted(members.items()):
            writers = [i for i, p in entries if p.get("is_write_index") is True]
            if len(writers) > 1:
                raise errors.illegal_state(
                    f"alias [{alias}] has more than one write index [{','.join(writers)}]"
                )
            hidden = [i for i, p in entries if p.get("is_hidden") is True]
            visible = [i for i, p in entries if p.get("is_hidden") is not True]
            if hidden and visible:
                raise errors.illegal_state(
                    f"alias [{alias}] has is_hidden set to true on indices [{','.join(hidden)}] "
                    f"but does not have is_hidden set to true on indices [{','.join(visible)}]; "
                    "alias must have the same is_hidden setting on all indices"
                )

    def commit_aliases(self, views: AliasViews) -> None:
        self.check_aliases(views)
        for name, aliases in views.items():
            if name in self.indices:
                self.indices[name].aliases = aliases

    def add_alias(self, idx: Index, alias: str, props: dict[str, Any]) -> None:
        views = self.alias_views()
        self.stage_alias(views, idx.name, alias, props)
        self.commit_aliases(views)

    # ----------------------------------------------------------------- resolution
    def resolve(self, expression: Any, targets: Targets) -> list[Index]:
        """Concrete indices named by ``expression`` (names, aliases, data streams,
        wildcards, _all)."""
        expressions = as_list(expression) or ["_all"]
        found: dict[str, Index] = {}
        wildcard_seen = False
        aliases = self.aliases()
        for expr in expressions:
            if expr.startswith("-") and wildcard_seen:
                for name in [n for n in found if self._named_by(expr[1:], n)]:
                    del found[name]
            elif has_wildcard(expr):
                wildcard_seen = True
                found.update((i.name, i) for i in self._wildcard(expr, aliases, targets))
            elif expr in self.indices:
                found[expr] = self.indices[expr]
            elif expr in aliases:
                found.update((i.name, i) for i in aliases[expr])
            elif expr in self.data_streams:
                if not targets.data_streams:  # left out (EXCLUDED_DATA_STREAMS_KEY)
                    continue
                found.update((i.name, i) for i in self.backing(self.data_streams[expr]))
            elif not targets.ignore_unavailable:
                raise errors.index_not_found(expr)
        result = self._without_closed(sorted(found.values(), key=lambda i: i.name), targets)
        if not result and not targets.allow_no_indices:
            raise errors.index_not_found(",".join(expressions))
        return result

    def _named_by(self, pattern: str, index: str) -> bool:
        """An exclusion matches an index by its name or its data stream's."""
        parent = self.parent_stream(index)
        return simple_match(pattern, index) or (
            parent is not None and simple_match(pattern, parent.name)
        )

    def backing(self, ds: DataStream) -> list[Index]:
        return [self.indices[n] for n in ds.indices if n in self.indices]

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
        """``WildcardExpressionResolver``: hidden indices, aliases and data streams match
        only with ``expand_wildcards=hidden`` (or ``all``), or when both the name and the
        pattern start with a dot."""
        states = targets.wildcards
        if "all" in states:
            states = frozenset({"open", "closed", "hidden"})
        wanted = {
            state for state, flag in (("open", "open"), ("close", "closed")) if flag in states
        }

        def visible(name: str, hidden: bool) -> bool:
            dotted = name.startswith(".") and expr.startswith(".")
            return not hidden or "hidden" in states or dotted

        matched = [
            i
            for i in self.indices.values()
            if simple_match(expr, i.name) and visible(i.name, i.hidden)
        ]
        for alias, members in aliases.items():
            hidden_alias = any(m.aliases[alias].get("is_hidden") is True for m in members)
            if simple_match(expr, alias) and visible(alias, hidden_alias):
                matched.extend(members)
        if targets.data_streams:
            for ds in self.data_streams.values():
                if simple_match(expr, ds.name) and visible(ds.name, ds.hidden):
                    matched.extend(self.backing(ds))
        return [i for i in matched if i.state in wanted]

    def write_index(self, name: str, op: str = "index") -> Index:
        """The index a document write to ``name`` goes to (auto-creating it, or the data
        stream a matching template describes)."""
        if name in self.indices:
            return self.indices[name]
        if name not in self.data_streams and name not in self.aliases():
            self._auto_create(name)
        if name in self.data_streams:
            if op != "create":
                raise errors.not_in_data_streams()
            return self.indices[self.data_streams[name].write_index]
        if name in self.indices:
            return self.indices[name]
        members = self.aliases()[name]
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

    def _auto_create(self, name: str) -> None:
        if self.setting("action.auto_create_index", "true") == "false":
            raise errors.index_not_found(name)
        template = self.matching_template(name)
        if template is not None and template.data_stream is not None:
            self.create_data_stream(name)
        else:
            self.create_index(name, {}, {}, {})

    # ----------------------------------------------------------------- templates
    def matching_template(self, name: str) -> IndexTemplate | None:
        """``MetadataIndexTemplateService.findV2Template``: the highest priority match."""
        candidates = [t for t in self.templates.values() if t.matches(name)]
        if not candidates:
            return None
        return max(sorted(candidates, key=lambda t: t.name), key=lambda t: t.priority or 0)

    # ----------------------------------------------------------------- lifecycle
    def create_index(
        self,
        name: str,
        settings: dict[str, Any],
        mappings: dict[str, Any],
        aliases: dict[str, dict[str, Any]],
        *,
        apply_templates: bool = True,
    ) -> Index:
        validate_index_name(name)
        if name in self.indices:
            raise errors.index_exists(name, self.indices[name].uuid)
        if name in self.aliases():
            raise errors.invalid_index_name(name, "already exists as alias")
        if name in self.data_streams:
            raise errors.invalid_index_name(name, "already exists as data stream")
        template = self.matching_template(name) if apply_templates else None
        if template is not None and template.data_stream is not None:
            raise errors.illegal_argument(
                f"cannot create index with name [{name}], because it matches with template "
                f"[{template.name}] that creates data streams only, use create data stream api "
                "instead"
            )
        base = template.template if template is not None else {}
        flat = {
            **DEFAULT_SETTINGS,
            **index_settings(base.get("settings")),
            **index_settings(settings),
        }
        check_shard_settings(flat)
        merged_mappings = copy.deepcopy(base.get("mappings") or {})
        for key, value in copy.deepcopy(mappings).items():
            if key == "properties" and isinstance(value, dict):
                merged_mappings.setdefault("properties", {}).update(value)
            else:
                merged_mappings[key] = value
        idx = Index(name, new_uuid(), flat, merged_mappings, {}, now_millis())
        idx.node_name = self.node_name
        views = self.alias_views()
        views[name] = {}
        self.indices[name] = idx
        try:
            for alias, props in {**(base.get("aliases") or {}), **aliases}.items():
                self.stage_alias(views, name, alias, props or {})
            self.commit_aliases(views)
        except errors.EsError:
            del self.indices[name]
            raise
        return idx

    def create_data_stream(self, name: str) -> DataStream:
        """``MetadataCreateDataStreamService``: the stream and its first backing index."""
        if name in self.data_streams:
            raise errors.resource_exists(f"data_stream [{name}] already exists")
        validate_index_name(
            name, lambda n, why: errors.illegal_argument(f"data_stream [{n}] {why}")
        )
        if name.startswith(BACKING_PREFIX):
            raise errors.illegal_argument(
                f"data_stream [{name}] must not start with '{BACKING_PREFIX}'"
            )
        if name in self.indices or name in self.aliases():
            raise errors.resource_exists(f"[{name}] already exists as an index or alias")
        template = self.matching_template(name)
        if template is None:
            raise errors.illegal_argument(
                f"no matching index template found for data stream [{name}]"
            )
        if template.data_stream is None:
            raise errors.illegal_argument(
                f"matching index template [{template.name}] for data stream [{name}] has no "
                "data stream template"
            )
        ds = DataStream(name, [], 0, hidden=bool(template.data_stream.get("hidden", False)))
        self.data_streams[name] = ds
        try:
            self.roll_data_stream(ds)
        except errors.EsError:
            del self.data_streams[name]
            raise
        return ds

    def roll_data_stream(self, ds: DataStream) -> Index:
        """A new backing index (generation + 1) becomes the write index."""
        template = self.matching_template(ds.name)
        base = template.template if template is not None else {}
        generation = ds.generation + 1
        name = backing_index_name(ds.name, generation, now_millis())
        mappings = copy.deepcopy(base.get("mappings") or {})
        mappings["_data_stream_timestamp"] = {"enabled": True}
        mappings.setdefault("properties", {}).setdefault(ds.timestamp_field, {"type": "date"})
        settings = {**index_settings(base.get("settings")), "index.hidden": "true"}
        idx = self.create_index(name, settings, mappings, {}, apply_templates=False)
        ds.generation = generation
        ds.indices.append(idx.name)
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
