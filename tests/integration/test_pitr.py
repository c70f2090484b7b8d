"""Point-in-time restore: full backup + binlogs replayed up to a moment, then stop."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from backupctl.demo.server import checksum_tables
from tests.support.mariadb import MariaDBServer, binlog_moment, start_server
from tests.support.policies import mariadb_policy, restorable_policy


def test_restore_to_just_before_the_bad_delete(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    server = fresh_mariadb
    policy = restorable_policy(tmp_path, server)
    server.sql(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(20))",
        "INSERT INTO shop.orders VALUES (1, 'before full')",
    )
    assert backupctl("backup", "shop", policies=policy).code == 0
    server.sql("INSERT INTO shop.orders VALUES (2, 'at T1'), (3, 'at T1')")
    last_good_gtid = server.sql("SELECT @@gtid_binlog_pos")[0][0]
    before_delete = binlog_moment()
    server.sql("DELETE FROM shop.orders WHERE id >= 2")
    after_delete = binlog_moment()
    server.sql("INSERT INTO shop.orders VALUES (9, 'after')")
    assert backupctl("backup", "shop", "--type", "binlog", policies=policy).code == 0

    plan = backupctl("restore", "shop", "--to-time", before_delete, "--dry-run", policies=policy)
    assert plan.code == 0, plan.output
    assert "replay-binlogs: replay binlogs from mysql-bin." in plan.stdout

    result = backupctl(
        "restore", "shop", "--to-time", before_delete, "--yes", "--json", policies=policy
    )
    assert result.code == 0, result.output
    assert [r[0] for r in server.sql("SELECT id FROM shop.orders ORDER BY id")] == [1, 2, 3]

    result = backupctl("restore", "shop", "--to-time", after_delete, "--yes", policies=policy)
    assert result.code == 0, result.output
    moment = datetime.fromisoformat(after_delete)
    utc_text = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    local_text = moment.astimezone().strftime("%H:%M:%S")
    assert f"recovered to {utc_text} ({local_text}" in result.stdout
    assert [r[0] for r in server.sql("SELECT id FROM shop.orders ORDER BY id")] == [1]

    result = backupctl(
        "restore", "shop", "--to-gtid", last_good_gtid, "--yes", "--json", policies=policy
    )
    assert result.code == 0, result.output
    assert [r[0] for r in server.sql("SELECT id FROM shop.orders ORDER BY id")] == [1, 2, 3]
    # without gtid_strict_mode too, the recovery instance's own GTID position was checked
    (replay,) = [s for s in json.loads(result.stdout)["steps"] if s["name"] == "replay-binlogs"]
    assert replay["detail"].endswith(f"; GTID position {last_good_gtid}"), replay["detail"]
    domain, server_id, seq = last_good_gtid.split("-")
    beyond = f"{domain}-{server_id}-{int(seq) + 100}"
    refused = backupctl("restore", "shop", "--to-gtid", beyond, "--yes", policies=policy)
    assert refused.code == 2 and "outside the recoverable range" in refused.stderr
    bad = backupctl("restore", "shop", "--to-gtid", "latest", "--yes", policies=policy)
    assert bad.code == 2 and "expected a GTID like 0-1-42" in bad.stderr

    future = "2099-01-01T00:00:00+00:00"
    refused = backupctl("restore", "shop", "--to-time", future, "--yes", policies=policy)
    assert refused.code == 2 and "outside the recoverable window" in refused.stderr


def test_a_missing_binlog_object_limits_the_window(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    server = fresh_mariadb
    repo = tmp_path / "repo"
    policy = mariadb_policy(tmp_path / "p", server, f"file://{repo}")
    server.sql("CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
    assert backupctl("backup", "shop", policies=policy).code == 0
    server.sql("INSERT INTO shop.t VALUES (1)")
    middle = binlog_moment()
    assert backupctl("backup", "shop", "--type", "binlog", policies=policy).code == 0
    server.sql("INSERT INTO shop.t VALUES (2)")
    assert backupctl("backup", "shop", "--type", "binlog", policies=policy).code == 0
    late = binlog_moment()
    server.sql("INSERT INTO shop.t VALUES (3)")
    assert backupctl("backup", "shop", "--type", "binlog", policies=policy).code == 0
    # lose the second binlog (the one holding INSERT 2) from the repository
    shipped = sorted((repo / "shop" / "binlog").rglob("mysql-bin.*.zst"), key=lambda p: p.name)
    lost = shipped[1].name.removesuffix(".zst")
    shipped[1].unlink()
    refused = backupctl("restore", "shop", "--to-time", late, "--dry-run", policies=policy)
    assert refused.code == 2, refused.output
    assert f"binlog {lost} is missing from the repository" in refused.stderr
    assert backupctl("restore", "shop", "--to-time", middle, "--dry-run", policies=policy).code == 0
    listed = backupctl("list", "shop", policies=policy)
    assert f"the chain stops there: binlog {lost} is missing from the repository" in listed.stdout
    assert "shop: recoverable from" in listed.stdout


def test_pitr_after_a_restore_reset_the_binlog_numbering(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    """A restored server starts over at mysql-bin.000001: old shipped files of that name
    must neither stop the new ones from being shipped nor be replayed by mistake."""
    server = fresh_mariadb
    policy = restorable_policy(tmp_path, server)
    server.sql("CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
    assert backupctl("backup", "shop", policies=policy).code == 0
    server.sql("INSERT INTO shop.t VALUES (1)", "FLUSH BINARY LOGS", "FLUSH BINARY LOGS")
    assert backupctl("backup", "shop", "--type", "binlog", policies=policy).code == 0
    assert backupctl("restore", "shop", "--yes", policies=policy).code == 0
    assert server.sql("SHOW BINARY LOGS")[-1][0] == "mysql-bin.000001"

    assert backupctl("backup", "shop", policies=policy).code == 0
    server.sql("INSERT INTO shop.t VALUES (7)")
    moment = binlog_moment()
    server.sql("DELETE FROM shop.t")
    shipped = backupctl("backup", "shop", "--type", "binlog", "--json", policies=policy)
    assert "binlog numbering restarted" in shipped.stderr
    assert "mysql-bin.000001" in [
        b["file"] for b in json.loads(shipped.stdout)["details"]["binlogs"]
    ]

    result = backupctl("restore", "shop", "--to-time", moment, "--yes", policies=policy)
    assert result.code == 0, result.output
    assert [r[0] for r in server.sql("SELECT id FROM shop.t")] == [7]


def test_pitr_under_gtid_strict_mode(tmp_path: Path, backupctl: Any) -> None:
    """With gtid_strict_mode=ON on the source, replay runs under strict mode too, from the
    full backup's GTID position, and the restored server keeps working in strict mode."""
    server = start_server(tmp_path, extra_args=["--gtid-strict-mode=ON"])
    try:
        policy = restorable_policy(tmp_path, server)
        server.sql(
            "CREATE DATABASE shop",
            "CREATE TABLE shop.t (id INT PRIMARY KEY)",
            "INSERT INTO shop.t VALUES (1)",
        )
        assert backupctl("backup", "shop", policies=policy).code == 0
        server.sql("INSERT INTO shop.t VALUES (2)", "INSERT INTO shop.t VALUES (3)")
        good = server.sql("SELECT @@gtid_binlog_pos")[0][0]
        moment = binlog_moment()
        server.sql("DELETE FROM shop.t")
        assert backupctl("backup", "shop", "--type", "binlog", policies=policy).code == 0

        plan = backupctl("restore", "shop", "--to-gtid", good, "--dry-run", policies=policy)
        assert "gtid_strict_mode=ON from GTID 0-1-" in plan.stdout, plan.output
        result = backupctl("restore", "shop", "--to-gtid", good, "--yes", "--json", policies=policy)
        assert result.code == 0, result.output
        replay = next(
            s for s in json.loads(result.stdout)["steps"] if s["name"] == "replay-binlogs"
        )
        assert f"GTID position {good} under gtid_strict_mode" in replay["detail"]
        assert [r[0] for r in server.sql("SELECT id FROM shop.t ORDER BY id")] == [1, 2, 3]

        result = backupctl("restore", "shop", "--to-time", moment, "--yes", policies=policy)
        assert result.code == 0, result.output
        assert server.sql("SELECT @@gtid_strict_mode")[0][0] == 1
        server.sql("INSERT INTO shop.t VALUES (4)")
        assert [r[0] for r in server.sql("SELECT id FROM shop.t ORDER BY id")] == [1, 2, 3, 4]
    finally:
        server.instance.stop()


def test_binlogs_of_another_server_break_the_chain(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    """A policy pointed at another server without a new full backup ships binlogs that
    reuse the names but not the history: the chain must stop there, not replay them."""
    first, other = fresh_mariadb, start_server(tmp_path / "other")
    try:
        repo = f"file://{tmp_path / 'repo'}"
        policy = mariadb_policy(tmp_path / "p1", first, repo)
        first.sql(
            "CREATE DATABASE shop",
            "CREATE TABLE shop.t (id INT PRIMARY KEY)",
            "INSERT INTO shop.t VALUES (1)",
        )
        assert backupctl("backup", "shop", policies=policy).code == 0
        first.sql("INSERT INTO shop.t VALUES (2)")
        assert backupctl("backup", "shop", "--type", "binlog", policies=policy).code == 0
        other.sql("FLUSH BINARY LOGS", "FLUSH BINARY LOGS")
        moved = mariadb_policy(tmp_path / "p2", other, repo)
        assert backupctl("backup", "shop", "--type", "binlog", policies=moved).code == 0

        listed = backupctl("list", "shop", policies=policy)
        assert "binlog mysql-bin.000002 does not continue mysql-bin.000001" in listed.stdout
        future = "2099-01-01T00:00:00+00:00"
        refused = backupctl("restore", "shop", "--to-time", future, "--dry-run", policies=policy)
        assert refused.code == 2
        assert "does not continue mysql-bin.000001" in refused.stderr
    finally:
        other.instance.stop()


def test_binlogs_larger_than_the_scratch_filesystem_replay_through_it(
    tmp_path: Path, backupctl: Any, tiny_fs: Any
) -> None:
    """Each binlog streams from the repository through zstd into mariadb-binlog and
    mariadb: 40 MiB of binlogs (20 files) replay to their last GTID with the temporary
    directory, where root's recovery instance has its run directory (the replay's scratch
    and, under gtid_strict_mode, its private binlog, purged file by file) and its
    temporary files, on a 16 MiB filesystem. (Were the private binlog kept whole, the
    instance would wait for space forever: the restore is given 5 minutes.)"""
    scratch = tiny_fs(Path(tempfile.mkdtemp(prefix="bc-")) / "tmp", 16)
    strict_rows = ["--gtid-strict-mode=ON", "--binlog-format=ROW", "--max-binlog-size=2M"]
    server = start_server(tmp_path / "src", strict_rows)
    try:
        policy = restorable_policy(tmp_path, server)
        server.sql("CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v BLOB)")
        assert backupctl("backup", "shop", policies=policy).code == 0
        for n in range(40):  # 1 MiB transactions of 1 KiB rows
            server.sql(
                f"INSERT INTO shop.t SELECT seq + {n * 1024}, REPEAT(SHA2(seq + {n}, 512), 8) "
                "FROM shop.seq_1_to_1024"
            )
        last = server.sql("SELECT @@gtid_binlog_pos")[0][0]
        expected = checksum_tables(server.connect(), ["shop"])
        server.sql("DROP TABLE shop.t")  # the incident
        shipped = backupctl("backup", "shop", "--type", "binlog", "--json", policies=policy)
        assert shipped.code == 0, shipped.output
        binlog_bytes = sum(b["size"] for b in json.loads(shipped.stdout)["details"]["binlogs"])
        assert binlog_bytes > 40 << 20

        env = {"TMPDIR": str(scratch)}
        args = ("restore", "shop", "--to-gtid", last, "--yes", "--json")
        result = backupctl(*args, policies=policy, env=env, timeout=300)
        assert result.code == 0, result.output
        report = json.loads(result.stdout)
        started = next(s for s in report["steps"] if s["name"] == "start-recovery-instance")
        assert f"up on {scratch}/" in started["detail"]
        assert report["recovery_point"]["gtid_position"] == last
        assert checksum_tables(server.connect(), ["shop"]) == expected
        assert not list(scratch.iterdir()), "the recovery run directory was left behind"
    finally:
        server.instance.stop()
