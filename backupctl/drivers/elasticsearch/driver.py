"""The ``elasticsearch`` driver: snapshots taken, retained, verified and restored through the
cluster's snapshot API. backupctl's repository keeps the manifests; the snapshot data
lives in the cluster's snapshot repository."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from elasticsearch import Elasticsearch

from backupctl.catalog.manifest import Manifest
from backupctl.checks import CheckResult
from backupctl.drivers.base import DrillPlan, Driver, RestoreRun
from backupctl.drivers.elasticsearch import inventory
from backupctl.drivers.elasticsearch import restore_steps as steps
from backupctl.drivers.elasticsearch.aliases import CheckWriteAliases, SwitchAliases
from backupctl.drivers.elasticsearch.client import ElasticsearchError, body, call, make_client
from backupctl.drivers.elasticsearch.details import (
    AliasProperties,
    FeatureState,
    IndexEntry,
    SnapshotDetails,
)
from backupctl.drivers.elasticsearch.indices import check_names, copies_under, index_map
from backupctl.drivers.elasticsearch.snapshots import (
    delete_snapshot,
    ensure_repository,
    get_snapshot,
    snapshot_name,
    take_snapshot,
)
from backupctl.drivers.elasticsearch.verification import verify_indices
from backupctl.errors import BackupctlError, IncompleteBackup, VerificationFailed
from backupctl.policy.elasticsearch import (
    ElasticsearchPolicy,
    ElasticsearchRestoreOptions,
)
from backupctl.retention import CountRules, Decision, slm_decisions
from backupctl.runbook.hook_step import HookStep
from backupctl.runbook.step import RunContext
from backupctl.storage.base import Repository

if TYPE_CHECKING:
    from backupctl.drivers.session import BackupSession
    from backupctl.runbook.step import Step

log = structlog.get_logger()


class ElasticsearchDriver(Driver[ElasticsearchPolicy, ElasticsearchRestoreOptions]):
    """Elasticsearch: ``snapshot`` backups through the snapshot API."""

    name = "elasticsearch"
    kinds = ("snapshot",)
    rebuild_rank = 40

    def backup(self, kind: str, session: BackupSession) -> SnapshotDetails:
        policy = self.policy
        es = make_client(policy.connection)
        try:
            version = body(call("cluster info", es.info))["version"]["number"]
            session.tool_versions["elasticsearch"] = str(version)
            repository = policy.snapshot_repository.name
            action = ensure_repository(es, policy.snapshot_repository)
            before = _counts(es, policy.indices)
            aliases = inventory.aliases_of(es, policy.indices)
            name = snapshot_name(policy.name, session.backup_id)
            outcome = take_snapshot(
                es,
                repository,
                name,
                policy.indices,
                policy.include_global_state,
                {"backupctl_backup_id": session.backup_id, "backupctl_policy": policy.name},
                policy.snapshot_timeout.total_seconds(),
            )
            after = _counts(es, policy.indices)
        finally:
            es.close()
        info = outcome.info
        states = [
            FeatureState(
                feature_name=str(state.get("feature_name")), indices=state.get("indices") or []
            )
            for state in info.get("feature_states") or []
        ]
        details = SnapshotDetails(
            snapshot=name,
            uuid=info.get("uuid"),
            repository=repository,
            repository_action=action,
            state=outcome.state,
            shards=info.get("shards"),
            include_global_state=policy.include_global_state,
            snapshot_started_at=info.get("start_time"),
            snapshot_finished_at=info.get("end_time"),
            indices=_index_details(info.get("indices") or [], before, after, aliases),
            data_streams=sorted(info.get("data_streams") or []),
            feature_states=states,
            counted_with="count",
        )
        if (failure := outcome.failure()) is not None:
            raise IncompleteBackup(failure, details)
        log.info("snapshot complete", snapshot=name, indices=len(details.indices))
        return details

    @classmethod
    def note(cls, manifest: Manifest) -> str:
        """Raises VerificationFailed when the manifest's details do not fit."""
        details = SnapshotDetails.of(manifest)
        return f"snapshot {details.snapshot} {details.state}"

    def names(self, manifest: Manifest) -> Sequence[str]:
        """A snapshot is also known by its name in the cluster (none when the manifest's
        details do not fit: finding another backup by its name must still work)."""
        try:
            return (SnapshotDetails.of(manifest).snapshot,)
        except VerificationFailed:
            return ()

    def verify_quick(self, repo: Repository, manifest: Manifest) -> list[CheckResult]:
        """The snapshot is in the cluster's repository, SUCCESS, with the manifest's indices."""
        details = check_names(manifest)
        es = make_client(self.policy.connection)
        try:
            info = get_snapshot(es, details.repository, details.snapshot)
        finally:
            es.close()
        name = f"snapshot {details.snapshot}"
        if info is None:
            where = details.repository
            return [CheckResult(name, False, f"not found in snapshot repository {where}")]
        state = info.get("state")
        checks = [CheckResult(name, state == "SUCCESS", f"state {state}")]
        missing = sorted(set(details.indices) - set(info.get("indices") or []))
        detail = f"missing {', '.join(missing[:10])}" if missing else "every index of the manifest"
        checks.append(CheckResult("snapshot indices", not missing, detail))
        return checks

    def verify_deep(self, repo: Repository, manifest: Manifest, scratch: Path) -> list[CheckResult]:
        """Restore the snapshot under a throwaway prefix, compare counts, delete the copies."""
        policy = self.policy
        prefix = f"backupctl-verify-{secrets.token_hex(3)}-"
        options = copies_under(prefix, policy.restore)
        indices = index_map(manifest, options, None, copies=True)
        scratch_policy = policy.model_copy(update={"restore": options})
        es = make_client(policy.connection)
        try:
            steps.RestoreSnapshot(es, scratch_policy, manifest, indices).run(
                RunContext("verify-deep")
            )
            steps.WaitRecovered(es, scratch_policy, indices).run(RunContext("verify-deep"))
            checks = verify_indices(es, manifest, indices, policy.restore.verify)
            checks.insert(0, CheckResult("restore", True, f"restored under {prefix}*"))
            return checks
        except BackupctlError as exc:
            return [CheckResult("restore", False, str(exc))]
        finally:
            try:
                steps.delete_restored(es, indices)
            except ElasticsearchError as exc:
                log.error("could not delete the verification copies", error=str(exc))
            es.close()

    def restore_steps(
        self,
        repo: Repository,
        manifest: Manifest,
        options: ElasticsearchRestoreOptions,
        run: RestoreRun,
    ) -> list[Step]:
        policy = self.policy
        restore = policy.restore
        indices = index_map(manifest, restore, options.indices)
        es = make_client(policy.connection)
        env = {"BACKUPCTL_BACKUP_ID": manifest.backup_id, "BACKUPCTL_RUN_ID": run.run_id}
        checks: list[Step] = (
            [steps.CheckTargetsFree(es, indices)]
            if indices.renamed
            else [steps.PrepareTargets(es, indices, restore.delete_existing)]
        )
        if not indices.renamed and restore.include_aliases:
            checks.insert(0, CheckWriteAliases(es, manifest, indices))
        plan: list[Step] = [
            steps.RegisterRepository(es, policy),
            HookStep(
                "stop-services", policy, restore.stop, restore.start, env, restore.hook_timeout
            ),
            *checks,
            steps.RestoreSnapshot(es, policy, manifest, indices),
            steps.WaitRecovered(es, policy, indices),
            steps.VerifyIndices(es, policy, manifest, indices),
        ]
        if indices.renamed and restore.switch_aliases:
            plan.append(SwitchAliases(es, indices))
        plan.append(
            HookStep(
                "start-services", policy, restore.start, restore.stop, env, restore.hook_timeout
            )
        )
        return plan

    def drill_plan(
        self, repo: Repository, manifest: Manifest, run: RestoreRun, sandbox: Path
    ) -> DrillPlan:
        from backupctl.drivers.elasticsearch.drill import drill_plan

        return drill_plan(self.policy, manifest, run)

    def retention(self, backups: list[Manifest], now: datetime) -> list[Decision]:
        rules = self.policy.retention
        return slm_decisions(
            backups, CountRules(rules.expire_after, rules.min_count, rules.max_count), now
        )

    def delete_backup(self, repo: Repository, manifest: Manifest) -> str:
        """Delete the snapshot through the snapshot API (never by touching its files)."""
        # a "*" from a tampered manifest would delete every snapshot
        details = check_names(manifest)
        es = make_client(self.policy.connection)
        try:
            gone = delete_snapshot(es, details.repository, details.snapshot)
        finally:
            es.close()
        return f"snapshot {details.snapshot} " + ("deleted" if gone else "was already gone")


def _counts(es: Elasticsearch, patterns: list[str]) -> dict[str, dict[str, Any]]:
    """Open indices matching the policy's patterns -> top-level documents (``_count``:
    what a restore is checked against) and primary store bytes."""
    inventory.refresh(es, patterns)
    stats = inventory.store_stats(es, patterns)
    counts = inventory.document_counts(es, sorted(stats))
    return {
        name: {"docs": counts[name], "bytes": entry["bytes"]}
        for name, entry in stats.items()
        if name in counts
    }


def _index_details(
    names: list[str],
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    aliases: dict[str, dict[str, AliasProperties]],
) -> dict[str, IndexEntry]:
    """Per index: documents before and after the snapshot ran, primary store bytes (None
    where the index was not open then), and its aliases with their properties."""
    entries = {}
    for name in sorted(names):
        first, last = before.get(name, after.get(name)), after.get(name)
        entries[name] = IndexEntry(
            docs=None if first is None else first["docs"],
            bytes=None if first is None else first["bytes"],
            docs_after=None if last is None else last["docs"],
            aliases=aliases.get(name),
        )
    return entries
