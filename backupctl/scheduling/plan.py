"""Scheduled jobs: one per (policy, schedule key), read from the policies' ``schedule:``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from apscheduler.triggers.base import BaseTrigger

from backupctl.cron.expressions import CONTINUOUS, to_cron
from backupctl.cron.parser import CronSpec, parse_cron
from backupctl.cron.triggers import TriggerFactory, cron_trigger
from backupctl.policy.common import PolicyBase
from backupctl.policy.stack import Stack

Action = Literal["backup", "drill", "stackdrill"]
#: the schedule key (and job kind) of a policy's recovery drill: ``shop-db:drill``
DRILL: Action = "drill"
#: the key (and kind) of a stack's drill (``app:stackdrill``; ``policy`` is the stack)
STACK_DRILL: Action = "stackdrill"


@dataclass(frozen=True)
class ScheduledJob:
    """``backup POLICY --type KIND`` (or, for ``action`` drill, ``drill run POLICY``)
    whenever ``expression`` matches, in ``timezone`` (None: the host's local time, as cron
    and systemd read it)."""

    policy: str
    key: str
    kind: str
    expression: str
    timezone: str | None
    spec: CronSpec = field(repr=False)
    trigger: BaseTrigger = field(repr=False, compare=False)
    source: Path | None = field(default=None, compare=False)
    action: Action = "backup"

    @property
    def id(self) -> str:
        """``policy:key``, e.g. ``shop-db:full``: the job's name in the state and the logs."""
        return f"{self.policy}:{self.key}"

    @property
    def cron(self) -> str:
        """The five-field form of the expression (aliases expanded)."""
        return self.spec.expression

    def next_slot(self, after: datetime) -> datetime | None:
        """The first time the schedule matches strictly after ``after`` (None: never)."""
        slot: datetime | None = self.trigger.get_next_fire_time(after, after)
        return slot

    @property
    def command(self) -> list[str]:
        """The backupctl command (after the global options) that runs this job by hand."""
        if self.action == DRILL:
            return ["drill", "run", self.policy]
        if self.action == STACK_DRILL:
            return ["drill", "run", "--stack", self.policy]
        return ["backup", self.policy, "--type", self.kind]

    @property
    def title(self) -> str:
        """``full backup of policy shop-db`` / ``recovery drill of policy shop-db``."""
        if self.action == STACK_DRILL:
            return f"recovery drill of stack {self.policy}"
        what = "recovery drill" if self.action == DRILL else f"{self.kind} backup"
        return f"{what} of policy {self.policy}"

    def describe(self) -> str:
        zone = f" {self.timezone}" if self.timezone else ""
        return f"{self.id} ({self.kind}): {self.expression!r}{zone}"


@dataclass(frozen=True)
class ContinuousSchedule:
    """A schedule key set to ``continuous``: a service (``binlog follow``), not a job."""

    policy: str
    key: str
    kind: str

    @property
    def note(self) -> str:
        return (
            f"{self.policy}: schedule.{self.key} is continuous: run `backupctl binlog follow "
            f"{self.policy}` as a service (systemctl enable --now "
            f"backupctl-binlog-follow@{self.policy}.service), not as a scheduled job"
        )


@dataclass(frozen=True)
class JobPlan:
    jobs: list[ScheduledJob]
    continuous: list[ContinuousSchedule]

    def job(self, job_id: str) -> ScheduledJob | None:
        return next((j for j in self.jobs if j.id == job_id), None)


def plan_jobs(
    policies: Iterable[PolicyBase],
    trigger_factory: TriggerFactory = cron_trigger,
    stacks: Iterable[Stack] = (),
) -> JobPlan:
    """Every scheduled job of ``policies`` (by policy name, then in the schedule block's
    order, so a full backup comes before the binlogs due at the same time).

    A policy also gets its ``drill.schedule`` as a job (key ``drill``), after its backups;
    a stack its ``drill.schedule`` (key ``stackdrill``, in the host's time zone), after
    every policy's jobs. Expressions were validated when the policies were loaded.
    """
    jobs: list[ScheduledJob] = []
    continuous: list[ContinuousSchedule] = []
    for policy in sorted(policies, key=lambda p: p.name):
        schedule = policy.schedule
        entries: list[tuple[str, str, str, Action]] = [
            (key, kind, expression, "backup") for key, kind, expression in schedule.entries()
        ]
        if policy.drill.schedule is not None:
            entries.append((DRILL, DRILL, policy.drill.schedule, "drill"))
        for key, kind, expression, action in entries:
            if expression == CONTINUOUS:
                continuous.append(ContinuousSchedule(policy.name, key, kind))
                continue
            spec = parse_cron(to_cron(expression))
            jobs.append(
                ScheduledJob(
                    policy=policy.name,
                    key=key,
                    kind=kind,
                    expression=expression,
                    timezone=schedule.timezone,
                    spec=spec,
                    trigger=trigger_factory(spec, schedule.timezone),
                    source=policy.source,
                    action=action,
                )
            )
    for stack in sorted(stacks, key=lambda s: s.name):
        if stack.drill.schedule is None:
            continue
        spec = parse_cron(to_cron(stack.drill.schedule))
        jobs.append(
            ScheduledJob(
                policy=stack.name,
                key=STACK_DRILL,
                kind=STACK_DRILL,
                expression=stack.drill.schedule,
                timezone=None,
                spec=spec,
                trigger=trigger_factory(spec, None),
                source=stack.source,
                action="stackdrill",
            )
        )
    return JobPlan(jobs, continuous)
