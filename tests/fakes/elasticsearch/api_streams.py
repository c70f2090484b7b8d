"""Composable index templates, data streams, rollover and system features:
``/_index_template``, ``/_data_stream``, ``POST /{target}/_rollover`` and ``GET /_features``.

Component templates, data stream aliases, data stream lifecycles and lazy rollover are
not modelled and are refused by name rather than ignored.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from . import errors
from .cluster import (
    STATUS_RANK,
    DataStream,
    Index,
    IndexTemplate,
    backing_index_name,
    index_health,
)
from .names import expand, has_wildcard, simple_match
from .routing import Request, Response, Router
from .values import as_list, index_settings, now_millis, parse_time

TEMPLATE_KEYS = (
    "index_patterns",
    "composed_of",
    "template",
    "priority",
    "version",
    "_meta",
    "data_stream",
    "allow_auto_create",
    "ignore_missing_component_templates",
    "deprecated",
)
TEMPLATE_SECTIONS = ("settings", "mappings", "aliases", "lifecycle")
ROLLOVER_KEYS = ("conditions", "settings", "mappings", "aliases")
ILM = "Index Lifecycle Management"
UNMANAGED = "Unmanaged"


def _java_list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


@cache
def _overlap(first: str, second: str) -> bool:
    """Whether some name matches both ``*``-patterns (as intersecting the automata of
    ``Regex.simpleMatchToAutomaton`` tells ``MetadataIndexTemplateService``)."""
    if not first or not second:
        rest = first or second
        return set(rest) <= {"*"}
    if first[0] == "*" or second[0] == "*":
        return _overlap(first[1:], second) or _overlap(first, second[1:])
    return first[0] == second[0] and _overlap(first[1:], second[1:])


# --------------------------------------------------------------------- index templates
def put_index_template(req: Request) -> Response:
    cluster = req.node.cluster
    name = req.params["name"]
    body = req.json_object()
    for key in body:
        if key not in TEMPLATE_KEYS:
            raise errors.EsError(
                400, "x_content_parse_exception", f"[1:2] [index_template] unknown field [{key}]"
            )
    patterns = as_list(body.get("index_patterns"))
    if not patterns:
        raise errors.validation_failed("index patterns are missing")
    if body.get("composed_of"):
        raise errors.illegal_argument(
            "component templates (composed_of) are not supported by the Elasticsearch test double"
        )
    template = body.get("template") or {}
    if not isinstance(template, dict):
        raise errors.parse_error("[index_template] failed to parse field [template]")
    for key in template:
        if key not in TEMPLATE_SECTIONS:
            raise errors.EsError(
                400, "x_content_parse_exception", f"[1:2] [template] unknown field [{key}]"
            )
    if "lifecycle" in template:
        raise errors.illegal_argument(
            "data stream lifecycles are not supported by the Elasticsearch test double"
        )
    if req.flag("create", False) and name in cluster.templates:
        raise errors.illegal_argument(f"index template [{name}] already exists")
    priority = body.get("priority")
    data_stream = body.get("data_stream")
    if data_stream is not None and not isinstance(data_stream, dict):
        raise errors.parse_error("[index_template] failed to parse field [data_stream]")
    same = [
        t
        for t in cluster.templates.values()
        if t.name != name
        and (t.priority or 0) == (priority or 0)
        and any(_overlap(a, b) for a in patterns for b in t.index_patterns)
    ]
    if same:
        names = ", ".join(t.name for t in same)
        theirs = ", ".join(f"{t.name} => {_java_list(t.index_patterns)}" for t in same)
        raise errors.illegal_argument(
            f"index template [{name}] has index patterns {_java_list(patterns)} matching "
            f"patterns from existing templates [{names}] with patterns ({theirs}) that have the "
            f"same priority [{priority or 0}], multiple index templates may not match during "
            "index creation, please use a different priority"
        )
    cluster.templates[name] = IndexTemplate(
        name=name,
        index_patterns=patterns,
        template=template,
        priority=None if priority is None else int(priority),
        version=body.get("version"),
        meta=body.get("_meta"),
        data_stream=data_stream,
        allow_auto_create=body.get("allow_auto_create"),
    )
    return Response(body={"acknowledged": True})


def _templates(req: Request) -> list[IndexTemplate]:
    cluster = req.node.cluster
    wanted = as_list(req.params.get("name")) or ["*"]
    found = [t for t in cluster.templates.values() if any(simple_match(w, t.name) for w in wanted)]
    if not found and req.params.get("name") and not any(has_wildcard(w) for w in wanted):
        missing = errors.EsError(
            404,
            "resource_not_found_exception",
            f"index template matching [{req.params['name']}] not found",
        )
        raise missing
    return sorted(found, key=lambda t: t.name)


def get_index_template(req: Request) -> Response:
    templates = _templates(req)
    return Response(
        body={
            "index_templates": [{"name": t.name, "index_template": t.render()} for t in templates]
        }
    )


def exists_index_template(req: Request) -> Response:
    try:
        return Response(200 if _templates(req) else 404)
    except errors.EsError:
        return Response(404)


def delete_index_template(req: Request) -> Response:
    cluster = req.node.cluster
    expression = req.params["name"]
    names, missing = expand(as_list(expression), sorted(cluster.templates))
    if missing or not names:
        raise errors.EsError(
            404, "index_template_missing_exception", f"index_template [{expression}] missing"
        )
    for name in names:
        template = cluster.templates[name]
        using = sorted(
            ds.name
            for ds in cluster.data_streams.values()
            if cluster.matching_template(ds.name) is template
        )
        if using:
            raise errors.illegal_argument(
                f"unable to remove composable templates [{name}] as they are in use by a data "
                f"streams {_java_list(using)}"
            )
    for name in names:
        del cluster.templates[name]
    return Response(body={"acknowledged": True})


# --------------------------------------------------------------------- data streams
def _streams(req: Request, default_all: bool) -> list[DataStream]:
    """Data streams named by the ``name`` path part (names, wildcards, ``*``, ``_all``)."""
    cluster = req.node.cluster
    expressions = as_list(req.params.get("name")) or (["*"] if default_all else [])
    states = set(as_list(req.arg("expand_wildcards", "open")))
    hidden_ok = bool(states & {"hidden", "all"})
    found: dict[str, DataStream] = {}
    for expr in expressions:
        if has_wildcard(expr):
            for ds in cluster.data_streams.values():
                dotted = ds.name.startswith(".") and expr.startswith(".")
                if simple_match(expr, ds.name) and (not ds.hidden or hidden_ok or dotted):
                    found[ds.name] = ds
        elif expr in cluster.data_streams:
            found[expr] = cluster.data_streams[expr]
        else:
            raise errors.index_not_found(expr)
    return sorted(found.values(), key=lambda d: d.name)


def put_data_stream(req: Request) -> Response:
    req.node.cluster.create_data_stream(req.params["name"])
    return Response(body={"acknowledged": True})


def render_data_stream(req: Request, ds: DataStream) -> dict[str, Any]:
    """One entry of ``GET /_data_stream`` (``GetDataStreamAction.Response``)."""
    cluster = req.node.cluster
    backing = cluster.backing(ds)
    now = req.node.clock()
    statuses = [index_health(i, cluster.data_nodes, now)["status"] for i in backing] or ["green"]
    template = cluster.matching_template(ds.name)
    template_policy = None
    if template is not None:
        settings = template.template.get("settings") or {}
        template_policy = _lifecycle_name(settings)
    rendered: dict[str, Any] = {
        "name": ds.name,
        "timestamp_field": {"name": ds.timestamp_field},
        "indices": [_backing_entry(i) for i in backing],
        "generation": ds.generation,
        "status": min(statuses, key=STATUS_RANK.__getitem__).upper(),
    }
    if template is not None:
        rendered["template"] = template.name
    if template_policy:
        rendered["ilm_policy"] = template_policy
    rendered["next_generation_managed_by"] = ILM if template_policy else UNMANAGED
    rendered["prefer_ilm"] = True
    rendered["hidden"] = ds.hidden
    rendered["system"] = ds.system
    rendered["allow_custom_routing"] = False
    rendered["replicated"] = False
    rendered["rollover_on_write"] = False
    return rendered


def _lifecycle_name(settings: dict[str, Any]) -> str | None:
    name = index_settings(settings).get("index.lifecycle.name")
    return str(name) if name else None


def _backing_entry(idx: Index) -> dict[str, Any]:
    entry: dict[str, Any] = {"index_name": idx.name, "index_uuid": idx.uuid}
    policy = idx.settings.get("index.lifecycle.name")
    if policy:
        entry["ilm_policy"] = policy
    entry["prefer_ilm"] = True
    entry["managed_by"] = ILM if policy else UNMANAGED
    return entry


def get_data_streams(req: Request) -> Response:
    streams = _streams(req, default_all=True)
    return Response(body={"data_streams": [render_data_stream(req, ds) for ds in streams]})


def delete_data_streams(req: Request) -> Response:
    """Deletes the streams and every backing index (``MetadataDataStreamsService``)."""
    cluster = req.node.cluster
    streams = _streams(req, default_all=False)
    busy = {
        name
        for run in req.node.snapshots.running.values()
        if not run.partial
        for name in run.data_streams
    }
    hit = sorted(ds.name for ds in streams if ds.name in busy)
    if hit:
        raise errors.EsError(
            400,
            "snapshot_in_progress_exception",
            f"Cannot delete data streams that are being snapshotted: {_java_list(hit)}. Try "
            "again after snapshot finishes or cancel the currently running snapshot.",
        )
    for ds in streams:
        for index in ds.indices:
            cluster.indices.pop(index, None)
        del cluster.data_streams[ds.name]
    return Response(body={"acknowledged": True})


# --------------------------------------------------------------------- rollover
def _conditions_met(idx: Index, conditions: dict[str, Any]) -> dict[str, bool]:
    """``max_docs``, ``max_primary_shard_docs``, ``max_age`` and ``min_docs``; the
    others (sizes, ...) are refused as not modelled."""
    now_docs = len(idx.docs)
    age = (now_millis() - idx.creation_date) / 1000
    results: dict[str, bool] = {}
    for key, value in conditions.items():
        if key in ("max_docs", "max_primary_shard_docs", "min_docs"):
            results[f"[{key}: {value}]"] = now_docs >= int(value)
        elif key == "max_age":
            limit = parse_time(value, key) or 0.0
            results[f"[{key}: {value}]"] = age >= limit
        else:
            raise errors.illegal_argument(
                f"rollover condition [{key}] is not supported by the Elasticsearch test double"
            )
    return results


def _rolled(results: dict[str, bool]) -> bool:
    if not results:
        return True
    maxes = [v for k, v in results.items() if k.startswith("[max_")]
    mins = [v for k, v in results.items() if k.startswith("[min_")]
    return (not maxes or any(maxes)) and all(mins)


def rollover(req: Request) -> Response:
    cluster = req.node.cluster
    target = req.params["target"]
    body = req.json_object()
    for key in body:
        if key not in ROLLOVER_KEYS:
            raise errors.parse_error(f"[rollover] unknown field [{key}]")
    if req.flag("lazy", False):
        raise errors.illegal_argument(
            "lazy rollover is not supported by the Elasticsearch test double"
        )
    dry_run = req.flag("dry_run", False)
    conditions = body.get("conditions") or {}
    if target in cluster.data_streams:
        ds = cluster.data_streams[target]
        if req.params.get("new_index"):
            raise errors.illegal_argument(
                "new index name may not be specified when rolling over a data stream"
            )
        for key in ("settings", "aliases"):
            if body.get(key):
                raise errors.illegal_argument(
                    "aliases, mappings, and index settings may not be specified when rolling "
                    "over a data stream"
                )
        old = cluster.indices[ds.write_index]
        results = _conditions_met(old, conditions)
        rolled = _rolled(results) and not dry_run
        new_name = backing_index_name(ds.name, ds.generation + 1, now_millis())
        if rolled:
            new_name = cluster.roll_data_stream(ds).name
        return _rollover_answer(old.name, new_name, results, rolled, dry_run)
    aliases = cluster.aliases()
    if target not in aliases:
        if target in cluster.indices:
            raise errors.illegal_argument(
                f"rollover target [{target}] does not point to a write index"
            )
        raise errors.illegal_argument(f"rollover target [{target}] does not exist")
    members = aliases[target]
    writers = [i for i in members if i.aliases[target].get("is_write_index") is True]
    if (
        not writers
        and len(members) == 1
        and members[0].aliases[target].get("is_write_index") is None
    ):
        writers = members
    if not writers:
        raise errors.illegal_argument(f"rollover target [{target}] does not point to a write index")
    old = writers[0]
    new_name = req.params.get("new_index") or _next_name(old.name)
    results = _conditions_met(old, conditions)
    rolled = _rolled(results) and not dry_run
    if rolled:
        explicit = old.aliases[target].get("is_write_index") is True
        hidden = old.aliases[target].get("is_hidden")
        new = cluster.create_index(
            new_name,
            body.get("settings") or {},
            body.get("mappings") or {},
            body.get("aliases") or {},
        )
        views = cluster.alias_views()
        props = {"is_hidden": hidden}
        if explicit:
            cluster.stage_alias(views, new.name, target, {**props, "is_write_index": True})
            cluster.stage_alias(views, old.name, target, {**props, "is_write_index": False})
        else:
            cluster.stage_alias(views, new.name, target, props)
            del views[old.name][target]
        cluster.commit_aliases(views)
    return _rollover_answer(old.name, new_name, results, rolled, dry_run)


def _next_name(old: str) -> str:
    """``MetadataRolloverService.generateRolloverIndexName``: ``-000001`` -> ``-000002``."""
    stem, sep, number = old.rpartition("-")
    if not sep or not number.isdigit():
        raise errors.illegal_argument(f"index name [{old}] does not match pattern '^.*-\\\\d+$'")
    return f"{stem}-{int(number) + 1:06d}"


def _rollover_answer(
    old: str, new: str, results: dict[str, bool], rolled: bool, dry_run: bool
) -> Response:
    return Response(
        body={
            "acknowledged": rolled,
            "shards_acknowledged": rolled,
            "old_index": old,
            "new_index": new,
            "rolled_over": rolled,
            "dry_run": dry_run,
            "conditions": results,
        }
    )


# --------------------------------------------------------------------- features
def get_features(req: Request) -> Response:
    features = sorted(req.node.cluster.features.values(), key=lambda f: f.name)
    return Response(
        body={"features": [{"name": f.name, "description": f.description} for f in features]}
    )


def register(router: Router) -> None:
    timeouts = ("master_timeout", "timeout")
    router.add(
        "GET", "/_index_template", get_index_template, ("flat_settings", "local", "master_timeout")
    )
    router.add(
        "GET",
        "/_index_template/{name}",
        get_index_template,
        ("flat_settings", "local", "master_timeout"),
    )
    router.add(
        "HEAD", "/_index_template/{name}", exists_index_template, ("local", "master_timeout")
    )
    router.add(
        "PUT,POST",
        "/_index_template/{name}",
        put_index_template,
        ("create", "cause", "master_timeout"),
    )
    router.add("DELETE", "/_index_template/{name}", delete_index_template, timeouts)
    router.add("PUT", "/_data_stream/{name}", put_data_stream, timeouts)
    stream_params = ("expand_wildcards", "master_timeout")
    router.add("GET", "/_data_stream", get_data_streams, stream_params)
    router.add("GET", "/_data_stream/{name}", get_data_streams, stream_params)
    router.add("DELETE", "/_data_stream/{name}", delete_data_streams, stream_params)
    rollover_params = ("dry_run", "lazy", "master_timeout", "timeout", "wait_for_active_shards")
    router.add("POST", "/{target}/_rollover", rollover, rollover_params)
    router.add("POST", "/{target}/_rollover/{new_index}", rollover, rollover_params)
    router.add("GET", "/_features", get_features, ("master_timeout",))
