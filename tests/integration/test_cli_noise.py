"""What cron mails: ``--quiet`` and ``--log-level`` keep routine log lines out of it, and
``NO_COLOR`` keeps escape codes out of a terminal that asked for none."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from backupctl import log
from tests.support.model_policies import model_policy, write_model

HOURLY = {"check": "0 * * * *", "timezone": "UTC"}


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    model = write_model(tmp_path / "model", "v1")
    model_policy(tmp_path / "policies", "llm", model, tmp_path / "repo", HOURLY)
    return tmp_path / "policies"


def _levels(stderr: str) -> set[str]:
    return {json.loads(line)["level"] for line in stderr.splitlines() if line.startswith("{")}


def test_a_routine_run_logs_info_lines_and_quiet_logs_none(policies: Path, backupctl: Any) -> None:
    loud = backupctl("backup", "llm", policies=policies)
    assert loud.code == 0 and "info" in _levels(loud.stderr), loud.output
    write_model(policies.parent / "model", "v2")
    quiet = backupctl("--quiet", "backup", "llm", policies=policies)
    assert quiet.code == 0, quiet.output
    assert quiet.stderr == ""  # nothing for cron to mail
    assert "backup " in quiet.stdout and "complete" in quiet.stdout  # the result itself


def test_quiet_still_says_what_went_wrong(policies: Path, backupctl: Any, tmp_path: Path):
    (tmp_path / "model").rename(tmp_path / "gone")
    failed = backupctl("-q", "backup", "llm", policies=policies)
    assert failed.code == 1
    assert "error: " in failed.stderr and "gone" not in failed.stdout
    assert _levels(failed.stderr) <= {"warning", "error"}  # no routine lines around it


def test_log_level_sets_the_threshold(policies: Path, backupctl: Any) -> None:
    result = backupctl("--log-level", "error", "backup", "llm", policies=policies)
    assert result.code == 0 and result.stderr == "", result.output
    result = backupctl("--log-level", "INFO", "list", policies=policies)  # any case
    assert result.code == 0, result.output


def test_a_bad_log_level_is_a_usage_error(policies: Path, backupctl: Any) -> None:
    result = backupctl("--log-level", "loud", "list", policies=policies)
    assert result.code == 2 and "Traceback" not in result.output


def test_no_color_turns_colours_off_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert log.use_colors()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not log.use_colors()
