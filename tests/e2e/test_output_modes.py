"""Logs: a live progress bar on a terminal, JSON lines with bound context otherwise."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.mariadb import MariaDBServer
from tests.support.policies import mariadb_policy


def _fill(server: MariaDBServer) -> None:
    from backupctl.demo import sample_data

    conn = server.connect()
    try:
        sample_data.generate(conn, "shop", 40)
    finally:
        conn.close()


def test_progress_bar_on_a_terminal(fresh_mariadb: MariaDBServer, tmp_path: Path) -> None:
    _fill(fresh_mariadb)
    policy = mariadb_policy(tmp_path / "p", fresh_mariadb, f"file://{tmp_path / 'repo'}")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backupctl",
            "--policies",
            str(policy),
            "--state-dir",
            str(tmp_path / "state"),
            "backup",
            "shop",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(slave)
    screen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(master)
    assert proc.returncode == 0, screen.decode(errors="replace")
    text = screen.decode(errors="replace")
    assert "backup shop" in text and "MB" in text, text[-2000:]
    assert "backup started" in text  # console log lines, not JSON
    assert not text.lstrip().startswith("{")
    assert "complete" in out.decode()


def test_json_lines_without_a_terminal(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    policy = mariadb_policy(tmp_path / "p", fresh_mariadb, f"file://{tmp_path / 'repo'}")
    result = backupctl("backup", "shop", "--json", policies=policy)
    assert result.code == 0, result.output
    backup_id = json.loads(result.stdout)["backup_id"]
    events = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    backup_events = [e for e in events if e["event"].startswith("backup ")]
    assert {e["event"] for e in backup_events} == {"backup started", "backup complete"}
    for event in backup_events:
        assert event["policy"] == "shop" and event["backup_id"] == backup_id
        assert event["level"] == "info" and event["timestamp"].endswith("Z")
