"""Plan, run, resume and roll back restores; write their reports."""

from __future__ import annotations

import shutil
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from backupctl.catalog.manifest import Manifest, read_manifest
from backupctl.drivers.base import RestoreRequest
from backupctl.drivers.registry import driver_for
from backupctl.errors import NotFoundError, UsageError
from backupctl.jobs import new_backup_id
from backupctl.policy.common import PolicyBase
from backupctl.progress import ProgressFactory, no_progress
from backupctl.runbook.engine import PlannedStep, Runbook, RunbookFailed
from backupctl.runbook.journal import Journal, find_unfinished, journal_dir
from backupctl.runbook.report import build_report, past_reports, write_report
from backupctl.runbook.step import StepResult
from backupctl.scheduling.locks import policy_lock
from backupctl.storage.base import Repository

log = structlog.get_logger()


@dataclass
class RestorePlan:
    manifest: Manifest
    runbook: Runbook
    steps: list[PlannedStep]
    estimate_seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "policy": m.policy,
            "run_id": self.runbook.journal.run_id,
            "backup": summary(m),
            "target_datadir": self.runbook.journal.params["target_datadir"],
            "target_dir": self.runbook.journal.params.get("target_dir"),
            "estimate_seconds": self.estimate_seconds,
            "steps": [
                {"name": s.name, "does": s.description, "hooks": s.hooks} for s in self.steps
            ],
        }


def summary(manifest: Manifest) -> dict[str, Any]:
    return {
        "backup_id": manifest.backup_id,
        "kind": manifest.kind,
        "finished_at": manifest.finished_at.isoformat(),
        "raw_bytes": manifest.raw_bytes,
        "stored_bytes": manifest.stored_bytes,
    }


def estimate(state_dir: Path, policy: str, raw_bytes: int) -> float | None:
    """Seconds a restore of ``raw_bytes`` should take, from past successful restores."""
    rates = [
        r["seconds"] / r["backup"]["raw_bytes"]
        for r in past_reports(state_dir, policy)
        if r.get("passed") and r.get("backup", {}).get("raw_bytes")
    ]
    return round(statistics.median(rates) * raw_bytes, 1) if rates else None


def _runbook(
    policy: PolicyBase,
    repo: Repository,
    manifest: Manifest,
    request: RestoreRequest,
    journal: Journal | None = None,
) -> Runbook:
    steps = driver_for(policy).restore_steps(repo, manifest, request)
    if journal is None:
        target = request.target_datadir
        live: Path | None = target or request.target_dir or getattr(policy, "datadir", None)
        journal = Journal(
            path=journal_dir(request.state_dir) / f"{request.run_id}.json",
            run_id=request.run_id,
            kind="restore",
            policy=policy.name,
            params={
                "backup_id": manifest.backup_id,
                "backup_kind": manifest.kind,
                "target_datadir": str(target) if target else None,
                "datadir": str(live) if live else None,
                "to_time": request.to_time.isoformat() if request.to_time else None,
                "to_gtid": request.to_gtid,
                "at": request.at,
                "target_dir": str(request.target_dir) if request.target_dir else None,
                "path": str(request.path) if request.path else None,
                "indices": request.indices,
            },
            steps=[StepResult(s.name) for s in steps],
        )
    return Runbook(steps, journal)


def plan_restore(
    policy: PolicyBase,
    repo: Repository,
    manifest: Manifest,
    state_dir: Path,
    target_datadir: Path | None = None,
    progress: ProgressFactory = no_progress,
    to_time: datetime | None = None,
    to_gtid: str | None = None,
    indices: list[str] | None = None,
    *,
    at: str | None = None,
    target_dir: Path | None = None,
    path: Path | None = None,
) -> RestorePlan:
    """Build the plan (nothing is changed or written). Raises UsageError for a backup
    recorded as failed, or a ``to_time`` outside the recoverable window."""
    if manifest.failure is not None:
        who = f"backup {manifest.backup_id} of {manifest.policy}"
        raise UsageError(f"{who} is not restorable: {manifest.failure}")
    run_id = new_backup_id(datetime.now(UTC))
    request = RestoreRequest(
        run_id,
        state_dir,
        target_datadir,
        progress,
        to_time,
        to_gtid,
        indices=indices,
        at=at,
        target_dir=target_dir,
        path=path,
    )
    runbook = _runbook(policy, repo, manifest, request)
    return RestorePlan(
        manifest, runbook, runbook.plan(), estimate(state_dir, policy.name, manifest.raw_bytes)
    )


def execute(plan: RestorePlan, policy: PolicyBase, state_dir: Path) -> dict[str, Any]:
    """Run a plan under the policy lock. Returns the report; raises RunbookFailed (with the
    report written) when a step failed and everything was undone."""
    with policy_lock(state_dir, policy.name, purpose="restore"):
        _refuse_if_unfinished(state_dir, policy.name)
        prune_asides(state_dir, policy)
        return _drive(plan.runbook, plan.manifest, state_dir, rollback=False)


def resume(
    policy: PolicyBase,
    repo: Repository,
    state_dir: Path,
    *,
    rollback: bool,
    progress: ProgressFactory = no_progress,
) -> dict[str, Any]:
    """Finish (or undo) the interrupted restore of ``policy``. Raises NotFoundError if none."""
    with policy_lock(state_dir, policy.name, purpose="restore"):
        journal = find_unfinished(state_dir, policy.name)
        if journal is None:
            raise NotFoundError(f"no interrupted restore of policy {policy.name!r}")
        params = journal.params
        manifest = read_manifest(repo, policy.name, params["backup_kind"], params["backup_id"])
        target = Path(params["target_datadir"]) if params["target_datadir"] else None
        to_time = datetime.fromisoformat(params["to_time"]) if params.get("to_time") else None
        request = RestoreRequest(
            journal.run_id,
            state_dir,
            target,
            progress,
            to_time,
            params.get("to_gtid"),
            indices=params.get("indices"),
            at=params.get("at"),
            target_dir=_optional_path(params.get("target_dir")),
            path=_optional_path(params.get("path")),
        )
        runbook = _runbook(policy, repo, manifest, request, journal)
        log.info("resuming interrupted restore", run_id=journal.run_id, rollback=rollback)
        return _drive(runbook, manifest, state_dir, rollback=rollback)


def _drive(
    runbook: Runbook, manifest: Manifest, state_dir: Path, *, rollback: bool
) -> dict[str, Any]:
    structlog.contextvars.bind_contextvars(
        run_id=runbook.journal.run_id, backup_id=manifest.backup_id
    )
    try:
        if rollback:
            runbook.rollback()
        else:
            runbook.run()
    except RunbookFailed as exc:
        exc.report_path = write_report(state_dir, build_report(runbook.journal, summary(manifest)))
        raise
    finally:
        structlog.contextvars.unbind_contextvars("run_id", "backup_id")
    report = build_report(runbook.journal, summary(manifest))
    write_report(state_dir, report)
    return report


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _refuse_if_unfinished(state_dir: Path, policy: str) -> None:
    journal = find_unfinished(state_dir, policy)
    if journal is not None:
        raise UsageError(
            f"restore {journal.run_id} of policy {policy!r} was interrupted; finish it with "
            "`backupctl restore --resume` or undo it with `backupctl restore --rollback`"
        )


def prune_asides(state_dir: Path, policy: PolicyBase) -> list[str]:
    """Delete datadirs moved aside by successful restores older than ``restore.keep_aside``."""
    keep = getattr(getattr(policy, "restore", None), "keep_aside", None)
    if keep is None:
        return []
    removed = []
    now = datetime.now(UTC)
    for report in past_reports(state_dir, policy.name):
        aside, finished = report.get("aside"), report.get("finished_at")
        if not (report.get("passed") and aside and finished and Path(aside).exists()):
            continue
        if now - datetime.fromisoformat(finished) > keep:
            shutil.rmtree(aside)
            removed.append(aside)
            log.info("removed old datadir kept aside by an earlier restore", path=aside)
    return removed
