"""Streaming compression and checksums."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from backupctl.errors import VerificationFailed
from backupctl.pipeline import CompressingWriter, copy_into, decompress, measure
from backupctl.storage.local import LocalRepository


def _store(repo: LocalRepository, key: str, data: bytes, level: int = 3):
    writer = repo.open_write(key)
    target = CompressingWriter(writer, level=level, threads=2)
    copy_into(io.BytesIO(data), target)
    stats = target.finish()
    writer.commit()
    return stats


def test_round_trip_and_stats_match_what_is_stored(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path)
    data = os.urandom(3 << 20) + b"x" * (5 << 20)
    stats = _store(repo, "p/full/a", data)
    stored = (tmp_path / "p" / "full" / "a").read_bytes()
    assert stats.raw_bytes == len(data)
    assert stats.stored_bytes == len(stored) < len(data)
    assert stats.sha256 == hashlib.sha256(stored).hexdigest()
    assert b"".join(decompress(repo.iter_read("p/full/a", chunk_size=4096))) == data
    assert measure(repo.iter_read("p/full/a")) == (len(stored), stats.sha256)


def test_corrupt_and_truncated_streams_are_detected(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path)
    _store(repo, "k", os.urandom(1 << 20) + bytes(1 << 20))
    stored = bytearray((tmp_path / "k").read_bytes())
    with pytest.raises(VerificationFailed, match="truncated"):
        b"".join(decompress([bytes(stored[:-20])], expected_size=2 << 20))
    stored[len(stored) // 2] ^= 0x01
    with pytest.raises(VerificationFailed, match="corrupt"):
        b"".join(decompress([bytes(stored)]))


def test_output_chunks_stay_small_for_highly_compressible_data(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path)
    stats = _store(repo, "zeros", bytes(200 << 20))  # like InnoDB's zeroed pages
    assert stats.stored_bytes < 1 << 20
    sizes = [len(c) for c in decompress(repo.iter_read("zeros"), stats.raw_bytes)]
    assert sum(sizes) == 200 << 20 and max(sizes) <= 1 << 20


def test_empty_input_round_trips(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path)
    stats = _store(repo, "empty", b"")
    assert stats.raw_bytes == 0
    assert b"".join(decompress(repo.iter_read("empty"))) == b""
