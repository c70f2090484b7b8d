"""The open end of the binlog chain: segments written by ``binlog follow``.

While a binlog is still being written, ``binlog follow`` stores what it has received
as compressed segments under ``<policy>/binlog-stream/<file>.<created>/``: one object
per flush (``<offset>.zst``), then ``index.json`` listing them. The index is written
after its segments, so whatever it lists is complete. When the binlog is closed, it is
sealed into an ordinary binlog backup (a manifest) and its stream is removed.

``<created>`` (the timestamp of the file's format description event) tells apart two
binlogs with the same name, such as those before and after a restore reset the
numbering.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import IO, Any, Literal

from pydantic import BaseModel, ValidationError

from backupctl.errors import ObjectNotFound, RepositoryError
from backupctl.pipeline import CHUNK, CompressingWriter
from backupctl.storage import keys
from backupctl.storage.base import Repository

STREAM_DIR = "binlog-stream"
INDEX = "index.json"


class Segment(BaseModel):
    key: str
    offset: int
    raw_bytes: int
    stored_bytes: int
    sha256: str


class StreamIndex(BaseModel):
    """The stored part of one binlog still being streamed."""

    format: Literal[1] = 1
    policy: str
    file: str
    created: int
    server_id: int
    updated_at: datetime
    segments: list[Segment] = []
    info: dict[str, Any] = {}

    @property
    def prefix(self) -> str:
        return stream_prefix(self.policy, self.file, self.created)

    @property
    def end(self) -> int:
        """Bytes of the binlog stored so far."""
        return self.segments[-1].offset + self.segments[-1].raw_bytes if self.segments else 0

    @property
    def parts(self) -> list[tuple[str, int]]:
        return [(s.key, s.raw_bytes) for s in self.segments]


def stream_prefix(policy: str, file: str, created: int) -> str:
    return keys.join(policy, STREAM_DIR, f"{file}.{created}")


def read_streams(repo: Repository, policy: str) -> list[StreamIndex]:
    """Every stream index of ``policy``, oldest update first."""
    found = []
    for item in repo.list(keys.join(policy, STREAM_DIR) + "/"):
        if not item.key.endswith("/" + INDEX):
            continue
        try:
            found.append(StreamIndex.model_validate_json(repo.get_bytes(item.key)))
        except ObjectNotFound:
            continue  # removed by a seal meanwhile
        except ValidationError as exc:
            raise RepositoryError(f"invalid binlog stream index {item.key}: {exc}") from exc
    return sorted(found, key=lambda s: s.updated_at)


def append_segment(
    repo: Repository,
    index: StreamIndex,
    source: IO[bytes],
    length: int,
    info: dict[str, Any],
    level: int,
) -> None:
    """Store ``length`` bytes of the binlog ``source`` from ``index.end`` on as one segment,
    then the updated index (``info`` describes the binlog up to the segment's end)."""
    offset = index.end
    key = keys.join(index.prefix, f"{offset:012d}.zst")
    writer = repo.open_write(key)
    try:
        compressor = CompressingWriter(writer, level=level, threads=1)
        source.seek(offset)
        remaining = length
        while remaining > 0:
            chunk = source.read(min(CHUNK, remaining))
            if not chunk:
                raise RepositoryError(f"binlog {index.file} shrank while being stored")
            compressor.write(chunk)
            remaining -= len(chunk)
        stats = compressor.finish()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    index.segments.append(
        Segment(
            key=key,
            offset=offset,
            raw_bytes=stats.raw_bytes,
            stored_bytes=stats.stored_bytes,
            sha256=stats.sha256,
        )
    )
    index.info = info
    index.updated_at = datetime.now(UTC)
    repo.put_bytes(keys.join(index.prefix, INDEX), index.model_dump_json(indent=1).encode())


def remove_stream(repo: Repository, index: StreamIndex) -> None:
    """Delete a stream's index first (so it is never half listed), then its segments."""
    repo.delete(keys.join(index.prefix, INDEX))
    repo.delete_prefix(index.prefix + "/")
