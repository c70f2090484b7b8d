"""``backupctl binlog follow``: commits reach the repository within seconds, and neither a
server restart nor a killed follower loses an event or leaves a gap."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupctl.catalog.manifest import scan_manifests
from backupctl.drivers.mariadb.pitr import binlog_chain
from backupctl.proc import process_args
from backupctl.storage.local import LocalRepository
from tests.support.cli import popen_backupctl
from tests.support.mariadb import MariaDBServer
from tests.support.policies import mariadb_policy, restorable_policy


def _seq(gtid: str) -> int:
    return int(gtid.split("-")[2]) if gtid else 0


class Follower:
    def __init__(self, backupctl: Any, policy: Path):
        self.args = [
            "--state-dir",
            str(backupctl.state_dir),
            "--log-format",
            "json",
            "--policies",
            str(policy),
            "binlog",
            "follow",
            "shop",
        ]
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = popen_backupctl(self.args)

    def signal(self, signum: int) -> tuple[int, str]:
        assert self.proc is not None
        self.proc.send_signal(signum)
        _out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err

    def stop_if_running(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def follower_factory() -> Iterator[Any]:
    made: list[Follower] = []

    def make(backupctl: Any, policy: Path) -> Follower:
        made.append(Follower(backupctl, policy))
        return made[-1]

    yield make
    for follower in made:
        follower.stop_if_running()


def _stored_seq(repo: LocalRepository) -> int:
    """The newest transaction (sequence number) restorable from the repository."""
    fulls = [m for m in scan_manifests(repo, "shop") if m.kind == "full"]
    links, gap = binlog_chain(repo, max(fulls, key=lambda m: m.started_at))
    assert gap is None, f"the chain has a gap at {gap}"
    return max((_seq(link.info.last_gtid or "") for link in links), default=0)


def _wait_stored(repo: LocalRepository, gtid: str, timeout: float) -> float:
    """Seconds until transaction ``gtid`` is restorable from the repository."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if _stored_seq(repo) >= _seq(gtid):
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"{gtid} not in the repository after {timeout}s")


def _insert(server: MariaDBServer, row: int) -> str:
    server.sql(f"INSERT INTO shop.t VALUES ({row})")
    return str(server.sql("SELECT @@gtid_binlog_pos")[0][0])


def test_follow_stores_commits_within_seconds_through_restarts(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any, follower_factory: Any
) -> None:
    server = fresh_mariadb
    policy = restorable_policy(tmp_path, server)
    data = yaml.safe_load(policy.read_text())
    data["schedule"]["binlog"] = "continuous"
    data["backup"]["binlog_flush_interval"] = "1s"
    policy.write_text(yaml.safe_dump(data))
    repo = LocalRepository(tmp_path / "repo")
    server.sql("CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
    assert backupctl("backup", "shop", policies=policy).code == 0

    follower = follower_factory(backupctl, policy)
    follower.start()
    lag = _wait_stored(repo, _insert(server, 1), timeout=10)
    assert lag < 10

    refused = backupctl("backup", "shop", "--type", "binlog", policies=policy)
    assert refused.code == 2 and "binlog follow is streaming the binlogs" in refused.stderr

    # the server restarts: it closes its binlog and opens a new one
    server.instance.stop()
    server.instance.start()
    _wait_stored(repo, _insert(server, 2), timeout=60)
    sealed = [m for m in scan_manifests(repo, "shop") if m.kind == "binlog"]
    assert any(m.details.get("source") == "follow" for m in sealed)

    # the follower itself dies without warning, and events arrive meanwhile
    assert follower.proc is not None
    ours = str(backupctl.state_dir)  # (other tests may follow their own servers meanwhile)
    streams = [
        pid
        for pid, argv in process_args()
        if "--stop-never" in argv and any(ours in arg for arg in argv)
    ]
    assert streams, "no mariadb-binlog --stop-never under the follower"
    follower.proc.kill()
    follower.proc.communicate()
    # its mariadb-binlog --stop-never dies with it (setpriv --pdeathsig), not streaming on
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in streams):
        assert time.monotonic() < deadline, "mariadb-binlog outlived the killed follower"
        time.sleep(0.05)
    _insert(server, 3)
    follower.start()
    last = _insert(server, 4)
    _wait_stored(repo, last, timeout=30)

    code, err = follower.signal(signal.SIGTERM)
    assert code == 0, err
    assert "binlog follow stopped" in err
    status = json.loads((backupctl.state_dir / "binlog-follow/shop/status.json").read_text())
    assert _seq(status["last_gtid"]) == _seq(last)
    # it found the server's binlog position equal to what it had stored: current then
    assert status["current_at"] is not None and status["current_at"] >= status["last_event_at"]

    server.sql("DELETE FROM shop.t")
    result = backupctl("restore", "shop", "--to-gtid", last, "--yes", policies=policy)
    assert result.code == 0, result.output
    assert [r[0] for r in server.sql("SELECT id FROM shop.t ORDER BY id")] == [1, 2, 3, 4]


def test_a_second_follower_is_refused(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any, follower_factory: Any
) -> None:
    policy = restorable_policy(tmp_path, fresh_mariadb)
    first = follower_factory(backupctl, policy)
    first.start()
    time.sleep(2)
    second = backupctl("binlog", "follow", "shop", policies=policy, timeout=30)
    assert second.code == 75  # EX_TEMPFAIL, like any run that finds its lock held
    assert "another follow run of policy 'shop'" in second.stderr
    assert "binlog follow by pid" in second.stderr
    code, _err = first.signal(signal.SIGINT)
    assert code == 0


def test_a_follower_that_cannot_log_in_says_so_at_once(
    mariadb_server: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    connection = {
        "host": "127.0.0.1",
        "port": mariadb_server.port,
        "user": mariadb_server.user,
        "password_file": str(wrong),
    }
    policy = mariadb_policy(
        tmp_path, mariadb_server, f"file://{tmp_path}/repo", connection=connection
    )
    result = backupctl("binlog", "follow", "shop", policies=policy, timeout=60)
    assert result.code == 1
    assert "Access denied" in result.stderr
    assert "not-the-password" not in result.output
