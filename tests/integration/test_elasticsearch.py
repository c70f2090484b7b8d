"""Elasticsearch snapshots through the CLI: take, list, verify, restore (replace and rename),
PARTIAL honesty, retries, SLM retention, TLS. Against the test double by default, a real
cluster with BACKUPCTL_TEST_ES_URL (tests needing fault injection then skip)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from elasticsearch import Elasticsearch

from tests.support.elasticsearch import EsCluster
from tests.support.policies import search_policy


def _policy(
    tmp_path: Path, es: EsCluster, restore: dict[str, Any] | None = None, **extra: Any
) -> Path:
    verify = {"verify": [{"index": es.name("orders") + "-*", "min_docs": 1}]}
    return search_policy(
        tmp_path / "policies", es, tmp_path / "repo", restore=verify | (restore or {}), **extra
    )


def _fill(client: Elasticsearch, index: str, docs: int) -> None:
    if not client.indices.exists(index=index):
        client.indices.create(index=index, settings={"number_of_replicas": 0})
    actions: list[dict[str, Any]] = []
    for n in range(docs):
        actions += [{"index": {"_index": index}}, {"n": n, "note": f"order {n}"}]
    if actions:
        client.bulk(operations=actions, refresh=True)


def _count(client: Elasticsearch, index: str) -> int:
    client.indices.refresh(index=index)
    return int(client.count(index=index)["count"])


def _backup(backupctl: Any, policy: Path, *options: str) -> dict[str, Any]:
    result = backupctl("backup", "search", "--json", *options, policies=policy)
    assert result.code == 0, result.output
    return json.loads(result.stdout)


def test_snapshot_then_lose_an_index_then_restore_it(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    client = es_cluster.client()
    first, second = es_cluster.name("orders") + "-1", es_cluster.name("orders") + "-2"
    _fill(client, first, 120)
    _fill(client, second, 30)
    policy = _policy(tmp_path, es_cluster)
    manifest = _backup(backupctl, policy)
    assert manifest["details"]["state"] == "SUCCESS"
    assert manifest["details"]["indices"][first]["docs"] == 120
    assert manifest["details"]["snapshot"].startswith("search-")

    listed = backupctl("list", "search", policies=policy)
    assert manifest["backup_id"] in listed.stdout and "FAILED" not in listed.stdout
    verified = backupctl("verify", "search", "--json", policies=policy)
    assert verified.code == 0, verified.output
    names = [c["name"] for c in json.loads(verified.stdout)["checks"]]
    assert f"snapshot {manifest['details']['snapshot']}" in names

    client.indices.delete(index=first)
    result = backupctl("restore", "search", "--yes", "--json", policies=policy)
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    assert report["state"] == "completed"
    assert {c["name"] for c in report["checks"]} >= {f"docs {first}", f"docs {second}"}
    assert _count(client, first) == 120 and _count(client, second) == 30


def test_replace_mode_restores_over_an_open_index(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    client = es_cluster.client()
    index = es_cluster.name("orders") + "-1"
    _fill(client, index, 50)
    policy = _policy(tmp_path, es_cluster)
    snapshot = _backup(backupctl, policy)["details"]["snapshot"]
    _fill(client, index, 25)  # written after the snapshot, the index still open
    assert _count(client, index) == 75
    plan = backupctl("restore", "search", snapshot, "--dry-run", policies=policy)
    assert "prepare-indices: close the existing indices" in plan.stdout
    result = backupctl("restore", "search", snapshot, "--yes", policies=policy)
    assert result.code == 0, result.output
    assert "snapshot_restore_exception" not in result.output
    assert _count(client, index) == 50


def test_rename_mode_leaves_the_originals_untouched_and_moves_aliases(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    client = es_cluster.client()
    index = es_cluster.name("orders") + "-1"
    alias = es_cluster.name("orders-live")
    _fill(client, index, 40)
    client.indices.update_aliases(actions=[{"add": {"index": index, "alias": alias}}])
    restore = {"mode": "rename", "rename_replacement": "restored-$1", "switch_aliases": True}
    policy = _policy(tmp_path, es_cluster, restore)
    _backup(backupctl, policy)
    _fill(client, index, 10)
    result = backupctl("restore", "search", "--yes", policies=policy)
    assert result.code == 0, result.output
    assert _count(client, index) == 50, "the original was touched"
    assert _count(client, f"restored-{index}") == 40
    assert list(client.indices.get_alias(name=alias).body) == [f"restored-{index}"]

    again = backupctl("restore", "search", "--yes", policies=policy)
    assert again.code == 2
    assert f"would restore onto existing indices: restored-{index}" in again.stderr
    client.indices.delete(index=f"restored-{index}")


def test_a_failed_verification_names_the_state_of_every_index(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    client = es_cluster.client()
    index = es_cluster.name("orders") + "-1"
    _fill(client, index, 5)
    impossible = {"verify": [{"index": es_cluster.name("orders") + "-*", "min_docs": 10**6}]}
    policy = _policy(tmp_path, es_cluster, impossible)
    _backup(backupctl, policy)
    result = backupctl("restore", "search", "--yes", "--json", policies=policy)
    assert result.code == 3, result.output
    report = json.loads(result.stdout)
    restore = next(s for s in report["steps"] if s["name"] == "restore-snapshot")
    assert f"index states now: {index}: open" in restore["detail"]
    assert _count(client, index) == 5


def test_a_partial_snapshot_is_a_failed_backup_never_restored(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    fake = es_cluster.require_fake("needs a snapshot that ends PARTIAL")
    client = es_cluster.client()
    _fill(client, es_cluster.name("orders") + "-1", 10)
    policy = _policy(tmp_path, es_cluster)
    good = _backup(backupctl, policy)
    fake.fail_next_snapshots(state="PARTIAL")
    failed = backupctl("backup", "search", policies=policy)
    assert failed.code == 1
    assert "ended PARTIAL" in failed.stderr

    listed = backupctl("list", "search", "--json", policies=policy)
    backups = json.loads(listed.stdout)
    assert [b["failure"] is None for b in backups] == [True, False]
    assert "FAILED" in backupctl("list", "search", policies=policy).stdout
    plan = backupctl("restore", "search", "--dry-run", policies=policy)
    assert good["details"]["snapshot"] in plan.stdout
    refused = backupctl("restore", "search", backups[1]["backup_id"], "--yes", policies=policy)
    assert refused.code == 2 and "is not restorable" in refused.stderr
    checked = backupctl("verify", "search", backups[1]["backup_id"], policies=policy)
    assert checked.code == 3


def test_concurrent_snapshot_errors_are_retried(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    fake = es_cluster.require_fake("needs injected concurrent_snapshot_execution_exception")
    _fill(es_cluster.client(), es_cluster.name("orders") + "-1", 3)
    policy = _policy(tmp_path, es_cluster)
    repo = es_cluster.name("repo")
    fake.fail_requests("PUT", f"/_snapshot/{repo}/search-*", times=2)
    result = backupctl("backup", "search", policies=policy)
    assert result.code == 0, result.output
    retries = [json.loads(line) for line in result.stderr.splitlines() if "retry" in line]
    assert len(retries) == 2
    assert "concurrent_snapshot_execution_exception" in retries[0]["error"]


def test_prune_deletes_what_slm_would_through_the_snapshot_api(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    client = es_cluster.client()
    _fill(client, es_cluster.name("orders") + "-1", 3)
    policy = _policy(
        tmp_path, es_cluster, retention={"expire_after": "30d", "min_count": 1, "max_count": 2}
    )
    # --no-prune: each backup would otherwise apply the retention itself
    ids = [_backup(backupctl, policy, "--no-prune")["details"]["snapshot"] for _ in range(3)]
    dry = backupctl("prune", "search", "--dry-run", policies=policy)
    assert dry.code == 0, dry.output
    assert "would delete: number 3 of the successful ones, max_count 2" in dry.stdout
    repo = es_cluster.name("repo")
    assert len(client.snapshot.get(repository=repo, snapshot="*")["snapshots"]) == 3

    done = backupctl("prune", "search", policies=policy)
    assert done.code == 0, done.output
    left = client.snapshot.get(repository=repo, snapshot="*")["snapshots"]
    assert sorted(s["snapshot"] for s in left) == sorted(ids[1:])
    listed = json.loads(backupctl("list", "search", "--json", policies=policy).stdout)
    assert sorted(b["details"]["snapshot"] for b in listed) == sorted(ids[1:])


def test_tls_and_api_key_settings_reach_the_client(
    es_tls_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    es = es_tls_cluster
    _fill(es.client(), es.name("orders") + "-1", 4)
    key_id, secret = es.client_kwargs["api_key"]
    key_file = tmp_path / "es-api-key"
    key_file.write_text(f"{key_id}:{secret}\n")
    key_file.chmod(0o600)
    tls = {
        "ca_certs": str(es.client_kwargs["ca_certs"]),
        "client_cert": str(es.client_kwargs["client_cert"]),
        "client_key": str(es.client_kwargs["client_key"]),
    }
    policy = _policy(tmp_path, es)
    data = yaml.safe_load(policy.read_text())
    data["connection"] = {"url": es.url, "api_key_file": str(key_file), **tls}
    policy.write_text(yaml.safe_dump(data))
    result = backupctl("backup", "search", policies=policy)
    assert result.code == 0, result.output
    assert secret not in result.output

    data["connection"] = {"url": es.url, "api_key_file": str(key_file), "ca_certs": tls["ca_certs"]}
    policy.write_text(yaml.safe_dump(data))
    refused = backupctl("backup", "search", policies=policy)
    assert refused.code == 1
    assert "cannot reach Elasticsearch" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_deep_verify_restores_a_copy_compares_and_cleans_up(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    client = es_cluster.client()
    index = es_cluster.name("orders") + "-1"
    _fill(client, index, 33)
    policy = _policy(tmp_path, es_cluster)
    snapshot = _backup(backupctl, policy)["details"]["snapshot"]
    deep = backupctl("verify", "search", "--deep", "--json", policies=policy)
    assert deep.code == 0, deep.output
    checks = {c["name"]: c for c in json.loads(deep.stdout)["checks"]}
    copy = next(name for name in checks if name.startswith("docs backupctl-verify-"))
    assert checks[copy]["passed"] and "33 documents" in checks[copy]["detail"]
    left = client.cat.indices(format="json", h="index", expand_wildcards="all").body
    assert not [r for r in left if r["index"].startswith("backupctl-verify-")]

    client.snapshot.delete(repository=es_cluster.name("repo"), snapshot=snapshot)
    gone = backupctl("verify", "search", policies=policy)
    assert gone.code == 3
    assert "not found in snapshot repository" in gone.output


def test_indices_restores_only_the_chosen_ones(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    client = es_cluster.client()
    first, second = es_cluster.name("orders") + "-1", es_cluster.name("orders") + "-2"
    _fill(client, first, 10)
    _fill(client, second, 20)
    policy = _policy(tmp_path, es_cluster)
    _backup(backupctl, policy)
    client.indices.delete(index=first)
    _fill(client, second, 5)
    result = backupctl("restore", "search", "--indices", "*-1", "--yes", policies=policy)
    assert result.code == 0, result.output
    assert _count(client, first) == 10
    assert _count(client, second) == 25, "an index not asked for was restored"
    nothing = backupctl("restore", "search", "--indices", "nope-*", "--yes", policies=policy)
    assert nothing.code == 2 and "matches none of the snapshot's indices" in nothing.stderr


def test_a_repository_the_cluster_refuses_is_explained(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    _fill(es_cluster.client(), es_cluster.name("orders") + "-1", 1)
    policy = _policy(tmp_path, es_cluster)
    data = yaml.safe_load(policy.read_text())
    data["snapshot_repository"]["settings"]["location"] = "/not/in/path/repo"
    policy.write_text(yaml.safe_dump(data))
    result = backupctl("backup", "search", policies=policy)
    assert result.code == 1
    assert "register snapshot repository" in result.stderr
    assert "repository_exception" in result.stderr
    assert "Traceback" not in result.stderr
