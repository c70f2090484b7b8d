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
        self._sink = _HashingSink(writer)
        threads = threads or (os.cpu_count() or 1)
        cctx = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
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
        self._zstd.close()
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


def store_bytes(writer: ObjectWriter, data: bytes, level: int = 3) -> StreamStats:
    """Compress small ``data`` into ``writer`` (not committed); return its stats."""
    target = CompressingWriter(writer, level=level, threads=1)
    target.write(data)
    return target.finish()


def decompress(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Yield the decompressed bytes of a zstd stream given as chunks.

    Raises VerificationFailed when the stream is corrupt or truncated.
    """
    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    started = False
    try:
        for chunk in chunks:
            while chunk:
                started = True
                out = dobj.decompress(chunk)
                if out:
                    yield out
                # a finished frame may be followed by another (concatenated frames)
                chunk = dobj.unused_data if dobj.eof else b""
                if dobj.eof:
                    dobj, started = dctx.decompressobj(), bool(chunk)
    except zstandard.ZstdError as exc:
        raise VerificationFailed(f"compressed stream is corrupt: {exc}") from exc
    if started and not dobj.eof:
        raise VerificationFailed("compressed stream is truncated")


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
