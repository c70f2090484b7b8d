"""`backupctl demo` as a user runs it: a throwaway server, a backup, a deep verification."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.cli import run_backupctl
from tests.support.elasticsearch import EsCluster


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
        "25 new orders",
        "taking an incremental backup",
        "apply-incremental-1",
        "an accident: DROP TABLE shop.order_items",
        "replay-binlogs",
        ": completed in",
        "recovered to 20",
        "table checksums equal those just before the accident (the 25 new orders included)",
        "PASS  check-table",
        "the wrecked datadir is kept at",
    ):
        assert step in result.stdout
    # it ends with the worst day: the server lost, rebuilt from the repository alone
    assert "14. the server is lost" in result.stdout
    assert "  demo-db      completed in" in result.stdout
    assert "  demo-model   completed in" in result.stdout
    assert ": PASSED, RTO " in result.stdout.split("rebuild ", 1)[1]
    # the commands the demo suggests work on what it left behind: the rebuilt host's
    policy, state = work / "rebuilt" / "policies" / "demo-db.yaml", work / "rebuilt" / "state"
    listed = run_backupctl(["--policies", str(policy), "--state-dir", str(state), "list", "--json"])
    backups = json.loads(listed.stdout)
    kinds = [b["kind"] for b in backups]
    assert kinds == ["full", "incremental", "binlog", "full", "version", "version", "version"]
    assert backups[0]["backup_id"] in result.stdout
    assert f"incremental {backups[1]['backup_id']} on it:" in result.stdout
    assert backups[1]["stored_bytes"] < backups[0]["stored_bytes"] / 2
    # the restore started from the incremental, its chain's full extracted first
    assert f"from incremental {backups[1]['backup_id']}: completed in" in result.stdout
    suggested = next(line for line in result.stdout.splitlines() if "--to-time" in line)
    when = suggested.split('"')[1]
    args = ["--policies", str(policy), "--state-dir", str(state), "restore", "demo-db"]
    planned = run_backupctl([*args, "--to-time", when, "--dry-run"])
    assert planned.code == 0, planned.output
    assert "replay-binlogs: replay binlogs from mysql-bin." in planned.stdout
    assert "model version v3:" in result.stdout
    assert "the served directory is v2 again, byte for byte" in result.stdout
    assert "Elasticsearch skipped: set BACKUPCTL_DEMO_ES_URL" in result.stdout
    drill = next(line for line in result.stdout.splitlines() if line.startswith("drill report:"))
    html = Path(drill.split(": ", 1)[1])
    html = work / "lost" / html.relative_to(work)  # the lost server's state, moved away
    assert html.is_file() and "<svg" in html.read_text()
    assert ": PASSED, RTO " in result.stdout
    assert not list(work.glob("mariadb/run/*.sock")), "the throwaway server was stopped"


@pytest.mark.skipif(
    shutil.which("mariadbd", path="/usr/sbin:/usr/bin") is None,
    reason="mariadb-server is not installed",
)
def test_demo_includes_elasticsearch_when_given_a_cluster(
    tmp_path: Path, es_cluster: EsCluster
) -> None:
    work = tmp_path / "demo"
    env = {
        "BACKUPCTL_DEMO_ES_URL": es_cluster.url,
        "BACKUPCTL_DEMO_ES_SNAPSHOT_DIR": str(es_cluster.snapshot_root),
    }
    args = ["--log-format", "json", "demo", "--workdir", str(work), "--size-mb", "4"]
    result = run_backupctl(args, env=env)
    assert result.code == 0, result.output
    assert ": SUCCESS" in result.stdout
    assert "is back with 500 documents (snapshot had 500)" in result.stdout
