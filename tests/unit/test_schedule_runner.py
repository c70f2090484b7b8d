"""JobRunner outcomes (with a stand-in backup function) and the APScheduler daemon:
jobs fire at their times, overdue jobs run once at start, reload replaces jobs, stop
waits for a running backup."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from backupctl.catalog.manifest import Manifest
from backupctl.cron.triggers import seconds_trigger_factory
from backupctl.drills.report import DrillReport
from backupctl.errors import (
    BackupFailed,
    LockHeldError,
    NothingChanged,
    PolicyError,
    RepositoryError,
)
from backupctl.layout import StateLayout
from backupctl.operations import prune as prune_module
from backupctl.operations.context import Context
from backupctl.operations.daemon import SchedulerDaemon
from backupctl.operations.jobs import JobRunner
from backupctl.operations.run_due import ScheduledJobsFailed, run_due
from backupctl.policy.common import PolicyBase
from backupctl.policy.loader import load_policies
from backupctl.scheduling.plan import ScheduledJob, plan_jobs
from backupctl.scheduling.state import JobState
from tests.support.model_policies import model_policy

NOW = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
EARLIER = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)

Backup = Callable[[Context, PolicyBase, str], Manifest]


def _policies(tmp_path: Path, *names: str, **extra: Any) -> list[PolicyBase]:
    """Model policies run every minute; prune is off unless ``extra`` turns it on, and so
    is the quarterly drill."""
    extra = {"prune_after_backup": False, "drill": {"schedule": None}, **extra}
    directory = tmp_path / "policies"
    for name in names:
        schedule = {"check": "* * * * *", "timezone": "UTC"}
        model_policy(directory, name, tmp_path / name, tmp_path / "repo", schedule, **extra)
    return load_policies(directory)


def _manifest(backup_id: str = "20260101T010000Z-abcdef") -> Manifest:
    return cast(Manifest, SimpleNamespace(backup_id=backup_id))


def _runner(
    tmp_path: Path, backup: Backup, clock: Callable[[], datetime] = lambda: NOW
) -> JobRunner:
    return JobRunner(Context(StateLayout(tmp_path / "state")), clock=clock, backup=backup)


def _prime(runner: JobRunner, jobs: list[ScheduledJob]) -> None:
    with runner.state.update() as records:
        for job in jobs:
            records[job.id] = JobState(EARLIER, EARLIER)


def _raising(exc: BaseException) -> Backup:
    def backup(*args: Any) -> Manifest:
        raise exc

    return backup


@pytest.mark.parametrize(
    ("error", "outcome", "detail"),
    [
        (BackupFailed("disk on fire"), "failed", "disk on fire"),
        (RuntimeError("boom"), "failed", "internal error: RuntimeError: boom"),
        (NothingChanged("version v1 is already stored"), "unchanged", "version v1"),
        (LockHeldError("another run of policy 'a'"), "skipped", "still running: another run"),
    ],
)
def test_backup_outcomes(tmp_path: Path, error: Exception, outcome: str, detail: str) -> None:
    policies = _policies(tmp_path, "a")
    plan = plan_jobs(policies)
    runner = _runner(tmp_path, _raising(error))
    _prime(runner, plan.jobs)
    result = runner.run_if_due(plan.jobs[0], policies[0])
    assert result is not None and result.outcome == outcome and detail in result.detail
    assert runner.state.read()["a:check"].running is None


def test_a_failure_or_a_bug_does_not_stop_the_other_jobs(tmp_path: Path) -> None:
    policies = _policies(tmp_path, "a", "b", "c")
    plan = plan_jobs(policies)
    calls: list[str] = []

    def backup(ctx: Context, policy: PolicyBase, *args: Any) -> Manifest:
        calls.append(policy.name)
        if policy.name == "a":
            raise RuntimeError("a bug")
        if policy.name == "b":
            raise BackupFailed("b failed")
        return _manifest()

    runner = _runner(tmp_path, backup)
    _prime(runner, plan.jobs)
    report = run_due(plan, {p.name: p for p in policies}, runner)
    assert calls == ["a", "b", "c"]
    assert [r.job for r in report.failed] == ["a:check", "b:check"]
    with pytest.raises(ScheduledJobsFailed, match="2 scheduled job"):
        report.raise_for_failures()


@pytest.mark.parametrize(
    ("prune_error", "outcome", "detail"),
    [
        (None, "ok", "stored"),
        (LockHeldError("busy"), "ok", "stored"),
        (RepositoryError("bucket gone"), "failed", "stored; prune failed: bucket gone"),
    ],
)
def test_prune_after_backup(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    prune_error: Exception | None,
    outcome: str,
    detail: str,
) -> None:
    pruned: list[str] = []

    def prune_policy(ctx: Context, policy: PolicyBase, *args: Any) -> list[Any]:
        pruned.append(policy.name)
        if prune_error is not None:
            raise prune_error
        return [SimpleNamespace(keep=False), SimpleNamespace(keep=True)]

    monkeypatch.setattr(prune_module, "prune_policy", prune_policy)
    policies = _policies(tmp_path, "a", prune_after_backup=True) + _policies(tmp_path / "off", "b")
    plan = plan_jobs(policies)
    runner = _runner(tmp_path, lambda *args: _manifest())
    _prime(runner, plan.jobs)
    results = [runner.run_if_due(job, p) for job, p in zip(plan.jobs, policies, strict=True)]
    assert pruned == ["a"]  # b says prune_after_backup: false
    first = results[0]
    assert first is not None and first.outcome == outcome and detail in first.detail
    assert first.pruned == (1 if prune_error is None else 0)


@pytest.mark.parametrize(
    ("report", "outcome", "detail"),
    [
        (
            {"drill_id": "D1", "passed": True, "backup_id": "B1", "html_report": "/r.html"},
            "ok",
            "drill D1 passed; report /r.html",
        ),
        (
            {"drill_id": "D2", "passed": False, "backup_id": None, "reason": "cannot start: x"},
            "failed",
            "drill D2 failed: cannot start: x",
        ),
    ],
)
def test_drill_jobs_run_the_drill_and_a_failed_drill_fails_the_job(
    tmp_path: Path, report: dict[str, Any], outcome: str, detail: str
) -> None:
    drilled: list[str] = []

    def drill(ctx: Context, policy: PolicyBase) -> DrillReport:
        drilled.append(policy.name)
        return cast(DrillReport, SimpleNamespace(**{"reason": None, "html_report": None, **report}))

    policies = _policies(tmp_path, "a", drill={"schedule": "* * * * *"})
    plan = plan_jobs(policies)
    assert [j.id for j in plan.jobs] == ["a:check", "a:drill"]
    runner = _runner(tmp_path, _raising(AssertionError("a drill job must not back up")))
    runner.drill = drill
    _prime(runner, plan.jobs)
    result = runner.run_if_due(plan.jobs[1], policies[0])
    assert drilled == ["a"]
    assert result is not None and (result.outcome, result.detail) == (outcome, detail)
    assert result.backup_id == report["backup_id"]
    with runner.state.update() as records:
        assert records["a:drill"].last_outcome == outcome


def test_a_stack_drill_is_a_job_of_its_own_run_by_run_due(tmp_path: Path) -> None:
    from backupctl.policy.stack import Stack

    policies = _policies(tmp_path, "a", "b")
    stack = Stack.model_validate(
        {"version": 1, "name": "app", "policies": ["a", "b"], "drill": {"schedule": "* * * * *"}}
    )
    plan = plan_jobs(policies, stacks=[stack])
    assert [j.id for j in plan.jobs] == ["a:check", "b:check", "app:stackdrill"]
    assert plan.jobs[-1].command == ["drill", "run", "--stack", "app"]
    assert plan.jobs[-1].title == "recovery drill of stack app"
    drilled: list[tuple[str, list[str]]] = []
    missed = ["skew 2h over 1h"]

    def stack_drill(ctx: Context, drilled_stack: Stack, every: Any) -> Any:
        drilled.append((drilled_stack.name, [p.name for p in every]))
        return SimpleNamespace(drill_id="20260101T010000Z-abcdef", passed=False, missed=missed)

    runner = _runner(tmp_path, lambda *args: _manifest())
    runner.stack_drill, runner.policies = stack_drill, policies
    _prime(runner, plan.jobs)
    report = run_due(plan, {p.name: p for p in policies}, runner, stacks={"app": stack})
    assert drilled == [("app", ["a", "b"])]
    (result,) = [r for r in report.results if r.job == "app:stackdrill"]
    assert result.outcome == "failed" and result.detail.endswith("failed: skew 2h over 1h")
    assert [r.outcome for r in report.results if r.job != "app:stackdrill"] == ["ok", "ok"]


def test_a_bug_in_prune_fails_the_job_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prune_module, "prune_policy", _raising(AttributeError("no lock")))
    policies = _policies(tmp_path, "a", "b", prune_after_backup=True)
    plan = plan_jobs(policies)
    runner = _runner(tmp_path, lambda *args: _manifest())
    _prime(runner, plan.jobs)
    report = run_due(plan, {p.name: p for p in policies}, runner)
    assert [r.outcome for r in report.results] == ["failed", "failed"]
    assert "prune failed: internal error: AttributeError: no lock" in report.results[1].detail


def test_an_interrupted_run_is_recorded_and_its_mark_cleared(tmp_path: Path) -> None:
    policies = _policies(tmp_path, "a")
    plan = plan_jobs(policies)
    runner = _runner(tmp_path, _raising(KeyboardInterrupt()))
    _prime(runner, plan.jobs)
    with pytest.raises(KeyboardInterrupt):
        runner.run_if_due(plan.jobs[0], policies[0])
    record = runner.state.read()["a:check"]
    assert (record.last_outcome, record.last_detail, record.running) == (
        "failed",
        "interrupted",
        None,
    )


def _daemon(
    tmp_path: Path, backup: Backup, load: Callable[[], list[PolicyBase]], second: str = "*"
) -> tuple[SchedulerDaemon, JobRunner]:
    runner = JobRunner(Context(StateLayout(tmp_path / "state")), backup=backup)
    factory = seconds_trigger_factory(second)
    return SchedulerDaemon(load, runner, trigger_factory=factory), runner


def _wait_for(condition: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_daemon_fires_jobs_at_their_times(tmp_path: Path) -> None:
    policies = _policies(tmp_path, "a")
    fired: list[float] = []

    def backup(*args: Any) -> Manifest:
        fired.append(time.time())
        return _manifest()

    daemon, runner = _daemon(tmp_path, backup, lambda: policies)
    daemon.start()
    try:
        _wait_for(lambda: len(fired) >= 3)
    finally:
        daemon.stop()
    gaps = [b - a for a, b in pairwise(fired)]
    assert all(0.8 < gap < 1.5 for gap in gaps), gaps
    assert all(abs(t - round(t)) < 0.3 for t in fired)  # on the second, as scheduled
    assert runner.state.read()["a:check"].last_outcome == "ok"


def test_daemon_runs_an_overdue_job_once_at_start(tmp_path: Path) -> None:
    policies = _policies(tmp_path, "a")
    fired: list[float] = []

    def backup(*args: Any) -> Manifest:
        fired.append(time.time())
        return _manifest()

    # a yearly schedule: its slot passed while the daemon was down
    daemon, runner = _daemon(tmp_path, backup, lambda: policies, second="0")
    job = plan_jobs(policies).jobs[0]
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    with runner.state.update() as records:
        records[job.id] = JobState(long_ago, long_ago)
    started = time.time()
    daemon.start()
    try:
        _wait_for(lambda: len(fired) >= 1, timeout=3)
        time.sleep(0.5)
    finally:
        daemon.stop()
    assert len(fired) == 1 and fired[0] - started < 1.5


def test_daemon_reload_replaces_jobs_and_keeps_them_on_invalid_policies(tmp_path: Path) -> None:
    answers: list[list[PolicyBase] | None] = [
        _policies(tmp_path / "one", "a"),
        _policies(tmp_path / "two", "b", "c"),
        None,  # an invalid edit
    ]

    def load() -> list[PolicyBase]:
        policies = answers.pop(0)
        if policies is None:
            raise PolicyError([])
        return policies

    daemon, _ = _daemon(tmp_path, lambda *args: _manifest(), load, "0")
    daemon.start()
    try:
        assert {job.id for job in daemon._scheduler.get_jobs()} == {"a:check"}
        daemon.reload()
        assert {job.id for job in daemon._scheduler.get_jobs()} == {"b:check", "c:check"}
        assert daemon.reload() is None
        assert {job.id for job in daemon._scheduler.get_jobs()} == {"b:check", "c:check"}
        trigger_job = daemon._scheduler.get_job("b:check")
        assert trigger_job.max_instances == 1 and trigger_job.coalesce is True
        assert trigger_job.misfire_grace_time == 3600
    finally:
        daemon.stop()


@pytest.mark.slow
def test_daemon_stop_waits_for_a_running_backup(tmp_path: Path) -> None:
    policies = _policies(tmp_path, "a")
    running, finished = threading.Event(), threading.Event()

    def backup(*args: Any) -> Manifest:
        running.set()
        time.sleep(1.5)
        finished.set()
        return _manifest()

    daemon, runner = _daemon(tmp_path, backup, lambda: policies)
    daemon.start()
    assert running.wait(5)
    began = time.monotonic()
    daemon.stop()
    assert finished.is_set() and time.monotonic() - began > 0.5
    record = runner.state.read()["a:check"]
    assert record.last_outcome == "ok" and record.running is None


@pytest.mark.slow
def test_daemon_runs_jobs_of_one_policy_in_turn(tmp_path: Path) -> None:
    """A full backup and the binlogs due at the same second both run, one after the
    other, instead of one of them being refused the policy's lock."""
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "db.yaml").write_text(
        "version: 1\nname: db\ndriver: mariadb\nconnection: {host: 127.0.0.1}\n"
        f"datadir: /var/lib/mysql\nrepository: file://{tmp_path / 'repo'}\n"
        'schedule: {full: "* * * * *", binlog: "* * * * *"}\nprune_after_backup: false\n'
    )
    policies = load_policies(tmp_path / "policies")
    runs: list[tuple[str, float, float]] = []

    def backup(ctx: Context, policy: PolicyBase, kind: str) -> Manifest:
        began = time.monotonic()
        time.sleep(0.4)
        runs.append((kind, began, time.monotonic()))
        return _manifest()

    daemon, runner = _daemon(tmp_path, backup, lambda: policies, second="*/3")
    daemon.start()
    try:
        _wait_for(lambda: len(runs) >= 2)
    finally:
        daemon.stop()
    first, second = sorted(runs[:2], key=lambda run: run[1])
    assert {first[0], second[0]} == {"full", "binlog"}
    assert second[1] >= first[2]  # never at the same time
    states = runner.state.read()
    assert states["db:full"].last_outcome == states["db:binlog"].last_outcome == "ok"
