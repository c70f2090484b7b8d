"""The Repository interface every backend implements.

Keys are relative, '/'-separated and validated (``storage.keys``). Large objects
are written through an ``ObjectWriter`` that becomes visible only on ``commit()``
and leaves nothing behind on ``abort()``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


class ObjectWriter(abc.ABC):
    """A streaming upload. Use as a context manager: an exception aborts it."""

    bytes_written: int = 0

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Append ``data``. Raises RepositoryError."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Make the object visible under its key. Raises RepositoryError."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard everything written; never raises for an already-aborted writer."""

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()


class Repository(abc.ABC):
    """A place that stores objects by key."""

    url: str

    @abc.abstractmethod
    def open_write(self, key: str, size_hint: int | None = None) -> ObjectWriter:
        """Start a streaming write of ``key``; ``size_hint``: about how many bytes will
        be written, when known (S3 sizes its parts by it)."""

    def free_bytes(self) -> int | None:
        """Bytes that can still be written (None: no limit known, as in an S3 bucket)."""
        return None

    @abc.abstractmethod
    def iter_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Yield the object's bytes in chunks. Raises ObjectNotFound / RepositoryError."""

    def iter_read_from(self, key: str, offset: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Yield the object's bytes from ``offset`` on (where a read that broke off
        continues). Default: read from the start and drop the first ``offset`` bytes; a
        backend that can seek (a file, an S3 range) reads only the rest. Raises
        ObjectNotFound / RepositoryError."""
        skip = offset
        for chunk in self.iter_read(key, chunk_size):
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            yield chunk[skip:] if skip else chunk
            skip = 0

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small object atomically (readers see all of it or nothing)."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Return a small object's bytes. Raises ObjectNotFound."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """True if ``key`` is stored (committed)."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield committed objects whose key starts with ``prefix``, in key order."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    @contextmanager
    def lock(self, policy: str, purpose: str, lane: str = "") -> Iterator[None]:
        """Hold ``policy`` (its ``lane``: "" is the main one) exclusively across every host
        sharing this repository.

        Default: nothing beyond the local lock (a local repository has one host).
        Raises LockHeldError when another host holds it.
        """
        yield

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix`` (a 'directory'); return how many went."""
        keys = [info.key for info in self.list(prefix.rstrip("/") + "/")]
        for key in keys:
            self.delete(key)
        return len(keys)

    def abort_incomplete(self, prefix: str) -> int:
        """Discard uploads under ``prefix`` that were started but never committed (left by
        a killed writer); return how many. Call only while nothing writes there (under the
        policy's lock). Default: nothing to discard."""
        return 0
