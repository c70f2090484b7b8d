"""Options of the ``config-git`` driver (configuration files in Git history)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from backupctl.policy.common import PolicyBase, ScheduleBase
from backupctl.policy.types import Schedule
from backupctl.storage.spec import RepositorySpec

#: Inside the bare Git repository, where backupctl keeps its manifests (Git ignores it).
MANIFEST_DIR = "backupctl"


class ConfigGitSchedule(ScheduleBase):
    backup_kinds: ClassVar[dict[str, str]] = {"check": "commit"}

    check: Schedule | None = None


class ConfigGitPolicy(PolicyBase):
    driver: Literal["config-git"]
    paths: list[Path] = Field(min_length=1, description="absolute files or directories")
    exclude: list[str] = Field(
        default_factory=list,
        description=(
            "glob patterns never committed: without a '/' they match a file or directory "
            'name ("*.key"), with one the absolute path ("/etc/mysql/debian.cnf")'
        ),
    )
    schedule: ConfigGitSchedule = ConfigGitSchedule()

    @field_validator("paths")
    @classmethod
    def _absolute(cls, value: list[Path]) -> list[Path]:
        for path in value:
            if not path.is_absolute():
                raise ValueError(f"paths must be absolute, got {str(path)!r}")
        return value

    @field_validator("exclude")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.strip():
                raise ValueError("exclude patterns must not be empty")
            if "/" in pattern and not pattern.startswith("/"):
                raise ValueError(
                    f"an exclude pattern with a '/' matches absolute paths and must start "
                    f"with '/', got {pattern!r}"
                )
        return value

    @field_validator("repository")
    @classmethod
    def _local_git(cls, value: RepositorySpec) -> RepositorySpec:
        if value.scheme != "file":
            raise ValueError(
                "config-git keeps history in a bare Git repository on a local or mounted "
                f"filesystem: use file:///var/backups/config-history.git, got {value.url!r}"
            )
        if value.encryption is not None:
            raise ValueError(
                "config-git cannot encrypt: Git writes its objects itself (encrypt the "
                "filesystem instead, or leave out encryption)"
            )
        return value

    @property
    def git_dir(self) -> Path:
        """The bare Git repository holding the history."""
        return Path(self.repository.location)

    @property
    def manifest_repository(self) -> RepositorySpec:
        """Manifests live in the Git directory's ``backupctl/`` subdirectory."""
        return RepositorySpec(url=f"file://{self.git_dir / MANIFEST_DIR}")
