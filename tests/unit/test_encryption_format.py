"""The encrypted object format: round trips at every chunk boundary, and every way of
breaking an object (a flipped byte, a dropped, reordered or appended chunk, a swapped
object, a wrong key) is refused with an error naming the object. Memory stays flat."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backupctl.catalog.manifest import parse_manifest
from backupctl.errors import EncryptionError, TamperedObject
from backupctl.storage.base import ObjectWriter, Repository
from backupctl.storage.encryption import (
    CHUNK_SIZE,
    HEADER_SIZE,
    TAG_BYTES,
    EncryptedRepository,
    EncryptingWriter,
    EncryptionSpec,
    decrypt_stream,
    encrypt_stream,
    generate_key,
    key_id,
    plaintext_size,
)
from backupctl.storage.local import LocalRepository

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SMALL_LOG2 = 10  # 1 KiB chunks: many chunk boundaries in little data
SMALL = 1 << SMALL_LOG2
EXAMPLES = int(os.environ.get("BACKUPCTL_TEST_ENCRYPTION_EXAMPLES", "60"))
PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _encrypt(data: bytes, name: str = "p/full/id/data", key: bytes = KEY) -> bytes:
    return b"".join(encrypt_stream([data], key, name, SMALL_LOG2))


def _decrypt(blob: bytes, name: str = "p/full/id/data", key: bytes = KEY) -> bytes:
    return b"".join(decrypt_stream([blob], key, name))


def _chunks_of(blob: bytes) -> tuple[bytes, list[bytes]]:
    record = SMALL + TAG_BYTES
    body = blob[HEADER_SIZE:]
    return blob[:HEADER_SIZE], [body[i : i + record] for i in range(0, len(body), record)]


BOUNDARY_SIZES = [0, 1, SMALL - 1, SMALL, SMALL + 1, 2 * SMALL, 5 * SMALL + 17]


@PROPERTY
@given(
    size=st.one_of(st.sampled_from(BOUNDARY_SIZES), st.integers(0, 8 * SMALL)),
    write_cuts=st.lists(st.integers(0, 1 << 20), max_size=8),
    read_cuts=st.lists(st.integers(0, 1 << 20), max_size=8),
)
def test_round_trip_whatever_the_sizes_and_the_splits(
    size: int, write_cuts: list[int], read_cuts: list[int]
) -> None:
    data = os.urandom(size)
    blob = b"".join(encrypt_stream(_split(data, write_cuts), KEY, "a/b", SMALL_LOG2))
    chunks = max(1, -(-size // SMALL))
    assert len(blob) == HEADER_SIZE + size + chunks * TAG_BYTES
    assert plaintext_size(len(blob), SMALL) == size
    assert b"".join(decrypt_stream(_split(blob, read_cuts), KEY, "a/b")) == data


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5]
)
def test_repository_round_trip_at_the_real_chunk_size(tmp_path: Path, size: int) -> None:
    plain = LocalRepository(tmp_path)
    repo = EncryptedRepository(plain, KEY)
    data = os.urandom(size)
    with repo.open_write("p/full/x/data") as writer:
        for start in range(0, size, 300_000):  # writes that straddle chunk boundaries
            writer.write(data[start : start + 300_000])
        writer.commit()
    repo.put_bytes("p/full/x/small", data[:100])
    assert repo.get_bytes("p/full/x/data") == data
    assert b"".join(repo.iter_read("p/full/x/data", chunk_size=4096)) == data
    assert repo.get_bytes("p/full/x/small") == data[:100]
    listed = {info.key: info.size for info in repo.list("p/")}
    assert listed == {"p/full/x/data": size, "p/full/x/small": min(size, 100)}
    stored = (tmp_path / "p" / "full" / "x" / "data").stat().st_size
    assert stored > size  # header and tags: what lies on disk is not the plaintext
    assert plaintext_size(stored) == size


def test_nothing_readable_is_stored_and_each_object_differs(tmp_path: Path) -> None:
    repo = EncryptedRepository(LocalRepository(tmp_path), KEY)
    text = json.dumps({"policy": "shop-db", "backup_id": "20260101T000000Z-abcdef"}).encode()
    repo.put_bytes("a/one", text * 100)
    repo.put_bytes("a/two", text * 100)
    one, two = (tmp_path / "a" / "one").read_bytes(), (tmp_path / "a" / "two").read_bytes()
    for blob in (one, two):
        assert b"shop-db" not in blob and b"20260101" not in blob and b"policy" not in blob
    assert one[HEADER_SIZE:] != two[HEADER_SIZE:]  # a fresh salt, so a fresh object key


@PROPERTY
@given(size=st.integers(0, 4 * SMALL), position=st.integers(0, 1 << 30), bit=st.integers(0, 7))
def test_any_flipped_bit_is_detected(size: int, position: int, bit: int) -> None:
    blob = bytearray(_encrypt(os.urandom(size)))
    position %= len(blob)
    blob[position] ^= 1 << bit
    with pytest.raises(EncryptionError) as caught:
        _decrypt(bytes(blob))
    assert "p/full/id/data" in str(caught.value)
    if position >= HEADER_SIZE:
        assert isinstance(caught.value, TamperedObject)
        assert caught.value.exit_code == 3
        assert "corrupted or was tampered with" in str(caught.value)


@PROPERTY
@given(size=st.integers(0, 4 * SMALL), keep=st.integers(0, 1 << 30))
def test_any_truncation_is_detected(size: int, keep: int) -> None:
    blob = _encrypt(os.urandom(size))
    keep %= len(blob)  # strictly shorter
    with pytest.raises(EncryptionError):
        _decrypt(blob[:keep])


def test_dropping_the_last_chunk_says_truncated() -> None:
    header, chunks = _chunks_of(_encrypt(os.urandom(3 * SMALL + 5)))
    assert len(chunks) == 4
    with pytest.raises(TamperedObject, match="is truncated"):
        _decrypt(header + b"".join(chunks[:-1]))
    full_header, full = _chunks_of(_encrypt(os.urandom(3 * SMALL)))  # whole chunks only
    with pytest.raises(TamperedObject, match="is truncated"):
        _decrypt(full_header + b"".join(full[:-1]))


def test_reordered_dropped_duplicated_or_appended_chunks_are_detected() -> None:
    header, chunks = _chunks_of(_encrypt(os.urandom(4 * SMALL + 9)))
    broken = {
        "swapped": [chunks[1], chunks[0], *chunks[2:]],
        "middle dropped": [chunks[0], *chunks[2:]],
        "duplicated": [chunks[0], *chunks],
        "appended": [*chunks, chunks[-1]],
        "garbage appended": [*chunks, b"x" * 40],
    }
    for case, parts in broken.items():
        with pytest.raises(TamperedObject):
            _decrypt(header + b"".join(parts))
            pytest.fail(f"{case}: not detected")


def test_an_object_cannot_stand_in_for_another(tmp_path: Path) -> None:
    repo = EncryptedRepository(LocalRepository(tmp_path), KEY)
    repo.put_bytes("p/full/a/manifest.json", b'{"backup_id": "a"}')
    repo.put_bytes("p/full/b/manifest.json", b'{"backup_id": "b"}')
    a = tmp_path / "p" / "full" / "a" / "manifest.json"
    b = tmp_path / "p" / "full" / "b" / "manifest.json"
    b.write_bytes(a.read_bytes())  # an attacker copies one backup's manifest over another
    with pytest.raises(TamperedObject, match=r"p/full/b/manifest\.json"):
        repo.get_bytes("p/full/b/manifest.json")
    assert repo.get_bytes("p/full/a/manifest.json") == b'{"backup_id": "a"}'


def test_a_wrong_key_names_both_key_ids(tmp_path: Path) -> None:
    EncryptedRepository(LocalRepository(tmp_path), KEY).put_bytes("x/y", b"secret")
    other = EncryptedRepository(LocalRepository(tmp_path), OTHER_KEY)
    with pytest.raises(EncryptionError) as caught:
        other.get_bytes("x/y")
    message = str(caught.value)
    assert f"encrypted with key {key_id(KEY)}, the policy's key is {key_id(OTHER_KEY)}" in message
    assert caught.value.exit_code == 1
    assert not isinstance(caught.value, TamperedObject)


def test_plain_and_encrypted_objects_do_not_mix(tmp_path: Path) -> None:
    plain = LocalRepository(tmp_path)
    encrypted = EncryptedRepository(plain, KEY)
    plain.put_bytes("p/full/a/manifest.json", b'{"not": "encrypted"}')
    with pytest.raises(EncryptionError, match="is not encrypted"):
        encrypted.get_bytes("p/full/a/manifest.json")
    plain.put_bytes("p/full/a/empty", b"")
    with pytest.raises(EncryptionError, match="is not encrypted"):
        encrypted.get_bytes("p/full/a/empty")
    encrypted.put_bytes("p/full/b/manifest.json", b'{"backup_id": "b"}')
    with pytest.raises(EncryptionError, match=f"is encrypted \\(key {key_id(KEY)}\\)"):
        parse_manifest(plain.get_bytes("p/full/b/manifest.json"), "p/full/b/manifest.json")


class _CountingSink(ObjectWriter):
    """A writer that keeps nothing: what reaches it is only counted."""

    def __init__(self) -> None:
        self.bytes_written = 0
        self.committed = False

    def write(self, data: bytes) -> None:
        self.bytes_written += len(data)

    def commit(self) -> None:
        self.committed = True

    def abort(self) -> None:
        pass


def test_memory_stays_flat_whatever_the_object_size() -> None:
    total, piece = 96 * CHUNK_SIZE, os.urandom(3 * CHUNK_SIZE // 2)

    def plaintext() -> Iterator[bytes]:
        for _ in range(total // len(piece)):
            yield piece

    tracemalloc.start()
    try:
        sink = _CountingSink()
        writer = EncryptingWriter(sink, KEY, "big")
        for data in plaintext():
            writer.write(data)
        writer.commit()
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest, size = hashlib.sha256(), 0
        for data in decrypt_stream(encrypt_stream(plaintext(), KEY, "big"), KEY, "big"):
            digest.update(data)
            size += len(data)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.committed and sink.bytes_written == HEADER_SIZE + total + 96 * TAG_BYTES
    assert size == total
    expected = hashlib.sha256(b"".join(plaintext())).hexdigest()
    assert digest.hexdigest() == expected
    # one or two chunks in flight, not the 96 MiB object
    assert write_peak < 8 * CHUNK_SIZE, f"write peak {write_peak / CHUNK_SIZE:.1f} MiB"
    assert read_peak < 8 * CHUNK_SIZE, f"read peak {read_peak / CHUNK_SIZE:.1f} MiB"


def test_keys_are_random_and_their_ids_reveal_nothing() -> None:
    first, second = generate_key(), generate_key()
    assert first != second
    raw = base64.b64decode(first)
    assert len(raw) == 32
    kid = key_id(raw)
    assert len(kid) == 16 and kid != key_id(base64.b64decode(second))
    assert kid not in hashlib.sha256(raw).hexdigest()  # domain-separated, not a bare hash
    assert kid not in first and first not in kid


def _write_key(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_spec_accepts_one_key_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_text = generate_key()
    key_file = _write_key(tmp_path / "key", key_text + "\n")
    assert EncryptionSpec(key_file=key_file).load_key() == base64.b64decode(key_text)
    monkeypatch.setenv("BACKUPCTL_TEST_KEY", key_text)
    assert EncryptionSpec(key_env="BACKUPCTL_TEST_KEY").load_key() == base64.b64decode(key_text)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "exactly one of key_file, key_env"),
        ({"key_file": "KEYFILE", "key_env": "BACKUPCTL_TEST_KEY"}, "exactly one of"),
        ({"key_file": "/nonexistent/key"}, "does not exist"),
        ({"key_file": "SHORTFILE"}, "holds a 16-byte key; AES-256 needs 32 bytes"),
        ({"key_file": "JUNKFILE"}, "does not hold a base64 key"),
        ({"key_env": "BACKUPCTL_TEST_UNSET_KEY"}, "BACKUPCTL_TEST_UNSET_KEY is not set"),
    ],
)
def test_spec_problems_are_clear_and_never_quote_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fields: dict[str, str], message: str
) -> None:
    good = generate_key()
    short = base64.b64encode(b"k" * 16).decode()
    files = {
        "KEYFILE": _write_key(tmp_path / "key", good),
        "SHORTFILE": _write_key(tmp_path / "short", short),
        "JUNKFILE": _write_key(tmp_path / "junk", "not a key at all!"),
    }
    monkeypatch.setenv("BACKUPCTL_TEST_KEY", good)
    monkeypatch.delenv("BACKUPCTL_TEST_UNSET_KEY", raising=False)
    resolved = {k: str(files.get(v, v)) for k, v in fields.items()}
    with pytest.raises(ValueError, match=message) as caught:
        EncryptionSpec.model_validate(resolved)
    text = str(caught.value)
    assert good not in text and short not in text and "not a key at all" not in text


def test_a_key_that_vanished_after_loading_is_a_clear_error(tmp_path: Path) -> None:
    spec = EncryptionSpec(key_file=_write_key(tmp_path / "key", generate_key()))
    (tmp_path / "key").unlink()
    with pytest.raises(EncryptionError, match=r"encryption key file .*key does not exist"):
        spec.load_key()


def test_every_repository_operation_reaches_the_backend(tmp_path: Path) -> None:
    overridden = set(vars(EncryptedRepository))
    public = {n for n, m in vars(Repository).items() if callable(m) and not n.startswith("_")}
    assert public <= overridden, f"not passed through: {public - overridden}"
    repo = EncryptedRepository(LocalRepository(tmp_path), KEY)
    repo.put_bytes("p/full/a/one", b"1")
    repo.put_bytes("p/full/b/two", b"2")
    killed = repo.open_write("p/full/b/three")  # a writer that never commits
    killed.write(b"half")
    assert repo.exists("p/full/a/one") and not repo.exists("p/full/b/three")
    assert repo.abort_incomplete("p/full/b") == 1
    assert [p.name for p in (tmp_path / "p" / "full" / "b").iterdir()] == ["two"]
    repo.delete("p/full/a/one")
    assert not repo.exists("p/full/a/one")
    assert repo.delete_prefix("p/full") == 1
    assert list(repo.list()) == []
