"""The config-git driver's manifest details as a typed document: what a backup stores
reads back to the same JSON, manifests of older versions still read, and tampered ones
are refused (exit 3, naming the backup) before any of their values reaches ``git``."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backupctl.catalog.manifest import Manifest, parse_manifest
from backupctl.drivers.base import RestoreRun
from backupctl.drivers.config_git import history
from backupctl.drivers.config_git.changes import Changes
from backupctl.drivers.config_git.details import ConfigGitDetails
from backupctl.drivers.config_git.driver import ConfigGitDriver, _details
from backupctl.drivers.config_git.gitrepo import GitRepository
from backupctl.drivers.config_git.snapshot import Attributes, Snapshot
from backupctl.errors import UsageError, VerificationFailed
from backupctl.layout import StateLayout
from backupctl.operations.backup import as_json
from backupctl.policy.config_git import ConfigGitPolicy, ConfigGitRestoreOptions
from backupctl.storage.local import LocalRepository

BACKUP_ID = "20261121T140200Z-3fa9c1"
FIRST = "3fa9c1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9"
SECOND = "9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a"
TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

#: details exactly as a backup stores them (every version so far wrote these keys)
STORED: dict[str, Any] = {
    "summary": f"commit {SECOND[:12]}: 1 changed, 1 added, 0 removed: /etc/a.conf, /etc/b.conf",
    "commit": SECOND,
    "parent": FIRST,
    "compared_with": FIRST,
    "tree": TREE,
    "branch": "refs/heads/configs",
    "git_dir": "/var/backups/config-history.git",
    "repository_action": "existing",
    "committed_at": "2026-11-21T14:02:00+00:00",
    "counts": {"changed": 1, "added": 1, "removed": 0},
    "changed": ["/etc/a.conf"],
    "added": ["/etc/b.conf"],
    "removed": [],
    "files": 2,
    "links": 0,
    "directories": 1,
    "bytes": 42,
    "paths": ["/etc"],
    "missing": [],
    "excluded": 1,
    "skipped": [],
    "bundle_base": FIRST,
    "bundle_base_backup": "20261121T130000Z-aaaaaa",
}

#: everything but the commit id: what a manifest may lack and still be read
OPTIONAL = sorted(set(STORED) - {"commit"})


def _policy(tmp_path: Path) -> ConfigGitPolicy:
    return ConfigGitPolicy.model_validate(
        {
            "version": 1,
            "name": "configs",
            "driver": "config-git",
            "paths": [str(tmp_path / "etc"), str(tmp_path / "absent")],
            "repository": f"file://{tmp_path / 'history.git'}",
        }
    )


def _manifest(details: dict[str, Any], backup_id: str = BACKUP_ID) -> Manifest:
    """A manifest as read from the repository: its JSON, parsed and checked."""
    data = {
        "backup_id": backup_id,
        "policy": "configs",
        "driver": "config-git",
        "kind": "commit",
        "started_at": "2026-11-21T14:02:00+00:00",
        "finished_at": "2026-11-21T14:02:03+00:00",
        "artifacts": [],
        "details": details,
    }
    return parse_manifest(json.dumps(data).encode(), f"{backup_id}/manifest.json")


def test_details_the_driver_writes_read_back_to_the_same_json(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    etc = str(tmp_path / "etc")
    snapshot = Snapshot(
        entries={
            etc: Attributes("dir", 0o755, 0, 0),
            f"{etc}/a.conf": Attributes("file", 0o640, 0, 0),
            f"{etc}/b.conf": Attributes("link", 0o777, 0, 0),
        },
        sizes={f"{etc}/a.conf": 11},
        missing=[str(tmp_path / "absent")],
        excluded=[f"{etc}/server.key"],
    )
    changes = Changes(added=[f"{etc}/a.conf", f"{etc}/b.conf"])
    when = datetime(2026, 11, 21, 14, 2, tzinfo=UTC)

    stored = as_json(_details(policy, snapshot, changes, FIRST, None, None, TREE, when, "created"))

    assert sorted(stored) == sorted(STORED)  # the keys readers and tests know, no more
    assert stored["parent"] is None and stored["compared_with"] is None  # the first commit
    assert stored["committed_at"] == "2026-11-21T14:02:00+00:00"  # isoformat, not "...Z"
    assert stored["counts"] == {"changed": 0, "added": 2, "removed": 0}
    assert stored["missing"] == [str(tmp_path / "absent")]
    assert (stored["files"], stored["links"], stored["directories"]) == (1, 1, 1)
    assert (stored["bytes"], stored["excluded"]) == (11, 1)

    manifest = _manifest(json.loads(json.dumps(stored)))  # through the stored JSON
    assert ConfigGitDetails.of(manifest).model_dump(mode="json") == stored
    listed = f"commit {FIRST[:12]}: 0 changed, 2 added, 0 removed: {etc}/a.conf, {etc}/b.conf"
    assert ConfigGitDriver.note(manifest) == listed
    assert history.committed_at(manifest) == when


def test_a_stored_manifest_reads_back_unchanged_with_what_a_later_version_added() -> None:
    details = {**STORED, "signed_by": "a later version's field"}
    manifest = _manifest(details)
    read = ConfigGitDetails.of(manifest)
    assert read.model_dump(mode="json") == details
    assert read.commit == SECOND and read.tree == TREE
    assert history.committed_at(manifest) == datetime(2026, 11, 21, 14, 2, tzinfo=UTC)
    assert history.named([manifest], SECOND[:7].upper(), "configs") is manifest


@pytest.mark.parametrize("missing", [*OPTIONAL, "all of them"])
def test_manifests_of_older_versions_still_read(missing: str) -> None:
    gone = OPTIONAL if missing == "all of them" else [missing]
    details = {k: v for k, v in STORED.items() if k not in gone}
    manifest = _manifest(details)

    read = ConfigGitDetails.of(manifest)
    assert read.commit == SECOND
    dumped = read.model_dump(mode="json")
    assert sorted(dumped) == sorted(STORED)  # the same shape, what was not recorded as null
    assert {k: dumped[k] for k in gone} == {k: "" if k == "summary" else None for k in gone}
    assert history.named([manifest], SECOND[:10], "configs") is manifest
    assert ConfigGitDriver.note(manifest) == details.get("summary", "")
    expected = datetime(2026, 11, 21, 14, 2, 3 if "committed_at" in gone else 0, tzinfo=UTC)
    assert history.committed_at(manifest) == expected  # else the manifest's finish time


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.update({key: value})


TAMPERED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "commit an option": (_set("commit", "--upload-pack=touch /tmp/pwned"), "refusing commit id"),
    "commit a revision": (_set("commit", "HEAD~1"), "refusing commit id 'HEAD~1'"),
    "commit a prefix": (_set("commit", SECOND[:12]), "refusing commit id"),
    "commit and a newline": (_set("commit", SECOND + "\n"), "refusing commit id"),
    "commit a number": (_set("commit", 42), "commit: Input should be a valid string"),
    "commit missing": (lambda d: d.pop("commit"), "commit: Field required"),
    "tree a revision": (_set("tree", f"{SECOND}^{{tree}}"), "refusing tree id"),
    "parent an option": (_set("parent", "--all"), "parent: refusing commit id '--all'"),
    "bundle base a revision": (_set("bundle_base", "HEAD~1"), "bundle_base: refusing commit"),
    "bundle base backup a path": (
        _set("bundle_base_backup", "../../etc"),
        "bundle_base_backup: refusing backup id",
    ),
    "counts a list": (_set("counts", [1, 1, 0]), "counts: Input should be a valid dictionary"),
    "a count missing": (lambda d: d["counts"].pop("added"), "counts.added: Field required"),
    "a count text": (_set("files", "2"), "files: Input should be a valid integer"),
    "a count negative": (_set("bytes", -1), "bytes: Input should be greater than or equal"),
    "time not one": (_set("committed_at", "yesterday"), "committed_at: Input should be"),
    "time without zone": (_set("committed_at", "2026-11-21T14:02:00"), "timezone"),
    "a list a string": (_set("changed", "/etc/a.conf"), "changed: Input should be a valid list"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_details_are_refused_naming_the_backup(case: str) -> None:
    change, said = TAMPERED[case]
    details = copy.deepcopy(STORED)
    change(details)
    manifest = _manifest(details)

    with pytest.raises(VerificationFailed) as refused:
        ConfigGitDetails.of(manifest)
    assert refused.value.exit_code == 3
    message = str(refused.value)
    assert message.startswith(f"refusing backup {BACKUP_ID} of configs: ")
    assert said in message
    assert ConfigGitDriver.note(manifest) == ""  # listings show it, without a note


def test_restoring_by_commit_refuses_a_tampered_manifest_it_might_name() -> None:
    good = _manifest(STORED, "20261121T130000Z-aaaaaa")
    bad = _manifest({**STORED, "commit": "HEAD~1"})
    with pytest.raises(VerificationFailed, match=BACKUP_ID):
        history.named([good, bad], SECOND[:8], "configs")
    assert history.named([good, bad], good.backup_id, "configs") is good  # by id: not read
    with pytest.raises(UsageError, match=f"before the first commit of configs \\({SECOND[:12]}"):
        history.at_or_before([good], datetime(2001, 1, 1, tzinfo=UTC), "configs")


@pytest.fixture
def git_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Every git command the driver runs (none succeeds: there is no repository)."""
    calls: list[tuple[str, ...]] = []

    def run(self: GitRepository, *args: str, **kwargs: Any) -> Any:
        calls.append(args)
        raise AssertionError(f"git ran with {args}")

    monkeypatch.setattr(GitRepository, "run", run)
    return calls


@pytest.mark.parametrize("commit", ["--output=/tmp/x", "HEAD~1", f"{SECOND}^{{tree}}"])
def test_a_tampered_commit_never_reaches_git(
    commit: str, tmp_path: Path, git_calls: list[tuple[str, ...]]
) -> None:
    driver = ConfigGitDriver(_policy(tmp_path))
    manifest = _manifest({**STORED, "commit": commit})
    repo = LocalRepository(tmp_path / "repo")
    run = RestoreRun("20261121T150000Z-bbbbbb", StateLayout(tmp_path / "state"))
    options = ConfigGitRestoreOptions(at=BACKUP_ID, target_dir=tmp_path / "restored")

    attempts: dict[str, Callable[[], object]] = {
        "verify": lambda: driver.verify_quick(repo, manifest),
        "verify --deep": lambda: driver.verify_deep(repo, manifest, tmp_path),
        "drill": lambda: driver.drill_plan(repo, manifest, run, tmp_path / "sandbox"),
        "restore": lambda: driver.restore_steps(repo, manifest, options, run),
    }
    for what, attempt in attempts.items():
        with pytest.raises(VerificationFailed, match=f"{BACKUP_ID}.*refusing commit id"):
            attempt()
        assert git_calls == [], what
    assert not (tmp_path / "restored").exists()
