"""What the scheduler remembers per job, in ``STATE_DIR/schedule/state.json``.

Per job: when it was first seen, its *anchor* (slots after it are due; a run moves
it to the moment the run was claimed, so however many slots were missed the job
runs once), the slot that made the last run due, the last run's start, end,
outcome and backup id, the last skip, and the run in progress (pid and host).

Every change is a read-modify-write under an flock on ``state.lock``, written to a
temporary file, fsynced and renamed over the old one, so several ``run-due``
processes (cron starts one a minute while a long backup runs) and the daemon never
lose each other's updates and a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from backupctl.errors import BackupctlError
from backupctl.layout import StateLayout
from backupctl.statefile import locked, write_atomic

STATE_VERSION = 1


class ScheduleStateError(BackupctlError):
    """The schedule state file cannot be read or written."""


@dataclass
class RunningMark:
    """A run in progress: which process, since when."""

    pid: int
    host: str
    started_at: datetime

    @classmethod
    def here(cls, now: datetime) -> RunningMark:
        return cls(os.getpid(), socket.gethostname(), now)

    def alive(self) -> bool:
        """True while the process still runs (a killed run leaves a mark that is ignored)."""
        if self.host != socket.gethostname():
            return False  # the state directory is per host; a copied mark is stale
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else
            return True
        return True

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.started_at.isoformat()}"


@dataclass
class JobState:
    first_seen: datetime
    anchor: datetime
    last_due: datetime | None = None
    last_started: datetime | None = None
    last_finished: datetime | None = None
    last_outcome: str | None = None
    last_detail: str = ""
    last_backup_id: str | None = None
    last_success: datetime | None = None
    last_skipped: datetime | None = None
    last_skip_reason: str = ""
    running: RunningMark | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, RunningMark):
                value = {
                    "pid": value.pid,
                    "host": value.host,
                    "started_at": value.started_at.isoformat(),
                }
            elif isinstance(value, datetime):
                value = value.isoformat()
            out[item.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobState:
        values: dict[str, Any] = {}
        for item in fields(cls):
            if item.name not in data:
                continue
            value = data[item.name]
            if item.name == "running" and value is not None:
                value = RunningMark(
                    int(value["pid"]), str(value["host"]), _time(value["started_at"])
                )
            elif isinstance(value, str) and item.name in _TIME_FIELDS:
                value = _time(value)
            values[item.name] = value
        return cls(**values)


_TIME_FIELDS = {
    "first_seen",
    "anchor",
    "last_due",
    "last_started",
    "last_finished",
    "last_success",
    "last_skipped",
}


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time without a timezone: {text!r}")
    return moment


class ScheduleState:
    """The state file of one state directory."""

    def __init__(self, layout: StateLayout):
        self.directory = layout.schedule
        self.path = self.directory / "state.json"
        self._lock_path = self.directory / "state.lock"

    def read(self) -> dict[str, JobState]:
        """Every job's state (empty before the first run). Raises ScheduleStateError."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ScheduleStateError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            data = json.loads(text)
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"unknown state version {data.get('version')!r}")
            return {name: JobState.from_dict(job) for name, job in data["jobs"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ScheduleStateError(
                f"{self.path} is not a schedule state file ({exc}); move it aside to start "
                "afresh (every job then waits for its next slot)"
            ) from exc

    @contextmanager
    def update(self) -> Iterator[dict[str, JobState]]:
        """Yield the jobs' states for changing; written back atomically on a clean exit.

        Holds the state file's lock meanwhile: keep the block short (never a backup).
        """
        with locked(self._lock_path):
            jobs = self.read()
            yield jobs
            self._write(jobs)

    def _write(self, jobs: dict[str, JobState]) -> None:
        data = {
            "version": STATE_VERSION,
            "jobs": {name: jobs[name].to_dict() for name in sorted(jobs)},
        }
        try:
            write_atomic(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")
        except OSError as exc:
            raise ScheduleStateError(f"cannot write {self.path}: {exc.strerror}") from exc
