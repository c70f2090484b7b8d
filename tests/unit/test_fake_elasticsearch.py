"""Contract tests of the Elasticsearch test double, through the official client.

They run against the double by default and against a real cluster when
``BACKUPCTL_TEST_ES_URL`` is set (docker-compose.test.yml), so the double's answers are
checked against Elasticsearch's. Tests that need the double's side channel (injected
faults, timing, restarts, TLS and security) skip against a real cluster.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any, cast

import pytest
from elasticsearch import (
    ApiError,
    AuthenticationException,
    BadRequestError,
    Elasticsearch,
    NotFoundError,
)
from elasticsearch import ConnectionError as EsConnectionError

from tests.support.elasticsearch import EsCluster

DOCS = 10


@pytest.fixture
def es(es_cluster: EsCluster) -> Elasticsearch:
    return es_cluster.client()


def error_type(error: ApiError) -> str:
    return str(error.body["error"]["type"])


def reason(error: ApiError) -> str:
    return str(error.body["error"]["reason"])


def make_index(es: Elasticsearch, name: str, docs: int = DOCS, **settings: Any) -> None:
    es.indices.create(index=name, settings={"number_of_replicas": 0, **settings})
    operations: list[dict[str, Any]] = []
    for n in range(docs):
        operations += [{"index": {"_index": name, "_id": str(n)}}, {"n": n, "title": f"book {n}"}]
    if operations:
        assert not es.bulk(operations=operations, refresh=True)["errors"]


def count(es: Elasticsearch, index: str) -> int:
    return int(es.count(index=index)["count"])


def cat_row(es: Elasticsearch, index: str, **params: Any) -> dict[str, Any]:
    rows = cast(list[dict[str, Any]], es.cat.indices(index=index, format="json", **params).body)
    (row,) = rows
    return row


def register_repository(es_cluster: EsCluster, es: Elasticsearch, base: str = "repo") -> str:
    name = es_cluster.name(base)
    location = es_cluster.repo_location(base)
    es.snapshot.create_repository(
        name=name, repository={"type": "fs", "settings": {"location": location}}
    )
    return name


def take_snapshot(
    es: Elasticsearch, repo: str, name: str, index: str, **body: Any
) -> dict[str, Any]:
    response = es.snapshot.create(
        repository=repo,
        snapshot=name,
        indices=index,
        include_global_state=False,
        wait_for_completion=True,
        **body,
    )
    snapshot: dict[str, Any] = response["snapshot"]
    return snapshot


@pytest.fixture
def books(es_cluster: EsCluster, es: Elasticsearch) -> str:
    name = es_cluster.name("books")
    make_index(es, name)
    return name


@pytest.fixture
def snapshotted(es_cluster: EsCluster, es: Elasticsearch, books: str) -> tuple[str, str, str]:
    """(repository, snapshot, index): ``books`` with 10 documents, snapshotted."""
    repo = register_repository(es_cluster, es)
    assert take_snapshot(es, repo, "snap-1", books)["state"] == "SUCCESS"
    return repo, "snap-1", books


# --------------------------------------------------------------------------- basics
def test_info_identifies_elasticsearch_8(es: Elasticsearch) -> None:
    info = es.info()
    assert info["version"]["number"].startswith("8.")
    assert info["tagline"] == "You Know, for Search"
    assert es.ping()


def test_bulk_indexes_and_reports_per_item_errors(es: Elasticsearch, books: str) -> None:
    assert count(es, books) == DOCS
    response = es.bulk(
        operations=[
            {"create": {"_index": books, "_id": "0"}},
            {"n": 0},
            {"index": {"_index": books, "_id": "new"}},
            {"n": 99},
            {"delete": {"_index": books, "_id": "1"}},
        ],
        refresh=True,
    )
    assert response["errors"] is True
    conflict, created, deleted = (next(iter(item.values())) for item in response["items"])
    assert conflict["status"] == 409
    assert conflict["error"]["type"] == "version_conflict_engine_exception"
    assert (created["status"], created["result"]) == (201, "created")
    assert (deleted["status"], deleted["result"]) == (200, "deleted")
    assert count(es, books) == DOCS
    assert es.get(index=books, id="new")["_source"] == {"n": 99}


def test_count_takes_a_simple_query(es: Elasticsearch, books: str) -> None:
    assert es.count(index=books, query={"range": {"n": {"gte": 5}}})["count"] == 5
    assert es.count(index=books, query={"term": {"n": 3}})["count"] == 1
    assert es.count(index=books, q="title:book")["count"] == DOCS


def test_closed_index_refuses_counts_and_writes(es: Elasticsearch, books: str) -> None:
    es.indices.close(index=books)
    with pytest.raises(BadRequestError) as counted:
        es.count(index=books)
    assert error_type(counted.value) == "index_closed_exception"
    with pytest.raises(BadRequestError) as written:
        es.index(index=books, id="x", document={"n": 1})
    assert error_type(written.value) == "index_closed_exception"
    assert cat_row(es, books)["status"] == "close"
    es.indices.open(index=books)
    assert count(es, books) == DOCS


def test_missing_index_is_index_not_found(es_cluster: EsCluster, es: Elasticsearch) -> None:
    with pytest.raises(NotFoundError) as missing:
        es.count(index=es_cluster.name("nope"))
    assert error_type(missing.value) == "index_not_found_exception"
    assert missing.value.body["error"]["index"] == es_cluster.name("nope")
    assert not es.indices.exists(index=es_cluster.name("nope"))


def test_creating_an_existing_index_fails(es: Elasticsearch, books: str) -> None:
    with pytest.raises(BadRequestError) as again:
        es.indices.create(index=books)
    assert error_type(again.value) == "resource_already_exists_exception"


def test_get_index_returns_settings_mappings_and_aliases(es: Elasticsearch, books: str) -> None:
    es.indices.update_aliases(actions=[{"add": {"index": books, "alias": f"{books}-all"}}])
    described = es.indices.get(index=books)[books]
    assert described["settings"]["index"]["number_of_replicas"] == "0"
    assert described["settings"]["index"]["number_of_shards"] == "1"
    assert described["mappings"]["properties"]["n"]["type"] == "long"
    assert f"{books}-all" in described["aliases"]


def test_cat_indices_in_json_with_bytes(es: Elasticsearch, books: str) -> None:
    row = cat_row(es, books, bytes="b")
    assert row["index"] == books
    assert (row["health"], row["status"], row["pri"], row["rep"]) == ("green", "open", "1", "0")
    assert row["docs.count"] == str(DOCS)
    assert row["store.size"].isdigit()


def test_destructive_wildcards_are_refused(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    with pytest.raises(BadRequestError) as refused:
        es.indices.delete(index=es_cluster.name("*"))
    assert "Wildcard expressions or all indices are not allowed" in reason(refused.value)
    assert es.indices.exists(index=books)


def test_aliases_route_writes_to_the_write_index(es_cluster: EsCluster, es: Elasticsearch) -> None:
    old, new, alias = es_cluster.name("old"), es_cluster.name("new"), es_cluster.name("alias")
    make_index(es, old, docs=1)
    make_index(es, new, docs=0)
    es.indices.update_aliases(
        actions=[
            {"add": {"index": old, "alias": alias}},
            {"add": {"index": new, "alias": alias, "is_write_index": True}},
        ]
    )
    es.index(index=alias, id="w", document={"n": 1}, refresh=True)
    assert count(es, new) == 1
    assert count(es, alias) == 2
    assert es.indices.exists_alias(name=alias)
    aliases = es.indices.get_alias(name=alias)
    assert aliases[new]["aliases"][alias]["is_write_index"] is True
    es.indices.update_aliases(actions=[{"remove": {"index": old, "alias": alias}}])
    assert set(es.indices.get_alias(name=alias)) == {new}
    with pytest.raises(NotFoundError):
        es.indices.get_alias(name=es_cluster.name("no-alias"))


# --------------------------------------------------------------------------- protocol
def test_unknown_endpoints_and_methods_fail_loudly(es: Elasticsearch) -> None:
    with pytest.raises(BadRequestError) as unknown:
        es.perform_request("GET", "/_no/such/endpoint")
    assert "no handler found for uri [/_no/such/endpoint] and method [GET]" in str(
        unknown.value.body
    )
    with pytest.raises(ApiError) as wrong_method:
        es.perform_request("DELETE", "/_cluster/health")
    assert wrong_method.value.meta.status == 405


def test_unrecognized_parameters_are_refused(es: Elasticsearch) -> None:
    with pytest.raises(BadRequestError) as refused:
        es.perform_request("GET", "/_cluster/health", params={"wait_for_statuss": "green"})
    assert error_type(refused.value) == "illegal_argument_exception"
    assert "unrecognized parameter: [wait_for_statuss]" in reason(refused.value)


def test_responses_carry_the_product_header_and_compatible_type(es_cluster: EsCluster) -> None:
    for version in (8, 9):
        if version == 9:
            es_cluster.require_fake("Elasticsearch 8 refuses compatible-with=9")
        media = f"application/vnd.elasticsearch+json; compatible-with={version}"
        request = urllib.request.Request(es_cluster.url + "/", headers={"Accept": media})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["X-Elastic-Product"] == "Elasticsearch"
            assert response.headers["Content-Type"].replace(" ", "") == (
                f"application/vnd.elasticsearch+json;compatible-with={version}"
            )
            assert json.loads(response.read())["version"]["number"].startswith("8.")


# --------------------------------------------------------------------------- health
def test_cluster_health_waits_for_status(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    health = es.cluster.health(index=books, wait_for_status="green", timeout="10s")
    assert (health["status"], health["timed_out"]) == ("green", False)
    replicated = es_cluster.name("replicated")
    es.indices.create(index=replicated, settings={"number_of_replicas": 1})
    timed_out = es.options(ignore_status=408).cluster.health(
        index=replicated, wait_for_status="green", timeout="200ms"
    )
    assert timed_out.meta.status == 408
    assert (timed_out["status"], timed_out["timed_out"]) == ("yellow", True)
    assert timed_out["unassigned_shards"] == 1
    by_index = es.cluster.health(index=replicated, level="indices")
    assert by_index["indices"][replicated]["status"] == "yellow"
    missing = es.cluster.health(index=es_cluster.name("missing"))
    assert (missing["status"], missing["timed_out"]) == ("red", False)


def test_restored_index_recovers_before_it_is_green(
    es_cluster: EsCluster, snapshotted: tuple[str, str, str]
) -> None:
    fake = es_cluster.require_fake("sets the recovery delay")
    fake.recovery_delay = 60
    repo, snapshot, index = snapshotted
    es = es_cluster.client(max_retries=0)
    es.indices.delete(index=index)
    assert es.snapshot.restore(repository=repo, snapshot=snapshot) == {"accepted": True}
    assert es.cluster.health(index=index)["status"] == "red"
    with pytest.raises(ApiError) as unavailable:
        es.count(index=index)
    assert unavailable.value.meta.status == 503
    assert error_type(unavailable.value) == "search_phase_execution_exception"
    fake.finish_recoveries()
    health = es.cluster.health(index=index, wait_for_status="green", timeout="10s")
    assert health["status"] == "green"
    assert count(es, index) == DOCS


# --------------------------------------------------------------------------- repositories
def test_fs_repository_registers_and_verifies(es_cluster: EsCluster, es: Elasticsearch) -> None:
    repo = register_repository(es_cluster, es)
    described = es.snapshot.get_repository(name=repo)[repo]
    assert described["type"] == "fs"
    assert described["settings"]["location"] == es_cluster.repo_location()
    nodes = es.snapshot.verify_repository(name=repo)["nodes"]
    assert nodes and all("name" in node for node in nodes.values())
    es.snapshot.delete_repository(name=repo)
    with pytest.raises(NotFoundError) as gone:
        es.snapshot.get_repository(name=repo)
    assert error_type(gone.value) == "repository_missing_exception"


def test_fs_repository_outside_path_repo_is_refused(
    es_cluster: EsCluster, es: Elasticsearch
) -> None:
    with pytest.raises(ApiError) as refused:
        es.snapshot.create_repository(
            name=es_cluster.name("outside"),
            repository={"type": "fs", "settings": {"location": "/not-a-path-repo/backups"}},
        )
    assert refused.value.meta.status == 500
    assert error_type(refused.value) == "repository_exception"
    cause = refused.value.body["error"]["caused_by"]["reason"]
    assert "doesn't match any of the locations specified by path.repo" in cause


def test_verification_fails_when_the_location_is_not_writable(
    es_cluster: EsCluster, es: Elasticsearch
) -> None:
    fake = es_cluster.require_fake("denies writes as root cannot be denied them")
    fake.deny_repository_writes(es_cluster.repo_location())
    repo = es_cluster.name("repo")
    es.snapshot.create_repository(
        name=repo,
        repository={"type": "fs", "settings": {"location": es_cluster.repo_location()}},
        verify=False,
    )
    with pytest.raises(ApiError) as failed:
        es.snapshot.verify_repository(name=repo)
    assert failed.value.meta.status == 500
    assert error_type(failed.value) == "repository_verification_exception"


# --------------------------------------------------------------------------- snapshots
def test_snapshot_without_waiting_goes_from_in_progress_to_success(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    if es_cluster.fake is not None:
        es_cluster.fake.snapshot_duration = 60
    repo = register_repository(es_cluster, es)
    accepted = es.snapshot.create(
        repository=repo, snapshot="async", indices=books, wait_for_completion=False
    )
    assert accepted == {"accepted": True}
    if es_cluster.fake is not None:
        (running,) = es.snapshot.get(repository=repo, snapshot="async")["snapshots"]
        assert running["state"] == "IN_PROGRESS"
        es_cluster.fake.finish_snapshots()
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (info,) = es.snapshot.get(repository=repo, snapshot="async")["snapshots"]
        seen.append(info["state"])
        if info["state"] == "SUCCESS":
            break
        time.sleep(0.05)
    assert seen[-1] == "SUCCESS"
    assert set(seen) <= {"IN_PROGRESS", "SUCCESS"}
    assert info["shards"] == {"total": 1, "failed": 0, "successful": 1}
    assert info["end_time_in_millis"] >= info["start_time_in_millis"]


def test_get_snapshots_lists_state_metadata_and_indices(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    repo = register_repository(es_cluster, es)
    take_snapshot(es, repo, "snap-a", books, metadata={"taken_by": "backupctl"})
    take_snapshot(es, repo, "snap-b", books)
    listed = es.snapshot.get(repository=repo, snapshot="*")
    assert (listed["total"], listed["remaining"]) == (2, 0)
    first, second = listed["snapshots"]
    assert [first["snapshot"], second["snapshot"]] == ["snap-a", "snap-b"]
    assert first["state"] == "SUCCESS" and first["indices"] == [books]
    assert first["metadata"] == {"taken_by": "backupctl"}
    assert first["repository"] == repo and first["include_global_state"] is False
    assert {"uuid", "start_time", "end_time", "duration_in_millis", "failures", "version"} <= set(
        first
    )
    for expression in ("_all", "snap-a,snap-b", "snap-*"):
        assert es.snapshot.get(repository=repo, snapshot=expression)["total"] == 2
    brief = es.snapshot.get(repository=repo, snapshot="snap-a", verbose=False)["snapshots"][0]
    assert brief["state"] == "SUCCESS" and "shards" not in brief
    newest = es.snapshot.get(repository=repo, snapshot="*", order="desc", size=1)
    assert [s["snapshot"] for s in newest["snapshots"]] == ["snap-b"]
    assert newest["remaining"] == 1
    with pytest.raises(NotFoundError) as missing:
        es.snapshot.get(repository=repo, snapshot="snap-zzz")
    assert error_type(missing.value) == "snapshot_missing_exception"
    lenient = es.snapshot.get(repository=repo, snapshot="snap-a,snap-zzz", ignore_unavailable=True)
    assert lenient["total"] == 1
    names = es.snapshot.get(repository=repo, snapshot="*", filter_path="snapshots.snapshot")
    assert names.body == {"snapshots": [{"snapshot": "snap-a"}, {"snapshot": "snap-b"}]}


def test_snapshot_status(es: Elasticsearch, snapshotted: tuple[str, str, str]) -> None:
    repo, snapshot, index = snapshotted
    (status,) = es.snapshot.status(repository=repo, snapshot=snapshot)["snapshots"]
    assert status["state"] == "SUCCESS"
    assert status["shards_stats"]["done"] == status["shards_stats"]["total"] == 1
    assert index in status["indices"]


def test_duplicate_snapshot_names_are_refused(
    es: Elasticsearch, snapshotted: tuple[str, str, str]
) -> None:
    # SnapshotNameAlreadyInUseException (8.3+), a subclass of InvalidSnapshotNameException
    repo, snapshot, index = snapshotted
    with pytest.raises(BadRequestError) as duplicate:
        take_snapshot(es, repo, snapshot, index)
    assert error_type(duplicate.value) == "snapshot_name_already_in_use_exception"
    assert reason(duplicate.value) == (
        f"[{repo}:{snapshot}] Invalid snapshot name [{snapshot}], "
        "snapshot with the same name already exists"
    )


def test_delete_snapshot(es: Elasticsearch, snapshotted: tuple[str, str, str]) -> None:
    repo, snapshot, _ = snapshotted
    assert es.snapshot.delete(repository=repo, snapshot=snapshot)["acknowledged"] is True
    with pytest.raises(NotFoundError) as gone:
        es.snapshot.get(repository=repo, snapshot=snapshot)
    assert error_type(gone.value) == "snapshot_missing_exception"
    with pytest.raises(NotFoundError):
        es.snapshot.delete(repository=repo, snapshot=snapshot)


# --------------------------------------------------------------------------- restore
def test_restore_after_deleting_the_index_brings_the_documents_back(
    es: Elasticsearch, snapshotted: tuple[str, str, str]
) -> None:
    repo, snapshot, index = snapshotted
    es.indices.delete(index=index)
    restored = es.snapshot.restore(repository=repo, snapshot=snapshot, wait_for_completion=True)
    assert restored["snapshot"]["indices"] == [index]
    assert restored["snapshot"]["shards"] == {"total": 1, "failed": 0, "successful": 1}
    es.cluster.health(index=index, wait_for_status="green", timeout="30s")
    assert count(es, index) == DOCS
    assert es.get(index=index, id="3")["_source"] == {"n": 3, "title": "book 3"}


def test_restore_over_an_open_index_fails(
    es: Elasticsearch, snapshotted: tuple[str, str, str]
) -> None:
    repo, snapshot, index = snapshotted
    with pytest.raises(ApiError) as refused:
        es.snapshot.restore(repository=repo, snapshot=snapshot, wait_for_completion=True)
    assert refused.value.meta.status == 500
    assert error_type(refused.value) == "snapshot_restore_exception"
    assert (
        f"cannot restore index [{index}] because an open index with same name already exists "
        "in the cluster"
    ) in reason(refused.value)
    assert reason(refused.value).startswith(f"[{repo}:{snapshot}/")


def test_restore_over_a_closed_index_replaces_it(
    es: Elasticsearch, snapshotted: tuple[str, str, str]
) -> None:
    repo, snapshot, index = snapshotted
    es.index(index=index, id="after", document={"n": 100}, refresh=True)
    es.indices.close(index=index)
    es.snapshot.restore(repository=repo, snapshot=snapshot, wait_for_completion=True)
    es.cluster.health(index=index, wait_for_status="green", timeout="30s")
    assert count(es, index) == DOCS
    assert cat_row(es, index)["status"] == "open"


def test_rename_restore_leaves_the_original_untouched(
    es_cluster: EsCluster, es: Elasticsearch, snapshotted: tuple[str, str, str]
) -> None:
    repo, snapshot, index = snapshotted
    es.index(index=index, id="after", document={"n": 100}, refresh=True)
    restored = es.snapshot.restore(
        repository=repo,
        snapshot=snapshot,
        indices=index,
        rename_pattern=f"{es_cluster.prefix}-(.+)",
        rename_replacement=f"{es_cluster.prefix}-restored-$1",
        wait_for_completion=True,
    )
    copy = es_cluster.name("restored-books")
    assert restored["snapshot"]["indices"] == [copy]
    es.cluster.health(index=copy, wait_for_status="green", timeout="30s")
    assert count(es, copy) == DOCS
    assert count(es, index) == DOCS + 1


def test_restore_brings_aliases_back_unless_told_not_to(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    alias = es_cluster.name("current")
    es.indices.update_aliases(actions=[{"add": {"index": books, "alias": alias}}])
    repo = register_repository(es_cluster, es)
    take_snapshot(es, repo, "with-alias", books)
    es.indices.delete(index=books)
    es.snapshot.restore(repository=repo, snapshot="with-alias", wait_for_completion=True)
    assert alias in es.indices.get_alias(index=books)[books]["aliases"]
    es.indices.delete(index=books)
    es.snapshot.restore(
        repository=repo, snapshot="with-alias", include_aliases=False, wait_for_completion=True
    )
    assert es.indices.get_alias(index=books)[books]["aliases"] == {}


# --------------------------------------------------------------------------- faults
def test_injected_partial_snapshot_restores_only_with_partial(
    es_cluster: EsCluster, es: Elasticsearch
) -> None:
    fake = es_cluster.require_fake("injects a shard failure")
    index = es_cluster.name("sharded")
    make_index(es, index, number_of_shards=2)
    repo = register_repository(es_cluster, es)
    fake.fail_next_snapshots("PARTIAL", shards=[0])
    snapshot = take_snapshot(es, repo, "partial", index)
    assert snapshot["state"] == "PARTIAL"
    assert snapshot["shards"] == {"total": 2, "failed": 1, "successful": 1}
    (failure,) = snapshot["failures"]
    assert (failure["index"], failure["shard_id"]) == (index, 0)
    es.indices.delete(index=index)
    with pytest.raises(ApiError) as refused:
        es.snapshot.restore(repository=repo, snapshot="partial", wait_for_completion=True)
    assert error_type(refused.value) == "snapshot_restore_exception"
    assert f"index [{index}] wasn't fully snapshotted - cannot restore" in reason(refused.value)
    restored = es.snapshot.restore(
        repository=repo, snapshot="partial", partial=True, wait_for_completion=True
    )
    assert restored["snapshot"]["shards"] == {"total": 2, "failed": 1, "successful": 1}
    assert 0 < count(es, index) < DOCS


def test_injected_failed_snapshot_cannot_be_restored(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    fake = es_cluster.require_fake("injects a failed snapshot")
    repo = register_repository(es_cluster, es)
    fake.fail_next_snapshots("FAILED", reason="node left the cluster")
    snapshot = take_snapshot(es, repo, "failed", books)
    assert (snapshot["state"], snapshot["reason"]) == ("FAILED", "node left the cluster")
    es.indices.delete(index=books)
    with pytest.raises(ApiError) as refused:
        es.snapshot.restore(repository=repo, snapshot="failed")
    assert "unsupported snapshot state [FAILED]" in reason(refused.value)


def test_injected_503_surfaces_as_api_error(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    fake = es_cluster.require_fake("injects an error")
    repo = register_repository(es_cluster, es)
    fake.fail_requests(
        "PUT",
        "/_snapshot/*/*",
        status=503,
        error_type="concurrent_snapshot_execution_exception",
        reason=f"[{repo}:busy] cannot snapshot while a snapshot deletion is in-progress",
    )
    impatient = es_cluster.client(max_retries=0)
    with pytest.raises(ApiError) as busy:
        impatient.snapshot.create(repository=repo, snapshot="busy", indices=books)
    assert busy.value.meta.status == 503
    assert busy.value.message == "concurrent_snapshot_execution_exception"
    assert error_type(busy.value) == "concurrent_snapshot_execution_exception"
    # the rule is spent; the default client retries a 503 on its own anyway
    fake.fail_requests("PUT", "/_snapshot/*/*", status=503, times=1)
    fake.clear_requests()
    es.snapshot.create(repository=repo, snapshot="retried", indices=books, wait_for_completion=True)
    assert [r.status for r in fake.calls("PUT", "/_snapshot/*/retried")] == [503, 200]


def test_running_snapshot_is_current_and_guards_its_indices(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    fake = es_cluster.require_fake("holds a snapshot in progress")
    fake.snapshot_duration = 5
    repo = register_repository(es_cluster, es)
    es.snapshot.create(repository=repo, snapshot="running", indices=books)
    (info,) = es.snapshot.get(repository=repo, snapshot="_current")["snapshots"]
    assert (info["state"], info["end_time_in_millis"], info["duration_in_millis"]) == (
        "IN_PROGRESS",
        0,
        0,
    )
    (status,) = es.snapshot.status(repository=repo)["snapshots"]
    assert status["state"] == "STARTED"
    with pytest.raises(BadRequestError) as busy:
        es.indices.delete(index=books)
    assert error_type(busy.value) == "snapshot_in_progress_exception"
    es.snapshot.delete(repository=repo, snapshot="running")  # aborts it
    assert es.snapshot.get(repository=repo, snapshot="*")["total"] == 0
    es.indices.delete(index=books)


def test_snapshot_being_restored_cannot_be_deleted(
    es_cluster: EsCluster, snapshotted: tuple[str, str, str]
) -> None:
    fake = es_cluster.require_fake("slows the restore down")
    fake.recovery_delay = 5
    repo, snapshot, index = snapshotted
    es = es_cluster.client(max_retries=0)
    es.indices.delete(index=index)
    es.snapshot.restore(repository=repo, snapshot=snapshot)
    with pytest.raises(ApiError) as refused:
        es.snapshot.delete(repository=repo, snapshot=snapshot)
    assert refused.value.meta.status == 503
    assert error_type(refused.value) == "concurrent_snapshot_execution_exception"
    assert "cannot delete snapshot during a restore" in reason(refused.value)


def test_unimplemented_parameters_are_refused_by_name(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    es_cluster.require_fake("Elasticsearch implements routing")
    with pytest.raises(BadRequestError) as refused:
        es.get(index=books, id="1", routing="r1")
    assert "[routing]" in reason(refused.value)
    assert "not supported by the Elasticsearch test double" in reason(refused.value)


def test_request_log_records_what_was_called(
    es_cluster: EsCluster, es: Elasticsearch, books: str
) -> None:
    fake = es_cluster.require_fake("reads the request log")
    repo = register_repository(es_cluster, es)
    take_snapshot(es, repo, "logged", books, metadata={"policy": "nightly"})
    (call,) = fake.calls("PUT", f"/_snapshot/{repo}/logged")
    assert call.query == {"wait_for_completion": "true"}
    assert call.body["indices"] == books and call.body["metadata"] == {"policy": "nightly"}
    assert call.status == 200


def test_snapshots_survive_a_restart_of_the_double(
    es_cluster: EsCluster, snapshotted: tuple[str, str, str]
) -> None:
    es_cluster.require_fake("restarts the double")
    repo, snapshot, index = snapshotted
    location = Path(es_cluster.repo_location())
    assert any(location.rglob(f"{index}.json"))
    es_cluster.restart()
    es = es_cluster.client()
    assert not es.indices.exists(index=index)
    register_repository(es_cluster, es)
    (info,) = es.snapshot.get(repository=repo, snapshot="*")["snapshots"]
    assert info["snapshot"] == snapshot
    es.snapshot.restore(repository=repo, snapshot=snapshot, wait_for_completion=True)
    assert count(es, index) == DOCS


# --------------------------------------------------------------------------- security, TLS
def test_api_keys_and_basic_auth(es_secure_factory: Any) -> None:
    keyed = es_secure_factory(tls=False, api_keys={"backup-id": "s3cret"})
    assert keyed.client().info()["tagline"] == "You Know, for Search"
    with pytest.raises(AuthenticationException) as wrong:
        keyed.client(api_key=("backup-id", "wrong")).info()
    assert error_type(wrong.value) == "security_exception"
    assert wrong.value.meta.status == 401
    with pytest.raises(AuthenticationException) as anonymous:
        keyed.client(api_key=None).info()
    assert "missing authentication credentials" in reason(anonymous.value)
    basic = es_secure_factory(tls=False, users={"backup": "pw"})
    assert basic.client().ping()
    with pytest.raises(AuthenticationException) as bad_password:
        basic.client(basic_auth=("backup", "nope")).info()
    assert "unable to authenticate user [backup]" in reason(bad_password.value)


def test_https_needs_the_ca(es_secure_factory: Any) -> None:
    cluster = es_secure_factory(tls=True)
    assert cluster.url.startswith("https://127.0.0.1:")
    assert cluster.client().info()["version"]["number"].startswith("8.")
    with pytest.raises(EsConnectionError):
        cluster.client(ca_certs=None, max_retries=0).info()


def test_mutual_tls_rejects_a_client_without_a_certificate(es_secure_factory: Any) -> None:
    cluster = es_secure_factory(tls=True, client_auth=True)
    assert cluster.client().ping()
    with pytest.raises(EsConnectionError):
        cluster.client(client_cert=None, client_key=None, max_retries=0).info()


def test_tls_cluster_fixture_needs_certificate_and_key(es_tls_cluster: EsCluster) -> None:
    assert es_tls_cluster.client().info()["version"]["number"].startswith("8.")
    with pytest.raises(AuthenticationException):
        es_tls_cluster.client(api_key=("backupctl", "wrong")).info()
    fake = es_tls_cluster.require_fake("reads the request log")
    assert {r.user for r in fake.calls("GET", "/")} == {"api_key:backupctl", None}
