"""A script that runs ``backupctl … --json`` reads one JSON document from stdout whatever
happened: the result, or an ``error`` object with the message and the exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backupctl.layout import StateLayout
from backupctl.locks import policy_lock
from tests.support.model_policies import model_policy, write_model

HOURLY = {"check": "0 * * * *", "timezone": "UTC"}


def _error(stdout: str) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(stdout)["error"]
    return error


def test_failures_print_a_json_error_on_stdout(tmp_path: Path, backupctl: Any) -> None:
    policies = tmp_path / "policies"
    model_policy(policies, "llm", write_model(tmp_path / "model", "v1"), tmp_path / "repo", HOURLY)

    unknown = backupctl("verify", "nosuch", "--json", policies=policies)
    assert unknown.code == 2
    error = _error(unknown.stdout)
    assert set(error) == {"exit_code", "outcome", "message"}
    assert error["exit_code"] == 2 and error["outcome"] == "usage"
    assert "nosuch" in error["message"]
    assert "error: " in unknown.stderr  # people still read stderr

    (tmp_path / "model").rename(tmp_path / "gone")
    failed = backupctl("backup", "llm", "--json", policies=policies)
    assert failed.code == 1 and _error(failed.stdout)["outcome"] == "failed", failed.output

    write_model(tmp_path / "model", "v1")
    with policy_lock(StateLayout(backupctl.state_dir), "llm"):
        skipped = backupctl("backup", "llm", "--json", policies=policies)
    assert skipped.code == 75 and _error(skipped.stdout)["outcome"] == "skipped"

    usage = backupctl("list", "--json", "--no-such-option", policies=policies)
    assert usage.code == 2 and _error(usage.stdout)["exit_code"] == 2


def test_invalid_policies_list_every_problem(tmp_path: Path, backupctl: Any) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "a.yaml").write_text("version: 1\nname: a\ndriver: nosuch\n")
    result = backupctl("policy", "validate", "--json", policies=policies)
    assert result.code == 2
    error = _error(result.stdout)
    assert error["outcome"] == "usage" and len(error["problems"]) >= 1
    assert all("a.yaml" in problem for problem in error["problems"])


def test_a_command_that_printed_its_result_prints_nothing_more(
    tmp_path: Path, backupctl: Any
) -> None:
    policies = tmp_path / "policies"
    model_policy(
        policies,
        "llm",
        write_model(tmp_path / "model", "v1"),
        tmp_path / "repo",
        HOURLY,
        objectives={"rpo": "1m", "rto": "1h"},
    )
    status = backupctl("status", "--json", policies=policies)  # breached: never backed up
    assert status.code == 1
    assert isinstance(json.loads(status.stdout), list)  # one document: the statuses
