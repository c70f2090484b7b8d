"""``backupctl backup`` applies the policy's retention after every successful backup, as
the units from ``systemd generate`` and the lines from ``backupctl cron`` run it: the
repository keeps the promised history without ``run-due`` or a prune job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backupctl.layout import StateLayout
from backupctl.locks import policy_lock
from tests.support.model_policies import model_policy, write_model

HOURLY = {"check": "0 * * * *", "timezone": "UTC"}


def _versions(backupctl: Any, policies: Path) -> list[str]:
    listed = backupctl("list", "llm", "--json", policies=policies)
    assert listed.code == 0, listed.output
    return sorted(b["details"]["version"] for b in json.loads(listed.stdout))


@pytest.fixture
def llm(tmp_path: Path) -> tuple[Path, Path]:
    """A model policy keeping the last 2 versions; (its policies dir, its model dir)."""
    model = write_model(tmp_path / "model", "v1")
    policies = tmp_path / "policies"
    model_policy(policies, "llm", model, tmp_path / "repo", HOURLY, retention={"keep_versions": 2})
    return policies, model


def test_each_backup_prunes_what_retention_lets_go(llm: tuple[Path, Path], backupctl: Any):
    policies, model = llm
    for version in ("v1", "v2", "v3", "v4"):
        write_model(model, version)
        result = backupctl("backup", "llm", policies=policies)
        assert result.code == 0, result.output
    assert _versions(backupctl, policies) == ["v3", "v4"]
    assert "1 older backup(s) pruned" in result.stdout


def test_no_prune_and_the_policy_switch_keep_everything(
    llm: tuple[Path, Path], backupctl: Any, tmp_path: Path
) -> None:
    policies, model = llm
    for version in ("v1", "v2", "v3"):
        write_model(model, version)
        assert backupctl("backup", "llm", "--no-prune", policies=policies).code == 0
    assert _versions(backupctl, policies) == ["v1", "v2", "v3"]
    model_policy(
        policies,
        "llm",
        model,
        tmp_path / "repo",
        HOURLY,
        retention={"keep_versions": 2},
        prune_after_backup=False,
    )
    write_model(model, "v4")
    assert backupctl("backup", "llm", policies=policies).code == 0
    assert _versions(backupctl, policies) == ["v1", "v2", "v3", "v4"]
    assert backupctl("prune", "llm", policies=policies).code == 0  # prune itself still does
    assert _versions(backupctl, policies) == ["v3", "v4"]


def test_a_backup_skipped_for_a_held_lock_exits_75_and_is_recorded_as_skipped(
    llm: tuple[Path, Path], backupctl: Any
) -> None:
    policies, _ = llm
    with policy_lock(StateLayout(backupctl.state_dir), "llm", purpose="a long backup"):
        result = backupctl("backup", "llm", policies=policies)
    assert result.code == 75, result.output
    assert "another run of policy 'llm' is in progress (a long backup" in result.stderr
    assert "Traceback" not in result.output
    runs = json.loads((backupctl.state_dir / "runs" / "runs.json").read_text())["runs"]
    (record,) = runs.values()
    assert record["last_outcome"] == "skipped" and record["counts"] == {"skipped": 1}
    assert record["consecutive_failures"] == 0 and record["last_failure"] is None
