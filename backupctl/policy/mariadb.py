"""Options of the ``mariadb`` driver."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from backupctl.offline import host_checks
from backupctl.policy.common import PolicyBase, ScheduleBase, StrictModel
from backupctl.policy.options import Moment, RestoreOptions, option
from backupctl.policy.types import Duration, PasswordSource, Schedule, ScheduleOrContinuous

EXPECT_RE = re.compile(r"^\s*(==|=|!=|>=|<=|>|<)\s*(.+?)\s*$")
GTID_RE = re.compile(r"^\d+-\d+-\d+$")


class MariaDBConnection(PasswordSource):
    """How to reach the server: host + port, or a unix socket."""

    host: str | None = None
    port: int = Field(3306, ge=1, le=65535)
    socket: Path | None = None
    user: str = "root"
    connect_timeout: int = Field(10, ge=1, le=600, description="seconds")
    ssl_ca: Path | None = Field(None, description="TLS: CA certificate (PEM) of the server")
    ssl_cert: Path | None = Field(None, description="TLS: client certificate (PEM), with ssl_key")
    ssl_key: Path | None = Field(None, description="TLS: client private key (PEM), with ssl_cert")
    ssl_verify_server_cert: bool = Field(
        True,
        description="TLS: the server certificate must be signed by ssl_ca and name the host "
        "connected to; false: no host name check (the chain is still checked against ssl_ca "
        "when given)",
    )

    @model_validator(mode="after")
    def _host_or_socket(self) -> MariaDBConnection:
        if self.host is None and self.socket is None:
            raise ValueError("give either host (and port) or socket")
        if self.host is not None and self.socket is not None:
            raise ValueError("give either host or socket, not both")
        return self

    @model_validator(mode="after")
    def _tls(self) -> MariaDBConnection:
        for name in ("ssl_ca", "ssl_cert", "ssl_key"):
            path = getattr(self, name)
            if path is None or not host_checks():
                continue
            if not (path.is_file() and os.access(path, os.R_OK)):
                problem = "is not a readable file" if path.exists() else "does not exist"
                raise ValueError(f"{name}: file {path} {problem}")
        if (self.ssl_cert is None) != (self.ssl_key is None):
            raise ValueError("ssl_cert and ssl_key go together (mutual TLS)")
        if self.tls and self.ssl_verify_server_cert and self.ssl_ca is None:
            raise ValueError(
                "ssl_verify_server_cert needs ssl_ca, the CA that signed the server's "
                "certificate (or set ssl_verify_server_cert: false)"
            )
        if not self.tls and "ssl_verify_server_cert" in self.model_fields_set:
            raise ValueError("ssl_verify_server_cert applies only with ssl_ca or ssl_cert/ssl_key")
        return self

    @property
    def tls(self) -> bool:
        """True when connections use TLS (ssl_ca or a client certificate is given)."""
        return self.ssl_ca is not None or self.ssl_cert is not None


class MariaDBSchedule(ScheduleBase):
    backup_kinds: ClassVar[dict[str, str]] = {
        "full": "full",
        "incremental": "incremental",
        "binlog": "binlog",
    }

    full: Schedule | None = None
    incremental: Schedule | None = Field(
        None, description="incremental physical backups (mariabackup --incremental-lsn)"
    )
    binlog: ScheduleOrContinuous | None = None

    @model_validator(mode="after")
    def _incrementals_need_fulls(self) -> MariaDBSchedule:
        if self.incremental is not None and self.full is None:
            raise ValueError(
                "an incremental schedule needs a full one: incrementals chain onto full "
                "backups (e.g. full weekly, incremental on the other days)"
            )
        return self


class MariaDBRetention(StrictModel):
    full: Duration | None = Field(None, description="fulls go after this, with their chains")
    incremental: Duration | None = Field(
        None, description="incrementals go after this (never one a kept backup builds on)"
    )
    binlog: Duration | None = None


#: how deeply a restored server is checked (see MariaDBRestore.verify_level)
VerifyLevel = Literal["quick", "standard", "full"]


class SqlCheck(StrictModel):
    """A verification query: its single value must satisfy ``expect`` (e.g. "> 0")."""

    sql: str
    expect: str = Field(description='a comparison like "> 0", "= 42" or "!= 0"')

    @field_validator("expect")
    @classmethod
    def _valid_expect(cls, value: str) -> str:
        if not EXPECT_RE.match(value):
            raise ValueError(f'expected a comparison like "> 0" or "= 42", got {value!r}')
        return value


class MariaDBRestore(StrictModel):
    stop: list[str] = Field(default_factory=list, description="hooks that stop the services")
    start: list[str] = Field(default_factory=list, description="hooks that start them again")
    verify: list[SqlCheck] = Field(default_factory=list)
    hook_timeout: Duration = Field("10m", validate_default=True)
    health_timeout: Duration = Field(
        "2m", validate_default=True, description="how long the restarted server may take to answer"
    )
    recovery_buffer_pool: str = Field(
        "512M", pattern=r"^\d+[KMG]$", description="InnoDB buffer pool of the recovery instance"
    )
    check_parallel: int = Field(
        0,
        ge=0,
        le=32,
        description="connections that check and count tables at once (0 = one per CPU, up to 8)",
    )
    verify_level: VerifyLevel = Field(
        "standard",
        description="how deeply a restore checks the restored server before it is started: "
        "quick (tables and row estimates against the manifest, the SQL assertions), standard "
        "(plus CHECK TABLE ... QUICK on every table), full (CHECK TABLE ... EXTENDED and exact "
        "row counts); `restore --verify-level` overrides it",
    )
    drill_verify_level: VerifyLevel = Field(
        "full", description="the same for recovery drills, where time matters less than depth"
    )
    keep_aside: Duration = Field(
        "7d",
        validate_default=True,
        description="how long the datadir moved aside by a successful restore is kept",
    )

    @property
    def check_connections(self) -> int:
        """``check_parallel``, with 0 resolved to this host's CPUs (at most 8)."""
        return self.check_parallel or min(os.cpu_count() or 1, 8)


class MariaDBBackupOptions(StrictModel):
    compression_level: int = Field(3, ge=1, le=19, description="zstd level")
    compression_threads: int = Field(0, ge=0, le=64, description="0 = one per CPU")
    parallel: int = Field(1, ge=1, le=64, description="mariabackup --parallel")
    mariabackup: str = Field("mariabackup", description="path of the mariabackup binary")
    prepare_memory: str | None = Field(
        None,
        pattern=r"^\d+[KMG]$",
        description="mariabackup --prepare --use-memory, e.g. 8G (default: a quarter of the "
        "memory available when the prepare starts, from 256M to 16G)",
    )
    binlog_flush_interval: Duration = Field(
        "2s",
        validate_default=True,
        description="binlog follow: how often new events are stored in the repository",
    )
    binlog_rotate_interval: Duration = Field(
        "1h",
        validate_default=True,
        description="binlog follow: FLUSH BINARY LOGS this often, so binlogs get sealed",
    )
    max_chain: int | None = Field(
        None,
        ge=2,
        description="the most links a chain may have (the full included): past it, an "
        "incremental backup takes a full instead",
    )


class MariaDBRestoreOptions(RestoreOptions):
    """A MariaDB restore: in place or into a directory, to a backup or a point in time."""

    target_datadir: Path | None = option(
        "--target-datadir", "Restore into this (empty) directory; the live server is not touched."
    )
    to_time: Moment | None = option(
        "--to-time",
        'Point in time, e.g. "2026-11-21 14:02:00" (local time unless it has an offset).',
    )
    to_gtid: str | None = option("--to-gtid", "Replay up to and including this GTID, e.g. 0-1-42.")
    verify_level: VerifyLevel | None = option(
        "--verify-level",
        "quick, standard or full: how deeply the restored server is checked before it is "
        "started (default: the policy's restore.verify_level).",
    )

    @field_validator("to_gtid")
    @classmethod
    def _gtid(cls, value: str | None) -> str | None:
        if value is not None and not GTID_RE.match(value):
            raise ValueError(f"expected a GTID like 0-1-42 (domain-server-sequence), got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> MariaDBRestoreOptions:
        if self.to_time is not None and self.to_gtid is not None:
            raise ValueError("give --to-time or --to-gtid, not both")
        return self

    @property
    def in_place(self) -> bool:
        return self.target_datadir is None

    @property
    def to_point(self) -> bool:
        """True for a point-in-time restore (binlogs replayed to a time or a GTID)."""
        return self.to_time is not None or self.to_gtid is not None

    def target(self) -> Path | None:
        return self.target_datadir

    def where(self) -> str:
        if self.target_datadir is None:
            return super().where()
        return f"into {self.target_datadir} (live server untouched)"


class MariaDBPolicy(PolicyBase):
    """A MariaDB server protected by mariabackup full backups (and binlogs)."""

    restore_options: ClassVar[type[RestoreOptions]] = MariaDBRestoreOptions

    driver: Literal["mariadb"]
    connection: MariaDBConnection
    datadir: Path
    schedule: MariaDBSchedule = MariaDBSchedule()
    retention: MariaDBRetention = MariaDBRetention()
    restore: MariaDBRestore = MariaDBRestore()
    backup: MariaDBBackupOptions = MariaDBBackupOptions()

    @property
    def live_data(self) -> Path:
        return self.datadir

    @property
    def keep_aside(self) -> timedelta:
        return self.restore.keep_aside

    @field_validator("datadir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"datadir must be an absolute path, got {str(value)!r}")
        return value
