"""The run history and the daily check's verdicts, from records and windows alone."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backupctl.catalog.query import RecoveryWindow
from backupctl.drills.report import DrillReport
from backupctl.history import RunEvent, RunHistory, RunHistoryError, RunRecord
from backupctl.layout import StateLayout
from backupctl.observability.status import FollowState, PolicyStatus, judge
from backupctl.units import human_duration

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _event(outcome: str, minutes: int, kind: str = "full", error: str | None = None) -> RunEvent:
    finished = NOW + timedelta(minutes=minutes)
    return RunEvent(
        "shop",
        "mariadb",
        kind,
        outcome,  # type: ignore[arg-type]
        started_at=finished - timedelta(seconds=30),
        finished_at=finished,
        error=error,
    )


def test_a_record_counts_outcomes_and_failures_in_a_row() -> None:
    record = RunRecord("shop", "full")
    for outcome, minute in (("success", 0), ("failure", 1), ("skipped", 2), ("failure", 3)):
        record.add(_event(outcome, minute, error="boom" if outcome == "failure" else None))
    assert record.consecutive_failures == 2  # a skip is not a success
    assert record.counts == {"success": 1, "failure": 2, "skipped": 1}
    assert record.last_success == NOW and record.last_failure == NOW + timedelta(minutes=3)
    assert record.last_seconds == 30 and record.last_failure_reason == "boom"
    record.add(_event("unchanged", 4))
    assert record.consecutive_failures == 0 and record.last_unchanged == record.last_success
    assert RunRecord.from_dict(record.to_dict()) == record


def _add_many(state_dir: Path, count: int) -> None:
    history = RunHistory(StateLayout(state_dir))
    for minute in range(count):
        history.add(_event("success", minute))


def test_concurrent_processes_never_lose_a_run(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_many, args=(tmp_path, 25)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert RunHistory(StateLayout(tmp_path)).read()["shop:full"].counts == {"success": 100}


def test_a_damaged_history_says_what_to_do(tmp_path: Path) -> None:
    history = RunHistory(StateLayout(tmp_path))
    history.directory.mkdir()
    history.path.write_text("{not json")
    with pytest.raises(RunHistoryError, match="move it aside"):
        history.read()


def _status(**changes: object) -> PolicyStatus:
    status = PolicyStatus(
        "shop",
        "mariadb",
        NOW,
        rpo_objective=timedelta(hours=1),
        rto_objective=timedelta(hours=4),
        window=RecoveryWindow(NOW - timedelta(days=7), NOW - timedelta(minutes=10)),
    )
    for name, value in changes.items():
        setattr(status, name, value)
    judge(status)
    return status


def _drill(passed: bool, rto_seconds: float | None, reason: str | None) -> DrillReport:
    return DrillReport(
        drill_id="20261120T020000Z-abcdef",
        policy="shop",
        started_at="2026-11-20T02:00:00+00:00",
        passed=passed,
        rto_seconds=rto_seconds,
        reason=reason,
    )


def _messages(status: PolicyStatus) -> list[tuple[str, str]]:
    return [(p.severity, p.message) for p in status.problems]


def test_a_fresh_recovery_point_and_a_good_drill_are_ok() -> None:
    drill = _drill(True, 600.0, None)
    status = _status(last_drill=drill, drill_next_due=NOW + timedelta(days=30))
    assert status.verdict == "ok" and status.problems == []


@pytest.mark.parametrize(
    ("changes", "severity", "message"),
    [
        (
            {"window": RecoveryWindow(NOW - timedelta(days=7), NOW - timedelta(hours=3))},
            "breach",
            "the newest recoverable point is 3h old, over the RPO objective of 1h by 2h",
        ),
        ({"window": None}, "breach", "nothing is recoverable: no restorable backup"),
        (
            {"window": None, "rpo_objective": None},
            "warning",
            "nothing is recoverable: no restorable backup",
        ),
        (
            {"window": RecoveryWindow(NOW - timedelta(days=1), NOW, "mysql-bin.000007 is missing")},
            "warning",
            "the binlog chain breaks: mysql-bin.000007 is missing",
        ),
        (
            {"follow": FollowState(False, 7200.0, None)},
            "breach",
            "binlog follow has stored nothing for 2h, past the RPO objective of 1h",
        ),
        (
            {"last_drill": _drill(False, 18000.0, "RTO missed")},
            "breach",
            "the last drill's RTO 5h is over the objective of 4h",
        ),
        (
            {"last_drill": _drill(False, None, "step 'prepare'")},
            "warning",
            "the last drill failed: step 'prepare'",
        ),
        (
            {"drill_next_due": NOW - timedelta(days=3)},
            "warning",
            "a drill is overdue since 2026-11-19T12:00:00+00:00",
        ),
    ],
)
def test_each_problem_has_its_severity(
    changes: dict[str, object], severity: str, message: str
) -> None:
    status = _status(**changes)
    assert (severity, message) in _messages(status)
    assert status.verdict == severity


def test_failed_backups_warn_and_say_how_many_in_a_row() -> None:
    record = RunRecord("shop", "binlog")
    for minute in range(3):
        record.add(_event("failure", minute, "binlog", "server unreachable"))
    status = _status(runs={"binlog": record})
    assert _messages(status) == [
        ("warning", "the last binlog backup failed (3 in a row): server unreachable")
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (41.4, "41s"),
        (812, "13m 32s"),
        (3600, "1h"),
        (3720, "1h 02m"),
        (86400 * 7, "7d"),
        (90000, "1d 1h"),
    ],
)
def test_durations_read_at_a_glance(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


IDLE = RecoveryWindow(NOW - timedelta(days=7), NOW - timedelta(hours=9))  # no write for 9h


@pytest.mark.parametrize(
    ("follow", "age"),
    [
        # connected, and the server's position equalled what was stored 5 s ago
        (FollowState(True, 2.0, NOW - timedelta(hours=9), NOW - timedelta(seconds=5)), 5),
        # connected but never confirmed current (an old follower's status file)
        (FollowState(True, 2.0, NOW - timedelta(hours=9), None), 9 * 3600),
        # last confirmed 3 h ago: something stopped it from keeping up
        (FollowState(True, 2.0, NOW - timedelta(hours=9), NOW - timedelta(hours=3)), 3 * 3600),
        # disconnected: its old confirmation does not count
        (FollowState(False, 2.0, NOW - timedelta(hours=9), NOW - timedelta(seconds=5)), 9 * 3600),
        (None, 9 * 3600),
    ],
)
def test_an_idle_database_with_a_current_follower_does_not_breach_the_rpo(
    follow: FollowState | None, age: int
) -> None:
    status = _status(window=IDLE, follow=follow)
    assert status.point_age == timedelta(seconds=age)
    assert status.verdict == ("ok" if age < 3600 else "breach"), _messages(status)
