"""``backupctl run-due`` as cron runs it, with the clock controlled through BACKUPCTL_NOW:
due jobs run once, a gap is caught up once, a running job is skipped, a failure is
reported after the other jobs ran."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backupctl.layout import StateLayout
from backupctl.locks import policy_lock
from tests.support.cli import CliResult
from tests.support.model_policies import model_policy, write_model

EVERY_15 = {"check": "*/15 * * * *", "timezone": "UTC"}
HOURLY = {"check": "0 * * * *", "timezone": "UTC"}


@pytest.fixture
def setup(tmp_path: Path, backupctl: Any) -> Callable[..., Any]:
    """Two model policies (``a`` every 15 minutes, ``b`` hourly) and a run-due caller."""
    policies, repo = tmp_path / "policies", tmp_path / "repo"
    model_policy(policies, "a", write_model(tmp_path / "models" / "a", "v1"), repo, EVERY_15)
    model_policy(policies, "b", write_model(tmp_path / "models" / "b", "v1"), repo, HOURLY)

    def run_due(now: str, *args: str) -> CliResult:
        return backupctl("run-due", *args, policies=policies, env={"BACKUPCTL_NOW": now})

    run_due.policies = policies  # type: ignore[attr-defined]
    run_due.state_dir = backupctl.state_dir  # type: ignore[attr-defined]
    run_due.tmp = tmp_path  # type: ignore[attr-defined]
    return run_due


def _ran(result: CliResult) -> dict[str, dict[str, Any]]:
    assert result.code in (0, 1), result.output
    return {r["job"]: r for r in json.loads(result.stdout)["ran"]}


def _state(state_dir: Path) -> dict[str, Any]:
    jobs: dict[str, Any] = json.loads((state_dir / "schedule" / "state.json").read_text())["jobs"]
    return jobs


def test_due_jobs_run_once_and_new_jobs_wait_for_their_first_slot(setup: Any) -> None:
    first = setup("2026-01-01T00:05:00+00:00")
    assert first.code == 0 and first.stdout == "", first.output  # nothing printed for cron
    assert _ran(setup("2026-01-01T00:14:59+00:00", "--json")) == {}
    ran = _ran(setup("2026-01-01T00:15:00+00:00", "--json"))
    assert list(ran) == ["a:check"]
    assert ran["a:check"]["outcome"] == "ok" and ran["a:check"]["backup_id"]
    assert ran["a:check"]["due_at"] == "2026-01-01T00:15:00+00:00"
    assert _ran(setup("2026-01-01T00:15:30+00:00", "--json")) == {}  # once per slot
    hour = setup("2026-01-01T01:00:10+00:00")
    assert hour.code == 0
    assert "a:check (version): unchanged: version v1 is already stored" in hour.stdout
    assert "b:check (version): ok: backup " in hour.stdout
    state = _state(setup.state_dir)
    assert state["b:check"]["first_seen"] == "2026-01-01T00:05:00+00:00"
    assert state["b:check"]["last_outcome"] == "ok"
    assert state["a:check"]["last_outcome"] == "unchanged"
    assert state["a:check"]["running"] is None


def test_a_gap_is_caught_up_once_not_once_per_missed_slot(setup: Any) -> None:
    setup("2026-01-01T00:00:30+00:00")
    setup("2026-01-01T00:15:00+00:00")
    # the host was down three days: 288 slots of a, 72 of b were missed
    ran = _ran(setup("2026-01-04T09:07:00+00:00", "--json"))
    assert sorted(ran) == ["a:check", "b:check"]
    assert ran["a:check"]["due_at"] == "2026-01-01T00:30:00+00:00"  # the first slot missed
    assert ran["b:check"]["due_at"] == "2026-01-01T01:00:00+00:00"
    assert _ran(setup("2026-01-04T09:08:00+00:00", "--json")) == {}
    report = json.loads(setup("2026-01-04T09:08:00+00:00", "--json").stdout)
    assert {w["job"]: w["next_due"] for w in report["waiting"]} == {
        "a:check": "2026-01-04T09:15:00+00:00",
        "b:check": "2026-01-04T10:00:00+00:00",
        "a:drill": "2026-04-01T00:00:00+00:00",  # quarterly by default
        "b:drill": "2026-04-01T00:00:00+00:00",
    }


def test_catch_up_runs_new_jobs_at_once(setup: Any) -> None:
    ran = _ran(setup("2026-01-01T00:05:00+00:00", "--catch-up", "--json"))
    assert list(ran) == ["a:check", "a:drill", "b:check", "b:drill"]  # each backup, then its drill
    assert {r["outcome"] for r in ran.values()} == {"ok"}
    assert ran["a:drill"]["backup_id"] == ran["a:check"]["backup_id"]
    assert "passed; report " in ran["a:drill"]["detail"]


def test_a_due_drill_runs_and_its_failure_is_reported(setup: Any) -> None:
    first = _ran(setup("2026-03-31T23:50:00+00:00", "--catch-up", "--json"))
    assert {r["outcome"] for r in first.values()} == {"ok"}
    for blob in (setup.tmp / "repo" / "b" / "blobs").rglob("*.zst"):
        blob.write_bytes(b"damaged")  # b's only version no longer restores

    result = setup("2026-04-01T00:00:05+00:00", "--json")
    assert result.code == 1, result.output
    ran = _ran(result)
    assert ran["a:drill"]["outcome"] == "ok"
    assert ran["a:drill"]["due_at"] == "2026-04-01T00:00:00+00:00"
    assert ran["b:drill"]["outcome"] == "failed"
    assert "step 'materialise' failed" in ran["b:drill"]["detail"]
    assert "b:drill" in result.stderr and "Traceback" not in result.output
    state = _state(setup.state_dir)
    assert state["b:drill"]["last_outcome"] == "failed"
    reports = [
        json.loads(p.read_text()) for p in (setup.tmp / "repo" / "b").glob("drills/*/*.json")
    ]
    assert sorted(r["passed"] for r in reports) == [False, True]  # the first drill, then this


def test_a_job_still_running_is_skipped_and_the_others_run(setup: Any) -> None:
    setup("2026-01-01T00:00:30+00:00")
    with policy_lock(
        StateLayout(setup.state_dir), "a", purpose="backup"
    ):  # a's previous run goes on
        result = setup("2026-01-01T01:00:00+00:00")
    assert result.code == 0, result.output
    assert "a:check (version): skipped: still running: another run of policy 'a'" in result.stdout
    assert "b:check (version): ok" in result.stdout
    state = _state(setup.state_dir)
    assert "still running" in state["a:check"]["last_skip_reason"]
    assert state["a:check"]["last_outcome"] is None  # a skip is not a run
    # that slot is over; the next one runs
    assert _ran(setup("2026-01-01T01:05:00+00:00", "--json")) == {}
    assert _ran(setup("2026-01-01T01:15:00+00:00", "--json"))["a:check"]["outcome"] == "ok"


def test_a_failed_job_is_reported_after_the_others_ran(setup: Any) -> None:
    model_policy(
        setup.policies, "broken", setup.tmp / "models" / "missing", setup.tmp / "repo", HOURLY
    )
    setup("2026-01-01T00:00:30+00:00")
    result = setup("2026-01-01T01:00:00+00:00", "--json")
    assert result.code == 1, result.output
    ran = _ran(result)
    assert ran["broken:check"]["outcome"] == "failed"
    assert "model directory" in ran["broken:check"]["detail"]
    assert ran["a:check"]["outcome"] == ran["b:check"]["outcome"] == "ok"
    assert "error: 1 scheduled job(s) failed: broken:check (model directory" in result.stderr
    assert "Traceback" not in result.output
    assert _state(setup.state_dir)["broken:check"]["last_outcome"] == "failed"


def test_prune_runs_after_a_successful_backup_unless_turned_off(
    tmp_path: Path, backupctl: Any
) -> None:
    policies, repo = tmp_path / "policies", tmp_path / "repo"
    kept, unpruned = tmp_path / "models" / "kept", tmp_path / "models" / "all"
    retention = {"keep_versions": 1}
    model_policy(policies, "kept", write_model(kept, "v1"), repo, HOURLY, retention=retention)
    model_policy(
        policies,
        "all",
        write_model(unpruned, "v1"),
        repo,
        HOURLY,
        retention=retention,
        prune_after_backup=False,
    )

    def run_due(now: str) -> dict[str, dict[str, Any]]:
        return _ran(
            backupctl(
                "run-due", "--json", "--catch-up", policies=policies, env={"BACKUPCTL_NOW": now}
            )
        )

    run_due("2026-01-01T00:00:30+00:00")
    write_model(kept, "v2")
    write_model(unpruned, "v2")
    ran = run_due("2026-01-01T01:00:00+00:00")
    assert ran["kept:check"]["pruned"] == 1
    assert ran["all:check"]["pruned"] == 0
    listed = json.loads(backupctl("list", "--json", policies=policies).stdout)
    assert Counter(backup["policy"] for backup in listed) == {"kept": 1, "all": 2}


def test_json_notes_continuous_schedules(tmp_path: Path, backupctl: Any) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "db.yaml").write_text(
        "version: 1\nname: db\ndriver: mariadb\nconnection: {host: 127.0.0.1}\n"
        "datadir: /var/lib/mysql\nrepository: file:///nonexistent\n"
        'schedule: {full: "0 2 * * *", binlog: continuous}\n'
    )
    result = backupctl("run-due", "--json", policies=policies)
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ran"] == [] and report["waiting"][0]["job"] == "db:full"
    assert "binlog follow db" in report["continuous"][0]
