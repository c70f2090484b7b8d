"""Checks of restored indices and data streams: document counts against the manifest,
policy rules, and the health of what was restored (not the whole cluster's: an unrelated
red index is not the restore's)."""

from __future__ import annotations

import fnmatch

from elasticsearch import Elasticsearch

from backupctl.catalog.manifest import Manifest
from backupctl.checks import CheckResult
from backupctl.drivers.elasticsearch import inventory
from backupctl.drivers.elasticsearch.details import IndexEntry, SnapshotDetails
from backupctl.drivers.elasticsearch.indices import IndexMap
from backupctl.policy.elasticsearch import IndexCheck


def expected_docs(
    details: SnapshotDetails, indices: IndexMap, source: str
) -> tuple[int, int] | None:
    """The document range the snapshot recorded for ``source`` (a data stream: the sum
    over its backing indices), or None when no count was recorded."""
    names = indices.data_streams.get(source, [source])
    ranges = [details.indices.get(name, IndexEntry()).expected_docs() for name in names]
    if not ranges or any(r is None for r in ranges):
        return None
    return sum(r[0] for r in ranges if r), sum(r[1] for r in ranges if r)


def restored_counts(
    es: Elasticsearch, details: SnapshotDetails, indices: IndexMap
) -> dict[str, int]:
    """Documents of each restored name, counted as the snapshot's were: top-level documents
    (``_count``), or for manifests of older versions ``_cat/indices`` Lucene documents."""
    inventory.refresh(es, indices.restored)
    if details.counted_with == "count":
        return inventory.document_counts(es, indices.restored)
    stats = inventory.store_stats(es, indices.restored)
    return {name: entry["docs"] for name, entry in stats.items()}


def verify_indices(
    es: Elasticsearch, manifest: Manifest, indices: IndexMap, rules: list[IndexCheck]
) -> list[CheckResult]:
    """Counts of everything restored against the manifest; each policy rule (its pattern
    names original indices or data streams); and the health of what was restored."""
    details = SnapshotDetails.of(manifest)
    found = restored_counts(es, details, indices)
    checks = []
    for source in indices.sources:
        target = indices.targets[source]
        name = f"docs {target}"
        expected = expected_docs(details, indices, source)
        if expected is None:
            checks.append(CheckResult(name, True, "no count recorded (index was closed or hidden)"))
            continue
        low, high = expected
        if target not in found:
            checks.append(CheckResult(name, False, "index is missing or closed after the restore"))
            continue
        docs = found[target]
        want = f"{low}" if low == high else f"{low}..{high}"
        checks.append(
            CheckResult(name, low <= docs <= high, f"{docs} documents, snapshot had {want}")
        )
    for rule in rules:
        matched = [s for s in indices.sources if fnmatch.fnmatchcase(s, rule.index)]
        if not matched and any(fnmatch.fnmatchcase(s, rule.index) for s in details.indices):
            checks.append(CheckResult(f"rule {rule.index}", True, "not among the indices restored"))
            continue
        total = sum(found.get(indices.targets[s], 0) for s in matched)
        ok = bool(matched) and total >= rule.min_docs
        detail = f"{len(matched)} index(es), {total} documents, expected at least {rule.min_docs}"
        checks.append(CheckResult(f"rule {rule.index}", ok, detail))
    status = inventory.health_of(es, indices.restored)
    checks.append(CheckResult("health", status != "red", f"the restored indices are {status}"))
    return checks
