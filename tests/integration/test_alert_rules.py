"""The Prometheus alert rules and the Grafana dashboard in deploy/: promtool accepts the
rules and passes their unit tests, every alert has a case that fires and one that does
not, and every metric they query is one that docs/metrics.md defines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.promtool import RULES, run_promtool

ROOT = Path(__file__).resolve().parents[2]
RULE_TESTS = ROOT / "deploy" / "prometheus" / "backupctl-rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "backupctl-dashboard.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"
README = ROOT / "deploy" / "prometheus" / "README.md"
METRIC_NAME = re.compile(r"backupctl_[a-z_]+")
# What Grafana substitutes before it sends a query (for promtool's syntax check).
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1h",
    "$__range": "7d",
    "$policy": ".*",
}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def documented_metrics() -> set[str]:
    """Metric names in the first column of docs/metrics.md's tables."""
    return set(re.findall(r"^\| `(backupctl_[a-z_]+)` \|", METRICS_DOC.read_text(), re.M))


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    """The PromQL of every panel target and every query variable."""
    expressions = [
        target["expr"]
        for panel in dashboard_panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            expressions.append(query["query"] if isinstance(query, dict) else query)
    return expressions


def test_promtool_accepts_the_rules() -> None:
    result = run_promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@pytest.mark.slow
def test_rule_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_test_case() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    suite = yaml.safe_load(RULE_TESTS.read_text())
    assert suite["rule_files"] == [RULES.name]
    cases = [case for test in suite["tests"] for case in test.get("alert_rule_test", [])]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert sorted(firing) == sorted(rules), "alerts without a case where they fire"
    assert sorted(quiet) == sorted(rules), "alerts without a case where they stay quiet"
    for case in cases:
        for expected in case.get("exp_alerts") or []:
            rule = rules[case["alertname"]]
            # promtool compares whole label and annotation sets: spell them all out.
            assert expected["exp_labels"]["severity"] == rule["labels"]["severity"]
            assert set(expected["exp_annotations"]) == set(rule["annotations"])


def test_alerts_have_a_severity_and_explain_themselves() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    severities = {rule["alert"]: rule["labels"]["severity"] for rule in rules}
    assert set(severities.values()) == {"critical", "warning"}
    for rule in rules:
        assert rule["alert"].startswith("Backupctl"), rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) >= {"summary", "description"}, rule["alert"]
        if not rule["expr"].startswith("absent("):  # absent() has no labels to name
            assert "{{ $labels." in annotations["summary"], rule["alert"]


def test_readme_lists_every_alert() -> None:
    readme = README.read_text()
    missing = [rule["alert"] for rule in alert_rules() if f"`{rule['alert']}`" not in readme]
    assert not missing, f"deploy/prometheus/README.md does not list {missing}"


def test_rules_query_only_documented_metrics() -> None:
    used = {name for rule in alert_rules() for name in METRIC_NAME.findall(rule["expr"])}
    assert used, "no backupctl metric found in the rules"
    assert used <= documented_metrics(), f"not in docs/metrics.md: {used - documented_metrics()}"


def test_dashboard_queries_only_documented_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for expr in dashboard_expressions(dashboard) for name in METRIC_NAME.findall(expr)}
    assert used, "no backupctl metric found in the dashboard"
    assert used <= documented_metrics(), f"not in docs/metrics.md: {used - documented_metrics()}"


def test_dashboard_panels_have_unique_ids_queries_and_room() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = list(dashboard_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    policy = next(v for v in dashboard["templating"]["list"] if v["name"] == "policy")
    assert "label_values(backupctl_last_run_timestamp_seconds, policy)" in json.dumps(policy)
    occupied: dict[tuple[int, int], str] = {}
    for panel in panels:
        if panel["type"] == "row":  # a row only groups the panels below it
            continue
        targets = [t for t in panel.get("targets", []) if t.get("expr", "").strip()]
        assert targets, f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for cell in (
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        ):
            assert cell not in occupied, f"{panel['title']!r} overlaps {occupied[cell]!r}"
            occupied[cell] = panel["title"]


def test_dashboard_expressions_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule, once Grafana's variables are set."""
    dashboard = json.loads(DASHBOARD.read_text())
    rules = []
    for number, expr in enumerate(dashboard_expressions(dashboard)):
        if expr.startswith("label_values("):  # Grafana's own variable function
            continue
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unsubstituted Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
