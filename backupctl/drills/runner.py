"""Run one policy's recovery drill: the driver's sandbox restore, timed and judged."""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from backupctl.catalog.manifest import Manifest, scan_manifests
from backupctl.drills import store
from backupctl.drills.objectives import missed_objectives, objective_seconds
from backupctl.drivers.base import DrillPlan, RestoreRequest
from backupctl.drivers.registry import driver_for
from backupctl.errors import BackupctlError, LockHeldError
from backupctl.jobs import new_backup_id
from backupctl.observability.events import RunEvent
from backupctl.observability.runs import RunReporter
from backupctl.policy.common import PolicyBase
from backupctl.progress import ProgressFactory, no_progress
from backupctl.runbook.engine import Runbook, RunbookFailed
from backupctl.runbook.journal import Journal
from backupctl.runbook.step import StepResult
from backupctl.scheduling.locks import policy_lock
from backupctl.statefile import private_dir
from backupctl.storage.base import Repository

log = structlog.get_logger()
#: the ``kind`` of a drill in the run history and the metrics
DRILL_KIND = "drill"


def drill_dir(state_dir: Path, drill_id: str) -> Path:
    """Where a drill keeps its journal, its sandbox (removed after) and its local reports."""
    return state_dir / "drills" / drill_id


@dataclass(frozen=True)
class Selection:
    """The backup a drill restores, and how it was chosen."""

    manifest: Manifest | None
    mode: str
    candidates: int
    newest: Manifest | None

    @property
    def is_newest(self) -> bool:
        return self.manifest is not None and self.manifest is self.newest

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "candidates": self.candidates,
            "newest_backup_id": self.newest.backup_id if self.newest else None,
        }


def restorable(repo: Repository, policy: PolicyBase) -> list[Manifest]:
    """The restorable backups of the driver's main kind, oldest first."""
    kind = driver_for(policy).default_kind
    backups = [m for m in scan_manifests(repo, policy.name) if m.kind == kind and m.restorable]
    return sorted(backups, key=lambda m: (m.finished_at, m.backup_id))


def select_backup(
    repo: Repository,
    policy: PolicyBase,
    now: datetime,
    rng: random.Random | None = None,
) -> Selection:
    """The backup to drill: the newest restorable one, or with ``drill.select: random`` any
    restorable one finished within ``drill.window`` of ``now`` (the newest when none is)."""
    backups = restorable(repo, policy)
    newest = backups[-1] if backups else None
    if policy.drill.select == "latest" or not backups:
        return Selection(newest, "latest", len(backups), newest)
    window: timedelta | None = policy.drill.window
    candidates = [m for m in backups if window is None or m.finished_at >= now - window]
    if not candidates:
        log.warning("no backup within the drill window: drilling the newest", window=str(window))
        return Selection(newest, "random", 0, newest)
    chosen = (rng or random.SystemRandom()).choice(candidates)
    return Selection(chosen, "random", len(candidates), newest)


@dataclass
class _Outcome:
    """What a drill found out while it ran."""

    manifest: Manifest | None = None
    selection: Selection | None = None
    plan: DrillPlan | None = None
    steps: list[StepResult] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    runbook_started: float | None = None


def run_and_store(
    policy: PolicyBase,
    repo: Repository | str,
    state_dir: Path,
    progress: ProgressFactory = no_progress,
    reporter: RunReporter | None = None,
) -> dict[str, Any]:
    """Run the drill of ``policy``, store its reports (repository and local copy) and
    return the report with ``html_report`` (the local HTML page's path) added, and
    ``storage_problems`` when the repository copy could not be written.

    ``repo`` may be why the repository cannot be opened: the drill then fails with that
    reason (reported, stored locally) without starting."""
    if isinstance(repo, str):
        report = _report(
            policy,
            new_backup_id(datetime.now(UTC)),
            datetime.now(UTC),
            time.monotonic(),
            _Outcome(reason=f"cannot start: {repo}"),
        )
        repo_or_none: Repository | None = None
    else:
        report, repo_or_none = run_drill(policy, repo, state_dir, progress), repo
    html, problems = store.save(report, repo_or_none, state_dir)
    report["html_report"] = str(html)
    if problems:
        report["storage_problems"] = problems
    (reporter or RunReporter(state_dir)).report(policy, drill_event(policy, report))
    return report


def drill_event(policy: PolicyBase, report: dict[str, Any]) -> RunEvent:
    """The drill as a run (kind ``drill``) for the run history, metrics and webhooks."""
    facts = ("drill_id", "rto_seconds", "rpo_seconds", "recovery_point", "html_report")
    started = datetime.fromisoformat(report["started_at"])
    return RunEvent(
        policy.name,
        policy.driver,
        DRILL_KIND,
        "success" if report["passed"] else "failure",
        started_at=started,
        finished_at=started + timedelta(seconds=report["seconds"]),
        backup_id=report.get("backup_id"),
        error=report.get("reason"),
        details={k: report.get(k) for k in facts},
    )


def run_drill(
    policy: PolicyBase,
    repo: Repository,
    state_dir: Path,
    progress: ProgressFactory = no_progress,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """Run the drill of ``policy`` and return its report (never raises for a failed drill:
    a drill that cannot start is a failed drill with a reason). The caller stores it
    (or calls ``run_and_store``)."""
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    drill_id = new_backup_id(started_at)
    home = drill_dir(state_dir, drill_id)
    sandbox = home / "sandbox"
    structlog.contextvars.bind_contextvars(drill_id=drill_id, policy=policy.name)
    try:
        # the policy's lock: no prune deletes the backup, no backup races the drill
        with policy_lock(state_dir, policy.name, purpose="drill"):
            outcome = _run(policy, repo, state_dir, drill_id, sandbox, progress, rng)
    except LockHeldError as exc:
        outcome = _Outcome(reason=f"cannot start: {exc}")
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
        structlog.contextvars.unbind_contextvars("drill_id", "policy")
    return _report(policy, drill_id, started_at, clock, outcome)


def _run(
    policy: PolicyBase,
    repo: Repository,
    state_dir: Path,
    drill_id: str,
    sandbox: Path,
    progress: ProgressFactory,
    rng: random.Random | None,
) -> _Outcome:
    outcome = _Outcome()
    try:
        outcome.selection = select_backup(repo, policy, datetime.now(UTC), rng)
        outcome.manifest = outcome.selection.manifest
        if outcome.manifest is None:
            outcome.reason = f"cannot start: policy {policy.name} has no restorable backup"
            return outcome
        request = RestoreRequest(drill_id, state_dir, progress=progress, target_dir=sandbox)
        outcome.plan = driver_for(policy).drill_plan(repo, outcome.manifest, request)
    except BackupctlError as exc:
        outcome.reason = f"cannot start: {exc}"
        return outcome
    private_dir(sandbox)
    journal = Journal(
        path=sandbox.parent / "journal.json",
        run_id=drill_id,
        kind="drill",
        policy=policy.name,
        params={"backup_id": outcome.manifest.backup_id, "sandbox": str(sandbox)},
        steps=[StepResult(s.name) for s in outcome.plan.steps],
    )
    outcome.runbook_started = time.monotonic()
    try:
        Runbook(outcome.plan.steps, journal).run()
    except RunbookFailed as exc:
        outcome.reason = f"step {exc.step!r} failed: {exc.cause}"
        log.error("drill failed", step=exc.step, error=str(exc.cause))
    outcome.steps = journal.steps
    outcome.checks = list(journal.values.get("checks") or [])
    return outcome


def _rto(outcome: _Outcome, clock: float) -> float | None:
    """Seconds from the drill's start until the verifying step passed (None if it did not)."""
    if outcome.plan is None or outcome.runbook_started is None:
        return None
    seconds = outcome.runbook_started - clock
    for result in outcome.steps:
        if result.status != "ok":
            return None
        seconds += result.seconds
        if result.name == outcome.plan.verified_after:
            return round(seconds, 3)
    return None


def _judges_rpo(outcome: _Outcome) -> bool:
    """The RPO objective is judged when the drilled data reaches the newest recoverable
    point: the newest backup was drilled, or the driver replays on to the newest point."""
    selection, plan = outcome.selection, outcome.plan
    return selection is None or selection.is_newest or (plan is not None and plan.reaches_newest)


def _unjudged(outcome: _Outcome) -> str:
    assert outcome.manifest is not None and outcome.selection is not None
    newest = outcome.selection.newest
    return (
        f"RPO objective not judged: `drill.select: random` drilled {outcome.manifest.backup_id}, "
        f"older than the newest backup ({newest.backup_id if newest else '-'}); the RPO shown "
        "is the age of the drilled data"
    )


def _report(
    policy: PolicyBase,
    drill_id: str,
    started_at: datetime,
    clock: float,
    outcome: _Outcome,
) -> dict[str, Any]:
    point = outcome.plan.recovery_point if outcome.plan else None
    rto = _rto(outcome, clock)
    rpo = round((started_at - point).total_seconds(), 3) if point and rto is not None else None
    judged_rpo = rpo if _judges_rpo(outcome) else None
    missed = missed_objectives(policy.objectives, judged_rpo, rto)
    checks = list(outcome.checks)
    for name, measured in (("rpo", rpo), ("rto", rto)):
        limit = objective_seconds(policy.objectives)[f"{name}_seconds"]
        if limit is None or measured is None:
            continue
        if name == "rpo" and judged_rpo is None:
            continue  # the report's notes say why
        miss = next((m for m in missed if m.objective == name), None)
        detail = str(miss) if miss else f"measured {measured:.1f}s within {limit:.0f}s"
        checks.append({"name": f"objective-{name}", "passed": miss is None, "detail": detail})
    reason = outcome.reason
    if reason is None and rto is None:
        reason = "verification did not pass"
    if reason is None and missed:
        reason = "; ".join(str(m) for m in missed)
    finished_at = datetime.now(UTC)
    return {
        "drill_id": drill_id,
        "policy": policy.name,
        "driver": policy.driver,
        "backup_id": outcome.manifest.backup_id if outcome.manifest else None,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": finished_at.isoformat(timespec="seconds"),
        "recovery_point": point.astimezone(UTC).isoformat() if point else None,
        "rpo_seconds": rpo,
        "rto_seconds": rto,
        "objectives": objective_seconds(policy.objectives),
        "passed": reason is None,
        "reason": reason,
        "missed_objectives": [m.to_dict() for m in missed],
        "selection": outcome.selection.to_dict() if outcome.selection else None,
        "notes": [] if rpo is None or judged_rpo is not None else [_unjudged(outcome)],
        "seconds": round(time.monotonic() - clock, 3),
        "steps": [
            {"name": s.name, "status": s.status, "seconds": s.seconds, "detail": s.detail}
            for s in outcome.steps
        ],
        "checks": checks,
    }
