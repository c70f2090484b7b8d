"""``backupctl drill run``: one policy's recovery drill, the driver's sandbox restore,
timed and judged against the policy's objectives, its report stored."""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from backupctl.catalog.manifest import Manifest
from backupctl.catalog.sync import sync_policy
from backupctl.drills import store
from backupctl.drills.objectives import missed_objectives, objective_seconds
from backupctl.drills.report import DrillReport, ObjectiveSeconds, SelectionRecord
from backupctl.drivers.base import DrillPlan, RestoreRun
from backupctl.drivers.registry import driver_for
from backupctl.errors import BackupctlError, LockHeldError
from backupctl.history import RunEvent
from backupctl.locks import policy_lock
from backupctl.operations.context import Context
from backupctl.operations.sources import rank, reading
from backupctl.policy.common import DrillSpec, PolicyBase
from backupctl.runbook.engine import Runbook, RunbookFailed
from backupctl.runbook.journal import Journal
from backupctl.runbook.records import CheckRecord, StepRecord
from backupctl.runbook.step import StepResult
from backupctl.statefile import private_dir
from backupctl.storage.base import Repository
from backupctl.storage.keys import new_backup_id

log = structlog.get_logger()
#: the ``kind`` of a drill in the run history and the metrics
DRILL_KIND = "drill"


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

    def record(self) -> SelectionRecord:
        newest = self.newest.backup_id if self.newest else None
        return SelectionRecord(mode=self.mode, candidates=self.candidates, newest_backup_id=newest)


def select_backup(
    restorable: list[Manifest],
    spec: DrillSpec,
    now: datetime,
    rng: random.Random | None = None,
) -> Selection:
    """The backup to drill among ``restorable`` (oldest first): the newest, or with
    ``select: random`` any finished within ``spec.window`` of ``now`` (the newest when
    none is)."""
    newest = restorable[-1] if restorable else None
    if spec.select == "latest" or not restorable:
        return Selection(newest, "latest", len(restorable), newest)
    window: timedelta | None = spec.window
    candidates = [m for m in restorable if window is None or m.finished_at >= now - window]
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
    checks: list[CheckRecord] = field(default_factory=list)
    reason: str | None = None
    runbook_started: float | None = None
    #: what a repository could not serve (read from another): the drill says so
    notes: list[str] = field(default_factory=list)


def run_and_store(
    ctx: Context, policy: PolicyBase, rng: random.Random | None = None
) -> DrillReport:
    """Run the drill of ``policy``, store its reports (repository and local copy) and
    report it as a run. Returns the report with ``html_report`` (the local HTML page) and
    ``storage_problems`` (when the repository copy could not be written). A drill whose
    repository cannot be opened fails with that reason, without starting."""
    try:
        repo: Repository | None = ctx.repository(policy)
    except BackupctlError as exc:
        repo, problem = None, str(exc)
    if repo is None:
        started = ctx.clock()
        outcome = _Outcome(reason=f"cannot start: {problem}")
        report = _report(ctx, policy, new_backup_id(started), started, time.monotonic(), outcome)
    else:
        report = run_drill(ctx, policy, repo, rng)
    copies, problems = _copies(ctx, policy)
    html, stored = store.save(report, repo, ctx.layout, copies)
    problems += stored
    report = report.model_copy(update={"html_report": str(html), "storage_problems": problems})
    ctx.runs.report(policy, drill_event(policy, report))
    return report


def _copies(ctx: Context, policy: PolicyBase) -> tuple[list[Repository], list[str]]:
    """The policy's other repositories, opened (those that do not open: a problem each)."""
    opened, problems = [], []
    for copy in policy.copies:
        try:
            opened.append(ctx.repository_named(policy, copy.name))
        except BackupctlError as exc:
            problems.append(f"{copy.name}: {exc}")
    return opened, problems


def drill_event(policy: PolicyBase, report: DrillReport) -> RunEvent:
    """The drill as a run (kind ``drill``) for the run history, metrics and webhooks."""
    started = datetime.fromisoformat(report.started_at)
    return RunEvent(
        policy.name,
        policy.driver,
        DRILL_KIND,
        "success" if report.passed else "failure",
        started_at=started,
        finished_at=started + timedelta(seconds=report.seconds),
        backup_id=report.backup_id,
        error=report.reason,
        details={
            "drill_id": report.drill_id,
            "rto_seconds": report.rto_seconds,
            "rpo_seconds": report.rpo_seconds,
            "recovery_point": report.recovery_point,
            "html_report": report.html_report,
        },
    )


def run_drill(
    ctx: Context, policy: PolicyBase, repo: Repository, rng: random.Random | None = None
) -> DrillReport:
    """Run the drill of ``policy`` and return its report (never raises for a failed drill:
    a drill that cannot start is a failed drill with a reason). The caller stores it
    (or calls ``run_and_store``)."""
    started_at = ctx.clock()
    clock = time.monotonic()
    drill_id = new_backup_id(started_at)
    sandbox = ctx.layout.drill(drill_id) / "sandbox"
    structlog.contextvars.bind_contextvars(drill_id=drill_id, policy=policy.name)
    try:
        # the policy's lock: no prune deletes the backup, no backup races the drill
        with policy_lock(ctx.layout, policy.name, purpose="drill"):
            outcome = _run(ctx, policy, repo, drill_id, sandbox, rng)
    except LockHeldError as exc:
        outcome = _Outcome(reason=f"cannot start: {exc}")
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
        structlog.contextvars.unbind_contextvars("drill_id", "policy")
    return _report(ctx, policy, drill_id, started_at, clock, outcome)


def _run(
    ctx: Context,
    policy: PolicyBase,
    repo: Repository,
    drill_id: str,
    sandbox: Path,
    rng: random.Random | None,
) -> _Outcome:
    outcome = _Outcome()
    try:
        driver = driver_for(policy)
        sync_policy(ctx.catalog(), repo, policy.name)  # the repository decides, not the cache
        # every repository of the policy, as a restore reads them (a rebuilt host's first
        # one is empty until its next backups: the copies hold what there is)
        read = reading(ctx, policy, driver)
        restorable = read.backups.restorable()
        outcome.selection = select_backup(restorable, policy.drill, ctx.clock(), rng)
        outcome.manifest = outcome.selection.manifest
        if outcome.manifest is None:
            outcome.reason = f"cannot start: policy {policy.name} has no restorable backup"
            return outcome
        read = rank(read, [outcome.manifest])
        run = RestoreRun(drill_id, ctx.layout, ctx.progress)
        outcome.plan = driver.drill_plan(read.repo, outcome.manifest, run, sandbox)
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
    if read.mirror is not None:
        outcome.notes += [
            f"read from another repository: {e.describe()}" for e in read.mirror.events
        ]
    checks = journal.values.get("checks") or []
    outcome.checks = [CheckRecord.model_validate(c, strict=False) for c in checks]
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
    ctx: Context,
    policy: PolicyBase,
    drill_id: str,
    started_at: datetime,
    clock: float,
    outcome: _Outcome,
) -> DrillReport:
    point = outcome.plan.recovery_point if outcome.plan else None
    rto = _rto(outcome, clock)
    rpo = round((started_at - point).total_seconds(), 3) if point and rto is not None else None
    judged_rpo = rpo if _judges_rpo(outcome) else None
    missed = missed_objectives(policy.objectives, judged_rpo, rto)
    limits = objective_seconds(policy.objectives)
    checks = list(outcome.checks)
    for name, measured in (("rpo", rpo), ("rto", rto)):
        limit = limits[f"{name}_seconds"]
        if limit is None or measured is None:
            continue
        if name == "rpo" and judged_rpo is None:
            continue  # the report's notes say why
        miss = next((m for m in missed if m.objective == name), None)
        detail = str(miss) if miss else f"measured {measured:.1f}s within {limit:.0f}s"
        checks.append(CheckRecord(name=f"objective-{name}", passed=miss is None, detail=detail))
    reason = outcome.reason
    if reason is None and rto is None:
        reason = "verification did not pass"
    if reason is None and missed:
        reason = "; ".join(str(m) for m in missed)
    return DrillReport(
        drill_id=drill_id,
        policy=policy.name,
        driver=policy.driver,
        backup_id=outcome.manifest.backup_id if outcome.manifest else None,
        started_at=started_at.isoformat(timespec="seconds"),
        finished_at=ctx.clock().isoformat(timespec="seconds"),
        recovery_point=point.astimezone(UTC).isoformat() if point else None,
        rpo_seconds=rpo,
        rto_seconds=rto,
        objectives=ObjectiveSeconds(**limits),
        passed=reason is None,
        reason=reason,
        missed_objectives=[m.to_dict() for m in missed],
        selection=outcome.selection.record() if outcome.selection else None,
        notes=[
            *outcome.notes,
            *([] if rpo is None or judged_rpo is not None else [_unjudged(outcome)]),
        ],
        seconds=round(time.monotonic() - clock, 3),
        steps=[StepRecord.model_validate(s.to_dict(), strict=False) for s in outcome.steps],
        checks=checks,
    )
