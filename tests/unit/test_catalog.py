"""Manifests are the truth; the SQLite catalog is rebuilt from them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backupctl.catalog.index import Catalog
from backupctl.catalog.manifest import (
    MANIFEST,
    STARTED,
    Artifact,
    Manifest,
    backup_prefix,
    incomplete_backups,
    scan_manifests,
)
from backupctl.errors import NotFoundError, RepositoryError
from backupctl.storage.base import Repository
from backupctl.storage.local import LocalRepository


class _Fulls:
    """The rules of a driver whose backups are plain fulls (the catalog query's input)."""

    main_kind = "full"
    point_kinds = ("full",)

    def names(self, manifest: Manifest) -> Sequence[str]:
        return ()

    def recovery_window(self, repo: Repository, restorable: list[Manifest]) -> None:
        return None


def _manifest(policy: str, backup_id: str, minutes: int) -> Manifest:
    start = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    prefix = backup_prefix(policy, "full", backup_id)
    return Manifest(
        backup_id=backup_id,
        policy=policy,
        driver="mariadb",
        kind="full",
        started_at=start,
        finished_at=start + timedelta(seconds=30),
        artifacts=[
            Artifact(
                name="data", key=f"{prefix}/data", raw_bytes=100, stored_bytes=40, sha256="0" * 64
            )
        ],
    )


def test_catalog_sync_rebuilds_from_repository_alone(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path / "repo")
    ids = ["20261101T000000Z-aaaaaa", "20261101T010000Z-bbbbbb"]
    for i, backup_id in enumerate(ids):
        m = _manifest("db", backup_id, i * 60)
        repo.put_bytes(f"{m.prefix}/{MANIFEST}", m.to_json().encode())
    # a started-but-never-finished backup is not listed
    repo.put_bytes(f"db/full/20261101T020000Z-cccccc/{STARTED}", b"{}")
    found = scan_manifests(repo)
    assert [m.backup_id for m in found] == ids
    catalog = Catalog(tmp_path / "fresh-host" / "catalog.sqlite")
    assert catalog.replace_repository(repo.url, found) == 2
    backups = catalog.backups("db", _Fulls())
    assert backups.newest().backup_id == ids[-1]
    assert backups.find(ids[0]).raw_bytes == 100
    assert incomplete_backups(repo, "db") == ["db/full/20261101T020000Z-cccccc"]
    with pytest.raises(NotFoundError, match="no backup"):
        backups.find("20261101T000000Z-ffffff")
    with pytest.raises(NotFoundError, match="catalog sync"):
        catalog.backups("other", _Fulls()).newest()


def test_manifest_json_round_trips_with_totals(tmp_path: Path) -> None:
    m = _manifest("db", "20261101T000000Z-aaaaaa", 0)
    text = m.to_json()
    assert '"raw_bytes": 100' in text and '"stored_bytes": 40' in text
    repo = LocalRepository(tmp_path)
    repo.put_bytes(f"{m.prefix}/{MANIFEST}", text.encode())
    assert scan_manifests(repo, "db")[0] == m


@pytest.mark.parametrize("backup_id", ["../x", "20261101T000000Z-aa/../b", "latest"])
def test_backup_ids_are_validated(backup_id: str) -> None:
    with pytest.raises(RepositoryError):
        backup_prefix("db", "full", backup_id)


def test_copies_keep_their_first_time_and_their_manifests(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    one = _manifest("db", "20261101T000000Z-aaaa", 0)
    two = _manifest("db", "20261101T000000Z-bbbb", 60)
    first = datetime(2026, 11, 2, tzinfo=UTC)
    catalog.replace_copies("db", "offsite", {one.backup_id: first}, {one.backup_id: one})
    later = first + timedelta(days=1)
    catalog.replace_copies(
        "db", "offsite", {one.backup_id: later, two.backup_id: later}, {two.backup_id: two}
    )
    assert catalog.copies("db") == {
        ("db", one.backup_id): {"offsite": first},  # recorded before: keeps its time
        ("db", two.backup_id): {"offsite": later},
    }
    kept = catalog.copy_manifests("db", "offsite")
    assert sorted(kept) == [one.backup_id, two.backup_id]
    assert kept[two.backup_id].finished_at == two.finished_at
    catalog.replace_copies("db", "offsite", {two.backup_id: later})  # one pruned there
    assert list(catalog.copies("db")) == [("db", two.backup_id)]
    assert list(catalog.copy_manifests("db", "offsite")) == [two.backup_id]
    assert catalog.copies("other") == {}
