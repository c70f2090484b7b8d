"""Contract tests of the Elasticsearch test double: index templates, data streams,
rollover, and data streams in snapshots and restores.

Like ``test_fake_elasticsearch.py`` they run against the double, and against a real
cluster when ``BACKUPCTL_TEST_ES_URL`` is set (every name is ``es_cluster.name(...)``,
so teardown removes the streams, templates and indices they make).
"""

from __future__ import annotations

import re
from typing import Any, cast

import pytest
from elasticsearch import ApiError, BadRequestError, Elasticsearch, NotFoundError

from tests.support.elasticsearch import EsCluster
from tests.unit.test_fake_elasticsearch import error_type, reason, register_repository

TIMESTAMP = "2024-05-01T12:00:00Z"


@pytest.fixture
def es(es_cluster: EsCluster) -> Elasticsearch:
    return es_cluster.client()


def backing_pattern(stream: str, generation: int) -> str:
    return rf"\.ds-{re.escape(stream)}-\d{{4}}\.\d{{2}}\.\d{{2}}-{generation:06d}"


def stream_template(es_cluster: EsCluster, es: Elasticsearch, base: str = "logs") -> str:
    """A data stream template for ``<prefix>-<base>*``; returns the stream name to use."""
    name = es_cluster.name(base)
    es.indices.put_index_template(
        name=es_cluster.name(f"{base}-template"),
        index_patterns=[f"{name}*"],
        data_stream={},
        priority=500,
        template={"settings": {"number_of_replicas": 0}},
    )
    return name


def describe(es: Elasticsearch, stream: str) -> dict[str, Any]:
    (described,) = es.indices.get_data_stream(name=stream)["data_streams"]
    return cast(dict[str, Any], described)


def backing(es: Elasticsearch, stream: str) -> list[str]:
    return [i["index_name"] for i in describe(es, stream)["indices"]]


def add(es: Elasticsearch, stream: str, docs: int, refresh: bool = True) -> None:
    operations: list[dict[str, Any]] = []
    for n in range(docs):
        operations += [{"create": {"_index": stream}}, {"@timestamp": TIMESTAMP, "n": n}]
    response = es.bulk(operations=operations, refresh=refresh)
    assert not response["errors"], response


@pytest.fixture
def stream(es_cluster: EsCluster, es: Elasticsearch) -> str:
    name = stream_template(es_cluster, es)
    es.indices.create_data_stream(name=name)
    return name


# --------------------------------------------------------------------------- templates
def test_index_template_is_kept_as_written(es_cluster: EsCluster, es: Elasticsearch) -> None:
    name = stream_template(es_cluster, es)
    template = es_cluster.name("logs-template")
    (item,) = es.indices.get_index_template(name=template)["index_templates"]
    assert item["name"] == template
    rendered = item["index_template"]
    assert rendered["index_patterns"] == [f"{name}*"]
    assert rendered["data_stream"] == {"hidden": False, "allow_custom_routing": False}
    assert rendered["priority"] == 500 and rendered["composed_of"] == []
    with pytest.raises(BadRequestError) as missing:
        es.indices.put_index_template(name=es_cluster.name("bad"), priority=1)
    assert error_type(missing.value) == "action_request_validation_exception"
    assert reason(missing.value) == "Validation Failed: 1: index patterns are missing;"


def test_creating_a_data_stream_needs_a_data_stream_template(
    es_cluster: EsCluster, es: Elasticsearch
) -> None:
    nothing = es_cluster.name("nothing-matches")
    with pytest.raises(BadRequestError) as refused:
        es.indices.create_data_stream(name=nothing)
    assert error_type(refused.value) == "illegal_argument_exception"
    assert reason(refused.value) == f"no matching index template found for data stream [{nothing}]"
    plain = es_cluster.name("plain")
    es.indices.put_index_template(
        name=es_cluster.name("plain-template"), index_patterns=[f"{plain}*"], priority=500
    )
    with pytest.raises(BadRequestError) as no_stream:
        es.indices.create_data_stream(name=plain)
    assert reason(no_stream.value) == (
        f"matching index template [{es_cluster.name('plain-template')}] for data stream "
        f"[{plain}] has no data stream template"
    )


# --------------------------------------------------------------------------- streams
def test_data_stream_has_a_hidden_backing_index_as_write_index(
    es: Elasticsearch, stream: str
) -> None:
    described = describe(es, stream)
    assert described["name"] == stream and described["generation"] == 1
    assert described["timestamp_field"] == {"name": "@timestamp"}
    assert described["status"] in ("GREEN", "YELLOW")
    (write,) = described["indices"]
    assert re.fullmatch(backing_pattern(stream, 1), write["index_name"])
    settings = es.indices.get_settings(index=write["index_name"])[write["index_name"]]
    assert settings["settings"]["index"]["hidden"] == "true"
    with pytest.raises(BadRequestError) as again:
        es.indices.create_data_stream(name=stream)
    assert error_type(again.value) == "resource_already_exists_exception"
    assert reason(again.value) == f"data_stream [{stream}] already exists"
    with pytest.raises(NotFoundError) as missing:
        es.indices.get_data_stream(name=f"{stream}-missing")
    assert error_type(missing.value) == "index_not_found_exception"


def test_documents_land_in_the_write_index_with_op_type_create(
    es: Elasticsearch, stream: str
) -> None:
    (write,) = backing(es, stream)
    auto_id = es.index(index=stream, document={"@timestamp": TIMESTAMP, "n": 1})
    assert (auto_id["_index"], auto_id["result"]) == (write, "created")
    created = es.create(index=stream, id="given", document={"@timestamp": TIMESTAMP})
    assert created["_index"] == write
    with pytest.raises(BadRequestError) as indexed:
        es.index(index=stream, id="x", document={"@timestamp": TIMESTAMP})
    assert error_type(indexed.value) == "illegal_argument_exception"
    assert reason(indexed.value) == (
        "only write ops with an op_type of create are allowed in data streams"
    )
    with pytest.raises(BadRequestError) as untimed:
        es.index(index=stream, document={"n": 2})
    assert error_type(untimed.value) == "document_parsing_exception"
    assert reason(untimed.value).endswith(
        "failed to parse: data stream timestamp field [@timestamp] is missing"
    )
    bulk = es.bulk(
        operations=[
            {"index": {"_index": stream}},
            {"@timestamp": TIMESTAMP},
            {"create": {"_index": stream}},
            {"@timestamp": TIMESTAMP},
        ],
        refresh=True,
    )
    refused, accepted = (next(iter(item.values())) for item in bulk["items"])
    assert refused["status"] == 400 and refused["error"]["type"] == "illegal_argument_exception"
    assert accepted["status"] == 201 and accepted["_index"] == write
    assert es.count(index=stream)["count"] == 3


def test_first_write_creates_the_data_stream_its_template_describes(
    es_cluster: EsCluster, es: Elasticsearch
) -> None:
    name = stream_template(es_cluster, es)
    written = es.index(index=name, document={"@timestamp": TIMESTAMP}, refresh=True)
    assert re.fullmatch(backing_pattern(name, 1), written["_index"])
    assert backing(es, name) == [written["_index"]]
    with pytest.raises(BadRequestError) as as_index:
        es.indices.create(index=f"{name}-direct")
    assert error_type(as_index.value) == "illegal_argument_exception"
    assert "that creates data streams only, use create data stream api instead" in reason(
        as_index.value
    )


def test_rollover_makes_a_new_write_index_the_old_one_can_go(
    es: Elasticsearch, stream: str
) -> None:
    add(es, stream, 3)
    (first,) = backing(es, stream)
    rolled = es.indices.rollover(alias=stream)
    assert rolled["rolled_over"] is True and rolled["old_index"] == first
    assert re.fullmatch(backing_pattern(stream, 2), rolled["new_index"])
    assert backing(es, stream) == [first, rolled["new_index"]]
    assert describe(es, stream)["generation"] == 2
    add(es, stream, 2)
    assert es.count(index=stream)["count"] == 5
    with pytest.raises(BadRequestError) as write_index:
        es.indices.delete(index=rolled["new_index"])
    assert error_type(write_index.value) == "illegal_argument_exception"
    assert reason(write_index.value) == (
        f"index [{rolled['new_index']}] is the write index for data stream [{stream}] and "
        "cannot be deleted"
    )
    es.indices.delete(index=first)  # not the write index: it leaves the stream
    assert backing(es, stream) == [rolled["new_index"]]
    assert es.count(index=stream)["count"] == 2


def test_closing_the_write_index_is_allowed_since_7_12(es: Elasticsearch, stream: str) -> None:
    # elastic/elasticsearch#70908: closing a data stream's write index is not refused
    (write,) = backing(es, stream)
    closed = es.indices.close(index=write)
    assert closed["indices"][write]["closed"] is True
    with pytest.raises(BadRequestError) as refused:
        es.index(index=stream, document={"@timestamp": TIMESTAMP})
    assert error_type(refused.value) == "index_closed_exception"
    es.indices.open(index=write)
    es.index(index=stream, document={"@timestamp": TIMESTAMP})


def test_hidden_backing_indices_follow_their_stream_in_wildcards(
    es_cluster: EsCluster, es: Elasticsearch, stream: str
) -> None:
    add(es, stream, 4)
    (write,) = backing(es, stream)
    rows = es.cat.indices(index=es_cluster.name("*"), format="json", h="index,docs.count")
    listed = cast(list[dict[str, str]], rows.body)
    assert {r["index"]: r["docs.count"] for r in listed} == {write: "4"}
    assert es.count(index=es_cluster.name("*"))["count"] == 4
    assert es.count(index=stream)["count"] == 4
    health = es.cluster.health(index=stream)
    assert health["active_primary_shards"] == 1
    hidden_only = es.indices.get(index=f".ds-{es_cluster.prefix}-*", expand_wildcards="open")
    assert list(hidden_only) == [write]  # a dot pattern matches hidden dot indices
    visible = es.indices.get(index=f"{es_cluster.prefix}-*", expand_wildcards="open")
    assert list(visible) == [write]  # through the (visible) data stream


def test_delete_data_stream_deletes_its_backing_indices(es: Elasticsearch, stream: str) -> None:
    add(es, stream, 1)
    (write,) = backing(es, stream)
    assert es.indices.delete_data_stream(name=stream)["acknowledged"] is True
    assert not es.indices.exists(index=write)
    with pytest.raises(NotFoundError) as missing:
        es.indices.delete_data_stream(name=stream)
    assert error_type(missing.value) == "index_not_found_exception"


# --------------------------------------------------------------------------- snapshots
def snapshot_everything(es: Elasticsearch, repo: str, name: str) -> dict[str, Any]:
    response = es.snapshot.create(
        repository=repo,
        snapshot=name,
        indices="*",
        include_global_state=False,
        wait_for_completion=True,
    )
    return cast(dict[str, Any], response["snapshot"])


@pytest.fixture
def snapshotted_stream(
    es_cluster: EsCluster, es: Elasticsearch, stream: str
) -> tuple[str, str, list[str]]:
    """(repository, stream, backing indices): ``stream`` of 2 generations and 5 documents,
    in snapshot ``snap``."""
    add(es, stream, 3)
    es.indices.rollover(alias=stream)
    add(es, stream, 2)
    repo = register_repository(es_cluster, es)
    snapshot = snapshot_everything(es, repo, "snap")
    indices = backing(es, stream)
    assert stream in snapshot["data_streams"]
    assert set(indices) <= set(snapshot["indices"])
    return repo, stream, indices


def test_restore_over_a_live_data_stream_is_refused(
    es: Elasticsearch, snapshotted_stream: tuple[str, str, list[str]]
) -> None:
    repo, stream, indices = snapshotted_stream
    with pytest.raises(ApiError) as refused:
        es.snapshot.restore(repository=repo, snapshot="snap", indices=stream)
    assert refused.value.meta.status == 500
    assert error_type(refused.value) == "snapshot_restore_exception"
    assert (
        f"cannot restore index [{indices[0]}] because an open index with same name already "
        "exists in the cluster"
    ) in reason(refused.value)


def test_restore_brings_the_data_stream_back_with_its_backing_indices(
    es: Elasticsearch, snapshotted_stream: tuple[str, str, list[str]]
) -> None:
    repo, stream, indices = snapshotted_stream
    es.indices.delete_data_stream(name=stream)
    restored = es.snapshot.restore(
        repository=repo, snapshot="snap", indices=stream, wait_for_completion=True
    )
    assert sorted(restored["snapshot"]["indices"]) == sorted(indices)
    es.cluster.health(index=stream, wait_for_status="green", timeout="30s")
    assert backing(es, stream) == indices
    assert describe(es, stream)["generation"] == 2
    assert es.count(index=stream)["count"] == 5
    es.create(index=stream, id="after", document={"@timestamp": TIMESTAMP}, refresh=True)
    assert es.get(index=indices[-1], id="after")["found"] is True


def test_rename_applies_to_the_stream_and_past_the_ds_prefix(
    es_cluster: EsCluster, es: Elasticsearch, snapshotted_stream: tuple[str, str, list[str]]
) -> None:
    repo, stream, indices = snapshotted_stream
    restored = es.snapshot.restore(
        repository=repo,
        snapshot="snap",
        indices=stream,
        rename_pattern=f"{es_cluster.prefix}-(.+)",
        rename_replacement=f"{es_cluster.prefix}-copy-$1",
        wait_for_completion=True,
    )
    copy = es_cluster.name("copy-logs")
    expected = [i.replace(f".ds-{stream}-", f".ds-{copy}-") for i in indices]
    assert sorted(restored["snapshot"]["indices"]) == sorted(expected)
    assert backing(es, copy) == expected
    es.cluster.health(index=copy, wait_for_status="green", timeout="30s")
    assert es.count(index=copy)["count"] == 5
    assert es.count(index=stream)["count"] == 5


def test_backing_indices_named_alone_come_back_as_loose_hidden_indices(
    es_cluster: EsCluster, es: Elasticsearch, snapshotted_stream: tuple[str, str, list[str]]
) -> None:
    repo, stream, indices = snapshotted_stream
    restored = es.snapshot.restore(
        repository=repo,
        snapshot="snap",
        indices=indices[0],
        rename_pattern=r"\.ds-(.+)",
        rename_replacement=f"{es_cluster.prefix}-loose-$1",
        wait_for_completion=True,
    )
    (loose,) = restored["snapshot"]["indices"]
    assert loose == f"{es_cluster.prefix}-loose-{indices[0][len('.ds-') :]}"
    es.cluster.health(index=loose, wait_for_status="green", timeout="30s")
    assert es.count(index=loose)["count"] == 3
    assert es.indices.get_settings(index=loose)[loose]["settings"]["index"]["hidden"] == "true"
    assert backing(es, stream) == indices  # no data stream was made of it
