"""Options of the ``config-git`` driver (configuration files in Git history)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from backupctl.policy.common import PolicyBase, ScheduleBase
from backupctl.policy.options import RestoreOptions, option
from backupctl.policy.types import Schedule
from backupctl.storage.spec import RepositorySpec

#: Inside the bare Git repository, where backupctl keeps its manifests (Git ignores it).
MANIFEST_DIR = "backupctl"


class ConfigGitSchedule(ScheduleBase):
    backup_kinds: ClassVar[dict[str, str]] = {"check": "commit"}

    check: Schedule | None = None


class ConfigGitRestoreOptions(RestoreOptions):
    """A config-history restore: the files of one commit, written into an empty directory
    (never over the live files)."""

    at: str | None = option(
        "--at",
        "config-git: the commit (or backup id), or a time (local unless it has an offset): "
        "the newest commit at or before it.",
    )
    target_dir: Path | None = option(
        "--target-dir", "config-git: write the files into this new or empty directory."
    )
    path: Path | None = option(
        "--path", "config-git: restore only this file or directory (absolute)."
    )

    @field_validator("target_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.resolve() if value is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> ConfigGitRestoreOptions:
        if self.at is not None and self.backup_id is not None:
            raise ValueError("give --at, or BACKUP_ID / --to-time / --to-gtid, not both")
        if (self.target_dir or self.path) and self.at is None:
            raise ValueError(
                "--target-dir and --path go with --at TIME|COMMIT (config-git restores; "
                "--at also takes a backup id)"
            )
        return self

    @property
    def in_place(self) -> bool:
        return False  # config-git restores never write over the live files

    def target(self) -> Path | None:
        return self.target_dir

    def where(self) -> str:
        return f"into {self.target_dir} (live files untouched)"


class ConfigGitPolicy(PolicyBase):
    restore_options: ClassVar[type[RestoreOptions]] = ConfigGitRestoreOptions
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
        """The repository (with ``repositories:``, the first) is the Git directory itself."""
        if value.scheme != "file":
            raise ValueError(
                "config-git keeps history in a bare Git repository on a local or mounted "
                f"filesystem: use file:///var/backups/config-history.git, got {value.url!r} "
                "(with repositories:, the first one; the copies after it may be s3://)"
            )
        if value.encryption is not None:
            raise ValueError(
                "config-git cannot encrypt: Git writes its objects itself (encrypt the "
                "filesystem instead, or leave out encryption; copies under repositories: "
                "may have encryption:)"
            )
        return value

    @model_validator(mode="after")
    def _copies_outside(self) -> ConfigGitPolicy:
        """Copies (``repositories:`` after the first) may be file:// or s3://, encrypted or
        not: they hold the manifests and each commit's history bundle, not the Git
        directory. A file:// copy inside the Git directory would copy it into itself."""
        for copy in self.copies:
            spec = copy.spec()
            if spec.scheme == "file" and Path(spec.location).is_relative_to(self.git_dir):
                raise ValueError(
                    f"repositories: {copy.name}: {spec.url} is inside the Git repository "
                    f"{self.git_dir}; a copy goes elsewhere (another disk, s3://…)"
                )
        return self

    @property
    def git_dir(self) -> Path:
        """The bare Git repository holding the history."""
        return Path(self.repository.location)

    @property
    def manifest_repository(self) -> RepositorySpec:
        """Manifests live in the Git directory's ``backupctl/`` subdirectory."""
        return RepositorySpec(url=f"file://{self.git_dir / MANIFEST_DIR}")
