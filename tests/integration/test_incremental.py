"""Incremental chains on a real mariadbd: full -> incremental -> incremental, restored,
verified, refused when a link is broken, and never built on a stale parent."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupctl.demo import sample_data
from backupctl.demo.server import checksum_tables
from backupctl.drivers.mariadb.instance import MariaDBInstance
from tests.support.cli import popen_backupctl
from tests.support.mariadb import MariaDBServer, binlog_moment
from tests.support.policies import restorable_policy


def _checksums(server: MariaDBServer) -> dict[str, Any]:
    conn = server.connect()
    try:
        return checksum_tables(conn)
    finally:
        conn.close()


def checkpointed(server: MariaDBServer) -> None:
    """Flush and checkpoint, as a server in service does (``ThrowawayServer.checkpoint``)."""
    server.instance.checkpoint()


def _write(server: MariaDBServer, tag: str) -> None:
    """Change a few percent of the rows, recent ones as in service (a page-level
    incremental holds every page touched: spread evenly, 2% of rows touch every page),
    and add a table."""
    server.sql(
        "UPDATE shop.orders SET total = total + 1 WHERE id > (SELECT MAX(id) - 300 FROM"
        " (SELECT id FROM shop.orders) AS o)",
        f"CREATE TABLE shop.t_{tag} (id INT PRIMARY KEY, note VARCHAR(20))",
        f"INSERT INTO shop.t_{tag} VALUES (1, '{tag}'), (2, '{tag}')",
        "DELETE FROM shop.orders WHERE id BETWEEN 1000 AND 1100",
    )


class Chain:
    """A policy with a full and two incrementals, writes between them."""

    def __init__(self, server: MariaDBServer, tmp_path: Path, cli: Any):
        self.server, self.tmp_path, self.cli = server, tmp_path, cli
        conn = server.connect()
        sample_data.generate(conn, "shop", 24)
        conn.close()
        self.policy = restorable_policy(tmp_path, server, health_timeout="60s")
        self.repo = tmp_path / "repo"
        self.manifests: list[dict[str, Any]] = []
        self.checksums: list[dict[str, Any]] = []

    def run(self, *args: str) -> Any:
        return self.cli(*args, policies=self.policy)

    def edit_backup(self, **options: Any) -> None:
        data = yaml.safe_load(self.policy.read_text())
        data["backup"] = {**data.get("backup", {}), **options}
        self.policy.write_text(yaml.safe_dump(data))

    def backup(self, kind: str, *extra: str) -> dict[str, Any]:
        checkpointed(self.server)
        result = self.run("backup", "shop", "--type", kind, "--json", *extra)
        assert result.code == 0, result.output
        manifest: dict[str, Any] = json.loads(result.stdout)
        self.manifests.append(manifest)
        self.checksums.append(_checksums(self.server))
        return manifest

    def object(self, manifest: dict[str, Any]) -> Path:
        key = next(a["key"] for a in manifest["artifacts"] if a["name"].startswith("data"))
        return self.repo / key


@pytest.fixture
def chain(fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any) -> Chain:
    made = Chain(fresh_mariadb, tmp_path, backupctl)
    made.backup("full")
    _write(fresh_mariadb, "one")
    made.backup("incremental")
    _write(fresh_mariadb, "two")
    made.backup("incremental")
    return made


def test_a_chain_is_recorded_listed_verified_and_restored(chain: Chain) -> None:
    full, first, second = chain.manifests
    assert [m["kind"] for m in chain.manifests] == ["full", "incremental", "incremental"]
    assert first["details"]["parent"] == full["backup_id"]
    assert second["details"]["parent"] == first["backup_id"]
    assert second["details"]["base"] == full["backup_id"]
    assert second["details"]["chain_length"] == 3
    assert first["details"]["incremental_lsn"] == full["details"]["lsn"]["to_lsn"]
    assert second["details"]["incremental_lsn"] == first["details"]["lsn"]["to_lsn"]
    # only the changed pages: a small fraction of the full
    assert first["stored_bytes"] < full["stored_bytes"] / 2

    listed = chain.run("list", "shop")
    assert listed.code == 0, listed.output
    assert f"link 3 of {full['backup_id']}'s chain" in listed.stdout
    assert f"chain of {full['backup_id']}: full" in listed.stdout
    assert "(3 links" in listed.stdout

    verified = chain.run("verify", "shop", second["backup_id"], "--deep", "--json")
    assert verified.code == 0, verified.output
    names = {c["name"]: c["passed"] for c in json.loads(verified.stdout)["checks"]}
    assert names[f"full {full['backup_id']}: checksum data.mbstream.zst"]
    assert names[f"incremental {first['backup_id']}: checksum data.mbstream.zst"]
    assert names["apply-incremental-1"] and names["apply-incremental-2"]

    plan = chain.run("restore", "shop", "--dry-run")
    assert plan.code == 0, plan.output
    for manifest in chain.manifests:
        assert f"{manifest['kind']} {manifest['backup_id']}" in plan.stdout
    assert plan.stdout.index("apply-incremental-2") < plan.stdout.index("stop-services")

    target = chain.tmp_path / "copy"
    copied = chain.run("restore", "shop", "--target-datadir", str(target), "--json")
    assert copied.code == 0, copied.output
    assert "apply-incremental-2" in [s["name"] for s in json.loads(copied.stdout)["steps"]]
    with MariaDBInstance.for_datadir(target, chain.tmp_path / "copy-run", networking=False) as copy:
        conn = copy.connect()
        assert checksum_tables(conn) == chain.checksums[-1]
        conn.close()

    chain.server.sql("DROP DATABASE shop")
    restored = chain.run("restore", "shop", "--yes", "--json")
    assert restored.code == 0, restored.output
    report = json.loads(restored.stdout)
    assert report["backup"]["backup_id"] == second["backup_id"]
    steps = [s["name"] for s in report["steps"]]
    assert steps[:5] == [
        "check-backup",
        "fetch-extract",
        "prepare",
        "apply-incremental-1",
        "apply-incremental-2",
    ]
    assert _checksums(chain.server) == chain.checksums[-1]

    # the restored server is on another timeline: the next incremental is a full
    after = chain.run("backup", "shop", "--type", "incremental", "--json")
    assert after.code == 0, after.output
    taken = json.loads(after.stdout)
    assert taken["kind"] == "full"
    assert "the datadir was restored from" in taken["details"]["instead_of_incremental"]


def test_a_point_in_time_between_two_incrementals_starts_from_the_first(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    server = fresh_mariadb
    chain = Chain(server, tmp_path, backupctl)
    chain.backup("full")
    _write(server, "one")
    first = chain.backup("incremental")
    server.sql("INSERT INTO shop.t_one VALUES (3, 'after first')")
    gtid = str(server.sql("SELECT @@gtid_binlog_pos")[0][0])
    wanted = _checksums(server)
    moment = binlog_moment()
    _write(server, "two")
    chain.backup("incremental")
    server.sql("DROP TABLE shop.orders")
    assert chain.run("backup", "shop", "--type", "binlog").code == 0

    plan = chain.run("restore", "shop", "--to-time", moment, "--dry-run")
    assert plan.code == 0, plan.output
    assert f"incremental {first['backup_id']}" in plan.stdout
    assert "apply-incremental-1" in plan.stdout and "apply-incremental-2" not in plan.stdout
    by_gtid = chain.run("restore", "shop", "--to-gtid", gtid, "--dry-run")
    assert by_gtid.code == 0, by_gtid.output
    assert f"incremental {first['backup_id']}" in by_gtid.stdout
    assert "apply-incremental-2" not in by_gtid.stdout
    restored = chain.run("restore", "shop", "--to-time", moment, "--yes", "--json")
    assert restored.code == 0, restored.output
    report = json.loads(restored.stdout)
    assert report["backup"]["backup_id"] == first["backup_id"]
    assert _checksums(server) == wanted


def test_a_missing_link_is_named_and_the_restore_refused_before_anything_stops(
    chain: Chain,
) -> None:
    full, first, second = chain.manifests
    pid = chain.server.instance.pid()
    data = chain.object(first)
    hidden = data.with_name("hidden")
    data.rename(hidden)

    verified = chain.run("verify", "shop", second["backup_id"])
    assert verified.code == 3, verified.output
    assert f"incremental {first['backup_id']}: checksum data.mbstream.zst" in verified.stderr
    assert "is missing" in verified.stderr

    refused = chain.run("restore", "shop", "--yes", "--json")
    assert refused.code != 0, refused.output
    assert f"incremental {first['backup_id']} of the chain is broken" in refused.output
    report = json.loads(refused.stdout)
    ran = [s["name"] for s in report["steps"] if s["status"] != "pending"]
    assert ran == ["check-backup"]
    assert chain.server.instance.pid() == pid  # never stopped
    assert _checksums(chain.server) == chain.checksums[-1]
    hidden.rename(data)

    # a flipped byte in the base: verify names it, the restore fails while extracting,
    # before the server is stopped
    base = chain.object(full)
    raw = bytearray(base.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    base.write_bytes(bytes(raw))
    verified = chain.run("verify", "shop", second["backup_id"], "--json")
    assert verified.code == 3, verified.output
    failed = [c["name"] for c in json.loads(verified.stdout)["checks"] if not c["passed"]]
    assert failed == [f"full {full['backup_id']}: checksum data.mbstream.zst"]
    refused = chain.run("restore", "shop", "--yes", "--json")
    assert refused.code != 0
    report = json.loads(refused.stdout)
    ran = [s["name"] for s in report["steps"] if s["status"] != "pending"]
    assert ran == ["check-backup", "fetch-extract"], report["steps"]
    assert full["backup_id"] in report["error"] and "sha256" in report["error"], report["error"]
    assert chain.server.instance.pid() == pid
    assert not list(chain.tmp_path.glob("mariadb/.data.*"))  # staging removed


def test_an_incremental_needs_a_sound_parent_or_becomes_a_full_saying_why(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    chain = Chain(fresh_mariadb, tmp_path, backupctl)
    refused = chain.run("backup", "shop", "--type", "incremental", "--no-fallback")
    assert refused.code == 1, refused.output
    assert "no incremental backup taken (--no-fallback)" in refused.stderr
    assert "there is no full backup to build on yet" in refused.stderr
    assert json.loads(chain.run("list", "shop", "--json").stdout) == []

    taken = chain.run("backup", "shop", "--type", "incremental")
    assert taken.code == 0, taken.output
    assert "a full instead of an incremental: there is no full backup" in taken.stdout
    assert "taking a full backup instead of incremental" in taken.stderr

    first = chain.backup("incremental")
    assert first["kind"] == "incremental"
    # the parent's data object is gone: the chain is broken, the next one is a full
    chain.object(first).unlink()
    again = chain.backup("incremental")
    assert again["kind"] == "full"
    why = again["details"]["instead_of_incremental"]
    assert f"incremental {first['backup_id']} of the chain is broken" in why
    assert "data.mbstream.zst is missing" in why


def test_max_chain_starts_a_new_chain(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    chain = Chain(fresh_mariadb, tmp_path, backupctl)
    chain.edit_backup(max_chain=2)
    kinds = [chain.backup(kind)["kind"] for kind in ("full", "incremental", "incremental")]
    assert kinds == ["full", "incremental", "full"]
    assert "(max_chain)" in chain.manifests[-1]["details"]["instead_of_incremental"]


def test_sigkill_mid_incremental_lists_nothing_and_the_next_run_completes(
    chain: Chain, backupctl: Any
) -> None:
    _write(chain.server, "three")
    checkpointed(chain.server)
    args = ["--state-dir", str(backupctl.state_dir), "--policies", str(chain.policy)]
    proc = popen_backupctl([*args, "backup", "shop", "--type", "incremental"])
    deadline = time.monotonic() + 60
    while not list(chain.repo.rglob("shop/incremental/*/started.json"))[2:]:
        assert proc.poll() is None, "the backup finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    listed = json.loads(chain.run("list", "shop", "--json").stdout)
    assert [m["backup_id"] for m in listed] == [m["backup_id"] for m in chain.manifests]

    again = chain.backup("incremental")
    assert again["kind"] == "incremental"
    assert again["details"]["parent"] == chain.manifests[2]["backup_id"]
    verified = chain.run("verify", "shop", again["backup_id"], "--deep")
    assert verified.code == 0, verified.output


def test_catalog_sync_rebuilds_chains_and_a_drill_restores_one(
    chain: Chain, backupctl: Any
) -> None:
    shutil.rmtree(backupctl.state_dir)
    synced = chain.run("catalog", "sync")
    assert synced.code == 0, synced.output
    listed = chain.run("list", "shop")
    full = chain.manifests[0]["backup_id"]
    assert f"chain of {full}: full" in listed.stdout and "(3 links" in listed.stdout
    status = json.loads(chain.run("status", "shop", "--json").stdout)[0]
    assert status["backups"] == {"full": 1, "incremental": 2}
    newest = datetime.fromisoformat(chain.manifests[-1]["finished_at"])
    assert datetime.fromisoformat(status["recoverable_to"]) >= newest.replace(microsecond=0)
    metrics = chain.run("metrics").stdout
    assert 'backupctl_backups{kind="incremental",policy="shop"} 2.0' in metrics

    drill = chain.run("drill", "run", "shop", "--json")
    assert drill.code == 0, drill.output
    report = json.loads(drill.stdout)
    assert report["passed"] and report["backup_id"] == chain.manifests[-1]["backup_id"]
    names = [s["name"] for s in report["steps"]]
    assert "apply-incremental-2" in names
