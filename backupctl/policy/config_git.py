"""Options of the ``config-git`` driver (configuration files in Git history)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from backupctl.policy.common import PolicyBase, StrictModel
from backupctl.policy.types import Schedule


class ConfigGitSchedule(StrictModel):
    check: Schedule | None = None


class ConfigGitPolicy(PolicyBase):
    driver: Literal["config-git"]
    paths: list[Path] = Field(min_length=1)
    schedule: ConfigGitSchedule = ConfigGitSchedule()

    @field_validator("paths")
    @classmethod
    def _absolute(cls, value: list[Path]) -> list[Path]:
        for path in value:
            if not path.is_absolute():
                raise ValueError(f"paths must be absolute, got {str(path)!r}")
        return value
