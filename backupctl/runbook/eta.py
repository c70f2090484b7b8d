"""How long each step of a plan should take, projected from the same steps in past runs
of the policy (restores and drills): per byte where a step's time grows with the size it
works through, as a whole where it does not."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from backupctl.runbook.records import StepRecord
from backupctl.units import human_bytes


@dataclass(frozen=True)
class Projection:
    seconds: float | None  # None: never measured
    how: str

    def to_dict(self) -> dict[str, object]:
        return {"seconds": self.seconds, "how": self.how}


def project(basis: str, work_bytes: int | None, past: Sequence[StepRecord]) -> Projection:
    """The time of a step with ``basis`` working through ``work_bytes`` (None: a step of
    fixed cost), from the finished steps of the same basis in ``past``: the median rate
    times the size, or the median time."""
    same = [p for p in past if (p.basis or p.name) == basis and p.status == "ok"]
    if work_bytes is not None:
        rates = [rate for p in same if (rate := p.rate) is not None]
        if not rates:
            return Projection(None, "never measured")
        rate = statistics.median(rates)
        return Projection(
            round(work_bytes / rate, 1),
            f"{human_bytes(work_bytes)} at {human_bytes(int(rate))}/s "
            f"(median of {len(rates)} past run(s))",
        )
    if not same:
        return Projection(None, "never measured")
    return Projection(
        round(statistics.median(p.seconds for p in same), 1),
        f"as long as in {len(same)} past run(s) (median)",
    )


def total(projections: Sequence[Projection]) -> tuple[float | None, int]:
    """The sum of the projected seconds (None when none was measured), and how many steps
    were never measured (the sum leaves them out)."""
    known = [p.seconds for p in projections if p.seconds is not None]
    return (round(sum(known), 1) if known else None), len(projections) - len(known)
