"""What the cluster holds now: index states, data streams, aliases with their properties,
document counts, health. Every read that names indices sends them in bounded chunks."""

from __future__ import annotations

from typing import Any

from elasticsearch import Elasticsearch

from backupctl.drivers.elasticsearch.client import ElasticsearchError, body, call, chunks
from backupctl.drivers.elasticsearch.details import AliasProperties
from backupctl.errors import BackupctlError

#: health statuses, best first
_HEALTH_ORDER = ("green", "yellow", "red")


def index_states(es: Elasticsearch, names: list[str]) -> dict[str, str]:
    """``name -> "open, green"`` / ``"close"`` for each of ``names`` that exists as an index
    (hidden ones included)."""
    wanted = set(names)
    rows = body(
        call(
            "list indices",
            es.cat.indices,
            format="json",
            h="index,status,health",
            expand_wildcards="all",
        )
    )
    states = {}
    for row in rows:
        if row.get("index") in wanted:
            health = row.get("health")
            states[row["index"]] = f"{row.get('status')}, {health}" if health else row["status"]
    return states


def index_states_safe(es: Elasticsearch, names: list[str]) -> dict[str, str]:
    """As ``index_states``, every name included ("missing"), never raising (for reports)."""
    try:
        existing = index_states(es, names)
    except BackupctlError as exc:
        return {name: f"unknown ({exc})" for name in names}
    return {name: existing.get(name, "missing") for name in names}


def describe_states(states: dict[str, str]) -> str:
    return "; ".join(f"{name}: {state}" for name, state in sorted(states.items())) or "none"


def data_streams(es: Elasticsearch) -> dict[str, list[str]]:
    """Every data stream of the cluster (hidden ones included) -> its backing indices, the
    write index last."""
    found = body(
        call("list data streams", es.indices.get_data_stream, name="*", expand_wildcards="all")
    )
    return {
        stream["name"]: [index["index_name"] for index in stream.get("indices") or []]
        for stream in found.get("data_streams") or []
    }


def aliases_of(es: Elasticsearch, patterns: list[str]) -> dict[str, dict[str, AliasProperties]]:
    """Index -> its aliases with every property, for the indices matching ``patterns``."""
    found: dict[str, dict[str, AliasProperties]] = {}
    for group in chunks(patterns):
        answer = body(
            call(
                "get aliases",
                es.indices.get_alias,
                index=",".join(group),
                expand_wildcards="all",
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        )
        for index, entry in answer.items():
            aliases = (entry or {}).get("aliases") or {}
            found[index] = {
                alias: AliasProperties.model_validate(props or {}, strict=False)
                for alias, props in aliases.items()
            }
    return found


def alias_members(es: Elasticsearch, alias: str) -> dict[str, AliasProperties]:
    """The indices that have ``alias`` now, with its properties on each (empty: none)."""
    try:
        answer = body(call(f"get alias {alias}", es.indices.get_alias, name=alias))
    except ElasticsearchError as exc:
        if exc.status == 404:
            return {}
        raise
    return {
        index: AliasProperties.model_validate(
            ((entry or {}).get("aliases") or {}).get(alias) or {}, strict=False
        )
        for index, entry in answer.items()
    }


def document_counts(es: Elasticsearch, names: list[str]) -> dict[str, int]:
    """Top-level documents (``_count``, nested objects not counted) of each of ``names``
    (indices or data streams) that exists and is open."""
    counts = {}
    for name in names:
        try:
            answer = body(call(f"count {name}", es.count, index=name))
        except ElasticsearchError as exc:
            if exc.status in (400, 404):  # missing, or closed
                continue
            raise
        counts[name] = int(answer.get("count") or 0)
    return counts


def refresh(es: Elasticsearch, names: list[str]) -> None:
    """Make every write to ``names`` (indices, data streams or patterns) countable."""
    for group in chunks(names):
        call(
            "refresh indices",
            es.indices.refresh,
            index=",".join(group),
            allow_no_indices=True,
            ignore_unavailable=True,
        )


def health_of(es: Elasticsearch, names: list[str]) -> str:
    """The worst health of ``names`` (not the whole cluster's: an unrelated red index is
    not theirs)."""
    worst = "green"
    for group in chunks(names):
        answer = body(
            call(
                "index health",
                es.options(ignore_status=408).cluster.health,
                index=",".join(group),
                expand_wildcards="all",
            )
        )
        status = str(answer.get("status"))
        if status not in _HEALTH_ORDER or _HEALTH_ORDER.index(status) > _HEALTH_ORDER.index(worst):
            worst = status
    return worst


def store_stats(es: Elasticsearch, patterns: list[str]) -> dict[str, dict[str, Any]]:
    """Open indices matching ``patterns`` -> Lucene documents (``_cat``: nested objects
    counted) and primary store bytes."""
    stats: dict[str, dict[str, Any]] = {}
    for group in chunks(patterns):
        rows = body(
            call(
                "list indices",
                es.cat.indices,
                index=",".join(group),
                format="json",
                bytes="b",
                h="index,status,health,docs.count,pri.store.size",
                expand_wildcards="open",
            )
        )
        for row in rows:
            if row.get("status", "open") == "open":
                stats[row["index"]] = {
                    "docs": int(row.get("docs.count") or 0),
                    "bytes": int(row.get("pri.store.size") or 0),
                }
    return stats
