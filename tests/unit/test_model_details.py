"""The model driver's manifest details as a typed document: today's JSON is unchanged,
details an older version wrote still list and restore, tampered ones are refused (exit 3)
naming the backup, and a bad manifest never breaks a listing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backupctl.catalog.manifest import Manifest, parse_manifest
from backupctl.drivers.base import RestoreRun
from backupctl.drivers.models import steps
from backupctl.drivers.models.details import ModelDetails
from backupctl.drivers.models.driver import ModelDriver
from backupctl.drivers.models.tree import scan_tree, tree_hash
from backupctl.errors import VerificationFailed
from backupctl.layout import StateLayout
from backupctl.operations.backup import as_json, run_backup
from backupctl.operations.context import Context
from backupctl.policy.loader import load_policies
from backupctl.policy.model import ModelPolicy, ModelRestoreOptions
from backupctl.runbook.step import RunContext
from backupctl.storage.base import Repository
from tests.support.cli import CliResult
from tests.support.model_policies import model_policy

#: the details fields a version written before the typed model may lack
OPTIONAL = ("version_from", "path", "files", "bytes", "new_bytes", "new_stored_bytes")


def _model_dir(root: Path, version: str) -> None:
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "weights.bin").write_bytes(version.encode() * 4000)
    (root / "sub" / "vocab.json").write_text('{"a": 1}')
    (root / "link").unlink(missing_ok=True)
    (root / "link").symlink_to("sub/vocab.json")
    (root / "VERSION").write_text(version + "\n")


def _policy_file(tmp_path: Path) -> Path:
    served = tmp_path / "srv" / "llm"
    return model_policy(
        tmp_path / "policies", "llm", served, tmp_path / "repo", {"check": "*/15 * * * *"}
    )


def _stored(tmp_path: Path, manifest: Manifest) -> Path:
    return tmp_path / "repo" / manifest.prefix / "manifest.json"


@pytest.fixture
def backed_up(tmp_path: Path) -> tuple[ModelPolicy, Manifest]:
    """One stored version ("7": a version that looks like a number) of a small model."""
    policy = load_policies(_policy_file(tmp_path))[0]
    assert isinstance(policy, ModelPolicy)
    _model_dir(policy.path, "7")
    manifest = run_backup(Context(StateLayout(tmp_path / "state")), policy)
    return policy, manifest


def _repo(tmp_path: Path, policy: ModelPolicy) -> Repository:
    return Context(StateLayout(tmp_path / "state")).repository(policy)


def _with_details(manifest: Manifest, details: dict[str, Any]) -> Manifest:
    return manifest.model_copy(update={"details": details})


def test_details_written_today_keep_their_json_and_round_trip(
    tmp_path: Path, backed_up: tuple[ModelPolicy, Manifest]
) -> None:
    policy, manifest = backed_up
    raw = _stored(tmp_path, manifest).read_bytes()
    stored = json.loads(raw)["details"]
    entries = scan_tree(policy.path)
    files = [e for e in entries if e.kind == "file"]
    size = sum(e.size for e in files)
    # exactly the keys and values the driver wrote as a plain dict before
    assert stored == {
        "version": "7",  # a string, as read from the VERSION file, never the number 7
        "version_from": "VERSION",
        "path": str(policy.path),
        "tree_hash": tree_hash(entries),
        "files": 3,
        "bytes": size,
        "new_bytes": size,  # the first version: every file is new
        "new_stored_bytes": sum(a.stored_bytes for a in manifest.artifacts),
        "entries": [e.to_dict() for e in entries],
    }
    read = parse_manifest(raw, "test")
    details = ModelDetails.of(read)
    assert (details.version, details.files, details.bytes) == ("7", 3, size)
    staging = tmp_path / "staging"
    plan = steps.Materialise(_repo(tmp_path, policy), read, staging).describe(RunContext("run"))
    assert plan == f"write version 7 (3 files, {size} bytes) to {staging}"
    # read and written back: the same manifest, byte for byte
    again = _with_details(read, as_json(details))
    assert again.to_json().encode() == raw


def test_fields_a_later_version_adds_are_kept(backed_up: tuple[ModelPolicy, Manifest]) -> None:
    _, manifest = backed_up
    later = {**manifest.details, "quantisation": {"bits": 4}}
    details = ModelDetails.of(_with_details(manifest, later))
    assert as_json(details)["quantisation"] == {"bits": 4}


def test_details_an_older_version_wrote_read_in_python(
    tmp_path: Path, backed_up: tuple[ModelPolicy, Manifest]
) -> None:
    policy, manifest = backed_up
    old = _with_details(manifest, {k: v for k, v in manifest.details.items() if k not in OPTIONAL})
    details = ModelDetails.of(old)
    assert details.version == "7" and details.tree_hash == manifest.details["tree_hash"]
    assert (details.files, details.bytes, details.new_bytes) == (None, None, None)
    assert ModelDriver.note(old) == "version 7"  # no size it did not record
    assert ModelDriver(policy).names(old) == ("7",)
    # and it restores: every entry written, the tree hash checked
    staging, ctx = tmp_path / "staging", RunContext("test-run")
    materialise = steps.Materialise(_repo(tmp_path, policy), old, staging)
    assert materialise.describe(ctx) == f"write version 7 to {staging}"  # sizes not recorded
    assert materialise.run(ctx).startswith("5 entries written")  # 3 files, a dir, a link
    assert "matches the manifest" in steps.CheckHashes(old, staging).run(ctx)
    assert (staging / "VERSION").read_text() == "7\n"
    assert (staging / "link").readlink() == Path("sub/vocab.json")


@pytest.mark.slow
def test_the_cli_lists_and_restores_old_details_and_refuses_tampered_ones(
    tmp_path: Path, backupctl: Callable[..., CliResult]
) -> None:
    """v1 as an older version wrote it, v2 tampered with, v3 as written today."""
    policy = _policy_file(tmp_path)
    served = tmp_path / "srv" / "llm"
    ids = []
    for version in ("v1", "v2", "v3"):
        _model_dir(served, version)
        result = backupctl("backup", "llm", "--json", policies=policy)
        assert result.code == 0, result.output
        ids.append(json.loads(result.stdout)["backup_id"])
    old, tampered = (tmp_path / "repo" / "llm" / "version" / i / "manifest.json" for i in ids[:2])
    data = json.loads(old.read_text())
    for key in OPTIONAL:
        del data["details"][key]
    old.write_text(json.dumps(data))
    data = json.loads(tampered.read_text())
    data["details"]["version"] = ["v2"]
    tampered.write_text(json.dumps(data))
    assert backupctl("catalog", "sync", policies=policy).code == 0

    listed = backupctl("list", "llm", policies=policy)
    assert listed.code == 0, listed.output
    notes = {
        i: row.split("ok", 1)[1].strip()
        for i in ids
        for row in listed.stdout.splitlines()
        if i in row
    }
    assert notes[ids[0]] == "version v1"  # no "new" size: it was not recorded
    assert notes[ids[1]] == ""  # unreadable details: no note, and no crash
    assert notes[ids[2]].startswith("version v3, ") and notes[ids[2]].endswith(" new")

    restored = backupctl("restore", "llm", "v1", "--yes", policies=policy)  # by its version
    assert restored.code == 0, restored.output
    assert (served / "VERSION").read_text() == "v1\n"
    assert (served / "weights.bin").read_bytes() == b"v1" * 4000

    refused = backupctl("restore", "llm", ids[1], "--yes", policies=policy)
    assert refused.code == 3, refused.output
    assert f"refusing backup {ids[1]} of llm" in refused.stderr
    assert "internal error" not in refused.output
    assert (served / "VERSION").read_text() == "v1\n"  # still served as it was


TAMPERED: dict[str, Callable[[dict[str, Any]], None]] = {
    "version-a-list": lambda d: d.update(version=["7"]),
    "version-a-number": lambda d: d.update(version=7),
    "files-a-string": lambda d: d.update(files="3"),
    "bytes-negative": lambda d: d.update(bytes=-1),
    "tree-hash-missing": lambda d: d.pop("tree_hash"),
    "tree-hash-not-a-sha256": lambda d: d.update(tree_hash="../../etc"),
    "entries-missing": lambda d: d.pop("entries"),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERED))
def test_tampered_details_are_refused_naming_the_backup(
    tamper: str, tmp_path: Path, backed_up: tuple[ModelPolicy, Manifest]
) -> None:
    policy, manifest = backed_up
    details = json.loads(json.dumps(manifest.details))
    TAMPERED[tamper](details)
    bad = _with_details(manifest, details)
    with pytest.raises(VerificationFailed) as refused:
        ModelDetails.of(bad)
    assert refused.value.exit_code == 3
    assert manifest.backup_id in str(refused.value) and "llm" in str(refused.value)
    driver = ModelDriver(policy)
    run = RestoreRun("run-1", StateLayout(tmp_path / "state"))
    with pytest.raises(VerificationFailed, match=manifest.backup_id):
        driver.restore_steps(_repo(tmp_path, policy), bad, ModelRestoreOptions(), run)
    with pytest.raises(VerificationFailed, match=manifest.backup_id):
        driver.drill_plan(_repo(tmp_path, policy), bad, run, tmp_path / "sandbox")
    # listings and name look-ups go on: the backup has no note and is known by its id only
    assert ModelDriver.note(bad) == ""
    assert driver.names(bad) == ()


def test_entries_leaving_the_model_are_still_refused_by_safe_entries(
    backed_up: tuple[ModelPolicy, Manifest],
) -> None:
    _, manifest = backed_up
    evil = {"path": "../evil", "kind": "file", "mode": 0o644, "size": 1, "sha256": "0" * 64}
    details = {**manifest.details, "entries": [*manifest.details["entries"], evil]}
    bad = _with_details(manifest, details)
    ModelDetails.of(bad)  # the document fits: the entries are checked where they are used
    with pytest.raises(VerificationFailed) as refused:
        steps.entries_of(bad)
    assert str(refused.value) == (
        f"refusing model version {manifest.backup_id}: path '../evil' would leave the model "
        "directory (tampered?)"
    )


def test_retention_decides_on_a_version_whose_details_are_unreadable(
    backed_up: tuple[ModelPolicy, Manifest],
) -> None:
    policy, manifest = backed_up
    bad = _with_details(
        manifest.model_copy(update={"backup_id": "20000101T000000Z-abcdef"}), {"version": 1}
    )
    decisions = ModelDriver(policy).retention([bad, manifest], datetime.now(UTC))
    by_id = {d.backup_id: d for d in decisions}
    assert by_id[manifest.backup_id].reason.startswith("version 7:")
    assert by_id[bad.backup_id].reason.startswith("version unknown (unreadable details):")
