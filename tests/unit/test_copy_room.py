"""A copy into a filesystem repository checks the room it needs before it writes: a
backup's size is known ahead (its manifest), so a full disk is refused up front instead
of met half-way."""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backupctl.catalog.manifest import Artifact, Manifest
from backupctl.errors import NoSpace
from backupctl.operations.copy import check_room, copy_backup
from backupctl.storage.local import LocalRepository

DATA = b"x" * (3 << 20)


class _Small(LocalRepository):
    """A filesystem with little room left."""

    def __init__(self, root: Path, free: int):
        super().__init__(root)
        self.free = free

    def free_bytes(self) -> int | None:
        return self.free


def _backup(source: LocalRepository) -> Manifest:
    key = "shop/full/20261122T023000Z-a1b2c3/data.mbstream.zst"
    source.put_bytes(key, DATA)
    start = datetime(2026, 11, 22, 2, 30, tzinfo=UTC)
    artifact = Artifact(
        name="data.mbstream.zst",
        key=key,
        raw_bytes=len(DATA),
        stored_bytes=len(DATA),
        sha256=hashlib.sha256(DATA).hexdigest(),
    )
    return Manifest(
        backup_id="20261122T023000Z-a1b2c3",
        policy="shop",
        driver="mariadb",
        kind="full",
        started_at=start,
        finished_at=start + timedelta(seconds=5),
        artifacts=[artifact],
        details={},
    )


def test_a_copy_that_would_not_fit_is_refused_before_it_writes(tmp_path: Path) -> None:
    source = LocalRepository(tmp_path / "source")
    manifest = _backup(source)
    full = _Small(tmp_path / "full", free=2 << 20)
    with pytest.raises(NoSpace, match=r"to copy full 20261122T023000Z-a1b2c3: .* needed, 2\.0 MiB"):
        check_room(full, manifest)
    assert not (tmp_path / "full").exists() or not any((tmp_path / "full").rglob("*"))

    roomy = _Small(tmp_path / "roomy", free=10 << 20)
    check_room(roomy, manifest)
    seen: list[tuple[str, int | None]] = []

    def progress(label: str, total: int | None) -> object:
        seen.append((label, total))
        return nullcontext(lambda n: None)

    written, stored = copy_backup(source, roomy, manifest, progress)  # type: ignore[arg-type]
    assert written == len(DATA) and stored.backup_id == manifest.backup_id
    assert seen == [(f"copying {manifest.label}", len(DATA))]
    assert (tmp_path / "roomy" / manifest.artifacts[0].key).read_bytes() == DATA
