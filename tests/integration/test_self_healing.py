"""A restore reads from every repository of its policy, the fastest holding the backup
first: an object missing from the local repository and another corrupt there come from
the off-site copy in moto's S3, and the report names both."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.mariadb import MariaDBServer
from tests.support.policies import restorable_policy

pytestmark = pytest.mark.mariadb


def _with_copy(policy: Path, repo: Path, endpoint: str, bucket: str) -> None:
    data = yaml.safe_load(policy.read_text())
    del data["repository"]
    data["repositories"] = [
        {"name": "local", "url": f"file://{repo}"},
        {"name": "offsite", "url": f"s3://{bucket}/site", "endpoint_url": endpoint},
    ]
    data["schedule"]["binlog"] = "0 * * * *"
    policy.write_text(yaml.safe_dump(data, sort_keys=False))


def _object(backupctl: Any, policy: Path, kind: str, name_suffix: str) -> str:
    listed = json.loads(backupctl("list", "shop", "--json", policies=policy).stdout)
    (backup,) = [b for b in listed if b["kind"] == kind]
    (key,) = [a["key"] for a in backup["artifacts"] if a["name"].endswith(name_suffix)]
    return str(key)


def test_a_missing_and_a_corrupt_object_are_read_from_the_copy(
    fresh_mariadb: MariaDBServer,
    tmp_path: Path,
    backupctl: Any,
    s3_endpoint: str,
    s3_bucket: str,
) -> None:
    server = fresh_mariadb
    policy = restorable_policy(tmp_path, server)
    _with_copy(policy, tmp_path / "repo", s3_endpoint, s3_bucket)
    server.sql(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(40))",
        "INSERT INTO shop.orders VALUES (1, 'in the full')",
    )
    assert backupctl("backup", "shop", policies=policy).code == 0
    server.sql(*(f"INSERT INTO shop.orders VALUES ({i}, 'in a binlog')" for i in range(2, 200)))
    target = server.sql("SELECT @@gtid_binlog_pos")[0][0]
    expected = server.sql("SELECT COUNT(*), SUM(id) FROM shop.orders")
    shipped = backupctl("backup", "shop", "--type", "binlog", policies=policy)
    assert shipped.code == 0 and "copied to offsite: 1 backup(s)" in shipped.stdout

    full = _object(backupctl, policy, "full", "data.mbstream.zst")
    binlog = _object(backupctl, policy, "binlog", ".zst")
    (tmp_path / "repo" / full).unlink()
    corrupt = tmp_path / "repo" / binlog
    flipped = bytearray(corrupt.read_bytes())
    flipped[len(flipped) // 2] ^= 0x10
    corrupt.write_bytes(bytes(flipped))
    server.sql("DROP DATABASE shop")

    result = backupctl("restore", "shop", "--to-gtid", target, "--yes", "--json", policies=policy)
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    assert report["read_from"] == ["local", "offsite"]
    healed = {(h["key"], h["repository"], h["served_by"]): h["problem"] for h in report["healed"]}
    assert healed == {
        (full, "local", "offsite"): "missing",
        (binlog, "local", "offsite"): "corrupt (sha256 does not match its manifest)",
    }, report["healed"]
    assert server.sql("SELECT COUNT(*), SUM(id) FROM shop.orders") == expected
    # the first attempt met the corrupt binlog, was undone whole and ran again
    assert "running it again" in result.stderr
    markdown = (backupctl.state_dir / "restores" / f"{report['run_id']}.md").read_text()
    assert "read from: local, offsite" in markdown
    assert f"`{binlog}`: corrupt (sha256 does not match its manifest) in local" in markdown

    # --from local alone cannot: the same restore fails, and says which object
    refused = backupctl(
        "restore", "shop", "--to-gtid", target, "--from", "local", "--yes", policies=policy
    )
    assert refused.code != 0 and "Traceback" not in refused.output
    assert server.sql("SELECT COUNT(*), SUM(id) FROM shop.orders") == expected
