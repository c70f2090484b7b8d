"""Drill reports people read: objectives judged, Markdown and the self-contained HTML page
(its SVG charts parse, bars are proportional, hostile text is escaped)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import pytest

from backupctl.drills.html import history_svg, timeline_svg, to_html
from backupctl.drills.objectives import missed_objectives, objective_seconds
from backupctl.drills.report import DrillReport, seconds_text, to_markdown
from backupctl.policy.common import Objectives

SVG = "{http://www.w3.org/2000/svg}"


def _data(**changes: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "drill_id": "20261122T020000Z-abc123",
        "policy": "shop-db",
        "backup_id": "20261121T020000Z-def456",
        "started_at": "2026-11-22T02:00:00+00:00",
        "finished_at": "2026-11-22T02:01:00+00:00",
        "recovery_point": "2026-11-22T01:45:00+00:00",
        "rpo_seconds": 900.0,
        "rto_seconds": 41.3,
        "objectives": {"rpo_seconds": 3600.0, "rto_seconds": 14400.0},
        "passed": True,
        "reason": None,
        "steps": [
            {"name": "fetch-extract", "status": "ok", "seconds": 1.0, "detail": "a | b"},
            {"name": "prepare", "status": "ok", "seconds": 3.0, "detail": ""},
            {"name": "verify", "status": "failed", "seconds": 0.5, "detail": "x"},
        ],
        "checks": [{"name": "check-table", "passed": True, "detail": "shop.orders ok"}],
    }
    report.update(changes)
    return report


def _report(**changes: Any) -> DrillReport:
    return DrillReport.model_validate(_data(**changes))


def _svg(text: str) -> ET.Element:
    return ET.fromstring(text.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


@pytest.mark.parametrize(
    ("rpo", "rto", "expected"),
    [
        (3599.0, 14400.0, []),  # on the objective is within it
        (3600.5, 10.0, [("rpo", 0.5)]),
        (10.0, 14460.0, [("rto", 60.0)]),
        (None, None, []),  # not measured (a failed drill): not compared
    ],
)
def test_objectives_are_missed_only_when_exceeded(
    rpo: float | None, rto: float | None, expected: list[tuple[str, float]]
) -> None:
    objectives = Objectives(rpo=timedelta(hours=1), rto=timedelta(hours=4))
    missed = missed_objectives(objectives, rpo, rto)
    assert [(m.objective, m.over_seconds) for m in missed] == expected
    for miss in missed:
        assert f"{miss.objective.upper()} objective missed" in str(miss)
        assert miss.to_dict()["message"] == str(miss)


def test_unset_objectives_are_never_missed() -> None:
    assert objective_seconds(Objectives()) == {"rpo_seconds": None, "rto_seconds": None}
    assert missed_objectives(Objectives(), 10**9, 10**9) == []


def test_seconds_read_as_people_say_them() -> None:
    assert [seconds_text(v) for v in (None, 41.34, 812.0, 3 * 3600 + 61)] == [
        "-",
        "41.3s",
        "13m 32s",
        "3h 01m 01s",
    ]


def test_the_timeline_has_one_bar_per_step_as_long_as_it_took() -> None:
    steps = _report().steps
    svg = _svg(timeline_svg(steps))
    bars = svg.findall(f"{SVG}rect")
    assert len(bars) == 3
    widths = [float(b.attrib["width"]) for b in bars]
    assert widths[1] == pytest.approx(3 * widths[0], rel=0.01)
    starts = [float(b.attrib["x"]) for b in bars]
    assert starts[1] == pytest.approx(starts[0] + widths[0], rel=0.01)  # after the first
    assert bars[2].attrib["fill"] != bars[0].attrib["fill"]  # a failed step stands out


def test_the_history_chart_marks_misses_failures_and_the_objective() -> None:
    history = [
        _report(drill_id="20261101T020000Z-aaaaa1", rto_seconds=100.0),
        _report(drill_id="20261102T020000Z-aaaaa2", rto_seconds=None, passed=False),
        _report(drill_id="20261103T020000Z-aaaaa3", rto_seconds=500.0),
    ]
    svg = _svg(history_svg(history, "rto_seconds", 300.0))
    bars = svg.findall(f"{SVG}rect")
    assert len(bars) == 2  # the failed drill has no bar
    assert float(bars[1].attrib["height"]) == pytest.approx(5 * float(bars[0].attrib["height"]))
    assert bars[0].attrib["fill"] != bars[1].attrib["fill"]  # 500 s is over the objective
    texts = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    assert "failed" in texts and "objective 5m 00s" in texts
    assert any(line.attrib.get("stroke-dasharray") for line in svg.iter(f"{SVG}line"))


def test_the_html_page_is_self_contained_and_escapes_what_it_shows() -> None:
    hostile = "<script>alert(1)</script>"
    data = _data(
        passed=False,
        reason=f"step 'verify' failed: {hostile}",
        notes=["RPO objective not judged"],
    )
    data["steps"][0]["name"] = hostile
    report = DrillReport.model_validate(data)
    page = to_html(report, [report])
    assert page.startswith("<!DOCTYPE html>") and "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and "src=" not in page
    assert page.count("<svg") == 3 and "RPO objective not judged" in page


def test_markdown_keeps_tables_intact() -> None:
    text = to_markdown(_report(notes=["a note"]))
    assert "| fetch-extract | ok | 1.00 |  | a \\| b |" in text
    assert "- note: a note" in text
    assert "- RPO: 15m 00s (objective 1h 00m 00s)" in text
