"""The typed details of Elasticsearch snapshot manifests: what the driver writes reads back
as the same JSON, what older versions wrote still reads (and verifies), and tampered details
are refused as such (exit 3, naming the backup), never crash the driver."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from elasticsearch import Elasticsearch

from backupctl.catalog.manifest import MANIFEST, Manifest, parse_manifest
from backupctl.drivers.elasticsearch.details import SnapshotDetails
from backupctl.drivers.elasticsearch.driver import ElasticsearchDriver
from backupctl.drivers.elasticsearch.indices import IndexMap, index_map
from backupctl.drivers.elasticsearch.verification import verify_indices
from backupctl.errors import VerificationFailed
from backupctl.layout import StateLayout
from backupctl.operations.backup import as_json, run_backup
from backupctl.operations.context import Context
from backupctl.policy.elasticsearch import ElasticsearchPolicy, ElasticsearchRestore
from backupctl.policy.loader import load_policies
from tests.support.elasticsearch import EsCluster

BACKUP_ID = "20261101T023000Z-a1b2c3"
#: the keys every version of the driver has written, and those of an index entry
KEYS = {
    "snapshot",
    "uuid",
    "repository",
    "repository_action",
    "state",
    "shards",
    "include_global_state",
    "snapshot_started_at",
    "snapshot_finished_at",
    "indices",
}
INDEX_KEYS = {"docs", "bytes", "docs_after"}
#: what this version adds: data streams, feature states, how documents were counted, and
#: each index's aliases
NEW_KEYS = {"data_streams", "feature_states", "counted_with"}


def _manifest(details: dict[str, Any]) -> Manifest:
    """A manifest with ``details`` as read back from a repository."""
    start = datetime(2026, 11, 1, 2, 30, tzinfo=UTC)
    manifest = Manifest(
        backup_id=BACKUP_ID,
        policy="search",
        driver="elasticsearch",
        kind="snapshot",
        started_at=start,
        finished_at=start + timedelta(seconds=5),
        artifacts=[],
        details=details,
    )
    return parse_manifest(manifest.to_json().encode(), "test")


def _policy(tmp_path: Path, es_cluster: EsCluster, indices: list[str]) -> ElasticsearchPolicy:
    data = {
        "version": 1,
        "name": "search",
        "driver": "elasticsearch",
        "connection": {"url": es_cluster.url},
        "snapshot_repository": {
            "name": es_cluster.name("repo"),
            "type": "fs",
            "settings": {"location": es_cluster.repo_location("snapshots")},
        },
        "repository": f"file://{tmp_path / 'repo'}",
        "indices": indices,
        "restore": {"recovery_timeout": "30s"},
    }
    path = tmp_path / "policies" / "search.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    (policy,) = load_policies(path)
    assert isinstance(policy, ElasticsearchPolicy)
    return policy


def _fill(es: Elasticsearch, index: str, docs: int) -> None:
    es.indices.create(index=index, settings={"number_of_replicas": 0})
    actions: list[dict[str, Any]] = []
    for n in range(docs):
        actions += [{"index": {"_index": index}}, {"n": n}]
    es.bulk(operations=actions, refresh=True)


# ------------------------------------------------------------ what the driver writes


def test_details_the_driver_writes_read_back_as_the_same_json(
    es_cluster: EsCluster, tmp_path: Path
) -> None:
    es = es_cluster.client()
    orders, archive = es_cluster.name("orders"), es_cluster.name("archive")
    _fill(es, orders, 3)
    _fill(es, archive, 2)
    es.indices.close(index=archive)  # in the snapshot, but no count to record
    policy = _policy(tmp_path, es_cluster, [orders, archive])

    manifest = run_backup(Context(StateLayout(tmp_path / "state")), policy)

    raw = (tmp_path / "repo" / manifest.prefix / MANIFEST).read_bytes()
    stored = json.loads(raw)["details"]
    # the shape readers (and people with jq) rely on: every key, plain JSON values
    assert set(stored) == KEYS | NEW_KEYS
    assert stored["counted_with"] == "count"
    assert stored["data_streams"] == [] and stored["feature_states"] == []
    assert stored["snapshot"] == f"search-{manifest.backup_id}".lower()
    assert stored["repository"] == es_cluster.name("repo")
    assert stored["state"] == "SUCCESS"
    assert stored["include_global_state"] is False
    assert isinstance(stored["uuid"], str) and isinstance(stored["snapshot_started_at"], str)
    assert stored["shards"]["failed"] == 0
    assert stored["indices"][orders]["docs"] == 3
    assert stored["indices"][orders]["docs_after"] == 3
    assert isinstance(stored["indices"][orders]["bytes"], int)
    # the closed index: its counts are written as null (absent before typed details)
    closed = {"docs": None, "bytes": None, "docs_after": None, "aliases": {}}
    assert stored["indices"][archive] == closed

    # model -> JSON -> model -> JSON: nothing changes on the way
    details = SnapshotDetails.of(parse_manifest(raw, "test"))
    assert details.indices[orders].docs == 3
    assert details.indices[archive].expected_docs() is None
    assert as_json(details) == stored
    assert json.dumps(as_json(details), sort_keys=True) == json.dumps(stored, sort_keys=True)
    assert SnapshotDetails.of(_manifest(as_json(details))) == details


def test_fields_a_later_version_adds_are_kept() -> None:
    details = {
        "snapshot": "search-1",
        "repository": "backups",
        "indices": {"orders": {"docs": 3, "bytes": 10, "docs_after": 3, "segments": 2}},
        "cluster": "eu-1",
    }
    stored: dict[str, Any] = as_json(SnapshotDetails.of(_manifest(details)))
    assert stored["cluster"] == "eu-1"
    assert stored["indices"]["orders"]["segments"] == 2


# ------------------------------------------------------------ what older versions wrote

#: details as an older backupctl wrote them: only the names and the counts it had
OLD = {
    "snapshot": "search-20261101t023000z-a1b2c3",
    "repository": "backups",
    "indices": {"orders": {"docs": 3, "bytes": 100}, "archive": {}},
}
#: the same, every optional field written as null, as this version writes what it lacks
NULLS = {
    **{key: None for key in KEYS},
    **OLD,
    "indices": {
        "orders": {"docs": 3, "bytes": 100, "docs_after": None},
        "archive": {"docs": None, "bytes": None, "docs_after": None},
    },
}


@pytest.mark.parametrize("details", [OLD, NULLS], ids=["absent", "null"])
def test_older_details_read_and_verify_like_before(
    details: dict[str, Any], es_cluster: EsCluster
) -> None:
    manifest = _manifest(copy.deepcopy(details))

    read = SnapshotDetails.of(manifest)
    assert (read.snapshot, read.repository, read.state, read.uuid) == (
        OLD["snapshot"],
        "backups",
        None,
        None,
    )
    assert ElasticsearchDriver.note(manifest) == f"snapshot {OLD['snapshot']} None"
    options = ElasticsearchRestore(mode="rename", rename_pattern="(.+)", rename_replacement="r-$1")
    assert index_map(manifest, options, None).targets == {
        "archive": "r-archive",
        "orders": "r-orders",
    }

    # a restore is checked against the counts the old manifest has
    es = es_cluster.client()
    orders, archive = es_cluster.name("orders"), es_cluster.name("archive")
    _fill(es, orders, 3)
    _fill(es, archive, 1)
    restored = IndexMap({"orders": orders, "archive": archive}, renamed=True)
    checks = {c.name: c for c in verify_indices(es, manifest, restored, [])}
    assert checks[f"docs {orders}"].passed
    assert checks[f"docs {orders}"].detail == "3 documents, snapshot had 3"
    assert checks[f"docs {archive}"].passed
    assert "no count recorded" in checks[f"docs {archive}"].detail

    es.index(index=orders, document={"n": 99}, refresh=True)  # one too many: a mismatch
    checks = {c.name: c for c in verify_indices(es, manifest, restored, [])}
    assert not checks[f"docs {orders}"].passed
    assert checks[f"docs {orders}"].detail == "4 documents, snapshot had 3"


def test_a_count_taken_after_the_snapshot_widens_the_expected_range() -> None:
    details = {**OLD, "indices": {"orders": {"docs": 3, "bytes": 100, "docs_after": 5}}}
    entry = SnapshotDetails.of(_manifest(details)).indices["orders"]
    assert entry.expected_docs() == (3, 5)


# ------------------------------------------------------------ tampered details


def _drop_indices(details: dict[str, Any]) -> None:
    del details["indices"]


@pytest.mark.parametrize(
    ("tamper", "where"),
    [
        (lambda d: d.update(indices=["orders"]), "indices"),
        (lambda d: d.update(indices=None), "indices"),
        (lambda d: d.update(snapshot=5), "snapshot"),
        (lambda d: d.update(repository=None), "repository"),
        (_drop_indices, "indices"),
        (lambda d: d["indices"].update(orders=5), "indices.orders"),
        (lambda d: d["indices"]["orders"].update(docs="3"), "indices.orders.docs"),
        (lambda d: d.update(include_global_state="yes"), "include_global_state"),
    ],
    ids=[
        "indices-a-list",
        "indices-null",
        "snapshot-a-number",
        "repository-null",
        "indices-missing",
        "entry-not-a-mapping",
        "count-a-string",
        "flag-a-string",
    ],
)
def test_tampered_details_are_refused_naming_the_backup(tamper: Any, where: str) -> None:
    details = copy.deepcopy(OLD)
    tamper(details)
    manifest = _manifest(details)

    with pytest.raises(VerificationFailed) as refused:
        SnapshotDetails.of(manifest)
    assert refused.value.exit_code == 3
    message = str(refused.value)
    assert f"refusing backup {BACKUP_ID} of search" in message
    assert f"{where}:" in message and "tampered or corrupt" in message

    # what restore, verify and drills go through refuses it too, instead of crashing
    with pytest.raises(VerificationFailed, match=BACKUP_ID):
        index_map(manifest, ElasticsearchRestore(), None)


def test_a_tampered_manifest_does_not_stop_finding_backups_by_snapshot_name(
    es_cluster: EsCluster, tmp_path: Path
) -> None:
    driver = ElasticsearchDriver(_policy(tmp_path, es_cluster, ["orders"]))
    assert driver.names(_manifest(copy.deepcopy(OLD))) == (OLD["snapshot"],)
    assert driver.names(_manifest({**OLD, "snapshot": 5})) == ()
