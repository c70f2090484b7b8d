"""In-place and target restores of a real mariadbd, with failures injected at every step."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupctl.demo import sample_data
from backupctl.demo.server import ThrowawayServer, checksum_tables
from backupctl.drivers.mariadb.datadir_steps import servers_on
from backupctl.drivers.mariadb.instance import MariaDBInstance
from tests.support.cli import popen_backupctl
from tests.support.mariadb import MariaDBServer
from tests.support.policies import restorable_policy

ASSERTION = {"sql": "SELECT COUNT(*) FROM shop.orders", "expect": "> 0"}


@dataclass
class Restorable:
    server: MariaDBServer
    policy: Path
    backup_id: str
    checksums: dict[str, Any]
    hooks: dict[str, Path]
    cli: Any

    def edit(self, **changes: Any) -> None:
        data = yaml.safe_load(self.policy.read_text())
        for key, value in changes.items():
            data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
        self.policy.write_text(yaml.safe_dump(data))

    def run(self, *args: str) -> Any:
        return self.cli(*args, policies=self.policy)

    def write_after_backup(self) -> None:
        conn = self.server.connect()
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE shop.after_backup (id INT PRIMARY KEY)")
            cur.execute("INSERT INTO shop.after_backup VALUES (1), (2)")
            cur.execute("DELETE FROM shop.orders WHERE id % 2 = 0")
        conn.close()

    def live_tables(self) -> dict[str, Any]:
        conn = self.server.connect()
        try:
            return checksum_tables(conn)
        finally:
            conn.close()


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def _make(server: MariaDBServer, tmp_path: Path, cli: Any, size_mb: int) -> Restorable:
    conn = server.connect()
    sample_data.generate(conn, "shop", size_mb)
    checksums = checksum_tables(conn)
    conn.close()
    policy = restorable_policy(tmp_path, server, verify=[ASSERTION], health_timeout="60s")
    result = cli("backup", "shop", "--json", policies=policy)
    assert result.code == 0, result.output
    hooks = {"stop": tmp_path / "hooks" / "stop.sh", "start": tmp_path / "hooks" / "start.sh"}
    return Restorable(server, policy, json.loads(result.stdout)["backup_id"], checksums, hooks, cli)


@pytest.fixture
def restorable(fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any) -> Restorable:
    return _make(fresh_mariadb, tmp_path, backupctl, 30)


def test_in_place_restore_brings_back_the_backup(restorable: Restorable) -> None:
    restorable.write_after_backup()
    assert restorable.live_tables() != restorable.checksums
    result = restorable.run("restore", "shop", "--yes", "--json")
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["backup"]["backup_id"] == restorable.backup_id
    assert [s["status"] for s in report["steps"]] == ["ok"] * len(report["steps"])
    assert [s["name"] for s in report["steps"]] == [
        "check-backup",
        "fetch-extract",
        "prepare",
        "stop-services",
        "ensure-stopped",
        "move-aside",
        "move-into-place",
        "start-recovery-instance",
        "verify",
        "stop-recovery-instance",
        "start-services",
        "health-check",
    ]
    # an incident restore checks at restore.verify_level (default: standard)
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == {
        "check-table",
        "tables-match-manifest",
        "row-estimates",
        f"sql: {ASSERTION['sql']}",
    }
    assert all(c["passed"] for c in report["checks"])
    assert "CHECK TABLE QUICK" in checks["check-table"]["detail"]
    # mariabackup --prepare got a quarter of the available memory (at least 256M)
    prepared = next(s for s in report["steps"] if s["name"] == "prepare")
    memory = re.search(r"--use-memory=(\d+)M", prepared["detail"])
    assert memory is not None and int(memory.group(1)) >= 256, prepared
    # the server is up again (the start hook ran) with exactly the data of the backup
    assert restorable.live_tables() == restorable.checksums
    # the replaced datadir is kept aside, with the data written after the backup
    aside = Path(report["aside"])
    assert (aside / "shop" / "after_backup.frm").exists()
    assert aside.stat().st_uid == restorable.server.datadir.stat().st_uid
    state = restorable.cli.state_dir
    assert (state / "restores" / f"{report['run_id']}.md").read_text().startswith("# Restore")


def _fail_once(tmp_path: Path) -> Path:
    marker = tmp_path / "failed-once"
    return _script(
        tmp_path / "fail-once.sh",
        f'[ -e {marker} ] && exit 0; touch {marker}; echo "app refused to start"; exit 1',
    )


INJECTIONS = ["stop-hook", "corrupt-object", "prepare", "verify-assertion", "start-hook"]


@pytest.mark.parametrize("where", INJECTIONS)
def test_failure_at_any_step_puts_the_original_back(
    where: str, restorable: Restorable, tmp_path: Path
) -> None:
    restorable.write_after_backup()
    before = restorable.live_tables()
    expected_step, expected_code = {
        "stop-hook": ("stop-services", 1),
        "corrupt-object": ("fetch-extract", 3),
        "prepare": ("prepare", 3),
        "verify-assertion": ("verify", 3),
        "start-hook": ("start-services", 1),
    }[where]
    stop, start = str(restorable.hooks["stop"]), str(restorable.hooks["start"])
    if where == "stop-hook":
        failing = _script(tmp_path / "fail.sh", 'echo "cannot stop the app"; exit 1')
        restorable.edit(restore={"stop": [str(failing), stop]})
    elif where == "corrupt-object":
        data = next((tmp_path / "repo").rglob("data.mbstream.zst"))
        with open(data, "r+b") as fh:
            fh.seek(data.stat().st_size // 2)
            fh.write(b"\xff" * 64)
    elif where == "prepare":
        fake = _script(
            tmp_path / "mariabackup",
            'case "$*" in *--prepare*) echo "simulated prepare failure" >&2; exit 1;; esac\n'
            'exec mariabackup "$@"',
        )
        restorable.edit(backup={"mariabackup": str(fake)})
    elif where == "verify-assertion":
        restorable.edit(restore={"verify": [{"sql": ASSERTION["sql"], "expect": "> 100000000"}]})
    elif where == "start-hook":
        restorable.edit(restore={"start": [start, str(_fail_once(tmp_path))]})

    result = restorable.run("restore", "shop", "--yes")
    assert result.code == expected_code, result.output
    assert f"step '{expected_step}' failed" in result.stderr
    assert "Traceback" not in result.output
    # the server runs as before, on the original data, and only once
    assert restorable.live_tables() == before
    assert len(servers_on(restorable.server.datadir)) == 1
    assert not list(restorable.server.datadir.parent.glob("*.aside-*"))
    assert not list(restorable.server.datadir.parent.glob(".*.restore-*"))


@pytest.fixture
def big_restorable(fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any) -> Restorable:
    return _make(fresh_mariadb, tmp_path, backupctl, 200)


def _kill_during_extraction(r: Restorable) -> None:
    def extracting(parent: Path) -> bool:
        staging = list(parent.glob(".*.restore-*"))
        return (
            bool(staging)
            and sum(f.stat().st_size for f in staging[0].rglob("*") if f.is_file()) > 20e6
        )

    _kill_restore_when(r, extracting)


def _kill_restore_when(r: Restorable, ready: Callable[[Path], bool]) -> None:
    """Start an in-place restore and SIGKILL it once ``ready(datadir's parent)``."""
    proc = popen_backupctl(
        [
            "--state-dir",
            str(r.cli.state_dir),
            "--policies",
            str(r.policy),
            "restore",
            "shop",
            "--yes",
        ]
    )
    parent = r.server.datadir.parent
    deadline = time.monotonic() + 120
    while not ready(parent):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _moved_aside(parent: Path) -> bool:
    return bool(list(parent.glob("*.aside-*")))


@pytest.mark.parametrize("finish", ["--resume", "--rollback"])
@pytest.mark.parametrize("when", ["during-extraction", "after-move-aside"])
def test_sigkill_then_resume_or_rollback(
    finish: str, when: str, big_restorable: Restorable
) -> None:
    """Killed while extracting (the server still serves: the copy is extracted and prepared
    before anything stops) or once the datadir was moved aside (the server is down)."""
    r = big_restorable
    r.write_after_backup()
    before = r.live_tables()
    pid = r.server.instance.pid()
    if when == "during-extraction":
        _kill_during_extraction(r)
        assert r.server.instance.pid() == pid and r.live_tables() == before
    else:
        _kill_restore_when(r, _moved_aside)
        assert not r.server.instance.is_running()  # stopped by the stop hook
    blocked = r.run("restore", "shop", "--yes")
    assert blocked.code == 2 and "was interrupted" in blocked.stderr

    result = r.run("restore", "shop", finish, "--json")
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    if finish == "--resume":
        assert report["state"] == "completed"
        assert r.live_tables() == r.checksums
    else:
        assert report["state"] == "rolled-back"
        assert r.live_tables() == before
        assert not list(r.server.datadir.parent.glob("*.aside-*"))
    assert r.server.instance.is_running()
    assert not list(r.server.datadir.parent.glob(".*.restore-*"))
    assert r.run("restore", "shop", "--resume").code == 2  # nothing left to resume


def test_full_verification_catches_a_corrupted_page(restorable: Restorable, tmp_path: Path) -> None:
    # a mariabackup whose prepare leaves one page of shop.orders damaged (as a bad disk
    # or a bad copy would): the datafile's middle page, its body, not its header
    corrupt = (  # the B-tree page (FIL_PAGE_INDEX: type 17855 at byte 24) in the middle
        "import sys\n"
        "path, size = sys.argv[1], 16384\n"
        "with open(path, 'r+b') as fh:\n"
        "    data = fh.read()\n"
        "    pages = [n for n in range(len(data) // size)\n"
        "             if data[n * size + 24 : n * size + 26] == (17855).to_bytes(2, 'big')]\n"
        "    at = pages[len(pages) // 2] * size + 4000\n"
        "    fh.seek(at)\n"
        "    fh.write(bytes(b ^ 0xFF for b in data[at : at + 64]))\n"
        "print('corrupted page', at // size, 'of', len(pages), 'index pages', file=sys.stderr)\n"
    )
    (tmp_path / "corrupt.py").write_text(corrupt)
    fake = _script(
        tmp_path / "mariabackup",
        'mariabackup "$@" || exit $?\n'
        'case "$*" in *--prepare*)\n'
        '  for a in "$@"; do case "$a" in --target-dir=*) dir="${a#--target-dir=}";; esac; done\n'
        f'  python3 {tmp_path / "corrupt.py"} "$dir/shop/orders.ibd";;\n'
        "esac",
    )
    restorable.edit(backup={"mariabackup": str(fake)})
    target = tmp_path / "copy"
    args = ("restore", "shop", "--target-datadir", str(target), "--json")
    result = restorable.run(*args, "--verify-level", "full")
    assert result.code == 3, result.output
    assert "Traceback" not in result.output
    report = json.loads(result.stdout)
    assert report["error"].startswith("verify: check-table: shop.orders"), report["error"]
    assert not target.exists() or not any(target.iterdir())  # nothing half-restored is left


def test_restore_to_a_target_datadir_leaves_the_live_server_alone(
    restorable: Restorable, tmp_path: Path
) -> None:
    restorable.write_after_backup()
    before = restorable.live_tables()
    target = tmp_path / "copy"
    result = restorable.run("restore", "shop", "--target-datadir", str(target), "--json")
    assert result.code == 0, result.output
    steps = [s["name"] for s in json.loads(result.stdout)["steps"]]
    assert "stop-services" not in steps and "start-services" not in steps
    assert restorable.live_tables() == before
    with MariaDBInstance.for_datadir(target, tmp_path / "copy-run", networking=False) as copy:
        conn = copy.connect()
        assert checksum_tables(conn) == restorable.checksums
        conn.close()
    occupied = restorable.run("restore", "shop", "--target-datadir", str(target))
    assert occupied.code == 2 and "is not empty" in occupied.stderr


def test_verify_level_decides_what_is_checked_before_the_server_starts(
    restorable: Restorable, tmp_path: Path
) -> None:
    def restore(level: str | None) -> dict[str, Any]:
        target = tmp_path / f"copy-{level}"
        args = ["--target-datadir", str(target), "--json"]
        result = restorable.run(
            "restore", "shop", *args, *(["--verify-level", level] if level else [])
        )
        assert result.code == 0, result.output
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    def checks(report: dict[str, Any]) -> dict[str, str]:
        assert all(c["passed"] for c in report["checks"])
        return {c["name"]: c["detail"] for c in report["checks"]}

    def verify_detail(report: dict[str, Any]) -> str:
        return str(next(s["detail"] for s in report["steps"] if s["name"] == "verify"))

    conn = restorable.server.connect()
    with conn.cursor() as cur:
        cur.execute(
            "SELECT SUM(table_rows) FROM information_schema.tables WHERE table_schema = 'shop'"
        )
        assert cur.fetchone()[0] > 0  # (InnoDB's estimate: below, the exact count is compared)
        rows = 0
        for table in restorable.checksums:
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            rows += int(cur.fetchone()[0])
    conn.close()
    quick = restore("quick")
    assert set(checks(quick)) == {
        "tables-match-manifest",
        "row-estimates",
        f"sql: {ASSERTION['sql']}",
    }
    assert verify_detail(quick).startswith("quick verification: 3 check(s) passed in ")
    full = checks(restore("full"))
    assert "CHECK TABLE EXTENDED" in full["check-table"]
    assert full["row-counts"].startswith(f"{rows} rows, consistent with the manifest")
    # the policy sets the default; the command line overrides it
    restorable.edit(restore={"verify_level": "quick"}, backup={"prepare_memory": "300M"})
    by_policy = restore(None)
    assert "check-table" not in checks(by_policy)
    prepared = next(s for s in by_policy["steps"] if s["name"] == "prepare")
    assert prepared["detail"].endswith("(--use-memory=300M)")
    assert "CHECK TABLE QUICK" in checks(restore("standard"))["check-table"]
    plan = restorable.run("restore", "shop", "--dry-run", "--verify-level", "full")
    assert "full: CHECK TABLE ... EXTENDED on every table" in plan.stdout
    wrong = restorable.run("restore", "shop", "--yes", "--verify-level", "deep")
    assert wrong.code == 2 and "--verify-level" in wrong.stderr
    assert "Traceback" not in wrong.output
    restorable.edit(restore={"verify_level": "thorough"})
    bad_policy = restorable.run("policy", "validate")
    assert bad_policy.code == 2 and "verify_level" in bad_policy.stderr


def _state(r: Restorable) -> tuple[Any, ...]:
    """What an operator would notice: files, table contents, the server process."""
    files = sorted(str(p.relative_to(r.server.datadir)) for p in r.server.datadir.rglob("*"))
    siblings = sorted(p.name for p in r.server.datadir.parent.iterdir())
    return files, siblings, r.live_tables(), r.server.instance.pid()


def test_dry_run_changes_nothing_and_lists_the_steps(restorable: Restorable) -> None:
    before = _state(restorable)
    result = restorable.run("restore", "shop", "--dry-run")
    assert result.code == 0, result.output
    for step in (
        "stop-services",
        "move-aside",
        "fetch-extract",
        "prepare",
        "verify",
        "health-check",
    ):
        assert step in result.stdout
    assert f"hook: {restorable.hooks['stop']}" in result.stdout
    assert restorable.backup_id in result.stdout
    assert "estimated duration: unknown" in result.stdout
    assert _state(restorable) == before
    assert not (restorable.cli.state_dir / "runbooks").exists()
    as_json = json.loads(restorable.run("restore", "shop", "--dry-run", "--json").stdout)
    assert as_json["backup"]["backup_id"] == restorable.backup_id


def test_without_a_terminal_and_without_yes_nothing_happens(restorable: Restorable) -> None:
    before = restorable.live_tables()
    result = restorable.run("restore", "shop")
    assert result.code == 2
    assert "--yes" in result.stderr
    assert restorable.server.instance.is_running()
    assert restorable.live_tables() == before
    assert not (restorable.cli.state_dir / "runbooks").exists()


def test_estimate_comes_from_past_restores(restorable: Restorable, tmp_path: Path) -> None:
    done = restorable.run("restore", "shop", "--yes", "--json")
    assert done.code == 0, done.output
    ran = {s["name"]: s for s in json.loads(done.stdout)["steps"]}
    raw = ran["fetch-extract"]["bytes"]
    assert raw > 0 and ran["fetch-extract"]["basis"] == "fetch-extract"
    assert ran["verify"]["basis"] == "verify-standard" and ran["stop-services"]["bytes"] is None
    # the Markdown report gives the throughput of the steps that work through data
    report_md = next((restorable.cli.state_dir / "restores").glob("*.md")).read_text()
    assert "| step | status | seconds | throughput | detail |" in report_md
    assert "/s |" in next(line for line in report_md.splitlines() if "| fetch-extract |" in line)

    plan = json.loads(restorable.run("restore", "shop", "--dry-run", "--json").stdout)
    assert plan["estimate_seconds"] is not None and plan["estimate_seconds"] > 0
    steps = {s["name"]: s for s in plan["steps"]}
    # each step from the same step before: the extraction per byte, the hooks as a whole
    extract = steps["fetch-extract"]
    assert extract["bytes"] == raw and "/s (median of 1 past run(s))" in extract["estimate"]["how"]
    rate = raw / ran["fetch-extract"]["seconds"]
    assert abs(extract["estimate"]["seconds"] - raw / rate) <= 0.1
    assert steps["stop-services"]["estimate"]["seconds"] == round(
        ran["stop-services"]["seconds"], 1
    )
    # a verification level never run before is not guessed
    full = json.loads(
        restorable.run("restore", "shop", "--dry-run", "--json", "--verify-level", "full").stdout
    )
    verify = next(s for s in full["steps"] if s["name"] == "verify")
    assert verify["estimate"] == {"seconds": None, "how": "never measured"}
    assert full["unmeasured_steps"] == 1
    text = restorable.run("restore", "shop", "--dry-run").stdout
    assert "        about " in text and "estimated duration: " in text
    assert "(each step from past restores and drills of shop)" in text


def test_on_a_terminal_the_operator_is_asked_first(restorable: Restorable) -> None:
    import pty
    import subprocess
    import sys

    before = restorable.live_tables()
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backupctl",
            "--state-dir",
            str(restorable.cli.state_dir),
            "--policies",
            str(restorable.policy),
            "--log-format",
            "json",
            "restore",
            "shop",
        ],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(slave)
    os.write(master, b"n\n")
    out, err = proc.communicate(timeout=120)
    os.close(master)
    assert proc.returncode == 1, out + err
    assert "replace the live data of shop now?" in err
    assert "fetch-extract" in out  # the plan was shown before the question
    assert restorable.live_tables() == before
    assert not (restorable.cli.state_dir / "runbooks").exists()


def test_restore_keeps_a_mysql_owned_datadir_owned_by_mysql(backupctl: Any) -> None:
    """Production datadirs belong to `mysql`: restored files and the recovery instance too."""
    import pwd
    import shutil
    import subprocess
    import tempfile

    try:
        mysql = pwd.getpwnam("mysql")
    except KeyError:
        pytest.skip("no mysql user (the mariadb-server package creates it)")
    if os.geteuid() != 0:
        pytest.skip("needs root to hand the datadir to mysql")
    base = Path(tempfile.mkdtemp(prefix="backupctl-owner-", dir="/tmp"))
    base.chmod(0o755)  # mysql must reach the datadir
    instance = ThrowawayServer.create(base / "mariadb")
    try:
        (base / "mariadb").chmod(0o755)
        subprocess.run(
            ["chown", "-R", "mysql:mysql", str(instance.datadir), str(instance.pid_file.parent)],
            check=True,
        )
        instance.run_as = "mysql"
        instance.start()
        instance.create_user("backup", "owner-pw")
        conn = instance.connect()
        sample_data.generate(conn, "shop", 10)
        before = checksum_tables(conn)
        conn.close()
        secret = base / "pw"
        secret.write_text("owner-pw\n")
        server = MariaDBServer(instance, "backup", "owner-pw", secret)
        policy = restorable_policy(base, server)
        assert backupctl("backup", "shop", policies=policy).code == 0
        result = backupctl("restore", "shop", "--yes", policies=policy)
        assert result.code == 0, result.output
        assert {p.stat().st_uid for p in instance.datadir.rglob("*")} == {mysql.pw_uid}
        assert instance.datadir.stat().st_uid == mysql.pw_uid
        assert instance.datadir.stat().st_mode & 0o777 == 0o700
        conn = instance.connect()
        assert checksum_tables(conn) == before
        conn.close()
    finally:
        instance.stop()
        shutil.rmtree(base, ignore_errors=True)
