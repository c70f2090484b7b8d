"""The Elasticsearch recovery drill: restore under ``drill-<id>-`` names, verify counts,
delete the copies; the live indices are never touched."""

from __future__ import annotations

from elasticsearch import Elasticsearch

from backupctl.catalog.manifest import Manifest
from backupctl.drivers.base import DrillPlan, RestoreRun
from backupctl.drivers.elasticsearch import restore_steps as steps
from backupctl.drivers.elasticsearch.client import make_client
from backupctl.drivers.elasticsearch.indices import IndexMap, copies_under, index_map
from backupctl.policy.elasticsearch import ElasticsearchPolicy
from backupctl.runbook.step import RunContext, Step


class DeleteCopies(Step):
    """Delete the drill's copies by name (clusters refuse wildcard deletes)."""

    name = "delete-copies"

    def __init__(self, es: Elasticsearch, indices: IndexMap):
        self.es, self.indices = es, indices

    def describe(self, ctx: RunContext) -> str:
        return f"delete the {len(self.indices.restored)} drill copies"

    def run(self, ctx: RunContext) -> str:
        deleted = steps.delete_restored(self.es, self.indices)
        return f"deleted {', '.join(deleted) or 'nothing'}"


def drill_plan(policy: ElasticsearchPolicy, manifest: Manifest, run: RestoreRun) -> DrillPlan:
    """Steps restoring ``manifest`` under ``drill-<run id>-`` names; RPO from the snapshot's
    start (the moment its data reflects)."""
    prefix = f"drill-{run.run_id.lower()}-"
    options = copies_under(prefix, policy.restore)
    indices = index_map(manifest, options, None, copies=True)
    sandboxed = policy.model_copy(update={"restore": options})
    es = make_client(policy.connection)
    plan: list[Step] = [
        steps.CheckTargetsFree(es, indices),
        steps.RestoreSnapshot(es, sandboxed, manifest, indices),
        steps.WaitRecovered(es, sandboxed, indices),
        steps.VerifyIndices(es, policy, manifest, indices),
        DeleteCopies(es, indices),
    ]
    return DrillPlan(plan, manifest.started_at, "verify")
