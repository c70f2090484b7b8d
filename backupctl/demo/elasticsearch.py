"""The Elasticsearch part of ``backupctl demo``, run when a cluster is given
(``BACKUPCTL_DEMO_ES_URL``): snapshot an index, lose it, restore it, compare counts."""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backupctl.drivers.elasticsearch.client import call, make_client
from backupctl.drivers.elasticsearch.details import SnapshotDetails
from backupctl.layout import StateLayout
from backupctl.operations.backup import run_backup
from backupctl.operations.context import Context
from backupctl.operations.restore import plan_restore, run_restore
from backupctl.policy.elasticsearch import ElasticsearchPolicy, ElasticsearchRestoreOptions
from backupctl.policy.loader import load_policies
from backupctl.runbook.report import RestoreReport

Say = Callable[[str], None]
DOCS = 500


def write_policy(workdir: Path, url: str, snapshot_dir: str, index: str) -> Path:
    path = workdir / "policies" / "demo-search.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    location = f"{snapshot_dir.rstrip('/')}/backupctl-demo-{secrets.token_hex(3)}"
    path.write_text(
        textwrap.dedent(f"""\
        version: 1
        name: demo-search
        driver: elasticsearch
        connection:
          url: {url}
        snapshot_repository:
          name: backupctl-demo
          type: fs
          settings: {{location: "{location}"}}
        repository: file://{workdir / "repository"}
        indices: ["{index}"]
        schedule: {{snapshot: "30 2 * * *"}}
        retention: {{expire_after: 30d, min_count: 5, max_count: 60}}
        objectives: {{rpo: 24h, rto: 2h}}
        restore:
          mode: replace
          verify:
            - index: "{index}"
              min_docs: {DOCS}
        """)
    )
    return path


def run_es_demo(workdir: Path, url: str, snapshot_dir: str, say: Say) -> tuple[RestoreReport, bool]:
    """Snapshot a demo index, delete it, restore it; return the restore report."""
    index = f"backupctl-demo-orders-{secrets.token_hex(2)}"
    policy_file = write_policy(workdir, url, snapshot_dir, index)
    policy = load_policies(policy_file)[0]
    assert isinstance(policy, ElasticsearchPolicy)
    es = make_client(policy.connection)
    try:
        say(f"14. Elasticsearch at {url}: indexing {DOCS} documents into {index}")
        call("create demo index", es.indices.create, index=index)
        actions: list[dict[str, Any]] = []
        for n in range(DOCS):
            actions += [{"index": {"_index": index}}, {"n": n, "note": f"order {n}"}]
        call("index demo documents", es.bulk, operations=actions, refresh=True)
        ctx = Context(StateLayout(workdir / "state"))
        manifest = run_backup(ctx, policy)
        details = SnapshotDetails.of(manifest)
        say(f"15. snapshot {details.snapshot}: {details.state}")
        call("delete demo index", es.indices.delete, index=index)
        say(f"16. index {index} deleted; restoring it from the snapshot")
        options = ElasticsearchRestoreOptions(backup_id=manifest.backup_id)
        report = run_restore(ctx, plan_restore(ctx, policy, options))
        count = call("count", es.count, index=index)["count"]
        say(f"17. {index} is back with {count} documents (snapshot had {DOCS})")
        return report, count == DOCS
    finally:
        es.close()
