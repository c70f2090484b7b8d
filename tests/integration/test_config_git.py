"""Configuration history through the CLI, with real files and the real ``git``: checks
commit only changes, excluded secrets never reach Git, restores bring back the bytes and
modes of a chosen commit (by id or time, optionally one subtree) into an empty directory,
and the catalog rebuilds from the repository alone."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupctl.errors import BackupFailed, NothingChanged, RepositoryError
from backupctl.layout import StateLayout
from backupctl.operations.backup import run_backup
from backupctl.operations.context import Context
from backupctl.policy.config_git import ConfigGitPolicy
from backupctl.storage.factory import open_repository

pytestmark = pytest.mark.skipif(
    subprocess.run(["git", "--version"], capture_output=True, check=False).returncode != 0,
    reason="needs the git Debian package",
)

SECRET = b"password = hunter2-do-not-commit\n"


def _etc(root: Path) -> Path:
    """A small /etc: nginx (a 0640 file, a symlink, a private key) and mysql."""
    etc = root / "etc"
    (etc / "nginx" / "sites-enabled").mkdir(parents=True)
    (etc / "mysql").mkdir()
    (etc / "nginx" / "nginx.conf").write_bytes(b"worker_processes 1;\n")
    (etc / "nginx" / "nginx.conf").chmod(0o640)
    (etc / "nginx" / "sites-enabled" / "default").symlink_to("../nginx.conf")
    (etc / "nginx" / "server.key").write_bytes(SECRET)
    (etc / "mysql" / "my.cnf").write_bytes(b"[mysqld]\nport = 3306\n")
    (etc / "mysql" / "debian.cnf").write_bytes(SECRET)
    (etc / "mysql" / "app-secret.cnf").write_bytes(SECRET)
    return etc


def _policy(root: Path, etc: Path) -> Path:
    data = {
        "version": 1,
        "name": "configs",
        "driver": "config-git",
        "paths": [str(etc / "nginx"), str(etc / "mysql"), str(etc / "absent")],
        "exclude": ["*.key", "*secret*", str(etc / "mysql" / "debian.cnf")],
        "repository": f"file://{root / 'history.git'}",
        "schedule": {"check": "*/10 * * * *"},
    }
    path = root / "policies" / "configs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _backup(
    backupctl: Any, policy: Path, env: dict[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """Run a check that commits; return the backup id and the manifest's details."""
    result = backupctl("backup", "configs", "--json", policies=policy, env=env)
    assert result.code == 0, result.output
    manifest = json.loads(result.stdout)
    return manifest["backup_id"], manifest["details"]


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], capture_output=True, check=True, text=True
    ).stdout


def _local(iso: str) -> str:
    """A manifest's UTC time as an operator types it: local, no offset."""
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def test_history_restore_by_commit_and_time_and_secrets(tmp_path: Path, backupctl: Any) -> None:
    etc = _etc(tmp_path)
    policy = _policy(tmp_path, etc)
    git_dir = tmp_path / "history.git"
    first_id, first = _backup(backupctl, policy)
    assert first["counts"] == {"changed": 0, "added": 3, "removed": 0}
    assert first["missing"] == [str(etc / "absent")]

    again = backupctl("backup", "configs", policies=policy)
    assert again.code == 0, again.output
    assert "nothing stored" in again.stdout
    assert _git(git_dir, "rev-list", "--count", "refs/heads/configs").strip() == "1"
    assert len(list((git_dir / "backupctl" / "configs" / "commit").iterdir())) == 1

    (etc / "nginx" / "nginx.conf").write_bytes(b"worker_processes 8;\n")
    (etc / "mysql" / "replica.cnf").write_bytes(b"[mysqld]\nserver_id = 2\n")
    (etc / "nginx" / "server.key").write_bytes(SECRET + b"rotated\n")
    # commits carry whole seconds: the second is taken "a minute later" (the CLI's clock
    # moved on, nobody waits), so --at TIME tells the two apart
    _second_id, second = _backup(backupctl, policy, {"BACKUPCTL_CLOCK_OFFSET": "60"})
    assert second["counts"] == {"changed": 1, "added": 1, "removed": 0}
    assert second["summary"].startswith(f"commit {second['commit'][:12]}: 1 changed, 1 added")
    subject = _git(git_dir, "log", "-1", "--format=%s", "refs/heads/configs").strip()
    assert subject == (
        f"configs: 1 changed, 1 added, 0 removed: {etc}/nginx/nginx.conf, {etc}/mysql/replica.cnf"
    )
    assert _git(git_dir, "log", "-1", "--format=%an <%ae>", "refs/heads/configs").startswith(
        "backupctl <backupctl@"
    )

    everything = _git(git_dir, "log", "--all", "-p")
    assert "hunter2" not in everything
    for commit in (first["commit"], second["commit"]):
        names = _git(git_dir, "ls-tree", "-r", "--name-only", commit).splitlines()
        assert f"{str(etc).lstrip('/')}/nginx/nginx.conf" in names
        assert not {Path(n).name for n in names} & {"server.key", "app-secret.cnf", "debian.cnf"}

    listed = backupctl("list", "configs", policies=policy)
    assert f"commit {first['commit'][:12]}: 0 changed, 3 added" in listed.stdout
    assert f"commit {second['commit'][:12]}: 1 changed, 1 added" in listed.stdout

    out = tmp_path / "restored"
    result = backupctl(
        "restore", "configs", "--at", first["commit"][:10], "--target-dir", str(out),
        policies=policy,
    )  # fmt: skip
    assert result.code == 0, result.output
    conf = out / str(etc).lstrip("/") / "nginx" / "nginx.conf"
    assert conf.read_bytes() == b"worker_processes 1;\n"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    link = conf.parent / "sites-enabled" / "default"
    assert link.is_symlink() and os.readlink(link) == "../nginx.conf"
    assert not (conf.parent.parent / "mysql" / "replica.cnf").exists()
    assert "PASS  content" in result.stdout and "recovered to" in result.stdout

    subtree = tmp_path / "subtree"
    result = backupctl(
        "restore", "configs", "--at", _local(first["committed_at"]),
        "--path", str(etc / "mysql"), "--target-dir", str(subtree), "--json",
        policies=policy,
    )  # fmt: skip
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["backup"]["backup_id"] == first_id
    written = sorted(p.relative_to(subtree).as_posix() for p in subtree.rglob("*") if p.is_file())
    assert written == [f"{str(etc).lstrip('/')}/mysql/my.cnf"]

    newest = tmp_path / "newest"
    at = datetime.fromisoformat(second["committed_at"]).isoformat()  # with an offset
    result = backupctl(
        "restore", "configs", "--at", at, "--path", str(etc / "mysql" / "replica.cnf"),
        "--target-dir", str(newest), policies=policy,
    )  # fmt: skip
    assert result.code == 0, result.output
    assert (newest / str(etc).lstrip("/") / "mysql" / "replica.cnf").exists()


def test_bad_restores_are_refused_with_exit_2(tmp_path: Path, backupctl: Any) -> None:
    etc = _etc(tmp_path)
    policy = _policy(tmp_path, etc)
    commit = _backup(backupctl, policy)[1]["commit"]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")

    cases = {
        "not empty": ["--at", commit, "--target-dir", str(busy)],
        "no commit or backup 'beef42'": ["--at", "beef42", "--target-dir", str(tmp_path / "a")],
        "before the first commit": ["--at", "2001-01-01 00:00:00", "--target-dir", str(busy)],
        "--at": ["--target-dir", str(tmp_path / "b")],
        "which this policy watches": ["--at", commit, "--target-dir", str(etc / "nginx" / "r")],
    }
    for expected, args in cases.items():
        result = backupctl("restore", "configs", *args, policies=policy)
        assert result.code == 2, (expected, result.output)
        assert expected in result.stderr and "Traceback" not in result.output
    assert (busy / "keep.txt").read_text() == "mine" and len(list(busy.iterdir())) == 1

    plan = backupctl(
        "restore", "configs", "--at", commit, "--target-dir", str(tmp_path / "c"), "--dry-run",
        policies=policy,
    )  # fmt: skip
    assert plan.code == 0, plan.output
    assert "extract-files: write 2 file(s), 1 link(s)" in plan.stdout
    assert not (tmp_path / "c").exists()


def test_catalog_sync_rebuilds_the_history_from_the_repository(
    tmp_path: Path, backupctl: Any
) -> None:
    etc = _etc(tmp_path)
    policy = _policy(tmp_path, etc)
    commit = _backup(backupctl, policy)[1]["commit"]
    prune = backupctl("prune", "configs", "--json", policies=policy)
    assert prune.code == 0, prune.output
    assert [r["reason"] for r in json.loads(prune.stdout)["decisions"]] == [
        "config history is kept forever"
    ]

    (backupctl.state_dir / "catalog.sqlite").unlink()
    synced = backupctl("catalog", "sync", policies=policy)
    assert synced.code == 0, synced.output
    assert f"{tmp_path / 'history.git' / 'backupctl'}: 1 backup(s)" in synced.stdout
    listed = json.loads(backupctl("list", "configs", "--json", policies=policy).stdout)
    assert [m["details"]["commit"] for m in listed] == [commit]


def test_mode_changes_unrecorded_commits_and_missing_paths_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Library level (no CLI start-up): a mode change alone is a commit; a commit whose
    manifest was never written is not taken as recorded; all paths missing fails."""
    etc = _etc(tmp_path)
    policy = ConfigGitPolicy.model_validate(yaml.safe_load(_policy(tmp_path, etc).read_text()))
    repo = open_repository(policy.manifest_repository)
    ctx = Context(StateLayout(tmp_path / "state"), repositories=lambda _policy: repo)
    catalog = ctx.catalog()
    first = run_backup(ctx, policy)

    (etc / "mysql" / "my.cnf").chmod(0o600)
    put_bytes = type(repo).put_bytes

    def no_manifest(self: Any, key: str, data: bytes) -> None:
        if key.endswith("/manifest.json"):
            raise RepositoryError("disk full")
        put_bytes(self, key, data)

    monkeypatch.setattr(type(repo), "put_bytes", no_manifest)
    with pytest.raises(RepositoryError):
        run_backup(ctx, policy)  # committed, but never recorded
    monkeypatch.undo()
    orphan = _git(tmp_path / "history.git", "rev-parse", "refs/heads/configs").strip()

    second = run_backup(ctx, policy)
    assert second.details["changed"] == [str(etc / "mysql" / "my.cnf")]
    assert second.details["compared_with"] == first.details["commit"]
    assert second.details["parent"] == orphan  # history is never rewritten
    with pytest.raises(NothingChanged):
        run_backup(ctx, policy)
    assert [m.backup_id for m in catalog.list("configs")] == [first.backup_id, second.backup_id]

    gone = policy.model_copy(update={"paths": [tmp_path / "nowhere"]})
    with pytest.raises(BackupFailed, match="none of the paths"):
        run_backup(ctx, gone)
