"""The state of each policy for the daily check: what ran, what can be restored, how old
the newest recoverable point is against the RPO, the last drill, and a verdict.

``status`` prints it (exit 1 when an objective is breached) and the metrics export it,
so both always agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog

from backupctl.catalog.index import Catalog
from backupctl.catalog.manifest import Manifest
from backupctl.catalog.query import PolicyBackups, RecoveryWindow
from backupctl.drills import store
from backupctl.drills.report import DrillReport
from backupctl.drivers.registry import driver_for
from backupctl.errors import BackupctlError
from backupctl.history import RunHistory, RunRecord
from backupctl.layout import StateLayout
from backupctl.policy.common import PolicyBase
from backupctl.scheduling.due import next_due
from backupctl.scheduling.plan import DRILL, ScheduledJob, plan_jobs
from backupctl.scheduling.state import JobState, ScheduleState
from backupctl.storage.base import Repository
from backupctl.units import human_duration

log = structlog.get_logger()

Severity = Literal["breach", "warning"]
Verdict = Literal["ok", "warning", "breach"]
RepositoryFor = Callable[[PolicyBase], Repository]


@dataclass(frozen=True)
class Problem:
    severity: Severity
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "message": self.message}


@dataclass(frozen=True)
class FollowState:
    """``binlog follow``'s own report (its ``status.json``)."""

    connected: bool
    lag_seconds: float | None
    last_event_at: datetime | None
    #: when the server's binlog position last equalled what was stored (None: never seen)
    current_at: datetime | None = None


@dataclass(frozen=True)
class CopyState:
    """How far one copy repository is behind the policy's first repository."""

    #: backups the first repository holds (restorable) that this copy lacks
    missing: int
    #: since when the oldest of them waits (None: the copy holds every one)
    waiting_since: datetime | None

    def lag(self, now: datetime) -> timedelta:
        return now - self.waiting_since if self.waiting_since is not None else timedelta(0)


@dataclass
class PolicyStatus:
    policy: str
    driver: str
    now: datetime
    rpo_objective: timedelta | None
    rto_objective: timedelta | None
    runs: dict[str, RunRecord] = field(default_factory=dict)
    window: RecoveryWindow | None = None
    backups: dict[str, int] = field(default_factory=dict)
    newest_size: dict[str, int] = field(default_factory=dict)
    repository_bytes: int = 0
    next_run: tuple[str, datetime] | None = None
    last_drill: DrillReport | None = None
    drill_next_due: datetime | None = None
    follow: FollowState | None = None
    #: each copy repository (``repositories:`` after the first), by name
    copies: dict[str, CopyState] = field(default_factory=dict)
    #: False when the repository could not be read: the window is unknown, not empty
    window_known: bool = True
    problems: list[Problem] = field(default_factory=list)

    @property
    def backup_runs(self) -> list[RunRecord]:
        return [r for kind, r in self.runs.items() if kind != DRILL]

    @property
    def last_success(self) -> RunRecord | None:
        done = [r for r in self.backup_runs if r.last_success is not None]
        return max(done, key=lambda r: r.last_success or self.now, default=None)

    @property
    def last_failure(self) -> RunRecord | None:
        failed = [r for r in self.backup_runs if r.last_failure is not None]
        return max(failed, key=lambda r: r.last_failure or self.now, default=None)

    @property
    def recoverable_until(self) -> datetime | None:
        """The newest moment a restore reproduces (None: nothing is recoverable): the last
        event stored, or, while ``binlog follow`` is connected, the last time it found the
        server's binlog position equal to what it had stored (the repository held all the
        server had written then). An idle database then stays current without new
        events; a follower that stops confirming ages from its last confirmation."""
        if self.window is None:
            return None
        follow = self.follow
        if follow is not None and follow.connected and follow.current_at is not None:
            return max(self.window.latest, min(follow.current_at, self.now))
        return self.window.latest

    @property
    def point_age(self) -> timedelta | None:
        """How old the newest recoverable point is (None: nothing is recoverable)."""
        until = self.recoverable_until
        return self.now - until if until is not None else None

    @property
    def verdict(self) -> Verdict:
        severities = {p.severity for p in self.problems}
        return "breach" if "breach" in severities else "warning" if severities else "ok"

    def to_dict(self) -> dict[str, Any]:
        age = self.point_age
        success, failure = self.last_success, self.last_failure
        return {
            "policy": self.policy,
            "driver": self.driver,
            "verdict": self.verdict,
            "problems": [p.to_dict() for p in self.problems],
            "last_success": _iso(success.last_success) if success else None,
            "last_success_kind": success.kind if success else None,
            "last_failure": _iso(failure.last_failure) if failure else None,
            "last_failure_kind": failure.kind if failure else None,
            "last_failure_reason": failure.last_failure_reason if failure else None,
            "recoverable_from": _iso(self.window.earliest) if self.window else None,
            "recoverable_to": _iso(self.window.latest) if self.window else None,
            "recoverability_gap": self.window.gap if self.window else None,
            "recovery_point_age_seconds": round(age.total_seconds(), 1) if age else None,
            "rpo_objective_seconds": _seconds(self.rpo_objective),
            "rto_objective_seconds": _seconds(self.rto_objective),
            "next_run": (
                {"job": self.next_run[0], "at": _iso(self.next_run[1])} if self.next_run else None
            ),
            "repository_bytes": self.repository_bytes,
            "backups": self.backups,
            "last_drill": _drill_summary(self.last_drill),
            "drill_next_due": _iso(self.drill_next_due),
            "binlog_follow": (
                {
                    "connected": self.follow.connected,
                    "lag_seconds": self.follow.lag_seconds,
                    "last_event_at": _iso(self.follow.last_event_at),
                }
                if self.follow
                else None
            ),
            "copies": {
                name: {
                    "missing": state.missing,
                    "lag_seconds": round(state.lag(self.now).total_seconds(), 1),
                }
                for name, state in sorted(self.copies.items())
            },
            "runs": {kind: record.to_dict() for kind, record in sorted(self.runs.items())},
        }


def _drill_summary(report: DrillReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    keys = ("drill_id", "finished_at", "passed", "reason", "rto_seconds", "rpo_seconds")
    data = report.model_dump(mode="json")
    return {k: data[k] for k in keys}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _seconds(value: timedelta | None) -> float | None:
    return value.total_seconds() if value is not None else None


def policy_statuses(
    policies: list[PolicyBase],
    catalog: Catalog,
    repository_for: RepositoryFor,
    layout: StateLayout,
    now: datetime,
) -> list[PolicyStatus]:
    """The status of every policy, by name."""
    runs = RunHistory(layout).read()
    schedule = ScheduleState(layout).read()
    plan = plan_jobs(policies)
    statuses = []
    for policy in sorted(policies, key=lambda p: p.name):
        jobs = [j for j in plan.jobs if j.policy == policy.name]
        status = PolicyStatus(
            policy.name,
            policy.driver,
            now,
            policy.objectives.rpo,
            policy.objectives.rto,
            runs={r.kind: r for r in runs.values() if r.policy == policy.name},
        )
        _fill(status, policy, catalog, repository_for, layout, jobs, schedule)
        statuses.append(status)
    return statuses


def _fill(
    status: PolicyStatus,
    policy: PolicyBase,
    catalog: Catalog,
    repository_for: RepositoryFor,
    layout: StateLayout,
    jobs: list[ScheduledJob],
    schedule: dict[str, JobState],
) -> None:
    driver = driver_for(policy)
    unchanged = status.runs.get(driver.main_kind)
    backups = catalog.backups(
        policy.name, driver, unchanged.last_unchanged if unchanged is not None else None
    )
    _count(status, backups)
    status.copies = _copies(policy, backups, catalog)
    repo: Repository | None = None
    try:
        repo = repository_for(policy)
        status.window = backups.window(repo)
    except BackupctlError as exc:
        status.window_known = False
        status.problems.append(Problem("warning", f"recoverability unknown: {exc}"))
    status.follow = _follow(layout, policy.name, status.now)
    backup_jobs = [j for j in jobs if j.action != DRILL]
    status.next_run = _next_run(backup_jobs, schedule, status.now)
    drill_job = next((j for j in jobs if j.action == DRILL), None)
    status.last_drill = _last_drill(repo, layout, policy.name)
    status.drill_next_due = _drill_due(drill_job, status.last_drill, schedule)
    judge(status)


def _count(status: PolicyStatus, backups: PolicyBackups) -> None:
    seen: dict[str, int] = {}
    newest: dict[str, Manifest] = {}
    for manifest in backups.all:
        for artifact in manifest.artifacts:
            seen[artifact.key] = artifact.stored_bytes
        if not manifest.restorable:
            continue
        status.backups[manifest.kind] = status.backups.get(manifest.kind, 0) + 1
        current = newest.get(manifest.kind)
        if current is None or manifest.finished_at >= current.finished_at:
            newest[manifest.kind] = manifest
    status.repository_bytes = sum(seen.values())
    status.newest_size = {kind: m.stored_bytes for kind, m in newest.items()}


def _copies(policy: PolicyBase, backups: PolicyBackups, catalog: Catalog) -> dict[str, CopyState]:
    """Per copy repository: the restorable backups it lacks, and since when the oldest of
    them waits (its finish time)."""
    if not policy.copies:
        return {}
    held = catalog.copies(policy.name)
    states = {}
    for copy in policy.copies:
        missing = [
            m
            for m in backups.all
            if m.restorable and copy.name not in held.get((policy.name, m.backup_id), {})
        ]
        oldest = min((m.finished_at for m in missing), default=None)
        states[copy.name] = CopyState(len(missing), oldest)
    return states


def _follow(layout: StateLayout, policy: str, now: datetime) -> FollowState | None:
    path = layout.follow_status(policy)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("unreadable binlog follow status", path=str(path), error=str(exc))
        return None
    flushed = data.get("last_flush_at")
    event, current = data.get("last_event_at"), data.get("current_at")
    lag = (now - datetime.fromisoformat(flushed)).total_seconds() if flushed else None
    return FollowState(
        bool(data.get("connected")),
        round(lag, 1) if lag is not None else None,
        datetime.fromisoformat(event) if event else None,
        datetime.fromisoformat(current) if current else None,
    )


def _next_run(
    jobs: list[ScheduledJob], schedule: dict[str, JobState], now: datetime
) -> tuple[str, datetime] | None:
    upcoming = []
    for job in jobs:
        slot = next_due(schedule.get(job.id), job, now)
        if slot is not None:
            upcoming.append((slot, job.id))
    if not upcoming:
        return None
    slot, job_id = min(upcoming)
    return job_id, slot


def _last_drill(repo: Repository | None, layout: StateLayout, policy: str) -> DrillReport | None:
    history = store.history_of(repo, layout, policy)
    if not history:
        return None
    return max(history, key=lambda r: (str(r.finished_at), r.drill_id))


def _drill_due(
    job: ScheduledJob | None, last: DrillReport | None, schedule: dict[str, JobState]
) -> datetime | None:
    """The first drill slot after the last drill (or, never drilled, after run-due or the
    scheduler first saw the drill job); None when drills are off or nothing is known."""
    if job is None:
        return None
    if last is not None and last.finished_at:
        return job.next_slot(datetime.fromisoformat(last.finished_at))
    record = schedule.get(job.id)
    return job.next_slot(record.first_seen) if record is not None else None


def judge(status: PolicyStatus) -> None:
    """Add the problems of ``status`` (breaches of objectives, and warnings)."""
    problems = status.problems
    age, rpo = status.point_age, status.rpo_objective
    if status.window is None and status.window_known:
        severity: Severity = "breach" if rpo is not None else "warning"
        problems.append(Problem(severity, "nothing is recoverable: no restorable backup"))
    if age is not None and rpo is not None and age > rpo:
        problems.append(
            Problem(
                "breach",
                f"the newest recoverable point is {_text(age)} old, over the RPO "
                f"objective of {_text(rpo)} by {_text(age - rpo)}",
            )
        )
    if status.window is not None and status.window.gap:
        problems.append(Problem("warning", f"the binlog chain breaks: {status.window.gap}"))
    follow = status.follow
    if follow is not None and follow.lag_seconds is not None and rpo is not None:
        lag = timedelta(seconds=follow.lag_seconds)
        if lag > rpo:
            problems.append(
                Problem(
                    "breach",
                    f"binlog follow has stored nothing for {_text(lag)}, past the RPO "
                    f"objective of {_text(rpo)}",
                )
            )
    limit = max(rpo or timedelta(0), timedelta(hours=1))
    for name, state in sorted(status.copies.items()):
        lag = state.lag(status.now)
        if lag > limit:
            problems.append(
                Problem(
                    "warning",
                    f"the copy to {name} lags {_text(lag)}: {state.missing} backup(s) not "
                    f"copied (run `backupctl copy {status.policy} --to {name}`)",
                )
            )
    for record in status.backup_runs:
        if record.last_outcome == "failure":
            times = f" ({record.consecutive_failures} in a row)"
            problems.append(
                Problem(
                    "warning",
                    f"the last {record.kind} backup failed"
                    f"{times if record.consecutive_failures > 1 else ''}: "
                    f"{record.last_failure_reason}",
                )
            )
    _judge_drill(status)


def _judge_drill(status: PolicyStatus) -> None:
    drill, problems = status.last_drill, status.problems
    rto = status.rto_objective
    if drill is not None and not drill.passed:
        problems.append(Problem("warning", f"the last drill failed: {drill.reason}"))
    if drill is not None and rto is not None and drill.rto_seconds is not None:
        measured = timedelta(seconds=drill.rto_seconds)
        if measured > rto:
            problems.append(
                Problem(
                    "breach",
                    f"the last drill's RTO {_text(measured)} is over the objective of {_text(rto)}",
                )
            )
    due = status.drill_next_due
    if due is not None and status.now > due + timedelta(days=1):
        problems.append(Problem("warning", f"a drill is overdue since {due.isoformat()}"))


def _text(value: timedelta) -> str:
    return human_duration(value.total_seconds())
