"""Jobs from policies, when they are due, and the state file that remembers runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backupctl.drivers.registry import driver_class
from backupctl.errors import PolicyError
from backupctl.layout import StateLayout
from backupctl.policy.common import PolicyBase
from backupctl.policy.loader import load_policies
from backupctl.policy.registry import POLICY_MODELS
from backupctl.scheduling.due import claim_job, due_slot, next_due, register_jobs
from backupctl.scheduling.plan import plan_jobs
from backupctl.scheduling.state import JobState, RunningMark, ScheduleState, ScheduleStateError
from tests.support.cli import run_backupctl


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _write(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(f"version: 1\nname: {name}\n{body}")
    return path


def _model(directory: Path, name: str, schedule: str) -> Path:
    return _write(
        directory,
        name,
        f"driver: model\npath: /srv/models/{name}\nrepository: file:///tmp/r\n"
        f"schedule: {schedule}\n",
    )


def _policies(tmp_path: Path) -> list[PolicyBase]:
    _model(tmp_path, "llm", '{check: "*/15 * * * *", timezone: UTC}')
    _write(
        tmp_path,
        "db",
        "driver: mariadb\nconnection: {host: 127.0.0.1}\ndatadir: /var/lib/mysql\n"
        "repository: file:///tmp/r\n"
        'schedule: {full: "0 2 * * *", binlog: continuous, timezone: Europe/Berlin}\n',
    )
    _write(tmp_path, "etc", "driver: config-git\npaths: [/etc/hosts]\nrepository: file:///tmp/g\n")
    return load_policies(tmp_path)


def test_schedule_keys_map_to_kinds_the_driver_makes() -> None:
    for name, model in POLICY_MODELS.items():
        schedule_model = model.model_fields["schedule"].annotation
        assert isinstance(schedule_model, type)
        kinds = schedule_model.backup_kinds
        assert kinds, f"{name}: no schedule keys"
        assert set(kinds.values()) <= set(driver_class(name).kinds), name
        assert set(kinds) == set(schedule_model.model_fields) - {"timezone"}, name


def test_one_job_per_schedule_key_and_continuous_noted(tmp_path: Path) -> None:
    plan = plan_jobs(_policies(tmp_path))
    quarterly = "0 0 1 1,4,7,10 *"
    assert [(j.id, j.kind, j.cron, j.timezone) for j in plan.jobs] == [
        ("db:full", "full", "0 2 * * *", "Europe/Berlin"),
        ("db:drill", "drill", quarterly, "Europe/Berlin"),  # drills: quarterly by default
        ("etc:drill", "drill", quarterly, None),
        ("llm:check", "version", "*/15 * * * *", "UTC"),
        ("llm:drill", "drill", quarterly, "UTC"),
    ]
    assert plan.jobs[0].command == ["backup", "db", "--type", "full"]
    assert plan.jobs[1].command == ["drill", "run", "db"]
    assert plan.jobs[1].title == "recovery drill of policy db"
    assert [(c.policy, c.key) for c in plan.continuous] == [("db", "binlog")]
    assert "backupctl-binlog-follow@db.service" in plan.continuous[0].note
    berlin = plan.jobs[0].next_slot(_at("2026-07-01T12:00:00"))
    assert berlin == _at("2026-07-02T00:00:00")  # 02:00 CEST


def test_drill_schedules_are_set_per_policy_or_turned_off(tmp_path: Path) -> None:
    _model(tmp_path, "monthly", '{check: "*/15 * * * *"}\ndrill: {schedule: "0 3 1 * *"}')
    _model(tmp_path, "never", '{check: "*/15 * * * *"}\ndrill: {schedule: null}')
    jobs = {j.id: j for j in plan_jobs(load_policies(tmp_path)).jobs}
    assert set(jobs) == {"monthly:check", "monthly:drill", "never:check"}
    assert jobs["monthly:drill"].cron == "0 3 1 * *"
    assert jobs["monthly:drill"].next_slot(_at("2026-11-22T00:00:00")) is not None
    _model(tmp_path / "bad", "llm", '{check: "*/5 * * * *"}\ndrill: {select: newest}')
    with pytest.raises(PolicyError, match=r"drill\.select"):
        load_policies(tmp_path / "bad")


def test_prune_after_backup_defaults_on(tmp_path: Path) -> None:
    policies = {p.name: p for p in _policies(tmp_path)}
    assert policies["llm"].prune_after_backup is True
    _model(tmp_path / "off", "llm", '{check: "*/5 * * * *"}\nprune_after_backup: false')
    assert load_policies(tmp_path / "off")[0].prune_after_backup is False
    _model(tmp_path / "bad", "llm", '{check: "*/5 * * * *"}\nprune_after_backup: sometimes')
    with pytest.raises(PolicyError, match="prune_after_backup"):
        load_policies(tmp_path / "bad")


@pytest.mark.parametrize(
    ("schedule", "field", "message"),
    [
        ('{check: "*/15 * * * *", timezone: Mars/Olympus}', "schedule.timezone", "Mars/Olympus"),
        ('{check: "0 0 L * *"}', "schedule.check", "'L' (last day"),
        ('{check: "0 25 * * *"}', "schedule.check", "hour 25 is out of range 0-23"),
        ('{check: "fortnightly"}', "schedule.check", "expected a five-field"),
        ("{check: continuous}", "schedule.check", "expected a five-field"),
    ],
)
def test_invalid_schedules_are_policy_errors_with_file_and_line(
    tmp_path: Path, schedule: str, field: str, message: str
) -> None:
    path = _model(tmp_path, "llm", schedule)
    result = run_backupctl(["--policies", str(path), "run-due"])
    assert result.code == 2, result.output
    assert f"{path}:6 {field}:" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_due_once_per_gap_and_new_jobs_wait(tmp_path: Path) -> None:
    job = plan_jobs(_policies(tmp_path)).job("llm:check")
    assert job is not None
    now = _at("2026-01-01T00:20:00")
    assert due_slot(None, job, now) is None  # never seen: waits for its first slot
    assert due_slot(None, job, now, catch_up=True) == now
    record = JobState(first_seen=now, anchor=now)
    assert due_slot(record, job, _at("2026-01-01T00:29:59")) is None
    assert due_slot(record, job, _at("2026-01-01T00:30:00")) == _at("2026-01-01T00:30:00")
    # three days down: due once, for the first slot missed
    assert due_slot(record, job, _at("2026-01-04T00:00:00")) == _at("2026-01-01T00:30:00")
    assert next_due(record, job, now) == _at("2026-01-01T00:30:00")


def test_claims_are_exclusive_and_a_running_job_is_skipped(tmp_path: Path) -> None:
    job = plan_jobs(_policies(tmp_path / "p")).job("llm:check")
    assert job is not None
    state = ScheduleState(StateLayout(tmp_path / "state"))
    register_jobs(state, [job], _at("2026-01-01T00:00:00"))
    later = _at("2026-01-01T01:00:00")
    claim = claim_job(state, job, later)
    assert claim is not None and claim.busy is None
    assert claim.due_at == _at("2026-01-01T00:15:00")
    assert claim_job(state, job, later) is None  # the slot is taken
    record = state.read()["llm:check"]
    assert record.running is not None and record.running.pid == os.getpid()
    # the next slot comes while this run still goes: skipped, not started twice
    busy = claim_job(state, job, later + timedelta(minutes=15))
    assert busy is not None and busy.busy is not None and "still running" in busy.busy
    assert state.read()["llm:check"].last_skip_reason == busy.busy


def test_a_killed_runs_mark_does_not_block(tmp_path: Path) -> None:
    job = plan_jobs(_policies(tmp_path / "p")).job("llm:check")
    assert job is not None
    state = ScheduleState(StateLayout(tmp_path / "state"))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    start = _at("2026-01-01T00:00:00")
    mark = RunningMark(int(dead.stdout), socket.gethostname(), start)
    with state.update() as jobs:
        jobs[job.id] = JobState(start, start, running=mark)
    claim = claim_job(state, job, _at("2026-01-01T00:15:00"))
    assert claim is not None and claim.busy is None


def test_state_file_round_trips_and_a_corrupt_one_is_named(tmp_path: Path) -> None:
    state = ScheduleState(StateLayout(tmp_path))
    now = _at("2026-01-01T00:00:00")
    with state.update() as jobs:
        jobs["a:b"] = JobState(now, now, last_outcome="ok", last_success=now)
    assert state.read()["a:b"].last_success == now
    data = json.loads(state.path.read_text())
    assert data["version"] == 1 and data["jobs"]["a:b"]["last_outcome"] == "ok"
    assert not list(state.directory.glob(".state.*"))  # no temporary file left
    state.path.write_text("{not json")
    with pytest.raises(ScheduleStateError, match=r"state\.json is not a schedule state file"):
        state.read()
