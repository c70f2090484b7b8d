"""Extraction of a stored mariabackup stream with the real ``mbstream``: a damaged object
fails at once, whatever state mbstream is in (it never waits forever for more input)."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backupctl.catalog.manifest import Artifact, Manifest
from backupctl.drivers.mariadb.extract import DATA_ARTIFACT, extract
from backupctl.errors import VerificationFailed
from backupctl.storage.local import LocalRepository

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("mbstream") is None, reason="needs mariadb-backup"),
]


def _stored(tmp_path: Path, data: bytes, raw_bytes: int) -> tuple[LocalRepository, Manifest]:
    repo = LocalRepository(tmp_path / "repo")
    key = f"shop/20261122T020000Z-abcdef/{DATA_ARTIFACT}"
    repo.put_bytes(key, data)
    artifact = Artifact(
        name=DATA_ARTIFACT,
        key=key,
        raw_bytes=raw_bytes,
        stored_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    now = datetime.now(UTC)
    manifest = Manifest(
        backup_id="20261122T020000Z-abcdef",
        policy="shop",
        driver="mariadb",
        kind="full",
        started_at=now,
        finished_at=now,
        artifacts=[artifact],
    )
    return repo, manifest


def test_an_object_that_is_not_zstd_fails_before_mbstream_gets_a_byte(tmp_path: Path) -> None:
    # (mbstream, given nothing yet, waits on its input: it must be told the input ended)
    repo, manifest = _stored(tmp_path, b"not a zstd frame at all" * 1000, 1 << 20)
    with pytest.raises(VerificationFailed, match="corrupt"):
        extract(repo, manifest, tmp_path / "target")
