"""The fields every policy shares, whatever its driver."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from backupctl.policy.types import Duration, Schedule
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


class PolicyBase(StrictModel):
    """Fields common to every driver. Subclasses add one options model per driver."""

    version: Literal[1] = Field(description="policy format version")
    name: str = Field(description="policy name: lowercase letters, digits, '-' and '_'")
    driver: str
    repository: RepositorySpec
    objectives: Objectives = Objectives()
    drill: DrillSpec = DrillSpec()

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
