"""Reading binlog files by their event headers, without decoding the events.

A binlog file is the magic ``\\xfebin`` followed by events, each starting with a
19-byte header: timestamp (4), type (1), server id (4), event size (4), next
position (4), flags (2), all little-endian. The size includes the checksum, so the
file can be walked from event to event. MariaDB's GTID events (type 162) carry the
sequence number and domain; Gtid_list events (163) the GTID state at the file's start.

``BinlogScan`` walks incrementally: feed it the file as it grows (continuous
streaming), and it stops at the end of the last complete event.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from backupctl.errors import BackupFailed, VerificationFailed

MAGIC = b"\xfebin"
HEADER = struct.Struct("<IBIIIH")
FORMAT_DESCRIPTION = 15
GTID = 162
GTID_LIST = 163
_GTID_BODY = struct.Struct("<QI")
_GTID_ENTRY = struct.Struct("<IIQ")
_MAX_EVENT = 1 << 30  # max_allowed_packet's ceiling; anything larger is corruption


def _stamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@dataclass
class BinlogScan:
    """What is known of one binlog file up to ``end`` (the end of its last complete event)."""

    end: int = 0
    created: int | None = None  # the format description event's timestamp
    server_ids: set[int] = field(default_factory=set)
    first_epoch: int | None = None
    last_epoch: int | None = None
    gtid_state_before: str | None = None
    first_gtid: str | None = None
    last_gtid: str | None = None
    transactions: int = 0

    def feed(self, fh: IO[bytes]) -> int:
        """Read complete events from ``self.end`` on; return how many bytes were added."""
        before = self.end
        length = fh.seek(0, 2)
        if self.end == 0:
            fh.seek(0)
            magic = fh.read(4)
            if len(magic) < 4:
                return 0
            if magic != MAGIC:
                raise BackupFailed("not a binlog file (bad magic number)")
            self.end = 4
        pos = self.end
        while pos + HEADER.size <= length:
            fh.seek(pos)
            when, kind, server_id, size, _next, _flags = HEADER.unpack(fh.read(HEADER.size))
            if not HEADER.size <= size <= _MAX_EVENT:
                raise BackupFailed(f"corrupt binlog event at offset {pos} (size {size})")
            if pos + size > length:
                break  # the event is still being written
            body = fh.read(size - HEADER.size) if kind in (GTID, GTID_LIST) else b""
            self._note(when, kind, server_id, body)
            pos += size
        self.end = pos
        return self.end - before

    def _note(self, when: int, kind: int, server_id: int, body: bytes) -> None:
        if kind == FORMAT_DESCRIPTION and self.created is None:
            self.created = when
        if when:
            self.first_epoch = self.first_epoch or when
            self.last_epoch = when
        self.server_ids.add(server_id)
        if kind == GTID and len(body) >= _GTID_BODY.size:
            seq, domain = _GTID_BODY.unpack_from(body)
            gtid = f"{domain}-{server_id}-{seq}"
            self.first_gtid = self.first_gtid or gtid
            self.last_gtid = gtid
            self.transactions += 1
        elif kind == GTID_LIST and self.gtid_state_before is None and len(body) >= 4:
            count = struct.unpack_from("<I", body)[0] & 0x0FFFFFFF
            entries = []
            for i in range(count):
                offset = 4 + i * _GTID_ENTRY.size
                if offset + _GTID_ENTRY.size > len(body):
                    break
                domain, server, seq = _GTID_ENTRY.unpack_from(body, offset)
                entries.append(f"{domain}-{server}-{seq}")
            self.gtid_state_before = ",".join(entries)

    def info(self) -> dict[str, Any]:
        """The description stored in manifests (times in UTC ISO 8601)."""
        return {
            "first_event_at": _stamp(self.first_epoch) if self.first_epoch else None,
            "last_event_at": _stamp(self.last_epoch) if self.last_epoch else None,
            "start_position": 4,
            "end_position": self.end,
            "server_ids": sorted(self.server_ids),
            "gtid_state_before": self.gtid_state_before or "",
            "first_gtid": self.first_gtid,
            "last_gtid": self.last_gtid,
            "transactions": self.transactions,
            "size": self.end,
        }


def scan_file(path: Path) -> BinlogScan:
    """Walk a complete binlog file; raise BackupFailed if it ends inside an event."""
    scan = BinlogScan()
    with open(path, "rb") as fh:
        scan.feed(fh)
        size = fh.seek(0, 2)
    if scan.end != size:
        raise BackupFailed(
            f"{path.name} ends inside an event: {size - scan.end} stray byte(s) after offset "
            f"{scan.end}"
        )
    return scan


class StopWatch:
    """Follows a binlog's bytes as they stream past (from the file's first byte) and
    tells when ``mariadb-binlog --stop-datetime`` stops reading: at the first event from
    the start position on, other than the format description, stamped at or after the
    stop time. Replaying one file at a time, the next file is read only if this one did
    not stop, as one ``mariadb-binlog`` over all of them does. Memory: one event header.
    """

    def __init__(self, stop_epoch: int, start: int = 4):
        self.stop_epoch, self.start = stop_epoch, start
        self.stopped = False
        self._offset = 0  # bytes seen
        self._skip = len(MAGIC)  # bytes still to pass over before the next header
        self._header = b""

    def feed(self, data: bytes) -> bool:
        """Take the next bytes; return True once an event that stops the reader was seen."""
        view = memoryview(data)
        while view and not self.stopped:
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                self._offset += n
                view = view[n:]
                continue
            taken = view[: HEADER.size - len(self._header)]
            self._header += bytes(taken)
            self._offset += len(taken)
            view = view[len(taken) :]
            if len(self._header) < HEADER.size:
                break
            when, kind, _server, size, _next, _flags = HEADER.unpack(self._header)
            at = self._offset - HEADER.size
            if not HEADER.size <= size <= _MAX_EVENT:
                raise VerificationFailed(f"corrupt binlog event at offset {at} (size {size})")
            if at >= self.start and kind != FORMAT_DESCRIPTION and when >= self.stop_epoch:
                self.stopped = True
            self._header = b""
            self._skip = size - HEADER.size
        return self.stopped
