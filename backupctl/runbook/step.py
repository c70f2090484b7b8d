"""One step of a runbook, and what the engine records about it."""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from backupctl.checks import CheckResult

Status = Literal["pending", "running", "ok", "failed", "compensated", "compensation-failed"]


@dataclass
class RunContext:
    """What steps share. ``values`` is journaled, so a resumed run sees what earlier steps set."""

    run_id: str
    values: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.values[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def record_checks(self, checks: list[CheckResult]) -> None:
        """Add ``checks`` to the run's journaled checks (what reports show), replacing
        earlier results of the same names (a resumed step records its checks again)."""
        names = {c.name for c in checks}
        kept = [c for c in self.get("checks") or [] if c["name"] not in names]
        self["checks"] = kept + [c.to_dict() for c in checks]


@dataclass
class StepResult:
    name: str
    status: Status = "pending"
    seconds: float = 0.0
    detail: str = ""
    #: what a finished step worked through (``Step.work_bytes``) and how its time compares
    #: across runs (``Step.basis``): the measurements restore plans project from
    bytes: int | None = None
    basis: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Step(abc.ABC):
    """A unit of work. ``run`` must be safe to call again after a crash (resume)."""

    name: str = "step"
    #: False when running again after being interrupted part-way would do harm (e.g.
    #: apply transactions twice): such a run can only be rolled back, not resumed.
    resumable: bool = True

    @abc.abstractmethod
    def describe(self, ctx: RunContext) -> str:
        """Say what the step will do (dry run); must not change anything."""

    @abc.abstractmethod
    def run(self, ctx: RunContext) -> str:
        """Do the work; return a one-line detail. Raises BackupctlError on failure."""

    def compensate(self, ctx: RunContext) -> str:
        """Undo what ``run`` did (also a partly done run); return a detail. Default: nothing."""
        return "nothing to undo"

    def hooks(self) -> list[str]:
        """The hook commands this step calls (for the plan)."""
        return []

    def work_bytes(self) -> int | None:
        """The bytes this step works through when its time grows with them (an
        extraction, a replay, a verification); None when it takes about the same time
        whatever the size (a hook, a rename)."""
        return None

    def basis(self) -> str:
        """Steps with the same basis, in any run of the policy, take comparable time (per
        byte when ``work_bytes`` says): the step's name unless that varies (the N-th
        incremental) or the work does (a verification level)."""
        return self.name
