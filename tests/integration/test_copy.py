"""Several repositories per policy: backups written to the first are copied to the others
(after every backup, and by ``backupctl copy``), every object checked against its
manifest, the manifest last: the copy in moto's S3 is restorable on its own, a copy that
meets a corrupt object lists nothing there and the next copy, once the source is sound,
removes what was left and completes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.kill import at_point, counted_run, run_killed
from tests.support.mariadb import MariaDBServer
from tests.support.policies import mariadb_policy

pytestmark = pytest.mark.mariadb


def _policies(tmp_path: Path, server: MariaDBServer, endpoint: str, bucket: str) -> Path:
    offsite = {"url": f"s3://{bucket}/site-a", "endpoint_url": endpoint, "part_size_mb": 5}
    path = mariadb_policy(
        tmp_path / "policies",
        server,
        "unused",
        repositories=[
            {"name": "local", "url": f"file://{tmp_path / 'repo'}", "retention": {"full": "7d"}},
            {"name": "offsite", **offsite},
        ],
    )
    data = yaml.safe_load(path.read_text())
    del data["repository"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    # what a new host would use: the off-site repository alone
    alone = mariadb_policy(tmp_path / "offsite-only", server, offsite)
    return path, alone


def _held(s3_client: Any, bucket: str) -> set[str]:
    """The backup ids with a manifest in the bucket."""
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="site-a/shop/")
    return {
        obj["Key"].split("/")[3]
        for obj in listed.get("Contents", [])
        if obj["Key"].endswith("/manifest.json")
    }


def test_backups_are_copied_off_site_and_restorable_from_there(
    fresh_mariadb: MariaDBServer,
    tmp_path: Path,
    backupctl: Any,
    s3_endpoint: str,
    s3_bucket: str,
    s3_client: Any,
) -> None:
    server = fresh_mariadb
    server.sql(
        "CREATE DATABASE IF NOT EXISTS copied", "CREATE TABLE IF NOT EXISTS copied.t (i INT)"
    )
    server.sql("INSERT INTO copied.t VALUES (1), (2), (3)")
    policy, alone = _policies(tmp_path, server, s3_endpoint, s3_bucket)

    first = backupctl("backup", "shop", policies=policy)
    assert first.code == 0, first.output
    assert "copied to offsite: 1 backup(s)" in first.stdout
    listed = json.loads(backupctl("list", "shop", "--json", policies=policy).stdout)
    (backup,) = listed
    assert set(backup["copies"]) == {"offsite"}
    assert _held(s3_client, s3_bucket) == {backup["backup_id"]}
    # what a new host needs beside the backups is kept there too
    setup = s3_client.get_object(Bucket=s3_bucket, Key="site-a/shop/setup/setup.json")
    assert json.loads(setup["Body"].read())["policy_file"] == "shop.yaml"
    table = backupctl("list", "shop", policies=policy)
    assert "COPIES" in table.stdout and "offsite" in table.stdout

    # the off-site copy stands on its own: verified with nothing but its URL
    checked = backupctl("verify", "shop", backup["backup_id"], policies=alone)
    assert checked.code == 0, checked.output

    # nothing new: a copy has nothing to do
    again = backupctl("copy", "shop", "--json", policies=policy)
    assert again.code == 0, again.output
    (result,) = json.loads(again.stdout)["copies"]
    assert result["copied"] == [] and result["already"] == 1

    # a backup with --no-copy, then a corrupt object in it: the copy refuses it (exit 3),
    # and nothing of it is listed off-site
    second = backupctl("backup", "shop", "--no-copy", "--json", policies=policy)
    assert second.code == 0, second.output
    manifest = json.loads(second.stdout)
    # status and metrics say how far the off-site copy lags
    (shop,) = json.loads(backupctl("status", "shop", "--json", policies=policy).stdout)
    assert shop["copies"]["offsite"]["missing"] == 1
    day_later = {"BACKUPCTL_CLOCK_OFFSET": str(25 * 3600)}  # past the RPO (24 h)
    late = backupctl("status", "shop", "--json", policies=policy, env=day_later)
    (shop,) = json.loads(late.stdout)
    assert shop["copies"]["offsite"]["lag_seconds"] > 24 * 3600
    assert any(p["message"].startswith("the copy to offsite lags 1d") for p in shop["problems"]), (
        shop["problems"]
    )
    metrics = backupctl("metrics", policies=policy).stdout
    assert 'backupctl_copy_missing_backups{policy="shop",repository="offsite"} 1.0' in metrics

    data = next(a for a in manifest["artifacts"] if a["name"] == "data.mbstream.zst")
    stored = tmp_path / "repo" / data["key"]
    original = stored.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    stored.write_bytes(bytes(flipped))
    refused = backupctl("copy", "shop", "--to", "offsite", policies=policy)
    assert refused.code == 3, refused.output
    assert "does not match its manifest" in refused.stderr and "Traceback" not in refused.output
    assert _held(s3_client, s3_bucket) == {backup["backup_id"]}

    # sound again: the next copy removes what the refused one left, and completes
    stored.write_bytes(original)
    done = backupctl("copy", "shop", "--json", policies=policy)
    assert done.code == 0, done.output
    (result,) = json.loads(done.stdout)["copies"]
    assert result["copied"] == [manifest["backup_id"]]
    assert result["removed_partial"] == [f"shop/full/{manifest['backup_id']}"]
    assert _held(s3_client, s3_bucket) == {backup["backup_id"], manifest["backup_id"]}
    checked = backupctl("verify", "shop", manifest["backup_id"], policies=alone)
    assert checked.code == 0, checked.output

    # ten days on, each repository keeps what its own retention says: the local disk
    # (7 days) only the newest full, off-site (the policy's 30 days) both
    later = {"BACKUPCTL_CLOCK_OFFSET": str(10 * 86400)}
    pruned = backupctl("prune", "shop", "--json", policies=policy, env=later)
    assert pruned.code == 0, pruned.output
    decisions = {
        (d["repository"] or "local", d["backup_id"]): d["keep"]
        for d in json.loads(pruned.stdout)["decisions"]
    }
    assert decisions == {
        ("local", backup["backup_id"]): False,
        ("local", manifest["backup_id"]): True,
        ("offsite", backup["backup_id"]): True,
        ("offsite", manifest["backup_id"]): True,
    }
    assert _held(s3_client, s3_bucket) == {backup["backup_id"], manifest["backup_id"]}
    assert not (tmp_path / "repo" / "shop" / "full" / backup["backup_id"]).exists()
    listed = json.loads(backupctl("list", "shop", "--json", policies=policy).stdout)
    assert [(b["backup_id"], list(b["copies"]), b["in_first_repository"]) for b in listed] == [
        (backup["backup_id"], ["offsite"], False),  # pruned locally, kept off-site
        (manifest["backup_id"], ["offsite"], True),
    ]
    table = backupctl("list", "shop", policies=policy).stdout
    (row,) = [line for line in table.splitlines() if " ok " in line and backup["backup_id"] in line]
    assert "only in copies" in row

    # the backup pruned from the local disk is still restorable: the off-site copy holds it
    older = backupctl(
        "restore",
        "shop",
        backup["backup_id"],
        "--target-datadir",
        str(tmp_path / "older"),
        "--yes",
        "--json",
        policies=policy,
    )
    assert older.code == 0, older.output
    report = json.loads(older.stdout)
    assert report["read_from"][0] == "offsite" and report["healed"] == []
    assert (tmp_path / "older" / "copied" / "t.ibd").exists()

    # the local object lost: the restore reads it from the off-site copy and says so;
    # with --from local alone it fails, naming the object
    stored.unlink()
    target = tmp_path / "restored"
    healed = backupctl(
        "restore", "shop", "--target-datadir", str(target), "--yes", "--json", policies=policy
    )
    assert healed.code == 0, healed.output
    report = json.loads(healed.stdout)
    assert report["read_from"] == ["local", "offsite"]
    assert report["healed"] == [
        {"key": data["key"], "repository": "local", "problem": "missing", "served_by": "offsite"}
    ]
    lost = backupctl(
        "restore",
        "shop",
        "--from",
        "local",
        "--target-datadir",
        str(tmp_path / "lost"),
        "--yes",
        policies=policy,
    )
    assert lost.code != 0 and "Traceback" not in lost.output
    assert data["key"] in lost.output
    restored = backupctl(
        "restore",
        "shop",
        "--from",
        "offsite",
        "--target-datadir",
        str(tmp_path / "again"),
        "--yes",
        "--json",
        policies=policy,
    )
    assert restored.code == 0, restored.output
    assert json.loads(restored.stdout)["state"] == "completed"
    assert json.loads(restored.stdout)["read_from"] == ["offsite"]
    assert (tmp_path / "again" / "copied" / "t.ibd").exists()
    unknown = backupctl("restore", "shop", "--from", "tape", "--dry-run", policies=policy)
    assert (
        unknown.code == 2 and "has no repository 'tape' (it has: local, offsite)" in unknown.stderr
    )


def test_copy_names_what_it_cannot_do(
    mariadb_server: MariaDBServer, tmp_path: Path, backupctl: Any, s3_endpoint: str, s3_bucket: str
) -> None:
    policy, alone = _policies(tmp_path, mariadb_server, s3_endpoint, s3_bucket)
    unknown = backupctl("copy", "shop", "--to", "tape", policies=policy)
    assert unknown.code == 2
    assert "has no copy repository 'tape' (copies: offsite)" in unknown.stderr
    single = backupctl("copy", "shop", policies=alone)
    assert single.code == 2 and "has one repository" in single.stderr


def test_a_copy_killed_at_any_point_lists_nothing_partial_and_completes_next_time(
    mariadb_server: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    """SIGKILL at every kill point of a copy between two file repositories (each object
    opened and committed, the start marker, the manifest): the destination never holds a
    manifest of a backup it does not hold whole, and the next copy completes it."""
    first, second = tmp_path / "first", tmp_path / "second"
    policy = mariadb_policy(
        tmp_path / "policies",
        mariadb_server,
        "unused",
        repositories=[
            {"name": "here", "url": f"file://{first}"},
            {"name": "there", "url": f"file://{second}"},
        ],
    )
    data = yaml.safe_load(policy.read_text())
    del data["repository"]
    policy.write_text(yaml.safe_dump(data, sort_keys=False))
    alone = mariadb_policy(tmp_path / "second-only", mariadb_server, f"file://{second}")
    taken = backupctl("backup", "shop", "--no-copy", "--json", policies=policy)
    assert taken.code == 0, taken.output
    backup_id = json.loads(taken.stdout)["backup_id"]
    args = ["--state-dir", str(backupctl.state_dir), "--policies", str(policy), "copy", "shop"]
    _done, points = counted_run(args, "an uninterrupted copy")
    shutil.rmtree(second)
    assert "LocalObjectWriter.commit" in points, points
    for point in range(1, len(points) + 1):
        killed = run_killed(args, at_point("copy", point))
        assert killed.code is None, (point, points[point - 1], killed.stdout, killed.stderr)
        manifests = list(second.rglob("manifest.json"))
        if manifests:  # the manifest goes last: then the backup is whole
            checked = backupctl("verify", "shop", backup_id, policies=alone)
            assert checked.code == 0, (point, points[point - 1], checked.output)
        again = backupctl("copy", "shop", "--json", policies=policy)
        assert again.code == 0, (point, again.output)
        checked = backupctl("verify", "shop", backup_id, policies=alone)
        assert checked.code == 0, (point, points[point - 1], checked.output)
        shutil.rmtree(second)
