"""Lose the host: a stack (MariaDB with binlogs, a model with versions, Elasticsearch
snapshots) is backed up to a local and an encrypted S3 repository (moto's server), then
everything of the host is deleted: datadir, local repository, state directory, policies,
hooks, served model, and the cluster is replaced by an empty one (its snapshots kept in
their storage). From nothing but the S3 URL, its credentials and the key, ``dr bootstrap
--yes`` brings every system back to the newest point the repository holds."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupctl.drivers.models.tree import scan_tree, tree_hash
from tests.support.elasticsearch import EsCluster
from tests.support.mariadb import MariaDBServer
from tests.support.model_policies import model_policy
from tests.support.policies import restorable_policy, search_policy

pytestmark = pytest.mark.mariadb


def _two_repositories(policy: Path, root: Path, offsite: dict[str, Any], **more: Any) -> None:
    data = yaml.safe_load(policy.read_text())
    data.pop("repository", None)
    data["repositories"] = [{"name": "local", "url": f"file://{root / 'repo'}"}, offsite]
    data.update(more)
    policy.write_text(yaml.safe_dump(data, sort_keys=False))


def _model(directory: Path, version: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "weights.bin").write_bytes(version.encode() * 50_000)
    (directory / "config.json").write_text(json.dumps({"version": version}))
    (directory / "VERSION").write_text(version + "\n")


def _fill(es: Any, index: str, docs: int) -> None:
    if not es.indices.exists(index=index):
        es.indices.create(index=index, settings={"number_of_replicas": 0})
    operations: list[dict[str, Any]] = []
    for n in range(docs):
        operations += [{"index": {"_index": index}}, {"n": n}]
    es.bulk(operations=operations, refresh=True)


def _ok(result: Any) -> Any:
    assert result.code == 0, result.output
    return result


def test_lose_the_host_and_rebuild_from_the_off_site_copy(
    fresh_mariadb: MariaDBServer,
    es_cluster: EsCluster,
    tmp_path: Path,
    backupctl: Any,
    s3_endpoint: str,
    s3_bucket: str,
) -> None:
    es_cluster.require_fake("the cluster is replaced by an empty one")
    server = fresh_mariadb
    operator = tmp_path / "operator"  # what the operator keeps away from the server
    operator.mkdir()
    _ok(backupctl("key", "generate", "--output", str(operator / "offsite.key")))
    keys = tmp_path / "etc" / "keys"
    keys.mkdir(parents=True)
    shutil.copy(operator / "offsite.key", keys / "offsite.key")
    offsite = {
        "name": "offsite",
        "url": f"s3://{s3_bucket}/site",
        "endpoint_url": s3_endpoint,
        "encryption": {"key_file": str(keys / "offsite.key")},
    }
    policies = tmp_path / "policies"

    # the stack: configuration first, then the database, then the model and the search
    # index side by side (kept in the repository with every backup of its policies)
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "app.yaml").write_text(
        "version: 1\nname: app\npolicies: [configs, shop, llm, search]\nparallel: [[llm, search]]\n"
    )

    # MariaDB: a full backup, then transactions shipped as binlogs
    shop = restorable_policy(tmp_path, server)
    _two_repositories(
        shop, tmp_path, offsite, schedule={"full": "0 2 * * *", "binlog": "0 * * * *"}
    )
    server.sql(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(40))",
        "INSERT INTO shop.orders VALUES (1, 'before the full')",
    )
    _ok(backupctl("backup", "shop", policies=policies))
    server.sql(*(f"INSERT INTO shop.orders VALUES ({i}, 'after it')" for i in range(2, 60)))
    last_write = time.time()
    _ok(backupctl("backup", "shop", "--type", "binlog", policies=policies))
    checksum = server.sql("CHECKSUM TABLE shop.orders")

    # a model with two versions; v2 is served
    served = tmp_path / "served" / "llm"
    llm = model_policy(
        policies,
        "llm",
        served,
        tmp_path / "repo",
        {"check": "*/15 * * * *"},
        objectives={"rpo": "24h", "rto": "1h"},
    )
    _two_repositories(llm, tmp_path, offsite)
    _model(served, "v1")
    _ok(backupctl("backup", "llm", policies=policies))
    _model(served, "v2")
    _ok(backupctl("backup", "llm", policies=policies))
    model_hash = tree_hash(scan_tree(served))

    # search: 70 documents in a snapshot
    es = es_cluster.client()
    index = es_cluster.name("orders") + "-1"
    _fill(es, index, 70)
    search = search_policy(policies, es_cluster, tmp_path / "repo")
    _two_repositories(search, tmp_path, offsite)
    _ok(backupctl("backup", "search", policies=policies))

    # configuration history: kept in a local Git directory, its bundles copied off-site
    etc = tmp_path / "etc-app"
    (etc / "nginx").mkdir(parents=True)
    (etc / "nginx" / "nginx.conf").write_text("worker_processes 4;\n")
    (etc / "app.env").write_text("MODE=production\n")
    (etc / "app.env").chmod(0o640)
    configs = policies / "configs.yaml"
    configs.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "configs",
                "driver": "config-git",
                "paths": [str(etc)],
                "repositories": [
                    {"name": "local", "url": f"file://{tmp_path / 'history.git'}"},
                    offsite,
                ],
            },
            sort_keys=False,
        )
    )
    _ok(backupctl("backup", "configs", policies=policies))
    config_files = {p: p.read_bytes() for p in etc.rglob("*") if p.is_file()}

    # the quarter's drill of the database: its measurements are kept off-site too
    _ok(backupctl("drill", "run", "shop", policies=policies))

    # the server is lost: everything of it
    _ok(backupctl("restore", "shop", "--dry-run", policies=policies))  # hooks are in place
    stop = tmp_path / "hooks" / "stop.sh"
    assert stop.exists()
    import subprocess

    subprocess.run([str(stop)], check=True)
    for lost in (
        server.datadir,
        tmp_path / "repo",
        backupctl.state_dir,
        policies,
        tmp_path / "hooks",
        tmp_path / "served",
        keys,
        etc,
        tmp_path / "history.git",
        tmp_path / "stacks",
    ):
        shutil.rmtree(lost)
    es_cluster.restart()  # a new, empty cluster; the snapshots are in their storage

    # only the URL, its credentials (the environment) and the key the operator kept
    source = f"s3://{s3_bucket}/site"
    where = ("--endpoint-url", s3_endpoint, "--key-file", str(operator / "offsite.key"))

    def bootstrap(*flags: str) -> Any:
        return backupctl("dr", "bootstrap", source, *where, *flags, "--json", policies=policies)

    plan = json.loads(_ok(bootstrap("--dry-run")).stdout)
    assert [s["policy"] for s in plan["systems"]] == ["configs", "shop", "llm", "search"]
    assert plan["stack"] == "app"
    assert plan["waves"] == [["configs"], ["shop"], ["llm", "search"]]
    assert not policies.exists()  # a dry run writes no setup
    assert plan["needs"] == []
    # the new host has no history: the plan's estimate comes from the drill kept off-site
    (shop_plan,) = [s["plan"] for s in plan["systems"] if s["policy"] == "shop"]
    assert shop_plan["estimate_seconds"] is not None and shop_plan["estimate_seconds"] > 0
    (llm_plan,) = [s["plan"] for s in plan["systems"] if s["policy"] == "llm"]
    assert llm_plan["estimate_seconds"] is None  # never drilled: no estimate invented
    assert "llm" in plan["never_measured"] and plan["eta_seconds"] >= shop_plan["estimate_seconds"]
    refused = backupctl("dr", "bootstrap", source, *where, policies=policies)
    assert refused.code == 2 and "confirm with --yes" in refused.stderr

    rebuilt = bootstrap("--yes")
    report = json.loads(_ok(rebuilt).stdout)
    assert report["passed"], report
    states = {s["policy"]: s["state"] for s in report["systems"]}
    assert states == {
        "configs": "completed",
        "shop": "completed",
        "llm": "completed",
        "search": "completed",
    }

    # everything as at the last recoverable point
    assert server.sql("CHECKSUM TABLE shop.orders") == checksum
    assert tree_hash(scan_tree(served)) == model_hash
    assert (served / "VERSION").read_text() == "v2\n"
    es = es_cluster.client()
    es.indices.refresh(index=index)
    assert es.count(index=index)["count"] == 70
    assert {p: p.read_bytes() for p in etc.rglob("*") if p.is_file()} == config_files
    assert (etc / "app.env").stat().st_mode & 0o777 == 0o640
    (configs_result,) = [s for s in report["systems"] if s["policy"] == "configs"]
    assert sorted(configs_result["config_files"]["placed"]) == sorted(map(str, config_files))
    assert (keys / "offsite.key").read_bytes() == (operator / "offsite.key").read_bytes()
    assert (tmp_path / "stacks" / "app.yaml").exists()  # the stack came back too
    assert (tmp_path / "hooks" / "stop.sh").stat().st_mode & 0o111

    # the RPO each system reports: the newest backup of the lost host minus its point
    listed = json.loads(_ok(backupctl("list", "--json", policies=policies)).stdout)
    last_seen = max(datetime.fromisoformat(b["finished_at"]) for b in listed)
    assert datetime.fromisoformat(report["last_seen"]) == last_seen
    for system in report["systems"]:
        point = datetime.fromisoformat(system["recovery_point"])
        assert system["rpo_seconds"] == pytest.approx((last_seen - point).total_seconds(), abs=1)
    (shop_result,) = [s for s in report["systems"] if s["policy"] == "shop"]
    shop_point = datetime.fromisoformat(shop_result["recovery_point"]).timestamp()
    assert last_write - 2 <= shop_point <= last_write + 1  # the last transaction's time
    # the model and the search index were restored side by side: the RTO is the sum of
    # each wave's slowest system (and the rebuild's own work), not of every system
    seconds = {s["policy"]: s["seconds"] for s in report["systems"]}
    waves = sum(max(seconds[name] for name in wave) for wave in plan["waves"])
    assert report["rto_seconds"] >= waves * 0.99
    markdown = backupctl.state_dir / "dr" / f"{report['dr_id']}.md"
    assert "| shop | mariadb |" in markdown.read_text()

    # the rebuilt host drills at once: its local repository is empty, the copy serves
    drilled = json.loads(_ok(backupctl("drill", "run", "shop", "--json", policies=policies)).stdout)
    assert drilled["passed"] and drilled["backup_id"] == shop_result["backup_id"]

    # and the rebuilt host backs up again, to both repositories
    again = _ok(backupctl("backup", "shop", policies=policies))
    assert "copied to offsite: 1 backup(s)" in again.stdout
