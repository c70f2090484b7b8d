"""`backupctl prune` on a MariaDB policy: old fulls and binlogs go from the repository and
the catalog, with reasons; what the point-in-time window needs stays; --dry-run keeps all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from backupctl.catalog.manifest import Artifact, Manifest
from backupctl.drivers.mariadb.binlog_stream import StreamIndex, read_streams
from backupctl.storage.local import LocalRepository
from tests.support.cli import run_backupctl


def _stream(repo: LocalRepository, file: str, days_ago: float) -> StreamIndex:
    """A binlog stream ``binlog follow`` left, last updated ``days_ago``."""
    updated = datetime.now(UTC) - timedelta(days=days_ago)
    index = StreamIndex(
        policy="shop", file=file, created=int(updated.timestamp()), server_id=1, updated_at=updated
    )
    repo.put_bytes(f"{index.prefix}/4.zst", b"segment")
    repo.put_bytes(f"{index.prefix}/index.json", index.model_dump_json().encode())
    return index


def _store(repo: LocalRepository, kind: str, days_ago: float, n: int) -> Manifest:
    finished = datetime.now(UTC) - timedelta(days=days_ago)
    backup_id = finished.strftime("%Y%m%dT%H%M%SZ") + f"-{n:06x}"
    key = f"shop/{kind}/{backup_id}/data.zst"
    repo.put_bytes(key, b"x" * 10)
    manifest = Manifest(
        backup_id=backup_id,
        policy="shop",
        driver="mariadb",
        kind=kind,
        started_at=finished - timedelta(minutes=5),
        finished_at=finished,
        artifacts=[Artifact(name="data.zst", key=key, raw_bytes=10, stored_bytes=10, sha256="0")],
    )
    repo.put_bytes(f"{manifest.prefix}/manifest.json", manifest.to_json().encode())
    return manifest


@pytest.mark.slow
def test_prune_applies_chain_aware_retention(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path / "repo")
    old_full, old_binlog = _store(repo, "full", 45, 1), _store(repo, "binlog", 44, 2)
    base, needed = _store(repo, "full", 9, 3), _store(repo, "binlog", 8.5, 4)
    newest = _store(repo, "full", 1, 5)
    # streams never sealed: of an old timeline (after a restore) and ones still in use
    old_timeline = _stream(repo, "mysql-bin.000009", 10)
    recent, current = _stream(repo, "mysql-bin.000002", 3), _stream(repo, "mysql-bin.000003", 0)
    password = tmp_path / "pw"
    password.write_text("x\n")
    password.chmod(0o600)
    policy = tmp_path / "shop.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "shop",
                "driver": "mariadb",
                "connection": {
                    "host": "127.0.0.1",
                    "user": "backup",
                    "password_file": str(password),
                },
                "datadir": str(tmp_path / "data"),
                "repository": f"file://{tmp_path / 'repo'}",
                "retention": {"full": "30d", "binlog": "7d"},
            }
        )
    )
    base_args = ["--policies", str(policy), "--state-dir", str(tmp_path / "state")]
    assert run_backupctl([*base_args, "catalog", "sync"]).code == 0

    dry = run_backupctl([*base_args, "prune", "shop", "--dry-run"])
    assert dry.code == 0, dry.output
    assert f"shop {old_full.backup_id} (full): would delete" in dry.stdout
    assert (
        f"shop {base.backup_id} (full): keep:" in dry.stdout and "base of the point" in dry.stdout
    )
    assert all(repo.exists(f"{m.prefix}/manifest.json") for m in (old_full, old_binlog))

    done = run_backupctl([*base_args, "prune", "shop"])
    assert done.code == 0, done.output
    assert "2 backup(s) deleted, 3 kept" in done.stdout
    for gone in (old_full, old_binlog):
        assert not list(repo.list(gone.prefix + "/"))
    for kept in (base, needed, newest):
        assert repo.exists(f"{kept.prefix}/manifest.json")
    # the stream older than the binlog retention (7d) went, segments and all
    assert [s.file for s in read_streams(repo, "shop")] == [recent.file, current.file]
    assert not list(repo.list(old_timeline.prefix + "/"))
    listed = run_backupctl([*base_args, "list", "shop"])
    assert old_full.backup_id not in listed.stdout and newest.backup_id in listed.stdout
