"""``backupctl prune``: carry out retention decisions, deleting what the rules let go and
saying why for each backup."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import structlog

from backupctl.catalog.index import Catalog
from backupctl.catalog.manifest import MANIFEST, Manifest, backup_listing, listed_manifests
from backupctl.catalog.sync import sync_policy
from backupctl.drivers.registry import driver_for
from backupctl.locks import COPY_LANE, lanes_locked
from backupctl.operations.after_backup import guarded
from backupctl.operations.backup import clean_incomplete
from backupctl.operations.context import Context
from backupctl.policy.common import PolicyBase
from backupctl.retention import Decision
from backupctl.storage import keys
from backupctl.storage.base import Repository

log = structlog.get_logger()


@dataclass(frozen=True)
class PruneResult:
    policy: str
    backup_id: str
    kind: str
    keep: bool
    reason: str
    done: str = ""
    #: the copy repository decided on ("": the policy's first repository)
    repository: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def prune_policy(ctx: Context, policy: PolicyBase, dry_run: bool = False) -> list[PruneResult]:
    """Apply ``policy``'s retention (as of ``ctx.clock()``) to its catalogued backups.

    Deletes (unless ``dry_run``) under the policy's lock: first the catalog forgets it
    (so ``list`` never shows a backup being deleted), then what the backup keeps outside
    the repository (e.g. the snapshot, through the cluster's API), then its manifest (so
    a catalog rebuilt from the repository never lists it half-deleted), then its other
    objects; newest first, so a backup goes before the one it builds on. What a run killed
    part-way left is cleaned up first. Raises LockHeldError
    while a backup of the policy runs.
    """
    driver = driver_for(retained_in(policy, policy.repository_names[0]))
    repo, catalog, now = ctx.repository(policy), ctx.catalog(), ctx.clock()
    if dry_run:
        backups = catalog.list(policy.name)
        by_id = {m.backup_id: m for m in backups}
        decisions: list[Decision] = driver.retention(backups, now)
        found = [_result(by_id[d.backup_id].kind, policy.name, d) for d in decisions]
        for copy in policy.copies:
            found += _prune_copy(ctx, policy, copy.name, dry_run=True)
        return found
    results = []
    with lanes_locked(ctx.layout, repo, policy.name, driver.all_lanes(), "prune"):
        # what a run killed part-way left: half-written or half-deleted backups go, and
        # one a prune forgot but had not deleted yet is listed (and decided on) again
        clean_incomplete(repo, policy.name, driver.kinds)
        sync_policy(catalog, repo, policy.name)
        backups = catalog.list(policy.name)
        by_id = {m.backup_id: m for m in backups}
        # newest first: a backup goes before what it builds on (an incremental before its
        # full), so a run killed part-way never leaves a kept backup without its base
        for decision in reversed(driver.retention(backups, now)):
            manifest = by_id[decision.backup_id]
            result = _result(manifest.kind, policy.name, decision)
            if not decision.keep:
                # forgotten first: a run killed part-way never leaves the catalog listing
                # a backup whose manifest or objects are already gone
                catalog.forget(policy.name, manifest.backup_id)
                done = driver.delete_backup(repo, manifest)
                _delete_objects(repo, manifest.prefix)
                log.info("backup pruned", backup_id=manifest.backup_id, reason=decision.reason)
                result = replace(result, done=done)
            results.append(result)
        results.reverse()
        kept = [by_id[r.backup_id] for r in results if r.keep]
        if swept := driver.collect_garbage(repo, kept, now):
            log.info("unreferenced objects removed", policy=policy.name, count=swept)
        for copy in policy.copies:  # under the copy lane: no copy runs meanwhile
            results += _prune_copy(ctx, policy, copy.name)
    return results


def retained_in(policy: PolicyBase, repository: str) -> PolicyBase:
    """``policy`` with the retention of its repository ``repository``."""
    retention = policy.retention_of(repository)
    if retention is getattr(policy, "retention", None):
        return policy
    return policy.model_copy(update={"retention": retention})


def _prune_copy(
    ctx: Context, policy: PolicyBase, name: str, dry_run: bool = False
) -> list[PruneResult]:
    """Apply the retention of copy repository ``name`` to the backups it holds. Only its
    objects go: what a backup keeps elsewhere (a snapshot in a cluster) belongs to the
    first repository's backup."""
    driver = driver_for(retained_in(policy, name))
    repo, now, catalog = ctx.repository_named(policy, name), ctx.clock(), ctx.catalog()
    with contextlib.nullcontext() if dry_run else repo.lock(policy.name, "prune", COPY_LANE):
        held = _copy_manifests(catalog, repo, policy, name, driver.kinds)
        by_id = {m.backup_id: m for m in held}
        results = []
        for decision in reversed(driver.retention(held, now)):
            manifest = by_id[decision.backup_id]
            result = replace(_result(manifest.kind, policy.name, decision), repository=name)
            if not decision.keep and not dry_run:
                _delete_objects(repo, manifest.prefix)
                log.info("copy pruned", repository=name, backup_id=manifest.backup_id)
            results.append(result)
        results.reverse()
        if dry_run:
            return results
        kept = [by_id[r.backup_id] for r in results if r.keep]
        driver.collect_garbage(repo, kept, now)
        catalog.replace_copies(policy.name, name, {m.backup_id: m.finished_at for m in kept}, by_id)
    return results


def _copy_manifests(
    catalog: Catalog, repo: Repository, policy: PolicyBase, name: str, kinds: Sequence[str]
) -> list[Manifest]:
    """The manifests of the backups copy ``name`` holds, oldest first: one listing of the
    repository, each manifest from the catalog when it kept it (read from the repository
    only for the others: an hourly prune must not read a month of manifests each time)."""
    listing = backup_listing(repo, policy.name, kinds)
    return listed_manifests(repo, policy.name, listing, catalog.copy_manifests(policy.name, name))


@dataclass(frozen=True)
class AfterBackup:
    """What applying retention after a backup came to."""

    pruned: int = 0
    skipped: str | None = None  # why it did not run (busy, or the policy opts out)
    error: str | None = None


def prune_after_backup(ctx: Context, policy: PolicyBase) -> AfterBackup:
    """Apply ``policy``'s retention after one of its backups succeeded, on every path that
    backs up (``backup``, ``run-due``, the scheduler), as pgBackRest expires after each
    backup. Never raises for an expected failure: a policy with ``prune_after_backup:
    false`` or busy with another run (the next backup prunes) is skipped, a failed
    prune is returned as ``error`` (the backup itself is stored)."""
    if not policy.prune_after_backup:
        return AfterBackup(skipped="prune_after_backup is false")
    results, skipped, error = guarded("prune", policy.name, lambda: prune_policy(ctx, policy))
    if results is None:
        return AfterBackup(skipped=skipped, error=error)
    return AfterBackup(pruned=sum(1 for r in results if not r.keep))


def _result(kind: str, policy: str, decision: Decision) -> PruneResult:
    return PruneResult(policy, decision.backup_id, kind, decision.keep, decision.reason)


def _delete_objects(repo: Repository, prefix: str) -> None:
    """Remove the manifest first (the backup stops being listed), then the rest."""
    repo.delete(keys.join(prefix, MANIFEST))
    repo.delete_prefix(prefix)
