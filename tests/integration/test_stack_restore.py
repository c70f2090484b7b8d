"""A stack restored to one point in time: MariaDB by PITR to T exactly, Elasticsearch to
its newest snapshot at or before T, the skew between them in the plan and the report;
a system that fails stops the stack (``--resume`` finishes it) or, as the operator
chose, undoes the systems already restored."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.elasticsearch import EsCluster
from tests.support.mariadb import MariaDBServer, binlog_moment
from tests.support.policies import restorable_policy, search_policy

pytestmark = pytest.mark.mariadb


def _fill(es: Any, index: str, first: int, docs: int) -> None:
    if not es.indices.exists(index=index):
        es.indices.create(index=index, settings={"number_of_replicas": 0})
    operations: list[dict[str, Any]] = []
    for n in range(first, first + docs):
        operations += [{"index": {"_index": index, "_id": str(n)}}, {"n": n}]
    es.bulk(operations=operations, refresh=True)


def _ok(result: Any) -> Any:
    assert result.code == 0, result.output
    return result


def _min_docs(policy: Path, index: str, docs: int) -> None:
    data = yaml.safe_load(policy.read_text())
    data["restore"] = {"verify": [{"index": index, "min_docs": docs}]}
    policy.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_stack_comes_back_to_one_point_in_time(
    fresh_mariadb: MariaDBServer, es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    server = fresh_mariadb
    policies = tmp_path / "policies"
    shop = restorable_policy(tmp_path, server)
    data = yaml.safe_load(shop.read_text())
    data["schedule"]["binlog"] = "0 * * * *"
    shop.write_text(yaml.safe_dump(data, sort_keys=False))
    index = es_cluster.name("orders") + "-1"
    search = search_policy(policies, es_cluster, tmp_path / "repo")
    _min_docs(search, index, 1)
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "app.yaml").write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "app",
                "policies": ["shop", "search"],
                "parallel": [["shop", "search"]],
                "objectives": {"rto": "1h"},
            }
        )
    )
    es = es_cluster.client()

    # writes to both, interleaved, with snapshots between
    server.sql(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY)",
        "INSERT INTO shop.orders VALUES (1)",
    )
    _ok(backupctl("backup", "shop", policies=policies))
    _fill(es, index, 0, 10)
    _ok(backupctl("backup", "search", policies=policies))
    server.sql("INSERT INTO shop.orders VALUES (2), (3)")
    _fill(es, index, 10, 5)
    second = json.loads(_ok(backupctl("backup", "search", "--json", policies=policies)).stdout)
    target = binlog_moment()
    server.sql("INSERT INTO shop.orders VALUES (4)")
    _fill(es, index, 15, 7)
    _ok(backupctl("backup", "search", policies=policies))
    time.sleep(1.5)  # the binlogs shipped well after the last snapshot: a skew to judge
    _ok(backupctl("backup", "shop", "--type", "binlog", policies=policies))
    expected_skew = (
        datetime.fromisoformat(target) - datetime.fromisoformat(second["finished_at"])
    ).total_seconds()

    plan = json.loads(
        _ok(
            backupctl(
                "restore",
                "--stack",
                "app",
                "--to-time",
                target,
                "--dry-run",
                "--json",
                policies=policies,
            )
        ).stdout
    )
    members = {m["policy"]: m for m in plan["members"]}
    assert plan["waves"] == [["shop", "search"]]
    assert members["shop"]["skew_seconds"] == 0
    assert members["search"]["backup_id"] == second["backup_id"]
    assert members["search"]["skew_seconds"] == pytest.approx(expected_skew, abs=0.01)
    assert (
        members["search"]["skew"].startswith("search ")
        and "behind the target" in (members["search"]["skew"])
    )
    table = _ok(
        backupctl("restore", "--stack", "app", "--to-time", target, "--dry-run", policies=policies)
    ).stdout
    assert "wave 1 (side by side)" in table

    def rows() -> list[int]:
        return [r[0] for r in server.sql("SELECT id FROM shop.orders ORDER BY id")]

    def count() -> int:
        es.indices.refresh(index=index)
        return int(es.count(index=index)["count"])

    # a system that fails stops the stack; the one restored stays; --resume finishes
    _min_docs(search, index, 1000)
    stopped = backupctl(
        "restore", "--stack", "app", "--to-time", target, "--yes", "--json", policies=policies
    )
    assert stopped.code == 1, stopped.output
    journal = json.loads(stopped.stdout)
    assert journal["state"] == "stopped"
    assert {m["policy"]: m["state"] for m in journal["members"]} == {
        "shop": "completed",
        "search": "failed",
    }
    assert rows() == [1, 2, 3]
    again = backupctl("restore", "--stack", "app", "--to-time", target, "--yes", policies=policies)
    assert again.code == 2 and "--resume" in again.stderr
    _min_docs(search, index, 1)
    resumed = json.loads(
        _ok(backupctl("restore", "--stack", "app", "--resume", "--json", policies=policies)).stdout
    )
    assert resumed["state"] == "completed" and resumed["run_id"] == journal["run_id"]
    assert rows() == [1, 2, 3] and count() == 15  # MariaDB exact at T, search at S2
    (search_record,) = [m for m in resumed["members"] if m["policy"] == "search"]
    assert search_record["skew_seconds"] == pytest.approx(expected_skew, abs=0.01)

    # the operator chose rollback: a failure undoes the systems already restored
    server.sql("INSERT INTO shop.orders VALUES (10)")
    _min_docs(search, index, 1000)
    undone = backupctl(
        "restore",
        "--stack",
        "app",
        "--to-time",
        target,
        "--yes",
        "--json",
        "--on-failure",
        "rollback",
        policies=policies,
    )
    assert undone.code == 1, undone.output
    journal = json.loads(undone.stdout)
    assert journal["state"] == "rolled-back"
    assert {m["policy"]: m["state"] for m in journal["members"]} == {
        "shop": "rolled-back",
        "search": "failed",
    }
    assert rows() == [1, 2, 3, 10]  # as before the stack restore
    # a stack drill: every system into a sandbox, side by side; the stack RTO and the
    # skew between the systems' recovery points against the stack's objectives
    _min_docs(search, index, 1)
    drilled = backupctl("drill", "run", "--stack", "app", "--json", policies=policies)
    report = json.loads(_ok(drilled).stdout)
    assert report["passed"] and [s["policy"] for s in report["systems"]] == ["shop", "search"]
    points = [datetime.fromisoformat(s["recovery_point"]) for s in report["systems"]]
    assert report["skew_seconds"] == pytest.approx(
        (max(points) - min(points)).total_seconds(), abs=0.01
    )
    # one wave (side by side): the stack's RTO is its slowest system's
    assert report["rto_seconds"] == max(s["rto_seconds"] for s in report["systems"])
    assert report["seconds"] >= report["rto_seconds"]
    assert report["objectives"]["rto_seconds"] == 3600
    stack_file = tmp_path / "stacks" / "app.yaml"
    stack_data = yaml.safe_load(stack_file.read_text())
    stack_data["objectives"]["max_skew"] = "1s"
    stack_file.write_text(yaml.safe_dump(stack_data))
    assert report["skew_seconds"] >= 1.5
    missed = backupctl("drill", "run", "--stack", "app", policies=policies)
    assert missed.code == 3 and "missed: skew" in missed.stdout and "over 1s" in missed.stdout

    unknown = backupctl("restore", "--stack", "nope", "--to-time", target, policies=policies)
    assert unknown.code == 2 and "no stack 'nope'" in unknown.stderr
    no_time = backupctl("restore", "--stack", "app", "--dry-run", policies=policies)
    assert no_time.code == 2 and "--to-time" in no_time.stderr
