"""``run-due``: run every job whose time has come since it last ran, then report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from backupctl.errors import BackupctlError
from backupctl.operations.jobs import JobResult, JobRunner
from backupctl.policy.common import PolicyBase
from backupctl.policy.stack import Stack
from backupctl.scheduling.plan import STACK_DRILL, ContinuousSchedule, JobPlan


class ScheduledJobsFailed(BackupctlError):
    """At least one scheduled job failed (the others ran)."""


@dataclass(frozen=True)
class Waiting:
    """A job that was not due: when it is next due (None: its schedule never matches)."""

    job: str
    next_due: datetime | None


@dataclass(frozen=True)
class RunDueReport:
    now: datetime
    results: list[JobResult]
    waiting: list[Waiting]
    continuous: list[ContinuousSchedule]

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if r.failed]

    def to_dict(self) -> dict[str, object]:
        return {
            "now": self.now.isoformat(),
            "ran": [r.to_dict() for r in self.results],
            "waiting": [
                {"job": w.job, "next_due": w.next_due.isoformat() if w.next_due else None}
                for w in self.waiting
            ],
            "continuous": [c.note for c in self.continuous],
            "failed": [r.job for r in self.failed],
        }

    def raise_for_failures(self) -> None:
        """Raise ScheduledJobsFailed (exit 1) naming the jobs that failed, if any did."""
        if self.failed:
            names = ", ".join(f"{r.job} ({r.detail.splitlines()[0]})" for r in self.failed)
            raise ScheduledJobsFailed(f"{len(self.failed)} scheduled job(s) failed: {names}")


def run_due(
    plan: JobPlan,
    policies: Mapping[str, PolicyBase],
    runner: JobRunner,
    catch_up: bool = False,
    stacks: Mapping[str, Stack] | None = None,
) -> RunDueReport:
    """Run, one after the other, every job of ``plan`` that is due now (by ``runner``'s
    clock), each at most once however many of its slots passed; a failure does not stop
    the others. ``catch_up`` also runs jobs never seen before.
    """
    now = runner.now()
    results: list[JobResult] = []
    waiting: list[Waiting] = []
    for job in plan.jobs:
        target = (stacks or {})[job.policy] if job.action == STACK_DRILL else policies[job.policy]
        result = runner.run_if_due(job, target, catch_up)
        if result is None:
            waiting.append(Waiting(job.id, runner.next_due(job)))
        else:
            results.append(result)
    return RunDueReport(now, results, waiting, plan.continuous)
