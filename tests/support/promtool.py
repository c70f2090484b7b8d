"""promtool (Debian's prometheus package) for the alert rules in deploy/prometheus: its
path, a run of it, and alert evaluation over a metrics snapshot backupctl exported."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "backupctl-rules.yml"
# where a snapshot's clock stands in the promtool test: time() there is seconds since 0
EVAL_AT = 3600
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)$")


def promtool() -> str:
    """Path of promtool; fails under CI (``CI`` set) when it is missing, else skips."""
    path = shutil.which("promtool")
    if path is None:
        message = (
            "promtool is not installed: apt-get install prometheus "
            "(scripts/bootstrap.sh --test installs it)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def input_series(exposition: str, now: float) -> list[dict[str, str]]:
    """The samples of a text exposition taken at ``now`` as promtool input series that hold
    still for an hour before ``EVAL_AT``. Timestamps (``*_timestamp_seconds``) move with the
    clock: promtool's time() counts from 0, so they become ``EVAL_AT - (now - value)``."""
    series = []
    for line in exposition.splitlines():
        match = _SAMPLE.match(line.strip())
        if line.startswith("#") or not match:
            continue
        name, labels, raw = match.groups()
        value = float(raw)
        if name.endswith("_timestamp_seconds"):
            value = EVAL_AT - (now - value)
        series.append({"series": f"{name}{labels or ''}", "values": f"{value:.3f}+0x60"})
    return series


def firing_case(name: str, exposition: str, now: float, firing: dict[str, int]) -> dict[str, Any]:
    """A promtool test that evaluates the rules over ``exposition`` (taken at ``now``) and
    expects exactly ``firing`` (alert name → how many series) to fire."""
    return {
        "name": name,
        "interval": "1m",
        "input_series": input_series(exposition, now),
        "promql_expr_test": [
            {
                "expr": 'count by (alertname) (ALERTS{alertstate="firing"})',
                "eval_time": f"{EVAL_AT}s",
                "exp_samples": [
                    {"labels": f'{{alertname="{alert}"}}', "value": count}
                    for alert, count in sorted(firing.items())
                ],
            }
        ],
    }


def check_alerts(directory: Path, cases: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """Run promtool over ``cases`` (firing_case) against the rules in deploy/."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(RULES, directory / RULES.name)
    suite = directory / "alerts.test.yml"
    suite.write_text(
        yaml.safe_dump({"rule_files": [RULES.name], "evaluation_interval": "1m", "tests": cases})
    )
    return run_promtool("test", "rules", suite)
