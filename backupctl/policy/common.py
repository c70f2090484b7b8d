"""The fields every policy shares, whatever its driver."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from backupctl.cron.expressions import validate_timezone
from backupctl.offline import offline
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


def _checked_name(value: str, what: str) -> str:
    """``value`` when it is a valid name of a ``what`` (a policy, a repository)."""
    if not NAME_RE.match(value):
        raise ValueError(
            f"{what} names are 1-63 lowercase letters, digits, '-' or '_', got {value!r}"
        )
    return value


class NamedRepository(RepositorySpec):
    """One of a policy's ``repositories``: where it is, what it is called, and what it
    keeps when that differs from the policy's retention."""

    name: str = Field(description="how `copy --to`, `restore --from`, list and status name it")
    retention: dict[str, Any] = Field(
        {},
        description="this repository's retention: the fields of the policy's `retention` "
        "that differ here (e.g. {full: 7d} on a local disk, 30 days off-site)",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _checked_name(value, "repository")

    def spec(self) -> RepositorySpec:
        """The repository itself, without its name and retention. The host was checked
        when the policy was loaded (its key file was there); opening the repository reads
        the key again, and says so if it went away."""
        with offline():
            return RepositorySpec.model_validate(self.model_dump(exclude={"name", "retention"}))


#: what a policy with the single ``repository:`` form calls it
PRIMARY = "primary"


class PolicyBase(StrictModel):
    """Fields common to every driver. Subclasses add one options model per driver, and
    name the model of their restore options in ``restore_options``."""

    restore_options: ClassVar[type[RestoreOptions]] = RestoreOptions

    version: Literal[1] = Field(description="policy format version")
    name: str = Field(description="policy name: lowercase letters, digits, '-' and '_'")
    driver: str
    repository: RepositorySpec = Field(
        description="where backups are written (with `repositories:`, the first of them)"
    )
    repositories: list[NamedRepository] = Field(
        [],
        description="instead of `repository`: several, each named; backups are written to "
        "the first and copied to the others (`backupctl copy`, after every backup by default)",
    )
    copy_after_backup: bool = Field(
        True,
        description="every successful backup is copied to the policy's other repositories "
        "before retention runs; `backup --no-copy` skips it once",
    )
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
        return _checked_name(value, "policy")

    @model_validator(mode="before")
    @classmethod
    def _first_repository(cls, data: Any) -> Any:
        """``repositories:`` instead of ``repository:``: backups go to the first one."""
        if not isinstance(data, dict) or "repositories" not in data:
            return data
        if "repository" in data:
            raise ValueError("give either repository or repositories, not both")
        listed = data["repositories"]
        if not isinstance(listed, list) or not listed:
            raise ValueError("repositories: a list of at least one repository")
        first = listed[0]
        if isinstance(first, dict):
            data = {
                **data,
                "repository": {k: v for k, v in first.items() if k not in ("name", "retention")},
            }
        return data

    @model_validator(mode="after")
    def _repositories_valid(self) -> Self:
        names = [repo.name for repo in self.repositories]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"repositories: names must differ, {', '.join(duplicates)} repeats")
        urls = [repo.url.rstrip("/") for repo in self.repositories]
        if len(set(urls)) != len(urls):
            raise ValueError("repositories: two entries have the same url")
        # copies take every object the manifests of ``manifest_repository`` record (for
        # config-git, each commit's history bundle); a driver's own rules say the rest
        for repo in self.repositories:
            if repo.retention:
                self.retention_of(repo.name)  # raises ValueError naming the field
        return self

    @property
    def repository_names(self) -> list[str]:
        """The names of the policy's repositories, the one backups are written to first."""
        return [repo.name for repo in self.repositories] or [PRIMARY]

    @property
    def copies(self) -> list[NamedRepository]:
        """The repositories backups are copied to (every one but the first)."""
        return self.repositories[1:]

    def repository_named(self, name: str) -> RepositorySpec:
        """The repository called ``name``. Raises KeyError."""
        for repo in self.repositories:
            if repo.name == name:
                return repo.spec()
        if not self.repositories and name == PRIMARY:
            return self.repository
        raise KeyError(name)

    def retention_of(self, name: str) -> Any:
        """The retention of repository ``name``: the policy's, with that repository's
        fields over it (None: the driver keeps everything). Raises ValueError when they do
        not make a valid retention."""
        base = getattr(self, "retention", None)
        override = next((r.retention for r in self.repositories if r.name == name), {})
        if not override:
            return base
        if not isinstance(base, BaseModel):
            raise ValueError(f"repositories: {name}: a {self.driver} policy has no retention")
        try:
            return type(base).model_validate({**base.model_dump(exclude_unset=True), **override})
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            message = str(problem["msg"]).removeprefix("Value error, ")
            raise ValueError(
                f"repositories: {name}: retention{'.' + where if where else ''}: {message}"
            ) from None

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
