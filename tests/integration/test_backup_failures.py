"""Failed backups: exit 1, a clear message, and nothing left in the repository."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.support.mariadb import MariaDBServer
from tests.support.policies import mariadb_policy


def _repo_files(repo: Path) -> list[Path]:
    return [p for p in repo.rglob("*") if p.is_file()] if repo.exists() else []


def test_wrong_password(mariadb_server: MariaDBServer, tmp_path: Path, backupctl: Any) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    repo = tmp_path / "repo"
    policy = mariadb_policy(tmp_path / "p", mariadb_server, f"file://{repo}")
    text = policy.read_text().replace(str(mariadb_server.password_file), str(wrong))
    policy.write_text(text)
    result = backupctl("backup", "shop", policies=policy)
    assert result.code == 1
    assert "Access denied for user 'backup'" in result.stderr
    assert "Traceback" not in result.output
    assert _repo_files(repo) == []
    assert json.loads(backupctl("list", "--json", policies=policy).stdout) == []


def test_server_down(fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any) -> None:
    repo = tmp_path / "repo"
    policy = mariadb_policy(tmp_path / "p", fresh_mariadb, f"file://{repo}")
    fresh_mariadb.instance.stop()
    result = backupctl("backup", "shop", policies=policy)
    assert result.code == 1
    assert "cannot connect to MariaDB" in result.stderr
    assert "Traceback" not in result.output
    assert _repo_files(repo) == []


def test_mariabackup_itself_failing(
    mariadb_server: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    """The server answers, but mariabackup refuses: the user lacks RELOAD and PROCESS."""
    conn = mariadb_server.connect()
    with conn.cursor() as cur:
        for host in ("localhost", "127.0.0.1"):
            cur.execute("CREATE OR REPLACE USER weak@%s IDENTIFIED BY 'weak-pw'", (host,))
            cur.execute("GRANT SELECT ON *.* TO weak@%s", (host,))
    conn.close()
    secret = tmp_path / "weak"
    secret.write_text("weak-pw\n")
    repo = tmp_path / "repo"
    policy = mariadb_policy(tmp_path / "p", mariadb_server, f"file://{repo}")
    policy.write_text(
        policy.read_text()
        .replace("user: backup", "user: weak")
        .replace(str(mariadb_server.password_file), str(secret))
    )
    result = backupctl("backup", "shop", policies=policy)
    assert result.code == 1
    assert "mariabackup failed (exit 1)" in result.stderr
    assert "missing required privilege RELOAD" in result.stderr
    assert "IDENTIFIED BY PASSWORD '***'" in result.stderr  # SHOW GRANTS, hash masked
    native_hash = hashlib.sha1(hashlib.sha1(b"weak-pw").digest()).hexdigest().upper()
    assert native_hash not in result.stderr
    assert "Traceback" not in result.output
    assert _repo_files(repo) == []
    assert json.loads(backupctl("list", "--json", policies=policy).stdout) == []
    kept = list((backupctl.state_dir / "logs").glob("shop-*-mariabackup.log"))
    assert kept, "mariabackup's log of the failed run is kept for the operator"
    assert native_hash not in kept[0].read_text()


def test_mariabackup_killed_mid_stream(
    mariadb_server: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    """A mariabackup that dies half-way (non-zero exit, no "completed OK!")."""
    repo = tmp_path / "repo"
    fake = tmp_path / "mariabackup-dies"
    fake.write_text("#!/bin/sh\nhead -c 3000000 /dev/urandom\necho 'copying…' >&2\nexit 9\n")
    fake.chmod(0o755)
    policy = mariadb_policy(
        tmp_path / "p", mariadb_server, f"file://{repo}", backup={"mariabackup": str(fake)}
    )
    result = backupctl("backup", "shop", policies=policy)
    assert result.code == 1
    assert "mariabackup failed (exit 9)" in result.stderr
    assert _repo_files(repo) == []


def test_unknown_policy_and_backup(
    tmp_path: Path, mariadb_server: MariaDBServer, backupctl: Any
) -> None:
    policy = mariadb_policy(tmp_path / "p", mariadb_server, f"file://{tmp_path / 'repo'}")
    missing = backupctl("backup", "nope", policies=policy)
    assert missing.code == 2 and "no policy named 'nope' (known policies: shop)" in missing.stderr
    no_backup = backupctl("verify", "shop", "20260101T000000Z-abcdef", policies=policy)
    assert no_backup.code == 2 and "has no backup" in no_backup.stderr
    other = backupctl("backup", "shop", "--type", "snapshot", policies=policy)
    assert other.code == 2, other.output
    assert "makes full, binlog, incremental backups, not 'snapshot'" in other.stderr
