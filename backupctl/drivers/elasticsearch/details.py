"""What an Elasticsearch snapshot backup records in its manifest's details.

Stored as JSON (``model_dump(mode="json")``): every field is written, ``None`` as null.
Manifests written by older versions of backupctl lack some of the optional fields; they
read as None (unknown), exactly like a null. ``snapshot``, ``repository`` and ``indices``
were written by every version and are required: a manifest without them, or with a value
of another JSON type than the one written (``indices`` a list, ``snapshot`` a number, a
count a string), is refused as tampered or corrupt (``SnapshotDetails.of``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backupctl.catalog.manifest import BackupDetails


class AliasProperties(BaseModel):
    """An alias of an index with every property Elasticsearch keeps for it."""

    model_config = ConfigDict(extra="allow", strict=True)

    filter: dict[str, Any] | None = None
    index_routing: str | None = None
    search_routing: str | None = None
    is_write_index: bool | None = None
    is_hidden: bool | None = None

    def action(self, index: str, alias: str) -> dict[str, Any]:
        """The ``add`` action of ``_aliases`` that gives ``index`` this alias, as it was."""
        fields = self.model_dump(exclude_none=True, include=set(AliasProperties.model_fields))
        return {"add": {"index": index, "alias": alias, **fields}}


class IndexEntry(BaseModel):
    """One index of the snapshot, as the cluster reported it around the snapshot.

    Every count is None when the index was not among the open indices at that moment
    (closed or hidden): nothing to compare a restore against."""

    model_config = ConfigDict(extra="allow", strict=True)

    docs: int | None = Field(None, description="documents before the snapshot ran")
    bytes: int | None = Field(None, description="primary store bytes before the snapshot ran")
    docs_after: int | None = Field(None, description="documents once the snapshot was done")
    aliases: dict[str, AliasProperties] | None = Field(
        None, description="its aliases when the snapshot started (None: not recorded)"
    )

    def expected_docs(self) -> tuple[int, int] | None:
        """The document count range recorded (before .. after the snapshot, in order),
        or None when no count was recorded."""
        if self.docs is None:
            return None
        after = self.docs if self.docs_after is None else self.docs_after
        return min(self.docs, after), max(self.docs, after)


class FeatureState(BaseModel):
    """A feature's state in the snapshot: its name and its system indices."""

    model_config = ConfigDict(extra="allow", strict=True)

    feature_name: str
    indices: list[str] = Field(default_factory=list)


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
    data_streams: list[str] | None = Field(
        None, description="data streams in the snapshot (their backing indices are in indices)"
    )
    feature_states: list[FeatureState] | None = Field(
        None, description="feature states in the snapshot (their system indices are in indices)"
    )
    counted_with: str | None = Field(
        None,
        description='"count": documents counted with _count (top-level documents); None: '
        "with _cat/indices docs.count (older versions; nested objects counted too)",
    )

    @property
    def system_indices(self) -> set[str]:
        """The indices that belong to a feature state (restored only through it)."""
        return {name for state in self.feature_states or [] for name in state.indices}
