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
    #: each wave's slowest system, wave after wave (None: a system was not verified)
    rto_seconds: float | None
    #: the whole drill, sandboxes cleaned up and reports stored
    seconds: float
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
    seconds = round(time.monotonic() - started, 3)
    rto = _stack_rto(stack, reports)
    # each system's RPO as of the stack drill's start (its own drill started later)
    rpos = {
        name: round((started_at - datetime.fromisoformat(r.recovery_point)).total_seconds(), 3)
        if r.recovery_point
        else None
        for name, r in reports.items()
    }
    points = [
        datetime.fromisoformat(r.recovery_point) for r in reports.values() if r.recovery_point
    ]
    skew = round((max(points) - min(points)).total_seconds(), 3) if len(points) > 1 else None
    objectives = {
        "rto_seconds": _seconds(stack.objectives.rto),
        "rpo_seconds": _seconds(stack.objectives.rpo),
        "max_skew_seconds": _seconds(stack.objectives.max_skew),
    }
    missed = _missed(reports, rto, rpos, skew, objectives)
    report = StackDrillReport(
        drill_id=new_backup_id(started_at),
        stack=stack.name,
        started_at=started_at.isoformat(),
        finished_at=ctx.clock().isoformat(),
        rto_seconds=rto,
        seconds=seconds,
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
                "rpo_seconds": rpos[name],
                "rto_seconds": r.rto_seconds,
                "reason": r.reason,
            }
            for name, r in ((n, reports[n]) for n in stack.policies)
        ],
    )
    _write(ctx, report)
    return report


def _stack_rto(stack: Stack, reports: dict[str, DrillReport]) -> float | None:
    """From the first restore started to the last system verified, as a real restore of
    the stack runs: each wave's slowest system, wave after wave (None: a system was not
    verified)."""
    total = 0.0
    for wave in stack.waves():
        times = [reports[name].rto_seconds for name in wave]
        if any(t is None for t in times):
            return None
        total += max(t for t in times if t is not None)
    return round(total, 3)


def _missed(
    reports: dict[str, DrillReport],
    rto: float | None,
    rpos: dict[str, float | None],
    skew: float | None,
    objectives: dict[str, float | None],
) -> list[str]:
    missed = [f"{name}: {r.reason or 'failed'}" for name, r in reports.items() if not r.passed]
    limit = objectives["rto_seconds"]
    if limit is not None and rto is not None and rto > limit:
        missed.append(f"stack RTO {human_duration(rto)} over {human_duration(limit)}")
    rpo = objectives["rpo_seconds"]
    for name, measured in rpos.items():
        if rpo is not None and measured is not None and measured > rpo:
            missed.append(f"{name}: RPO {human_duration(measured)} over {human_duration(rpo)}")
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
