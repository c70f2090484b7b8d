"""Operations visibility through the CLI: the metrics a real backup leaves (textfile,
Pushgateway, the scheduler's /metrics), ``status`` as the daily check, one JSON
summary line per run, and webhooks told about failures without changing them."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli import popen_backupctl
from tests.support.elasticsearch import EsCluster
from tests.support.mariadb import MariaDBServer
from tests.support.model_policies import model_policy, write_model
from tests.support.net import free_port
from tests.support.policies import mariadb_policy, search_policy
from tests.support.webhook import WebhookReceiver

#: the CLI's clock a minute ahead: what status says once the objectives' time has passed
LATER = {"BACKUPCTL_CLOCK_OFFSET": "60"}

EVERY_15 = {"check": "*/15 * * * *", "timezone": "UTC"}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _get(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _summaries(stderr: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "run summary"]


def test_a_real_backup_leaves_metrics_with_real_values(
    mariadb_server: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    server = mariadb_server
    policy = mariadb_policy(tmp_path / "policies", server, f"file://{tmp_path / 'repo'}")
    textfile = tmp_path / "textfile" / "backupctl.prom"
    textfile.parent.mkdir()
    began = time.time()
    result = backupctl(
        "--metrics-textfile", str(textfile), "backup", "shop", "--json", policies=policy
    )
    assert result.code == 0, result.output
    manifest = json.loads(result.stdout)
    assert [p.name for p in textfile.parent.iterdir()] == ["backupctl.prom"]  # no temporaries
    assert textfile.stat().st_mode & 0o777 == 0o644  # node-exporter reads it as its own user

    samples = _samples(textfile.read_text())
    full = {"policy": "shop", "kind": "full"}
    assert began <= _get(samples, "backupctl_last_success_timestamp_seconds", **full) <= time.time()
    assert _get(samples, "backupctl_last_backup_size_bytes", **full) == manifest["stored_bytes"]
    assert manifest["stored_bytes"] > 100_000
    assert _get(samples, "backupctl_runs_total", **full, outcome="success") == 1
    assert _get(samples, "backupctl_runs_total", **full, outcome="failure") == 0
    assert _get(samples, "backupctl_consecutive_failures", **full) == 0
    assert 0 < _get(samples, "backupctl_last_run_duration_seconds", **full) < time.time() - began
    finished = datetime.fromisoformat(manifest["finished_at"]).timestamp()
    assert _get(samples, "backupctl_recoverability_last_timestamp_seconds", policy="shop") == (
        pytest.approx(finished, abs=1)
    )
    assert _get(samples, "backupctl_rpo_objective_seconds", policy="shop") == 86400
    stored = sum(a["stored_bytes"] for a in manifest["artifacts"])
    assert _get(samples, "backupctl_repository_bytes", policy="shop") == stored

    summary = _summaries(result.stderr)
    assert len(summary) == 1
    assert {k: summary[0][k] for k in ("policy", "kind", "outcome", "backup_id", "bytes")} == {
        "policy": "shop",
        "kind": "full",
        "outcome": "success",
        "backup_id": manifest["backup_id"],
        "bytes": manifest["stored_bytes"],
    }
    assert summary[0]["duration_seconds"] > 0

    # the same metrics on stdout, and pushed to a Pushgateway (PUT of the text format)
    printed = backupctl("metrics", policies=policy)
    assert printed.code == 0, printed.output
    assert _get(_samples(printed.stdout), "backupctl_backups", **full) == 1
    with WebhookReceiver() as gateway:
        pushed = backupctl("metrics", "--push", gateway.url(), policies=policy)
        assert pushed.code == 0, pushed.output
        request = gateway.wait_for(1)[0]
    assert request.method == "PUT" and request.path == "/metrics/job/backupctl"
    assert _get(_samples(request.body.decode()), "backupctl_backups", **full) == 1


def _llm(tmp_path: Path, **extra: Any) -> Path:
    model = write_model(tmp_path / "models" / "llm", "v1")
    return model_policy(tmp_path / "policies", "llm", model, tmp_path / "repo", EVERY_15, **extra)


def test_status_reflects_a_failure_a_stale_policy_and_a_passing_drill(
    tmp_path: Path, backupctl: Any
) -> None:
    policy = _llm(tmp_path, objectives={"rpo": "1h", "rto": "1h"})
    assert backupctl("backup", "llm", policies=policy).code == 0
    drill = backupctl("drill", "run", "llm", policies=policy)
    assert drill.code == 0, drill.output

    fine = backupctl("status", "--json", policies=policy)
    assert fine.code == 0, fine.output
    [row] = json.loads(fine.stdout)
    assert row["verdict"] == "ok" and row["problems"] == []
    assert row["last_drill"]["passed"] is True and row["last_drill"]["rto_seconds"] > 0
    assert row["recovery_point_age_seconds"] < 60
    assert row["next_run"]["job"] == "llm:check"
    assert row["drill_next_due"] is not None
    assert row["runs"]["drill"]["counts"] == {"success": 1}

    (tmp_path / "models" / "llm" / "VERSION").unlink()  # the next check cannot read a version
    failed = backupctl("backup", "llm", policies=policy)
    assert failed.code == 1
    [row] = json.loads(backupctl("status", "--json", policies=policy).stdout)
    assert row["verdict"] == "warning"
    assert row["last_failure_kind"] == "version"
    assert "VERSION" in row["last_failure_reason"]
    assert row["runs"]["version"]["consecutive_failures"] == 1

    stale = _llm(tmp_path / "stale", objectives={"rpo": "1s"})
    assert backupctl("backup", "llm", policies=stale).code == 0
    result = backupctl("status", policies=stale, env=LATER)  # a minute on
    assert result.code == 1, result.output
    assert "BREACH" in result.stdout and "over the RPO objective of 1s" in result.stdout
    assert "\x1b[" not in result.stdout  # no colour when not on a terminal
    assert "error: objectives breached: llm" in result.stderr
    assert "Traceback" not in result.output


def test_unchanged_checks_keep_the_recovery_point_fresh(tmp_path: Path, backupctl: Any) -> None:
    policy = _llm(tmp_path, objectives={"rpo": "30s"})
    assert backupctl("backup", "llm", policies=policy).code == 0
    assert backupctl("status", policies=policy, env=LATER).code == 1  # a minute: breached
    unchanged = backupctl("backup", "llm", policies=policy, env=LATER)
    assert unchanged.code == 0 and "nothing stored" in unchanged.stdout
    [row] = json.loads(backupctl("status", "--json", policies=policy, env=LATER).stdout)
    assert row["verdict"] == "ok", row["problems"]  # the served model is still the stored one
    assert row["runs"]["version"]["counts"] == {"success": 1, "unchanged": 1}


def test_a_failure_reaches_the_webhook_and_a_dead_one_changes_nothing(
    tmp_path: Path, backupctl: Any
) -> None:
    with WebhookReceiver() as hook:
        targets = [
            {"url": f"http://127.0.0.1:{free_port()}/dead", "attempts": 2, "timeout": "1s"},
            {"url": hook.url("/events")},
            {"url": hook.url("/alerts"), "format": "alertmanager", "when": ["failure", "success"]},
        ]
        policy = _llm(tmp_path, notify=targets)
        (tmp_path / "models" / "llm" / "VERSION").unlink()
        quiet = _llm(tmp_path / "quiet")  # the same failure, nobody told
        (tmp_path / "quiet" / "models" / "llm" / "VERSION").unlink()
        expected = backupctl("backup", "llm", policies=quiet)

        result = backupctl("backup", "llm", policies=policy)
        assert result.code == expected.code == 1
        assert result.stdout == expected.stdout
        same_error = expected.stderr.splitlines()[-1].replace(f"{tmp_path}/quiet", str(tmp_path))
        assert result.stderr.splitlines()[-1] == same_error  # error: …
        received = {r.path: r for r in hook.wait_for(2)}

    event = received["/events"].json
    assert event["event"] == "run.failure" and event["policy"] == "llm"
    assert event["kind"] == "version" and "VERSION" in event["error"]
    [alert] = received["/alerts"].json
    assert alert["labels"]["alertname"] == "BackupctlRunFailed"
    assert alert["labels"]["policy"] == "llm"
    assert alert["endsAt"] > alert["startsAt"]  # firing until a success resolves it
    failed = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
    assert any(x["event"] == "notification failed" and "/dead" in x["url"] for x in failed)


def test_the_scheduler_serves_metrics(tmp_path: Path, backupctl: Any) -> None:
    policy = _llm(tmp_path)
    assert backupctl("backup", "llm", policies=policy).code == 0
    port = free_port()
    head = ["--state-dir", str(backupctl.state_dir), "--policies", str(policy)]
    daemon = popen_backupctl([*head, "scheduler", "--metrics-port", str(port)])
    try:
        text = ""
        deadline = time.time() + 20
        while time.time() < deadline and "backupctl_backups" not in text:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                time.sleep(0.2)
        samples = _samples(text)
        assert _get(samples, "backupctl_backups", policy="llm", kind="version") == 1
        assert _get(samples, "backupctl_drill_next_due_timestamp_seconds", policy="llm") > 0
    finally:
        daemon.terminate()
        daemon.communicate(timeout=30)


def _window_ends(listed: str) -> dict[str, str]:
    """``POLICY: recoverable from A to B`` lines of ``backupctl list``: B by policy."""
    ends = {}
    for line in listed.splitlines():
        name, sep, rest = line.partition(": recoverable from ")
        if sep:
            ends[name] = rest.split(" to ", 1)[1].split(" (", 1)[0]
    return ends


def _shown(moment: float | str) -> str:
    """A time as ``list`` shows it (whole seconds, UTC)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment).timestamp()
    return datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_list_status_and_metrics_agree_on_what_can_be_restored(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    """The newest snapshot FAILED and the model's newest run found nothing changed: the
    window ends at the last good snapshot and at the unchanged check, in `list`, `status`
    and the metrics alike (one catalog query answers all three)."""
    fake = es_cluster.require_fake("needs a snapshot that ends FAILED")
    client = es_cluster.client()
    index = es_cluster.name("orders") + "-1"
    client.indices.create(index=index, settings={"number_of_replicas": 0})
    client.index(index=index, document={"n": 1}, refresh=True)
    llm = _llm(tmp_path, objectives={"rpo": "1h"})
    search_policy(llm.parent, es_cluster, tmp_path / "repo")
    policies = llm.parent
    assert backupctl("backup", "search", policies=policies).code == 0
    assert backupctl("backup", "llm", policies=policies).code == 0
    fake.fail_next_snapshots(state="FAILED")
    later = {"BACKUPCTL_CLOCK_OFFSET": "120"}  # two minutes on: a later second, no waiting
    assert backupctl("backup", "search", policies=policies, env=later).code == 1
    unchanged = backupctl("backup", "llm", policies=policies, env=later)
    assert unchanged.code == 0 and "nothing stored" in unchanged.stdout

    backups = json.loads(backupctl("list", "--json", policies=policies).stdout)
    snapshots = [b for b in backups if b["policy"] == "search"]
    assert [b["failure"] is None for b in snapshots] == [True, False]  # FAILED is newest
    good_snapshot = snapshots[0]["finished_at"]
    statuses = {
        row["policy"]: row
        for row in json.loads(backupctl("status", "--json", policies=policies, env=later).stdout)
    }
    samples = _samples(backupctl("metrics", policies=policies, env=later).stdout)
    listed = _window_ends(backupctl("list", policies=policies).stdout)
    unchanged_at = statuses["llm"]["runs"]["version"]["last_unchanged"]

    assert listed["search"] == _shown(good_snapshot)  # not the FAILED one
    assert listed["llm"] == _shown(unchanged_at)  # the check: the version was still current
    for name in ("search", "llm"):
        assert _shown(statuses[name]["recoverable_to"]) == listed[name], name
        last = _get(samples, "backupctl_recoverability_last_timestamp_seconds", policy=name)
        assert _shown(last) == listed[name], name
    assert statuses["search"]["backups"] == {"snapshot": 1}
    assert _get(samples, "backupctl_backups", policy="search", kind="snapshot") == 1
