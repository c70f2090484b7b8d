"""The double's answers against the Elasticsearch specification (``spec_shapes``).

For every endpoint backupctl's driver calls, and those the double added for data
streams, templates, rollover and features, the body answered is checked against the
shape written from ``elastic/elasticsearch-specification`` (branch 8.15): required fields
present, JSON types right, nothing the specification does not define unless documented.
The test runs against a real cluster too (``BACKUPCTL_TEST_ES_URL``), which checks the
shapes themselves; only ``GET /_features`` with a system feature needs the double.
"""

from __future__ import annotations

from typing import Any

import pytest
from elasticsearch import ApiError, Elasticsearch

from tests.fakes.elasticsearch import spec_shapes
from tests.support.elasticsearch import EsCluster
from tests.unit.test_fake_elasticsearch import make_index, register_repository

TIMESTAMP = "2024-05-01T12:00:00Z"


def conforms(endpoint: str, body: Any) -> None:
    found = spec_shapes.check(endpoint, body)
    assert not found, f"{endpoint} ({spec_shapes.ENDPOINTS[endpoint].spec_file}):\n" + "\n".join(
        found
    )


def body(response: Any) -> Any:
    return getattr(response, "body", response)


def test_every_shape_names_its_specification_file() -> None:
    for name, endpoint in spec_shapes.ENDPOINTS.items():
        assert endpoint.spec_file.startswith("specification/"), name
    assert spec_shapes.SPEC_BRANCH == "8.15"


def test_the_checker_finds_what_is_wrong() -> None:
    wrong = {"count": "3", "_shards": {"total": 1, "successful": 1}, "extra": True}
    assert spec_shapes.check("count", wrong) == [
        "$.count: str where integer is expected",
        "$._shards.failed: required by the specification, missing",
        "$.extra: not defined by the specification",
    ]


@pytest.fixture
def es(es_cluster: EsCluster) -> Elasticsearch:
    return es_cluster.client()


def test_the_drivers_endpoints_answer_as_specified(
    es_cluster: EsCluster, es: Elasticsearch
) -> None:
    index, alias = es_cluster.name("books"), es_cluster.name("current")
    make_index(es, index, docs=4)
    conforms("info", body(es.info()))
    conforms(
        "indices.update_aliases",
        body(
            es.indices.update_aliases(
                actions=[
                    {
                        "add": {
                            "index": index,
                            "alias": alias,
                            "filter": {"term": {"n": 1}},
                            "routing": "1",
                            "is_write_index": True,
                        }
                    }
                ]
            )
        ),
    )
    conforms(
        "indices.put_alias", body(es.indices.put_alias(index=index, name=es_cluster.name("b")))
    )
    conforms("indices.get_alias", body(es.indices.get_alias(index=index)))
    conforms("indices.refresh", body(es.indices.refresh(index=index)))
    conforms("count", body(es.count(index=index)))
    conforms("indices.get_settings", body(es.indices.get_settings(index=index)))
    rows = es.cat.indices(index=index, format="json", bytes="b", expand_wildcards="all")
    conforms("cat.indices", body(rows))
    conforms("cluster.health", body(es.cluster.health(index=index, level="shards")))
    timed_out = es.options(ignore_status=408).cluster.health(
        index=index, wait_for_status="green", timeout="0s", level="indices"
    )
    conforms("cluster.health", body(timed_out))

    repo = es_cluster.name("repo")
    created = es.snapshot.create_repository(
        name=repo,
        repository={
            "type": "fs",
            "settings": {"location": es_cluster.repo_location(), "compress": True},
        },
    )
    conforms("snapshot.create_repository", body(created))
    conforms("snapshot.get_repository", body(es.snapshot.get_repository(name=repo)))
    conforms("snapshot.verify_repository", body(es.snapshot.verify_repository(name=repo)))
    conforms(
        "snapshot.create",
        body(es.snapshot.create(repository=repo, snapshot="async", indices=index)),
    )
    waited = es.snapshot.create(
        repository=repo,
        snapshot="waited",
        indices=index,
        metadata={"by": "test"},
        wait_for_completion=True,
    )
    conforms("snapshot.create", body(waited))
    conforms("snapshot.get", body(es.snapshot.get(repository=repo, snapshot="*")))
    conforms(
        "snapshot.get", body(es.snapshot.get(repository=repo, snapshot="waited", verbose=False))
    )
    conforms("indices.close", body(es.indices.close(index=index)))
    conforms(
        "snapshot.restore",
        body(es.snapshot.restore(repository=repo, snapshot="waited", wait_for_completion=True)),
    )
    es.cluster.health(index=index, wait_for_status="green", timeout="30s")
    conforms("indices.close", body(es.indices.close(index=index)))
    conforms("indices.open", body(es.indices.open(index=index)))
    conforms("snapshot.delete", body(es.snapshot.delete(repository=repo, snapshot="waited")))
    conforms("indices.delete", body(es.indices.delete(index=index)))
    restored = es.snapshot.restore(repository=repo, snapshot="async")
    conforms("snapshot.restore", body(restored))


def test_stream_endpoints_answer_as_specified(es_cluster: EsCluster, es: Elasticsearch) -> None:
    stream = es_cluster.name("logs")
    template = es.indices.put_index_template(
        name=es_cluster.name("logs-template"),
        index_patterns=[f"{stream}*"],
        data_stream={},
        priority=500,
        template={"settings": {"number_of_replicas": 0}},
        meta={"owner": "tests"},
    )
    conforms("indices.put_index_template", body(template))
    conforms(
        "indices.get_index_template",
        body(es.indices.get_index_template(name=es_cluster.name("logs-template"))),
    )
    conforms("indices.create_data_stream", body(es.indices.create_data_stream(name=stream)))
    es.index(index=stream, document={"@timestamp": TIMESTAMP}, refresh=True)
    conforms("indices.rollover", body(es.indices.rollover(alias=stream)))
    conforms("indices.get_data_stream", body(es.indices.get_data_stream(name=stream)))
    for entry in es.indices.get_data_stream(name=stream)["data_streams"]:
        assert entry["next_generation_managed_by"] in spec_shapes.MANAGED_BY
        assert {i["managed_by"] for i in entry["indices"]} <= set(spec_shapes.MANAGED_BY)
        assert entry["status"] in spec_shapes.ENUMS["health"]
    conforms("indices.delete_data_stream", body(es.indices.delete_data_stream(name=stream)))


def test_features_answer_as_specified(es_cluster: EsCluster, es: Elasticsearch) -> None:
    fake = es_cluster.require_fake("creates a system index")
    fake.add_system_index("security", ".security-7", [{"user": "ann"}])
    conforms("features.get_features", body(es.features.get_features()))
    repo = register_repository(es_cluster, es)
    taken = es.snapshot.create(repository=repo, snapshot="global", wait_for_completion=True)
    conforms("snapshot.create", body(taken))
    assert taken["snapshot"]["feature_states"] == [
        {"feature_name": "security", "indices": [".security-7"]}
    ]


@pytest.mark.parametrize(
    "call",
    [
        lambda es, n: es.indices.update_aliases(actions=[]),
        lambda es, n: es.count(index=n("missing")),
        lambda es, n: es.indices.refresh(index="x" * 5000, ignore_unavailable=True),
        lambda es, n: es.indices.create_data_stream(name=n("no-template")),
    ],
    ids=["validation", "not-found", "too-long-line", "illegal-argument"],
)
def test_errors_answer_as_specified(es_cluster: EsCluster, es: Elasticsearch, call: Any) -> None:
    with pytest.raises(ApiError) as failed:
        call(es, es_cluster.name)
    conforms("error", failed.value.body)
