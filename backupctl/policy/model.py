"""Options of the ``model`` driver (versioned copies of AI model directories)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from backupctl.policy.common import PolicyBase, ScheduleBase, StrictModel
from backupctl.policy.options import RestoreOptions, option
from backupctl.policy.types import Duration, Schedule


class ModelSchedule(ScheduleBase):
    backup_kinds: ClassVar[dict[str, str]] = {"check": "version"}

    check: Schedule | None = None


class ModelRetention(StrictModel):
    keep_versions: int = Field(5, ge=1)


class ModelRestore(StrictModel):
    verify: list[str] = Field(default_factory=list)
    perf_test: list[str] = Field(default_factory=list)
    start: list[str] = Field(default_factory=list)
    hook_timeout: Duration = Field("30m", validate_default=True)


class ModelBackupOptions(StrictModel):
    compression_level: int = Field(
        1, ge=1, le=19, description="zstd level (weights compress little)"
    )
    parallel: int = Field(4, ge=1, le=64, description="files stored at once")


class ModelRestoreOptions(RestoreOptions):
    """A model rollback: a stored version (BACKUP_ID: its version or backup id), or the
    one before the version served now."""

    previous: bool = option(
        "--previous", "model: the version stored before the one served now (a rollback).", False
    )

    @model_validator(mode="after")
    def _previous_alone(self) -> ModelRestoreOptions:
        if self.previous and self.backup_id is not None:
            raise ValueError("--previous picks the backup itself: give no BACKUP_ID or time")
        return self


class ModelPolicy(PolicyBase):
    restore_options: ClassVar[type[RestoreOptions]] = ModelRestoreOptions
    driver: Literal["model"]
    path: Path
    version_from: str = Field(
        "content-hash", description='a file in the directory, or "content-hash"'
    )
    schedule: ModelSchedule = ModelSchedule()
    retention: ModelRetention = ModelRetention()
    restore: ModelRestore = ModelRestore()
    backup: ModelBackupOptions = ModelBackupOptions()

    @property
    def live_data(self) -> Path:
        return self.path

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"path must be absolute, got {str(value)!r}")
        return value
