"""Measured RTO and RPO against a policy's objectives."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from backupctl.policy.common import Objectives


@dataclass(frozen=True)
class MissedObjective:
    objective: str  # "rpo" or "rto"
    measured_seconds: float
    objective_seconds: float

    @property
    def over_seconds(self) -> float:
        return round(self.measured_seconds - self.objective_seconds, 3)

    def __str__(self) -> str:
        return (
            f"{self.objective.upper()} objective missed: measured {self.measured_seconds:.1f}s, "
            f"objective {self.objective_seconds:.0f}s, over by {self.over_seconds:.1f}s"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "over_seconds": self.over_seconds, "message": str(self)}


def objective_seconds(objectives: Objectives) -> dict[str, float | None]:
    """The policy's objectives in seconds (None when not set)."""
    return {
        "rpo_seconds": objectives.rpo.total_seconds() if objectives.rpo else None,
        "rto_seconds": objectives.rto.total_seconds() if objectives.rto else None,
    }


def missed_objectives(
    objectives: Objectives, rpo_seconds: float | None, rto_seconds: float | None
) -> list[MissedObjective]:
    """Every objective the measurements exceed (unmeasured values are not compared)."""
    limits = objective_seconds(objectives)
    missed = []
    for name, measured in (("rpo", rpo_seconds), ("rto", rto_seconds)):
        limit = limits[f"{name}_seconds"]
        if limit is not None and measured is not None and measured > limit:
            missed.append(MissedObjective(name, round(measured, 3), limit))
    return missed
