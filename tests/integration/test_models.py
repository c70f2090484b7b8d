"""Model versions: content-addressed copies, keep the last N, gated atomic rollback."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

import yaml

from backupctl.drivers.models.tree import scan_tree, tree_hash
from tests.support.cli import popen_backupctl
from tests.support.model_policies import model_policy


def _model(root: Path, version: str, changed: dict[str, bytes] | None = None) -> None:
    """Write a small model directory: shared weights, a per-version file, a VERSION file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "tokenizer").mkdir(exist_ok=True)
    shared = root / "weights-1.bin"
    if not shared.exists():
        shared.write_bytes(os.urandom(256 * 1024))
    (root / "tokenizer" / "vocab.json").write_text('{"a": 1}')
    (root / "run.sh").write_text("#!/bin/sh\necho serving\n")
    (root / "run.sh").chmod(0o755)
    for name, data in (changed or {}).items():
        (root / name).write_bytes(data)
    (root / "VERSION").write_text(version + "\n")


def _policy(tmp_path: Path, served: Path, **restore: Any) -> Path:
    hooks = tmp_path / "hooks"
    hooks.mkdir(exist_ok=True)
    reload = hooks / "reload.sh"
    reload.write_text(f'#!/bin/sh\necho "reloaded $(cat {served}/VERSION)" >> {tmp_path}/reloads\n')
    reload.chmod(0o755)
    return model_policy(
        tmp_path / "policies",
        "llm",
        served,
        tmp_path / "repo",
        {"check": "*/15 * * * *"},
        retention={"keep_versions": 5},
        objectives={"rpo": "24h", "rto": "1h"},
        restore={"start": [str(reload)], **restore},
    )


def _hook(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / "hooks" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def _blobs(tmp_path: Path) -> set[str]:
    return {p.name for p in (tmp_path / "repo" / "llm" / "blobs").rglob("*.zst")}


def test_seven_versions_keep_five_and_each_restores_byte_identical(
    tmp_path: Path, backupctl: Any
) -> None:
    served = tmp_path / "models" / "llm"
    policy = _policy(tmp_path, served)
    hashes = {}
    for n in range(1, 8):
        _model(served, f"v{n}", {f"head-{n}.bin": os.urandom(64 * 1024)})
        (served / f"head-{n - 1}.bin").unlink(missing_ok=True)
        result = backupctl("backup", "llm", "--json", "--no-prune", policies=policy)
        assert result.code == 0, result.output
        details = json.loads(result.stdout)["details"]
        if n > 1:  # only the new head (and the small files that changed) are new
            assert details["new_bytes"] < 100 * 1024
        hashes[f"v{n}"] = tree_hash(scan_tree(served))
    unchanged = backupctl("backup", "llm", "--no-prune", policies=policy)
    assert unchanged.code == 0 and "version v7 is already stored" in unchanged.stdout

    before = _blobs(tmp_path)
    pruned = backupctl("prune", "llm", policies=policy)
    assert pruned.code == 0, pruned.output
    assert pruned.stdout.count("deleted: version") == 2
    after = _blobs(tmp_path)
    # the heads and VERSION files of v1 and v2 go; the shared weights stay
    assert len(before - after) == 4
    weights = hashlib.sha256((served / "weights-1.bin").read_bytes()).hexdigest()
    assert f"{weights}.zst" in after
    listed = json.loads(backupctl("list", "llm", "--json", policies=policy).stdout)
    assert [b["details"]["version"] for b in listed] == ["v3", "v4", "v5", "v6", "v7"]

    for version in ("v3", "v5"):
        result = backupctl("restore", "llm", version, "--yes", policies=policy)
        assert result.code == 0, result.output
        assert tree_hash(scan_tree(served)) == hashes[version]
        assert stat.S_IMODE((served / "run.sh").stat().st_mode) == 0o755
    previous = backupctl("restore", "llm", "--previous", "--yes", policies=policy)
    assert previous.code == 0, previous.output
    assert tree_hash(scan_tree(served)) == hashes["v4"]
    assert (tmp_path / "reloads").read_text().splitlines()[-1] == "reloaded v4"


def test_a_failing_performance_gate_leaves_the_service_alone(
    tmp_path: Path, backupctl: Any
) -> None:
    served = tmp_path / "models" / "llm"
    slow = _hook(
        tmp_path, "perf.sh", 'echo "loading..."\necho \'{"passed": false, "p95_ms": 900}\'\n'
    )
    policy = _policy(tmp_path, served, perf_test=[slow])
    _model(served, "v1")
    assert backupctl("backup", "llm", policies=policy).code == 0
    _model(served, "v2", {"head.bin": b"new head"})
    assert backupctl("backup", "llm", policies=policy).code == 0
    serving = tree_hash(scan_tree(served))

    result = backupctl("restore", "llm", "v1", "--yes", "--json", policies=policy)
    assert result.code == 3, result.output
    report = json.loads(result.stdout)
    assert [c["passed"] for c in report["checks"]] == [False]
    assert tree_hash(scan_tree(served)) == serving
    assert not (tmp_path / "reloads").exists()
    assert not list(served.parent.glob(".llm.*")), "the staging directory was left behind"


def test_a_passing_gate_applies_atomically_and_a_failed_reload_swaps_back(
    tmp_path: Path, backupctl: Any
) -> None:
    served_dir = tmp_path / "models" / "llm-v2-dir"
    served = tmp_path / "models" / "llm"
    validate = _hook(tmp_path, "validate.sh", 'test -f "$BACKUPCTL_STAGING/VERSION"\n')
    fast = _hook(tmp_path, "fast.sh", 'echo \'{"passed": true, "p95_ms": 12}\'\n')
    policy = _policy(tmp_path, served, verify=[validate], perf_test=[fast])
    _model(served_dir, "v1")
    served.symlink_to(served_dir)
    assert backupctl("backup", "llm", policies=policy).code == 0
    _model(served_dir, "v2", {"head.bin": b"v2 head"})
    assert backupctl("backup", "llm", policies=policy).code == 0

    result = backupctl("restore", "llm", "v1", "--yes", policies=policy)
    assert result.code == 0, result.output
    assert served.is_symlink() and (served / "VERSION").read_text().strip() == "v1"
    assert (served_dir / "VERSION").read_text().strip() == "v2", "the replaced one is kept"
    assert (tmp_path / "reloads").read_text().splitlines() == ["reloaded v1"]

    data = yaml.safe_load(policy.read_text())
    broken = _hook(
        tmp_path,
        "broken-reload.sh",
        f"cat $BACKUPCTL_MODEL_DIR/VERSION >> {tmp_path}/reloads\nexit 1\n",
    )
    data["restore"]["start"] = [broken]
    policy.write_text(yaml.safe_dump(data))
    failed = backupctl("restore", "llm", "v2", "--yes", policies=policy)
    assert failed.code == 1, failed.output
    assert (served / "VERSION").read_text().strip() == "v1", "swapped back after the failure"
    assert (tmp_path / "reloads").read_text().splitlines()[-2:] == ["v2", "v1"]


def test_a_backup_killed_mid_upload_lists_nothing_and_the_next_one_completes(
    tmp_path: Path, backupctl: Any
) -> None:
    served = tmp_path / "models" / "llm"
    _model(served, "v1", {f"shard-{n}.bin": os.urandom(8 << 20) for n in range(12)})
    policy = _policy(tmp_path, served)
    args = ["--state-dir", str(backupctl.state_dir), "--log-format", "json"]
    proc = popen_backupctl([*args, "--policies", str(policy), "backup", "llm"])
    blobs = tmp_path / "repo" / "llm" / "blobs"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(blobs.rglob("*.zst")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    listed = json.loads(backupctl("catalog", "sync", "--json", policies=policy).stdout or "{}")
    assert listed is not None
    assert json.loads(backupctl("list", "llm", "--json", policies=policy).stdout) == []
    result = backupctl("backup", "llm", policies=policy)
    assert result.code == 0, result.output
    assert len(json.loads(backupctl("list", "llm", "--json", policies=policy).stdout)) == 1
    check = backupctl("verify", "llm", policies=policy)
    assert check.code == 0, check.output


def test_a_prune_with_an_out_of_date_catalog_keeps_every_stored_versions_blobs(
    tmp_path: Path, backupctl: Any
) -> None:
    served = tmp_path / "models" / "llm"
    policy = _policy(tmp_path, served)
    _model(served, "v1", {"head.bin": os.urandom(4096)})
    assert backupctl("backup", "llm", policies=policy).code == 0
    (backupctl.state_dir / "catalog.sqlite").unlink()  # a new host, before catalog sync
    _model(served, "v2", {"head.bin": os.urandom(4096)})
    assert backupctl("backup", "llm", policies=policy).code == 0
    assert backupctl("prune", "llm", policies=policy).code == 0
    assert backupctl("catalog", "sync", policies=policy).code == 0
    result = backupctl("restore", "llm", "v1", "--yes", policies=policy)
    assert result.code == 0, result.output
    assert (served / "VERSION").read_text().strip() == "v1"
