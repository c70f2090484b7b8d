"""When a job is due, and claiming it so that one slot is run by one process only."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from backupctl.scheduling.plan import ScheduledJob
from backupctl.scheduling.state import JobState, RunningMark, ScheduleState


def due_slot(
    record: JobState | None, job: ScheduledJob, now: datetime, catch_up: bool = False
) -> datetime | None:
    """The slot that makes ``job`` due at ``now``, or None when it is not due.

    A job is due when its schedule matched at least once after its anchor (the moment
    its last run was claimed, or when it was first seen); the slot returned is the
    first of those, however many there were. A job never seen before is not due (its
    first slot is the first one after now) unless ``catch_up``: then it is due now.
    """
    if record is None:
        return now if catch_up else None
    slot = job.next_slot(record.anchor)
    return slot if slot is not None and slot <= now else None


def next_due(record: JobState | None, job: ScheduledJob, now: datetime) -> datetime | None:
    """When ``job`` is next due: a past slot when it is overdue, None when never."""
    return job.next_slot(record.anchor if record is not None else now)


@dataclass(frozen=True)
class Claim:
    """A due job taken by this process. ``busy`` says why it must not start, when an
    earlier run of it (in another process, or another thread) is still going."""

    job_id: str
    due_at: datetime
    busy: str | None = None


def claim_job(
    state: ScheduleState, job: ScheduledJob, now: datetime, catch_up: bool = False
) -> Claim | None:
    """Take ``job`` if it is due at ``now``: None when it is not.

    Under the state file's lock, so two processes never claim the same slot: the
    anchor moves to ``now`` (the slot counts as handled, even when busy, like
    APScheduler skipping a job that reached its maximum instances) and the run is
    marked in progress. A job seen for the first time is recorded, not run (unless
    ``catch_up``).
    """
    with state.update() as jobs:
        record = jobs.get(job.id)
        slot = due_slot(record, job, now, catch_up)
        if record is None:
            record = jobs[job.id] = JobState(first_seen=now, anchor=now)
        if slot is None:
            return None
        record.anchor, record.last_due = now, slot
        if record.running is not None and record.running.alive():
            busy = f"still running ({record.running.describe()})"
            record.last_skipped, record.last_skip_reason = now, busy
            return Claim(job.id, slot, busy)
        record.running = RunningMark.here(now)
        return Claim(job.id, slot)


def register_jobs(state: ScheduleState, jobs: Iterable[ScheduledJob], now: datetime) -> None:
    """Record the jobs not seen before (their first slot is the first one after ``now``)."""
    with state.update() as records:
        for job in jobs:
            records.setdefault(job.id, JobState(first_seen=now, anchor=now))
