"""`backupctl demo` as a user runs it: a throwaway server, a backup, a deep verification."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.cli import run_backupctl


@pytest.mark.skipif(
    shutil.which("mariadbd", path="/usr/sbin:/usr/bin") is None,
    reason="mariadb-server is not installed",
)
def test_demo_backs_up_and_deep_verifies(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    result = run_backupctl(
        ["--log-format", "json", "demo", "--workdir", str(work), "--size-mb", "8"]
    )
    assert result.code == 0, result.output
    for step in (
        "starting a throwaway MariaDB",
        "taking a full backup",
        "PASS  prepare",
        "PASS  tables-present",
        "wrecking the database",
        ": completed in",
        "table checksums equal those at backup time",
        "PASS  check-table",
        "the wrecked datadir is kept at",
    ):
        assert step in result.stdout
    # the commands the demo suggests work on what it left behind
    policy, state = work / "policies" / "demo-db.yaml", work / "state"
    listed = run_backupctl(["--policies", str(policy), "--state-dir", str(state), "list", "--json"])
    backups = json.loads(listed.stdout)
    assert len(backups) == 1 and backups[0]["policy"] == "demo-db"
    assert backups[0]["backup_id"] in result.stdout
    assert not list(work.glob("mariadb/run/*.sock")), "the throwaway server was stopped"
