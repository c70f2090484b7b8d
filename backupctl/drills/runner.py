"""Run one policy's recovery drill: the driver's sandbox restore, timed and judged."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from backupctl.catalog.manifest import Manifest, scan_manifests
from backupctl.drills.objectives import missed_objectives, objective_seconds
from backupctl.drivers.base import DrillPlan, RestoreRequest
from backupctl.drivers.registry import driver_for
from backupctl.errors import BackupctlError, LockHeldError
from backupctl.jobs import new_backup_id
from backupctl.policy.common import PolicyBase
from backupctl.progress import ProgressFactory, no_progress
from backupctl.runbook.engine import Runbook, RunbookFailed
from backupctl.runbook.journal import Journal
from backupctl.runbook.step import StepResult
from backupctl.scheduling.locks import policy_lock
from backupctl.storage.base import Repository

log = structlog.get_logger()


def drill_dir(state_dir: Path, drill_id: str) -> Path:
    """Where a drill keeps its journal, its sandbox (removed after) and its local reports."""
    return state_dir / "drills" / drill_id


def newest_restorable(repo: Repository, policy: PolicyBase) -> Manifest | None:
    """The newest restorable backup of the driver's main kind, or None."""
    kind = driver_for(policy).default_kind
    backups = [m for m in scan_manifests(repo, policy.name) if m.kind == kind and m.restorable]
    return max(backups, key=lambda m: (m.finished_at, m.backup_id), default=None)


@dataclass
class _Outcome:
    """What a drill found out while it ran."""

    manifest: Manifest | None = None
    plan: DrillPlan | None = None
    steps: list[StepResult] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    runbook_started: float | None = None


def run_drill(
    policy: PolicyBase,
    repo: Repository,
    state_dir: Path,
    progress: ProgressFactory = no_progress,
) -> dict[str, Any]:
    """Run the drill of ``policy`` and return its report (never raises for a failed drill:
    a drill that cannot start is a failed drill with a reason). The caller stores it."""
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    drill_id = new_backup_id(started_at)
    home = drill_dir(state_dir, drill_id)
    sandbox = home / "sandbox"
    structlog.contextvars.bind_contextvars(drill_id=drill_id, policy=policy.name)
    try:
        # the policy's lock: no prune deletes the backup, no backup races the drill
        with policy_lock(state_dir, policy.name, purpose="drill"):
            outcome = _run(policy, repo, state_dir, drill_id, sandbox, progress)
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
) -> _Outcome:
    outcome = _Outcome()
    try:
        outcome.manifest = newest_restorable(repo, policy)
        if outcome.manifest is None:
            outcome.reason = f"cannot start: policy {policy.name} has no restorable backup"
            return outcome
        request = RestoreRequest(drill_id, state_dir, progress=progress, target_dir=sandbox)
        outcome.plan = driver_for(policy).drill_plan(repo, outcome.manifest, request)
    except BackupctlError as exc:
        outcome.reason = f"cannot start: {exc}"
        return outcome
    sandbox.mkdir(parents=True, exist_ok=True)
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
    missed = missed_objectives(policy.objectives, rpo, rto)
    checks = list(outcome.checks)
    for name, measured in (("rpo", rpo), ("rto", rto)):
        limit = objective_seconds(policy.objectives)[f"{name}_seconds"]
        if limit is None or measured is None:
            continue
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
        "seconds": round(time.monotonic() - clock, 3),
        "steps": [
            {"name": s.name, "status": s.status, "seconds": s.seconds, "detail": s.detail}
            for s in outcome.steps
        ],
        "checks": checks,
    }
