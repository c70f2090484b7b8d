"""Real ``mariadbd`` instances: lifecycle, crash recovery, privacy, checksums, sample data."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pymysql
import pytest

from backupctl.demo import sample_data
from backupctl.demo.server import checksum_tables
from backupctl.drivers.mariadb.instance import MariaDBInstance
from backupctl.errors import ToolError, UsageError
from tests.support.mariadb import MariaDBServer

pytest_plugins = ["tests.support.mariadb"]

Factory = Callable[..., MariaDBInstance]


def scalar(conn: pymysql.connections.Connection, sql: str) -> object:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def test_start_stop_and_context_manager(mariadb_factory: Factory) -> None:
    inst = mariadb_factory("lifecycle")
    assert not inst.is_running()
    with inst:
        assert inst.is_running()
        assert inst.server_version().startswith("10.")
        conn = inst.connect()
        assert scalar(conn, "SELECT @@log_bin") == 1
        assert scalar(conn, "SELECT @@port") == inst.port
        assert scalar(conn, "SELECT @@datadir").rstrip("/") == str(inst.datadir)
        conn.close()
    assert not inst.is_running()
    assert not inst.socket.exists()  # clean shutdown removes it
    inst.stop()  # idempotent
    inst.start()
    inst.start()  # no-op while running
    assert inst.is_running()


def test_no_defaults_and_root_user(mariadb_factory: Factory) -> None:
    cmd = mariadb_factory("argv").command()
    assert cmd[1] == "--no-defaults"
    assert ("--user=root" in cmd) == (os.geteuid() == 0)
    assert "--log-bin=mysql-bin" in cmd
    assert "--bind-address=127.0.0.1" in cmd


def test_data_survives_restart(fresh_mariadb: MariaDBServer) -> None:
    inst = fresh_mariadb.instance
    conn = inst.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE keep")
        cur.execute("CREATE TABLE keep.t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute("INSERT INTO keep.t VALUES (1, 'one'), (2, 'two')")
    before = checksum_tables(conn, ["keep"])
    conn.close()
    inst.stop()
    inst.start()
    conn = inst.connect(database="keep")
    assert scalar(conn, "SELECT GROUP_CONCAT(v ORDER BY id) FROM t") == "one,two"
    assert checksum_tables(conn, ["keep"]) == before
    conn.close()
    # the backup user survives too and can log in over the socket and over TCP
    backup = fresh_mariadb.connect_backup()
    assert scalar(backup, "SELECT CURRENT_USER()") == "backup@localhost"
    backup.close()
    tcp = pymysql.connect(
        host="127.0.0.1", port=inst.port, user="backup", password=fresh_mariadb.password
    )
    assert scalar(tcp, "SELECT CURRENT_USER()") == "backup@127.0.0.1"
    tcp.close()


def test_kill_then_start_runs_crash_recovery(fresh_mariadb: MariaDBServer) -> None:
    inst = fresh_mariadb.instance
    conn = inst.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE crash")
        cur.execute("CREATE TABLE crash.t (id INT PRIMARY KEY, v CHAR(32)) ENGINE=InnoDB")
        cur.execute("INSERT INTO crash.t SELECT seq, MD5(seq) FROM crash.seq_1_to_5000")
    before = checksum_tables(conn, ["crash"])
    conn.close()
    inst.kill()
    assert not inst.is_running()
    assert inst.socket.exists()  # a crash leaves the socket file behind
    offset = inst.error_log.stat().st_size
    inst.start()
    assert "crash" in inst.log_tail(offset, lines=200).lower()
    conn = inst.connect()
    assert scalar(conn, "SELECT COUNT(*) FROM crash.t") == 5000
    assert checksum_tables(conn, ["crash"]) == before
    conn.close()
    inst.kill()
    inst.kill()  # idempotent as well


def test_socket_is_private(mariadb_server: MariaDBServer, tmp_path: Path) -> None:
    inst = mariadb_server.instance
    assert inst.socket != Path("/run/mysqld/mysqld.sock")
    assert inst.socket.is_socket()
    assert stat.S_IMODE(inst.socket.parent.stat().st_mode) == 0o700
    assert inst.socket.parent == inst.pid_file.parent  # short path: under the run dir
    assert scalar(mariadb_server.connect(), "SELECT @@socket") == str(inst.socket)


def test_long_base_dir_gets_a_short_socket(tmp_path: Path, mariadb_factory: Factory) -> None:
    long_name = "a-rather-long-directory-name-" * 4
    inst = mariadb_factory(long_name)
    assert len(str(inst.pid_file)) > 107
    assert len(os.fsencode(inst.socket)) <= 100
    assert stat.S_IMODE(inst.socket.parent.stat().st_mode) == 0o700
    with inst:
        assert inst.is_running()
        assert scalar(inst.connect(), "SELECT 1") == 1
    assert not inst.socket.parent.exists()  # the temp socket dir is removed on stop


def test_for_datadir_without_networking_refuses_tcp(
    mariadb_factory: Factory, tmp_path: Path
) -> None:
    first = mariadb_factory("origin")
    with first:
        conn = first.connect()
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE restored")
            cur.execute("CREATE TABLE restored.t (id INT PRIMARY KEY)")
            cur.execute("INSERT INTO restored.t VALUES (7)")
        conn.close()
    old_port = first.port
    assert old_port is not None
    recovery = MariaDBInstance.for_datadir(first.datadir, tmp_path / "recovery-run")
    assert recovery.port is None
    assert "--skip-networking" in recovery.command()
    with recovery:
        conn = recovery.connect()
        assert scalar(conn, "SELECT @@skip_networking") == 1
        assert scalar(conn, "SELECT @@log_bin") == 0
        assert scalar(conn, "SELECT id FROM restored.t") == 7
        conn.close()
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(host="127.0.0.1", port=old_port, user="root", connect_timeout=2)


def test_for_datadir_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        MariaDBInstance.for_datadir(tmp_path / "missing", tmp_path / "run")


def test_create_refuses_an_existing_datadir(mariadb_factory: Factory) -> None:
    mariadb_factory("twice")
    with pytest.raises(UsageError, match="already holds a database"):
        mariadb_factory("twice")


def test_failed_start_reports_the_error_log(mariadb_factory: Factory) -> None:
    inst = mariadb_factory("broken", extra_args=["--no-such-option-here"])
    with pytest.raises(ToolError, match="no-such-option-here"):
        inst.start(timeout=30)
    assert not inst.is_running()


def test_checksum_tables_detects_a_changed_row(mariadb_server: MariaDBServer) -> None:
    conn = mariadb_server.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS ck")
        for name in ("a", "b"):
            cur.execute(f"CREATE OR REPLACE TABLE ck.{name} (id INT PRIMARY KEY, v TEXT)")
            cur.execute(f"INSERT INTO ck.{name} SELECT seq, MD5(seq) FROM ck.seq_1_to_100")
        cur.execute("CREATE OR REPLACE VIEW ck.v AS SELECT id FROM ck.a")
    before = checksum_tables(conn, ["ck"])
    assert set(before) == {"ck.a", "ck.b"}  # base tables only
    assert before["ck.a"] == before["ck.b"] and before["ck.a"] is not None
    everything = checksum_tables(conn)
    assert not any(k.split(".")[0] in {"mysql", "sys", "performance_schema"} for k in everything)
    assert checksum_tables(conn, []) == {}
    with conn.cursor() as cur:
        cur.execute("UPDATE ck.b SET v = 'changed' WHERE id = 50")
    after = checksum_tables(conn, ["ck"])
    assert after["ck.a"] == before["ck.a"]
    assert after["ck.b"] != before["ck.b"]
    conn.close()


def test_backup_user_has_what_mariabackup_needs(
    mariadb_server: MariaDBServer, tmp_path: Path
) -> None:
    tool = "/usr/bin/mariabackup"
    if not Path(tool).exists():
        pytest.skip("mariabackup is not installed (Debian package mariadb-backup)")
    options = tmp_path / "client.cnf"
    options.write_text(
        f"[client]\nuser={mariadb_server.user}\npassword={mariadb_server.password}\n"
        f"socket={mariadb_server.socket}\n"
    )
    options.chmod(0o600)
    res = subprocess.run(
        [tool, f"--defaults-file={options}", "--backup", f"--target-dir={tmp_path / 'bk'}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "missing required privilege" not in res.stderr
    assert "completed OK!" in res.stderr


def test_sample_data_size_rows_and_determinism(mariadb_server: MariaDBServer) -> None:
    conn = mariadb_server.connect()
    calls: list[tuple[str, int, int]] = []
    counts = sample_data.generate(
        conn, "sample_a", 64, progress=lambda *a: calls.append(a), chunk_rows=100_000
    )
    assert list(counts) == ["customers", "orders", "order_items"]
    for table, rows in counts.items():
        assert scalar(conn, f"SELECT COUNT(*) FROM sample_a.{table}") == rows
        assert (table, rows, rows) in calls
    size_mb = sum(sample_data.table_sizes(conn, "sample_a").values()) / 2**20
    assert 64 * 0.8 <= size_mb <= 64 * 1.3, size_mb
    # the same arguments give the same rows, in another database too
    again = sample_data.generate(conn, "sample_b", 64)
    assert again == counts
    a = {k.split(".", 1)[1]: v for k, v in checksum_tables(conn, ["sample_a"]).items()}
    b = {k.split(".", 1)[1]: v for k, v in checksum_tables(conn, ["sample_b"]).items()}
    assert a == b
    # more tables, and a rerun replaces the sample tables
    counts5 = sample_data.generate(conn, "sample_b", 20, tables=5)
    assert list(counts5) == ["customers", "orders", "order_items", "events_4", "events_5"]
    assert scalar(conn, "SELECT COUNT(*) FROM sample_b.events_5") == counts5["events_5"]
    with pytest.raises(UsageError):
        sample_data.generate(conn, "sample_b", 0)
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE sample_a")
        cur.execute("DROP DATABASE sample_b")
    conn.close()
