"""``backupctl restore``: plan, run, resume and roll back a restore runbook; its reports.

The command line gives a policy and the driver's typed restore options; the driver
chooses the backup (``choose_backup``) and the steps (``restore_steps``); the runbook
engine runs them under the policy's lock with a journal, so a killed restore can be
finished (``--resume``) or undone (``--rollback``) from the options stored in it.
"""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from backupctl.catalog.manifest import Manifest, read_manifest
from backupctl.drills.store import history_of
from backupctl.drivers.base import RestoreRun
from backupctl.drivers.registry import AnyDriver, driver_for
from backupctl.errors import NotFoundError, UsageError
from backupctl.layout import StateLayout
from backupctl.locks import COPY_LANE, lanes_locked
from backupctl.operations.context import Context
from backupctl.operations.sources import Reading, rank, reading
from backupctl.policy.common import PolicyBase
from backupctl.policy.options import RestoreOptions
from backupctl.runbook.engine import PlannedStep, Runbook, RunbookFailed
from backupctl.runbook.eta import Projection, project, total
from backupctl.runbook.journal import Journal, find_unfinished
from backupctl.runbook.records import StepRecord
from backupctl.runbook.report import (
    BackupSummary,
    RestoreReport,
    build_report,
    past_reports,
    write_report,
)
from backupctl.runbook.step import StepResult
from backupctl.storage.base import Repository
from backupctl.storage.keys import new_backup_id

log = structlog.get_logger()


@dataclass
class RestorePlan:
    """A restore ready to run: the backup, the options, the runbook and its steps."""

    policy: PolicyBase
    manifest: Manifest
    options: RestoreOptions
    runbook: Runbook
    steps: list[PlannedStep]
    projections: list[Projection]  # one per step
    estimate_seconds: float | None  # their sum (None: no step was ever measured)
    unmeasured: int = 0  # steps the sum leaves out
    reading: Reading | None = None  # where the backup is read from

    @property
    def run_id(self) -> str:
        return self.runbook.journal.run_id

    def to_dict(self) -> dict[str, Any]:
        target = self.options.target()
        return {
            "policy": self.manifest.policy,
            "run_id": self.run_id,
            "backup": summary(self.manifest).model_dump(mode="json"),
            "in_place": self.options.in_place,
            "target": str(target) if target else None,
            "options": self.options.model_dump(mode="json"),
            "read_from": self.reading.order() if self.reading else [],
            "repositories": [asdict(p) for p in (self.reading.probes or [])]
            if self.reading
            else [],
            "estimate_seconds": self.estimate_seconds,
            "unmeasured_steps": self.unmeasured,
            "steps": [
                {
                    "name": s.name,
                    "does": s.description,
                    "hooks": s.hooks,
                    "bytes": s.bytes,
                    "estimate": p.to_dict(),
                }
                for s, p in zip(self.steps, self.projections, strict=True)
            ],
        }


def summary(manifest: Manifest) -> BackupSummary:
    return BackupSummary(
        backup_id=manifest.backup_id,
        kind=manifest.kind,
        finished_at=manifest.finished_at.isoformat(),
        raw_bytes=manifest.raw_bytes,
        stored_bytes=manifest.stored_bytes,
    )


def past_steps(
    layout: StateLayout, policy: str, repo: Repository | None = None
) -> list[StepRecord]:
    """Every step of the policy's past restores and drills, the measurements plans project
    from: this host's reports; on a host with none (a new one, after the old was lost),
    the drill reports kept in ``repo``."""
    restores = [step for report in past_reports(layout, policy) for step in report.steps]
    drills = [step for report in history_of(None, layout, policy) for step in report.steps]
    if not restores and not drills and repo is not None:
        drills = [step for report in history_of(repo, layout, policy) for step in report.steps]
    return restores + drills


def plan_restore(
    ctx: Context,
    policy: PolicyBase,
    options: RestoreOptions,
    source: str | None = None,
    read: Reading | None = None,
) -> RestorePlan:
    """Choose the backup ``options`` ask for and build the plan (nothing is changed or
    written). ``source``: the one repository to read from (default: every repository of
    the policy, best first, each object from the next one where it is missing or
    corrupt); ``read``: those repositories already opened (``sources.reading``). Raises
    NotFoundError for an unknown backup, UsageError for a backup recorded as failed,
    options the driver cannot honour, or a point outside the recoverable window."""
    driver = driver_for(policy)
    options = _options_of(driver, options)
    read = read or reading(ctx, policy, driver, source)
    known = driver.choose_backup(options, read.backups)
    read = rank(read, [known])
    repo = read.repo
    manifest = read_manifest(repo, known.policy, known.kind, known.backup_id)
    if manifest.failure is not None:
        who = f"backup {manifest.backup_id} of {manifest.policy}"
        raise UsageError(f"{who} is not restorable: {manifest.failure}")
    run = RestoreRun(new_backup_id(ctx.clock()), ctx.layout, ctx.progress)
    steps = driver.restore_steps(repo, manifest, options, run)
    target, live = options.target(), policy.live_data
    journal = Journal(
        path=ctx.layout.journal(run.run_id),
        run_id=run.run_id,
        kind="restore",
        policy=policy.name,
        params={
            "backup_id": manifest.backup_id,
            "backup_kind": manifest.kind,
            "in_place": options.in_place,
            "datadir": str(target or live) if (target or live) else None,
            "options": options.model_dump(mode="json"),
            "source": source,
        },
        steps=[StepResult(s.name) for s in steps],
    )
    runbook = Runbook(steps, journal)
    planned = runbook.plan()
    past = past_steps(ctx.layout, policy.name, repo)
    projections = [project(p.basis, p.bytes, past) for p in planned]
    estimated, unmeasured = total(projections)
    return RestorePlan(
        policy, manifest, options, runbook, planned, projections, estimated, unmeasured, read
    )


def _options_of(driver: AnyDriver, options: RestoreOptions) -> RestoreOptions:
    wanted: type[RestoreOptions] = driver.policy.restore_options
    if not isinstance(options, wanted):
        raise UsageError(
            f"{driver.name} restores take {wanted.__name__}, not {type(options).__name__}"
        )
    return options


def _restore_locks(ctx: Context, policy: PolicyBase) -> AbstractContextManager[None]:
    """Every lane of the policy but the copies': no backup of any kind runs while its data
    is replaced (and no prune, which holds every lane). A copy to another repository only
    reads backups: an incident's restore never waits for a night's off-site copy."""
    lanes = [lane for lane in driver_for(policy).all_lanes() if lane != COPY_LANE]
    return lanes_locked(ctx.layout, None, policy.name, lanes, "restore")


def run_restore(ctx: Context, plan: RestorePlan) -> RestoreReport:
    """Run a plan under the policy lock. Returns the report; raises RunbookFailed (with the
    report written) when a step failed and everything was undone."""
    policy = plan.policy
    with _restore_locks(ctx, policy):
        _refuse_if_unfinished(ctx.layout, policy.name)
        prune_asides(ctx, policy)
        return _healing(ctx, plan.runbook, plan.manifest, plan.reading)


def resume_restore(
    ctx: Context, policy: PolicyBase, *, rollback: bool, source: str | None = None
) -> RestoreReport:
    """Finish (or undo) the interrupted restore of ``policy`` with the options stored in its
    journal (``source``: read from that repository instead of the one the journal names).
    Raises NotFoundError if there is none."""
    with _restore_locks(ctx, policy):
        journal = find_unfinished(ctx.layout, policy.name)
        if journal is None:
            raise NotFoundError(f"no interrupted restore of policy {policy.name!r}")
        runbook, manifest, read = _journaled(ctx, policy, journal, source)
        log.info("resuming interrupted restore", run_id=journal.run_id, rollback=rollback)
        if rollback:
            return _drive(ctx.layout, runbook, manifest, rollback=True, read=read)
        return _healing(ctx, runbook, manifest, read)


def undo_restore(ctx: Context, policy: PolicyBase, run_id: str) -> RestoreReport:
    """Undo restore ``run_id`` of ``policy``, finished or not (a stack rolled back: the
    systems restored before the one that failed): every step that ran is compensated in
    reverse, as ``--rollback`` does for an interrupted one. Raises NotFoundError for an
    unknown run, RunbookFailed when something could not be undone."""
    with _restore_locks(ctx, policy):
        journal = Journal.load(ctx.layout.journal(run_id))
        if journal.policy != policy.name:
            raise NotFoundError(f"restore {run_id} is not one of policy {policy.name!r}")
        runbook, manifest, read = _journaled(ctx, policy, journal)
        log.info("undoing a restore", run_id=run_id)
        return _drive(ctx.layout, runbook, manifest, rollback=True, read=read)


def _journaled(
    ctx: Context, policy: PolicyBase, journal: Journal, source: str | None = None
) -> tuple[Runbook, Manifest, Reading]:
    """The runbook of a journaled restore, rebuilt from what its journal stored (the
    backup, the options, the repository read: ``source`` instead, when given)."""
    driver = driver_for(policy)
    params = journal.params
    read = reading(ctx, policy, driver, source or params.get("source"))
    read = rank(read, [read.backups.find(params["backup_id"], params["backup_kind"])])
    manifest = read_manifest(read.repo, policy.name, params["backup_kind"], params["backup_id"])
    options = stored_options(policy, params)
    run = RestoreRun(journal.run_id, ctx.layout, ctx.progress, resuming=True)
    return Runbook(driver.restore_steps(read.repo, manifest, options, run), journal), manifest, read


def stored_options(policy: PolicyBase, params: dict[str, Any]) -> RestoreOptions:
    """The options a journal stored. Journals written before the options were stored
    whole kept them as separate parameters of the same names (``to_time``, ``indices``…)."""
    model = policy.restore_options
    stored = params.get("options")
    if not isinstance(stored, dict):
        fields = set(model.model_fields) - {"backup_id"}  # it held the backup chosen
        stored = {k: v for k, v in params.items() if k in fields and v is not None}
    options: RestoreOptions = model.model_validate(stored)
    return options


def _healing(
    ctx: Context, runbook: Runbook, manifest: Manifest, read: Reading | None
) -> RestoreReport:
    """Run the restore; when it failed on an object another repository can serve (the
    failure was undone whole), run it again: that object now comes from there."""
    mirror = read.mirror if read else None
    while True:
        try:
            return _drive(ctx.layout, runbook, manifest, rollback=False, read=read)
        except RunbookFailed as failed:
            if mirror is None or not mirror.learn() or not mirror.healable():
                raise
            try:
                runbook.restart()
            except UsageError:
                raise failed  # noqa: B904 (the failure stands, not why it cannot restart)
            log.warning(
                "restore failed on an object another repository holds: running it again",
                objects=[e.describe() for e in mirror.events if e.served_by is None],
            )


def _drive(
    layout: StateLayout,
    runbook: Runbook,
    manifest: Manifest,
    *,
    rollback: bool,
    read: Reading | None = None,
) -> RestoreReport:
    structlog.contextvars.bind_contextvars(
        run_id=runbook.journal.run_id, backup_id=manifest.backup_id
    )
    try:
        if rollback:
            runbook.rollback()
        else:
            runbook.run()
    except RunbookFailed as exc:
        _record_sources(runbook, read)
        exc.report_path = write_report(layout, build_report(runbook.journal, summary(manifest)))
        raise
    finally:
        structlog.contextvars.unbind_contextvars("run_id", "backup_id")
    _record_sources(runbook, read)
    report = build_report(runbook.journal, summary(manifest))
    write_report(layout, report)
    return report


def _record_sources(runbook: Runbook, read: Reading | None) -> None:
    """Put in the journal (and so the report) the repositories read and what each could
    not serve."""
    if read is None or not read.order():
        return
    values = runbook.journal.values
    values["read_from"] = read.order()
    mirror = read.mirror
    if mirror is not None:
        values["healed"] = [asdict(event) for event in mirror.events]
    runbook.journal.save()


def _refuse_if_unfinished(layout: StateLayout, policy: str) -> None:
    journal = find_unfinished(layout, policy)
    if journal is not None:
        raise UsageError(
            f"restore {journal.run_id} of policy {policy!r} was interrupted; finish it with "
            f"`backupctl restore {policy} --resume` or undo it with "
            f"`backupctl restore {policy} --rollback`"
        )


def prune_asides(ctx: Context, policy: PolicyBase) -> list[str]:
    """Delete data moved aside by successful restores older than the policy's
    ``keep_aside``; return their paths."""
    keep = policy.keep_aside
    if keep is None:
        return []
    removed = []
    now = ctx.clock()
    for report in past_reports(ctx.layout, policy.name):
        aside, finished = report.aside, report.finished_at
        if not (report.passed and aside and finished and Path(aside).exists()):
            continue
        if now - datetime.fromisoformat(finished) > keep:
            shutil.rmtree(aside)
            removed.append(aside)
            log.info("removed old data kept aside by an earlier restore", path=aside)
    return removed
