"""What an Elasticsearch restore asks the cluster for, decided before any request: data
streams by name (never their backing indices), system indices left to their feature
states, copies without replicas or lifecycle, index lists in bounded request lines, and
unsafe calls never sent twice blindly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError
from elasticsearch import ConnectionError as EsConnectionError

from backupctl.catalog.manifest import Manifest, parse_manifest
from backupctl.drivers.elasticsearch.client import AnswerLost, call, chunks
from backupctl.drivers.elasticsearch.indices import copies_under, data_stream_of, index_map
from backupctl.drivers.elasticsearch.restore_steps import restore_request
from backupctl.drivers.elasticsearch.verification import expected_docs
from backupctl.errors import UsageError
from backupctl.policy.elasticsearch import ElasticsearchPolicy, ElasticsearchRestore
from backupctl.retry import NO_WAIT

DAY = "2026.11.22"


def _manifest(**details: Any) -> Manifest:
    start = datetime(2026, 11, 22, 2, 30, tzinfo=UTC)
    manifest = Manifest(
        backup_id="20261122T023000Z-a1b2c3",
        policy="search",
        driver="elasticsearch",
        kind="snapshot",
        started_at=start,
        finished_at=start + timedelta(seconds=5),
        artifacts=[],
        details={"snapshot": "search-1", "repository": "backups", **details},
    )
    return parse_manifest(manifest.to_json().encode(), "test")


def _entry(docs: int) -> dict[str, Any]:
    return {"docs": docs, "bytes": 10 * docs, "docs_after": docs}


#: a snapshot of `*` with include_global_state: an index, two data streams (one's name a
#: prefix of the other's) and the security feature's system index
SNAPSHOT = _manifest(
    indices={
        "orders": _entry(5),
        f".ds-logs-{DAY}-000001": _entry(3),
        f".ds-logs-{DAY}-000002": _entry(4),
        f".ds-logs-app-{DAY}-000001": _entry(7),
        ".security-7": _entry(2),
    },
    data_streams=["logs", "logs-app"],
    feature_states=[{"feature_name": "security", "indices": [".security-7"]}],
    counted_with="count",
)


def _policy(**restore: Any) -> ElasticsearchPolicy:
    return ElasticsearchPolicy.model_validate(
        {
            "version": 1,
            "name": "search",
            "driver": "elasticsearch",
            "connection": {"url": "http://127.0.0.1:9200"},
            "snapshot_repository": {"name": "backups", "settings": {"location": "/x"}},
            "repository": "file:///tmp/backupctl-test-repo",
            "restore": restore,
        }
    )


def test_backing_indices_belong_to_the_longest_matching_data_stream() -> None:
    streams = ["logs", "logs-app"]
    assert data_stream_of(f".ds-logs-app-{DAY}-000001", streams) == "logs-app"
    assert data_stream_of(f".ds-logs-{DAY}-000002", streams) == "logs"
    assert data_stream_of("logs-2026", streams) is None  # a plain index named alike
    assert data_stream_of(f".ds-metrics-{DAY}-000001", streams) is None


def test_a_restore_names_data_streams_and_leaves_system_indices_to_feature_states() -> None:
    indices = index_map(SNAPSHOT, ElasticsearchRestore(), None)
    assert indices.sources == ["logs", "logs-app", "orders"]  # never .ds-* nor .security-7
    assert indices.data_streams == {
        "logs": [f".ds-logs-{DAY}-000001", f".ds-logs-{DAY}-000002"],
        "logs-app": [f".ds-logs-app-{DAY}-000001"],
    }
    assert indices.system == (".security-7",)
    request = restore_request(_policy(), indices)
    assert request["indices"] == ["logs", "logs-app", "orders"]
    assert request["feature_states"] == ["none"]  # system indices stay as they are
    assert request["include_global_state"] is False and request["include_aliases"] is True
    assert "index_settings" not in request  # a real restore keeps the snapshot's settings

    asked = restore_request(_policy(feature_states=["security"]), indices)
    assert asked["feature_states"] == ["security"]
    no_aliases = restore_request(_policy(include_aliases=False), indices)
    assert no_aliases["include_aliases"] is False


def test_indices_patterns_match_data_stream_names() -> None:
    indices = index_map(SNAPSHOT, ElasticsearchRestore(), ["logs-*"])
    assert indices.sources == ["logs-app"] and indices.plain == []
    with pytest.raises(UsageError, match="matches none"):
        index_map(SNAPSHOT, ElasticsearchRestore(), [".security*"])


def test_copies_get_no_replicas_no_lifecycle_and_no_feature_state() -> None:
    options = copies_under("drill-x-", ElasticsearchRestore())
    indices = index_map(SNAPSHOT, options, None, copies=True)
    assert indices.targets["logs"] == "drill-x-logs" and indices.renamed
    request = restore_request(_policy(feature_states=["security"]), indices)
    assert request["index_settings"] == {"index.number_of_replicas": 0}
    assert request["ignore_index_settings"] == [
        "index.lifecycle.name",
        "index.lifecycle.rollover_alias",
    ]
    assert request["feature_states"] == ["none"]  # a copy never replaces live system data
    assert request["include_aliases"] is False


def test_a_data_stream_is_expected_to_hold_its_backing_indices_documents() -> None:
    from backupctl.drivers.elasticsearch.details import SnapshotDetails

    details = SnapshotDetails.of(SNAPSHOT)
    indices = index_map(SNAPSHOT, ElasticsearchRestore(), None)
    assert expected_docs(details, indices, "logs") == (7, 7)
    assert expected_docs(details, indices, "orders") == (5, 5)


def test_index_lists_are_split_to_fit_a_request_line() -> None:
    names = [f"orders-{'x' * 60}-{n:04d}" for n in range(150)]
    groups = list(chunks(names))
    assert [name for group in groups for name in group] == names
    assert len(groups) > 1
    for group in groups:
        assert len(quote(",".join(group), safe="")) <= 3000  # with room for the rest of 4 KB


def _api_error(status: int, error_type: str) -> ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "x", 9200))
    return ApiError(error_type, meta, {"error": {"type": error_type, "reason": "r"}})


def test_an_unsafe_call_whose_answer_is_lost_is_not_sent_again() -> None:
    sent: list[int] = []

    def lost() -> None:
        sent.append(1)
        raise EsConnectionError("connection reset")

    with pytest.raises(AnswerLost):
        call("start snapshot", lost, safe=False, retry=NO_WAIT)
    assert len(sent) == 1  # the caller looks at the cluster before anything else
    sent.clear()
    with pytest.raises(AnswerLost):
        call("start snapshot", lambda: (sent.append(1), _raise(_api_error(504, "x"))), safe=False)
    assert len(sent) == 1
    # a read after the same failure is simply retried
    sent.clear()
    with pytest.raises(Exception, match="cannot reach"):
        call("list indices", lost, retry=NO_WAIT)
    assert len(sent) > 1


def test_an_unsafe_call_refused_before_any_work_is_retried() -> None:
    answers = [_api_error(429, "es_rejected_execution_exception"), None]

    def busy_then_ok() -> str:
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        return "ok"

    assert call("restore snapshot", busy_then_ok, safe=False, retry=NO_WAIT) == "ok"


def _raise(exc: Exception) -> None:
    raise exc
