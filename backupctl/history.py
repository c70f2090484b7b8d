"""Every run's outcome: what one run came to (``RunEvent``) and, per policy and kind,
what is known of its runs (``RunRecord``), kept in ``STATE_DIR/runs/runs.json``.
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

from backupctl.errors import BackupctlError
from backupctl.layout import StateLayout
from backupctl.redaction import scrub
from backupctl.statefile import locked, write_atomic

#: success: stored (or a drill passed); unchanged: nothing new to store (the newest
#: backup is still current); skipped: another run held the policy's lock
RunOutcome = Literal["success", "failure", "unchanged", "skipped"]


@dataclass(frozen=True)
class RunEvent:
    """One finished run of a policy: a backup of some kind, or a drill (kind ``drill``)."""

    policy: str
    driver: str
    kind: str
    outcome: RunOutcome
    started_at: datetime
    finished_at: datetime
    backup_id: str | None = None
    #: bytes stored by the run (compressed), when it stored any
    bytes: int | None = None
    #: why it failed (or was skipped), one line
    error: str | None = None
    host: str = field(default_factory=socket.gethostname)
    #: kind-specific facts (a drill's id, RTO and RPO, its report's path)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.error is not None:  # logged, recorded and sent to webhooks: never a secret
            object.__setattr__(self, "error", scrub(self.error))

    @property
    def duration_seconds(self) -> float:
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data (the generic webhook's body, version 1)."""
        return {
            "source": "backupctl",
            "version": 1,
            "event": f"run.{self.outcome}",
            "policy": self.policy,
            "driver": self.driver,
            "kind": self.kind,
            "outcome": self.outcome,
            "host": self.host,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_seconds": self.duration_seconds,
            "backup_id": self.backup_id,
            "bytes": self.bytes,
            "error": self.error,
            "details": self.details,
        }


RUNS_VERSION = 1
_TIMES = (
    "first_started",
    "last_started",
    "last_finished",
    "last_success",
    "last_failure",
    "last_unchanged",
)


class RunHistoryError(BackupctlError):
    """The run history file cannot be read or written."""


@dataclass
class RunRecord:
    """What is known about the runs of one kind of one policy."""

    policy: str
    kind: str
    #: the first run recorded (a policy that never succeeded alerts from here)
    first_started: datetime | None = None
    last_started: datetime | None = None
    last_finished: datetime | None = None
    last_outcome: str | None = None
    last_seconds: float | None = None
    last_error: str | None = None
    last_backup_id: str | None = None
    last_bytes: int | None = None
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_failure_reason: str | None = None
    #: the last run that found nothing new: the newest backup was still current then
    last_unchanged: datetime | None = None
    consecutive_failures: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, event: RunEvent) -> None:
        if self.first_started is None or event.started_at < self.first_started:
            self.first_started = event.started_at
        self.last_started, self.last_finished = event.started_at, event.finished_at
        self.last_outcome, self.last_seconds = event.outcome, event.duration_seconds
        self.last_error, self.last_backup_id = event.error, event.backup_id
        self.counts[event.outcome] = self.counts.get(event.outcome, 0) + 1
        if event.bytes is not None:
            self.last_bytes = event.bytes
        if event.outcome in ("success", "unchanged"):
            self.last_success, self.consecutive_failures = event.finished_at, 0
        if event.outcome == "unchanged":
            self.last_unchanged = event.finished_at
        if event.outcome == "failure":
            self.last_failure, self.last_failure_reason = event.finished_at, event.error
            self.consecutive_failures += 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in _TIMES:
            if data[name] is not None:
                data[name] = data[name].isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in _TIMES:
            if values.get(name):
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)


class RunHistory:
    """``STATE_DIR/runs/runs.json``: one RunRecord per ``policy:kind``."""

    def __init__(self, layout: StateLayout):
        self.directory = layout.runs
        self.path = self.directory / "runs.json"

    def read(self) -> dict[str, RunRecord]:
        """Every record (empty before the first run). Raises RunHistoryError."""
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") != RUNS_VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            return {key: RunRecord.from_dict(value) for key, value in data["runs"].items()}
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise RunHistoryError(f"cannot read {self.path}: {exc.strerror}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RunHistoryError(
                f"{self.path} is not a run history ({exc}); move it aside to start afresh"
            ) from exc

    def of_policy(self, policy: str) -> dict[str, RunRecord]:
        """The records of ``policy``, by kind."""
        return {r.kind: r for r in self.read().values() if r.policy == policy}

    def add(self, event: RunEvent) -> RunRecord:
        """Record ``event``; return its updated record. Raises RunHistoryError."""
        key = f"{event.policy}:{event.kind}"
        try:
            with locked(self.directory / "runs.lock"):
                records = self.read()
                record = records.setdefault(key, RunRecord(event.policy, event.kind))
                record.add(event)
                data = {
                    "version": RUNS_VERSION,
                    "runs": {k: records[k].to_dict() for k in sorted(records)},
                }
                write_atomic(self.path, json.dumps(data, indent=2) + "\n")
        except OSError as exc:
            raise RunHistoryError(f"cannot write {self.path}: {exc.strerror}") from exc
        return record
