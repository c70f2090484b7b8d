"""What a config-git manifest records about its commit, as a typed document.

``ConfigGitDetails.of(manifest)`` is the only way the driver reads a manifest: every
value has been checked before anything uses it. Above all the object ids: a manifest
is data from a repository someone else may write, and a "commit" such as
``--upload-pack=…`` or ``HEAD~1`` must never reach ``git`` as an option or a revision
expression, so commit and tree ids are refused unless they are 40 or 64 lowercase hex
digits (SHA-1 or SHA-256), as Git writes them.

Only the commit id is required. Every other field has a default (None: "not
recorded"), so a manifest missing it still reads: the readers fall back as they always
have (no summary: an empty note; no snapshot time: the manifest's finish time; no tree:
the tree check fails). The JSON is what ``_details`` always wrote: the same keys, None
as null, ``committed_at`` as ``datetime.isoformat()`` gives it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
)
from pydantic_core import PydanticCustomError

from backupctl.catalog.manifest import BackupDetails
from backupctl.storage.keys import BACKUP_ID_RE

#: a full object id (SHA-1 or SHA-256), as Git writes it and manifests record it
OBJECT_ID_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

#: a count: an integer as JSON has it (no "3", no true), never negative
Count = Annotated[int, Field(strict=True, ge=0)]


def is_object_id(value: str) -> bool:
    """True when ``value`` is a full Git object id (nothing else may reach ``git``)."""
    return OBJECT_ID_RE.fullmatch(value) is not None


class ChangeCounts(BaseModel):
    """How many paths the commit changed, added and removed (the lists keep at most 500)."""

    model_config = ConfigDict(extra="allow")

    changed: Count
    added: Count
    removed: Count


class ConfigGitDetails(BackupDetails):
    """The details of one ``commit`` backup: the commit, what changed, what was scanned."""

    summary: str = Field("", description="``commit 3fa9c1d2e4f5: 2 changed, …``: the note")
    commit: str = Field(description="the commit this backup made (full id)")
    parent: str | None = Field(None, description="the branch's commit before (None: the first)")
    compared_with: str | None = Field(
        None, description="the last recorded commit the changes are relative to"
    )
    tree: str | None = Field(None, description="the commit's tree, checked by verify")
    branch: str | None = None
    git_dir: str | None = None
    repository_action: str | None = Field(None, description='"created" or "existing"')
    committed_at: AwareDatetime | None = Field(
        None, description="when the files were scanned (the commit's date, whole seconds)"
    )
    counts: ChangeCounts | None = None
    changed: list[str] | None = None
    added: list[str] | None = None
    removed: list[str] | None = None
    files: Count | None = None
    links: Count | None = None
    directories: Count | None = None
    bytes: Count | None = None
    paths: list[str] | None = Field(None, description="the policy's paths at the time")
    missing: list[str] | None = None
    excluded: Count | None = None
    skipped: list[str] | None = None
    bundle_base: str | None = Field(
        None,
        description="the commit the backup's history.bundle starts from (None: the bundle "
        "holds the whole history, or the backup has none)",
    )
    bundle_base_backup: str | None = Field(
        None, description="the backup that recorded bundle_base: the next link of the chain"
    )

    @field_validator("bundle_base_backup")
    @classmethod
    def _backup_id(cls, value: str | None) -> str | None:
        if value is None or BACKUP_ID_RE.fullmatch(value):
            return value
        raise PydanticCustomError(
            "backup_id", "refusing backup id {value}: not a backup id", {"value": repr(value[:80])}
        )

    @field_validator("commit", "parent", "compared_with", "tree", "bundle_base")
    @classmethod
    def _object_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or is_object_id(value):
            return value
        shown = repr(value[:80] + ("…" if len(value) > 80 else ""))
        raise PydanticCustomError(
            "object_id",
            "refusing {kind} id {value}: not a Git object id (40 or 64 lowercase hex digits)",
            {"kind": "tree" if info.field_name == "tree" else "commit", "value": shown},
        )

    @field_serializer("committed_at", when_used="json")
    def _iso(self, value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None  # "+00:00", as always
