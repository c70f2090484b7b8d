"""The mirrored repository a restore reads through: each object from the first repository
that serves it whole and sound, the rest from the next, every miss recorded."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from backupctl.errors import RepositoryError
from backupctl.storage.local import LocalRepository
from backupctl.storage.mirror import Expected, MirroredRepository, ObjectCorrupt, Source

DATA = bytes(range(256)) * 4096  # 1 MiB


class _BreaksAt(LocalRepository):
    """Fails part-way through every read, as a dropped connection does."""

    def __init__(self, root: Path, after: int):
        super().__init__(root)
        self.after = after

    def iter_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        given = 0
        for chunk in super().iter_read(key, 1000):
            if given + len(chunk) > self.after:
                raise RepositoryError("connection reset by peer")
            given += len(chunk)
            yield chunk


def _two(tmp_path: Path, first: LocalRepository | None = None) -> MirroredRepository:
    local = first or LocalRepository(tmp_path / "local")
    offsite = LocalRepository(tmp_path / "offsite")
    for repo in (local, offsite):
        repo.put_bytes("p/full/1/data", DATA)
    expected = {"p/full/1/data": Expected(len(DATA), hashlib.sha256(DATA).hexdigest())}
    return MirroredRepository([Source("local", local), Source("offsite", offsite)], expected)


def test_a_read_broken_part_way_continues_from_the_next_repository(tmp_path: Path) -> None:
    mirror = _two(tmp_path, _BreaksAt(tmp_path / "local", after=300_000))
    assert b"".join(mirror.iter_read("p/full/1/data")) == DATA
    (event,) = mirror.events
    assert (event.repository, event.served_by) == ("local", "offsite")
    assert event.problem == "unreadable (connection reset by peer)"
    assert not mirror.learn()  # healed on the way: nothing to run again for


def test_a_corrupt_object_is_marked_and_read_elsewhere_next_time(tmp_path: Path) -> None:
    mirror = _two(tmp_path)
    bad = bytearray(DATA)
    bad[5000] ^= 1
    (tmp_path / "local" / "p/full/1/data").write_bytes(bytes(bad))
    with pytest.raises(ObjectCorrupt, match="as read from local: corrupt object"):
        b"".join(mirror.iter_read("p/full/1/data"))
    assert mirror.learn() and mirror.healable()
    assert b"".join(mirror.iter_read("p/full/1/data")) == DATA
    assert [(e.repository, e.served_by) for e in mirror.events] == [("local", "offsite")]


def test_a_reader_that_gave_up_leaves_its_object_to_be_checked(tmp_path: Path) -> None:
    mirror = _two(tmp_path)
    bad = bytearray(DATA)
    bad[10] ^= 1
    (tmp_path / "local" / "p/full/1/data").write_bytes(bytes(bad))
    stream = mirror.iter_read("p/full/1/data", 4096)
    next(stream)  # a decompressor would fail here, on the bytes, and stop reading
    stream.close()
    assert not mirror.events
    assert mirror.learn()  # checked whole after the failure: corrupt in local
    assert mirror.events[0].problem == "corrupt (sha256 does not match its manifest)"
    assert not mirror.learn()  # nothing new since


def test_an_object_bad_everywhere_cannot_be_healed(tmp_path: Path) -> None:
    mirror = _two(tmp_path)
    for where in ("local", "offsite"):
        (tmp_path / where / "p/full/1/data").write_bytes(b"x" * len(DATA))
    with pytest.raises(ObjectCorrupt):
        b"".join(mirror.iter_read("p/full/1/data"))
    with pytest.raises(ObjectCorrupt, match="as read from offsite"):
        b"".join(mirror.iter_read("p/full/1/data"))
    assert not mirror.healable()


def test_ranked_reads_the_repository_holding_the_backup_first(tmp_path: Path) -> None:
    mirror = _two(tmp_path)
    (tmp_path / "local" / "p/full/1/data").unlink()
    ranked, probes = MirroredRepository.ranked(mirror.sources, mirror.expected, ["p/full/1/"])
    assert ranked.names == ["offsite", "local"]
    assert [(p.name, p.held, p.missing) for p in probes] == [("offsite", 1, 0), ("local", 0, 1)]


def test_a_backup_whose_objects_live_elsewhere_is_ranked_by_its_manifest(tmp_path: Path) -> None:
    """Model blobs are outside the backup's prefix (shared), an Elasticsearch backup has no
    object at all: the manifest under the prefix says which repository holds the backup."""
    mirror = _two(tmp_path)
    LocalRepository(tmp_path / "offsite").put_bytes("p/version/2/manifest.json", b"{}")
    ranked, probes = MirroredRepository.ranked(
        mirror.sources, {}, ["p/version/2/"], ["p/version/2/manifest.json"]
    )
    assert ranked.names == ["offsite", "local"]
    assert [(p.name, p.held) for p in probes] == [("offsite", 1), ("local", 0)]


class _Counting(LocalRepository):
    """Counts the bytes each read is asked from (a seek, not a re-read)."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.starts: list[int] = []

    def iter_read_from(self, key: str, offset: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        self.starts.append(offset)
        yield from super().iter_read_from(key, offset, chunk_size)


def test_the_next_repository_continues_where_the_first_broke_off(tmp_path: Path) -> None:
    local = _BreaksAt(tmp_path / "local", after=300_000)
    offsite = _Counting(tmp_path / "offsite")
    for repo in (local, offsite):
        repo.put_bytes("p/full/1/data", DATA)
    expected = {"p/full/1/data": Expected(len(DATA), hashlib.sha256(DATA).hexdigest())}
    mirror = MirroredRepository([Source("local", local), Source("offsite", offsite)], expected)
    assert b"".join(mirror.iter_read("p/full/1/data")) == DATA
    assert offsite.starts == [300_000]  # not read again from its first byte


@pytest.mark.parametrize("offset", [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 5, 3 << 20])
def test_an_encrypted_object_is_read_from_any_offset(tmp_path: Path, offset: int) -> None:
    from backupctl.storage.encryption import EncryptedRepository

    data = os.urandom((3 << 20) + 12345)
    repo = EncryptedRepository(LocalRepository(tmp_path / "repo"), os.urandom(32))
    repo.put_bytes("p/x", data)
    assert b"".join(repo.iter_read_from("p/x", offset, 70_000)) == data[offset:]


def test_the_default_read_from_an_offset_skips_what_came_before(tmp_path: Path) -> None:
    from backupctl.storage.base import Repository

    repo = LocalRepository(tmp_path / "repo")
    repo.put_bytes("p/x", DATA)
    chunks = Repository.iter_read_from(repo, "p/x", 123_456, 50_000)
    assert b"".join(chunks) == DATA[123_456:]
