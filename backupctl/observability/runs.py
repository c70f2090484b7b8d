"""Every run's outcome, remembered per (policy, kind) in ``STATE_DIR/runs/runs.json``,
and what happens when a run ends: one JSON summary line in the log, the record, the
webhooks, the metrics textfile.

None of it may change a run's result: a record, a notification or a textfile that
cannot be written is logged, and the run's own error (or success) stands.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from backupctl.errors import BackupctlError
from backupctl.observability.events import RunEvent
from backupctl.policy.common import PolicyBase
from backupctl.statefile import locked, write_atomic

log = structlog.get_logger()

RUNS_VERSION = 1
_TIMES = ("last_started", "last_finished", "last_success", "last_failure", "last_unchanged")


class RunHistoryError(BackupctlError):
    """The run history file cannot be read or written."""


@dataclass
class RunRecord:
    """What is known about the runs of one kind of one policy."""

    policy: str
    kind: str
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

    def __init__(self, state_dir: Path):
        self.directory = state_dir / "runs"
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


#: writes the metrics of every policy somewhere (a textfile, a Pushgateway)
MetricsWriter = Callable[[], None]


@dataclass
class RunReporter:
    """Told about every finished run: records it, logs its summary line, sends the
    policy's notifications and refreshes the metrics (when ``write_metrics`` is set)."""

    state_dir: Path
    write_metrics: MetricsWriter | None = None

    def report(self, policy: PolicyBase, event: RunEvent) -> None:
        """Never raises for its own failures (they are logged)."""
        summary = event.to_dict()
        for name in ("source", "version", "event", "host", "details"):
            summary.pop(name)
        level = logging.ERROR if event.outcome == "failure" else logging.INFO
        log.log(level, "run summary", **summary)
        try:
            RunHistory(self.state_dir).add(event)
        except RunHistoryError as exc:
            log.error("run not recorded", error=str(exc))
        if policy.notify:
            from backupctl.observability.notify import send_notifications

            send_notifications(policy, event)
        self.refresh_metrics()

    def refresh_metrics(self) -> None:
        """Rewrite the metrics now, if configured; failures are logged, never raised."""
        if self.write_metrics is None:
            return
        try:
            self.write_metrics()
        except BackupctlError as exc:
            log.error("metrics not written", error=str(exc))
        except Exception as exc:  # metrics must never turn a good run into a failure
            log.exception("metrics not written: internal error", error=str(exc))
