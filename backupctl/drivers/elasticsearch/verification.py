"""Checks of restored indices: document counts against the manifest, policy rules, health."""

from __future__ import annotations

import fnmatch

from elasticsearch import Elasticsearch

from backupctl.catalog.manifest import Manifest
from backupctl.checks import CheckResult
from backupctl.drivers.elasticsearch.client import body, call
from backupctl.drivers.elasticsearch.details import IndexEntry, SnapshotDetails
from backupctl.drivers.elasticsearch.indices import IndexMap
from backupctl.drivers.elasticsearch.snapshots import index_stats
from backupctl.policy.elasticsearch import IndexCheck


def verify_indices(
    es: Elasticsearch, manifest: Manifest, indices: IndexMap, rules: list[IndexCheck]
) -> list[CheckResult]:
    """Counts of every restored index against the manifest; each policy rule (its pattern
    names original indices); and the cluster not red."""
    recorded = SnapshotDetails.of(manifest).indices
    found = index_stats(es, indices.restored)
    checks = []
    for source in indices.sources:
        target = indices.targets[source]
        name = f"docs {target}"
        expected = recorded.get(source, IndexEntry()).expected_docs()
        if expected is None:
            checks.append(CheckResult(name, True, "no count recorded (index was closed or hidden)"))
            continue
        low, high = expected
        if target not in found:
            checks.append(CheckResult(name, False, "index is missing or closed after the restore"))
            continue
        docs = found[target]["docs"]
        want = f"{low}" if low == high else f"{low}..{high}"
        checks.append(
            CheckResult(name, low <= docs <= high, f"{docs} documents, snapshot had {want}")
        )
    for rule in rules:
        matched = [s for s in indices.sources if fnmatch.fnmatchcase(s, rule.index)]
        if not matched and any(fnmatch.fnmatchcase(s, rule.index) for s in recorded):
            checks.append(CheckResult(f"rule {rule.index}", True, "not among the indices restored"))
            continue
        total = sum(found.get(indices.targets[s], {}).get("docs", 0) for s in matched)
        ok = bool(matched) and total >= rule.min_docs
        detail = f"{len(matched)} index(es), {total} documents, expected at least {rule.min_docs}"
        checks.append(CheckResult(f"rule {rule.index}", ok, detail))
    health = body(call("cluster health", es.cluster.health))
    status = health.get("status")
    checks.append(CheckResult("cluster health", status != "red", f"cluster is {status}"))
    return checks
