"""One scheduled job: claim it, back up and prune (or drill), record the outcome.

``run-due`` and the ``scheduler`` daemon both run jobs through ``JobRunner``, so they
keep the same state file and behave the same way.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import structlog

from backupctl.catalog.manifest import Manifest
from backupctl.clock import Clock, utc_now
from backupctl.drills.report import DrillReport
from backupctl.errors import BackupctlError, LockHeldError, NothingChanged
from backupctl.operations.backup import run_backup
from backupctl.operations.context import Context
from backupctl.operations.copy import copy_after_backup
from backupctl.operations.prune import prune_after_backup
from backupctl.policy.common import PolicyBase
from backupctl.policy.stack import Stack
from backupctl.scheduling.due import Claim, claim_job, next_due, register_jobs
from backupctl.scheduling.plan import DRILL, ScheduledJob
from backupctl.scheduling.state import ScheduleState

if TYPE_CHECKING:  # drills load only when drilling
    from backupctl.operations.stack_drill import StackDrillReport

log = structlog.get_logger()

Outcome = Literal["ok", "unchanged", "failed", "skipped"]
#: (context, policy, kind) -> the manifest of the backup
BackupFunction = Callable[[Context, PolicyBase, str], Manifest]
#: (context, policy) -> the drill's stored report
DrillFunction = Callable[[Context, PolicyBase], DrillReport]
#: (context, stack, every policy) -> the stack drill's report
StackDrillFunction = Callable[[Context, Stack, Sequence[PolicyBase]], "StackDrillReport"]


def _run_backup(ctx: Context, policy: PolicyBase, kind: str) -> Manifest:
    return run_backup(ctx, policy, kind)


def _run_drill(ctx: Context, policy: PolicyBase) -> DrillReport:
    from backupctl.operations.drill import run_and_store  # drivers load only when drilling

    return run_and_store(ctx, policy)


def _run_stack_drill(
    ctx: Context, stack: Stack, policies: Sequence[PolicyBase]
) -> StackDrillReport:
    from backupctl.operations.stack_drill import run_stack_drill

    return run_stack_drill(ctx, stack, list(policies))


@dataclass(frozen=True)
class JobResult:
    """What one run of a job came to."""

    job: str
    policy: str
    kind: str
    outcome: Outcome
    detail: str
    due_at: datetime
    started_at: datetime
    finished_at: datetime
    backup_id: str | None = None
    pruned: int = 0

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        for name in ("due_at", "started_at", "finished_at"):
            data[name] = data[name].isoformat()
        return data


@dataclass
class JobRunner:
    """Runs scheduled jobs with ``ctx`` (its state directory's schedule state).

    ``clock`` decides what is due (default: the context's; ``run-due --now`` gives
    another); backups, prunes and the times they record use the context's clock.
    """

    ctx: Context
    clock: Clock | None = None
    backup: BackupFunction = _run_backup
    drill: DrillFunction = _run_drill
    stack_drill: StackDrillFunction = _run_stack_drill
    #: every policy (a stack drill drills those of its stack)
    policies: Sequence[PolicyBase] = ()
    state: ScheduleState = field(init=False)

    def __post_init__(self) -> None:
        self.state = ScheduleState(self.ctx.layout)
        if self.clock is None:
            self.clock = self.ctx.clock

    def now(self) -> datetime:
        """The time that decides what is due."""
        assert self.clock is not None  # set in __post_init__
        return self.clock()

    def register(self, jobs: list[ScheduledJob]) -> None:
        """Record jobs never seen before, so their first slot is the next one from now."""
        register_jobs(self.state, jobs, self.now())

    def next_due(self, job: ScheduledJob) -> datetime | None:
        """When ``job`` is next due according to the state (a past time: overdue)."""
        return next_due(self.state.read().get(job.id), job, self.now())

    def run_if_due(
        self, job: ScheduledJob, policy: PolicyBase | Stack, catch_up: bool = False
    ) -> JobResult | None:
        """Run ``job`` (of ``policy``, or of a stack for a stack drill) if it is due now;
        None when it is not.

        Never raises for a failed backup: the result says ``failed``. Raises
        ScheduleStateError when the state file cannot be read or written.
        """
        claim = claim_job(self.state, job, self.now(), catch_up)
        if claim is None:
            return None
        if claim.busy is not None:
            log.warning("job skipped", job=job.id, reason=claim.busy)
            return self._result(job, claim, "skipped", claim.busy, utc_now())
        result = None
        try:
            result = self._execute(job, policy, claim)
        finally:
            self._record(job, result)
        return result

    def _execute(self, job: ScheduledJob, policy: PolicyBase | Stack, claim: Claim) -> JobResult:
        started = utc_now()
        log.info("job started", job=job.id, kind=job.kind, due_at=claim.due_at.isoformat())
        outcome: Outcome = "ok"
        backup_id, pruned = None, 0
        if isinstance(policy, Stack):
            outcome, detail = self._stack_drill(policy)
            return self._finish(job, claim, started, outcome, detail, None)
        try:
            if job.action == DRILL:
                outcome, detail, backup_id = self._drill(policy)
                return self._finish(job, claim, started, outcome, detail, backup_id)
            manifest = self.backup(self.ctx, policy, job.kind)
        except NothingChanged as exc:
            outcome, detail = "unchanged", str(exc)
        except LockHeldError as exc:
            outcome, detail = "skipped", f"still running: {exc}"
        except BackupctlError as exc:
            outcome, detail = "failed", str(exc)
        except Exception as exc:  # a bug in one job must not stop the others: say it loudly
            log.exception("job failed with an internal error", job=job.id)
            outcome, detail = "failed", f"internal error: {type(exc).__name__}: {exc}"
        else:
            backup_id, detail = manifest.backup_id, f"backup {manifest.backup_id} stored"
            copied = copy_after_backup(self.ctx, policy)
            if copied.error:
                outcome, detail = "failed", f"{detail}; copy failed: {copied.error}"
            after = prune_after_backup(self.ctx, policy)
            pruned = after.pruned
            if after.error is not None:
                outcome, detail = "failed", f"{detail}; prune failed: {after.error}"
        return self._finish(job, claim, started, outcome, detail, backup_id, pruned)

    def _finish(
        self,
        job: ScheduledJob,
        claim: Claim,
        started: datetime,
        outcome: Outcome,
        detail: str,
        backup_id: str | None,
        pruned: int = 0,
    ) -> JobResult:
        result = self._result(job, claim, outcome, detail, started, backup_id, pruned)
        log.log(
            _LEVELS[outcome],
            "job finished",
            job=job.id,
            outcome=outcome,
            detail=detail,
            backup_id=backup_id,
            pruned=pruned,
            seconds=round((result.finished_at - started).total_seconds(), 1),
        )
        return result

    def _drill(self, policy: PolicyBase) -> tuple[Outcome, str, str | None]:
        """Run the policy's drill: (outcome, detail, the backup drilled). A failed drill is a
        failed job; its report is stored like one run by hand."""
        report = self.drill(self.ctx, policy)
        name = f"drill {report.drill_id}"
        if report.passed:
            return "ok", f"{name} passed; report {report.html_report}", report.backup_id
        return "failed", f"{name} failed: {report.reason}", report.backup_id

    def _stack_drill(self, stack: Stack) -> tuple[Outcome, str]:
        """Run the stack's drill: a failed or missed drill is a failed job."""
        try:
            report = self.stack_drill(self.ctx, stack, self.policies)
        except BackupctlError as exc:
            return "failed", f"stack drill of {stack.name} could not run: {exc}"
        name = f"stack drill {report.drill_id}"
        if report.passed:
            return "ok", f"{name} passed; RTO {report.rto_seconds}s"
        return "failed", f"{name} failed: {'; '.join(report.missed)}"

    @staticmethod
    def _result(
        job: ScheduledJob,
        claim: Claim,
        outcome: Outcome,
        detail: str,
        started: datetime,
        backup_id: str | None = None,
        pruned: int = 0,
    ) -> JobResult:
        return JobResult(
            job=job.id,
            policy=job.policy,
            kind=job.kind,
            outcome=outcome,
            detail=detail,
            due_at=claim.due_at,
            started_at=started,
            finished_at=utc_now(),
            backup_id=backup_id,
            pruned=pruned,
        )

    def _record(self, job: ScheduledJob, result: JobResult | None) -> None:
        """Write the run's outcome (or, when interrupted, that it was) and clear its mark."""
        with self.state.update() as jobs:
            record = jobs[job.id]
            mark = record.running
            if mark is not None and (mark.pid, mark.host) == (os.getpid(), socket.gethostname()):
                record.running = None
            if result is None:  # interrupted (SIGTERM, Ctrl-C): the exception propagates
                record.last_outcome, record.last_detail = "failed", "interrupted"
                record.last_finished = utc_now()
                return
            if result.outcome == "skipped":
                record.last_skipped, record.last_skip_reason = result.finished_at, result.detail
                return
            record.last_started, record.last_finished = result.started_at, result.finished_at
            record.last_outcome, record.last_detail = result.outcome, result.detail
            record.last_backup_id = result.backup_id
            if result.outcome in ("ok", "unchanged"):
                record.last_success = result.finished_at


_LEVELS: dict[Outcome, int] = {
    "ok": logging.INFO,
    "unchanged": logging.INFO,
    "skipped": logging.WARNING,
    "failed": logging.ERROR,
}
