"""What an Elasticsearch snapshot backup records in its manifest's details.

Stored as JSON (``model_dump(mode="json")``): every field is written, ``None`` as null.
Manifests written by older versions of backupctl lack some of the optional fields; they
read as None (unknown), exactly like a null. ``snapshot``, ``repository`` and ``indices``
were written by every version and are required: a manifest without them, or with a value
of another JSON type than the one written (``indices`` a list, ``snapshot`` a number, a
count a string), is refused as tampered or corrupt (``SnapshotDetails.of``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from backupctl.catalog.manifest import BackupDetails


class IndexEntry(BaseModel):
    """One index of the snapshot, as the cluster reported it around the snapshot.

    Every count is None when the index was not among the open indices at that moment
    (closed or hidden): nothing to compare a restore against."""

    model_config = ConfigDict(extra="allow", strict=True)

    docs: int | None = Field(None, description="documents before the snapshot ran")
    bytes: int | None = Field(None, description="primary store bytes before the snapshot ran")
    docs_after: int | None = Field(None, description="documents once the snapshot was done")

    def expected_docs(self) -> tuple[int, int] | None:
        """The document count range recorded (before .. after the snapshot, in order),
        or None when no count was recorded."""
        if self.docs is None:
            return None
        after = self.docs if self.docs_after is None else self.docs_after
        return min(self.docs, after), max(self.docs, after)


class SnapshotDetails(BackupDetails):
    """The details of a ``snapshot`` backup: which snapshot of which cluster repository,
    how it ended, and the indices it holds."""

    #: values are taken as JSON wrote them: a count of "12" or true is refused, not coerced
    model_config = ConfigDict(extra="allow", strict=True)

    snapshot: str = Field(description="the snapshot's name in the cluster")
    uuid: str | None = Field(None, description="the snapshot's uuid in the cluster")
    repository: str = Field(description="the cluster's snapshot repository holding it")
    repository_action: str | None = Field(
        None, description="what the backup did to that repository: registered, updated, unchanged"
    )
    state: str | None = Field(None, description="SUCCESS, PARTIAL, FAILED or INCOMPATIBLE")
    shards: dict[str, int] | None = Field(None, description="total, failed, successful")
    include_global_state: bool | None = None
    snapshot_started_at: str | None = Field(None, description="as the cluster reported it")
    snapshot_finished_at: str | None = Field(None, description="as the cluster reported it")
    indices: dict[str, IndexEntry] = Field(description="index name -> what it held")
