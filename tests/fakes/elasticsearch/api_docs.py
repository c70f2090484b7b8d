"""Document endpoints: index, create, get, exists, delete, ``_bulk`` and ``_count``."""

from __future__ import annotations

import json
import time
from typing import Any

from . import errors
from .cluster import Cluster, Doc, Index, Targets
from .names import simple_match
from .query import from_q, matches
from .routing import INDICES_OPTIONS, Request, Response, Router
from .values import as_list, new_uuid

PRIMARY_TIMEOUT = 60.0
WRITE_PARAMS = ("refresh", "timeout", "wait_for_active_shards", "op_type")
BULK_ACTIONS = ("index", "create", "delete", "update")


def _shards(req: Request, idx: Index) -> dict[str, int]:
    assigned = min(idx.replicas, req.node.cluster.data_nodes - 1)
    return {"total": 1 + idx.replicas, "successful": 1 + assigned, "failed": 0}


def _write_target(req: Request, name: str, op: str) -> Index:
    """The index a write goes to: open, and with its primaries started (writes wait)."""
    node = req.node
    idx = node.cluster.write_index(name, op)
    if idx.state == "close":
        raise errors.index_closed(idx.name, idx.uuid)
    timeout = req.seconds("timeout", PRIMARY_TIMEOUT)
    if not node.wait_until(lambda: not idx.recovering(node.clock()), timeout):
        raise errors.EsError(
            503,
            "unavailable_shards_exception",
            f"[{idx.name}][0] primary shard is not active Timeout: [{req.arg('timeout', '1m')}]",
        )
    return idx


def _result(req: Request, idx: Index, doc_id: str, doc: Doc, result: str) -> dict[str, Any]:
    return {
        "_index": idx.name,
        "_id": doc_id,
        "_version": doc.version,
        "result": result,
        "_shards": _shards(req, idx),
        "_seq_no": doc.seq_no,
        "_primary_term": doc.primary_term,
    }


def _conflict(idx: Index, doc_id: str, version: int) -> errors.EsError:
    return errors.EsError(
        409,
        "version_conflict_engine_exception",
        f"[{doc_id}]: version conflict, document already exists (current version [{version}])",
        index_uuid=idx.uuid,
        shard=str(idx.shard_of(doc_id)),
        index=idx.name,
    )


def _write(
    req: Request, idx: Index, doc_id: str, source: Any, op: str
) -> tuple[dict[str, Any], int]:
    if not isinstance(source, dict):
        raise errors.EsError(400, "mapper_parsing_exception", "failed to parse")
    parent = req.node.cluster.parent_stream(idx.name)
    if parent is not None:
        _check_timestamp(parent.timestamp_field, source)
    existing = idx.docs.get(doc_id)
    if op == "create" and existing is not None:
        raise _conflict(idx, doc_id, existing.version)
    doc, created = idx.put(doc_id, source, req.node.clock())
    return _result(
        req, idx, doc_id, doc, "created" if created else "updated"
    ), 201 if created else 200


def _check_timestamp(field: str, source: dict[str, Any]) -> None:
    """``DataStreamTimestampFieldMapper``: exactly one ``@timestamp`` value per document.
    The ``[line:column]`` prefix is approximate (the end of the compact JSON source)."""
    position = f"1:{len(json.dumps(source, separators=(',', ':')))}"
    value = source.get(field)
    if value is None:
        raise errors.document_parsing(position, f"data stream timestamp field [{field}] is missing")
    if isinstance(value, list) and len(value) != 1:
        raise errors.document_parsing(
            position, f"data stream timestamp field [{field}] encountered multiple values"
        )


def _after_write(req: Request, indices: list[Index], body: dict[str, Any]) -> None:
    mode = req.arg("refresh")
    if mode in ("", "true", "wait_for"):
        for idx in indices:
            idx.refresh()
        if mode != "wait_for":
            body["forced_refresh"] = True


def index_doc(req: Request) -> Response:
    doc_id = req.params.get("id")
    op = req.arg("op_type") or "index"
    if req.path.split("/")[2] == "_create":
        op = "create"
    if doc_id is None and req.arg("op_type") is None:
        op = "create"  # RestIndexAction.AutoIdHandler: an automatic id defaults to create
    if op not in ("index", "create"):
        raise errors.illegal_argument(f"opType must be 'create' or 'index', found: [{op}]")
    idx = _write_target(req, req.params["index"], op)
    body, status = _write(req, idx, doc_id or new_uuid(), req.json(), op)
    _after_write(req, [idx], body)
    return Response(status, body)


def _read_index(req: Request) -> Index:
    name = req.params["index"]
    if name in req.node.cluster.data_streams:  # a single-index read names a backing index
        raise errors.index_not_found(name)
    indices = req.node.cluster.resolve(name, Targets())
    if len(indices) != 1:
        raise errors.illegal_argument(
            f"alias [{name}] has more than one index associated with it "
            f"[{', '.join(i.name for i in indices)}], can't execute a single index op"
        )
    idx = indices[0]
    if idx.state == "close":
        raise errors.index_closed(idx.name, idx.uuid)
    if idx.recovering(req.node.clock()):
        raise errors.EsError(503, "no_shard_available_action_exception", "No shard available")
    return idx


def _lookup(req: Request, idx: Index, doc_id: str) -> Doc | None:
    """Realtime (the default) reads the latest write; ``realtime=false`` the last refresh."""
    if req.flag("refresh", False):
        idx.refresh()
    if req.flag("realtime", True):
        return idx.docs.get(doc_id)
    return idx.visible(req.node.clock()).get(doc_id)


def get_doc(req: Request) -> Response:
    idx = _read_index(req)
    doc_id = req.params["id"]
    doc = _lookup(req, idx, doc_id)
    if doc is None:
        return Response(404, {"_index": idx.name, "_id": doc_id, "found": False})
    body: dict[str, Any] = {
        "_index": idx.name,
        "_id": doc_id,
        "_version": doc.version,
        "_seq_no": doc.seq_no,
        "_primary_term": doc.primary_term,
        "found": True,
    }
    if req.arg("_source") != "false":
        body["_source"] = doc.source
    return Response(body=body)


def exists_doc(req: Request) -> Response:
    idx = _read_index(req)
    return Response(200 if _lookup(req, idx, req.params["id"]) is not None else 404)


def delete_doc(req: Request) -> Response:
    idx = _write_target(req, req.params["index"], "delete")
    doc_id = req.params["id"]
    previous = idx.remove(doc_id, req.node.clock())
    version = previous.version + 1 if previous else 1
    doc = Doc({}, version, idx.next_seq_no - 1 if previous else idx.next_seq_no)
    body = _result(req, idx, doc_id, doc, "deleted" if previous else "not_found")
    _after_write(req, [idx], body)
    return Response(200 if previous else 404, body)


# --------------------------------------------------------------------- bulk
def _bulk_lines(req: Request) -> list[Any]:
    raw = req.body
    if raw and not raw.endswith(b"\n"):
        raise errors.illegal_argument("The bulk request must be terminated by a newline [\\n]")
    lines = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except ValueError as error:
            raise errors.EsError(
                400, "x_content_parse_exception", f"[{number}:1] Malformed content: {error}"
            ) from None
    return lines


def _bulk_operations(req: Request) -> list[tuple[str, dict[str, Any], Any]]:
    lines = _bulk_lines(req)
    operations = []
    position = 0
    while position < len(lines):
        action = lines[position]
        if not isinstance(action, dict) or len(action) != 1:
            raise errors.illegal_argument(
                f"Malformed action/metadata line [{position + 1}], expected START_OBJECT or "
                "END_OBJECT but found [VALUE_STRING]"
            )
        kind, meta = next(iter(action.items()))
        if kind not in BULK_ACTIONS:
            raise errors.illegal_argument(
                f"Malformed action/metadata line [{position + 1}], expected field [create], "
                f"[delete], [index] or [update] but found [{kind}]"
            )
        meta = {"_index": req.params.get("index"), **(meta or {})}
        if not meta.get("_index"):
            raise errors.validation_failed("index is missing")
        position += 1
        source = None
        if kind != "delete":
            if position >= len(lines):
                raise errors.illegal_argument(f"The bulk request for {kind} is missing its source")
            source, position = lines[position], position + 1
        operations.append((kind, meta, source))
    return operations


def _bulk_update(req: Request, idx: Index, doc_id: str, source: Any) -> tuple[dict[str, Any], int]:
    existing = idx.docs.get(doc_id)
    partial = source.get("doc") if isinstance(source, dict) else None
    if existing is None:
        upsert = source.get("upsert") or (partial if source.get("doc_as_upsert") else None)
        if upsert is None:
            raise errors.EsError(
                404,
                "document_missing_exception",
                f"[{doc_id}]: document missing",
                index_uuid=idx.uuid,
                shard=str(idx.shard_of(doc_id)),
                index=idx.name,
            )
        return _write(req, idx, doc_id, upsert, "create")
    merged = {**existing.source, **(partial or {})}
    if merged == existing.source:
        return _result(req, idx, doc_id, existing, "noop"), 200
    doc, _ = idx.put(doc_id, merged, req.node.clock())
    return _result(req, idx, doc_id, doc, "updated"), 200


def _bulk_item(
    req: Request, kind: str, meta: dict[str, Any], source: Any, touched: list[Index]
) -> dict[str, Any]:
    doc_id = meta.get("_id")
    try:
        idx = _write_target(req, str(meta["_index"]), kind)
        touched.append(idx)
        if kind == "delete":
            previous = idx.remove(str(doc_id), req.node.clock())
            doc = Doc({}, previous.version + 1 if previous else 1, max(idx.next_seq_no - 1, 0))
            result = "deleted" if previous else "not_found"
            return {
                **_result(req, idx, str(doc_id), doc, result),
                "status": 200 if previous else 404,
            }
        if kind == "update":
            body, status = _bulk_update(req, idx, str(doc_id), source)
        else:
            body, status = _write(req, idx, str(doc_id) if doc_id else new_uuid(), source, kind)
        return {**body, "status": status}
    except errors.EsError as error:
        detail = error.detail()
        return {"_index": meta["_index"], "_id": doc_id, "status": error.status, "error": detail}


def bulk(req: Request) -> Response:
    started = time.monotonic()
    touched: list[Index] = []
    items = [
        {kind: _bulk_item(req, kind, meta, source, touched)}
        for kind, meta, source in _bulk_operations(req)
    ]
    body: dict[str, Any] = {
        "errors": any("error" in next(iter(item.values())) for item in items),
        "took": int((time.monotonic() - started) * 1000),
        "items": items,
    }
    _after_write(req, list({id(i): i for i in touched}.values()), {})
    return Response(body=body)


# --------------------------------------------------------------------- count
def count(req: Request) -> Response:
    body = req.json_object()
    for key in body:
        if key != "query":
            raise errors.EsError(400, "parsing_exception", f"request does not support [{key}]")
    query = body.get("query") or (
        {"match_all": {}} if req.arg("q") is None else from_q(req.arg("q") or "")
    )
    node = req.node
    indices = node.cluster.resolve(
        req.params.get("index"), req.targets(Targets(forbid_closed=True))
    )
    now = node.clock()
    total = failed = hits = 0
    failures: list[dict[str, Any]] = []
    for idx in indices:
        total += idx.shards
        if idx.recovering(now):
            failed += idx.shards
            failures.extend(_shard_failure(idx, n) for n in range(idx.shards))
            continue
        filters = alias_filters(node.cluster, req.params.get("index"), idx)
        scoped = query if filters is None else _with_filters(query, filters)
        hits += sum(
            1 for doc_id, doc in idx.visible(now).items() if matches(doc_id, doc.source, scoped)
        )
    if total and failed == total:
        raise errors.EsError(
            503,
            "search_phase_execution_exception",
            "all shards failed",
            phase="query",
            grouped=True,
            failed_shards=failures,
        )
    shards: dict[str, Any] = {
        "total": total,
        "successful": total - failed,
        "skipped": 0,
        "failed": failed,
    }
    if failures:
        shards["failures"] = failures
    return Response(body={"count": hits, "_shards": shards})


def alias_filters(cluster: Cluster, expression: Any, idx: Index) -> list[Any] | None:
    """``IndexNameExpressionResolver.filteringAliases``: the filters of the aliases
    through which ``expression`` reached ``idx`` (OR-ed), or None when it was reached
    unfiltered (by name, a wildcard on index names, _all, or an alias without filter)."""
    filters: list[Any] = []
    for expr in as_list(expression) or ["_all"]:
        if expr.startswith("-"):
            continue
        parent = cluster.parent_stream(idx.name)
        if simple_match(expr, idx.name) or (parent and simple_match(expr, parent.name)):
            return None
        for alias, props in idx.aliases.items():
            if simple_match(expr, alias):
                if "filter" not in props:
                    return None
                filters.append(props["filter"])
    return filters or None


def _with_filters(query: Any, filters: list[Any]) -> dict[str, Any]:
    return {"bool": {"must": [query], "filter": [{"bool": {"should": filters}}]}}


def _shard_failure(idx: Index, shard: int) -> dict[str, Any]:
    return {
        "shard": shard,
        "index": idx.name,
        "node": None,
        "reason": {"type": "no_shard_available_action_exception", "reason": None},
    }


def register(router: Router) -> None:
    router.add("PUT,POST", "/{index}/_doc/{id}", index_doc, WRITE_PARAMS)
    router.add("POST", "/{index}/_doc", index_doc, WRITE_PARAMS)
    router.add("PUT,POST", "/{index}/_create/{id}", index_doc, WRITE_PARAMS)
    read_params = ("_source", "realtime", "refresh")
    router.add("GET", "/{index}/_doc/{id}", get_doc, read_params)
    router.add("HEAD", "/{index}/_doc/{id}", exists_doc, read_params)
    router.add("DELETE", "/{index}/_doc/{id}", delete_doc, WRITE_PARAMS)
    bulk_params = ("refresh", "timeout", "wait_for_active_shards")
    router.add("POST,PUT", "/_bulk", bulk, bulk_params)
    router.add("POST,PUT", "/{index}/_bulk", bulk, bulk_params)
    count_params = (*INDICES_OPTIONS, "q", "ignore_throttled")
    router.add("GET,POST", "/_count", count, count_params)
    router.add("GET,POST", "/{index}/_count", count, count_params)
