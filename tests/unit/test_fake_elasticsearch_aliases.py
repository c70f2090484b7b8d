"""Contract tests of the Elasticsearch test double: aliases with every property, their
validation (as ``MetadataIndexAliasesService`` and ``Metadata.Builder`` do it), and
aliases in snapshots and restores.

They run against the double, and against a real cluster when ``BACKUPCTL_TEST_ES_URL``
is set.
"""

from __future__ import annotations

from typing import Any

import pytest
from elasticsearch import ApiError, BadRequestError, Elasticsearch

from tests.support.elasticsearch import EsCluster
from tests.unit.test_fake_elasticsearch import (
    cat_row,
    error_type,
    make_index,
    reason,
    register_repository,
    take_snapshot,
)

FILTER = {"term": {"n": 3}}


@pytest.fixture
def es(es_cluster: EsCluster) -> Elasticsearch:
    return es_cluster.client()


def aliases_of(es: Elasticsearch, index: str) -> dict[str, Any]:
    found: dict[str, Any] = es.indices.get_alias(index=index)[index]["aliases"]
    return found


@pytest.fixture
def pair(es_cluster: EsCluster, es: Elasticsearch) -> tuple[str, str]:
    first, second = es_cluster.name("first-000001"), es_cluster.name("second")
    make_index(es, first, docs=5)
    make_index(es, second, docs=2)
    return first, second


# --------------------------------------------------------------------------- properties
def test_alias_properties_are_kept_and_rendered_as_elasticsearch_does(
    es_cluster: EsCluster, es: Elasticsearch, pair: tuple[str, str]
) -> None:
    first, second = pair
    routed, split, hidden, writer = (
        es_cluster.name(n) for n in ("routed", "split", "hidden", "writer")
    )
    es.indices.update_aliases(
        actions=[
            {"add": {"index": first, "alias": routed, "filter": FILTER, "routing": "1"}},
            {
                "add": {
                    "index": first,
                    "alias": split,
                    "index_routing": "2",
                    "search_routing": "3,4",
                }
            },
            {"add": {"index": first, "alias": hidden, "is_hidden": True}},
            {"add": {"indices": [first, second], "alias": writer}},
            {"add": {"index": first, "alias": writer, "is_write_index": False}},
        ]
    )
    assert aliases_of(es, first) == {
        routed: {"filter": FILTER, "index_routing": "1", "search_routing": "1"},
        split: {"index_routing": "2", "search_routing": "3,4"},
        hidden: {"is_hidden": True},
        writer: {"is_write_index": False},
    }
    assert aliases_of(es, second) == {writer: {}}
    by_name = es.indices.get_alias(name=routed)
    assert by_name.body == {first: {"aliases": {routed: aliases_of(es, first)[routed]}}}
    es.indices.put_alias(index=second, name=es_cluster.name("put"), filter=FILTER, routing="7")
    assert aliases_of(es, second)[es_cluster.name("put")] == {
        "filter": FILTER,
        "index_routing": "7",
        "search_routing": "7",
    }


def test_a_filtered_alias_counts_what_its_filter_matches(
    es_cluster: EsCluster, es: Elasticsearch, pair: tuple[str, str]
) -> None:
    first, _ = pair
    filtered = es_cluster.name("filtered")
    es.indices.put_alias(index=first, name=filtered, filter=FILTER)
    assert es.count(index=filtered)["count"] == 1
    assert es.count(index=first)["count"] == 5
    assert es.count(index=f"{filtered},{first}")["count"] == 5  # named directly: unfiltered


def test_index_creation_takes_aliases_with_their_properties(
    es_cluster: EsCluster, es: Elasticsearch
) -> None:
    index, alias = es_cluster.name("created"), es_cluster.name("created-alias")
    es.indices.create(
        index=index,
        settings={"number_of_replicas": 0},
        aliases={alias: {"filter": FILTER, "is_write_index": True, "search_routing": "5"}},
    )
    assert aliases_of(es, index) == {
        alias: {"filter": FILTER, "search_routing": "5", "is_write_index": True}
    }


# --------------------------------------------------------------------------- refusals
def test_no_actions_is_a_validation_failure(es: Elasticsearch) -> None:
    with pytest.raises(BadRequestError) as refused:
        es.indices.update_aliases(actions=[])
    assert error_type(refused.value) == "action_request_validation_exception"
    assert reason(refused.value) == "Validation Failed: 1: no actions specified;"


def test_two_write_indices_fail_the_whole_request(
    es_cluster: EsCluster, es: Elasticsearch, pair: tuple[str, str]
) -> None:
    first, second = pair
    alias = es_cluster.name("logs")
    es.indices.put_alias(index=first, name=alias, is_write_index=True)
    with pytest.raises(ApiError) as refused:
        es.indices.update_aliases(
            actions=[
                {"add": {"index": second, "alias": es_cluster.name("untouched")}},
                {"add": {"index": second, "alias": alias, "is_write_index": True}},
            ]
        )
    assert refused.value.meta.status == 500
    assert error_type(refused.value) == "illegal_state_exception"
    assert reason(refused.value) == (
        f"alias [{alias}] has more than one write index [{first},{second}]"
    )
    assert aliases_of(es, second) == {}  # nothing of the request was applied
    es.indices.update_aliases(  # swapping in one request is fine
        actions=[
            {"add": {"index": second, "alias": alias, "is_write_index": True}},
            {"add": {"index": first, "alias": alias, "is_write_index": False}},
        ]
    )
    assert aliases_of(es, second) == {alias: {"is_write_index": True}}


def test_is_hidden_must_agree_on_every_index(
    es_cluster: EsCluster, es: Elasticsearch, pair: tuple[str, str]
) -> None:
    first, second = pair
    alias = es_cluster.name("half-hidden")
    es.indices.put_alias(index=first, name=alias)
    with pytest.raises(ApiError) as refused:
        es.indices.update_aliases(
            actions=[{"add": {"index": second, "alias": alias, "is_hidden": True}}]
        )
    assert refused.value.meta.status == 500
    assert error_type(refused.value) == "illegal_state_exception"
    assert reason(refused.value) == (
        f"alias [{alias}] has is_hidden set to true on indices [{second}] but does not have "
        f"is_hidden set to true on indices [{first}]; alias must have the same is_hidden "
        "setting on all indices"
    )


def test_an_index_routing_is_one_value(
    es_cluster: EsCluster, es: Elasticsearch, pair: tuple[str, str]
) -> None:
    first, _ = pair
    alias = es_cluster.name("multi-routed")
    with pytest.raises(BadRequestError) as refused:
        es.indices.update_aliases(
            actions=[{"add": {"index": first, "alias": alias, "index_routing": "1,2"}}]
        )
    assert reason(refused.value) == (
        f"alias [{alias}] has several index routing values associated with it"
    )


def test_remove_index_action_deletes_the_index(es: Elasticsearch, pair: tuple[str, str]) -> None:
    first, second = pair
    es.indices.update_aliases(actions=[{"remove_index": {"index": second}}])
    assert not es.indices.exists(index=second)
    assert es.indices.exists(index=first)


def test_alias_rollover_moves_an_explicit_write_index(
    es_cluster: EsCluster, es: Elasticsearch, pair: tuple[str, str]
) -> None:
    first, _ = pair
    alias = es_cluster.name("rolling")
    es.indices.put_alias(index=first, name=alias, is_write_index=True)
    rolled = es.indices.rollover(alias=alias)
    new = es_cluster.name("first-000002")
    assert (rolled["old_index"], rolled["new_index"], rolled["rolled_over"]) == (first, new, True)
    assert aliases_of(es, first) == {alias: {"is_write_index": False}}
    assert aliases_of(es, new) == {alias: {"is_write_index": True}}
    written = es.index(index=alias, document={"n": 1})
    assert written["_index"] == new


# --------------------------------------------------------------------------- snapshots
def test_restore_brings_aliases_back_with_their_properties(
    es_cluster: EsCluster, es: Elasticsearch, pair: tuple[str, str]
) -> None:
    first, _ = pair
    routed = es_cluster.name("routed")
    es.indices.update_aliases(
        actions=[{"add": {"index": first, "alias": routed, "filter": FILTER, "routing": "1"}}]
    )
    before = aliases_of(es, first)
    repo = register_repository(es_cluster, es)
    take_snapshot(es, repo, "with-aliases", first)
    es.indices.delete(index=first)
    es.snapshot.restore(
        repository=repo, snapshot="with-aliases", indices=first, wait_for_completion=True
    )
    assert aliases_of(es, first) == before
    es.indices.close(index=first)
    es.indices.update_aliases(actions=[{"remove": {"index": first, "alias": routed}}])
    es.snapshot.restore(
        repository=repo,
        snapshot="with-aliases",
        indices=first,
        include_aliases=False,
        wait_for_completion=True,
    )
    assert aliases_of(es, first) == {}  # the closed index's own aliases, not the snapshot's


def test_restoring_a_second_write_index_is_refused_before_anything_changes(
    es_cluster: EsCluster, es: Elasticsearch, pair: tuple[str, str]
) -> None:
    first, _ = pair
    alias = es_cluster.name("rolling")
    es.indices.put_alias(index=first, name=alias, is_write_index=True)
    repo = register_repository(es_cluster, es)
    take_snapshot(es, repo, "writer", first)
    new = es.indices.rollover(alias=alias)["new_index"]
    es.indices.close(index=first)
    with pytest.raises(ApiError) as refused:
        es.snapshot.restore(
            repository=repo,
            snapshot="writer",
            indices=first,
            include_aliases=True,
            wait_for_completion=True,
        )
    assert refused.value.meta.status == 500
    assert error_type(refused.value) == "illegal_state_exception"
    assert reason(refused.value) == f"alias [{alias}] has more than one write index [{first},{new}]"
    assert cat_row(es, first)["status"] == "close"  # the restore did not start
    es.snapshot.restore(  # without the snapshot's aliases it goes through
        repository=repo,
        snapshot="writer",
        indices=first,
        include_aliases=False,
        wait_for_completion=True,
    )
    assert aliases_of(es, first) == {alias: {"is_write_index": False}}
