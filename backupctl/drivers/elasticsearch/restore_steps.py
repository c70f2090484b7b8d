"""Restore runbook steps for Elasticsearch snapshots.

replace mode: close (or delete) the target indices, restore over them.
rename mode: restore beside the originals, which are never touched; optionally move
their aliases to the restored copies once those are verified.
"""

from __future__ import annotations

import time
from typing import Any

from elasticsearch import Elasticsearch

from backupctl.catalog.manifest import Manifest
from backupctl.drivers.elasticsearch.client import ElasticsearchError, body, call
from backupctl.drivers.elasticsearch.details import SnapshotDetails
from backupctl.drivers.elasticsearch.indices import IndexMap
from backupctl.drivers.elasticsearch.verification import verify_indices
from backupctl.errors import BackupctlError, UsageError, VerificationFailed
from backupctl.policy.elasticsearch import ElasticsearchPolicy
from backupctl.runbook.step import RunContext, Step


def index_states(es: Elasticsearch, names: list[str]) -> dict[str, str]:
    """``name -> "open, green"`` / ``"close"`` for each of ``names`` that exists."""
    wanted = set(names)
    rows = body(
        call(
            "list indices",
            es.cat.indices,
            format="json",
            h="index,status,health",
            expand_wildcards="all",
        )
    )
    states = {}
    for row in rows:
        if row.get("index") in wanted:
            health = row.get("health")
            states[row["index"]] = f"{row.get('status')}, {health}" if health else row["status"]
    return states


def _describe_states(states: dict[str, str]) -> str:
    return "; ".join(f"{name}: {state}" for name, state in sorted(states.items())) or "none"


class PrepareTargets(Step):
    """replace mode: close (or delete) the open indices the restore will overwrite."""

    name = "prepare-indices"

    def __init__(self, es: Elasticsearch, indices: IndexMap, delete: bool):
        self.es, self.indices, self.delete = es, indices, delete

    def describe(self, ctx: RunContext) -> str:
        verb = "delete" if self.delete else "close"
        return f"{verb} the existing indices among {', '.join(self.indices.restored)}"

    def run(self, ctx: RunContext) -> str:
        existing = index_states(self.es, self.indices.restored)
        open_ones = sorted(n for n, s in existing.items() if s.startswith("open"))
        if self.delete:
            targets = sorted(existing)
            if targets:
                call("delete indices", self.es.indices.delete, index=",".join(targets))
            ctx["deleted"] = targets
            return f"deleted {len(targets)} existing index(es): {', '.join(targets) or 'none'}"
        if open_ones:
            call("close indices", self.es.indices.close, index=",".join(open_ones))
        ctx["closed"] = open_ones
        return f"closed {len(open_ones)} open index(es): {', '.join(open_ones) or 'none'}"

    def compensate(self, ctx: RunContext) -> str:
        if ctx.get("restore_started"):
            return "the restore already wrote over them: see restore-snapshot for their state"
        closed: list[str] = ctx.get("closed") or []
        if closed:
            call("reopen indices", self.es.indices.open, index=",".join(closed))
        deleted: list[str] = ctx.get("deleted") or []
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
        taken = index_states(self.es, self.indices.restored)
        if taken:
            raise UsageError(
                f"rename mode would restore onto existing indices: {', '.join(sorted(taken))}; "
                "delete them or change restore.rename_replacement"
            )
        return f"{len(self.indices.restored)} new name(s) are free"


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
        return (
            f"restore {len(self.indices.sources)} index(es) from snapshot {self.snapshot} "
            f"of repository {self.policy.snapshot_repository.name} {how}"
        )

    def run(self, ctx: RunContext) -> str:
        options: dict[str, Any] = {
            "indices": ",".join(self.indices.sources),
            "include_global_state": False,
            "include_aliases": not self.indices.renamed,
            "wait_for_completion": False,
        }
        if self.indices.renamed:
            options["rename_pattern"] = self.policy.restore.rename_pattern
            options["rename_replacement"] = self.policy.restore.rename_replacement
        ctx["restore_started"] = True
        call(
            f"restore snapshot {self.snapshot}",
            self.es.snapshot.restore,
            repository=self.policy.snapshot_repository.name,
            snapshot=self.snapshot,
            **options,
        )
        return f"restore of {', '.join(self.indices.restored)} accepted by the cluster"

    def compensate(self, ctx: RunContext) -> str:
        if self.indices.renamed:
            present = sorted(index_states(self.es, self.indices.restored))
            if present:
                call("delete restored copies", self.es.indices.delete, index=",".join(present))
            return (
                f"deleted the restored copies ({', '.join(present) or 'none'}); originals untouched"
            )
        states = index_states_safe(self.es, self.indices.restored)
        return "replace mode cannot undo a restore; index states now: " + _describe_states(states)


def index_states_safe(es: Elasticsearch, names: list[str]) -> dict[str, str]:
    try:
        existing = index_states(es, names)
    except BackupctlError as exc:
        return {name: f"unknown ({exc})" for name in names}
    return {name: existing.get(name, "missing") for name in names}


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
        names = ",".join(self.indices.restored)
        while True:
            remaining = max(1, int(deadline - time.monotonic()))
            health = body(
                call(
                    "index health",
                    # Elasticsearch answers 408 when the wait times out
                    self.es.options(ignore_status=408).cluster.health,
                    index=names,
                    wait_for_status=wanted,
                    timeout=f"{min(remaining, 30)}s",
                )
            )
            if not health.get("timed_out"):
                return (
                    f"{len(self.indices.restored)} index(es) {health.get('status')}: "
                    f"{health.get('active_primary_shards')} primary shard(s) active"
                )
            if time.monotonic() >= deadline:
                states = _describe_states(index_states_safe(self.es, self.indices.restored))
                raise BackupctlError(
                    f"the restored indices did not reach {wanted} in time "
                    f"(cluster says {health.get('status')}); {states}"
                )


class VerifyIndices(Step):
    name = "verify"

    def __init__(
        self, es: Elasticsearch, policy: ElasticsearchPolicy, manifest: Manifest, indices: IndexMap
    ):
        self.es, self.policy, self.manifest, self.indices = es, policy, manifest, indices

    def describe(self, ctx: RunContext) -> str:
        rules = len(self.policy.restore.verify)
        return f"document counts against the manifest, {rules} policy rule(s), cluster health"

    def run(self, ctx: RunContext) -> str:
        checks = verify_indices(self.es, self.manifest, self.indices, self.policy.restore.verify)
        ctx.record_checks(checks)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise VerificationFailed("; ".join(f"{c.name}: {c.detail}" for c in failed))
        return f"{len(checks)} check(s) passed"


class SwitchAliases(Step):
    """rename mode: move the originals' aliases to the restored indices, atomically."""

    name = "switch-aliases"

    def __init__(self, es: Elasticsearch, indices: IndexMap):
        self.es, self.indices = es, indices

    def describe(self, ctx: RunContext) -> str:
        return "move the aliases of the original indices to the restored ones (one atomic call)"

    def _actions(self, reverse: bool) -> list[dict[str, Any]]:
        actions: list[dict[str, Any]] = []
        for source, target in sorted(self.indices.targets.items()):
            old, new = (target, source) if reverse else (source, target)
            try:
                aliases = body(call("get aliases", self.es.indices.get_alias, index=source))
            except ElasticsearchError as exc:
                if exc.status == 404:
                    continue
                raise
            for alias in (aliases.get(source) or {}).get("aliases", {}):
                actions.append({"remove": {"index": old, "alias": alias}})
                actions.append({"add": {"index": new, "alias": alias}})
        return actions

    def run(self, ctx: RunContext) -> str:
        actions = self._actions(reverse=False)
        if actions:
            call("switch aliases", self.es.indices.update_aliases, actions=actions)
        ctx["aliases_switched"] = len(actions) // 2
        return f"moved {len(actions) // 2} alias(es) to the restored indices"

    def compensate(self, ctx: RunContext) -> str:
        if not ctx.get("aliases_switched"):
            return "no alias was moved"
        call("switch aliases back", self.es.indices.update_aliases, actions=self._actions(True))
        return "aliases moved back to the original indices"
