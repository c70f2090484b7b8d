"""The fields every policy shares, whatever its driver."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from backupctl.cron.expressions import validate_timezone
from backupctl.policy.options import RestoreOptions
from backupctl.policy.types import (
    Duration,
    Schedule,
    check_env_set,
    check_secret_file,
    resolve_secret,
)
from backupctl.storage.keys import NAME_RE
from backupctl.storage.spec import RepositorySpec


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must never silently become a default."""

    model_config = ConfigDict(extra="forbid")


class Objectives(StrictModel):
    rpo: Duration | None = Field(None, description="recovery point objective")
    rto: Duration | None = Field(None, description="recovery time objective")


class DrillSpec(StrictModel):
    """When the recovery drill runs and which backup it restores."""

    schedule: Schedule | None = Field(
        "quarterly",
        description="when run-due and the scheduler drill this policy (null: never); read in "
        "the schedule block's timezone",
    )
    select: Literal["latest", "random"] = Field(
        "latest",
        description="latest: the newest restorable backup; random: any restorable backup "
        "finished within `window` (a MariaDB drill still replays the binlogs to the newest point)",
    )
    window: Duration | None = Field(
        None, description="how far back `select: random` may reach (default: every kept backup)"
    )


TimeZoneName = Annotated[str, AfterValidator(validate_timezone)]

#: run outcomes a notification can be sent for
NotifyOn = Literal["failure", "success", "unchanged", "skipped"]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.username or parts.password:  # checked first: never echo them
        raise ValueError("put credentials in token_file or token_env, not in the URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value


class NotifyTarget(StrictModel):
    """A webhook told about runs: AlertManager's ``/api/v2/alerts`` or any JSON receiver."""

    url: Annotated[str, AfterValidator(_http_url)] = Field(
        description="where to POST", examples=["http://alertmanager:9093/api/v2/alerts"]
    )
    format: Literal["webhook", "alertmanager"] = Field(
        "webhook",
        description="webhook: the run event as JSON; alertmanager: a list of alerts "
        "(a failure fires BackupctlRunFailed, a later success resolves it)",
    )
    when: list[NotifyOn] = Field(
        ["failure"], min_length=1, description="which run outcomes are sent"
    )
    token_file: Path | None = Field(None, description="file holding a bearer token")
    token_env: str | None = Field(None, description="environment variable holding one")
    timeout: Duration = Field(timedelta(seconds=10), description="per attempt")
    attempts: int = Field(3, ge=1, le=10, description="tries in all, with backoff between")

    @field_validator("token_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None:
            check_secret_file(value)
        return value

    @field_validator("token_env")
    @classmethod
    def _env_is_set(cls, value: str | None) -> str | None:
        check_env_set(value)
        return value

    def token(self) -> str | None:
        """The bearer token from its source, or None. Raises SecretError."""
        return resolve_secret(None, self.token_file, self.token_env)


class ScheduleBase(StrictModel):
    """Base of each driver's ``schedule:`` block.

    Subclasses declare one optional expression field per schedule key and map each key
    to the backup kind it runs in ``backup_kinds`` (e.g. model ``check`` -> ``version``).
    """

    #: schedule key -> backup kind (``backup POLICY --type KIND``)
    backup_kinds: ClassVar[dict[str, str]] = {}

    timezone: TimeZoneName | None = Field(
        None,
        description="IANA timezone the expressions are read in (default: the host's local time)",
        examples=["Europe/Berlin", "UTC"],
    )

    def entries(self) -> Iterator[tuple[str, str, str]]:
        """Yield ``(schedule key, backup kind, expression)`` for every key that is set."""
        for key, kind in self.backup_kinds.items():
            expression = getattr(self, key)
            if expression is not None:
                yield key, kind, expression


class PolicyBase(StrictModel):
    """Fields common to every driver. Subclasses add one options model per driver, and
    name the model of their restore options in ``restore_options``."""

    restore_options: ClassVar[type[RestoreOptions]] = RestoreOptions

    version: Literal[1] = Field(description="policy format version")
    name: str = Field(description="policy name: lowercase letters, digits, '-' and '_'")
    driver: str
    repository: RepositorySpec
    objectives: Objectives = Objectives()
    drill: DrillSpec = DrillSpec()
    schedule: ScheduleBase = ScheduleBase()
    prune_after_backup: bool = Field(
        True,
        description="every successful backup (backup, run-due, the scheduler, generated "
        "units and cron lines) is followed by the policy's retention; `backup --no-prune` "
        "skips it once",
    )
    notify: list[NotifyTarget] = Field(
        [], description="webhooks told about this policy's runs (failures by default)"
    )

    _source: Path | None = PrivateAttr(None)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(
                f"policy names are 1-63 lowercase letters, digits, '-' or '_', got {value!r}"
            )
        return value

    @property
    def source(self) -> Path | None:
        """The file this policy was loaded from, if any."""
        return self._source

    @property
    def live_data(self) -> Path | None:
        """What an in-place restore of this policy replaces (a datadir, a model
        directory), when it is a directory on this host."""
        return None

    @property
    def keep_aside(self) -> timedelta | None:
        """How long the data an in-place restore moved aside is kept (None: until removed
        by hand, or nothing is moved aside)."""
        return None

    @property
    def manifest_repository(self) -> RepositorySpec:
        """Where backupctl keeps this policy's manifests: its ``repository``, unless the
        driver's repository is something else (config-git: inside its Git repository)."""
        return self.repository

    def resolve_hook(self, command: str) -> Path:
        """Return the path of a hook script; relative paths resolve beside ``policies/``."""
        path = Path(command)
        if path.is_absolute() or self._source is None:
            return path
        return (self._source.resolve().parent.parent / path).resolve()
