"""The Elasticsearch driver against the rules a real cluster enforces (and the test double
enforces with it): a refused restore undoes exactly what was done, aliases keep every
property, an unrelated red index is not the restore's, nested objects are not documents.
Against the double by default, a real cluster with BACKUPCTL_TEST_ES_URL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from tests.support.elasticsearch import EsCluster
from tests.support.policies import search_policy


def _policy(tmp_path: Path, es: EsCluster, **restore: Any) -> Path:
    return search_policy(tmp_path / "policies", es, tmp_path / "repo", restore=restore)


def _fill(client: Elasticsearch, index: str, docs: int, **create: Any) -> None:
    if not client.indices.exists(index=index):
        client.indices.create(index=index, settings={"number_of_replicas": 0}, **create)
    actions: list[dict[str, Any]] = []
    for n in range(docs):
        actions += [{"index": {"_index": index}}, {"n": n, "kind": "a" if n % 2 else "b"}]
    if actions:
        client.bulk(operations=actions, refresh=True)


def _backup(backupctl: Any, policy: Path) -> dict[str, Any]:
    result = backupctl("backup", "search", "--json", policies=policy)
    assert result.code == 0, result.output
    return dict(json.loads(result.stdout))


def _status(client: Elasticsearch, index: str) -> str:
    [row] = client.cat.indices(index=index, format="json", h="status", expand_wildcards="all")
    return str(row["status"])


def test_a_refused_restore_reopens_what_it_closed(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    fake = es_cluster.require_fake("needs the cluster to refuse a restore")
    client = es_cluster.client()
    index = es_cluster.name("orders") + "-1"
    _fill(client, index, 6)
    policy = _policy(tmp_path, es_cluster)
    _backup(backupctl, policy)
    fake.fail_requests(
        "POST",
        "/_snapshot/*/*/_restore",
        status=400,
        error_type="illegal_argument_exception",
        reason="refused for the test",
    )
    result = backupctl("restore", "search", "--yes", "--json", policies=policy)
    assert result.code == 1, result.output
    report = json.loads(result.stdout)
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["restore-snapshot"]["status"] == "compensated"
    assert "restored nothing" in steps["restore-snapshot"]["detail"]
    assert f"reopened {index}" in steps["prepare-indices"]["detail"]
    assert _status(client, index) == "open"  # the live index serves again
    assert client.count(index=index)["count"] == 6


def test_moved_aliases_keep_their_filter_routing_and_write_flag_and_move_back(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    client = es_cluster.client()
    index = es_cluster.name("orders") + "-1"
    writer, filtered = es_cluster.name("orders-write"), es_cluster.name("orders-a")
    _fill(client, index, 8)
    client.indices.update_aliases(
        actions=[
            {"add": {"index": index, "alias": writer, "is_write_index": True}},
            {
                "add": {
                    "index": index,
                    "alias": filtered,
                    "filter": {"term": {"kind": "a"}},
                    "routing": "1",
                }
            },
        ]
    )
    before = client.indices.get_alias(index=index).body[index]["aliases"]
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    failing = hooks / "start.sh"
    failing.write_text("#!/bin/sh\nexit 1\n")
    failing.chmod(0o755)
    rename = {"mode": "rename", "rename_replacement": "restored-$1", "switch_aliases": True}
    policy = _policy(tmp_path, es_cluster, **rename)
    _backup(backupctl, policy)

    result = backupctl("restore", "search", "--yes", policies=policy)
    assert result.code == 0, result.output
    copy = f"restored-{index}"
    moved = client.indices.get_alias(index=copy).body[copy]["aliases"]
    assert moved == before  # the write flag, the filter and the routing, all of them
    assert client.count(index=filtered)["count"] == 4  # still filtered: only kind "a"
    client.indices.delete(index=copy)
    client.indices.update_aliases(
        actions=[{"add": {"index": index, "alias": a, **p}} for a, p in before.items()]
    )

    # a failure after the switch (the start hook) moves every alias back, as it was
    failing_policy = _policy(tmp_path, es_cluster, **rename, start=[str(failing)])
    result = backupctl("restore", "search", "--yes", "--json", policies=failing_policy)
    assert result.code == 1, result.output
    report = json.loads(result.stdout)
    switch = next(s for s in report["steps"] if s["name"] == "switch-aliases")
    assert switch["status"] == "compensated"
    assert client.indices.get_alias(index=index).body[index]["aliases"] == before
    assert not client.indices.exists(index=copy)


def test_an_unrelated_red_index_does_not_fail_the_drill(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    client = es_cluster.client()
    index = es_cluster.name("orders") + "-1"
    _fill(client, index, 4)
    policy = _policy(tmp_path, es_cluster)
    _backup(backupctl, policy)
    # an index whose primary can be allocated on no node: red, and none of the drill's
    broken = es_cluster.name("unrelated")
    client.indices.create(
        index=broken,
        settings={"number_of_replicas": 0, "index.routing.allocation.require._name": "none"},
        wait_for_active_shards="0",
    )
    assert client.cluster.health()["status"] == "red"
    result = backupctl("drill", "run", "search", "--json", policies=policy)
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    health = next(c for c in report["checks"] if c["name"] == "health")
    assert health["passed"], health
    client.indices.delete(index=broken)


def test_nested_objects_are_not_counted_as_documents(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    client = es_cluster.client()
    index = es_cluster.name("orders") + "-1"
    client.indices.create(
        index=index,
        settings={"number_of_replicas": 0},
        mappings={"properties": {"lines": {"type": "nested"}}},
    )
    actions: list[dict[str, Any]] = []
    for n in range(5):
        actions += [{"index": {"_index": index}}, {"n": n, "lines": [{"sku": 1}, {"sku": 2}]}]
    client.bulk(operations=actions, refresh=True)
    policy = _policy(tmp_path, es_cluster, verify=[{"index": index, "min_docs": 5}])
    manifest = _backup(backupctl, policy)
    assert manifest["details"]["indices"][index]["docs"] == 5  # not 15
    result = backupctl("restore", "search", "--yes", "--json", policies=policy)
    assert result.code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks[f"docs {index}"]["detail"] == "5 documents, snapshot had 5"


def _streams(client: Elasticsearch, name: str) -> dict[str, Any]:
    found = client.indices.get_data_stream(name=name)["data_streams"]
    return {d["name"]: d for d in found}


def _log_stream(client: Elasticsearch, es: EsCluster, docs: int) -> str:
    """A data stream ``<prefix>-logs-app`` (its template's pattern ``<prefix>-logs-*``)
    with ``docs`` documents, rolled over once so it has two backing indices."""
    stream = es.name("logs-app")
    client.indices.put_index_template(
        name=es.name("logs"),
        index_patterns=[es.name("logs") + "-*"],
        data_stream={},
        priority=500,
        template={"settings": {"number_of_replicas": 0}},
    )
    half = docs // 2
    for batch in (half, docs - half):
        actions: list[dict[str, Any]] = []
        for n in range(batch):
            actions += [{"create": {"_index": stream}}, {"@timestamp": "2026-11-22", "n": n}]
        client.bulk(operations=actions, refresh=True)
        if batch == half:
            client.indices.rollover(alias=stream)
    return stream


def test_a_data_stream_comes_back_with_its_backing_indices_and_documents(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    client = es_cluster.client()
    stream = _log_stream(client, es_cluster, 9)
    backing = [i["index_name"] for i in _streams(client, stream)[stream]["indices"]]
    assert len(backing) == 2
    policy = search_policy(
        tmp_path / "policies",
        es_cluster,
        tmp_path / "repo",
        indices=[es_cluster.name("logs") + "-*"],
    )
    manifest = _backup(backupctl, policy)
    assert manifest["details"]["data_streams"] == [stream]
    assert set(backing) <= set(manifest["details"]["indices"])

    # replace mode over the live data stream: refused before anything changes
    refused = backupctl("restore", "search", "--yes", policies=policy)
    assert refused.code == 2, refused.output
    assert f"data stream(s) {stream} exist" in refused.stderr
    assert client.count(index=stream)["count"] == 9

    # lost with its backing indices: the restore names the data stream, not .ds-*
    client.indices.delete_data_stream(name=stream)
    result = backupctl("restore", "search", "--yes", "--json", policies=policy)
    assert result.code == 0, result.output
    back = _streams(client, stream)[stream]
    assert [i["index_name"] for i in back["indices"]] == backing
    assert client.count(index=stream)["count"] == 9
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks[f"docs {stream}"]["passed"], checks

    # over the live one, with delete_existing: deleted, then restored
    client.bulk(operations=[{"create": {"_index": stream}}, {"@timestamp": "2026-11-23"}])
    deleting = search_policy(
        tmp_path / "policies",
        es_cluster,
        tmp_path / "repo",
        indices=[es_cluster.name("logs") + "-*"],
        restore={"delete_existing": True},
    )
    result = backupctl("restore", "search", "--yes", policies=deleting)
    assert result.code == 0, result.output
    client.indices.refresh(index=stream)
    assert client.count(index=stream)["count"] == 9  # as the snapshot had it

    drill = backupctl("drill", "run", "search", "--json", policies=deleting)
    assert drill.code == 0, drill.output
    assert not [
        d
        for d in client.indices.get_data_stream(name="*")["data_streams"]
        if d["name"].startswith("drill-")
    ]


def test_system_indices_come_back_only_with_their_feature_state(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    fake = es_cluster.require_fake("creates a system index")
    fake.add_system_index("security", ".security-7", [{"user": "ann"}, {"user": "bob"}])
    client = es_cluster.client()
    index = es_cluster.name("orders") + "-1"
    _fill(client, index, 3)
    policy = search_policy(
        tmp_path / "policies", es_cluster, tmp_path / "repo", include_global_state=True
    )
    manifest = _backup(backupctl, policy)
    states = manifest["details"]["feature_states"]
    assert {"feature_name": "security", "indices": [".security-7"]} in states
    assert ".security-7" in manifest["details"]["indices"]
    client.index(index=".security-7", document={"user": "eve"}, refresh=True)  # after it

    for command in (["verify", "search", "--deep"], ["drill", "run", "search"]):
        result = backupctl(*command, policies=policy)
        assert result.code == 0, result.output
    result = backupctl("restore", "search", "--yes", policies=policy)
    assert result.code == 0, result.output
    assert client.count(index=index)["count"] == 3
    assert client.count(index=".security-7")["count"] == 3  # untouched: eve stays

    asked = search_policy(
        tmp_path / "policies",
        es_cluster,
        tmp_path / "repo",
        include_global_state=True,
        restore={"feature_states": ["security"]},
    )
    result = backupctl("restore", "search", "--yes", policies=asked)
    assert result.code == 0, result.output
    assert client.count(index=".security-7")["count"] == 2  # as the snapshot had it


def test_a_write_alias_that_rolled_over_is_refused_before_anything_changes(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    client = es_cluster.client()
    first, second = es_cluster.name("orders") + "-000001", es_cluster.name("orders") + "-000002"
    writer = es_cluster.name("orders-write")
    _fill(client, first, 5, aliases={writer: {"is_write_index": True}})
    policy = _policy(tmp_path, es_cluster)
    _backup(backupctl, policy)
    client.indices.rollover(alias=writer, new_index=second, settings={"number_of_replicas": 0})

    refused = backupctl("restore", "search", "--yes", "--json", policies=policy)
    assert refused.code == 2, refused.output
    assert f"alias {writer} writes to {second} now" in refused.stderr
    assert _status(client, first) == "open"  # nothing was closed
    members = client.indices.get_alias(name=writer).body
    assert members[second]["aliases"][writer]["is_write_index"] is True

    kept = _policy(tmp_path, es_cluster, include_aliases=False)
    result = backupctl("restore", "search", "--yes", policies=kept)
    assert result.code == 0, result.output
    writers = [
        index
        for index, entry in client.indices.get_alias(name=writer).body.items()
        if entry["aliases"][writer].get("is_write_index")
    ]
    assert writers == [second]  # exactly one write index
    assert client.count(index=first)["count"] == 5


def test_many_long_index_names_never_make_a_request_line_too_long(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    client = es_cluster.client()
    names = [f"{es_cluster.name('orders')}-{'customer-ledger-' * 3}{n:03d}" for n in range(150)]
    for name in names:
        client.indices.create(index=name, settings={"number_of_replicas": 0})
        client.index(index=name, document={"n": 1})
    client.indices.refresh(index=es_cluster.name("orders") + "-*")
    policy = _policy(tmp_path, es_cluster)
    manifest = _backup(backupctl, policy)
    assert set(names) <= set(manifest["details"]["indices"])
    # the cluster (and the double) refuse a request line over 4 KB: each of these would
    # fail if the driver put every name into one URL
    for command in (["restore", "search", "--yes"], ["drill", "run", "search"]):
        result = backupctl(*command, policies=policy)
        assert result.code == 0, result.output


def test_a_lost_snapshot_start_is_neither_a_failure_nor_a_duplicate(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    fake = es_cluster.require_fake("loses an answer")
    client = es_cluster.client()
    _fill(client, es_cluster.name("orders") + "-1", 3)
    policy = _policy(tmp_path, es_cluster)
    fake.drop_answer("PUT", r"/_snapshot/[^/]+/search-.*")
    manifest = _backup(backupctl, policy)
    repository = manifest["details"]["repository"]
    snapshots = client.snapshot.get(repository=repository, snapshot="*")["snapshots"]
    assert [s["snapshot"] for s in snapshots] == [manifest["details"]["snapshot"]]
    assert [r.answer for r in fake.calls("PUT")].count("dropped") == 1


def test_a_recovery_slower_than_the_client_timeout_still_completes(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    fake = es_cluster.require_fake("slows recoveries down")
    client = es_cluster.client()
    index = es_cluster.name("orders") + "-1"
    _fill(client, index, 3)
    policy = search_policy(
        tmp_path / "policies",
        es_cluster,
        tmp_path / "repo",
        connection={"url": es_cluster.url, "timeout": "2s"},
    )
    _backup(backupctl, policy)
    fake.recovery_delay = 4.0  # the primaries initialize for longer than a client timeout
    result = backupctl("restore", "search", "--yes", "--json", policies=policy)
    assert result.code == 0, result.output
    waited = next(s for s in json.loads(result.stdout)["steps"] if s["name"] == "wait-recovered")
    assert waited["status"] == "ok" and waited["seconds"] >= 3
