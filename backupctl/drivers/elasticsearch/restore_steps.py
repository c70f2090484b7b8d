"""Restore runbook steps for Elasticsearch snapshots.

replace mode: close (or delete) the target indices, delete the target data streams when
the policy says so, restore over them. rename mode: restore beside the originals, which
are never touched. The restore names indices and data streams (never a data stream's
backing indices, never a system index: those come back only with their feature state,
when the policy lists it).
"""

from __future__ import annotations

import time
from typing import Any

from elasticsearch import Elasticsearch

from backupctl.catalog.manifest import Manifest
from backupctl.drivers.elasticsearch import inventory
from backupctl.drivers.elasticsearch.client import (
    AnswerLost,
    ElasticsearchError,
    body,
    call,
    chunks,
)
from backupctl.drivers.elasticsearch.details import SnapshotDetails
from backupctl.drivers.elasticsearch.indices import IndexMap
from backupctl.drivers.elasticsearch.snapshots import ensure_repository
from backupctl.drivers.elasticsearch.verification import verify_indices
from backupctl.errors import BackupctlError, UsageError, VerificationFailed
from backupctl.policy.elasticsearch import ElasticsearchPolicy
from backupctl.runbook.step import RunContext, Step

#: what a throwaway copy (deep verify, drill) is restored with: no replica to place, no
#: lifecycle policy that could roll it over or delete it while it is checked
COPY_SETTINGS = {"index.number_of_replicas": 0}
COPY_IGNORED_SETTINGS = ["index.lifecycle.name", "index.lifecycle.rollover_alias"]
#: how long a health wait may add to the server-side wait before the client gives up
_CLIENT_MARGIN = 30


class RegisterRepository(Step):
    """Register the snapshot repository when the cluster lacks it (a new cluster after the
    old one was lost: the snapshots are in the repository's storage, not the cluster)."""

    name = "register-repository"

    def __init__(self, es: Elasticsearch, policy: ElasticsearchPolicy):
        self.es, self.policy = es, policy

    def describe(self, ctx: RunContext) -> str:
        spec = self.policy.snapshot_repository
        return f"register snapshot repository {spec.name} ({spec.type}) unless the cluster has it"

    def run(self, ctx: RunContext) -> str:
        return ensure_repository(self.es, self.policy.snapshot_repository)

    def compensate(self, ctx: RunContext) -> str:
        return "left registered (snapshots and backups use it too)"


class PrepareTargets(Step):
    """replace mode: close (or delete) the open indices the restore will overwrite, and
    delete the data streams it will bring back (only with ``delete_existing``: restoring
    over a live data stream's closed backing indices would orphan the newer ones)."""

    name = "prepare-indices"

    def __init__(self, es: Elasticsearch, indices: IndexMap, delete: bool):
        self.es, self.indices, self.delete = es, indices, delete

    def describe(self, ctx: RunContext) -> str:
        verb = "delete" if self.delete else "close"
        return f"{verb} the existing indices among {', '.join(self.indices.restored)}"

    def run(self, ctx: RunContext) -> str:
        live_streams = inventory.data_streams(self.es) if self.indices.data_streams else {}
        streams = sorted(s for s in self.indices.data_streams if s in live_streams)
        if streams and not self.delete:
            raise UsageError(
                f"data stream(s) {', '.join(streams)} exist: replace mode restores a data stream "
                "only in place of a deleted one (closing its backing indices would leave those "
                "written since the snapshot orphaned and closed); set "
                "restore.delete_existing: true (it is deleted, then restored from the "
                "snapshot) or use rename mode"
            )
        existing = inventory.index_states(self.es, self.indices.plain)
        if self.delete:
            delete_streams(self.es, streams)
            ctx["deleted_streams"] = streams
            targets = sorted(existing)
            delete_indices(self.es, targets)
            ctx["deleted"] = targets
            gone = [*targets, *(f"data stream {s}" for s in streams)]
            return f"deleted {len(gone)}: {', '.join(gone) or 'none'}"
        open_ones = sorted(n for n, s in existing.items() if s.startswith("open"))
        ctx["closed"] = []
        for group in chunks(open_ones):
            call("close indices", self.es.indices.close, index=",".join(group))
            ctx["closed"] = [*ctx["closed"], *group]
        return f"closed {len(open_ones)} open index(es): {', '.join(open_ones) or 'none'}"

    def compensate(self, ctx: RunContext) -> str:
        if ctx.get("restore_started"):
            return "the restore already wrote over them: see restore-snapshot for their state"
        closed: list[str] = ctx.get("closed") or []
        for group in chunks(closed):
            call("reopen indices", self.es.indices.open, index=",".join(group))
        deleted = [*(ctx.get("deleted") or []), *(ctx.get("deleted_streams") or [])]
        lost = f"; deleted before the failure, not recoverable but from a snapshot: {deleted}"
        return f"reopened {', '.join(closed) or 'nothing'}" + (lost if deleted else "")


class CheckTargetsFree(Step):
    """rename mode: the new names must be free, so the originals stay untouched."""

    name = "check-targets"

    def __init__(self, es: Elasticsearch, indices: IndexMap):
        self.es, self.indices = es, indices

    def describe(self, ctx: RunContext) -> str:
        pairs = ", ".join(f"{s} -> {t}" for s, t in sorted(self.indices.targets.items()))
        return f"check that the new names are free ({pairs})"

    def run(self, ctx: RunContext) -> str:
        taken = set(inventory.index_states(self.es, self.indices.restored))
        if self.indices.data_streams:
            taken |= set(inventory.data_streams(self.es)) & set(self.indices.restored)
        if taken:
            raise UsageError(
                f"rename mode would restore onto existing indices: {', '.join(sorted(taken))}; "
                "delete them or change restore.rename_replacement"
            )
        return f"{len(self.indices.restored)} new name(s) are free"


def restore_request(policy: ElasticsearchPolicy, indices: IndexMap) -> dict[str, Any]:
    """The ``_restore`` request: indices and data streams by name; feature states only as
    the policy lists them (``["none"]`` otherwise, so system indices stay as they are)."""
    request: dict[str, Any] = {
        "indices": indices.sources,
        "include_global_state": False,
        "include_aliases": not indices.renamed and policy.restore.include_aliases,
        "feature_states": (
            list(policy.restore.feature_states)
            if policy.restore.feature_states and not indices.copies
            else ["none"]
        ),
        "wait_for_completion": False,
    }
    if indices.renamed:
        request["rename_pattern"] = policy.restore.rename_pattern
        request["rename_replacement"] = policy.restore.rename_replacement
    if indices.copies:
        request["index_settings"] = COPY_SETTINGS
        request["ignore_index_settings"] = COPY_IGNORED_SETTINGS
    return request


def restored_present(es: Elasticsearch, indices: IndexMap) -> list[str]:
    """The restored names (indices, data streams) that exist now."""
    present = set(inventory.index_states(es, indices.restored))
    if indices.data_streams:
        present |= set(inventory.data_streams(es)) & set(indices.restored)
    return sorted(present)


def restore_began(es: Elasticsearch, indices: IndexMap) -> bool:
    """True when the cluster has started restoring: a restored index is open (before, each
    was closed or absent) or a restored data stream exists (before, none did)."""
    states = inventory.index_states(es, indices.restored)
    if any(state.startswith("open") for state in states.values()):
        return True
    streams = {indices.targets[s] for s in indices.data_streams}
    return bool(streams and streams & set(inventory.data_streams(es)))


def delete_restored(es: Elasticsearch, indices: IndexMap) -> list[str]:
    """Delete what a restore under new names created (copies, by name: clusters refuse
    wildcard deletes); return what was deleted."""
    present = restored_present(es, indices)
    streams = {indices.targets[s] for s in indices.data_streams}
    delete_streams(es, sorted(set(present) & streams))
    delete_indices(es, sorted(set(present) - streams))
    return present


def delete_indices(es: Elasticsearch, names: list[str]) -> None:
    """Delete indices by name, in bounded requests; one already gone (a retry after a lost
    answer) is not an error."""
    for group in chunks(names):
        call("delete indices", es.indices.delete, index=",".join(group), ignore_unavailable=True)


def delete_streams(es: Elasticsearch, names: list[str]) -> None:
    """Delete data streams (with their backing indices); one already gone is not an error."""
    for name in names:
        try:
            call(f"delete data stream {name}", es.indices.delete_data_stream, name=name)
        except ElasticsearchError as exc:
            if exc.status != 404:
                raise


class RestoreSnapshot(Step):
    name = "restore-snapshot"
    resumable = False  # a second restore request over a half-restored index would fail

    def __init__(
        self, es: Elasticsearch, policy: ElasticsearchPolicy, manifest: Manifest, indices: IndexMap
    ):
        self.es, self.policy, self.manifest, self.indices = es, policy, manifest, indices

    @property
    def snapshot(self) -> str:
        return SnapshotDetails.of(self.manifest).snapshot

    def describe(self, ctx: RunContext) -> str:
        how = "under new names" if self.indices.renamed else "over the closed indices"
        streams = f", {len(self.indices.data_streams)} data stream(s)"
        left = f"; system indices left as they are: {len(self.indices.system)}"
        return (
            f"restore {len(self.indices.plain)} index(es)"
            f"{streams if self.indices.data_streams else ''} from snapshot {self.snapshot} "
            f"of repository {self.policy.snapshot_repository.name} {how}"
            f"{left if self.indices.system and not self.policy.restore.feature_states else ''}"
        )

    def run(self, ctx: RunContext) -> str:
        request = restore_request(self.policy, self.indices)
        for attempt in range(1, 4):
            try:
                call(
                    f"restore snapshot {self.snapshot}",
                    self.es.snapshot.restore,
                    repository=self.policy.snapshot_repository.name,
                    snapshot=self.snapshot,
                    safe=False,  # a second restore fails: "open index with same name"
                    **request,
                )
                break
            except AnswerLost:
                if restore_began(self.es, self.indices):
                    break  # the cluster took it; the answer was lost on the way back
                if attempt == 3:
                    raise
        # only now: a refused restore (4xx) restored nothing, and prepare-indices' undo
        # must reopen what it closed
        ctx["restore_started"] = True
        return f"restore of {', '.join(self.indices.restored)} accepted by the cluster"

    def compensate(self, ctx: RunContext) -> str:
        if self.indices.renamed:
            deleted = delete_restored(self.es, self.indices)
            return (
                f"deleted the restored copies ({', '.join(deleted) or 'none'}); originals untouched"
            )
        if not ctx.get("restore_started"):
            return "the cluster restored nothing"
        states = inventory.index_states_safe(self.es, self.indices.restored)
        return "replace mode cannot undo a restore; index states now: " + (
            inventory.describe_states(states)
        )


class WaitRecovered(Step):
    name = "wait-recovered"

    def __init__(self, es: Elasticsearch, policy: ElasticsearchPolicy, indices: IndexMap):
        self.es, self.policy, self.indices = es, policy, indices

    def describe(self, ctx: RunContext) -> str:
        timeout = int(self.policy.restore.recovery_timeout.total_seconds())
        return (
            f"wait until the restored indices are {self.policy.restore.wait_for} (up to {timeout}s)"
        )

    def run(self, ctx: RunContext) -> str:
        wanted = self.policy.restore.wait_for
        deadline = time.monotonic() + self.policy.restore.recovery_timeout.total_seconds()
        groups = list(chunks(self.indices.restored))
        while groups:
            remaining = max(1, int(deadline - time.monotonic()))
            wait = min(remaining, 30)
            # the client waits longer than the server (which answers 408 at its timeout),
            # so a slow recovery is a timed-out answer, never a lost connection
            health = body(
                call(
                    "index health",
                    self.es.options(
                        ignore_status=408, request_timeout=wait + _CLIENT_MARGIN
                    ).cluster.health,
                    index=",".join(groups[0]),
                    wait_for_status=wanted,
                    timeout=f"{wait}s",
                )
            )
            if not health.get("timed_out"):
                groups.pop(0)
                continue
            if time.monotonic() >= deadline:
                states = inventory.describe_states(
                    inventory.index_states_safe(self.es, self.indices.restored)
                )
                raise BackupctlError(
                    f"the restored indices did not reach {wanted} in time "
                    f"(cluster says {health.get('status')}); {states}"
                )
        return f"{len(self.indices.restored)} restored name(s) {wanted} or better"


class VerifyIndices(Step):
    name = "verify"

    def __init__(
        self, es: Elasticsearch, policy: ElasticsearchPolicy, manifest: Manifest, indices: IndexMap
    ):
        self.es, self.policy, self.manifest, self.indices = es, policy, manifest, indices

    def describe(self, ctx: RunContext) -> str:
        rules = len(self.policy.restore.verify)
        return f"document counts against the manifest, {rules} policy rule(s), their health"

    def run(self, ctx: RunContext) -> str:
        checks = verify_indices(self.es, self.manifest, self.indices, self.policy.restore.verify)
        ctx.record_checks(checks)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise VerificationFailed("; ".join(f"{c.name}: {c.detail}" for c in failed))
        return f"{len(checks)} check(s) passed"
