"""Client-side encryption of everything a repository stores: AES-256-GCM in chunks.

``EncryptedRepository`` wraps any backend (``file://``, ``s3://``); the factory builds
it when the policy's repository has ``encryption:``. Everything written through it is
encrypted on the way out and authenticated on the way back in, streaming: memory
holds one chunk, never a whole object.

Object format (version 1)::

    header  magic "BKCTLENC" | version 1 | cipher 1 | log2(chunk size) | 0
            | key id (8 bytes) | salt (32 random bytes)                      52 bytes
    chunks  AES-256-GCM(chunk i) + 16-byte tag, for i = 0 .. n-1 (n >= 1; every chunk
            but the last holds exactly ``chunk size`` bytes of plaintext)

- each object gets its own AES key, HKDF-SHA256(master key, salt); the 96-bit GCM nonce
  is the chunk counter, which never repeats under one object key;
- every chunk's associated data is the header, the chunk's index, a final-chunk flag
  and the object's key (its path in the repository): chunks cannot be reordered,
  dropped, truncated or appended to, the header cannot be altered, and an object cannot
  be swapped for another one (another backup's manifest, say) without the tag failing;
- the key id (a domain-separated SHA-256 of the key, never the key) is checked before
  any decryption, so a wrong key gets its own message.

What stays readable without the key: object *names* (policy names, backup kinds and
ids, which are timestamps, binlog file names, model blob content hashes) and object
sizes. The S3 lease lock (``storage.lease``) is not written through a Repository at
all: its holder record (host, pid, purpose, expiry) stays plain so that any host, and
an operator with only bucket access, can see who holds a stuck lock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backupctl.errors import BackupctlError, EncryptionError, TamperedObject, UsageError
from backupctl.offline import host_checks
from backupctl.storage.base import ObjectInfo, ObjectWriter, Repository

CIPHER = "aes-256-gcm"
KEY_BYTES = 32
TAG_BYTES = 16
MAGIC = b"BKCTLENC"
FORMAT_VERSION = 1
_CIPHER_ID = 1
CHUNK_LOG2 = 20  # 1 MiB of plaintext per chunk
CHUNK_SIZE = 1 << CHUNK_LOG2
_CHUNK_LOG2_RANGE = range(10, 25)  # what a reader accepts (1 KiB .. 16 MiB)
_HEADER = struct.Struct(">8sBBBB8s32s")
HEADER_SIZE = _HEADER.size
_CHUNK_AAD = struct.Struct(">QB")
Buffer = bytes | bytearray | memoryview
_KEY_ID_DOMAIN = b"backupctl encryption key id v1\x00"
_OBJECT_KEY_INFO = b"backupctl aes-256-gcm object key v1"


# --------------------------------------------------------------------------- keys


def generate_key() -> str:
    """Return a fresh random 256-bit key, base64-encoded (the key file's content)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def decode_key(text: str, source: str) -> bytes:
    """Return the 32 key bytes in ``text`` (base64). Raises ValueError naming ``source``,
    never quoting the content."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"{source} does not hold a base64 key (make one with `backupctl key generate`)"
        ) from None
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"{source} holds a {len(key)}-byte key; AES-256 needs {KEY_BYTES} bytes "
            "(make one with `backupctl key generate`)"
        )
    return key


def key_id(key: bytes) -> str:
    """Return the key's public id: 16 hex digits of a domain-separated SHA-256."""
    return hashlib.sha256(_KEY_ID_DOMAIN + key).hexdigest()[:16]


def write_key_file(path: Path, key_text: str) -> None:
    """Create ``path`` (mode 0600) holding ``key_text``. Raises UsageError when it exists
    (a key is never overwritten: backups made with it would become unreadable) and
    BackupctlError when it cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise BackupctlError(f"cannot create {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(key_text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise BackupctlError(f"cannot write {path}: {exc.strerror}") from None


def _read_key_file(path: Path) -> str:
    if not path.is_file():
        raise ValueError(f"encryption key file {path} does not exist")
    try:
        with open(path, "rb") as fh:
            return fh.read(4096).decode()  # a key is 44 characters: never read a big file
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise ValueError(f"encryption key file {path} is not readable: {reason}") from None


class EncryptionSpec(BaseModel):
    """``repository.encryption``: where the key comes from (exactly one of the two)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_file: Path | None = Field(
        None, description="file holding the base64 key (`backupctl key generate --output`)"
    )
    key_env: str | None = Field(None, description="environment variable holding the base64 key")
    cipher: Literal["aes-256-gcm"] = Field("aes-256-gcm", description="the only cipher so far")

    @field_validator("key_file")
    @classmethod
    def _key_file_valid(cls, value: Path | None) -> Path | None:
        if value is not None and host_checks():
            decode_key(_read_key_file(value), f"encryption key file {value}")
        return value

    @field_validator("key_env")
    @classmethod
    def _key_env_valid(cls, value: str | None) -> str | None:
        if value is not None and host_checks():
            if value not in os.environ:
                raise ValueError(f"environment variable {value} is not set")
            decode_key(os.environ[value], f"environment variable {value}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> EncryptionSpec:
        if (self.key_file is None) == (self.key_env is None):
            raise ValueError("give exactly one of key_file, key_env")
        return self

    def load_key(self) -> bytes:
        """Return the key from its source. Raises EncryptionError (the file went away, the
        variable is unset, the content is not a key) - checked at load, read again here."""
        try:
            if self.key_file is not None:
                source = f"encryption key file {self.key_file}"
                return decode_key(_read_key_file(self.key_file), source)
            assert self.key_env is not None
            if self.key_env not in os.environ:
                raise ValueError(f"environment variable {self.key_env} is not set")
            return decode_key(os.environ[self.key_env], f"environment variable {self.key_env}")
        except ValueError as exc:
            raise EncryptionError(f"cannot load the encryption key: {exc}") from None

    def key_id(self) -> str:
        """The id of the key this spec names. Raises EncryptionError."""
        return key_id(self.load_key())


# --------------------------------------------------------------------------- chunk format


def _object_cipher(key: bytes, salt: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=SHA256(), length=KEY_BYTES, salt=salt, info=_OBJECT_KEY_INFO)
    return AESGCM(hkdf.derive(key))


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


class _Chunks:
    """The per-object state both directions share: cipher, header, associated data."""

    def __init__(self, key: bytes, header: bytes, salt: bytes, object_key: str):
        self._aead = _object_cipher(key, salt)
        self._header = header
        self._name = object_key.encode()

    def _aad(self, index: int, final: bool) -> bytes:
        return self._header + _CHUNK_AAD.pack(index, final) + self._name

    def seal(self, index: int, plain: Buffer, final: bool) -> bytes:
        return self._aead.encrypt(_nonce(index), plain, self._aad(index, final))

    def open(self, index: int, sealed: Buffer, final: bool) -> bytes:
        """Raises InvalidTag."""
        return self._aead.decrypt(_nonce(index), sealed, self._aad(index, final))


def _complete_records(buffer: bytearray, data: Buffer, size: int) -> Iterator[Buffer]:
    """Yield every ``size``-byte record that ``buffer`` + ``data`` completes and that is
    certainly not the last one (more bytes follow it); keep the rest (at most ``size``
    bytes) in ``buffer``. A record is a view of ``data`` where possible, so big writes are
    not copied; each must be used before the next is asked for."""
    view = memoryview(data).cast("B")
    if buffer:
        need = size - len(buffer)
        if len(view) <= need:
            buffer += view
            return
        buffer += view[:need]
        yield buffer
        buffer.clear()
        view = view[need:]
    while len(view) > size:
        yield view[:size]
        view = view[size:]
    buffer += view


class ChunkEncryptor:
    """Encrypt one object as a stream: ``header``, then ``feed`` and ``finish``."""

    def __init__(self, key: bytes, object_key: str, chunk_log2: int = CHUNK_LOG2):
        salt = os.urandom(32)
        kid = bytes.fromhex(key_id(key))
        self.header = _HEADER.pack(MAGIC, FORMAT_VERSION, _CIPHER_ID, chunk_log2, 0, kid, salt)
        self.chunk_size = 1 << chunk_log2
        self._chunks = _Chunks(key, self.header, salt, object_key)
        self._buffer = bytearray()
        self._index = 0

    def feed(self, data: Buffer) -> Iterator[bytes]:
        """Yield the sealed chunks ``data`` completes (consume them all before the next
        call). The last chunk is held back until ``finish``: only then is it known to be
        the last."""
        for plain in _complete_records(self._buffer, data, self.chunk_size):
            yield self._chunks.seal(self._index, plain, False)
            self._index += 1

    def finish(self) -> bytes:
        """Return the final chunk (an empty object still has one)."""
        last = self._chunks.seal(self._index, self._buffer, True)
        self._buffer = bytearray()
        return last


class ChunkDecryptor:
    """Authenticate and decrypt one object as a stream; ``where`` names it in errors."""

    def __init__(self, key: bytes, object_key: str, where: str):
        self._key, self._object_key, self.where = key, object_key, where
        self._chunks: _Chunks | None = None
        self._buffer = bytearray()
        self._record = 0
        self._index = 0

    def feed(self, data: Buffer) -> Iterator[bytes]:
        """Yield the plaintext of every chunk ``data`` completes (except a possible last
        one), each only once authenticated. Raises EncryptionError / TamperedObject."""
        if self._chunks is None:
            self._buffer += data
            if len(self._buffer) < HEADER_SIZE:
                return
            self._start(bytes(self._buffer[:HEADER_SIZE]))
            data, self._buffer = self._buffer[HEADER_SIZE:], bytearray()
        for sealed in _complete_records(self._buffer, data, self._record):
            yield self._open(sealed, False)

    def finish(self) -> bytes:
        """Return the last chunk's plaintext. Raises EncryptionError / TamperedObject when
        the object ends early."""
        if self._chunks is None:
            head = bytes(self._buffer)
            if head[: len(MAGIC)] == MAGIC[: len(head)] and head:
                raise TamperedObject(f"object {self.where} is truncated (inside its header)")
            raise self._not_encrypted()
        last = bytes(self._buffer)
        self._buffer = bytearray()
        if len(last) < TAG_BYTES:
            raise TamperedObject(
                f"object {self.where} is truncated or was tampered with "
                f"(it ends inside chunk {self._index})"
            )
        try:
            return self._chunks.open(self._index, last, True)
        except InvalidTag:
            if self._authentic_but_not_final(last):
                raise TamperedObject(
                    f"object {self.where} is truncated: it ends after chunk {self._index} "
                    "but that chunk is not the last one written"
                ) from None
            raise self._tampered() from None

    def _authentic_but_not_final(self, sealed: bytes) -> bool:
        assert self._chunks is not None
        try:
            self._chunks.open(self._index, sealed, False)
        except InvalidTag:
            return False
        return True

    def start_at(self, header: bytes, offset: int) -> tuple[int, int]:
        """Begin at plaintext ``offset`` instead of the object's start: check ``header``
        (the object's first HEADER_SIZE bytes) and return where to read the stored object
        from (the start of the chunk holding ``offset``) and how many plaintext bytes of
        that chunk come before ``offset``. Raises EncryptionError / TamperedObject."""
        self._start(header)
        plain = self._record - TAG_BYTES
        self._index = offset // plain
        return HEADER_SIZE + self._index * self._record, offset - self._index * plain

    def _start(self, header: bytes) -> None:
        magic, version, cipher, chunk_log2, _zero, kid, salt = _HEADER.unpack(header)
        if magic != MAGIC:
            raise self._not_encrypted()
        if version != FORMAT_VERSION or cipher != _CIPHER_ID:
            raise EncryptionError(
                f"object {self.where} uses encryption format {version}/cipher {cipher}, "
                f"which this backupctl does not know (it reads format {FORMAT_VERSION})"
            )
        if chunk_log2 not in _CHUNK_LOG2_RANGE:
            raise self._tampered()
        expected = key_id(self._key)
        if kid.hex() != expected:
            raise EncryptionError(
                f"object {self.where} was encrypted with key {kid.hex()}, "
                f"the policy's key is {expected}"
            )
        self._chunks = _Chunks(self._key, header, salt, self._object_key)
        self._record = (1 << chunk_log2) + TAG_BYTES

    def _open(self, sealed: Buffer, final: bool) -> bytes:
        assert self._chunks is not None
        try:
            plain = self._chunks.open(self._index, sealed, final)
        except InvalidTag:
            raise self._tampered() from None
        self._index += 1
        return plain

    def _tampered(self) -> TamperedObject:
        return TamperedObject(
            f"object {self.where} is corrupted or was tampered with "
            f"(chunk {self._index} failed authentication)"
        )

    def _not_encrypted(self) -> EncryptionError:
        return EncryptionError(
            f"object {self.where} is not encrypted, but the policy's repository has "
            "`encryption:` (it was written without encryption, or replaced)"
        )


def encrypt_stream(
    chunks: Iterable[bytes], key: bytes, object_key: str, chunk_log2: int = CHUNK_LOG2
) -> Iterator[bytes]:
    """Yield the encrypted object for the plaintext ``chunks``."""
    encryptor = ChunkEncryptor(key, object_key, chunk_log2)
    yield encryptor.header
    for data in chunks:
        yield from encryptor.feed(data)
    yield encryptor.finish()


def decrypt_stream(
    chunks: Iterable[bytes], key: bytes, object_key: str, where: str = ""
) -> Iterator[bytes]:
    """Yield the plaintext of an encrypted object given as ``chunks``, each piece only
    after it was authenticated. Raises EncryptionError / TamperedObject."""
    decryptor = ChunkDecryptor(key, object_key, where or object_key)
    for data in chunks:
        yield from decryptor.feed(data)
    if plain := decryptor.finish():
        yield plain


def plaintext_size(stored: int, chunk_size: int = CHUNK_SIZE) -> int:
    """Return the plaintext size of an object of ``stored`` bytes in this format (0 for a
    size no valid object has)."""
    body = stored - HEADER_SIZE
    if body < TAG_BYTES:
        return 0
    chunks = -(-body // (chunk_size + TAG_BYTES))
    return body - chunks * TAG_BYTES


def refuse_encrypted(raw: bytes, where: str) -> None:
    """Raise EncryptionError if ``raw``, read without a key, is an encrypted object."""
    if raw.startswith(MAGIC) and len(raw) >= HEADER_SIZE:
        kid = _HEADER.unpack(raw[:HEADER_SIZE])[5].hex()
        raise EncryptionError(
            f"object {where} is encrypted (key {kid}) but the policy's repository has no "
            "`encryption:` key"
        )


# --------------------------------------------------------------------------- repository


class EncryptingWriter(ObjectWriter):
    """Encrypts into another writer; ``bytes_written`` counts plaintext."""

    def __init__(self, inner: ObjectWriter, key: bytes, object_key: str):
        self._inner = inner
        self._encryptor = ChunkEncryptor(key, object_key)
        self.bytes_written = 0
        try:
            inner.write(self._encryptor.header)
        except BaseException:
            inner.abort()
            raise

    def write(self, data: bytes) -> None:
        for sealed in self._encryptor.feed(data):
            self._inner.write(sealed)
        self.bytes_written += len(data)

    def commit(self) -> None:
        try:
            self._inner.write(self._encryptor.finish())
        except BaseException:
            self._inner.abort()
            raise
        self._inner.commit()

    def abort(self) -> None:
        self._inner.abort()


class EncryptedRepository(Repository):
    """``inner`` with every object encrypted; keys, listing, deletion and locks pass
    through. ``list`` reports plaintext sizes. Every method of Repository is overridden
    here, the default ones too: a backend's own version (e.g. ``abort_incomplete``) must
    not be bypassed by the base class's default."""

    def __init__(self, inner: Repository, key: bytes):
        self.inner = inner
        self.url = inner.url
        self._key = key
        self.key_id = key_id(key)

    def describe(self) -> dict[str, str]:
        """What a manifest records about the encryption: cipher and key id."""
        return {"cipher": CIPHER, "key_id": self.key_id}

    def free_bytes(self) -> int | None:
        return self.inner.free_bytes()

    def open_write(self, key: str, size_hint: int | None = None) -> ObjectWriter:
        return EncryptingWriter(self.inner.open_write(key, size_hint), self._key, key)

    def iter_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        where = f"{self.url}/{key}"
        return decrypt_stream(self.inner.iter_read(key, chunk_size), self._key, key, where)

    def iter_read_from(self, key: str, offset: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The plaintext from ``offset`` on: the header, then the stored object from the
        chunk holding ``offset`` (each chunk authenticated as ever, its index bound in)."""
        if offset <= 0:
            yield from self.iter_read(key, chunk_size)
            return
        where = f"{self.url}/{key}"
        head = bytearray()
        reader = self.inner.iter_read_from(key, 0, HEADER_SIZE)
        try:
            for data in reader:
                head += data
                if len(head) >= HEADER_SIZE:
                    break
        finally:
            reader.close()  # type: ignore[attr-defined]
        decryptor = ChunkDecryptor(self._key, key, where)
        if len(head) < HEADER_SIZE:
            raise TamperedObject(f"object {where} is truncated (inside its header)")
        stored, skip = decryptor.start_at(bytes(head[:HEADER_SIZE]), offset)
        for data in self.inner.iter_read_from(key, stored, chunk_size):
            for plain in decryptor.feed(data):
                if skip >= len(plain):
                    skip -= len(plain)
                    continue
                yield plain[skip:] if skip else plain
                skip = 0
        last = decryptor.finish()
        if len(last) > skip:
            yield last[skip:]

    def put_bytes(self, key: str, data: bytes) -> None:
        self.inner.put_bytes(key, b"".join(encrypt_stream([data], self._key, key)))

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_read(key))

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for info in self.inner.list(prefix):
            yield ObjectInfo(info.key, plaintext_size(info.size))

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    @contextmanager
    def lock(self, policy: str, purpose: str, lane: str = "") -> Iterator[None]:
        with self.inner.lock(policy, purpose, lane):
            yield

    def delete_prefix(self, prefix: str) -> int:
        return self.inner.delete_prefix(prefix)

    def abort_incomplete(self, prefix: str) -> int:
        return self.inner.abort_incomplete(prefix)


def encryption_of(repo: Repository) -> dict[str, str] | None:
    """What a manifest written to ``repo`` records about encryption (None: plain)."""
    return repo.describe() if isinstance(repo, EncryptedRepository) else None
