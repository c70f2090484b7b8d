"""What a finished step and a check look like in the reports (restores and drills alike)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from backupctl.units import human_bytes


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
    bytes: int | None = None
    basis: str = ""

    def throughput(self) -> str:
        """The rate at a glance ("212.4 MiB/s"), "" for a step of fixed cost."""
        rate = self.rate
        return f"{human_bytes(int(rate))}/s" if rate is not None else ""

    @property
    def rate(self) -> float | None:
        """Bytes per second of a finished step that worked through a known size."""
        if self.status != "ok" or not self.bytes or self.seconds <= 0:
            return None
        return self.bytes / self.seconds


class CheckRecord(_Record):
    """One named check (``CheckResult`` as reports keep it)."""

    name: str
    passed: bool
    detail: str = ""
