"""The Elasticsearch part of ``backupctl demo``, run when a cluster is given
(``BACKUPCTL_DEMO_ES_URL``): snapshot an index, lose it, restore it, compare counts."""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backupctl.catalog.index import Catalog
from backupctl.drivers.elasticsearch.client import call, make_client
from backupctl.jobs import run_backup
from backupctl.policy.elasticsearch import ElasticsearchPolicy
from backupctl.policy.loader import load_policies
from backupctl.restore import execute, plan_restore
from backupctl.storage.factory import open_repository

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


def run_es_demo(workdir: Path, url: str, snapshot_dir: str, say: Say) -> dict[str, Any]:
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
        state = workdir / "state"
        repo = open_repository(policy.repository)
        manifest = run_backup(policy, repo, Catalog(state / "catalog.sqlite"), state)
        say(f"15. snapshot {manifest.details['snapshot']}: {manifest.details['state']}")
        call("delete demo index", es.indices.delete, index=index)
        say(f"16. index {index} deleted; restoring it from the snapshot")
        report = execute(plan_restore(policy, repo, manifest, state), policy, state)
        count = call("count", es.count, index=index)["count"]
        say(f"17. {index} is back with {count} documents (snapshot had {DOCS})")
        report["documents_match"] = count == DOCS
        return report
    finally:
        es.close()
