"""Drill reports for people: Markdown (the JSON report is the contract in DESIGN.md)."""

from __future__ import annotations

from typing import Any


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


def verdict(report: dict[str, Any]) -> str:
    return "PASSED" if report["passed"] else "FAILED"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page for the drill's review."""
    objectives = report["objectives"]
    lines = [
        f"# Recovery drill {report['drill_id']} of {report['policy']}",
        "",
        f"- result: **{verdict(report)}**",
        f"- backup: {report.get('backup_id') or '-'}",
        f"- started {report['started_at']}, finished {report['finished_at']}",
        f"- recovery point: {report.get('recovery_point') or '-'}",
        f"- RPO: {seconds_text(report['rpo_seconds'])} "
        f"(objective {seconds_text(objectives.get('rpo_seconds'))})",
        f"- RTO: {seconds_text(report['rto_seconds'])} "
        f"(objective {seconds_text(objectives.get('rto_seconds'))})",
    ]
    selection = report.get("selection") or {}
    if selection.get("mode") == "random":
        lines.append(
            f"- selection: random among {selection.get('candidates')} backups "
            f"(newest {selection.get('newest_backup_id') or '-'})"
        )
    if report.get("reason"):
        lines.append(f"- reason: {report['reason']}")
    lines += [f"- note: {note}" for note in report.get("notes") or []]
    lines += ["", "| step | status | seconds | detail |", "|---|---|---:|---|"]
    for step in report["steps"]:
        detail = _cell(step.get("detail", ""))
        lines.append(f"| {step['name']} | {step['status']} | {step['seconds']:.2f} | {detail} |")
    if report["checks"]:
        lines += ["", "| check | passed | detail |", "|---|---|---|"]
        for check in report["checks"]:
            passed = "yes" if check["passed"] else "NO"
            lines.append(f"| {_cell(check['name'])} | {passed} | {_cell(check['detail'])} |")
    return "\n".join(lines) + "\n"
