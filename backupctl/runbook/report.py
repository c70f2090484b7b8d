"""Restore reports: a typed document, written as JSON (for tools) and Markdown (for the
incident review) under ``STATE_DIR/restores/``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backupctl.layout import StateLayout
from backupctl.runbook.journal import Journal
from backupctl.runbook.records import CheckRecord, StepRecord
from backupctl.statefile import private_dir, write_atomic
from backupctl.timefmt import utc_and_local


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class BackupSummary(_Record):
    """The backup a restore started from."""

    backup_id: str
    kind: str = ""
    finished_at: str | None = None
    raw_bytes: int | None = None
    stored_bytes: int | None = None


class RecoveryPoint(_Record):
    """Where a restore brought the data: a moment, a transaction, a commit."""

    gtid: str | None = None
    time_utc: str | None = None
    time_local: str | None = None
    commit: str | None = None
    gtid_position: str | None = None

    def describe(self) -> str:
        """For people: GTID, or the moment in UTC and local time, or the commit."""
        parts = []
        if self.gtid:
            parts.append(f"GTID {self.gtid}")
        if self.time_utc:
            parts.append(utc_and_local(datetime.fromisoformat(self.time_utc)))
        if self.commit:
            parts.append(f"commit {self.commit}")
        if self.gtid_position:
            parts.append(f"server GTID position {self.gtid_position}")
        return ", ".join(parts)


class HealedObject(_Record):
    """An object one repository could not serve during a restore, and the one that did."""

    key: str
    repository: str
    problem: str
    served_by: str | None = None


class RestoreReport(_Record):
    """One restore (or its rollback): what ran, how it ended, where the data is now."""

    run_id: str
    kind: str = "restore"
    policy: str
    backup: BackupSummary
    mode: str = "in-place"
    datadir: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float = 0.0
    state: str
    passed: bool
    error: str | None = None
    #: where the replaced data was moved (kept for the policy's keep_aside)
    aside: str | None = None
    recovery_point: RecoveryPoint | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    checks: list[CheckRecord] = Field(default_factory=list)
    #: the repositories the backup was read from, in order of preference
    read_from: list[str] = Field(default_factory=list)
    #: objects a repository could not serve (missing, unreadable, corrupt) and which did
    healed: list[HealedObject] = Field(default_factory=list)

    @property
    def ended_well(self) -> bool:
        """Completed, or rolled back as asked (``--rollback``)."""
        return self.state in ("completed", "rolled-back")

    def to_json_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def build_report(journal: Journal, backup: BackupSummary) -> RestoreReport:
    """The report of a finished (or failed, or rolled back) restore."""
    completed = journal.state == "completed"
    return RestoreReport(
        run_id=journal.run_id,
        kind=journal.kind,
        policy=journal.policy,
        backup=backup,
        mode="in-place" if _in_place(journal.params) else "target",
        datadir=journal.values.get("datadir") or journal.params.get("datadir"),
        started_at=journal.started_at,
        finished_at=journal.finished_at,
        seconds=round(sum(s.seconds for s in journal.steps), 3),
        state=journal.state,
        passed=completed,
        error=journal.error,
        aside=journal.values.get("aside") if completed else None,
        recovery_point=journal.values.get("recovery_point"),
        steps=[StepRecord.model_validate(s.to_dict(), strict=False) for s in journal.steps],
        checks=[
            CheckRecord.model_validate(c, strict=False) for c in journal.values.get("checks", [])
        ],
        read_from=journal.values.get("read_from", []),
        healed=journal.values.get("healed", []),
    )


def _in_place(params: dict[str, Any]) -> bool:
    if "in_place" in params:
        return bool(params["in_place"])
    # journals written before the options were stored whole
    return not (params.get("target_datadir") or params.get("target_dir"))


def to_markdown(report: RestoreReport) -> str:
    backup = report.backup
    lines = [
        f"# Restore {report.run_id} of {report.policy}",
        "",
        f"- result: **{'PASSED' if report.passed else report.state.upper()}**",
        f"- backup: {backup.backup_id} (finished {backup.finished_at}, {backup.raw_bytes} bytes)",
        f"- mode: {report.mode}, datadir {report.datadir}",
        f"- started {report.started_at}, finished {report.finished_at}, "
        f"{report.seconds:.1f}s of steps",
    ]
    if report.recovery_point is not None:
        lines.append(f"- recovered to: {report.recovery_point.describe()}")
    if report.aside:
        lines.append(f"- previous datadir kept at `{report.aside}`")
    if report.error:
        lines.append(f"- error: {report.error}")
    if report.read_from:
        lines.append(f"- read from: {', '.join(report.read_from)} (in that order)")
    for healed in report.healed:
        served = f"read from {healed.served_by}" if healed.served_by else "served by none"
        lines.append(f"- `{healed.key}`: {healed.problem} in {healed.repository}; {served}")
    lines += ["", "| step | status | seconds | throughput | detail |", "|---|---|---:|---:|---|"]
    for step in report.steps:
        detail = str(step.detail).replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {step.name} | {step.status} | {step.seconds:.2f} | {step.throughput()} | {detail} |"
        )
    if report.checks:
        lines += ["", "| check | passed | detail |", "|---|---|---|"]
        for check in report.checks:
            detail = str(check.detail).replace("|", "\\|")
            lines.append(f"| {check.name} | {'yes' if check.passed else 'NO'} | {detail} |")
    return "\n".join(lines) + "\n"


def write_report(layout: StateLayout, report: RestoreReport) -> Path:
    """Write ``<run_id>.json`` and ``.md`` under the state directory; return the JSON path."""
    private_dir(layout.restore_reports)
    path = layout.restore_report(report.run_id)
    write_atomic(path, json.dumps(report.to_json_data(), indent=2) + "\n")
    write_atomic(path.with_suffix(".md"), to_markdown(report))
    return path


def past_reports(layout: StateLayout, policy: str) -> list[RestoreReport]:
    """Every readable restore report of ``policy``, oldest first."""
    directory = layout.restore_reports
    if not directory.is_dir():
        return []
    reports = []
    for path in sorted(directory.glob("*.json")):
        try:
            report = RestoreReport.model_validate_json(path.read_text())
        except (OSError, ValueError, ValidationError):
            continue
        if report.policy == policy:
            reports.append(report)
    return reports
