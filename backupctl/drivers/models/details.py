"""What a model ``version`` backup records in its manifest's details."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from backupctl.catalog.manifest import BackupDetails, Manifest
from backupctl.errors import VerificationFailed


class ModelDetails(BackupDetails):
    """One stored version of a model directory.

    ``version``, ``tree_hash`` and ``entries`` are what a restore needs: a manifest without
    them is refused. The rest describes the version for people (listings, plans); a
    manifest that lacks it reads with ``None`` ("not recorded"), never a made-up number.

    ``entries`` stays the JSON the driver wrote (``Entry.to_dict`` each): the list is
    checked here, each entry by ``tree.safe_entries`` when it is used (``steps.entries_of``),
    which refuses, naming the entry, any that would reach outside the model directory.
    """

    # values are taken as written: "12" is not a file count, 3 is not a version
    model_config = ConfigDict(strict=True)

    version: str = Field(min_length=1, description="the version file's first line, or 16 hex")
    version_from: str | None = Field(None, description='the version file, or "content-hash"')
    path: str | None = Field(None, description="the model directory backed up")
    tree_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 over every entry")
    files: int | None = Field(None, ge=0)
    bytes: int | None = Field(None, ge=0, description="the files' total size")
    new_bytes: int | None = Field(None, ge=0, description="size of the files first stored")
    new_stored_bytes: int | None = Field(None, ge=0, description="their size once compressed")
    entries: list[Any] = Field(description="files, directories, symlinks (Entry.to_dict)")

    @classmethod
    def readable(cls, manifest: Manifest) -> ModelDetails | None:
        """The details, or None when they do not fit (for names and listings, which must
        not fail because one stored manifest is corrupt: using that backup still does)."""
        try:
            return cls.of(manifest)
        except VerificationFailed:
            return None
