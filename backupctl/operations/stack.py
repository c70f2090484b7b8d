"""``backupctl restore --stack NAME --to-time T``: the policies of a stack restored to one
point in time, in the stack's order (a ``parallel`` group side by side), under one
journal.

Each system gets the restore its driver makes of a moment (``Driver.options_at``):
MariaDB by point-in-time recovery to T exactly; Elasticsearch, models and configuration
as their newest backup at or before T. The plan and the report state each system's
**skew**: how far its point is behind T ("search 14 min behind the target").

A failure stops the stack with a clear state (``--on-failure stop``, the default: the
systems already restored stay, the rest are not started) or undoes the systems already
restored, newest first (``--on-failure rollback``; a replace-mode Elasticsearch restore
cannot be undone and says so). ``--resume`` runs what is left; ``--rollback`` undoes
what was done.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import structlog

from backupctl.drivers.registry import driver_for
from backupctl.errors import BackupctlError, NotFoundError, UsageError
from backupctl.operations.context import Context
from backupctl.operations.restore import (
    RestorePlan,
    plan_restore,
    resume_restore,
    run_restore,
    undo_restore,
)
from backupctl.operations.sources import reading
from backupctl.policy.common import PolicyBase
from backupctl.policy.stack import Stack
from backupctl.runbook.journal import find_unfinished
from backupctl.statefile import private_dir, write_atomic
from backupctl.storage.keys import new_backup_id
from backupctl.units import human_duration

log = structlog.get_logger()

OnFailure = Literal["stop", "rollback"]


def describe_skew(policy: str, seconds: float) -> str:
    if seconds <= 0:
        return f"{policy} at the target"
    return f"{policy} {human_duration(seconds)} behind the target"


@dataclass
class StackMember:
    """One system of a stack restore: its plan and the moment it reaches."""

    policy: PolicyBase
    plan: RestorePlan
    point: datetime

    def skew_seconds(self, moment: datetime) -> float:
        return round(max(0.0, (moment - self.point).total_seconds()), 3)


@dataclass
class StackPlan:
    stack: Stack
    moment: datetime
    members: list[StackMember]

    def member(self, name: str) -> StackMember:
        return next(m for m in self.members if m.policy.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack.name,
            "to_time": self.moment.isoformat(),
            "waves": self.stack.waves(),
            "members": [
                {
                    "policy": m.policy.name,
                    "driver": m.policy.driver,
                    "backup_id": m.plan.manifest.backup_id,
                    "point": m.point.isoformat(),
                    "skew_seconds": m.skew_seconds(self.moment),
                    "skew": describe_skew(m.policy.name, m.skew_seconds(self.moment)),
                    "plan": m.plan.to_dict(),
                }
                for m in self.members
            ],
            "max_skew_seconds": max(m.skew_seconds(self.moment) for m in self.members),
        }


def staging_of(ctx: Context, stack: str) -> Path:
    return ctx.layout.root.absolute() / "stacks" / "staging" / stack


def plan_stack(
    ctx: Context, stack: Stack, policies: list[PolicyBase], moment: datetime
) -> StackPlan:
    """Plan each system's restore to ``moment`` (nothing changes). Raises UsageError for
    a stack naming an unknown policy, NotFoundError for a system with nothing at or
    before ``moment``, and what ``plan_restore`` raises."""
    by_name = {p.name: p for p in policies}
    unknown = [name for name in stack.policies if name not in by_name]
    if unknown:
        raise UsageError(f"stack {stack.name!r} names unknown policies: {', '.join(unknown)}")
    members = []
    staging = staging_of(ctx, stack.name) / new_backup_id(ctx.clock())
    for name in stack.policies:
        policy = by_name[name]
        driver = driver_for(policy)
        read = reading(ctx, policy, driver)
        options = driver.options_at(moment, read.backups, staging / name)
        plan = plan_restore(ctx, policy, options, read=read)
        members.append(StackMember(policy, plan, driver.point_reached(options, plan.manifest)))
    return StackPlan(stack, moment, members)


# -- the journal of a stack restore ---------------------------------------------------------

MemberState = Literal["pending", "running", "completed", "failed", "rolled-back", "not-undone"]


@dataclass
class MemberRecord:
    policy: str
    run_id: str | None = None
    state: MemberState = "pending"
    seconds: float = 0.0
    point: str | None = None
    skew_seconds: float | None = None
    error: str | None = None


@dataclass
class StackJournal:
    """A stack restore's progress on disk, rewritten at every transition."""

    run_id: str
    stack: str
    to_time: str
    on_failure: OnFailure
    members: list[MemberRecord]
    state: str = "running"
    started_at: str = ""
    finished_at: str | None = None
    seconds: float = 0.0
    path: Path | None = field(default=None, repr=False)

    def save(self) -> None:
        assert self.path is not None
        private_dir(self.path.parent)
        data = asdict(self)
        data.pop("path")
        write_atomic(self.path, json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> StackJournal:
        data = json.loads(path.read_text())
        data["members"] = [MemberRecord(**m) for m in data["members"]]
        return cls(**data, path=path)

    @property
    def unfinished(self) -> bool:
        return self.state in ("running", "stopped")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path")
        return data


def journal_dir(ctx: Context) -> Path:
    return ctx.layout.root / "stacks"


def find_unfinished_stack(ctx: Context, stack: str) -> StackJournal | None:
    directory = journal_dir(ctx)
    if not directory.is_dir():
        return None
    for path in sorted(directory.glob("*.json"), reverse=True):
        journal = StackJournal.load(path)
        if journal.stack == stack and journal.unfinished:
            return journal
    return None


def run_stack(ctx: Context, plan: StackPlan, on_failure: OnFailure = "stop") -> StackJournal:
    """Restore every system of ``plan``, wave by wave. Returns the journal, finished:
    ``completed``, ``stopped`` (a failure, the rest not started) or ``rolled-back``.
    Raises UsageError when a restore of the stack was interrupted (resume or roll it back
    first)."""
    if (earlier := find_unfinished_stack(ctx, plan.stack.name)) is not None:
        raise UsageError(
            f"stack restore {earlier.run_id} of {plan.stack.name!r} did not finish "
            f"({earlier.state}): `backupctl restore --stack {plan.stack.name} --resume` or "
            "`--rollback`"
        )
    run_id = new_backup_id(ctx.clock())
    journal = StackJournal(
        run_id=run_id,
        stack=plan.stack.name,
        to_time=plan.moment.isoformat(),
        on_failure=on_failure,
        members=[MemberRecord(m.policy.name, m.plan.run_id) for m in plan.members],
        started_at=ctx.clock().isoformat(),
        path=journal_dir(ctx) / f"{run_id}.json",
    )
    journal.save()
    started = time.monotonic()
    _run_waves(ctx, plan, journal, set(plan.stack.policies))
    return _finish(ctx, journal, started, {m.policy.name: m.policy for m in plan.members})


def _record(journal: StackJournal, policy: str) -> MemberRecord:
    return next(r for r in journal.members if r.policy == policy)


def _run_waves(ctx: Context, plan: StackPlan, journal: StackJournal, only: set[str]) -> None:
    """Restore the systems named in ``only``, wave after wave, until a wave has a failure
    (the waves after it are not started)."""
    for wave in plan.stack.waves():
        runs = []
        for name in (n for n in wave if n in only):
            record = _record(journal, name)
            record.run_id, record.error = plan.member(name).plan.run_id, None
            runs.append((plan.member(name), record))
        if not runs:
            continue
        _run_wave(ctx, plan, journal, runs)
        if any(record.state == "failed" for _member, record in runs):
            return


def _run_wave(
    ctx: Context,
    plan: StackPlan,
    journal: StackJournal,
    runs: list[tuple[StackMember, MemberRecord]],
) -> None:
    def one(member: StackMember, record: MemberRecord) -> None:
        began = time.monotonic()
        record.state = "running"
        journal.save()
        try:
            run_restore(ctx, member.plan)
        except BackupctlError as exc:
            record.state, record.error = "failed", str(exc).splitlines()[0]
        else:
            record.state = "completed"
            record.point = member.point.isoformat()
            record.skew_seconds = member.skew_seconds(plan.moment)
        record.seconds = round(time.monotonic() - began, 3)
        journal.save()

    if len(runs) == 1:
        one(*runs[0])
        return
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        for future in [pool.submit(one, member, record) for member, record in runs]:
            future.result()


def _finish(
    ctx: Context, journal: StackJournal, started: float, policies: dict[str, PolicyBase]
) -> StackJournal:
    failed = [r for r in journal.members if r.state == "failed"]
    if failed and journal.on_failure == "rollback":
        _undo(ctx, journal, policies)
        journal.state = "rolled-back"
    else:
        journal.state = "stopped" if failed else "completed"
    journal.seconds = round(journal.seconds + time.monotonic() - started, 3)
    journal.finished_at = ctx.clock().isoformat()
    journal.save()
    log.info("stack restore finished", stack=journal.stack, state=journal.state)
    return journal


def _undo(ctx: Context, journal: StackJournal, policies: dict[str, PolicyBase]) -> None:
    """Undo the completed systems, the last restored first."""
    for record in reversed(journal.members):
        if record.state != "completed" or record.run_id is None:
            continue
        try:
            undo_restore(ctx, policies[record.policy], record.run_id)
            record.state = "rolled-back"
        except BackupctlError as exc:
            record.state, record.error = "not-undone", str(exc).splitlines()[0]
        journal.save()


def resume_stack(
    ctx: Context, stack: Stack, policies: list[PolicyBase], *, rollback: bool
) -> StackJournal:
    """Finish (``rollback``: undo) the stack restore that did not finish. Raises
    NotFoundError when there is none."""
    journal = find_unfinished_stack(ctx, stack.name)
    if journal is None:
        raise NotFoundError(f"no unfinished restore of stack {stack.name!r}")
    by_name = {p.name: p for p in policies}
    started = time.monotonic()
    # a system killed part-way: its own journal says where; finish or undo it first
    for record in journal.members:
        if record.state != "running":
            continue
        policy = by_name[record.policy]
        if find_unfinished(ctx.layout, policy.name) is None:
            record.state = "failed"  # killed before its restore began: plan it again
            continue
        try:
            resume_restore(ctx, policy, rollback=rollback)
            record.state = "rolled-back" if rollback else "completed"
        except BackupctlError as exc:
            record.state, record.error = "failed", str(exc).splitlines()[0]
        journal.save()
    if rollback:
        _undo(ctx, journal, by_name)
        journal.state = "rolled-back"
        journal.seconds = round(journal.seconds + time.monotonic() - started, 3)
        journal.finished_at = ctx.clock().isoformat()
        journal.save()
        return journal
    moment = datetime.fromisoformat(journal.to_time)
    left = {r.policy for r in journal.members if r.state in ("pending", "failed")}
    _run_waves(ctx, plan_stack(ctx, stack, policies, moment), journal, left)
    return _finish(ctx, journal, started, by_name)
