"""Recovery drills: sandbox restores with measured RTO and RPO, never touching live data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.elasticsearch import EsCluster
from tests.support.mariadb import MariaDBServer
from tests.support.model_policies import model_policy
from tests.support.policies import mariadb_policy


def _checksum(server: MariaDBServer) -> list[Any]:
    return [tuple(r) for r in server.sql("CHECKSUM TABLE shop.orders EXTENDED")]


def _leftovers(state: Path) -> list[Path]:
    """What a drill may leave behind besides its reports and journal: nothing."""
    found = [p for p in (state / "drills").glob("*/sandbox")]
    recovery = state / "recovery"
    return found + (list(recovery.iterdir()) if recovery.is_dir() else [])


def _shop(
    tmp_path: Path,
    server: MariaDBServer,
    verify: list[dict[str, str]] | None = None,
    **objectives: str,
) -> Path:
    return mariadb_policy(
        tmp_path / "policies",
        server,
        f"file://{tmp_path / 'repo'}",
        objectives=objectives or {"rpo": "1h", "rto": "1h"},
        restore={"verify": verify or []},
    )


def _backed_up_shop(server: MariaDBServer, policy: Path, backupctl: Any) -> float:
    """A full backup, more rows, a binlog backup; return when the last row was written."""
    server.sql(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(20))",
        "INSERT INTO shop.orders VALUES (1, 'before full')",
    )
    assert backupctl("backup", "shop", policies=policy).code == 0
    server.sql("INSERT INTO shop.orders VALUES (2, 'after full')")
    time.sleep(1.1)
    server.sql("INSERT INTO shop.orders VALUES (3, 'last')")
    last_write = time.time()
    result = backupctl("backup", "shop", "--type", "binlog", policies=policy)
    assert result.code == 0, result.output
    return last_write


def test_a_mariadb_drill_replays_binlogs_in_a_sandbox_and_measures_rto_rpo(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    server = fresh_mariadb
    count = [{"sql": "SELECT COUNT(*) FROM shop.orders", "expect": "= 3"}]
    policy = _shop(tmp_path, server, count)
    last_write = _backed_up_shop(server, policy, backupctl)
    checksum, pid = _checksum(server), server.instance.pid()

    began = time.time()
    # the drill runs "ten minutes later": its RPO is measured on the clock it runs by
    later = {"BACKUPCTL_CLOCK_OFFSET": "600"}
    result = backupctl("drill", "run", "shop", "--json", policies=policy, env=later)
    wall = time.time() - began
    assert result.code == 0, result.output
    report = json.loads(result.stdout)

    contract = {"drill_id", "policy", "backup_id", "started_at", "finished_at"}
    contract |= {"recovery_point", "rpo_seconds", "rto_seconds", "objectives", "passed"}
    contract |= {"steps", "checks"}
    assert contract <= set(report)
    assert report["passed"] and report["reason"] is None
    assert report["objectives"] == {"rpo_seconds": 3600.0, "rto_seconds": 3600.0}
    names = [s["name"] for s in report["steps"]]
    assert "replay-binlogs" in names and "verify" in names
    assert all(s["status"] == "ok" for s in report["steps"])
    assert {"name", "status", "seconds"} <= set(report["steps"][0])
    assert all(c["passed"] for c in report["checks"])
    assert {"objective-rpo", "objective-rto"} <= {c["name"] for c in report["checks"]}
    # a drill checks deeper than an incident restore (restore.drill_verify_level: full)
    check_table = next(c for c in report["checks"] if c["name"] == "check-table")
    assert "CHECK TABLE EXTENDED" in check_table["detail"]
    verify = next(s for s in report["steps"] if s["name"] == "verify")
    assert verify["detail"].startswith("full verification:")
    # RPO: the drill's start minus the last binlog event (1 s resolution)
    age = began + 600 - last_write
    assert age - 2.5 <= report["rpo_seconds"] <= age + 2.5
    # RTO: measured inside the command, so no longer than the command itself
    assert 0 < report["rto_seconds"] <= wall
    replayed = next(s for s in report["steps"] if s["name"] == "replay-binlogs")
    assert "replayed" in replayed["detail"]
    # per-stage throughput: what each stage worked through, in the report and its Markdown
    extracted = next(s for s in report["steps"] if s["name"] == "fetch-extract")
    assert extracted["bytes"] > 0 and replayed["bytes"] > 0
    # ... from which a restore plan of the policy projects its own stages
    plan = json.loads(backupctl("restore", "shop", "--dry-run", "--json", policies=policy).stdout)
    planned = next(s for s in plan["steps"] if s["name"] == "fetch-extract")
    assert planned["estimate"]["seconds"] is not None, planned

    assert _checksum(server) == checksum
    assert server.instance.pid() == pid
    assert [r[0] for r in server.sql("SELECT id FROM shop.orders ORDER BY id")] == [1, 2, 3]
    assert _leftovers(backupctl.state_dir) == []

    drill_id = report["drill_id"]
    stored = tmp_path / "repo" / "shop" / "drills" / drill_id
    assert {p.name for p in stored.iterdir()} == {"report.json", "report.md", "report.html"}
    markdown = (stored / "report.md").read_text()
    assert "/s |" in next(line for line in markdown.splitlines() if "| fetch-extract |" in line)
    listed = backupctl("drill", "list", "--json", policies=policy)
    assert listed.code == 0 and [r["drill_id"] for r in json.loads(listed.stdout)] == [drill_id]
    # the history survives the host: a new state directory still finds it in the repository
    shutil.rmtree(backupctl.state_dir / "drills")
    shown = backupctl("drill", "show", drill_id, "--format", "json", policies=policy)
    assert shown.code == 0, shown.output
    assert json.loads(shown.stdout)["rto_seconds"] == report["rto_seconds"]
    markdown = backupctl("drill", "show", drill_id, policies=policy)
    assert f"# Recovery drill {drill_id} of shop" in markdown.stdout


def test_impossible_objectives_fail_the_drill_with_exit_3_naming_them(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    server = fresh_mariadb
    # a slow verification query: the drill cannot finish within the 1 s RTO
    slow = [{"sql": "SELECT SLEEP(1.2) + COUNT(*) FROM shop.orders", "expect": "> 0"}]
    policy = _shop(tmp_path, server, slow, rpo="1s", rto="1s")
    _backed_up_shop(server, policy, backupctl)
    later = {"BACKUPCTL_CLOCK_OFFSET": "60"}  # a minute after the last write: RPO missed
    result = backupctl("drill", "run", "shop", "--json", policies=policy, env=later)
    assert result.code == 3, result.output
    report = json.loads(result.stdout)
    assert not report["passed"]
    missed = {m["objective"]: m for m in report["missed_objectives"]}
    assert set(missed) == {"rpo", "rto"}
    assert missed["rto"]["over_seconds"] == pytest.approx(report["rto_seconds"] - 1, abs=0.01)
    assert "RTO objective missed" in report["reason"]
    assert "RPO objective missed" in result.stderr and "over by" in result.stderr
    failing = {c["name"] for c in report["checks"] if not c["passed"]}
    assert failing == {"objective-rpo", "objective-rto"}


def test_a_drill_without_backups_is_a_failed_drill_not_a_crash(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    policy = _shop(tmp_path, fresh_mariadb)
    result = backupctl("drill", "run", "shop", policies=policy)
    assert result.code == 3, result.output
    assert "has no restorable backup" in result.stdout
    assert "Traceback" not in result.output
    assert "report:" in result.stdout


def _model_policy(tmp_path: Path, served: Path) -> Path:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    verify = hooks / "verify.sh"
    verify.write_text(f'#!/bin/sh\ntest -f "$BACKUPCTL_STAGING/VERSION" && echo ok >> {hooks}/v\n')
    perf = hooks / "perf.sh"
    perf.write_text('#!/bin/sh\necho \'{"passed": true, "tokens_per_s": 99}\'\n')
    for hook in (verify, perf):
        hook.chmod(0o755)
    return model_policy(
        tmp_path / "policies",
        "llm",
        served,
        tmp_path / "repo",
        {"check": "*/15 * * * *"},
        retention={"keep_versions": 5},
        objectives={"rpo": "24h", "rto": "1h"},
        restore={"verify": [str(verify)], "perf_test": [str(perf)]},
    )


def _backed_up_llm(tmp_path: Path, backupctl: Any, weights_kb: int = 0) -> tuple[Path, Path]:
    """A served model (version v1, ``weights_kb`` of random weights) backed up once;
    return its directory and its policy file."""
    served = tmp_path / "srv" / "llm"
    served.mkdir(parents=True)
    if weights_kb:
        (served / "weights.bin").write_bytes(os.urandom(weights_kb * 1024))
    (served / "VERSION").write_text("v1\n")
    policy = _model_policy(tmp_path, served)
    assert backupctl("backup", "llm", policies=policy).code == 0
    return served, policy


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_model_drill_checks_the_newest_version_and_leaves_no_leftovers(
    tmp_path: Path, backupctl: Any
) -> None:
    served, policy = _backed_up_llm(tmp_path, backupctl, 64)
    (served / "VERSION").write_text("v2\n")
    assert backupctl("backup", "llm", policies=policy).code == 0
    before = _snapshot(served.parent)

    result = backupctl("drill", "run", "llm", "--json", policies=policy)
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    names = [s["name"] for s in report["steps"]]
    assert names == ["materialise", "check-hashes", "validate", "perf-test"]
    assert any(c["name"].startswith("perf ") and c["passed"] for c in report["checks"])
    assert (tmp_path / "hooks" / "v").read_text() == "ok\n"
    assert _snapshot(served.parent) == before  # never applied
    assert _leftovers(backupctl.state_dir) == []
    assert report["rpo_seconds"] >= 0 and report["rto_seconds"] > 0

    html = (Path(report["html_report"])).read_text()
    assert "<svg" in html and "http://" not in html and "https://" not in html


def test_the_html_report_is_self_contained_and_renders_in_chromium(
    tmp_path: Path, backupctl: Any
) -> None:
    _served, policy = _backed_up_llm(tmp_path, backupctl)
    for _ in range(2):  # two drills: the history chart has two bars
        assert backupctl("drill", "run", "llm", policies=policy).code == 0
    drill_id = json.loads(backupctl("drill", "list", "--json", policies=policy).stdout)[-1][
        "drill_id"
    ]
    shown = backupctl("drill", "show", drill_id, "--format", "html", policies=policy)
    assert shown.code == 0, shown.output
    html = shown.stdout
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 3
    assert "http://" not in html and "https://" not in html
    assert 'aria-label="step timeline"' in html

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed: cannot render the report headless")
    page = tmp_path / "report.html"
    page.write_text(html)
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1000,1400",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000  # a blank page is ~5 KB
    kept = Path(__file__).resolve().parents[2] / "test-output" / "drill-report.png"
    kept.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, kept)
    print(f"drill report screenshot: {kept}")


def test_an_elasticsearch_drill_restores_copies_verifies_and_deletes_them(
    es_cluster: EsCluster, tmp_path: Path, backupctl: Any
) -> None:
    from tests.integration.test_elasticsearch import _backup, _count, _fill, _policy

    client = es_cluster.client()
    index = es_cluster.name("orders") + "-1"
    _fill(client, index, 21)
    policy = _policy(tmp_path, es_cluster)
    _backup(backupctl, policy)
    before = sorted(r["index"] for r in client.cat.indices(format="json", h="index").body)

    result = backupctl("drill", "run", "search", "--json", policies=policy)
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    names = [s["name"] for s in report["steps"]]
    assert names[-2:] == ["verify", "delete-copies"]
    copy = next(c for c in report["checks"] if c["name"].startswith("docs drill-"))
    assert copy["passed"] and "21 documents" in copy["detail"]
    after = client.cat.indices(format="json", h="index", expand_wildcards="all").body
    assert sorted(r["index"] for r in after if not r["index"].startswith(".")) == sorted(
        i for i in before if not i.startswith(".")
    )
    assert _count(client, index) == 21
    assert _leftovers(backupctl.state_dir) == []


def test_a_corrupted_backup_fails_the_drill_at_the_step_that_found_it(
    tmp_path: Path, backupctl: Any
) -> None:
    _served, policy = _backed_up_llm(tmp_path, backupctl, 32)
    for blob in (tmp_path / "repo" / "llm" / "blobs").rglob("*.zst"):
        blob.write_bytes(b"not zstd at all")
    result = backupctl("drill", "run", "llm", "--json", policies=policy)
    assert result.code == 3, result.output
    report = json.loads(result.stdout)
    assert report["reason"].startswith("step 'materialise' failed")
    assert report["rto_seconds"] is None and report["rpo_seconds"] is None
    assert report["steps"][0]["status"] in ("compensated", "failed")
    assert "drill of llm failed: step 'materialise' failed" in result.stderr
    assert _leftovers(backupctl.state_dir) == []


def test_a_corrupted_mariadb_backup_fails_the_drill_where_it_is_read(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    server = fresh_mariadb
    policy = _shop(tmp_path, server)
    _backed_up_shop(server, policy, backupctl)
    listed = json.loads(backupctl("list", "shop", "--json", policies=policy).stdout)
    full = next(m for m in listed if m["kind"] == "full")
    stream = max(full["artifacts"], key=lambda a: a["stored_bytes"])
    path = tmp_path / "repo" / stream["key"]
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))
    checksum = _checksum(server)

    result = backupctl("drill", "run", "shop", "--json", policies=policy)
    assert result.code == 3, result.output
    report = json.loads(result.stdout)
    assert not report["passed"] and report["rto_seconds"] is None
    assert report["reason"].startswith("step 'fetch-extract' failed"), report["reason"]
    statuses = {s["name"]: s["status"] for s in report["steps"]}
    assert statuses["fetch-extract"] in ("failed", "compensated")
    assert statuses["verify"] == "pending"  # nothing after the damage ran
    assert "Traceback" not in result.output
    assert _checksum(server) == checksum  # the live server never noticed
    assert _leftovers(backupctl.state_dir) == []


def _configs(tmp_path: Path) -> tuple[Path, Path]:
    from tests.integration.test_config_git import _etc, _policy

    etc = _etc(tmp_path)
    return etc, _policy(tmp_path, etc)


def test_a_config_history_drill_checks_git_and_restores_the_newest_state(
    tmp_path: Path, backupctl: Any
) -> None:
    etc, policy = _configs(tmp_path)
    assert backupctl("backup", "configs", policies=policy).code == 0
    (etc / "nginx" / "nginx.conf").write_bytes(b"worker_processes 4;\n")
    assert backupctl("backup", "configs", policies=policy).code == 0
    newest = json.loads(backupctl("list", "configs", "--json", policies=policy).stdout)[-1]

    result = backupctl("drill", "run", "--json", policies=policy)  # every policy: configs too
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    assert report["policy"] == "configs" and report["backup_id"] == newest["backup_id"]
    names = [s["name"] for s in report["steps"]]
    assert names == [
        "check-history",
        "prepare-target",
        "extract-files",
        "verify-files",
        "remove-files",
    ]
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["git-fsck"]["passed"] and checks["history"]["passed"]
    assert all(c["passed"] for c in report["checks"])
    assert report["recovery_point"] == newest["details"]["committed_at"]
    assert report["rto_seconds"] > 0
    assert _leftovers(backupctl.state_dir) == []
    stored = tmp_path / "history.git" / "backupctl" / "configs" / "drills" / report["drill_id"]
    assert (stored / "report.json").is_file()  # beside the history, in its repository


def test_a_damaged_git_object_fails_the_config_drill_at_check_history(
    tmp_path: Path, backupctl: Any
) -> None:
    _etc, policy = _configs(tmp_path)
    assert backupctl("backup", "configs", policies=policy).code == 0
    objects = tmp_path / "history.git" / "objects"
    loose = sorted(p for p in objects.glob("??/*") if p.is_file())
    assert loose, "expected loose objects after one commit"
    for path in loose:  # every object damaged: whichever git reads first is bad
        path.chmod(0o644)
        path.write_bytes(b"garbage, not a zlib stream")

    result = backupctl("drill", "run", "configs", "--json", policies=policy)
    assert result.code == 3, result.output
    report = json.loads(result.stdout)
    assert report["reason"].startswith("step 'check-history' failed"), report["reason"]
    fsck = next(c for c in report["checks"] if c["name"] == "git-fsck")
    assert not fsck["passed"] and fsck["detail"]
    assert "Traceback" not in result.output
    assert _leftovers(backupctl.state_dir) == []


def test_random_selection_drills_an_older_version_and_does_not_judge_its_rpo(
    tmp_path: Path, backupctl: Any
) -> None:
    import random

    from backupctl.catalog.manifest import scan_manifests
    from backupctl.layout import StateLayout
    from backupctl.operations.context import Context
    from backupctl.operations.drill import run_drill, select_backup
    from backupctl.policy.loader import load_policies
    from backupctl.storage.factory import open_repository

    served = tmp_path / "srv" / "llm"
    served.mkdir(parents=True)
    (served / "VERSION").write_text("v1\n")
    policy_file = _model_policy(tmp_path, served)
    ids = []
    for version in ("v1", "v2", "v3"):
        (served / "VERSION").write_text(f"{version}\n")
        result = backupctl("backup", "llm", "--json", policies=policy_file)
        assert result.code == 0, result.output
        ids.append(json.loads(result.stdout)["backup_id"])
    policy = load_policies(policy_file)[0]
    policy = policy.model_copy(
        update={"drill": policy.drill.model_copy(update={"select": "random"})}
    )
    repo = open_repository(policy.repository)
    now = datetime.now(UTC)
    stored = sorted(scan_manifests(repo, "llm"), key=lambda m: m.finished_at)

    picks = set()
    for seed in range(40):
        picked = select_backup(stored, policy.drill, now, random.Random(seed)).manifest
        assert picked is not None
        picks.add(picked.backup_id)
    assert picks == set(ids)  # every kept version can be drilled
    narrow = policy.model_copy(
        update={"drill": policy.drill.model_copy(update={"window": timedelta(0)})}
    )
    fallback = select_backup(stored, narrow.drill, now, random.Random(1))
    assert fallback.manifest is not None and fallback.manifest.backup_id == ids[-1]

    seed = next(s for s in range(100) if random.Random(s).choice(ids) == ids[0])
    ctx = Context(StateLayout(backupctl.state_dir))
    report = run_drill(ctx, policy, repo, rng=random.Random(seed)).model_dump(mode="json")
    assert report["passed"], report["reason"]
    assert report["backup_id"] == ids[0]
    assert report["selection"] == {
        "mode": "random",
        "candidates": 3,
        "newest_backup_id": ids[-1],
    }
    assert "objective-rpo" not in {c["name"] for c in report["checks"]}
    assert report["notes"] and "not judged" in report["notes"][0]


def test_a_drill_whose_repository_cannot_be_opened_fails_with_the_reason(
    tmp_path: Path, backupctl: Any
) -> None:
    served = tmp_path / "srv" / "llm"
    served.mkdir(parents=True)
    policy = model_policy(tmp_path / "policies", "llm", served, tmp_path / "unused", {})
    policy.write_text(
        policy.read_text().replace(f"file://{tmp_path / 'unused'}", "s3://no-such-bucket/x")
    )
    no_credentials = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_PROFILE": "",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }
    result = backupctl("drill", "run", "llm", "--json", policies=policy, env=no_credentials)
    assert result.code == 3, result.output
    report = json.loads(result.stdout)
    assert report["reason"].startswith("cannot start: ")
    assert "s3://no-such-bucket/x" in report["reason"]
    assert Path(report["html_report"]).is_file()  # kept locally, the repository being out
    status = json.loads(backupctl("status", "--json", policies=policy, env=no_credentials).stdout)
    assert status[0]["runs"]["drill"]["last_outcome"] == "failure"
