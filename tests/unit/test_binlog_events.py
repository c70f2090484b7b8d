"""Walking binlog files by event headers: growing files, GTIDs, corruption."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from backupctl.drivers.mariadb.binlog_events import (
    FORMAT_DESCRIPTION,
    GTID,
    GTID_LIST,
    HEADER,
    MAGIC,
    BinlogScan,
    StopWatch,
    scan_file,
)
from backupctl.errors import BackupFailed, VerificationFailed

XID = 16


def event(kind: int, when: int, body: bytes, server_id: int = 7) -> bytes:
    return HEADER.pack(when, kind, server_id, HEADER.size + len(body), 0, 0) + body


def gtid(seq: int, domain: int, when: int) -> bytes:
    return event(GTID, when, struct.pack("<QIB", seq, domain, 0) + b"\0" * 6)


def binlog() -> bytes:
    gtid_list = struct.pack("<I", 2) + struct.pack("<IIQ", 0, 7, 41) + struct.pack("<IIQ", 3, 9, 5)
    return b"".join(
        [
            MAGIC,
            event(FORMAT_DESCRIPTION, 1_700_000_000, b"\0" * 100),
            event(GTID_LIST, 1_700_000_000, gtid_list),
            gtid(42, 0, 1_700_000_010),
            event(XID, 1_700_000_010, b"\0" * 12),
            gtid(43, 0, 1_700_000_020),
            event(XID, 1_700_000_020, b"\0" * 12),
        ]
    )


def test_a_complete_file_is_described() -> None:
    scan = BinlogScan()
    scan.feed(io.BytesIO(binlog()))
    info = scan.info()
    assert info["first_event_at"] == "2023-11-14T22:13:20+00:00"
    assert info["last_event_at"] == "2023-11-14T22:13:40+00:00"
    assert info["gtid_state_before"] == "0-7-41,3-9-5"
    assert (info["first_gtid"], info["last_gtid"]) == ("0-7-42", "0-7-43")
    assert info["transactions"] == 2
    assert info["end_position"] == info["size"] == len(binlog())
    assert info["server_ids"] == [7]


def test_a_growing_file_is_read_up_to_its_last_complete_event() -> None:
    data = binlog()
    cut = len(data) - 5  # the last XID event is half written
    buffer = io.BytesIO(data[:cut])
    scan = BinlogScan()
    scan.feed(buffer)
    last_xid = len(data) - (HEADER.size + 12)
    assert scan.end == last_xid
    assert scan.created == 1_700_000_000
    assert scan.last_gtid == "0-7-43"
    buffer.seek(0, 2)
    buffer.write(data[cut:])
    assert scan.feed(buffer) == HEADER.size + 12
    assert scan.end == len(data)


def test_a_file_cut_inside_an_event_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mysql-bin.000001"
    path.write_bytes(binlog()[:-3])
    with pytest.raises(BackupFailed, match="ends inside an event"):
        scan_file(path)


def test_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mysql-bin.000001"
    path.write_bytes(b"not a binlog at all")
    with pytest.raises(BackupFailed, match="not a binlog"):
        scan_file(path)
    path.write_bytes(MAGIC + HEADER.pack(0, 2, 1, 3, 0, 0))
    with pytest.raises(BackupFailed, match="corrupt binlog event at offset 4"):
        scan_file(path)


def _watched(data: bytes, watch: StopWatch, piece: int) -> int | None:
    """Feed ``data`` in pieces of ``piece`` bytes; the bytes fed when the watch stopped."""
    for at in range(0, len(data), piece):
        if watch.feed(data[at : at + piece]):
            return min(at + piece, len(data))
    return None


@pytest.mark.parametrize("piece", [1, 3, 19, 20, 64, 1 << 20])
def test_the_stop_watch_stops_where_mariadb_binlog_stops_reading(piece: int) -> None:
    """--stop-datetime stops at the first event stamped at or after the stop time, not
    counting the format description and events before the start position; however the
    stream is cut into chunks, the watch says so once that event's header went past."""
    data = binlog()
    second_gtid = data.index(gtid(43, 0, 1_700_000_020))
    fed = _watched(data, StopWatch(1_700_000_015), piece)
    assert fed is not None and second_gtid + HEADER.size <= fed <= second_gtid + HEADER.size + piece
    # at the stop second itself: stopped (events at the target second are not applied)
    assert _watched(data, StopWatch(1_700_000_020), piece) is not None
    # after every event: the next file is read
    assert _watched(data, StopWatch(1_700_000_021), piece) is None
    # the format description and the Gtid_list are as old as the stop: only the
    # format description does not stop the reader
    assert _watched(data, StopWatch(1_700_000_000), piece) is not None
    only_fde = MAGIC + event(FORMAT_DESCRIPTION, 1_700_000_000, b"\0" * 100)
    assert _watched(only_fde, StopWatch(1_700_000_000), piece) is None
    # events before the start position are not read, so they do not stop it
    assert _watched(data, StopWatch(1_700_000_000, start=second_gtid), piece) is not None
    assert _watched(data, StopWatch(1_700_000_021, start=second_gtid), piece) is None
    late_then_early = MAGIC + event(XID, 1_700_000_050, b"") + event(XID, 1_700_000_001, b"")
    after_late = len(MAGIC) + HEADER.size
    assert _watched(late_then_early, StopWatch(1_700_000_010, start=after_late), piece) is None


def test_the_stop_watch_refuses_a_corrupt_event() -> None:
    data = bytearray(binlog())
    struct.pack_into("<I", data, len(MAGIC) + 9, 3)  # the first event's size: 3 bytes
    with pytest.raises(VerificationFailed, match="corrupt binlog event at offset 4"):
        StopWatch(1_700_000_100).feed(bytes(data))
