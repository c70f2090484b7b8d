"""Restore reports: JSON (for tools) and Markdown (for the incident review)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from backupctl.runbook.journal import Journal
from backupctl.statefile import private_dir, write_atomic
from backupctl.timefmt import utc_and_local


def report_dir(state_dir: Path) -> Path:
    return state_dir / "restores"


def build_report(journal: Journal, manifest_summary: dict[str, Any]) -> dict[str, Any]:
    """Return the report of a finished (or failed, or rolled back) restore."""
    seconds = round(sum(s.seconds for s in journal.steps), 3)
    return {
        "run_id": journal.run_id,
        "kind": journal.kind,
        "policy": journal.policy,
        "backup": manifest_summary,
        "mode": "target"
        if journal.params.get("target_datadir") or journal.params.get("target_dir")
        else "in-place",
        "datadir": journal.values.get("datadir") or journal.params.get("datadir"),
        "started_at": journal.started_at,
        "finished_at": journal.finished_at,
        "seconds": seconds,
        "state": journal.state,
        "passed": journal.state == "completed",
        "error": journal.error,
        "aside": journal.values.get("aside") if journal.state == "completed" else None,
        "recovery_point": journal.values.get("recovery_point"),
        "steps": [s.to_dict() for s in journal.steps],
        "checks": journal.values.get("checks", []),
    }


def to_markdown(report: dict[str, Any]) -> str:
    backup = report["backup"]
    lines = [
        f"# Restore {report['run_id']} of {report['policy']}",
        "",
        f"- result: **{'PASSED' if report['passed'] else report['state'].upper()}**",
        f"- backup: {backup.get('backup_id')} (finished {backup.get('finished_at')}, "
        f"{backup.get('raw_bytes')} bytes)",
        f"- mode: {report['mode']}, datadir {report['datadir']}",
        f"- started {report['started_at']}, finished {report['finished_at']}, "
        f"{report['seconds']:.1f}s of steps",
    ]
    if point := report.get("recovery_point"):
        lines.append(f"- recovered to: {describe_point(point)}")
    if report.get("aside"):
        lines.append(f"- previous datadir kept at `{report['aside']}`")
    if report.get("error"):
        lines.append(f"- error: {report['error']}")
    lines += ["", "| step | status | seconds | detail |", "|---|---|---:|---|"]
    for step in report["steps"]:
        detail = str(step["detail"]).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {step['name']} | {step['status']} | {step['seconds']:.2f} | {detail} |")
    if report["checks"]:
        lines += ["", "| check | passed | detail |", "|---|---|---|"]
        for check in report["checks"]:
            detail = str(check["detail"]).replace("|", "\\|")
            lines.append(f"| {check['name']} | {'yes' if check['passed'] else 'NO'} | {detail} |")
    return "\n".join(lines) + "\n"


def describe_point(point: dict[str, Any]) -> str:
    """A recovery point for people: GTID, or the moment in UTC and local time."""
    parts = []
    if point.get("gtid"):
        parts.append(f"GTID {point['gtid']}")
    if point.get("time_utc"):
        parts.append(utc_and_local(datetime.fromisoformat(point["time_utc"])))
    if point.get("commit"):
        parts.append(f"commit {point['commit']}")
    if point.get("gtid_position"):
        parts.append(f"server GTID position {point['gtid_position']}")
    return ", ".join(parts)


def write_report(state_dir: Path, report: dict[str, Any]) -> Path:
    """Write ``<run_id>.json`` and ``.md`` under the state directory; return the JSON path."""
    directory = report_dir(state_dir)
    private_dir(directory)
    path = directory / f"{report['run_id']}.json"
    write_atomic(path, json.dumps(report, indent=2, default=str) + "\n")
    write_atomic(path.with_suffix(".md"), to_markdown(report))
    return path


def past_reports(state_dir: Path, policy: str) -> list[dict[str, Any]]:
    """Every restore report of ``policy``, oldest first."""
    directory = report_dir(state_dir)
    if not directory.is_dir():
        return []
    reports = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("policy") == policy:
            reports.append(data)
    return reports
