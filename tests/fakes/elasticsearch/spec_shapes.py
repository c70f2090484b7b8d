"""The response bodies the double sends, described from the Elasticsearch specification.

Hand-written, after reading the request/response types of the ``8.15`` branch of
``elastic/elasticsearch-specification`` (``specification/**``; each :class:`Endpoint`
names the file it was checked against). Nothing of the specification is copied here:
only which fields a body has, whether the specification requires them, and their JSON
types. :func:`problems` checks a body against a shape: required fields present, JSON
types right, and no field the shape does not know.

The double follows Elasticsearch where the specification is known to lag or be loose;
each such field is in the shape with a ``note`` saying why (``documented``):

- ``SnapshotShardFailure.shard_id`` is an ``Id`` (string) in the specification, a number
  in every answer Elasticsearch sends; failures also carry ``index_uuid``.
- repository ``settings`` are typed (booleans, integers) in the specification but
  rendered as strings, as Elasticsearch renders every setting.
- ``POST /_aliases`` answers ``errors`` besides ``acknowledged`` (8.14+).
- ``GET /_data_stream`` entries carry ``rollover_on_write`` (lazy rollover, 8.13+; the
  9.x specification requires it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SPEC_REPOSITORY = "elastic/elasticsearch-specification"
SPEC_BRANCH = "8.15"


@dataclass(frozen=True)
class F:
    """One JSON value: ``kind`` is string, integer, number, boolean, object (``fields``,
    other keys refused unless ``extra``), array (``items``), dict (any keys, ``values``),
    names (a string or an array of strings) or any."""

    kind: str
    required: bool = True
    fields: Mapping[str, F] = field(default_factory=dict)
    items: F | None = None
    values: F | None = None
    nullable: bool = False
    extra: bool = False
    note: str = ""


def req(kind: str, **kw: Any) -> F:
    return F(kind, True, **kw)


def opt(kind: str, **kw: Any) -> F:
    return F(kind, False, **kw)


def obj(fields: Mapping[str, F], *, required: bool = True, extra: bool = False) -> F:
    return F("object", required, fields=fields, extra=extra)


def arr(items: F, *, required: bool = True) -> F:
    return F("array", required, items=items)


def dict_of(values: F, *, required: bool = True) -> F:
    return F("dict", required, values=values)


def documented(kind: str, note: str, **kw: Any) -> F:
    """A field the double sends, as Elasticsearch does, that the specification lacks."""
    return F(kind, False, note=note, **kw)


@dataclass(frozen=True)
class Endpoint:
    request: str
    spec_file: str
    body: F


# --------------------------------------------------------------------- shared types
ACKNOWLEDGED = obj({"acknowledged": req("boolean")})  # _types/Base.ts AcknowledgedResponseBase
ERROR_CAUSE = obj(
    {
        "type": req("string"),
        "reason": opt("string", nullable=True),
        "stack_trace": opt("string"),
        "caused_by": opt("object", extra=True),
        "root_cause": arr(obj({"type": req("string")}, extra=True), required=False),
        "suppressed": arr(obj({"type": req("string")}, extra=True), required=False),
    },
    extra=True,  # ErrorCause implements AdditionalProperties
)
ERROR = obj({"error": ERROR_CAUSE, "status": req("integer")})  # _types/Base.ts ErrorResponseBase
SHARD_FAILURE = obj(  # _types/Errors.ts ShardFailure
    {
        "index": opt("string", nullable=True),
        "node": opt("string", nullable=True),
        "reason": obj({"type": req("string")}, extra=True),
        "shard": req("integer"),
        "status": opt("string"),
    }
)
SHARD_STATISTICS = obj(  # _types/Stats.ts ShardStatistics
    {
        "failed": req("integer"),
        "successful": req("integer"),
        "total": req("integer"),
        "failures": arr(SHARD_FAILURE, required=False),
        "skipped": opt("integer"),
    }
)
SNAPSHOT_SHARD_FAILURE = obj(  # snapshot/_types/SnapshotShardFailure.ts
    {
        "index": req("string"),
        "node_id": opt("string", nullable=True),
        "reason": req("string"),
        "shard_id": req("integer", note="an Id (string) in the specification"),
        "status": req("string"),
        "index_uuid": documented("string", "sent by Elasticsearch, not in the specification"),
    }
)
SNAPSHOT_INFO = obj(  # snapshot/_types/SnapshotInfo.ts
    {
        "data_streams": arr(req("string")),
        "duration": opt("string"),
        "duration_in_millis": opt("integer"),
        "end_time": opt("string"),
        "end_time_in_millis": opt("integer"),
        "failures": arr(SNAPSHOT_SHARD_FAILURE, required=False),
        "include_global_state": opt("boolean"),
        "indices": arr(req("string"), required=False),
        "index_details": dict_of(req("object", extra=True), required=False),
        "metadata": dict_of(req("any"), required=False),
        "reason": opt("string"),
        "repository": opt("string"),
        "snapshot": req("string"),
        "shards": F("object", False, fields=SHARD_STATISTICS.fields),
        "start_time": opt("string"),
        "start_time_in_millis": opt("integer"),
        "state": opt("string"),
        "uuid": req("string"),
        "version": opt("string"),
        "version_id": opt("integer"),
        "feature_states": arr(  # snapshot/_types/SnapshotInfoFeatureState.ts
            obj({"feature_name": req("string"), "indices": req("names")}), required=False
        ),
    }
)
FS_SETTINGS = obj(  # snapshot/_types/SnapshotRepository.ts SharedFileSystemRepositorySettings
    {
        "location": req("string"),
        "max_number_of_snapshots": opt("string", note="an integer in the specification"),
        "readonly": opt("string", note="a boolean in the specification"),
        "chunk_size": opt("string"),
        "compress": opt("string", note="a boolean in the specification"),
        "max_restore_bytes_per_sec": opt("string"),
        "max_snapshot_bytes_per_sec": opt("string"),
    }
)
ALIAS_DEFINITION = obj(  # indices/_types/AliasDefinition.ts
    {
        "filter": opt("object", extra=True),
        "index_routing": opt("string"),
        "is_write_index": opt("boolean"),
        "routing": opt("string"),
        "search_routing": opt("string"),
        "is_hidden": opt("boolean"),
    }
)
INDEX_HEALTH = obj(  # cluster/health/types.ts IndexHealthStats
    {
        "active_primary_shards": req("integer"),
        "active_shards": req("integer"),
        "initializing_shards": req("integer"),
        "number_of_replicas": req("integer"),
        "number_of_shards": req("integer"),
        "relocating_shards": req("integer"),
        "shards": dict_of(
            obj(
                {
                    "active_shards": req("integer"),
                    "initializing_shards": req("integer"),
                    "primary_active": req("boolean"),
                    "relocating_shards": req("integer"),
                    "status": req("string"),
                    "unassigned_shards": req("integer"),
                }
            ),
            required=False,
        ),
        "status": req("string"),
        "unassigned_shards": req("integer"),
    }
)
HEALTH = obj(  # cluster/health/ClusterHealthResponse.ts HealthResponseBody (also the 408)
    {
        "active_primary_shards": req("integer"),
        "active_shards": req("integer"),
        "active_shards_percent_as_number": req("number"),
        "cluster_name": req("string"),
        "delayed_unassigned_shards": req("integer"),
        "indices": dict_of(INDEX_HEALTH, required=False),
        "initializing_shards": req("integer"),
        "number_of_data_nodes": req("integer"),
        "number_of_in_flight_fetch": req("integer"),
        "number_of_nodes": req("integer"),
        "number_of_pending_tasks": req("integer"),
        "relocating_shards": req("integer"),
        "status": req("string"),
        "task_max_waiting_in_queue": opt("string"),
        "task_max_waiting_in_queue_millis": req("integer"),
        "timed_out": req("boolean"),
        "unassigned_shards": req("integer"),
    }
)
CAT_COLUMNS = (  # cat/indices/types.ts IndicesRecord: every column optional, string or null
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
)
MANAGED_BY = ("Index Lifecycle Management", "Data stream lifecycle", "Unmanaged")
DATA_STREAM = obj(  # indices/_types/DataStream.ts DataStream (8.15)
    {
        "_meta": dict_of(req("any"), required=False),
        "allow_custom_routing": opt("boolean"),
        "generation": req("integer"),
        "hidden": req("boolean"),
        "ilm_policy": opt("string"),
        "next_generation_managed_by": req("string"),
        "prefer_ilm": req("boolean"),
        "indices": arr(
            obj(
                {
                    "index_name": req("string"),
                    "index_uuid": req("string"),
                    "ilm_policy": opt("string"),
                    "managed_by": req("string"),
                    "prefer_ilm": req("boolean"),
                }
            )
        ),
        "lifecycle": opt("object", extra=True),
        "name": req("string"),
        "replicated": opt("boolean"),
        "status": req("string"),
        "system": opt("boolean"),
        "template": req("string"),
        "timestamp_field": obj({"name": req("string")}),
        "rollover_on_write": documented(
            "boolean", "lazy rollover (8.13+); required by the 9.x specification"
        ),
    }
)
INDEX_TEMPLATE = obj(  # indices/_types/IndexTemplate.ts IndexTemplate
    {
        "index_patterns": req("names"),
        "composed_of": arr(req("string")),
        "template": obj(
            {
                "aliases": dict_of(req("object", extra=True), required=False),
                "mappings": opt("object", extra=True),
                "settings": opt("object", extra=True),
                "lifecycle": opt("object", extra=True),
            },
            required=False,
        ),
        "version": opt("integer"),
        "priority": opt("integer"),
        "_meta": dict_of(req("any"), required=False),
        "allow_auto_create": opt("boolean"),
        "data_stream": obj(
            {"hidden": opt("boolean"), "allow_custom_routing": opt("boolean")}, required=False
        ),
    }
)

# --------------------------------------------------------------------- endpoints
ENDPOINTS: dict[str, Endpoint] = {
    "info": Endpoint(
        "GET /",
        "specification/_global/info/RootNodeInfoResponse.ts (_types/Base.ts)",
        obj(
            {
                "cluster_name": req("string"),
                "cluster_uuid": req("string"),
                "name": req("string"),
                "tagline": req("string"),
                "version": obj(
                    {
                        "build_date": req("string"),
                        "build_flavor": req("string"),
                        "build_hash": req("string"),
                        "build_snapshot": req("boolean"),
                        "build_type": req("string"),
                        "lucene_version": req("string"),
                        "minimum_index_compatibility_version": req("string"),
                        "minimum_wire_compatibility_version": req("string"),
                        "number": req("string"),
                    }
                ),
            }
        ),
    ),
    "snapshot.get": Endpoint(
        "GET /_snapshot/{repository}/{snapshot}",
        "specification/snapshot/get/SnapshotGetResponse.ts",
        obj(
            {
                "responses": arr(req("object", extra=True), required=False),
                "snapshots": arr(SNAPSHOT_INFO, required=False),
                "total": req("integer"),
                "remaining": req("integer"),
            }
        ),
    ),
    "snapshot.create": Endpoint(
        "PUT /_snapshot/{repository}/{snapshot}",
        "specification/snapshot/create/SnapshotCreateResponse.ts",
        obj(
            {
                "accepted": opt("boolean"),
                "snapshot": F("object", False, fields=SNAPSHOT_INFO.fields),
            }
        ),
    ),
    "snapshot.delete": Endpoint(
        "DELETE /_snapshot/{repository}/{snapshot}",
        "specification/snapshot/delete/SnapshotDeleteResponse.ts",
        ACKNOWLEDGED,
    ),
    "snapshot.restore": Endpoint(
        "POST /_snapshot/{repository}/{snapshot}/_restore",
        "specification/snapshot/restore/SnapshotRestoreResponse.ts",
        obj(
            {
                "accepted": opt("boolean"),
                "snapshot": obj(
                    {
                        "indices": arr(req("string")),
                        "snapshot": req("string"),
                        "shards": SHARD_STATISTICS,
                    },
                    required=False,
                ),
            }
        ),
    ),
    "snapshot.get_repository": Endpoint(
        "GET /_snapshot/{repository}",
        "specification/snapshot/get_repository/SnapshotGetRepositoryResponse.ts "
        "(snapshot/_types/SnapshotRepository.ts)",
        dict_of(obj({"type": req("string"), "settings": FS_SETTINGS, "uuid": opt("string")})),
    ),
    "snapshot.create_repository": Endpoint(
        "PUT /_snapshot/{repository}",
        "specification/snapshot/create_repository/SnapshotCreateRepositoryResponse.ts",
        ACKNOWLEDGED,
    ),
    "snapshot.verify_repository": Endpoint(
        "POST /_snapshot/{repository}/_verify",
        "specification/snapshot/verify_repository/SnapshotVerifyRepositoryResponse.ts",
        obj({"nodes": dict_of(obj({"name": req("string")}))}),
    ),
    "indices.close": Endpoint(
        "POST /{index}/_close",
        "specification/indices/close/CloseIndexResponse.ts",
        obj(
            {
                "acknowledged": req("boolean"),
                "indices": dict_of(
                    obj({"closed": req("boolean"), "shards": opt("object", extra=True)})
                ),
                "shards_acknowledged": req("boolean"),
            }
        ),
    ),
    "indices.open": Endpoint(
        "POST /{index}/_open",
        "specification/indices/open/IndicesOpenResponse.ts",
        obj({"acknowledged": req("boolean"), "shards_acknowledged": req("boolean")}),
    ),
    "indices.delete": Endpoint(
        "DELETE /{index}",
        "specification/indices/delete/IndicesDeleteResponse.ts (IndicesResponseBase)",
        obj(
            {
                "acknowledged": req("boolean"),
                "_shards": F("object", False, fields=SHARD_STATISTICS.fields),
            }
        ),
    ),
    "indices.refresh": Endpoint(
        "POST /{index}/_refresh",
        "specification/indices/refresh/IndicesRefreshResponse.ts (ShardsOperationResponseBase)",
        obj({"_shards": F("object", False, fields=SHARD_STATISTICS.fields)}),
    ),
    "indices.get_alias": Endpoint(
        "GET /{index}/_alias",
        "specification/indices/get_alias/IndicesGetAliasResponse.ts",
        dict_of(obj({"aliases": dict_of(ALIAS_DEFINITION)})),
    ),
    "indices.update_aliases": Endpoint(
        "POST /_aliases",
        "specification/indices/update_aliases/IndicesUpdateAliasesResponse.ts",
        obj(
            {
                "acknowledged": req("boolean"),
                "errors": documented("boolean", "sent since 8.14 with action results"),
            }
        ),
    ),
    "indices.put_alias": Endpoint(
        "PUT /{index}/_alias/{name}",
        "specification/indices/put_alias/IndicesPutAliasResponse.ts",
        ACKNOWLEDGED,
    ),
    "count": Endpoint(
        "POST /{index}/_count",
        "specification/_global/count/CountResponse.ts",
        obj({"count": req("integer"), "_shards": SHARD_STATISTICS}),
    ),
    "indices.get_settings": Endpoint(
        "GET /{index}/_settings",
        "specification/indices/get_settings/IndicesGetSettingsResponse.ts "
        "(indices/_types/IndexState.ts)",
        dict_of(
            obj(
                {
                    "aliases": dict_of(req("object", extra=True), required=False),
                    "mappings": opt("object", extra=True),
                    "settings": opt("object", extra=True),
                    "defaults": opt("object", extra=True),
                    "data_stream": opt("string"),
                    "lifecycle": opt("object", extra=True),
                }
            )
        ),
    ),
    "cat.indices": Endpoint(
        "GET /_cat/indices?format=json",
        "specification/cat/indices/CatIndicesResponse.ts (cat/indices/types.ts)",
        arr(obj({c: opt("string", nullable=True) for c in CAT_COLUMNS})),
    ),
    "cluster.health": Endpoint(
        "GET /_cluster/health", "specification/cluster/health/ClusterHealthResponse.ts", HEALTH
    ),
    "indices.get_data_stream": Endpoint(
        "GET /_data_stream/{name}",
        "specification/indices/get_data_stream/IndicesGetDataStreamResponse.ts "
        "(indices/_types/DataStream.ts)",
        obj({"data_streams": arr(DATA_STREAM)}),
    ),
    "indices.create_data_stream": Endpoint(
        "PUT /_data_stream/{name}",
        "specification/indices/create_data_stream/IndicesCreateDataStreamResponse.ts",
        ACKNOWLEDGED,
    ),
    "indices.delete_data_stream": Endpoint(
        "DELETE /_data_stream/{name}",
        "specification/indices/delete_data_stream/IndicesDeleteDataStreamResponse.ts",
        ACKNOWLEDGED,
    ),
    "indices.put_index_template": Endpoint(
        "PUT /_index_template/{name}",
        "specification/indices/put_index_template/IndicesPutIndexTemplateResponse.ts",
        ACKNOWLEDGED,
    ),
    "indices.get_index_template": Endpoint(
        "GET /_index_template/{name}",
        "specification/indices/get_index_template/IndicesGetIndexTemplateResponse.ts "
        "(indices/_types/IndexTemplate.ts)",
        obj(
            {"index_templates": arr(obj({"name": req("string"), "index_template": INDEX_TEMPLATE}))}
        ),
    ),
    "indices.rollover": Endpoint(
        "POST /{alias}/_rollover",
        "specification/indices/rollover/IndicesRolloverResponse.ts",
        obj(
            {
                "acknowledged": req("boolean"),
                "conditions": dict_of(req("boolean")),
                "dry_run": req("boolean"),
                "new_index": req("string"),
                "old_index": req("string"),
                "rolled_over": req("boolean"),
                "shards_acknowledged": req("boolean"),
            }
        ),
    ),
    "features.get_features": Endpoint(
        "GET /_features",
        "specification/features/get_features/GetFeaturesResponse.ts (features/_types/Feature.ts)",
        obj({"features": arr(obj({"name": req("string"), "description": req("string")}))}),
    ),
    "error": Endpoint(
        "any error answer",
        "specification/_types/Base.ts ErrorResponseBase (_types/Errors.ts)",
        ERROR,
    ),
}

# the values some string fields take (checked by the contract test, not by problems())
ENUMS = {"managed_by": MANAGED_BY, "health": ("green", "yellow", "red", "GREEN", "YELLOW", "RED")}


# --------------------------------------------------------------------- checking
def _kind_ok(kind: str, value: Any) -> bool:
    if kind == "any":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("object", "dict"):
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "names":
        return isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
    raise ValueError(f"unknown kind {kind!r}")


def problems(shape: F, value: Any, path: str = "$") -> list[str]:
    """What is wrong with ``value`` against ``shape`` (an empty list: nothing)."""
    if value is None:
        return [] if shape.nullable else [f"{path}: null where {shape.kind} is expected"]
    if not _kind_ok(shape.kind, value):
        return [f"{path}: {type(value).__name__} where {shape.kind} is expected"]
    found: list[str] = []
    if shape.kind == "object" and (shape.fields or not shape.extra):
        for name, spec in shape.fields.items():
            if name in value:
                found += problems(spec, value[name], f"{path}.{name}")
            elif spec.required:
                found.append(f"{path}.{name}: required by the specification, missing")
        if not shape.extra:
            found += [
                f"{path}.{name}: not defined by the specification"
                for name in value
                if name not in shape.fields
            ]
    elif shape.kind == "array" and shape.items is not None:
        for n, item in enumerate(value):
            found += problems(shape.items, item, f"{path}[{n}]")
    elif shape.kind == "dict" and shape.values is not None:
        for key, item in value.items():
            found += problems(shape.values, item, f"{path}[{key!r}]")
    return found


def check(endpoint: str, body: Any) -> list[str]:
    return problems(ENDPOINTS[endpoint].body, body)
