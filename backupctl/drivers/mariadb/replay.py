"""Streaming binlog replay: each stored binlog flows from the repository through zstd into
its own ``mariadb-binlog -`` (reading stdin), and every one of them writes into one
``mariadb`` session on the recovery instance.

Nothing of the binlogs lands on disk: the scratch directory holds the tools' error
output only, so a week of binlogs replays with a few MiB of scratch. One session for
all files keeps what ``mariadb-binlog FILE...`` | ``mariadb`` keeps (session variables,
temporary tables of statement-based binlogs); the stop options are given per file as
that command applies them: the start position to the first file only, a GTID stop to
the file holding it, a stop time to each file read, and a file after the one where the
stop time was reached is never read (``StopWatch``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from backupctl.drivers.mariadb.binlog_events import StopWatch
from backupctl.errors import BackupctlError
from backupctl.pipeline import decompress
from backupctl.proc import dies_with_us, lock_fds, require_tool, tail_text
from backupctl.progress import Advance
from backupctl.storage.base import Repository

#: a housekeeping call (purging the recovery instance's own binlog) every this many bytes
HOUSEKEEPING_BYTES = 256 << 20


@dataclass(frozen=True)
class Feed:
    """One stored binlog to replay: its name, stored parts (object key, raw bytes), the
    ``mariadb-binlog`` options for it, and the position its events count from."""

    file: str
    parts: tuple[tuple[str, int], ...]
    args: tuple[str, ...] = ()
    start: int = 4


class ReplayFailed(BackupctlError):
    """mariadb-binlog or mariadb failed during a replay."""


@dataclass
class Replayed:
    files: int = 0
    bytes: int = 0  # binlog bytes handed to mariadb-binlog


def replay(
    repo: Repository,
    feeds: Sequence[Feed],
    client_args: Sequence[str],
    scratch: Path,
    stop_epoch: int | None = None,
    advance: Advance = lambda n: None,
    housekeeping: Callable[[], None] = lambda: None,
) -> Replayed:
    """Replay ``feeds`` in order into ``mariadb CLIENT_ARGS``; ``stop_epoch``: the stop
    time (UTC seconds) the feeds' ``--stop-datetime`` gives, so that no file after the one
    reaching it is read. ``housekeeping`` runs between files and every 256 MiB. Raises
    ReplayFailed with the tools' last messages."""
    binlog_tool = require_tool("mariadb-binlog", "mariadb-client")
    client = require_tool("mariadb", "mariadb-client")
    scratch.mkdir(parents=True, exist_ok=True)
    # messages go to files: a pipe read only at the end could fill up and stall the replay
    applier_err = scratch / "mariadb.err"
    with open(applier_err, "wb") as err:
        applier = subprocess.Popen(
            dies_with_us([client, "--no-defaults", *client_args, "--binary-mode"]),
            pass_fds=lock_fds(),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    assert applier.stdin is not None
    done = Replayed()
    reader: subprocess.Popen[bytes] | None = None
    try:
        for feed in feeds:
            watch = StopWatch(stop_epoch, feed.start) if stop_epoch is not None else None
            reader_err = scratch / f"{feed.file}.err"
            with open(reader_err, "wb") as err:
                reader = subprocess.Popen(
                    dies_with_us([binlog_tool, "--no-defaults", *feed.args, "-"]),
                    pass_fds=lock_fds(),
                    stdin=subprocess.PIPE,
                    stdout=applier.stdin,
                    stderr=err,
                    bufsize=0,
                    # --stop-datetime is given in UTC: no local-time ambiguity at DST changes
                    env={**os.environ, "TZ": "UTC"},
                )
            assert reader.stdin is not None
            _pour(repo, feed, reader.stdin, watch, advance, done, housekeeping)
            if (code := reader.wait()) != 0 or applier.poll() is not None:
                raise ReplayFailed(
                    f"binlog replay failed at {feed.file} ({_status(code, applier.poll())}): "
                    + tail_text(_text(reader_err) + _text(applier_err), 5)
                )
            done.files += 1
            housekeeping()
            if watch is not None and watch.stopped:
                break
    except BaseException:
        for proc in (reader, applier):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        raise
    applier.stdin.close()
    if applier.wait() != 0:
        raise ReplayFailed("binlog replay failed: " + tail_text(_text(applier_err), 5))
    return done


def _pour(
    repo: Repository,
    feed: Feed,
    sink: IO[bytes],
    watch: StopWatch | None,
    advance: Advance,
    done: Replayed,
    housekeeping: Callable[[], None],
) -> None:
    """Decompress ``feed`` into ``sink`` until its end, or until the reader stops (it
    reached its stop position or time, or failed: its exit status tells)."""
    since = 0
    try:
        with sink:
            for key, size in feed.parts:
                for chunk in decompress(repo.iter_read(key), size):
                    sink.write(chunk)
                    advance(len(chunk))
                    done.bytes += len(chunk)
                    since += len(chunk)
                    if since >= HOUSEKEEPING_BYTES:
                        housekeeping()
                        since = 0
                    if watch is not None and watch.feed(chunk):
                        return  # mariadb-binlog stops at this event; the rest is not needed
    except BrokenPipeError:
        pass


def _status(reader: int, applier: int | None) -> str:
    """What the exit statuses say, e.g. "mariadb-binlog exit 1, mariadb running"."""

    def one(name: str, code: int | None) -> str:
        if code is None:
            return f"{name} running"
        return f"{name} killed by signal {-code}" if code < 0 else f"{name} exit {code}"

    return f"{one('mariadb-binlog', reader)}, {one('mariadb', applier)}"


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
