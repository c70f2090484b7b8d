"""The fields every policy shares, whatever its driver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from backupctl.policy.types import Duration, Schedule
from backupctl.scheduling.expressions import validate_timezone
from backupctl.storage.keys import NAME_RE
from backupctl.storage.spec import RepositorySpec


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must never silently become a default."""

    model_config = ConfigDict(extra="forbid")


class Objectives(StrictModel):
    rpo: Duration | None = Field(None, description="recovery point objective")
    rto: Duration | None = Field(None, description="recovery time objective")


class DrillSpec(StrictModel):
    schedule: Schedule = "quarterly"
    select: Literal["latest", "random"] = "latest"


TimeZoneName = Annotated[str, AfterValidator(validate_timezone)]


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
    """Fields common to every driver. Subclasses add one options model per driver."""

    version: Literal[1] = Field(description="policy format version")
    name: str = Field(description="policy name: lowercase letters, digits, '-' and '_'")
    driver: str
    repository: RepositorySpec
    objectives: Objectives = Objectives()
    drill: DrillSpec = DrillSpec()
    schedule: ScheduleBase = ScheduleBase()
    prune_after_backup: bool = Field(
        True, description="scheduled runs apply retention after each successful backup"
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
