"""Point-in-time recovery: the binlog chain after a full backup, and replaying it.

The chain runs from the full backup's binlog coordinates through the shipped binlogs,
in sequence, without a missing file; the latest recoverable point is the last event
of the newest binlog in an unbroken chain.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pymysql
from pydantic import ValidationError

from backupctl.catalog.manifest import Manifest, scan_manifests
from backupctl.drivers.mariadb.binlog import BINLOG_KIND
from backupctl.drivers.mariadb.binlog_stream import StreamIndex, read_streams
from backupctl.drivers.mariadb.details import BinlogDetails, BinlogInfo, FullDetails
from backupctl.drivers.mariadb.replay import Feed, replay
from backupctl.errors import UsageError, VerificationFailed
from backupctl.progress import ProgressFactory, no_progress
from backupctl.runbook.step import RunContext, Step
from backupctl.storage.base import Repository
from backupctl.timefmt import utc_and_local

GTID_RE = re.compile(r"^\d+-\d+-\d+$")
#: a binlog file name as the server makes them (``mysql-bin.000042``): no path in it
BINLOG_NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}\.\d{1,10}$")


@dataclass(frozen=True)
class ChainLink:
    """One binlog of the chain: its stored parts (one object, or a stream's segments)."""

    file: str
    parts: tuple[tuple[str, int], ...]  # (object key, raw bytes)
    info: BinlogInfo
    streaming: bool = False  # the open end, still being written by binlog follow


def _seq(name: str) -> int:
    return int(name.rsplit(".", 1)[1])


def backup_gtid(full: Manifest) -> str | None:
    """The GTID position ``full`` was taken at (None: none recorded)."""
    binlog = FullDetails.of(full).binlog
    return binlog.gtid if binlog is not None else None


def _stream_info(stream: StreamIndex) -> BinlogInfo:
    """The description of a streamed binlog (as far as it is stored). Raises
    VerificationFailed when its index does not describe one (tampered or corrupt)."""
    try:
        return BinlogInfo.model_validate({**stream.info, "file": stream.file})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'info'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise VerificationFailed(
            f"refusing the stream of binlog {stream.file!r} of {stream.policy}: its index does "
            f"not describe the binlog ({problems}; tampered or corrupt)"
        ) from None


def binlog_chain(repo: Repository, full: Manifest) -> tuple[list[ChainLink], str | None]:
    """The stored binlogs from ``full``'s coordinates on, stopping at the first gap: a file
    never stored, one whose object is gone from the repository, or one that does not
    continue the previous one (its GTID state at start lacks the previous file's last
    transaction: written by another server, or after a reset).

    Sealed binlogs come from binlog backups; the open end from ``binlog follow``'s
    streams. Returns (links, what breaks the chain or None).
    """
    coordinates = FullDetails.of(full).binlog
    start = coordinates.file if coordinates is not None else None
    if not start:
        return [], None
    stored: dict[str, ChainLink] = {}
    for stream in read_streams(repo, full.policy):
        if stream.updated_at >= full.started_at and stream.segments:
            info = _stream_info(stream)
            stored[stream.file] = ChainLink(stream.file, tuple(stream.parts), info, True)
    for manifest in scan_manifests(repo, full.policy):
        # binlogs with events after the backup were closed, so shipped, after it started;
        # older ones with the same names may come from before a restore reset the numbering
        if manifest.kind != BINLOG_KIND or manifest.started_at < full.started_at:
            continue
        for described in BinlogDetails.of(manifest).binlogs:
            artifact = manifest.artifact(f"{described.file}.zst")
            part = ((artifact.key, artifact.raw_bytes),)
            stored[described.file] = ChainLink(described.file, part, described)
    links: list[ChainLink] = []
    for name in (start, *stored):  # from manifests: numbered binlog names, nothing else
        if not BINLOG_NAME_RE.match(name):
            raise VerificationFailed(
                f"refusing binlog name {name!r} from the repository of {full.policy} (tampered?)"
            )
    base, width = start.rsplit(".", 1)[0], len(start.rsplit(".", 1)[1])
    newest = max((_seq(n) for n in stored), default=_seq(start) - 1)
    for number in range(_seq(start), newest + 1):
        name = f"{base}.{number:0{width}d}"
        link = stored.get(name)
        if link is None or not all(repo.exists(key) for key, _size in link.parts):
            return links, f"binlog {name} is missing from the repository"
        if links and (lost := _discontinuity(links[-1], link)):
            return links, lost
        links.append(link)
    return links, None


def _discontinuity(previous: ChainLink, link: ChainLink) -> str | None:
    """Why ``link`` does not follow ``previous``, or None when it does."""
    last = previous.info.last_gtid
    state = {g.strip() for g in link.info.gtid_state_before.split(",") if g}
    if not last or not state or last in state:
        return None
    return (
        f"binlog {link.file} does not continue {previous.file}: its GTID state "
        f"({', '.join(sorted(state))}) lacks {last}, the last transaction of {previous.file}"
    )


def latest_point(links: list[ChainLink], full: Manifest) -> datetime:
    """The newest moment the chain can restore to (the full backup's end without binlogs)."""
    stamps = [link.info.last_event_at for link in links if link.info.last_event_at]
    return datetime.fromisoformat(max(stamps)) if stamps else full.finished_at


def gtid_seq(gtid_list: str | None, domain: int) -> int | None:
    """The sequence number of ``domain`` in a GTID list like "0-1-5,1-2-9"."""
    for gtid in (gtid_list or "").split(","):
        parts = gtid.strip().split("-")
        if len(parts) == 3 and parts[0].isdigit() and int(parts[0]) == domain:
            return int(parts[2])
    return None


@dataclass(frozen=True)
class ReplayTarget:
    """Where a point-in-time restore stops: a moment, or a GTID (inclusive)."""

    time: datetime | None = None
    gtid: str | None = None

    def __str__(self) -> str:
        return f"GTID {self.gtid}" if self.gtid else (utc_and_local(self.time) if self.time else "")

    def to_dict(self) -> dict[str, str | None]:
        return {
            "gtid": self.gtid,
            "time_utc": self.time.astimezone(UTC).isoformat() if self.time else None,
            "time_local": self.time.astimezone().isoformat() if self.time else None,
        }

    @property
    def stop_epoch(self) -> int | None:
        """The stop time in whole UTC seconds, as ``--stop-datetime`` reads it (None for a
        GTID target)."""
        return int(self.time.timestamp()) if self.time is not None and not self.gtid else None

    def feeds(self, links: list[ChainLink], full: Manifest) -> list[Feed]:
        """What to replay, file by file, from after the backup up to the target: the start
        position for the first file (``mariadb-binlog`` refuses a GTID start that a later
        file's initial state does not match), a GTID stop for the file that holds it and
        no file after it, a stop time (in UTC) for every file."""
        if not links:
            return []
        if self.gtid:
            start = backup_gtid(full)
            domain, _server, seq = (int(p) for p in self.gtid.split("-"))
            last = next(
                (
                    n
                    for n, link in enumerate(links)
                    if (gtid_seq(link.info.last_gtid, domain) or 0) >= seq
                ),
                len(links) - 1,
            )
            needed = _after_start(links[: last + 1], start, domain)
            begins_at = gtid_seq(needed[0].info.gtid_state_before, domain)
            start_seq = gtid_seq(start, domain) if start else None
            # a file that begins at the start state needs no start position: given one,
            # mariadb-binlog fails a file holding no transaction after it ("never reached
            # expected GTID state")
            begun = begins_at is not None and start_seq is not None and begins_at >= start_seq
            first = [f"--start-position={start}"] if start and not begun else []
            return [
                Feed(
                    link.file,
                    link.parts,
                    (
                        *(first if n == 0 else []),
                        *([f"--stop-position={self.gtid}"] if n == len(needed) - 1 else []),
                    ),
                )
                for n, link in enumerate(needed)
            ]
        assert self.time is not None
        coordinates = FullDetails.of(full).binlog
        assert coordinates is not None  # binlog_chain finds no links without them
        stop = f"--stop-datetime={self.time.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')}"
        return [
            Feed(
                link.file,
                link.parts,
                (f"--start-position={coordinates.position}", stop) if n == 0 else (stop,),
                coordinates.position if n == 0 else 4,
            )
            for n, link in enumerate(links)
        ]

    def expected_gtid(self, links: list[ChainLink], full: Manifest) -> str | None:
        """The last transaction the replay must apply, when it is known without reading
        the binlogs: the target GTID, or, for a moment past the chain's last event, the
        chain's last GTID (None: a moment inside the chain)."""
        if self.gtid:
            return self.gtid
        last = links[-1].info.last_gtid if links else None
        stop = self.stop_epoch
        if last and stop is not None and stop > int(latest_point(links, full).timestamp()):
            return last
        return None

    def check(self, repo: Repository, full: Manifest) -> list[ChainLink]:
        """Return the links needed to reach the target; raise UsageError outside the window."""
        links, gap = binlog_chain(repo, full)
        where = f"; {gap}" if gap else ""
        if self.gtid:
            if not GTID_RE.match(self.gtid):
                raise UsageError(f"expected a GTID like 0-1-42, got {self.gtid!r}")
            domain, _server, seq = (int(p) for p in self.gtid.split("-"))
            first = gtid_seq(backup_gtid(full), domain) or 0
            lasts = [gtid_seq(link.info.last_gtid, domain) for link in links]
            last = max((n for n in lasts if n is not None), default=first)
            if not first < seq <= last:
                raise UsageError(
                    f"GTID {self.gtid} is outside the recoverable range "
                    f"{domain}-*-{first + 1} .. {domain}-*-{last}{where}"
                )
            return links
        assert self.time is not None
        latest = latest_point(links, full)
        if self.time < full.finished_at or self.time > latest:
            window = f"{utc_and_local(full.finished_at)} .. {utc_and_local(latest)}"
            raise UsageError(
                f"{utc_and_local(self.time)} is outside the recoverable window {window}{where}"
            )
        return links


def _after_start(links: list[ChainLink], start: str | None, domain: int) -> list[ChainLink]:
    """``links`` without the leading files that hold no transaction of ``domain`` after
    the backup's GTID position ``start`` (e.g. the binlog a rotation closed just after the
    backup): there is nothing in them to replay. The last link always stays."""
    begin = gtid_seq(start, domain) if start else None
    if begin is None:
        return links
    skip = 0
    while skip < len(links) - 1 and (gtid_seq(links[skip].info.last_gtid, domain) or 0) <= begin:
        skip += 1
    return links[skip:]


def newest_before(fulls: list[Manifest], target: datetime) -> Manifest:
    """The newest full backup that finished before ``target``."""
    before = [m for m in fulls if m.finished_at <= target]
    if not before:
        raise UsageError(f"no full backup finished before {target.isoformat()}")
    return before[-1]


def newest_before_gtid(fulls: list[Manifest], gtid: str) -> Manifest:
    """The newest full backup taken before transaction ``gtid`` (same domain)."""
    if not GTID_RE.match(gtid):
        raise UsageError(f"expected a GTID like 0-1-42 (domain-server-sequence), got {gtid!r}")
    domain, _server, seq = (int(p) for p in gtid.split("-"))
    before = []
    for manifest in fulls:
        done = gtid_seq(backup_gtid(manifest), domain) or 0
        if done < seq:
            before.append(manifest)
    if not before:
        raise UsageError(f"no full backup was taken before GTID {gtid}")
    return before[-1]


def check_reached(position: str, expected: str | None) -> None:
    """Raise VerificationFailed when the recovery instance's GTID binlog ``position`` is not
    at the ``expected`` last transaction (its domain's sequence number): a replay that
    stopped short, or went past the target, must not be started as the restored server."""
    if expected is None:
        return
    domain, _server, seq = (int(part) for part in expected.split("-"))
    reached = gtid_seq(position, domain)
    if reached != seq:
        where = f"{domain}-*-{reached}" if reached is not None else "nothing of that domain"
        raise VerificationFailed(
            f"the replay did not end at the target: the recovery instance applied up to "
            f"{where} (GTID position {position}), the target is {expected}"
        )


class ReplayBinlogs(Step):
    name = "replay-binlogs"
    resumable = False  # a partial replay cannot be told apart from a complete one

    def __init__(
        self,
        repo: Repository,
        full: Manifest,
        target: ReplayTarget,
        socket: Path,
        scratch: Path,
        binlog_bytes: int | None = None,
        progress: ProgressFactory = no_progress,
    ):
        self.repo, self.full, self.target = repo, full, target
        self.socket, self.scratch, self.binlog_bytes = socket, scratch, binlog_bytes
        self.progress = progress

    def work_bytes(self) -> int | None:
        return self.binlog_bytes

    def describe(self, ctx: RunContext) -> str:
        start = FullDetails.of(self.full).binlog
        where = f"{start.file}:{start.position}" if start is not None else "the backup"
        return f"replay binlogs from {where} up to {self.target} into the recovery instance"

    def run(self, ctx: RunContext) -> str:
        links = self.target.check(self.repo, self.full)
        if not links:
            return "no binlogs to replay"
        for link in links:  # names from the repository appear in file names: nothing else
            if not BINLOG_NAME_RE.match(link.file):
                raise VerificationFailed(
                    f"refusing binlog name {link.file!r} from the repository (tampered?)"
                )
        feeds = self.target.feeds(links, self.full)
        total = sum(size for feed in feeds for _key, size in feed.parts)
        with self.progress("replaying binlogs", total) as advance:
            done = replay(
                self.repo,
                feeds,
                [f"--socket={self.socket}", "-uroot"],
                self.scratch,
                self.target.stop_epoch,
                advance,
                self._purge_private_binlog,
            )
        ctx["recovery_point"] = self.target.to_dict()
        shutil.rmtree(self.scratch, ignore_errors=True)
        detail = f"replayed {done.files} binlog(s) up to {self.target}"
        if position := self._binlog_position():
            check_reached(position, self.target.expected_gtid(links, self.full))
            ctx["recovery_point"] = {**self.target.to_dict(), "gtid_position": position}
            strict = self._query("SELECT @@gtid_strict_mode") == "1"
            detail += f"; GTID position {position}{' under gtid_strict_mode' if strict else ''}"
        return detail

    def _query(self, sql: str) -> str:
        db = pymysql.connect(unix_socket=str(self.socket), user="root")
        try:
            with db.cursor() as cur:
                cur.execute(sql)
                row = cur.fetchone()
                return str(row[0] or "") if row else ""
        finally:
            db.close()

    def _purge_private_binlog(self) -> None:
        """Under gtid_strict_mode the recovery instance logs what it replays: start a new
        binlog file and drop the older ones, so a week of replay does not need a week of
        disk (LOCAL: the flush itself is not logged, no GTID of this instance's own)."""
        db = pymysql.connect(unix_socket=str(self.socket), user="root")
        try:
            with db.cursor() as cur:
                cur.execute("SHOW MASTER STATUS")  # no row: the instance keeps no binlog
                if cur.fetchone():
                    cur.execute("FLUSH LOCAL BINARY LOGS")
                    cur.execute("SHOW MASTER STATUS")
                    cur.execute("PURGE BINARY LOGS TO %s", (cur.fetchone()[0],))
        finally:
            db.close()

    def _binlog_position(self) -> str:
        """The recovery instance's GTID binlog position ("" when it keeps no binlog: a
        replay resumed into an instance a previous version started without one)."""
        return self._query("SELECT @@gtid_binlog_pos")

    def compensate(self, ctx: RunContext) -> str:
        shutil.rmtree(self.scratch, ignore_errors=True)
        return "replayed data goes with the restored datadir"
