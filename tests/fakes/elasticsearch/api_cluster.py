"""Endpoints about the node and cluster: ``/``, ``_cluster/health``, ``_cluster/settings``,
``_cat/indices`` and ``_stats``."""

from __future__ import annotations

from typing import Any

from . import errors
from .cluster import STATUS_RANK, Index, Targets, index_health
from .names import simple_match
from .routing import CAT_PARAMS, INDICES_OPTIONS, Request, Response, Router
from .values import as_list, bytes_in, flatten, nest

ALL = Targets(wildcards=frozenset({"all"}))
# ClusterHealthAction answers a timed out wait once its observer's timeout has fired and
# the health was computed again: never before ``timeout``, so a client whose own read
# timeout equals the server's wait times out first. The double holds the 408 this long
# past the deadline so that this does not depend on scheduling jitter.
HEALTH_TIMEOUT_SLACK = 0.05
KNOWN_CLUSTER_SETTINGS = (
    "action.destructive_requires_name",
    "action.auto_create_index",
    "cluster.routing.allocation.enable",
    "cluster.max_shards_per_node",
    "indices.recovery.max_bytes_per_sec",
    "snapshot.max_concurrent_operations",
)
CAT_COLUMNS = [
    "health",
    "status",
    "index",
    "uuid",
    "pri",
    "rep",
    "docs.count",
    "docs.deleted",
    "store.size",
    "pri.store.size",
    "dataset.size",
]


def info(req: Request) -> Response:
    node = req.node
    return Response(
        body={
            "name": node.node_name,
            "cluster_name": node.cluster.name,
            "cluster_uuid": node.cluster.uuid,
            "version": {
                "number": node.version,
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "f75d9a3e4d3e4d1b9d1f0b6d8e2c7a3b5e1d9c0a",
                "build_date": "2024-10-09T22:08:00.328917561Z",
                "build_snapshot": False,
                "lucene_version": "9.11.1",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }
    )


def ping(req: Request) -> Response:
    return Response()


# --------------------------------------------------------------------- health
def _health_body(req: Request, level: str) -> dict[str, Any]:
    cluster = req.node.cluster
    expression = req.params.get("index")
    try:
        indices = cluster.resolve(expression, req.targets(ALL))
        missing = False
    except errors.EsError as error:
        if error.error_type != "index_not_found_exception":
            raise
        indices, missing = [], True
    body = cluster.health(indices, level)
    if missing:  # "one of the specified indices is not there - treat it as RED"
        body["status"] = "red"
    return body


def _satisfied(req: Request, body: dict[str, Any]) -> bool:
    wanted = req.arg("wait_for_status")
    if wanted is not None and STATUS_RANK[body["status"]] < STATUS_RANK[wanted]:
        return False
    if req.flag("wait_for_no_initializing_shards", False) and body["initializing_shards"]:
        return False
    active = req.arg("wait_for_active_shards")
    if active is not None and active != "0":
        needed = (
            body["active_shards"] + body["initializing_shards"] + body["unassigned_shards"]
            if active == "all"
            else int(active)
        )
        if body["active_shards"] < needed:
            return False
    nodes = req.arg("wait_for_nodes")
    return nodes is None or _nodes_ok(nodes, body["number_of_nodes"])


def _nodes_ok(condition: str, count: int) -> bool:
    """``wait_for_nodes``: ``N``, ``>=N``, ``<=N``, ``>N`` or ``<N``."""
    checks = {
        ">=": lambda n: count >= n,
        "<=": lambda n: count <= n,
        ">": lambda n: count > n,
        "<": lambda n: count < n,
        "": lambda n: count == n,
    }
    for op, check in checks.items():
        if condition.startswith(op) and condition[len(op) :].isdigit():
            return check(int(condition[len(op) :]))
    raise errors.illegal_argument(f"cannot parse wait_for_nodes [{condition}]")


def health(req: Request) -> Response:
    level = req.arg("level", "cluster") or "cluster"
    if level not in ("cluster", "indices", "shards"):
        raise errors.illegal_argument(f"{level} is not a valid health level")
    wanted = req.arg("wait_for_status")
    if wanted is not None and wanted not in STATUS_RANK:
        raise errors.illegal_argument(f"unknown cluster health status [{wanted}]")
    timeout = req.seconds("timeout", 30.0)
    waiting = any(
        name in req.query
        for name in (
            "wait_for_status",
            "wait_for_no_initializing_shards",
            "wait_for_active_shards",
            "wait_for_nodes",
            "wait_for_no_relocating_shards",
        )
    )
    done = True
    if waiting:
        done = req.node.wait_until(lambda: _satisfied(req, _health_body(req, level)), timeout)
        if not done:
            req.node.wait_until(lambda: False, HEALTH_TIMEOUT_SLACK)
    body = _health_body(req, level)
    body["timed_out"] = not done
    return Response(408 if not done else 200, body)


# --------------------------------------------------------------------- settings
def get_cluster_settings(req: Request) -> Response:
    cluster = req.node.cluster
    flat = req.flag("flat_settings", False)
    render = dict if flat else nest
    body = {"persistent": render(cluster.persistent), "transient": render(cluster.transient)}
    return Response(body=body)


def put_cluster_settings(req: Request) -> Response:
    cluster = req.node.cluster
    body = req.json_object()
    changed: dict[str, dict[str, Any]] = {"persistent": {}, "transient": {}}
    for scope in ("persistent", "transient"):
        updates = flatten(body.get(scope) or {})
        for key in updates:
            if not any(simple_match(k, key) for k in KNOWN_CLUSTER_SETTINGS):
                raise errors.illegal_argument(f"{scope} setting [{key}], not recognized")
        target = cluster.persistent if scope == "persistent" else cluster.transient
        for key, value in updates.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
            changed[scope][key] = value
    flat = req.flag("flat_settings", False)
    return Response(
        body={
            "acknowledged": True,
            "persistent": changed["persistent"] if flat else nest(changed["persistent"]),
            "transient": changed["transient"] if flat else nest(changed["transient"]),
        }
    )


# --------------------------------------------------------------------- cat
def _cat_row(req: Request, idx: Index) -> dict[str, str | None]:
    node = req.node
    health = index_health(idx, node.cluster.data_nodes, node.clock())
    unit = req.arg("bytes")
    row: dict[str, str | None] = {
        "health": health["status"],
        "status": "open" if idx.state == "open" else "close",
        "index": idx.name,
        "uuid": idx.uuid,
        "pri": str(idx.shards),
        "rep": str(idx.replicas),
    }
    if idx.state == "close":
        row.update(dict.fromkeys(CAT_COLUMNS[6:]))
        return row
    size = idx.store_bytes()
    copies = 1 + min(idx.replicas, node.cluster.data_nodes - 1)
    row["docs.count"] = str(idx.lucene_count(idx.visible(node.clock())))  # Lucene documents
    row["docs.deleted"] = str(idx.deleted)
    row["store.size"] = bytes_in(size * copies, unit)
    row["pri.store.size"] = bytes_in(size, unit)
    row["dataset.size"] = bytes_in(size, unit)
    return row


def _sort_key(column: str, value: str | None) -> tuple[int, Any]:
    if value is None:
        return (1, "")
    if column in ("pri", "rep", "docs.count", "docs.deleted"):
        return (0, int(value))
    return (0, value)


def _text_table(rows: list[dict[str, str | None]], columns: list[str], header: bool) -> str:
    table = [columns] if header else []
    table += [[row.get(c) or "" for c in columns] for row in rows]
    widths = [max((len(r[n]) for r in table), default=0) for n in range(len(columns))]
    return "".join(
        " ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip() + "\n"
        for r in table
    )


def cat_indices(req: Request) -> Response:
    indices = req.node.cluster.resolve(req.params.get("index"), req.targets(ALL))
    rows = [_cat_row(req, idx) for idx in indices]
    wanted_health = req.arg("health")
    if wanted_health:
        rows = [r for r in rows if r["health"] == wanted_health]
    for spec in reversed(as_list(req.arg("s"))):
        column, _, order = spec.partition(":")
        rows.sort(key=lambda r: _sort_key(column, r.get(column)), reverse=order == "desc")
    columns = CAT_COLUMNS
    if req.arg("h"):
        columns = [
            c for pattern in as_list(req.arg("h")) for c in CAT_COLUMNS if simple_match(pattern, c)
        ]
    rows = [{c: r.get(c) for c in columns} for r in rows]
    if _cat_format(req) == "json":
        return Response(body=rows)
    return Response(text=_text_table(rows, columns, req.flag("v", False)))


def _cat_format(req: Request) -> str:
    fmt = req.arg("format")
    if fmt is not None:
        if fmt not in ("json", "text", "txt"):
            raise errors.illegal_argument(
                f"invalid format [{fmt}]: only json and text are supported by the test double"
            )
        return "json" if fmt == "json" else "text"
    accept = req.headers.get("accept", "") or ""
    first = accept.split(",")[0].strip()
    return "json" if "json" in first else "text"


# --------------------------------------------------------------------- stats
def _index_stats(req: Request, idx: Index) -> dict[str, Any]:
    node = req.node
    count = idx.lucene_count(idx.visible(node.clock()))  # Lucene documents, nested included
    size = idx.store_bytes()
    copies = 1 + min(idx.replicas, node.cluster.data_nodes - 1)

    def part(times: int) -> dict[str, Any]:
        return {
            "docs": {"count": count * times, "deleted": idx.deleted * times},
            "store": {
                "size_in_bytes": size * times,
                "total_data_set_size_in_bytes": size * times,
                "reserved_in_bytes": 0,
            },
        }

    return {"primaries": part(1), "total": part(copies)}


def stats(req: Request) -> Response:
    cluster = req.node.cluster
    forbid = req.flag("forbid_closed_indices", True)
    targets = req.targets(Targets(), forbid_closed=forbid)
    indices = [i for i in cluster.resolve(req.params.get("index"), targets) if i.state == "open"]
    per_index = {i.name: _index_stats(req, i) for i in indices}
    total_shards = sum(i.shards * (1 + i.replicas) for i in indices)
    active = sum(i.shards * (1 + min(i.replicas, cluster.data_nodes - 1)) for i in indices)

    def summed(part: str) -> dict[str, Any]:
        result: dict[str, Any] = {
            "docs": {"count": 0, "deleted": 0},
            "store": {
                "size_in_bytes": 0,
                "total_data_set_size_in_bytes": 0,
                "reserved_in_bytes": 0,
            },
        }
        for entry in per_index.values():
            for group, values in entry[part].items():
                for key, value in values.items():
                    result[group][key] += value
        return result

    now = req.node.clock()
    body: dict[str, Any] = {
        "_shards": {"total": total_shards, "successful": active, "failed": 0},
        "_all": {"primaries": summed("primaries"), "total": summed("total")},
    }
    if (req.arg("level") or "indices") != "cluster":
        body["indices"] = {
            i.name: {
                "uuid": i.uuid,
                "health": index_health(i, cluster.data_nodes, now)["status"],
                "status": "open",
                **per_index[i.name],
            }
            for i in indices
        }
    return Response(body=body)


def register(router: Router) -> None:
    router.add("GET", "/", info)
    router.add("HEAD", "/", ping)
    health_params = (
        "expand_wildcards",
        "level",
        "local",
        "master_timeout",
        "timeout",
        "wait_for_active_shards",
        "wait_for_nodes",
        "wait_for_no_initializing_shards",
        "wait_for_no_relocating_shards",
        "wait_for_status",
    )
    router.add("GET", "/_cluster/health", health, health_params)
    router.add("GET", "/_cluster/health/{index}", health, health_params)
    settings_params = ("flat_settings", "master_timeout", "timeout")
    router.add("GET", "/_cluster/settings", get_cluster_settings, settings_params)
    router.add("PUT", "/_cluster/settings", put_cluster_settings, settings_params)
    cat_params = (*CAT_PARAMS, "expand_wildcards", "health", "include_unloaded_segments")
    router.add("GET", "/_cat/indices", cat_indices, cat_params)
    router.add("GET", "/_cat/indices/{index}", cat_indices, cat_params)
    stats_params = (*INDICES_OPTIONS, "level", "forbid_closed_indices", "include_unloaded_segments")
    router.add("GET", "/_stats", stats, stats_params)
    router.add("GET", "/{index}/_stats", stats, stats_params)
