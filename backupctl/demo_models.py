"""The model part of ``backupctl demo``: three versions of a small generated model
directory, stored content-addressed, then a rollback to the previous version."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backupctl.catalog.index import Catalog
from backupctl.drivers.models.tree import scan_tree, tree_hash
from backupctl.jobs import run_backup
from backupctl.policy.loader import load_policies
from backupctl.restore import execute, plan_restore
from backupctl.storage.factory import open_repository
from backupctl.units import human_bytes

Say = Callable[[str], None]


def _write_version(served: Path, number: int) -> None:
    served.mkdir(parents=True, exist_ok=True)
    weights = served / "weights.bin"
    if not weights.exists():
        weights.write_bytes(os.urandom(4 << 20))  # unchanged across versions: stored once
    (served / "head.bin").write_bytes(os.urandom(1 << 20))
    (served / "config.json").write_text(f'{{"layers": 4, "revision": {number}}}\n')
    (served / "VERSION").write_text(f"v{number}\n")


def write_policy(workdir: Path, served: Path) -> Path:
    path = workdir / "policies" / "demo-model.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        textwrap.dedent(f"""\
        version: 1
        name: demo-model
        driver: model
        path: {served}
        version_from: VERSION
        repository: file://{workdir / "repository"}
        schedule: {{check: "*/15 * * * *"}}
        retention: {{keep_versions: 5}}
        objectives: {{rpo: 24h, rto: 1h}}
        """)
    )
    return path


def run_model_demo(workdir: Path, say: Say) -> dict[str, Any]:
    """Store v1..v3, roll back to v2; return the restore report (with ``matches``)."""
    served = workdir / "models" / "demo-model"
    policy = load_policies(write_policy(workdir, served))[0]
    repo = open_repository(policy.repository)
    state = workdir / "state"
    catalog = Catalog(state / "catalog.sqlite")
    manifests, trees = [], {}
    for number in (1, 2, 3):
        _write_version(served, number)
        trees[number] = tree_hash(scan_tree(served))
        manifest = run_backup(policy, repo, catalog, state)
        manifests.append(manifest)
        d = manifest.details
        say(
            f"{8 + number}. model version {d['version']}: {human_bytes(d['bytes'])}, "
            f"{human_bytes(d['new_bytes'])} new in the repository"
        )
    say("12. rolling back to v2: materialise, check hashes, apply atomically")
    report = execute(plan_restore(policy, repo, manifests[1], state), policy, state)
    report["matches"] = tree_hash(scan_tree(served)) == trees[2]
    say(
        "13. the served directory is v2 again, byte for byte"
        if report["matches"]
        else "13. the served directory DIFFERS from v2"
    )
    return report
