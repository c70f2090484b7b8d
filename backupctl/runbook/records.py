"""What a finished step and a check look like in the reports (restores and drills alike)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Record(BaseModel):
    # strict: a report read back from a repository someone else can write is data to
    # check, not to trust; fields a later version adds are kept
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class StepRecord(_Record):
    """One step of a runbook: its name, how it ended, how long it took, what it said."""

    name: str
    status: str
    seconds: float = 0.0
    detail: str = ""


class CheckRecord(_Record):
    """One named check (``CheckResult`` as reports keep it)."""

    name: str
    passed: bool
    detail: str = ""
