"""Full backups of a real mariadbd: back up, restore into a second server, compare."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backupctl.catalog.manifest import read_manifest
from backupctl.demo import sample_data
from backupctl.demo.server import checksum_tables
from backupctl.drivers.mariadb.extract import extract, prepare
from backupctl.drivers.mariadb.instance import MariaDBInstance
from backupctl.layout import StateLayout
from backupctl.locks import policy_lock
from backupctl.proc import process_args
from backupctl.storage.factory import open_repository
from backupctl.storage.spec import RepositorySpec
from tests.support.cli import popen_backupctl
from tests.support.mariadb import MariaDBServer
from tests.support.policies import mariadb_policy

SAMPLE_MB = 250


@pytest.fixture(scope="module")
def loaded(mariadb_server: MariaDBServer) -> Iterator[dict[str, Any]]:
    """The shared server with a few hundred MB in `shop`, and its table checksums."""
    conn = mariadb_server.connect()
    try:
        rows = sample_data.generate(conn, "shop", SAMPLE_MB)
        checksums = checksum_tables(conn)
    finally:
        conn.close()
    yield {"server": mariadb_server, "rows": rows, "checksums": checksums}


def _restore_and_checksum(
    spec: RepositorySpec, manifest_id: str, work: Path, parallel: int = 1
) -> dict[str, Any]:
    repo = open_repository(spec)
    manifest = read_manifest(repo, "shop", "full", manifest_id)
    datadir = work / "restored"
    extract(repo, manifest, datadir, parallel=parallel)
    prepare(datadir)
    with MariaDBInstance.for_datadir(datadir, work / "run", networking=False) as second:
        conn = second.connect()
        try:
            return checksum_tables(conn)
        finally:
            conn.close()


@pytest.mark.parametrize("where", ["file", "s3"])
def test_full_backup_restores_to_identical_tables(
    where: str,
    loaded: dict[str, Any],
    tmp_path: Path,
    backupctl: Any,
    request: pytest.FixtureRequest,
) -> None:
    server: MariaDBServer = loaded["server"]
    if where == "file":
        repository: str | dict[str, object] = f"file://{tmp_path / 'repo'}"
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        repository = {"url": f"s3://{bucket}/backups", "endpoint_url": endpoint, "part_size_mb": 8}
    policy = mariadb_policy(tmp_path / "policies", server, repository)

    result = backupctl("backup", "shop", "--json", policies=policy)
    assert result.code == 0, result.output
    manifest = json.loads(result.stdout)
    data = next(a for a in manifest["artifacts"] if a["name"] == "data.mbstream.zst")
    assert data["raw_bytes"] > SAMPLE_MB * 1_000_000 * 0.9
    assert 0 < data["stored_bytes"] < data["raw_bytes"]
    assert manifest["details"]["binlog"]["file"].startswith("mysql-bin.")
    assert manifest["details"]["lsn"]["to_lsn"] > 0
    assert manifest["details"]["server_version"].startswith("10.")
    shop = next(d for d in manifest["details"]["databases"] if d["name"] == "shop")
    assert {t["name"] for t in shop["tables"]} == set(loaded["rows"])
    assert any(a["name"] == "mariabackup.log.zst" for a in manifest["artifacts"])

    listed = backupctl("list", "shop", "--json", policies=policy)
    assert [b["backup_id"] for b in json.loads(listed.stdout)] == [manifest["backup_id"]]

    spec = RepositorySpec.model_validate(repository)
    # mbstream writes files with one thread, or (s3) two: the same tables either way
    parallel = 2 if where == "s3" else 1
    restored = _restore_and_checksum(spec, manifest["backup_id"], tmp_path, parallel)
    assert restored == loaded["checksums"]
    assert len(restored) == len(loaded["rows"])


def test_verify_detects_a_flipped_bit(
    loaded: dict[str, Any], tmp_path: Path, backupctl: Any
) -> None:
    policy = mariadb_policy(tmp_path / "policies", loaded["server"], f"file://{tmp_path / 'repo'}")
    backup_id = json.loads(backupctl("backup", "shop", "--json", policies=policy).stdout)[
        "backup_id"
    ]
    ok = backupctl("verify", "shop", "--json", policies=policy)
    assert ok.code == 0, ok.output
    assert json.loads(ok.stdout)["passed"] is True

    data = next((tmp_path / "repo").rglob("data.mbstream.zst"))
    with open(data, "r+b") as fh:
        fh.seek(data.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x04]))
    bad = backupctl("verify", "shop", backup_id, policies=policy)
    assert bad.code == 3, bad.output
    assert "data.mbstream.zst" in bad.stderr and "does not match" in bad.stderr
    assert "Traceback" not in bad.output


def test_deep_verify_prepares_the_backup(
    loaded: dict[str, Any], tmp_path: Path, backupctl: Any
) -> None:
    repository = f"file://{tmp_path / 'repo'}"
    backup = {"compression_level": 1, "parallel": 2}  # mariabackup and mbstream -x threads
    policy = mariadb_policy(tmp_path / "policies", loaded["server"], repository, backup=backup)
    assert backupctl("backup", "shop", policies=policy).code == 0
    result = backupctl("verify", "shop", "--deep", "--json", policies=policy)
    assert result.code == 0, result.output
    checks = {c["name"]: c["passed"] for c in json.loads(result.stdout)["checks"]}
    assert checks == {
        "checksum data.mbstream.zst": True,
        "checksum mariabackup.log.zst": True,
        "extract": True,
        "prepare": True,
        "tables-present": True,
    }
    assert not any((backupctl.state_dir / "scratch").iterdir())  # scratch is cleaned up


def test_catalog_sync_on_a_fresh_host(
    loaded: dict[str, Any], tmp_path: Path, backupctl: Any
) -> None:
    policy = mariadb_policy(tmp_path / "policies", loaded["server"], f"file://{tmp_path / 'repo'}")
    backup_id = json.loads(backupctl("backup", "shop", "--json", policies=policy).stdout)[
        "backup_id"
    ]
    fresh = ["--state-dir", str(tmp_path / "new-host"), "--policies", str(policy)]
    from tests.support.cli import run_backupctl

    assert "no backups" in run_backupctl([*fresh, "list"]).stdout
    assert run_backupctl([*fresh, "catalog", "sync"]).code == 0
    listed = run_backupctl([*fresh, "list", "--json"])
    assert [b["backup_id"] for b in json.loads(listed.stdout)] == [backup_id]


def _writing(repo_dir: Path, at_least: int) -> bool:
    """True once an upload in progress (``*.partial-*``) holds ``at_least`` bytes; one
    committed (renamed) while we look is simply passed over."""
    for path in repo_dir.rglob("*.partial-*"):
        try:
            if path.stat().st_size > at_least:
                return True
        except FileNotFoundError:
            continue
    return False


def _backup_midway(policy: Path, state_dir: Path, repo_dir: Path) -> subprocess.Popen[str]:
    """Start `backupctl backup` and return once it has written a few MB of the backup."""
    proc = popen_backupctl(
        ["--state-dir", str(state_dir), "--policies", str(policy), "backup", "shop"]
    )
    deadline = time.monotonic() + 60
    while not _writing(repo_dir, 2 << 20):
        assert proc.poll() is None, "the backup finished before it could be interrupted"
        assert time.monotonic() < deadline, "the backup never started writing"
        time.sleep(0.01)
    return proc


def test_sigkill_mid_backup_leaves_nothing_listed_and_no_stale_lock(
    loaded: dict[str, Any], tmp_path: Path, backupctl: Any
) -> None:
    repo_dir = tmp_path / "repo"
    policy = mariadb_policy(tmp_path / "policies", loaded["server"], f"file://{repo_dir}")
    proc = _backup_midway(policy, backupctl.state_dir, repo_dir)
    proc.kill()
    proc.wait()

    assert json.loads(backupctl("list", "--json", policies=policy).stdout) == []
    again = backupctl("backup", "shop", "--json", policies=policy)
    assert again.code == 0, again.output
    assert "removed incomplete backup" in again.stderr
    listed = json.loads(backupctl("list", "--json", policies=policy).stdout)
    assert [b["backup_id"] for b in listed] == [json.loads(again.stdout)["backup_id"]]
    # only the completed backup remains in the repository (beside the policy's setup)
    backups = {p.parent.name for p in repo_dir.rglob("*") if p.is_file() and "setup" not in p.parts}
    assert backups == {listed[0]["backup_id"]}
    assert (repo_dir / "shop" / "setup" / "setup.json").is_file()


def test_password_never_appears_in_process_arguments(
    loaded: dict[str, Any], tmp_path: Path, backupctl: Any
) -> None:
    server: MariaDBServer = loaded["server"]
    policy = mariadb_policy(tmp_path / "policies", server, f"file://{tmp_path / 'repo'}")
    proc = popen_backupctl(
        [
            "--state-dir",
            str(backupctl.state_dir),
            "--policies",
            str(policy),
            "--log-format",
            "json",
            "backup",
            "shop",
        ]
    )
    secret = server.password.encode()
    saw_mariabackup = False
    while proc.poll() is None:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes()
            except OSError:
                continue
            assert secret not in args, f"password in {cmdline}: {args!r}"
            saw_mariabackup |= b"mariabackup" in args and b"--backup" in args
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert saw_mariabackup, "the scan never saw mariabackup running"
    assert server.password not in out + err
    for stored in (tmp_path / "repo").rglob("*"):
        if stored.is_file() and stored.name == "manifest.json":
            assert server.password not in stored.read_text()
    for log in (backupctl.state_dir / "logs").iterdir():
        assert server.password not in log.read_text()


def test_concurrent_backup_of_the_same_policy_is_refused(
    loaded: dict[str, Any], tmp_path: Path, backupctl: Any
) -> None:
    policy = mariadb_policy(tmp_path / "policies", loaded["server"], f"file://{tmp_path / 'repo'}")
    first = popen_backupctl(
        ["--state-dir", str(backupctl.state_dir), "--policies", str(policy), "backup", "shop"]
    )
    lock = backupctl.state_dir / "locks" / "shop.lock"
    deadline = time.monotonic() + 30
    while not (lock.exists() and lock.read_text()):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.01)
    second = backupctl("backup", "shop", policies=policy)
    assert second.code == 75  # EX_TEMPFAIL: skipped, not failed
    assert "another run of policy 'shop' is in progress" in second.stderr
    assert f"pid {first.pid}" in second.stderr
    first.communicate()
    assert first.returncode == 0


def test_binlogs_ship_while_a_full_backup_holds_the_policy(
    loaded: dict[str, Any], tmp_path: Path, backupctl: Any
) -> None:
    """The night's full backup of a 1 TB database takes hours: the hourly binlog job must
    not wait for it (the RPO), while prune, which deletes both, waits for either."""
    policy = mariadb_policy(tmp_path / "policies", loaded["server"], f"file://{tmp_path / 'repo'}")
    assert backupctl("backup", "shop", "--no-prune", policies=policy).code == 0
    layout = StateLayout(backupctl.state_dir)
    with policy_lock(layout, "shop", purpose="backup full"):  # the full backup's lock
        binlog = backupctl("backup", "shop", "--type", "binlog", "--json", policies=policy)
        assert binlog.code == 0, binlog.output
        assert json.loads(binlog.stdout)["kind"] == "binlog"
        incremental = backupctl("backup", "shop", "--type", "incremental", policies=policy)
        assert incremental.code == 75, incremental.output
        assert backupctl("prune", "shop", policies=policy).code == 75
    with policy_lock(layout, "shop", purpose="backup binlog", lane="binlog"):
        again = backupctl("backup", "shop", "--type", "binlog", policies=policy)
        assert again.code == 75 and "another binlog run of policy 'shop'" in again.stderr
        assert backupctl("prune", "shop", policies=policy).code == 75
        assert backupctl("backup", "shop", "--type", "incremental", policies=policy).code == 0
    # temporary files live in the state directory and go with the run; what a killed run
    # left (not /tmp, where it would stay for good) is cleared by the next of its kind
    leftover = layout.work("shop", "binlogs") / "mysql-bin.000001"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"a killed run's binlog")
    assert backupctl("backup", "shop", "--type", "binlog", policies=policy).code == 0
    assert [p for p in (backupctl.state_dir / "work").rglob("*") if p.is_file()] == []


def test_sigterm_mid_backup_cleans_up_at_once(
    loaded: dict[str, Any], tmp_path: Path, backupctl: Any
) -> None:
    """systemd stops a unit with SIGTERM: the half-written backup is removed, not left."""
    repo_dir = tmp_path / "repo"
    policy = mariadb_policy(tmp_path / "policies", loaded["server"], f"file://{repo_dir}")
    proc = _backup_midway(policy, backupctl.state_dir, repo_dir)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + 15, err
    assert "backup failed; nothing was recorded" in err
    assert [p for p in repo_dir.rglob("*") if p.is_file()] == []
    mine = f"--datadir={loaded['server'].datadir}"
    left = [
        pid
        for pid, args in process_args()
        if any("mariabackup" in a for a in args) and mine in args
    ]
    assert not left, "mariabackup was left running"
