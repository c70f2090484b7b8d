"""Contract tests of the Elasticsearch test double: system indices and feature states in
snapshots and restores (``SnapshotsService``, ``RestoreService``).

Real clients cannot create system indices, so these tests set them up through the
side channel (``controls.add_system_index``) and skip against a real cluster; the
answers they check are Elasticsearch 8's.
"""

from __future__ import annotations

from typing import Any

import pytest
from elasticsearch import ApiError, BadRequestError, Elasticsearch

from tests.support.elasticsearch import EsCluster
from tests.unit.test_fake_elasticsearch import (
    count,
    error_type,
    make_index,
    reason,
    register_repository,
)

SECURITY = ".security-7"
KIBANA = ".kibana_1"


@pytest.fixture
def es(es_cluster: EsCluster) -> Elasticsearch:
    return es_cluster.client()


@pytest.fixture
def system(es_cluster: EsCluster, es: Elasticsearch) -> str:
    """Two features with a system index each, a regular index, and a repository."""
    fake = es_cluster.require_fake("creates system indices")
    fake.add_system_index("security", SECURITY, [{"user": "ann"}, {"user": "bob"}])
    fake.add_system_index(
        "kibana", KIBANA, [{"saved": 1}], description="Manages Kibana configuration and reports"
    )
    make_index(es, es_cluster.name("books"), docs=3)
    return register_repository(es_cluster, es)


def snapshot(es: Elasticsearch, repo: str, name: str, **body: Any) -> dict[str, Any]:
    taken: dict[str, Any] = es.snapshot.create(
        repository=repo, snapshot=name, wait_for_completion=True, **body
    )["snapshot"]
    return taken


def states(info: dict[str, Any]) -> dict[str, list[str]]:
    return {f["feature_name"]: f["indices"] for f in info["feature_states"]}


def test_features_are_listed(es: Elasticsearch, system: str) -> None:
    features = es.features.get_features()["features"]
    assert {"name": "kibana", "description": "Manages Kibana configuration and reports"} in (
        features
    )
    assert "security" in {f["name"] for f in features}


# --------------------------------------------------------------------------- snapshots
def test_global_state_takes_every_feature_state(
    es_cluster: EsCluster, es: Elasticsearch, system: str
) -> None:
    info = snapshot(es, system, "global", indices="*", include_global_state=True)
    assert states(info) == {"kibana": [KIBANA], "security": [SECURITY]}
    assert {SECURITY, KIBANA, es_cluster.name("books")} <= set(info["indices"])
    (listed,) = es.snapshot.get(repository=system, snapshot="global")["snapshots"]
    assert listed["feature_states"] == info["feature_states"]


def test_without_global_state_system_indices_stay_out_of_wildcards(
    es_cluster: EsCluster, es: Elasticsearch, system: str
) -> None:
    info = snapshot(es, system, "plain", indices="*", include_global_state=False)
    assert info["feature_states"] == []
    assert info["indices"] == [es_cluster.name("books")]


def test_feature_states_pick_features_whatever_the_global_state(
    es: Elasticsearch, system: str
) -> None:
    picked = snapshot(
        es, system, "picked", indices="-*", include_global_state=False, feature_states=["kibana"]
    )
    assert states(picked) == {"kibana": [KIBANA]}
    assert picked["indices"] == [KIBANA]
    none = snapshot(es, system, "none", indices="*", feature_states=["none"])
    assert none["feature_states"] == [] and SECURITY not in none["indices"]
    unknown = snapshot(es, system, "unknown", indices="-*", feature_states=["no-such-feature"])
    assert unknown["feature_states"] == []  # unknown names are left out, not refused


def test_none_with_other_feature_states_is_refused(es: Elasticsearch, system: str) -> None:
    with pytest.raises(BadRequestError) as refused:
        es.snapshot.create(repository=system, snapshot="x", feature_states=["none", "kibana"])
    assert error_type(refused.value) == "illegal_argument_exception"
    assert reason(refused.value) == (
        "the feature_states value [none] indicates that no feature states should be "
        "snapshotted, but other feature states were requested: [none, kibana]"
    )


def test_naming_a_system_index_in_a_snapshot_is_refused(es: Elasticsearch, system: str) -> None:
    with pytest.raises(BadRequestError) as refused:
        es.snapshot.create(repository=system, snapshot="x", indices=SECURITY)
    assert error_type(refused.value) == "illegal_argument_exception"
    assert reason(refused.value) == (
        f"the [indices] parameter includes system indices [{SECURITY}]; to include or exclude "
        "system indices from a snapshot, use the [include_global_state] or [feature_states] "
        "parameters"
    )


# --------------------------------------------------------------------------- restores
@pytest.fixture
def global_snapshot(es_cluster: EsCluster, es: Elasticsearch, system: str) -> str:
    snapshot(es, system, "global", indices="*", include_global_state=True)
    es.index(index=SECURITY, id="later", document={"user": "eve"}, refresh=True)
    es.indices.delete(index=es_cluster.name("books"))
    return system


def test_naming_a_system_index_in_a_restore_is_refused(
    es: Elasticsearch, global_snapshot: str
) -> None:
    with pytest.raises(BadRequestError) as refused:
        es.snapshot.restore(repository=global_snapshot, snapshot="global", indices=SECURITY)
    assert error_type(refused.value) == "illegal_argument_exception"
    assert reason(refused.value) == (
        f"requested system indices [{SECURITY}], but system indices can only be restored as "
        "part of a feature state"
    )


def test_a_wildcard_restore_leaves_system_indices_alone(
    es_cluster: EsCluster, es: Elasticsearch, global_snapshot: str
) -> None:
    restored = es.snapshot.restore(
        repository=global_snapshot, snapshot="global", indices="*", wait_for_completion=True
    )
    assert restored["snapshot"]["indices"] == [es_cluster.name("books")]
    assert count(es, SECURITY) == 3  # the live one, untouched


def test_feature_state_restore_replaces_the_live_system_indices(
    es: Elasticsearch, global_snapshot: str
) -> None:
    restored = es.snapshot.restore(
        repository=global_snapshot,
        snapshot="global",
        indices="-*",
        feature_states=["security"],
        wait_for_completion=True,
    )
    assert restored["snapshot"]["indices"] == [SECURITY]
    es.cluster.health(index=SECURITY, wait_for_status="green", timeout="30s")
    assert count(es, SECURITY) == 2  # as snapshotted: the later document is gone
    assert count(es, KIBANA) == 1


def test_global_state_restores_every_feature_and_none_restores_none(
    es_cluster: EsCluster, es: Elasticsearch, global_snapshot: str
) -> None:
    es.index(index=KIBANA, id="later", document={"saved": 2}, refresh=True)
    nothing = es.snapshot.restore(
        repository=global_snapshot,
        snapshot="global",
        include_global_state=True,
        feature_states=["none"],
        wait_for_completion=True,
    )
    assert nothing["snapshot"]["indices"] == [es_cluster.name("books")]
    assert (count(es, SECURITY), count(es, KIBANA)) == (3, 2)
    es.indices.delete(index=es_cluster.name("books"))
    everything = es.snapshot.restore(
        repository=global_snapshot,
        snapshot="global",
        include_global_state=True,
        wait_for_completion=True,
    )
    assert sorted(everything["snapshot"]["indices"]) == sorted(
        [KIBANA, SECURITY, es_cluster.name("books")]
    )
    assert (count(es, SECURITY), count(es, KIBANA)) == (2, 1)


@pytest.mark.parametrize(
    ("feature_states", "message"),
    [
        (["monitoring"], "requested feature states [[monitoring]] are not present in snapshot"),
        (
            ["none", "security"],
            "the feature_states value [none] indicates that no feature states should be "
            "restored, but other feature states were requested: [none, security]",
        ),
    ],
)
def test_unknown_or_contradictory_feature_states_fail_the_restore(
    es: Elasticsearch, global_snapshot: str, feature_states: list[str], message: str
) -> None:
    with pytest.raises(ApiError) as refused:
        es.snapshot.restore(
            repository=global_snapshot,
            snapshot="global",
            indices="-*",
            feature_states=feature_states,
        )
    assert refused.value.meta.status == 500
    assert error_type(refused.value) == "snapshot_restore_exception"
    assert reason(refused.value).startswith(f"[{global_snapshot}:global/")
    assert reason(refused.value).endswith(message)
