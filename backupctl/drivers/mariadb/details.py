"""What MariaDB backups record in their manifests, as typed documents.

``FullDetails``: a full (mariabackup) backup: the server's inventory, mariabackup's LSNs
and binlog coordinates, the datadir. ``IncrementalDetails``: the same for an incremental
(``--incremental-lsn``), plus its parent and the chain it extends. ``BinlogDetails``: a
binlog backup (shipped by ``backup --type binlog`` or sealed by ``binlog follow``): one
``BinlogInfo`` per binlog.

Stored as ``model_dump(mode="json")``: the keys and value shapes the driver always wrote
(a section it did not write, such as ``binlog`` for a server without binary logging, is
now written as null; readers treat null as absent). Read back with ``FullDetails.of`` /
``BinlogDetails.of``: fields older versions did not write get defaults; a value of the
wrong type (strictly: ``"4"`` is not a position, ``1`` not a boolean) or a missing
field every version wrote is refused with VerificationFailed naming the backup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from backupctl.catalog.manifest import BackupDetails

#: one GTID as binlog events carry it: domain-server-sequence
GTID_PATTERN = r"^\d+-\d+-\d+$"
_STRICT = ConfigDict(extra="allow", strict=True)


def _aware_iso_time(value: str) -> str:
    """``value`` unchanged if it is an ISO 8601 time with a UTC offset."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected an ISO 8601 time, got {value!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"expected a time with a UTC offset, got {value!r}")
    return value


#: a moment as stored (``2026-11-22T04:38:11+00:00``): kept as written, checked to parse
IsoTime = Annotated[str, AfterValidator(_aware_iso_time)]
Gtid = Annotated[str, Field(pattern=GTID_PATTERN)]
Position = Annotated[int, Field(ge=0)]


# ---------------------------------------------------------------- full backups


class TableInfo(BaseModel):
    """One user table at backup time (estimates from information_schema)."""

    model_config = _STRICT

    name: str
    engine: str | None
    rows_estimate: int
    bytes: int


class DatabaseInfo(BaseModel):
    """One user database and its base tables (none for an empty database)."""

    model_config = _STRICT

    name: str
    tables: list[TableInfo]


class ServerInventory(BaseModel):
    """What the server says about itself before the backup (``connection.inventory``)."""

    model_config = _STRICT

    server_version: str
    server_datadir: str
    log_bin: bool
    server_id: int
    #: not recorded before point-in-time restores honoured gtid_strict_mode
    gtid_strict_mode: bool = False
    databases: list[DatabaseInfo]


class Lsn(BaseModel):
    """InnoDB log sequence numbers from ``xtrabackup_checkpoints`` (a value it lacks: None)."""

    model_config = _STRICT

    from_lsn: int | None = None
    to_lsn: int | None = None
    last_lsn: int | None = None


class BinlogCoordinates(BaseModel):
    """Where the backup stands in the binlog: point-in-time replay starts here."""

    model_config = _STRICT

    file: str
    position: Position
    #: the GTID position of the last change (None: no GTID recorded)
    gtid: str | None = None


class MariabackupInfo(BaseModel):
    """What mariabackup wrote to ``--extra-lsndir`` (``backupinfo.read_backup_info``);
    a file it did not write leaves its fields None."""

    model_config = _STRICT

    lsn: Lsn | None = None
    backup_type: str | None = None
    mariabackup_version: str | None = None
    #: None: the server kept no binlog (no point-in-time recovery from this backup)
    binlog: BinlogCoordinates | None = None


class FullDetails(ServerInventory, MariabackupInfo, BackupDetails):
    """The details of a ``full`` backup: the inventory, mariabackup's info, the datadir."""

    model_config = _STRICT

    #: the policy's datadir the backup was taken from
    datadir: str
    #: why a full was taken when an incremental was asked for (None: a full was asked)
    instead_of_incremental: str | None = Field(None, exclude_if=lambda value: value is None)

    @classmethod
    def assemble(
        cls,
        server: ServerInventory,
        mariabackup: MariabackupInfo,
        datadir: str,
        instead: str | None = None,
    ) -> FullDetails:
        """The details of a full backup from what the server and mariabackup said."""
        return cls(
            **dict(server), **dict(mariabackup), datadir=datadir, instead_of_incremental=instead
        )


# ---------------------------------------------------------------- binlog backups


class BinlogInfo(BaseModel):
    """One stored binlog, described by its event headers (``BinlogScan.info``)."""

    model_config = _STRICT

    file: str
    first_event_at: IsoTime | None
    last_event_at: IsoTime | None
    start_position: Position
    end_position: Position
    server_ids: list[int]
    #: the GTID state at the file's start (its Gtid_list event): "0-1-5,1-2-9", or ""
    gtid_state_before: str
    first_gtid: Gtid | None
    last_gtid: Gtid | None
    transactions: int
    size: Position


class BinlogDetails(BackupDetails):
    """The details of a ``binlog`` backup."""

    model_config = _STRICT

    server_id: int
    #: the binlog the server was writing (shipped backups; None in sealed ones)
    current_binlog: str | None = None
    binlogs: list[BinlogInfo]
    purged_before_shipping: list[str]
    #: "follow" for binlogs sealed by ``binlog follow``; None when shipped by a backup
    source: str | None = None


class IncrementalDetails(FullDetails):
    """The details of an ``incremental`` backup: everything a full records (the
    inventory, LSNs and binlog coordinates at its end) and the chain it extends."""

    model_config = _STRICT

    #: the backup it builds on (a full, or the previous incremental)
    parent: str
    parent_kind: str
    #: the full backup the chain starts from
    base: str
    #: its place in the chain: the base is 1, the first incremental 2, …
    chain_length: int = Field(ge=2)
    #: ``--incremental-lsn``: pages changed after this LSN (the parent's to_lsn) are in it
    incremental_lsn: int = Field(ge=0)
