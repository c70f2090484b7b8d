"""Streaming pipelines: source bytes -> zstd -> sha256 -> repository writer.

Nothing here keeps a whole backup in memory or on disk: data moves through in
chunks, and memory stays flat whatever the size of the backup.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import zstandard

from backupctl.errors import VerificationFailed
from backupctl.storage.base import ObjectWriter

CHUNK = 1 << 20
Progress = Callable[[int], None]


@dataclass(frozen=True)
class StreamStats:
    raw_bytes: int
    stored_bytes: int
    sha256: str


class _HashingSink:
    """File-like sink zstd writes into: hashes and forwards to the repository writer."""

    def __init__(self, writer: ObjectWriter):
        self.writer = writer
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        self.writer.write(bytes(data))
        return len(data)

    def flush(self) -> None:  # zstd calls it; the writer flushes on commit
        return None


class CompressingWriter:
    """Compress raw bytes with zstd into ``writer`` while hashing what is stored."""

    def __init__(self, writer: ObjectWriter, level: int = 3, threads: int = 0):
        """``threads``: 0 = one per CPU, 1 = compress in the calling thread."""
        self._sink = _HashingSink(writer)
        threads = threads or (os.cpu_count() or 1)
        # zstd's multi-threaded mode (any threads > 0) costs a worker and its buffers
        # (~17 MiB) even for one thread: one thread means the single-threaded mode
        cctx = zstandard.ZstdCompressor(
            level=level, threads=0 if threads == 1 else threads, write_checksum=True
        )
        self._zstd = cctx.stream_writer(
            self._sink,  # type: ignore[arg-type]
            closefd=False,
            write_return_read=True,
        )
        self.raw_bytes = 0

    def write(self, data: bytes) -> None:
        self.raw_bytes += len(data)
        self._zstd.write(data)

    def finish(self) -> StreamStats:
        """Flush the last frame; return sizes and the sha256 of the stored bytes."""
        self._zstd.flush(zstandard.FLUSH_FRAME)
        self._zstd.close()  # type: ignore[no-untyped-call]
        return StreamStats(self.raw_bytes, self._sink.size, self._sink.digest.hexdigest())


def copy_into(
    source: BinaryIO, target: CompressingWriter, progress: Progress | None = None
) -> None:
    """Copy ``source`` to ``target`` in chunks until EOF, reporting bytes to ``progress``."""
    read = getattr(source, "read1", source.read)
    while chunk := read(CHUNK):
        target.write(chunk)
        if progress is not None:
            progress(len(chunk))


class _ChunkReader:
    """A file-like ``read(n)`` over an iterator of chunks (what zstd's reader API wants)."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def decompress(chunks: Iterable[bytes], expected_size: int | None = None) -> Iterator[bytes]:
    """Yield the decompressed bytes of a zstd stream given as chunks, at most 1 MiB at a time
    (memory stays flat even where the data compressed a thousandfold, like zeroed pages).

    Raises VerificationFailed when a frame is corrupt (zstd's content checksum) or when
    ``expected_size`` is given and the stream ends early or runs long (truncation).
    """
    reader = _ChunkReader(chunks)
    total = 0
    try:
        stream = zstandard.ZstdDecompressor().read_to_iter(
            reader,  # type: ignore[arg-type]  # any object with read() works
            read_size=CHUNK,
            write_size=CHUNK,
        )
        for out in stream:
            total += len(out)
            yield out
    except zstandard.ZstdError as exc:
        raise VerificationFailed(f"compressed stream is corrupt: {exc}") from exc
    if expected_size is not None and total != expected_size:
        raise VerificationFailed(
            f"compressed stream is truncated: {total} bytes decompressed, expected {expected_size}"
        )


def measure(chunks: Iterable[bytes], progress: Progress | None = None) -> tuple[int, str]:
    """Return (size, sha256 hex) of a chunked stream."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return size, digest.hexdigest()
