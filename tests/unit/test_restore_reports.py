"""Restore reports, duration estimates and the retention of moved-aside datadirs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backupctl.layout import StateLayout
from backupctl.operations.context import Context
from backupctl.operations.restore import past_steps, prune_asides
from backupctl.policy.loader import parse_policy
from backupctl.runbook.eta import project
from backupctl.runbook.journal import Journal
from backupctl.runbook.report import (
    BackupSummary,
    RestoreReport,
    build_report,
    to_markdown,
    write_report,
)
from backupctl.runbook.step import StepResult


def _policy(tmp_path: Path, keep: str):  # type: ignore[no-untyped-def]
    (tmp_path / "secret").write_text("pw\n")
    path = tmp_path / "db.yaml"
    path.write_text(
        "version: 1\nname: db\ndriver: mariadb\n"
        f"connection: {{socket: /run/x.sock, password_file: {tmp_path / 'secret'}}}\n"
        f"datadir: /var/lib/mysql\nrepository: file:///tmp/r\nrestore: {{keep_aside: {keep}}}\n"
    )
    policy, problems = parse_policy(path)
    assert not problems
    return policy


def _report(state: Path, run_id: str, finished: datetime, aside: Path, seconds: float) -> None:
    journal = Journal(
        state / "j.json",
        run_id,
        "restore",
        "db",
        {"target_datadir": None},
        [StepResult("fetch-extract", "ok", seconds, "x")],
        state="completed",
        finished_at=finished.isoformat(),
    )
    journal.values["aside"] = str(aside)
    backup = BackupSummary(backup_id="b", raw_bytes=1000)
    write_report(StateLayout(state), build_report(journal, backup))


def test_old_asides_are_pruned_and_recent_ones_kept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old, recent = tmp_path / "data.aside-old", tmp_path / "data.aside-new"
    for aside in (old, recent):
        (aside / "shop").mkdir(parents=True)
    now = datetime.now(UTC)
    _report(state, "20261101T000000Z-aaaaaa", now - timedelta(days=8), old, 10)
    _report(state, "20261120T000000Z-bbbbbb", now - timedelta(hours=1), recent, 30)
    ctx = Context(StateLayout(state), clock=lambda: now)
    assert prune_asides(ctx, _policy(tmp_path, "7d")) == [str(old)]
    assert not old.exists() and recent.exists()
    # plans project a step from the same step of past restores (here: of fixed cost)
    assert project("fetch-extract", None, past_steps(StateLayout(state), "db")).seconds == 20.0


def test_markdown_report_names_steps_checks_and_aside(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _report(state, "20261101T000000Z-aaaaaa", datetime.now(UTC), tmp_path / "aside", 1.5)
    data = json.loads((state / "restores" / "20261101T000000Z-aaaaaa.json").read_text())
    assert data["passed"] is True and data["steps"][0]["name"] == "fetch-extract"
    text = to_markdown(RestoreReport.model_validate(data))
    assert "PASSED" in text and "| fetch-extract | ok | 1.50 |" in text
    assert f"`{tmp_path / 'aside'}`" in text
