"""The drill report: a typed document (the JSON contract of DESIGN.md's "Drill report"),
and its Markdown rendering for people."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backupctl.runbook.records import CheckRecord, StepRecord
from backupctl.storage.keys import BACKUP_ID_RE


class _Record(BaseModel):
    # strict: a report read from a repository someone else can write is data to check
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class ObjectiveSeconds(_Record):
    rpo_seconds: float | None = None
    rto_seconds: float | None = None


class SelectionRecord(_Record):
    """How the drilled backup was chosen (``drill.select``)."""

    mode: str
    candidates: int
    newest_backup_id: str | None = None


#: fields a report carries for the run that made it, never stored with it
_NOT_STORED = {"html_report", "storage_problems"}


class DrillReport(_Record):
    """One drill: what was restored, how far back it reaches (RPO), how long until it was
    verified (RTO), against the policy's objectives, and every step and check."""

    drill_id: str
    policy: str
    driver: str = ""
    backup_id: str | None = None
    started_at: str
    finished_at: str | None = None
    recovery_point: str | None = None
    rpo_seconds: float | None = None
    rto_seconds: float | None = None
    objectives: ObjectiveSeconds = ObjectiveSeconds()
    passed: bool
    reason: str | None = None
    missed_objectives: list[dict[str, Any]] = Field(default_factory=list)
    selection: SelectionRecord | None = None
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    steps: list[StepRecord] = Field(default_factory=list)
    checks: list[CheckRecord] = Field(default_factory=list)
    #: the local HTML page (set once stored)
    html_report: str | None = None
    #: what went wrong storing the report in the repository (the local copy is always kept)
    storage_problems: list[str] = Field(default_factory=list)

    @field_validator("drill_id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not BACKUP_ID_RE.match(value):
            raise ValueError(f"not a drill id: {value!r}")
        return value

    @property
    def verdict(self) -> str:
        return "PASSED" if self.passed else "FAILED"

    def stored(self) -> dict[str, Any]:
        """The report as stored (JSON data, without what only this run knows)."""
        return self.model_dump(mode="json", exclude=_NOT_STORED)

    def to_json_data(self) -> dict[str, Any]:
        """The report as ``drill run --json`` prints it."""
        data = self.model_dump(mode="json")
        if not self.storage_problems:
            data.pop("storage_problems")
        return data

    def to_json(self) -> str:
        return json.dumps(self.stored(), indent=2) + "\n"

    @classmethod
    def read(cls, data: Any) -> DrillReport | None:
        """``data`` as a report, or None when it is not one."""
        try:
            return cls.model_validate(data)
        except ValidationError:
            return None


def seconds_text(value: float | None) -> str:
    """``812.0`` -> ``13m 32s``; None -> ``-``."""
    if value is None:
        return "-"
    whole = round(value)
    if whole < 60:
        return f"{value:.1f}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: DrillReport) -> str:
    """The report as a Markdown page for the drill's review."""
    objectives = report.objectives
    lines = [
        f"# Recovery drill {report.drill_id} of {report.policy}",
        "",
        f"- result: **{report.verdict}**",
        f"- backup: {report.backup_id or '-'}",
        f"- started {report.started_at}, finished {report.finished_at}",
        f"- recovery point: {report.recovery_point or '-'}",
        f"- RPO: {seconds_text(report.rpo_seconds)} "
        f"(objective {seconds_text(objectives.rpo_seconds)})",
        f"- RTO: {seconds_text(report.rto_seconds)} "
        f"(objective {seconds_text(objectives.rto_seconds)})",
    ]
    selection = report.selection
    if selection is not None and selection.mode == "random":
        lines.append(
            f"- selection: random among {selection.candidates} backups "
            f"(newest {selection.newest_backup_id or '-'})"
        )
    if report.reason:
        lines.append(f"- reason: {report.reason}")
    lines += [f"- note: {note}" for note in report.notes]
    lines += ["", "| step | status | seconds | throughput | detail |", "|---|---|---:|---:|---|"]
    for step in report.steps:
        lines.append(
            f"| {step.name} | {step.status} | {step.seconds:.2f} | {step.throughput()} "
            f"| {_cell(step.detail)} |"
        )
    if report.checks:
        lines += ["", "| check | passed | detail |", "|---|---|---|"]
        for check in report.checks:
            passed = "yes" if check.passed else "NO"
            lines.append(f"| {_cell(check.name)} | {passed} | {_cell(check.detail)} |")
    return "\n".join(lines) + "\n"
