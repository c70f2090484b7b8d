"""Binlog backups of a real mariadbd: rotate, ship closed binlogs once, describe them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import zstandard

from tests.support.mariadb import MariaDBServer
from tests.support.policies import mariadb_policy


def _write(server: MariaDBServer, statements: list[str]) -> None:
    conn = server.connect()
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    conn.close()


def _shipped(manifest: dict[str, Any]) -> list[str]:
    return [b["file"] for b in manifest["details"]["binlogs"]]


def test_binlogs_are_shipped_once_each_byte_for_byte(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    repo = tmp_path / "repo"
    policy = mariadb_policy(tmp_path / "p", fresh_mariadb, f"file://{repo}")
    _write(
        fresh_mariadb,
        [
            "CREATE DATABASE shop",
            "CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(20))",
            "INSERT INTO shop.t VALUES (1, 'one'), (2, 'two')",
        ],
    )
    first = backupctl("backup", "shop", "--type", "binlog", "--json", policies=policy)
    assert first.code == 0, first.output
    m1 = json.loads(first.stdout)
    assert m1["kind"] == "binlog" and _shipped(m1)
    last = m1["details"]["binlogs"][-1]
    assert last["transactions"] >= 3 and last["last_gtid"].startswith("0-1-")
    assert last["first_event_at"] <= last["last_event_at"]
    assert last["server_ids"] == [1]

    # every shipped object decompresses to exactly the server's binlog file
    for info in m1["details"]["binlogs"]:
        stored = next(repo.rglob(f"{info['file']}.zst")).read_bytes()
        data = zstandard.ZstdDecompressor().decompressobj().decompress(stored)
        assert data == (fresh_mariadb.datadir / info["file"]).read_bytes()
        assert info["size"] == len(data) and info["end_position"] == len(data)

    _write(fresh_mariadb, ["DELETE FROM shop.t WHERE id = 2"])
    second = json.loads(
        backupctl("backup", "shop", "--type", "binlog", "--json", policies=policy).stdout
    )
    assert set(_shipped(second)).isdisjoint(_shipped(m1))  # nothing shipped twice
    assert second["details"]["binlogs"][0]["transactions"] == 1  # the DELETE
    assert second["details"]["purged_before_shipping"] == []

    listed = json.loads(backupctl("list", "shop", "--json", policies=policy).stdout)
    assert [b["kind"] for b in listed] == ["binlog", "binlog"]
    deep = backupctl("verify", "shop", "--deep", "--json", policies=policy)
    assert deep.code == 0, deep.output
    assert all(c["passed"] for c in json.loads(deep.stdout)["checks"])


def test_binlogs_purged_before_shipping_are_reported(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    policy = mariadb_policy(tmp_path / "p", fresh_mariadb, f"file://{tmp_path / 'repo'}")
    assert backupctl("backup", "shop", "--type", "binlog", policies=policy).code == 0
    _write(fresh_mariadb, ["FLUSH BINARY LOGS", "FLUSH BINARY LOGS", "FLUSH BINARY LOGS"])
    conn = fresh_mariadb.connect()
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        names = [row[0] for row in cur.fetchall()]
        for _ in range(50):  # a dump thread that just ended may still hold a binlog briefly
            cur.execute("PURGE BINARY LOGS TO %s", (names[-1],))
            cur.execute("SHOW BINARY LOGS")
            if len(cur.fetchall()) == 1:
                break
            time.sleep(0.1)
    conn.close()
    result = backupctl("backup", "shop", "--type", "binlog", "--json", policies=policy)
    assert result.code == 0, result.output
    gaps = json.loads(result.stdout)["details"]["purged_before_shipping"]
    assert gaps and all(name in names for name in gaps)
    assert "purged on the server before they were shipped" in result.stderr


def test_restore_ignores_binlog_backups_when_choosing_a_full_one(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    policy = mariadb_policy(tmp_path / "p", fresh_mariadb, f"file://{tmp_path / 'repo'}")
    full = json.loads(backupctl("backup", "shop", "--json", policies=policy).stdout)
    assert backupctl("backup", "shop", "--type", "binlog", policies=policy).code == 0
    plan = json.loads(backupctl("restore", "shop", "--dry-run", "--json", policies=policy).stdout)
    assert plan["backup"]["backup_id"] == full["backup_id"]
