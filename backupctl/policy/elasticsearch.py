"""Options of the ``elasticsearch`` driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, HttpUrl, SecretStr, model_validator

from backupctl.offline import host_checks
from backupctl.policy.common import PolicyBase, ScheduleBase, StrictModel
from backupctl.policy.options import NameList, RestoreOptions, option
from backupctl.policy.types import Duration, PasswordSource, Schedule, check_secret_file


class ElasticsearchConnection(PasswordSource):
    url: HttpUrl
    username: str | None = None
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    api_key_env: str | None = None
    ca_certs: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    timeout: Duration = Field("30s", validate_default=True)

    @model_validator(mode="after")
    def _auth(self) -> ElasticsearchConnection:
        if self.api_key_file is not None:
            check_secret_file(self.api_key_file)
        for name in ("ca_certs", "client_cert", "client_key"):
            path = getattr(self, name)
            if path is not None and host_checks() and not path.is_file():
                raise ValueError(f"{name}: file {path} does not exist")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together (mutual TLS)")
        return self


class SnapshotRepository(StrictModel):
    name: str
    type: str = "fs"
    settings: dict[str, Any] = Field(default_factory=dict)


class ElasticsearchSchedule(ScheduleBase):
    backup_kinds: ClassVar[dict[str, str]] = {"snapshot": "snapshot"}

    snapshot: Schedule | None = None


class ElasticsearchRetention(StrictModel):
    expire_after: Duration | None = None
    min_count: int | None = Field(None, ge=0)
    max_count: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _counts(self) -> ElasticsearchRetention:
        low, high = self.min_count, self.max_count
        if low is not None and high is not None and low > high:
            raise ValueError("min_count must not exceed max_count")
        return self


class IndexCheck(StrictModel):
    index: str
    min_docs: int = Field(0, ge=0)


class ElasticsearchRestore(StrictModel):
    mode: Literal["replace", "rename"] = Field(
        "replace",
        description="replace: close the existing indices and restore over them; "
        "rename: restore beside them under new names",
    )
    delete_existing: bool = Field(
        False, description="replace mode: delete the existing indices instead of closing them"
    )
    rename_pattern: str = Field("(.+)", description="rename mode: regex over index names")
    rename_replacement: str = Field(
        "restored-$1", description="rename mode: replacement ($1 = first group)"
    )
    switch_aliases: bool = Field(
        False, description="rename mode: move the originals' aliases to the restored indices"
    )
    include_aliases: bool = Field(
        True,
        description="replace mode: restore the indices' aliases as the snapshot has them (a "
        "write alias that rolled over since is refused before anything changes)",
    )
    feature_states: list[str] = Field(
        default_factory=list,
        description="feature states to restore with their system indices (e.g. [security]); "
        "none by default: system indices are left as they are",
    )
    wait_for: Literal["green", "yellow"] = Field(
        "yellow", description="health the restored indices must reach (yellow: all primaries)"
    )
    recovery_timeout: Duration = Field("1h", validate_default=True)
    stop: list[str] = Field(default_factory=list, description="hooks that stop the services")
    start: list[str] = Field(default_factory=list, description="hooks that start them again")
    hook_timeout: Duration = Field("10m", validate_default=True)
    verify: list[IndexCheck] = Field(default_factory=list)


class ElasticsearchRestoreOptions(RestoreOptions):
    """An Elasticsearch restore: a snapshot (BACKUP_ID: its backup id or snapshot name),
    all of its indices or some."""

    indices: NameList | None = option(
        "--indices", "Elasticsearch: restore only these indices (comma-separated patterns)."
    )


class ElasticsearchPolicy(PolicyBase):
    restore_options: ClassVar[type[RestoreOptions]] = ElasticsearchRestoreOptions
    driver: Literal["elasticsearch"]
    connection: ElasticsearchConnection
    snapshot_repository: SnapshotRepository
    indices: list[str] = Field(default_factory=lambda: ["*"])
    include_global_state: bool = False
    snapshot_timeout: Duration = Field(
        "4h", validate_default=True, description="a snapshot running longer is aborted"
    )
    schedule: ElasticsearchSchedule = ElasticsearchSchedule()
    retention: ElasticsearchRetention = ElasticsearchRetention()
    restore: ElasticsearchRestore = ElasticsearchRestore()

    @model_validator(mode="after")
    def _copies_follow_the_snapshots(self) -> ElasticsearchPolicy:
        """A copy of an Elasticsearch backup is its manifest: the snapshot's data is in the
        cluster's snapshot repository, which the first repository's retention prunes. A
        copy kept longer would list snapshots that are gone."""
        for copy in self.copies:
            if copy.retention:
                raise ValueError(
                    f"repositories: {copy.name}: retention: an Elasticsearch copy holds the "
                    "manifests only (the snapshots are in the cluster's snapshot repository, "
                    "pruned by the policy's retention): give it no retention of its own; to "
                    "keep snapshots off-site longer, use an s3 snapshot repository with its "
                    "own lifecycle"
                )
        return self
