"""Configuration history that outlives its host: every commit's backup stores a Git
bundle (the commits since the backup before), copied like any object to the policy's
other repositories; with the Git directory and the state directory gone, `catalog sync`
finds the backups in the copies and a restore rebuilds the history from their bundles,
each from whichever copy holds it sound."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupctl.policy.config_git import ConfigGitPolicy

pytestmark = pytest.mark.skipif(
    subprocess.run(["git", "--version"], capture_output=True, check=False).returncode != 0,
    reason="needs the git Debian package",
)

VERSIONS = [
    {"nginx/nginx.conf": b"worker_processes 1;\n", "mysql/my.cnf": b"[mysqld]\nport = 3306\n"},
    {"nginx/nginx.conf": b"worker_processes 4;\n", "mysql/my.cnf": b"[mysqld]\nport = 3306\n"},
    {"nginx/nginx.conf": b"worker_processes 8;\n", "mysql/replica.cnf": b"[mysqld]\nid = 2\n"},
]


def _write(etc: Path, files: dict[str, bytes]) -> None:
    """Make ``etc`` hold exactly ``files``."""
    shutil.rmtree(etc, ignore_errors=True)
    for name, data in files.items():
        path = etc / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _policy(tmp_path: Path, etc: Path, copies: list[dict[str, Any]]) -> Path:
    data = {
        "version": 1,
        "name": "configs",
        "driver": "config-git",
        "paths": [str(etc)],
        "repositories": [{"name": "local", "url": f"file://{tmp_path / 'history.git'}"}, *copies],
    }
    path = tmp_path / "policies" / "configs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _three_backups(backupctl: Any, policy: Path, etc: Path) -> list[dict[str, Any]]:
    """Back up each version (copied after each backup); return the manifests."""
    manifests = []
    for number, files in enumerate(VERSIONS):
        _write(etc, files)
        # commits keep whole seconds: each a minute after the one before
        env = {"BACKUPCTL_CLOCK_OFFSET": str(60 * number)}
        result = backupctl("backup", "configs", "--json", policies=policy, env=env)
        assert result.code == 0, result.output
        manifests.append(json.loads(result.stdout))
    return manifests


def _lose_the_host(tmp_path: Path, backupctl: Any) -> None:
    shutil.rmtree(tmp_path / "history.git")
    shutil.rmtree(backupctl.state_dir)


def test_history_is_restored_from_an_s3_copy_after_the_host_is_lost(
    tmp_path: Path, backupctl: Any, s3_endpoint: str, s3_bucket: str, s3_client: Any
) -> None:
    etc = tmp_path / "etc"
    key = tmp_path / "offsite.key"
    key.write_text("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n")  # 32 bytes, base64
    key.chmod(0o600)
    offsite = {
        "name": "offsite",
        "url": f"s3://{s3_bucket}/site-a",
        "endpoint_url": s3_endpoint,
        "encryption": {"key_file": str(key)},
    }
    policy = _policy(tmp_path, etc, [offsite])
    manifests = _three_backups(backupctl, policy, etc)

    first, second, third = (m["details"] for m in manifests)
    assert (first["bundle_base"], first["bundle_base_backup"]) == (None, None)
    assert second["bundle_base"] == first["commit"]
    assert second["bundle_base_backup"] == manifests[0]["backup_id"]
    assert third["bundle_base"] == second["commit"]
    for manifest in manifests:
        (bundle,) = [a for a in manifest["artifacts"] if a["name"] == "history.bundle"]
        assert bundle["compression"] == "none" and bundle["raw_bytes"] == bundle["stored_bytes"]
        stored = tmp_path / "history.git" / "backupctl" / bundle["key"]
        assert stored.read_bytes().startswith(b"# v2 git bundle\n")
        # off-site, encrypted with the copy's own key: not the bundle's bytes
        body = s3_client.get_object(Bucket=s3_bucket, Key=f"site-a/{bundle['key']}")["Body"]
        assert not body.read().startswith(b"# v2 git bundle")
    # incremental: the third bundle builds on the second's commit and holds its own only
    third_bundle = tmp_path / "history.git" / "backupctl" / manifests[2]["artifacts"][0]["key"]
    heads = subprocess.run(
        ["git", "bundle", "list-heads", str(third_bundle)], capture_output=True, check=False
    )
    assert heads.stdout.decode().split() == [third["commit"], "refs/heads/configs"]

    # nothing changed: nothing stored, nothing copied, as before
    again = backupctl("backup", "configs", policies=policy)
    assert again.code == 0 and "nothing stored" in again.stdout, again.output

    _lose_the_host(tmp_path, backupctl)
    synced = backupctl("catalog", "sync", policies=policy)
    assert synced.code == 0, synced.output
    listed = json.loads(backupctl("list", "configs", "--json", policies=policy).stdout)
    assert [m["backup_id"] for m in listed] == [m["backup_id"] for m in manifests]
    assert all(set(m["copies"]) == {"offsite"} and not m["in_first_repository"] for m in listed)

    plan = backupctl(
        "restore", "configs", "--at", second["commit"][:12], "--target-dir",
        str(tmp_path / "unused"), "--dry-run", "--json", policies=policy,
    )  # fmt: skip
    assert plan.code == 0, plan.output
    steps = [s["name"] for s in json.loads(plan.stdout)["steps"]]
    assert steps == [
        "prepare-target",
        "rebuild-history",
        "extract-files",
        "verify-files",
        "remove-history",
    ]

    for number, at in ((1, second["commit"]), (2, manifests[2]["backup_id"])):
        target = tmp_path / f"restored-{number}"
        result = backupctl(
            "restore", "configs", "--at", at, "--target-dir", str(target), "--yes", "--json",
            policies=policy,
        )  # fmt: skip
        assert result.code == 0, result.output
        assert _files(target / str(etc).lstrip("/")) == VERSIONS[number]
        report = json.loads(result.stdout)
        assert report["backup"]["backup_id"] == manifests[number]["backup_id"]
    assert not (tmp_path / "history.git").exists()
    assert not list((backupctl.state_dir / "work").rglob("*.bundle"))
    assert not [p for p in (backupctl.state_dir / "work" / "configs").iterdir()]


def test_a_bundle_corrupt_in_one_copy_is_read_from_the_other(
    tmp_path: Path, backupctl: Any
) -> None:
    etc = tmp_path / "etc"
    copies = [
        {"name": "disk-a", "url": f"file://{tmp_path / 'copy-a'}"},
        {"name": "disk-b", "url": f"file://{tmp_path / 'copy-b'}"},
    ]
    policy = _policy(tmp_path, etc, copies)
    manifests = _three_backups(backupctl, policy, etc)
    # a different bundle damaged in each copy (same size): whichever copy is read first
    # serves one bad bundle, and the other copy serves it sound
    for copy, manifest in (("copy-a", manifests[0]), ("copy-b", manifests[1])):
        bundle = next(a for a in manifest["artifacts"] if a["name"] == "history.bundle")
        path = tmp_path / copy / bundle["key"]
        data = bytearray(path.read_bytes())
        data[-30] ^= 0xFF
        path.write_bytes(bytes(data))

    _lose_the_host(tmp_path, backupctl)
    assert backupctl("catalog", "sync", policies=policy).code == 0
    target = tmp_path / "restored"
    result = backupctl(
        "restore", "configs", "--at", manifests[1]["backup_id"], "--target-dir", str(target),
        "--yes", "--json", policies=policy,
    )  # fmt: skip
    assert result.code == 0, result.output
    assert _files(target / str(etc).lstrip("/")) == VERSIONS[1]
    (healed,) = json.loads(result.stdout)["healed"]  # the first copy read: one bad bundle
    assert healed["key"].endswith("/history.bundle") and healed["problem"].startswith("corrupt")
    assert {healed["repository"], healed["served_by"]} == {"disk-a", "disk-b"}


def test_config_git_copies_are_validated() -> None:
    base = {
        "version": 1,
        "name": "configs",
        "driver": "config-git",
        "paths": ["/etc/nginx"],
    }
    good = ConfigGitPolicy.model_validate(
        {
            **base,
            "repositories": [
                {"name": "local", "url": "file:///var/backups/config-history.git"},
                {"name": "offsite", "url": "s3://bucket/site-a"},
            ],
        }
    )
    assert [r.name for r in good.copies] == ["offsite"]
    assert good.manifest_repository.url == "file:///var/backups/config-history.git/backupctl"

    refused = {
        "bare Git repository on a local": [
            {"name": "offsite", "url": "s3://bucket/site-a"},
            {"name": "local", "url": "file:///var/backups/config-history.git"},
        ],
        "inside the Git repository": [
            {"name": "local", "url": "file:///var/backups/config-history.git"},
            {"name": "inner", "url": "file:///var/backups/config-history.git/copy"},
        ],
    }
    for message, repositories in refused.items():
        with pytest.raises(ValueError, match=message):
            ConfigGitPolicy.model_validate({**base, "repositories": repositories})


def test_manifests_copied_back_without_git_verify_deep_and_drill_from_bundles(
    tmp_path: Path, backupctl: Any
) -> None:
    """The operator puts an off-site copy back where the manifests lived (the Git
    directory itself is gone): verify, verify --deep and a drill read the history from
    the bundles; the next check starts a new history, its bundle whole."""
    etc = tmp_path / "etc"
    policy = _policy(tmp_path, etc, [{"name": "disk", "url": f"file://{tmp_path / 'copy'}"}])
    manifests = _three_backups(backupctl, policy, etc)
    _lose_the_host(tmp_path, backupctl)
    shutil.copytree(tmp_path / "copy", tmp_path / "history.git" / "backupctl")
    assert backupctl("catalog", "sync", policies=policy).code == 0

    newest = manifests[-1]["backup_id"]
    verified = backupctl("verify", "configs", newest, "--deep", "--json", policies=policy)
    assert verified.code == 0, verified.output
    checks = {c["name"]: c for c in json.loads(verified.stdout)["checks"]}
    assert (
        "in the bundles of 3 backup(s)"
        in checks[f"commit {manifests[-1]['details']['commit'][:12]}"]["detail"]
    )
    assert checks["chain"]["passed"] and checks["extract"]["passed"]

    drill = backupctl("drill", "run", "configs", "--json", policies=policy)
    assert drill.code == 0, drill.output
    report = json.loads(drill.stdout)
    assert [s["name"] for s in report["steps"]] == [
        "rebuild-history",
        "check-history",
        "prepare-target",
        "extract-files",
        "verify-files",
        "remove-files",
        "remove-history",
    ]
    assert all(c["passed"] for c in report["checks"])

    _write(etc, {"nginx/nginx.conf": b"worker_processes 16;\n"})
    after = backupctl("backup", "configs", "--json", policies=policy)
    assert after.code == 0, after.output
    details = json.loads(after.stdout)["details"]
    assert details["bundle_base"] is None and details["compared_with"] is None


def test_a_git_directory_that_lost_the_commit_restores_from_bundles_and_fails_drills(
    tmp_path: Path, backupctl: Any
) -> None:
    """A Git repository there, without the commit (re-created empty beside the kept
    manifests): a restore reads the bundles; a drill, which checks that repository, fails."""
    etc = tmp_path / "etc"
    policy = _policy(tmp_path, etc, [])
    manifests = _three_backups(backupctl, policy, etc)
    git_dir = tmp_path / "history.git"
    for entry in git_dir.iterdir():
        if entry.name != "backupctl":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    subprocess.run(["git", "init", "--bare", "--quiet", str(git_dir)], check=True)

    target = tmp_path / "restored"
    result = backupctl(
        "restore", "configs", "--at", manifests[0]["backup_id"], "--target-dir", str(target),
        "--yes", "--json", policies=policy,
    )  # fmt: skip
    assert result.code == 0, result.output
    assert "rebuild-history" in [s["name"] for s in json.loads(result.stdout)["steps"]]
    assert _files(target / str(etc).lstrip("/")) == VERSIONS[0]

    drill = backupctl("drill", "run", "configs", "--json", policies=policy)
    assert drill.code == 3, drill.output
    assert json.loads(drill.stdout)["reason"].startswith("step 'check-history' failed")
