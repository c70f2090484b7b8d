"""``backupctl drill run --stack NAME``: every policy of a stack drilled into its own
sandbox (a wave's policies side by side), then one report: the stack's RTO (from the
first restore started to the last system verified), each system's RPO, and the skew
between the systems' recovery points, against the stack's objectives."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from backupctl.drills.report import DrillReport
from backupctl.errors import UsageError
from backupctl.operations.context import Context
from backupctl.operations.drill import run_and_store
from backupctl.policy.common import PolicyBase
from backupctl.policy.stack import Stack
from backupctl.statefile import private_dir, write_atomic
from backupctl.storage.keys import new_backup_id
from backupctl.units import human_duration


@dataclass
class StackDrillReport:
    drill_id: str
    stack: str
    started_at: str
    finished_at: str
    rto_seconds: float
    #: the newest recovery point minus the oldest: how far apart the systems came back
    skew_seconds: float | None
    objectives: dict[str, float | None]
    passed: bool
    missed: list[str] = field(default_factory=list)
    systems: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _seconds(value: Any) -> float | None:
    return value.total_seconds() if value is not None else None


def run_stack_drill(ctx: Context, stack: Stack, policies: list[PolicyBase]) -> StackDrillReport:
    """Drill every policy of ``stack`` (waves in order, a wave side by side) and judge the
    whole against the stack's objectives. Raises UsageError for an unknown policy."""
    by_name = {p.name: p for p in policies}
    unknown = [name for name in stack.policies if name not in by_name]
    if unknown:
        raise UsageError(f"stack {stack.name!r} names unknown policies: {', '.join(unknown)}")
    started_at, started = ctx.clock(), time.monotonic()
    reports: dict[str, DrillReport] = {}
    for wave in stack.waves():
        with ThreadPoolExecutor(max_workers=len(wave)) as pool:
            done = pool.map(lambda name: run_and_store(ctx, by_name[name]), wave)
            reports.update(zip(wave, done, strict=True))
    rto = round(time.monotonic() - started, 3)
    points = [
        datetime.fromisoformat(r.recovery_point) for r in reports.values() if r.recovery_point
    ]
    skew = round((max(points) - min(points)).total_seconds(), 3) if len(points) > 1 else None
    objectives = {
        "rto_seconds": _seconds(stack.objectives.rto),
        "rpo_seconds": _seconds(stack.objectives.rpo),
        "max_skew_seconds": _seconds(stack.objectives.max_skew),
    }
    missed = _missed(stack, reports, rto, skew, objectives)
    report = StackDrillReport(
        drill_id=new_backup_id(started_at),
        stack=stack.name,
        started_at=started_at.isoformat(),
        finished_at=ctx.clock().isoformat(),
        rto_seconds=rto,
        skew_seconds=skew,
        objectives=objectives,
        passed=not missed,
        missed=missed,
        systems=[
            {
                "policy": name,
                "drill_id": r.drill_id,
                "passed": r.passed,
                "recovery_point": r.recovery_point,
                "rpo_seconds": r.rpo_seconds,
                "rto_seconds": r.rto_seconds,
                "reason": r.reason,
            }
            for name, r in ((n, reports[n]) for n in stack.policies)
        ],
    )
    _write(ctx, report)
    return report


def _missed(
    stack: Stack,
    reports: dict[str, DrillReport],
    rto: float,
    skew: float | None,
    objectives: dict[str, float | None],
) -> list[str]:
    missed = [f"{name}: {r.reason or 'failed'}" for name, r in reports.items() if not r.passed]
    if objectives["rto_seconds"] is not None and rto > objectives["rto_seconds"]:
        missed.append(
            f"stack RTO {human_duration(rto)} over {human_duration(objectives['rto_seconds'])}"
        )
    rpo = objectives["rpo_seconds"]
    for name, r in reports.items():
        if rpo is not None and r.rpo_seconds is not None and r.rpo_seconds > rpo:
            missed.append(f"{name}: RPO {human_duration(r.rpo_seconds)} over {human_duration(rpo)}")
    most = objectives["max_skew_seconds"]
    if most is not None and skew is not None and skew > most:
        missed.append(f"skew {human_duration(skew)} over {human_duration(most)}")
    return missed


def report_path(ctx: Context, drill_id: str, fmt: str = "json") -> Path:
    return ctx.layout.drills / "stacks" / f"{drill_id}.{fmt}"


def _write(ctx: Context, report: StackDrillReport) -> None:
    private_dir(report_path(ctx, report.drill_id).parent)
    write_atomic(report_path(ctx, report.drill_id), json.dumps(report.to_dict(), indent=2) + "\n")
    write_atomic(report_path(ctx, report.drill_id, "md"), to_markdown(report))


def to_markdown(report: StackDrillReport) -> str:
    objectives = report.objectives

    def text(value: float | None) -> str:
        return human_duration(value) if value is not None else "-"

    lines = [
        f"# Stack drill {report.drill_id} of {report.stack}",
        "",
        f"- result: **{'PASSED' if report.passed else 'FAILED'}**",
        f"- stack RTO {text(report.rto_seconds)} (objective {text(objectives['rto_seconds'])})",
        f"- skew between systems {text(report.skew_seconds)} "
        f"(objective {text(objectives['max_skew_seconds'])})",
        "",
        "| system | passed | recovery point | RPO | RTO |",
        "|---|---|---|---:|---:|",
    ]
    for s in report.systems:
        lines.append(
            f"| {s['policy']} | {'yes' if s['passed'] else 'NO'} | {s['recovery_point'] or '-'} "
            f"| {text(s['rpo_seconds'])} | {text(s['rto_seconds'])} |"
        )
    lines += [f"\n- missed: {m}" for m in report.missed]
    return "\n".join(lines) + "\n"
