"""MariaDB manifest details as typed documents: what the driver writes reads back as the
same JSON, what older versions wrote still reads (and restores plan the same), and
details that do not fit are refused with VerificationFailed (exit 3) naming the backup,
never an internal error."""

from __future__ import annotations

import copy
import hashlib
import re
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupctl.catalog.manifest import Artifact, Manifest, read_manifest
from backupctl.drivers.base import StoreBackup
from backupctl.drivers.mariadb.backupinfo import read_backup_info
from backupctl.drivers.mariadb.binlog import store_binlog, verify_binlogs
from backupctl.drivers.mariadb.binlog_events import (
    FORMAT_DESCRIPTION,
    GTID,
    GTID_LIST,
    HEADER,
    MAGIC,
    scan_file,
)
from backupctl.drivers.mariadb.binlog_seal import Sealer, SealJob
from backupctl.drivers.mariadb.binlog_stream import INDEX, Segment, StreamIndex
from backupctl.drivers.mariadb.details import (
    BinlogDetails,
    DatabaseInfo,
    FullDetails,
    ServerInventory,
    TableInfo,
)
from backupctl.drivers.mariadb.pitr import (
    ReplayTarget,
    binlog_chain,
    check_reached,
    latest_point,
    newest_before_gtid,
)
from backupctl.drivers.mariadb.verification import manifest_tables
from backupctl.drivers.session import BackupSession
from backupctl.errors import UsageError, VerificationFailed
from backupctl.layout import StateLayout
from backupctl.operations.backup import as_json
from backupctl.policy.mariadb import MariaDBPolicy
from backupctl.storage import keys
from backupctl.storage.local import LocalRepository
from tests.support.cli import run_backupctl

POLICY = "shop"
FULL_AT = datetime(2026, 12, 3, 16, 26, 0, tzinfo=UTC)

#: a full backup's details exactly as the driver wrote them before they were typed (taken
#: from a real backup; key order as stored: sorted)
FULL: dict[str, Any] = {
    "backup_type": "full-backuped",
    "binlog": {"file": "mysql-bin.000001", "gtid": "0-1-7", "position": 1690},
    "databases": [
        {"name": "empty", "tables": []},
        {
            "name": "shop",
            "tables": [
                {"bytes": 16384, "engine": "InnoDB", "name": "customers", "rows_estimate": 3},
                {"bytes": 49152, "engine": "InnoDB", "name": "orders", "rows_estimate": 120},
            ],
        },
    ],
    "datadir": "/var/lib/mysql",
    "gtid_strict_mode": True,
    "log_bin": True,
    "lsn": {"from_lsn": 0, "last_lsn": 47228, "to_lsn": 44894},
    "mariabackup_version": "10.11.19-MariaDB",
    "server_datadir": "/var/lib/mysql/",
    "server_id": 1,
    "server_version": "10.11.19-MariaDB-0+deb12u1-log",
}


def _binlog_info(file: str, first: int, last: int, state: str, minute: int) -> dict[str, Any]:
    """One binlog's description as every version wrote it."""
    return {
        "end_position": 2221,
        "file": file,
        "first_event_at": f"2026-12-03T16:{minute:02d}:21+00:00",
        "first_gtid": f"0-1-{first}",
        "gtid_state_before": state,
        "last_event_at": f"2026-12-03T16:{minute:02d}:34+00:00",
        "last_gtid": f"0-1-{last}",
        "server_ids": [1],
        "size": 2221,
        "start_position": 4,
        "transactions": last - first + 1,
    }


#: a binlog backup shipped by ``backup --type binlog`` as older versions wrote it (no
#: ``source``): the binlog the full backup stands in
SHIPPED: dict[str, Any] = {
    "binlogs": [_binlog_info("mysql-bin.000001", 1, 10, "", 27)],
    "current_binlog": "mysql-bin.000002",
    "purged_before_shipping": [],
    "server_id": 1,
}
#: a binlog sealed by ``binlog follow`` as older versions wrote it (no ``current_binlog``)
SEALED: dict[str, Any] = {
    "binlogs": [_binlog_info("mysql-bin.000002", 11, 15, "0-1-10", 29)],
    "purged_before_shipping": [],
    "server_id": 1,
    "source": "follow",
}


def _record(
    repo: LocalRepository,
    kind: str,
    details: dict[str, Any],
    at: datetime,
    artifacts: list[Artifact] | None = None,
    backup_id: str | None = None,
) -> Manifest:
    """Store a backup with ``details`` (its objects too: binlog backups get one per binlog
    named in the details) and return its manifest as readers get it from the repository."""
    backup_id = backup_id or keys.new_backup_id(at)
    if artifacts is None:
        artifacts = []
        binlogs = details.get("binlogs") if kind == "binlog" else None
        names = (
            [b["file"] for b in binlogs if isinstance(b, dict)] if isinstance(binlogs, list) else []
        )
        for number, name in enumerate(names or ["data.mbstream"]):
            key = f"{POLICY}/{kind}/{backup_id}/object-{number}.zst"
            data = b"stored " + name.encode()
            repo.put_bytes(key, data)
            digest = hashlib.sha256(data).hexdigest()
            artifacts.append(
                Artifact(
                    name=f"{name}.zst",
                    key=key,
                    raw_bytes=len(data),
                    stored_bytes=len(data),
                    sha256=digest,
                )
            )
    manifest = Manifest(
        backup_id=backup_id,
        policy=POLICY,
        driver="mariadb",
        kind=kind,
        started_at=at - timedelta(seconds=30),
        finished_at=at,
        artifacts=artifacts,
        details=details,
    )
    repo.put_bytes(f"{manifest.prefix}/manifest.json", manifest.to_json().encode())
    return read_manifest(repo, POLICY, kind, backup_id)


def _history(repo: LocalRepository, full: dict[str, Any] | None = None) -> Manifest:
    """A full backup, then a shipped binlog backup, then a sealed one; returns the full."""
    stored = _record(repo, "full", copy.deepcopy(FULL if full is None else full), FULL_AT)
    _record(repo, "binlog", copy.deepcopy(SHIPPED), FULL_AT + timedelta(minutes=2))
    _record(repo, "binlog", copy.deepcopy(SEALED), FULL_AT + timedelta(minutes=4))
    return stored


# ---------------------------------------------------------------- what the driver writes


def _event(kind: int, when: int, body: bytes) -> bytes:
    return HEADER.pack(when, kind, 1, HEADER.size + len(body), 0, 0) + body


def _write_binlog(path: Path, state_before: tuple[int, ...], seqs: range, when: int) -> Path:
    """A binlog file of server 1: a Gtid_list of ``state_before`` (domain 0 sequence
    numbers), then one transaction per sequence number in ``seqs``."""
    gtid_list = struct.pack("<I", len(state_before))
    gtid_list += b"".join(struct.pack("<IIQ", 0, 1, seq) for seq in state_before)
    events = [MAGIC, _event(FORMAT_DESCRIPTION, when, b"\0" * 100)]
    events.append(_event(GTID_LIST, when, gtid_list))
    for n, seq in enumerate(seqs):
        events.append(_event(GTID, when + n, struct.pack("<QIB", seq, 0, 0) + b"\0" * 6))
        events.append(_event(16, when + n, b"\0" * 12))  # XID: the commit
    path.write_bytes(b"".join(events))
    return path


def _policy(tmp_path: Path) -> MariaDBPolicy:
    password = tmp_path / "password"
    password.write_text("secret\n")
    password.chmod(0o600)
    return MariaDBPolicy.model_validate(_policy_data(tmp_path))


def _policy_data(tmp_path: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "name": POLICY,
        "driver": "mariadb",
        "connection": {
            "host": "127.0.0.1",
            "user": "backup",
            "password_file": str(tmp_path / "password"),
        },
        "datadir": str(tmp_path / "data"),
        "repository": f"file://{tmp_path / 'repo'}",
    }


def test_a_full_backups_details_are_stored_as_before_and_read_back_typed(tmp_path: Path) -> None:
    lsndir = tmp_path / "lsn"
    lsndir.mkdir()
    (lsndir / "xtrabackup_checkpoints").write_text(
        "backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 44894\nlast_lsn = 47228\n"
    )
    (lsndir / "xtrabackup_info").write_text(
        "tool_name = mariabackup\ntool_version = 10.11.19-MariaDB\n"
        "binlog_pos = filename 'mysql-bin.000001', position '1690', "
        "GTID of the last change '0-1-7'\n"
    )
    server = ServerInventory(  # as connection.inventory() describes the server
        server_version="10.11.19-MariaDB-0+deb12u1-log",
        server_datadir="/var/lib/mysql/",
        log_bin=True,
        server_id=1,
        gtid_strict_mode=True,
        databases=[
            DatabaseInfo(name="empty", tables=[]),
            DatabaseInfo(
                name="shop",
                tables=[
                    TableInfo(name="customers", engine="InnoDB", rows_estimate=3, bytes=16384),
                    TableInfo(name="orders", engine="InnoDB", rows_estimate=120, bytes=49152),
                ],
            ),
        ],
    )
    written = FullDetails.assemble(server, read_backup_info(lsndir), "/var/lib/mysql")

    stored = _record(LocalRepository(tmp_path / "repo"), "full", as_json(written), FULL_AT)
    assert stored.details == FULL  # the same JSON as before the details were typed
    details = FullDetails.of(stored)
    assert details == written
    assert details.binlog is not None and details.binlog.position == 1690
    assert details.lsn is not None and details.lsn.to_lsn == 44894
    assert manifest_tables(stored) == {"shop.customers": 3, "shop.orders": 120}


def test_binlog_backups_are_stored_as_before_with_null_for_what_they_lack(
    tmp_path: Path,
) -> None:
    """Shipped (``ship_binlogs``) and sealed (the follower's seal) binlog backups: the keys
    and values every version wrote, plus null where a key used to be left out."""
    repo, policy = LocalRepository(tmp_path / "repo"), _policy(tmp_path)
    spool = tmp_path / "spool"
    spool.mkdir()
    epoch = int(FULL_AT.timestamp())
    first = _write_binlog(spool / "mysql-bin.000001", (), range(1, 11), epoch + 60)
    second = _write_binlog(spool / "mysql-bin.000002", (10,), range(11, 16), epoch + 180)
    size = first.stat().st_size
    session = BackupSession(
        repo, policy, "binlog", keys.new_backup_id(FULL_AT), FULL_AT, StateLayout(tmp_path / "s")
    )
    shipped = BinlogDetails(  # as ship_binlogs() records the binlog it fetched
        server_id=1,
        current_binlog="mysql-bin.000002",
        binlogs=[store_binlog(session, first, 1)],
        purged_before_shipping=[],
    )
    stored = _record(
        repo, "binlog", as_json(shipped), FULL_AT, session.artifacts, session.backup_id
    )
    assert stored.details == {
        "binlogs": [
            {
                "end_position": size,
                "file": "mysql-bin.000001",
                "first_event_at": "2026-12-03T16:27:00+00:00",
                "first_gtid": "0-1-1",
                "gtid_state_before": "",
                "last_event_at": "2026-12-03T16:27:09+00:00",
                "last_gtid": "0-1-10",
                "server_ids": [1],
                "size": size,
                "start_position": 4,
                "transactions": 10,
            }
        ],
        "current_binlog": "mysql-bin.000002",
        "purged_before_shipping": [],
        "server_id": 1,
        "source": None,  # new: null where shipped backups left the key out
    }
    assert BinlogDetails.of(stored) == shipped

    sealed: list[dict[str, Any]] = []

    def store_backup(kind: str, produce: Callable[[BackupSession], Any]) -> Manifest:
        at = FULL_AT + timedelta(minutes=5)
        seal = BackupSession(repo, policy, kind, keys.new_backup_id(at), at, session.layout)
        details = as_json(produce(seal))
        sealed.append(details)
        return _record(repo, kind, details, at, seal.artifacts, seal.backup_id)

    recorder: StoreBackup = store_backup
    sealer = Sealer(policy, repo, recorder, retry_after=0.1)
    try:
        sealer.submit(SealJob(second, scan_file(second).info(), 1, None))
        deadline = time.monotonic() + 30
        while not sealer.take_sealed() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sealer.close()
    assert len(sealed) == 1
    assert {k: v for k, v in sealed[0].items() if k != "binlogs"} == {
        "current_binlog": None,  # new: null where seals left the key out
        "purged_before_shipping": [],
        "server_id": 1,
        "source": "follow",
    }
    assert sealed[0]["binlogs"][0]["file"] == "mysql-bin.000002"
    assert sealed[0]["binlogs"][0]["gtid_state_before"] == "0-1-10"

    # what was written makes a chain a point-in-time restore can use
    full = _record(repo, "full", copy.deepcopy(FULL), FULL_AT - timedelta(minutes=1))
    links, gap = binlog_chain(repo, full)
    assert [link.file for link in links] == ["mysql-bin.000001", "mysql-bin.000002"]
    assert gap is None
    assert latest_point(links, full) == datetime(2026, 12, 3, 16, 29, 4, tzinfo=UTC)


# ---------------------------------------------------------------- what older versions wrote


def test_details_older_versions_wrote_plan_the_same_restores(tmp_path: Path) -> None:
    """A full backup from before gtid_strict_mode was recorded, by a mariabackup that
    wrote no LSNs or version; binlog backups without ``source`` / ``current_binlog``."""
    old_full = copy.deepcopy(FULL)
    for key in ("gtid_strict_mode", "lsn", "backup_type", "mariabackup_version"):
        del old_full[key]
    repo = LocalRepository(tmp_path / "repo")
    full = _history(repo, old_full)

    details = FullDetails.of(full)
    assert details.gtid_strict_mode is False and details.lsn is None
    links, gap = binlog_chain(repo, full)
    assert [link.file for link in links] == ["mysql-bin.000001", "mysql-bin.000002"]
    assert gap is None
    assert latest_point(links, full) == datetime(2026, 12, 3, 16, 29, 34, tzinfo=UTC)
    assert links[-1].info.last_gtid == "0-1-15"
    # read as the mapping a link's description used to be, it says the same
    assert links[0].info.gtid_state_before == ""
    assert ReplayTarget(gtid="0-1-12").check(repo, full) == links
    with pytest.raises(
        UsageError, match=re.escape("outside the recoverable range 0-*-8 .. 0-*-15")
    ):
        ReplayTarget(gtid="0-1-16").check(repo, full)
    assert newest_before_gtid([full], "0-1-12") is full
    # replayed file by file: the start for the first, the GTID stop for the file holding
    # it, no file after it
    first_last = links[0].info.last_gtid
    feeds = ReplayTarget(gtid="0-1-12").feeds(links, full)
    assert [(f.file, f.args) for f in feeds] == [
        ("mysql-bin.000001", ("--start-position=0-1-7",)),
        ("mysql-bin.000002", ("--stop-position=0-1-12",)),
    ], first_last
    held = ReplayTarget(gtid=first_last).feeds(links, full)
    assert [(f.file, f.args) for f in held] == [
        ("mysql-bin.000001", ("--start-position=0-1-7", f"--stop-position={first_last}"))
    ]
    # a stop time, in UTC, for every file; the start position for the first only
    at = FULL_AT.astimezone(timezone(timedelta(hours=9)))
    timed = ReplayTarget(time=at).feeds(links, full)
    stop = f"--stop-datetime={FULL_AT.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    assert [(f.args, f.start) for f in timed] == [
        (("--start-position=1690", stop), 1690),
        ((stop,), 4),
    ]
    assert ReplayTarget(time=at).stop_epoch == int(FULL_AT.timestamp())
    assert ReplayTarget(gtid="0-1-12").stop_epoch is None
    # what the replay must have applied, checked on the recovery instance afterwards
    assert ReplayTarget(gtid="0-1-12").expected_gtid(links, full) == "0-1-12"
    after = latest_point(links, full) + timedelta(seconds=1)
    assert ReplayTarget(time=after).expected_gtid(links, full) == "0-1-15"
    assert ReplayTarget(time=at).expected_gtid(links, full) is None  # inside: unknown
    check_reached("0-1-12,1-5-3", "0-1-12")
    check_reached("0-1-3", None)
    with pytest.raises(VerificationFailed, match=r"applied up to 0-\*-11 .*target is 0-1-12"):
        check_reached("0-1-11", "0-1-12")
    with pytest.raises(VerificationFailed, match="nothing of that domain"):
        check_reached("1-1-12", "0-1-12")


@pytest.mark.parametrize("written", ["absent", "null"])
def test_a_full_backup_of_a_server_without_binlog_reads_the_same_absent_or_null(
    tmp_path: Path, written: str
) -> None:
    """Older versions left ``binlog`` out, this one writes null: no chain either way."""
    no_binlog = copy.deepcopy(FULL)
    if written == "absent":
        del no_binlog["binlog"]
    else:
        no_binlog["binlog"] = None
    repo = LocalRepository(tmp_path / "repo")
    full = _history(repo, no_binlog)

    assert binlog_chain(repo, full) == ([], None)
    assert latest_point([], full) == full.finished_at
    assert newest_before_gtid([full], "0-1-1") is full
    with pytest.raises(UsageError, match="outside the recoverable window"):
        ReplayTarget(time=FULL_AT + timedelta(minutes=1)).check(repo, full)
    assert ReplayTarget(time=FULL_AT).check(repo, full) == []  # nothing to replay


# ---------------------------------------------------------------- tampered details


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit setting ``path`` (keys and list indexes, dotted) to ``value``."""

    def edit(details: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = details
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda details: details.pop(key)


TAMPERED_BINLOG = {
    "binlogs not a list": _set("binlogs", "mysql-bin.000002"),
    "a binlog not an object": _set("binlogs.0", "mysql-bin.000002"),
    "a position not a number": _set("binlogs.0.end_position", "2221"),
    "a negative size": _set("binlogs.0.size", -1),
    "a time that is no time": _set("binlogs.0.last_event_at", "yesterday"),
    "a time without its offset": _set("binlogs.0.last_event_at", "2026-12-03T16:29:34"),
    "a GTID that is no GTID": _set("binlogs.0.last_gtid", "0-1"),
    "the binlogs missing": _drop("binlogs"),
}


@pytest.mark.parametrize("edit", TAMPERED_BINLOG.values(), ids=TAMPERED_BINLOG.keys())
def test_tampered_binlog_details_are_refused_naming_the_backup(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None]
) -> None:
    repo = LocalRepository(tmp_path / "repo")
    full = _record(repo, "full", copy.deepcopy(FULL), FULL_AT)
    details = copy.deepcopy(SEALED)
    edit(details)
    binlog = _record(repo, "binlog", details, FULL_AT + timedelta(minutes=4))
    refusal = f"refusing backup {binlog.backup_id} of shop: .* do not describe a binlog backup"

    with pytest.raises(VerificationFailed, match=refusal):
        binlog_chain(repo, full)  # restores, drills, list's recoverability window
    with pytest.raises(VerificationFailed, match=refusal):
        verify_binlogs(repo, binlog, tmp_path / "scratch")


TAMPERED_FULL = {
    "a position not a number": _set("binlog.position", "1690"),
    "coordinates not an object": _set("binlog", ["mysql-bin.000001", 1690]),
    "databases not a list": _set("databases", {"shop": ["orders"]}),
    "a row estimate not a number": _set("databases.1.tables.0.rows_estimate", "3"),
    "a flag not a boolean": _set("gtid_strict_mode", 1),
    "the databases missing": _drop("databases"),
}


@pytest.mark.parametrize("edit", TAMPERED_FULL.values(), ids=TAMPERED_FULL.keys())
def test_tampered_full_details_are_refused_naming_the_backup(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None]
) -> None:
    details = copy.deepcopy(FULL)
    edit(details)
    repo = LocalRepository(tmp_path / "repo")
    full = _history(repo, details)
    refusal = f"refusing backup {full.backup_id} of shop: .* do not describe a full backup"

    with pytest.raises(VerificationFailed, match=refusal):
        binlog_chain(repo, full)
    with pytest.raises(VerificationFailed, match=refusal):
        newest_before_gtid([full], "0-1-12")
    with pytest.raises(VerificationFailed, match=refusal):
        manifest_tables(full)  # what a restore checks the restored server against


def test_binlog_names_that_are_paths_are_refused_as_before(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path / "repo")
    full = _history(repo, _with(FULL, "binlog.file", "../../x/mysql-bin.000001"))
    with pytest.raises(
        VerificationFailed, match=re.escape("refusing binlog name '../../x/mysql-bin")
    ):
        binlog_chain(repo, full)

    # deep verify decompresses each binlog to scratch/<its name>: never elsewhere
    escape = _with(SEALED, "binlogs.0.file", "../escaped.000002")
    binlog = _record(repo, "binlog", escape, FULL_AT + timedelta(minutes=9))
    scratch = tmp_path / "a" / "scratch"
    scratch.mkdir(parents=True)
    with pytest.raises(
        VerificationFailed, match=re.escape("refusing binlog name '../escaped.000002'")
    ):
        verify_binlogs(repo, binlog, scratch)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["scratch"]
    assert not any(scratch.iterdir())


def _with(details: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(details)
    _set(path, value)(changed)
    return changed


def _stream(repo: LocalRepository, info: dict[str, Any]) -> None:
    """The open end of the chain as ``binlog follow`` stores it: one segment, its index."""
    index = StreamIndex(
        policy=POLICY,
        file="mysql-bin.000003",
        created=int(FULL_AT.timestamp()) + 600,
        server_id=1,
        updated_at=FULL_AT + timedelta(minutes=10),
        info=info,
    )
    key = keys.join(index.prefix, f"{0:012d}.zst")
    repo.put_bytes(key, b"segment")
    index.segments.append(Segment(key=key, offset=0, raw_bytes=7, stored_bytes=7, sha256="0"))
    repo.put_bytes(keys.join(index.prefix, INDEX), index.model_dump_json().encode())


def test_the_streamed_open_end_extends_the_chain_and_a_tampered_one_is_refused(
    tmp_path: Path,
) -> None:
    streamed = _binlog_info("mysql-bin.000003", 16, 18, "0-1-15", 36)
    del streamed["file"]  # a stream's index describes its file by name, not in ``info``
    repo = LocalRepository(tmp_path / "repo")
    full = _history(repo)
    _stream(repo, streamed)
    links, gap = binlog_chain(repo, full)
    assert [(link.file, link.streaming) for link in links][-1] == ("mysql-bin.000003", True)
    assert gap is None
    assert latest_point(links, full) == datetime(2026, 12, 3, 16, 36, 34, tzinfo=UTC)

    _stream(repo, {**streamed, "gtid_state_before": ["0-1-15"]})
    with pytest.raises(
        VerificationFailed, match=re.escape("stream of binlog 'mysql-bin.000003' of shop")
    ):
        binlog_chain(repo, full)


# ---------------------------------------------------------------- as users see it


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., Any]:
    _policy(tmp_path)  # the password file
    policy = tmp_path / "policies" / "shop.yaml"
    policy.parent.mkdir()
    policy.write_text(yaml.safe_dump(_policy_data(tmp_path)))
    head = ["--policies", str(policy), "--state-dir", str(tmp_path / "state")]
    return lambda *args: run_backupctl([*head, *args])


@pytest.mark.slow
def test_commands_refuse_tampered_details_with_exit_3_naming_the_backup(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    repo = LocalRepository(tmp_path / "repo")
    full = _history(repo, _with(FULL, "binlog.position", "1690"))
    binlog = _record(
        repo,
        "binlog",
        _with(SEALED, "binlogs", {"mysql-bin.000002": {}}),
        FULL_AT + timedelta(minutes=8),
    )
    assert cli("catalog", "sync").code == 0

    checked = cli("verify", POLICY, binlog.backup_id, "--deep")
    restore = cli(
        "restore",
        POLICY,
        "--to-time",
        "2026-12-03 16:28:00+00:00",
        "--target-datadir",
        str(tmp_path / "copy"),
        "--dry-run",
    )
    for result, refused in ((checked, binlog), (restore, full)):
        assert result.code == 3, result.output
        assert f"refusing backup {refused.backup_id} of shop" in result.stderr, result.stderr
        assert "Traceback" not in result.output and "internal error" not in result.output
    assert not (tmp_path / "copy").exists()
    listed = cli("list", POLICY)
    assert listed.code == 0, listed.output
    assert f"recoverability window unknown (refusing backup {full.backup_id}" in listed.stdout
