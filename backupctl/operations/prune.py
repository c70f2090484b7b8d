"""``backupctl prune``: carry out retention decisions, deleting what the rules let go and
saying why for each backup."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import structlog

from backupctl.catalog.manifest import MANIFEST
from backupctl.catalog.sync import sync_policy
from backupctl.drivers.registry import driver_for
from backupctl.locks import policy_lock
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
    driver = driver_for(policy)
    repo, catalog, now = ctx.repository(policy), ctx.catalog(), ctx.clock()
    if dry_run:
        backups = catalog.list(policy.name)
        by_id = {m.backup_id: m for m in backups}
        decisions: list[Decision] = driver.retention(backups, now)
        return [_result(by_id[d.backup_id].kind, policy.name, d) for d in decisions]
    results = []
    with policy_lock(ctx.layout, policy.name, purpose="prune"), repo.lock(policy.name, "prune"):
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
        if swept := driver.collect_garbage(repo, kept):
            log.info("unreferenced objects removed", policy=policy.name, count=swept)
    return results


def _result(kind: str, policy: str, decision: Decision) -> PruneResult:
    return PruneResult(policy, decision.backup_id, kind, decision.keep, decision.reason)


def _delete_objects(repo: Repository, prefix: str) -> None:
    """Remove the manifest first (the backup stops being listed), then the rest."""
    repo.delete(keys.join(prefix, MANIFEST))
    repo.delete_prefix(prefix)
