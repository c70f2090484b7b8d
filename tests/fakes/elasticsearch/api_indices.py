"""Index endpoints: create, get, exists, delete, open, close, refresh, settings, mapping
and aliases."""

from __future__ import annotations

import copy
from typing import Any

from . import errors
from .cluster import AliasViews, Index, Targets
from .names import has_wildcard, simple_match
from .routing import INDICES_OPTIONS, Request, Response, Router
from .values import as_list, index_settings, nest

OPEN = Targets()
OPEN_FORBID_CLOSED = Targets(forbid_closed=True)
OPEN_AND_CLOSED = Targets(wildcards=frozenset({"open", "closed"}))
INDICES_ONLY = Targets(wildcards=frozenset({"open", "closed"}), data_streams=False)
ALIAS_TARGETS = Targets(wildcards=frozenset({"open", "closed"}), data_streams=False)
# GetAliasesRequest: IndicesOptions.strictExpandHidden()
ALIAS_VIEW = Targets(wildcards=frozenset({"open", "closed", "hidden"}))
CREATE_KEYS = ("settings", "mappings", "aliases")
ALIAS_PROPS = (
    "is_write_index",
    "filter",
    "routing",
    "index_routing",
    "search_routing",
    "is_hidden",
)
_TARGET_KEYS = ("index", "indices", "must_exist")
ALIAS_ACTION_KEYS = {
    "add": (*_TARGET_KEYS, "alias", "aliases", *ALIAS_PROPS),
    "remove": (*_TARGET_KEYS, "alias", "aliases"),
    "remove_index": _TARGET_KEYS,
}
DYNAMIC_SETTINGS = (
    "index.number_of_replicas",
    "index.refresh_interval",
    "index.auto_expand_replicas",
    "index.max_result_window",
    "index.blocks.",
    "index.routing.",
    "index.hidden",
    "index.lifecycle.",
)


def _indices(req: Request, default: Targets) -> list[Index]:
    return req.node.cluster.resolve(req.params.get("index"), req.targets(default))


def _require_names(req: Request) -> None:
    """``action.destructive_requires_name`` (true by default since 8.0)."""
    expression = req.params.get("index", "_all")
    if req.node.cluster.setting("action.destructive_requires_name", "true") != "true":
        return
    if any(has_wildcard(e) and not e.startswith("-") for e in as_list(expression)):
        raise errors.illegal_argument("Wildcard expressions or all indices are not allowed")


def _not_snapshotting(req: Request, verb: str, indices: list[Index]) -> None:
    busy = {
        name
        for run in req.node.snapshots.running.values()
        if not run.partial
        for name in run.indices
    }
    hit = [f"{i.name}/{i.uuid}" for i in indices if i.name in busy]
    if hit:
        raise errors.snapshot_in_progress(verb, hit)


# --------------------------------------------------------------------- lifecycle
def create(req: Request) -> Response:
    body = req.json_object()
    for key in body:
        if key not in CREATE_KEYS:
            raise errors.parse_error(f"unknown key [{key}] for create index")
    name = req.params["index"]
    req.node.cluster.create_index(
        name, body.get("settings") or {}, body.get("mappings") or {}, body.get("aliases") or {}
    )
    return Response(body={"acknowledged": True, "shards_acknowledged": True, "index": name})


def _rendered(idx: Index, flat: bool) -> dict[str, Any]:
    settings = idx.rendered_settings()
    return {
        "aliases": {alias: dict(props) for alias, props in sorted(idx.aliases.items())},
        "mappings": idx.mappings,
        "settings": settings if flat else nest(settings),
    }


def get(req: Request) -> Response:
    flat = req.flag("flat_settings", False)
    return Response(body={i.name: _rendered(i, flat) for i in _indices(req, OPEN)})


def exists(req: Request) -> Response:
    try:
        found = _indices(req, OPEN)
    except errors.EsError as error:
        if error.status == 404:
            return Response(404)
        raise
    return Response(200 if found else 404)


def delete(req: Request) -> Response:
    _require_names(req)
    cluster = req.node.cluster
    aliases = cluster.aliases()
    for expression in as_list(req.params["index"]):
        if expression in aliases and expression not in cluster.indices:
            raise errors.illegal_argument(
                f"The provided expression [{expression}] matches an alias, specify the "
                "corresponding concrete indices instead."
            )
    indices = _indices(req, INDICES_ONLY)
    delete_indices(req, indices)
    return Response(body={"acknowledged": True})


def delete_indices(req: Request, indices: list[Index]) -> None:
    """``MetadataDeleteIndexService``: a data stream's write index cannot go; another
    backing index leaves its data stream."""
    cluster = req.node.cluster
    for idx in indices:
        parent = cluster.parent_stream(idx.name)
        if parent is not None and parent.write_index == idx.name:
            raise errors.illegal_argument(
                f"index [{idx.name}] is the write index for data stream [{parent.name}] and "
                "cannot be deleted"
            )
    _not_snapshotting(req, "delete", indices)
    for idx in indices:
        parent = cluster.parent_stream(idx.name)
        if parent is not None:
            parent.indices.remove(idx.name)
        del cluster.indices[idx.name]


def close(req: Request) -> Response:
    _require_names(req)
    indices = [i for i in _indices(req, Targets(data_streams=False)) if i.state != "close"]
    _not_snapshotting(req, "close", indices)
    for idx in indices:
        idx.refresh()
        idx.state = "close"
    return Response(  # nothing to close: CloseIndexResponse.EMPTY
        body={
            "acknowledged": True,
            "shards_acknowledged": bool(indices),
            "indices": {i.name: {"closed": True} for i in indices},
        }
    )


def open_(req: Request) -> Response:
    for idx in _indices(req, Targets(wildcards=frozenset({"closed"}), data_streams=False)):
        idx.state = "open"
    return Response(body={"acknowledged": True, "shards_acknowledged": True})


def refresh(req: Request) -> Response:
    indices = _indices(req, OPEN_FORBID_CLOSED)
    now = req.node.clock()
    total = sum(i.shards * (1 + i.replicas) for i in indices)
    successful = 0
    for idx in indices:
        if not idx.recovering(now):
            idx.refresh()
            successful += idx.shards * (1 + min(idx.replicas, req.node.cluster.data_nodes - 1))
    return Response(body={"_shards": {"total": total, "successful": successful, "failed": 0}})


# --------------------------------------------------------------------- settings, mapping
def get_settings(req: Request) -> Response:
    flat = req.flag("flat_settings", False)
    wanted = as_list(req.params.get("name")) or ["*"]
    body = {}
    for idx in _indices(req, OPEN):
        settings = {
            k: v
            for k, v in idx.rendered_settings().items()
            if any(simple_match(p, k) or simple_match(f"index.{p}", k) for p in wanted)
        }
        body[idx.name] = {"settings": settings if flat else nest(settings)}
    return Response(body=body)


def put_settings(req: Request) -> Response:
    body = req.json_object()
    updates = index_settings(body.get("settings", body))
    static = [k for k in updates if not any(k.startswith(d) for d in DYNAMIC_SETTINGS)]
    indices = _indices(req, OPEN)
    if static:
        listed = ", ".join(f"[{i.name}/{i.uuid}]" for i in indices)
        raise errors.illegal_argument(
            f"Can't update non dynamic settings [[{', '.join(static)}]] for open indices [{listed}]"
        )
    for idx in indices:
        for key, value in updates.items():
            if value is None:
                idx.settings.pop(key, None)
            else:
                idx.settings[key] = value
    return Response(body={"acknowledged": True})


def get_mapping(req: Request) -> Response:
    return Response(body={i.name: {"mappings": i.mappings} for i in _indices(req, OPEN)})


# --------------------------------------------------------------------- aliases
def _alias_action(req: Request, views: AliasViews, kind: str, spec: Any) -> None:
    """Stage one ``add``/``remove``/``remove_index`` action on ``views``."""
    cluster = req.node.cluster
    if not isinstance(spec, dict):
        raise errors.parse_error(f"[{kind}] failed to parse object")
    for key in spec:
        if key not in ALIAS_ACTION_KEYS[kind]:
            raise errors.parse_error(f"[{kind}] unknown field [{key}]")
    index_names = as_list(spec.get("indices")) + as_list(spec.get("index"))
    aliases = as_list(spec.get("aliases")) + as_list(spec.get("alias"))
    if not index_names:
        raise errors.validation_failed("One of [index] or [indices] is required")
    for name in index_names:
        if name in cluster.data_streams:
            raise errors.illegal_argument(
                f"data stream aliases ([{name}]) are not supported by the Elasticsearch test double"
            )
    indices = cluster.resolve(",".join(index_names), ALIAS_TARGETS)
    if kind == "remove_index":
        _not_snapshotting(req, "delete", indices)
        for idx in indices:
            parent = cluster.parent_stream(idx.name)
            if parent is not None:
                raise errors.illegal_argument(
                    f"The provided index [{idx.name}] is a backing index belonging to data "
                    f"stream [{parent.name}]. Data stream backing indices don't support alias "
                    "operations."
                )
            views.pop(idx.name, None)
        return
    if not aliases:
        raise errors.validation_failed("One of [alias] or [aliases] is required")
    props = {k: spec.get(k) for k in ALIAS_PROPS}
    for idx in indices:
        if idx.name not in views:
            raise errors.index_not_found(idx.name)
        for alias in aliases:
            if kind == "add":
                cluster.stage_alias(views, idx.name, alias, props)
                continue
            matched = [a for a in list(views[idx.name]) if simple_match(alias, a)]
            if not matched and spec.get("must_exist") is not False:
                missing = errors.EsError(
                    404, "aliases_not_found_exception", f"aliases [{alias}] missing"
                )
                raise errors.with_resource(missing, "aliases", alias)
            for name in matched:
                del views[idx.name][name]


def _apply_aliases(req: Request, actions: list[tuple[str, Any]]) -> None:
    """All actions succeed or none applies: they are staged, checked as a whole, then
    committed (one cluster state update)."""
    cluster = req.node.cluster
    views = cluster.alias_views()
    for kind, spec in actions:
        _alias_action(req, views, kind, spec)
    cluster.check_aliases(views)
    for name in [n for n in cluster.indices if n not in views]:
        del cluster.indices[name]
    cluster.commit_aliases(views)


def update_aliases(req: Request) -> Response:
    body = req.json_object()
    for key in body:
        if key != "actions":
            raise errors.parse_error(f"[aliases] unknown field [{key}]")
    actions = body.get("actions")
    if actions is not None and not isinstance(actions, list):
        raise errors.parse_error("[aliases] failed to parse field [actions]")
    if not actions:
        raise errors.validation_failed("no actions specified")
    staged = []
    for action in actions:
        if not isinstance(action, dict) or len(action) != 1:
            raise errors.parse_error("[aliases] failed to parse field [actions]")
        kind, spec = next(iter(action.items()))
        if kind not in ALIAS_ACTION_KEYS:
            raise errors.parse_error(f"[alias_action] unknown field [{kind}]")
        staged.append((kind, spec))
    _apply_aliases(req, staged)
    return Response(body={"acknowledged": True, "errors": False})


def put_alias(req: Request) -> Response:
    body = req.json_object()
    for key in body:
        if key not in ALIAS_PROPS:
            raise errors.parse_error(f"[alias] unknown field [{key}]")
    spec = {**body, "index": req.params["index"], "alias": req.params["name"]}
    _apply_aliases(req, [("add", spec)])
    return Response(body={"acknowledged": True})


def delete_alias(req: Request) -> Response:
    spec = {"index": req.params["index"], "alias": req.params["name"]}
    _apply_aliases(req, [("remove", spec)])
    return Response(body={"acknowledged": True})


def _alias_view(req: Request) -> tuple[dict[str, Any], list[str]]:
    """Indices with their matching aliases, and the requested alias names never found."""
    names = as_list(req.params.get("name"))
    cluster = req.node.cluster
    for name in as_list(req.params.get("index")):
        if name in cluster.data_streams:
            raise errors.illegal_argument(
                f"data stream aliases ([{name}]) are not supported by the Elasticsearch test double"
            )
    indices = _indices(req, ALIAS_VIEW)
    found: set[str] = set()
    body: dict[str, Any] = {}
    for idx in indices:
        matching = {
            a: copy.deepcopy(p)
            for a, p in sorted(idx.aliases.items())
            if not names or any(simple_match(n, a) for n in names)
        }
        found.update(matching)
        if matching or (not names):
            body[idx.name] = {"aliases": matching}
    missing = [n for n in names if not has_wildcard(n) and n not in found]
    return body, missing


def get_alias(req: Request) -> Response:
    body, missing = _alias_view(req)
    if missing:
        listed = ",".join(missing)
        noun = "alias" if len(missing) == 1 else "aliases"
        return Response(404, {"error": f"{noun} [{listed}] missing", "status": 404, **body})
    return Response(body=body)


def exists_alias(req: Request) -> Response:
    body, missing = _alias_view(req)
    found = any(entry["aliases"] for entry in body.values())
    return Response(200 if found and not missing else 404)


def register(router: Router) -> None:
    timeouts = ("master_timeout", "timeout")
    router.add("PUT", "/{index}", create, (*timeouts, "wait_for_active_shards"))
    get_params = (*INDICES_OPTIONS, "flat_settings", "local", "master_timeout")
    router.add("GET", "/{index}", get, get_params)
    router.add("HEAD", "/{index}", exists, get_params)
    router.add("DELETE", "/{index}", delete, (*INDICES_OPTIONS, *timeouts))
    state_params = (*INDICES_OPTIONS, *timeouts, "wait_for_active_shards")
    router.add("POST", "/{index}/_close", close, state_params)
    router.add("POST", "/{index}/_open", open_, state_params)
    router.add("GET,POST", "/_refresh", refresh, INDICES_OPTIONS)
    router.add("GET,POST", "/{index}/_refresh", refresh, INDICES_OPTIONS)
    settings_params = (*INDICES_OPTIONS, "flat_settings", "local", "master_timeout")
    router.add("GET", "/{index}/_settings", get_settings, settings_params)
    router.add("GET", "/{index}/_settings/{name}", get_settings, settings_params)
    router.add(
        "PUT",
        "/{index}/_settings",
        put_settings,
        (*INDICES_OPTIONS, *timeouts, "flat_settings"),
    )
    router.add("GET", "/_mapping", get_mapping, (*INDICES_OPTIONS, "local", "master_timeout"))
    router.add(
        "GET", "/{index}/_mapping", get_mapping, (*INDICES_OPTIONS, "local", "master_timeout")
    )
    router.add("POST", "/_aliases", update_aliases, timeouts)
    alias_params = (*INDICES_OPTIONS, "local", "master_timeout")
    for pattern in (
        "/_alias",
        "/_aliases",
        "/_alias/{name}",
        "/{index}/_alias",
        "/{index}/_alias/{name}",
    ):
        router.add("GET", pattern, get_alias, alias_params)
    for pattern in ("/_alias/{name}", "/{index}/_alias", "/{index}/_alias/{name}"):
        router.add("HEAD", pattern, exists_alias, alias_params)
    router.add("PUT,POST", "/{index}/_alias/{name}", put_alias, timeouts)
    router.add("DELETE", "/{index}/_alias/{name}", delete_alias, timeouts)
