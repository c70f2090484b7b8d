"""A self-contained HTML drill report: inline CSS and SVG charts, nothing fetched at view
time (a timeline of the steps; RTO and RPO across past drills against the objectives)."""

from __future__ import annotations

from html import escape
from typing import Any

from backupctl.drills.report import DrillReport, seconds_text
from backupctl.runbook.records import StepRecord

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:60em}
.ok{color:#17663a}.bad{color:#b3261e}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
svg text{font-size:12px;font-family:system-ui,sans-serif}
"""
_COLOURS = {"ok": "#2e7d32", "failed": "#c62828", "compensated": "#f9a825"}


def timeline_svg(steps: list[StepRecord], width: int = 720) -> str:
    """Horizontal bars, one row per step, placed at its start and as long as it took."""
    label_w, row_h = 190, 22
    total = sum(s.seconds for s in steps) or 1.0
    scale = (width - label_w - 70) / total
    height = row_h * len(steps) + 30
    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="step timeline">']
    start = 0.0
    for row, step in enumerate(steps):
        y = 10 + row * row_h
        x = label_w + start * scale
        w = max(step.seconds * scale, 1.5)
        colour = _COLOURS.get(step.status, "#9e9e9e")
        parts.append(f'<text x="4" y="{y + 14}">{escape(step.name)}</text>')
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" '
            f'fill="{colour}"><title>{escape(step.name)}: {escape(step.status)}, '
            f"{step.seconds:.2f}s</title></rect>"
        )
        parts.append(f'<text x="{x + w + 4:.1f}" y="{y + 14}">{step.seconds:.1f}s</text>')
        start += step.seconds
    axis_y = height - 12
    parts.append(f'<text x="{label_w}" y="{axis_y}">0s</text>')
    parts.append(f'<text x="{width - 70}" y="{axis_y}">{total:.1f}s</text>')
    parts.append("</svg>")
    return "".join(parts)


def history_svg(
    history: list[DrillReport], field: str, objective: float | None, width: int = 720
) -> str:
    """Bars of ``field`` (rpo_seconds / rto_seconds) per drill, oldest first, with the
    objective as a dashed line; missing measurements (failed drills) are marked."""
    height, top, bottom, left = 180, 12, 30, 60
    values: list[float | None] = [getattr(r, field) for r in history]
    peak = max([v for v in values if v is not None] + [objective or 0.0, 1.0])
    plot_h = height - top - bottom
    step_w = (width - left - 10) / max(len(history), 1)
    name = field.split("_")[0].upper()
    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="{name} across drills">',
        f'<text x="4" y="{top + 10}">{name}</text>',
        f'<text x="4" y="{top + 26}">{escape(seconds_text(peak))}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
        f'stroke="#888"/>',
    ]
    for i, (report, value) in enumerate(zip(history, values, strict=True)):
        x = left + i * step_w + step_w * 0.15
        w = step_w * 0.7
        label = escape(report.drill_id[:8])
        parts.append(f'<text x="{x:.1f}" y="{height - 12}">{label}</text>')
        if value is None:
            y = top + plot_h - 14
            parts.append(f'<text x="{x:.1f}" y="{y}" fill="#c62828">failed</text>')
            continue
        h = max(value / peak * plot_h, 1.0)
        colour = "#c62828" if objective is not None and value > objective else "#1565c0"
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{w:.1f}" height="{h:.1f}" '
            f'fill="{colour}"><title>{escape(seconds_text(value))}</title></rect>'
        )
    if objective is not None:
        line_y = top + plot_h - objective / peak * plot_h
        parts.append(
            f'<line x1="{left}" y1="{line_y:.1f}" x2="{width - 10}" y2="{line_y:.1f}" '
            f'stroke="#c62828" stroke-dasharray="6 4"/>'
            f'<text x="{width - 150}" y="{line_y - 4:.1f}" fill="#c62828">'
            f"objective {escape(seconds_text(objective))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _rows(items: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(item.get(c, '')))}</td>" for c in columns) + "</tr>"
        for item in items
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def to_html(report: DrillReport, history: list[DrillReport]) -> str:
    """The whole page (``history``: this policy's drills, oldest first, this one included)."""
    objectives = report.objectives
    cls = "ok" if report.passed else "bad"
    title = f"Recovery drill {report.drill_id} of {report.policy}"
    facts = [
        ("result", report.verdict),
        ("backup", report.backup_id or "-"),
        ("started", report.started_at),
        ("finished", report.finished_at or "-"),
        ("recovery point", report.recovery_point or "-"),
        (
            "RPO",
            f"{seconds_text(report.rpo_seconds)} "
            f"(objective {seconds_text(objectives.rpo_seconds)})",
        ),
        (
            "RTO",
            f"{seconds_text(report.rto_seconds)} "
            f"(objective {seconds_text(objectives.rto_seconds)})",
        ),
    ]
    if report.reason:
        facts.append(("reason", report.reason))
    facts += [("note", note) for note in report.notes]
    fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    steps = [s.model_dump() for s in report.steps]
    checks = [{**c.model_dump(), "passed": "yes" if c.passed else "NO"} for c in report.checks]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{_CSS}</style></head><body>"
        f'<h1 class="{cls}">{escape(title)}: {report.verdict}</h1>'
        f"<table>{fact_rows}</table>"
        f"<h2>Timeline</h2>{timeline_svg(report.steps)}"
        f"{_rows(steps, ['name', 'status', 'seconds', 'detail'])}"
        f"<h2>Checks</h2>{_rows(checks, ['name', 'passed', 'detail'])}"
        f"<h2>RTO and RPO across drills</h2>"
        f"{history_svg(history, 'rto_seconds', objectives.rto_seconds)}"
        f"{history_svg(history, 'rpo_seconds', objectives.rpo_seconds)}"
        "</body></html>\n"
    )
