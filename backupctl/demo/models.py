"""The model part of ``backupctl demo``: three versions of a small generated model
directory, stored content-addressed, then a rollback to the previous version."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

from backupctl.drivers.models.details import ModelDetails
from backupctl.drivers.models.tree import scan_tree, tree_hash
from backupctl.layout import StateLayout
from backupctl.operations.backup import run_backup
from backupctl.operations.context import Context
from backupctl.operations.restore import plan_restore, run_restore
from backupctl.policy.loader import load_policies
from backupctl.policy.model import ModelRestoreOptions
from backupctl.runbook.report import RestoreReport
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


def run_model_demo(workdir: Path, say: Say) -> tuple[RestoreReport, bool]:
    """Store v1..v3, roll back to v2; return the restore report and whether the served
    directory is v2 again, byte for byte."""
    served = workdir / "models" / "demo-model"
    policy = load_policies(write_policy(workdir, served))[0]
    ctx = Context(StateLayout(workdir / "state"))
    manifests, trees = [], {}
    for number in (1, 2, 3):
        _write_version(served, number)
        trees[number] = tree_hash(scan_tree(served))
        manifest = run_backup(ctx, policy)
        manifests.append(manifest)
        d = ModelDetails.of(manifest)
        say(
            f"{8 + number}. model version {d.version}: {human_bytes(d.bytes or 0)}, "
            f"{human_bytes(d.new_bytes or 0)} new in the repository"
        )
    say("12. rolling back to v2: materialise, check hashes, apply atomically")
    options = ModelRestoreOptions(backup_id=manifests[1].backup_id)
    report = run_restore(ctx, plan_restore(ctx, policy, options))
    matches = tree_hash(scan_tree(served)) == trees[2]
    say(
        "13. the served directory is v2 again, byte for byte"
        if matches
        else "13. the served directory DIFFERS from v2"
    )
    return report, matches
