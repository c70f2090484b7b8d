"""Named check results: what verification and drills produce instead of booleans."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from backupctl.runbook.step import RunContext


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_checks(ctx: RunContext, checks: list[CheckResult]) -> None:
    """Add ``checks`` to the run's journaled checks (what reports show), replacing earlier
    results of the same names (a resumed step records its checks again)."""
    names = {c.name for c in checks}
    kept = [c for c in ctx.get("checks") or [] if c["name"] not in names]
    ctx["checks"] = kept + [c.to_dict() for c in checks]
