"""Contract tests of the Elasticsearch test double: protocol limits and timing (the 4 KB
request line, cluster health timeouts), Lucene document counts of nested documents,
snapshot create and restore not being idempotent, restore settings, and lost or late
answers (the side channel).

They run against the double, and against a real cluster when ``BACKUPCTL_TEST_ES_URL``
is set, except those marked with ``require_fake``.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from elasticsearch import (
    ApiError,
    BadRequestError,
    ConnectionTimeout,
    Elasticsearch,
)
from elasticsearch import ConnectionError as EsConnectionError

from tests.support.elasticsearch import EsCluster
from tests.unit.test_fake_elasticsearch import (
    DOCS,
    cat_row,
    error_type,
    make_index,
    reason,
    register_repository,
    take_snapshot,
)

LINE_LIMIT = 4096  # http.max_initial_line_length


@pytest.fixture
def es(es_cluster: EsCluster) -> Elasticsearch:
    return es_cluster.client()


@pytest.fixture
def books(es_cluster: EsCluster, es: Elasticsearch) -> str:
    name = es_cluster.name("books")
    make_index(es, name)
    return name


def raw_request(
    es_cluster: EsCluster, method: str, target: str, body: bytes | None = None
) -> tuple[int, str, dict[str, Any]]:
    """(status, protocol, JSON body) of one request sent as written, on a new connection."""
    url = urlsplit(es_cluster.url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        protocol = "HTTP/1.0" if response.version == 10 else "HTTP/1.1"
        return response.status, protocol, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def line_of(method: str, path: str, length: int) -> str:
    """``path`` with a ``filter_path`` query making the request line ``length`` bytes."""
    fixed = f"{method} {path}?filter_path= HTTP/1.1"
    return f"{path}?filter_path={'x' * (length - len(fixed))}"


# --------------------------------------------------------------------------- request line
def test_a_request_line_of_4096_bytes_is_served(es_cluster: EsCluster) -> None:
    target = line_of("GET", "/_cluster/health", LINE_LIMIT)
    assert len(f"GET {target} HTTP/1.1") == LINE_LIMIT
    status, _, body = raw_request(es_cluster, "GET", target)
    assert (status, body) == (200, {})  # filter_path kept nothing


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/_cluster/health", None),
        ("POST", "/_count", b'{"query": {"match_all": {}}}'),
        ("DELETE", "/no-such-index", None),
    ],
)
def test_a_longer_request_line_is_refused_whatever_the_request(
    es_cluster: EsCluster, method: str, path: str, body: bytes | None
) -> None:
    target = line_of(method, path, LINE_LIMIT + 1)
    status, protocol, answer = raw_request(es_cluster, method, target, body)
    assert status == 400
    assert protocol == "HTTP/1.0"  # Netty's placeholder for the undecodable request
    assert answer == {
        "error": {
            "root_cause": [
                {
                    "type": "too_long_http_line_exception",
                    "reason": "An HTTP line is larger than 4096 bytes.",
                }
            ],
            "type": "too_long_http_line_exception",
            "reason": "An HTTP line is larger than 4096 bytes.",
        },
        "status": 400,
    }


def test_a_client_naming_many_indices_in_the_url_hits_the_limit(
    es_cluster: EsCluster, es: Elasticsearch
) -> None:
    names = ",".join(es_cluster.name(f"index-{n:04d}") for n in range(300))
    with pytest.raises(BadRequestError) as refused:
        es.indices.refresh(index=names, ignore_unavailable=True)
    assert error_type(refused.value) == "too_long_http_line_exception"
    assert es.ping()  # the next request, on a new connection, is served


# --------------------------------------------------------------------------- health
def test_health_that_times_out_answers_408_after_the_whole_wait(
    es_cluster: EsCluster, es: Elasticsearch
) -> None:
    replicated = es_cluster.name("replicated")
    es.indices.create(index=replicated, settings={"number_of_replicas": 1})
    started = time.monotonic()
    timed_out = es.options(ignore_status=408).cluster.health(
        index=replicated, wait_for_status="green", timeout="1s"
    )
    assert time.monotonic() - started >= 1.0
    assert timed_out.meta.status == 408
    assert (timed_out["timed_out"], timed_out["status"]) == (True, "yellow")


def test_a_client_waiting_as_long_as_the_server_sees_its_own_timeout(
    es_cluster: EsCluster,
) -> None:
    replicated = es_cluster.name("replicated")
    es_cluster.client().indices.create(index=replicated, settings={"number_of_replicas": 1})
    impatient = es_cluster.client(request_timeout=1, max_retries=0)
    with pytest.raises(ConnectionTimeout):
        impatient.cluster.health(index=replicated, wait_for_status="green", timeout="1s")


def test_an_index_allocation_filtering_excludes_everywhere_is_red(
    es_cluster: EsCluster, es: Elasticsearch
) -> None:
    stranded = es_cluster.name("stranded")
    es.indices.create(
        index=stranded,
        settings={"number_of_replicas": 0, "index.routing.allocation.require._name": "none"},
        wait_for_active_shards="0",
    )
    health = es.cluster.health(index=stranded)
    assert (health["status"], health["active_primary_shards"]) == ("red", 0)
    assert health["unassigned_shards"] == 1
    es.indices.put_settings(
        index=stranded, settings={"index.routing.allocation.require._name": None}
    )
    healed = es.cluster.health(index=stranded, wait_for_status="green", timeout="30s")
    assert healed["status"] == "green"


# --------------------------------------------------------------------------- nested
def test_nested_objects_are_lucene_documents_in_cat_and_stats_not_in_count(
    es_cluster: EsCluster, es: Elasticsearch
) -> None:
    index = es_cluster.name("orders")
    es.indices.create(
        index=index,
        settings={"number_of_replicas": 0},
        mappings={
            "properties": {
                "lines": {"type": "nested", "properties": {"parts": {"type": "nested"}}},
                "customer": {"properties": {"name": {"type": "keyword"}}},
            }
        },
    )
    es.index(
        index=index,
        id="1",
        document={
            "customer": {"name": "ann"},  # an object field: no document of its own
            "lines": [{"sku": "a", "parts": [{"p": 1}, {"p": 2}]}, {"sku": "b", "parts": []}],
        },
    )
    es.index(index=index, id="2", document={"lines": {"sku": "c"}}, refresh=True)
    assert es.count(index=index)["count"] == 2
    assert cat_row(es, index)["docs.count"] == str(2 + 3 + 2)
    primaries = es.indices.stats(index=index)["_all"]["primaries"]
    assert primaries["docs"]["count"] == 7


# --------------------------------------------------------------------------- not idempotent
def test_a_snapshot_name_in_progress_is_refused(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    fake = es_cluster.require_fake("holds a snapshot in progress")
    fake.snapshot_duration = 30
    repo = register_repository(es_cluster, es)
    es.snapshot.create(repository=repo, snapshot="running", indices=books)
    with pytest.raises(BadRequestError) as again:
        es.snapshot.create(repository=repo, snapshot="running", indices=books)
    assert error_type(again.value) == "snapshot_name_already_in_use_exception"
    assert reason(again.value) == (
        f"[{repo}:running] Invalid snapshot name [running], snapshot with the same name is "
        "already in-progress"
    )
    fake.finish_snapshots()


def test_restoring_twice_is_refused_the_second_time(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    repo = register_repository(es_cluster, es)
    take_snapshot(es, repo, "once", books)
    es.indices.delete(index=books)
    es.snapshot.restore(repository=repo, snapshot="once", wait_for_completion=True)
    with pytest.raises(ApiError) as twice:
        es.snapshot.restore(repository=repo, snapshot="once")
    assert twice.value.meta.status == 500
    assert error_type(twice.value) == "snapshot_restore_exception"
    assert reason(twice.value).endswith(
        f"cannot restore index [{books}] because an open index with same name already exists "
        "in the cluster. Either close or delete the existing index or restore the index under a "
        "different name by providing a rename pattern and replacement name"
    )


# --------------------------------------------------------------------------- settings
def test_lifecycle_settings_are_real_and_restore_can_drop_them(
    es_cluster: EsCluster, es: Elasticsearch
) -> None:
    index = es_cluster.name("managed")
    es.indices.create(
        index=index,
        settings={"number_of_replicas": 0, "index.lifecycle.name": es_cluster.name("policy")},
    )
    es.indices.put_settings(index=index, settings={"index.lifecycle.rollover_alias": "managed"})
    lifecycle = es.indices.get_settings(index=index)[index]["settings"]["index"]["lifecycle"]
    assert lifecycle == {"name": es_cluster.name("policy"), "rollover_alias": "managed"}
    repo = register_repository(es_cluster, es)
    take_snapshot(es, repo, "managed", index)

    es.indices.delete(index=index)
    es.snapshot.restore(  # the keys are taken as written: without "index." nothing goes
        repository=repo,
        snapshot="managed",
        ignore_index_settings=["lifecycle.name"],
        wait_for_completion=True,
    )
    kept = es.indices.get_settings(index=index)[index]["settings"]["index"]
    assert kept["lifecycle"]["name"] == es_cluster.name("policy")

    es.indices.delete(index=index)
    es.snapshot.restore(
        repository=repo,
        snapshot="managed",
        ignore_index_settings=["index.lifecycle.name", "index.lifecycle.rollover_alias"],
        index_settings={"index.number_of_replicas": 0, "index.refresh_interval": "5s"},
        wait_for_completion=True,
    )
    restored = es.indices.get_settings(index=index)[index]["settings"]["index"]
    assert "lifecycle" not in restored
    assert (restored["number_of_replicas"], restored["refresh_interval"]) == ("0", "5s")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"ignore_index_settings": ["index.number_of_replicas"]},
            "cannot remove setting [index.number_of_replicas] on restore",
        ),
        (
            {"index_settings": {"index.number_of_shards": 2}},
            "cannot modify setting [index.number_of_shards] on restore",
        ),
        (
            {"index_settings": {"number_of_shards": 2}},  # index_settings get the prefix
            "cannot modify setting [index.number_of_shards] on restore",
        ),
    ],
)
def test_restore_refuses_unremovable_and_unmodifiable_settings(
    es_cluster: EsCluster, es: Elasticsearch, books: str, options: dict[str, Any], message: str
) -> None:
    repo = register_repository(es_cluster, es)
    take_snapshot(es, repo, "settings", books)
    es.indices.delete(index=books)
    with pytest.raises(ApiError) as refused:
        es.snapshot.restore(repository=repo, snapshot="settings", **options)
    assert refused.value.meta.status == 500
    assert error_type(refused.value) == "snapshot_restore_exception"
    assert reason(refused.value).endswith(message)
    assert not es.indices.exists(index=books)


# --------------------------------------------------------------------------- lost answers
def test_a_dropped_answer_still_took_the_snapshot(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    fake = es_cluster.require_fake("drops an answer")
    repo = register_repository(es_cluster, es)
    fake.drop_answer("PUT", f"/_snapshot/{repo}/lost")
    impatient = es_cluster.client(max_retries=0)
    with pytest.raises(EsConnectionError):
        impatient.snapshot.create(
            repository=repo, snapshot="lost", indices=books, wait_for_completion=True
        )
    (info,) = es.snapshot.get(repository=repo, snapshot="lost")["snapshots"]
    assert info["state"] == "SUCCESS"  # the request was carried out in full
    with pytest.raises(BadRequestError) as resent:
        impatient.snapshot.create(repository=repo, snapshot="lost", indices=books)
    assert error_type(resent.value) == "snapshot_name_already_in_use_exception"
    assert [c.answer for c in fake.calls("PUT", f"/_snapshot/{repo}/lost")] == ["dropped", "sent"]


def test_a_retrying_client_sends_a_dropped_request_again(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    fake = es_cluster.require_fake("drops an answer")
    repo = register_repository(es_cluster, es)
    fake.drop_answer("PUT", f"/_snapshot/{repo}/.*")
    with pytest.raises(BadRequestError) as duplicate:  # the default client retries
        es.snapshot.create(repository=repo, snapshot="retried", indices=books)
    assert error_type(duplicate.value) == "snapshot_name_already_in_use_exception"


def test_a_late_answer_times_the_client_out_after_the_work_was_done(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    fake = es_cluster.require_fake("delays an answer")
    fake.delay_answer("DELETE", f"/{books}", 2)
    impatient = es_cluster.client(request_timeout=0.5, max_retries=0)
    started = time.monotonic()
    with pytest.raises(ConnectionTimeout):
        impatient.indices.delete(index=books)
    assert time.monotonic() - started < 1.5  # the node is not held while the answer waits
    assert not es.indices.exists(index=books)
    (call,) = fake.calls("DELETE", f"/{books}")
    assert (call.status, call.answer) == (200, "delayed")


def test_answers_match_the_rule_only_times_times(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    fake = es_cluster.require_fake("drops answers")
    rule = fake.drop_answer("*", r"/[^/]+/_count", times=2)
    impatient = es_cluster.client(max_retries=0)
    for _ in range(2):
        with pytest.raises(EsConnectionError):
            impatient.count(index=books)
    assert impatient.count(index=books)["count"] == DOCS
    assert rule.hits == 2
