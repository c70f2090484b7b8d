"""SIGKILL at seeded random moments of every operation that writes.

For MariaDB full backups, binlog shipping, ``binlog follow``, prune, model backups and
model prunes, and in-place MariaDB restores: start the CLI, kill it (and what it
started) after a seeded delay drawn from the operation's typical duration, or at a
seeded kill point (just before the k-th upload, commit, deletion, catalog or journal
write; every third trial), see tests/support/kill.py. Then check what an operator
relies on:

1. ``list`` shows only complete backups: their objects exist and ``verify`` passes
   (the newest few), and every manifest in the repository is complete;
2. the next run of the operation succeeds (locks were released), removes what the
   killed one left half-written and lists what it completed; the binlog chain has no
   gap and reaches the last transaction;
3. a killed restore is resumed or rolled back (``--resume`` in some trials,
   ``--rollback`` in the others) and the server runs with either the restored data or
   the original data, byte for byte (CHECKSUM TABLE), with nothing left aside.

``BACKUPCTL_KILL_TRIALS`` (default 3) trials per operation, ``BACKUPCTL_KILL_SEED``
to replay; every failure names its seed, trial, delay or kill point and kill mode.
Each test prints a summary table (``BACKUPCTL_KILL_REPORT=FILE`` collects them as JSON
lines). The tests at the end replay, at fixed kill points, the bugs the trials found.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupctl.catalog.manifest import scan_manifests
from backupctl.demo import sample_data
from backupctl.demo.server import checksum_tables
from backupctl.drivers.mariadb.datadir_steps import servers_on
from backupctl.drivers.mariadb.pitr import binlog_chain
from backupctl.storage.local import PARTIAL_MARK, LocalRepository
from tests.support.cli import CliResult
from tests.support.kill import (
    Killed,
    Tally,
    Trial,
    alive,
    argv_of,
    at_point,
    counted_run,
    descendants,
    kill_cgroup,
    run_killed,
    trials,
)
from tests.support.mariadb import MariaDBServer
from tests.support.model_policies import model_policy
from tests.support.policies import mariadb_policy, restorable_policy

pytestmark = pytest.mark.slow

SIZE_MB = int(os.environ.get("BACKUPCTL_KILL_SIZE_MB", "30"))
VERIFY_NEWEST = 2  # verify this many of the newest listed backups after each kill


@dataclass
class Rig:
    """One policy under test: its CLI calls, repository and name."""

    cli: Any
    policy: Path
    repo_dir: Path
    name: str

    @property
    def repo(self) -> LocalRepository:
        return LocalRepository(self.repo_dir)

    def args(self, *args: str) -> list[str]:
        state = str(self.cli.state_dir)
        return ["--state-dir", state, "--log-format", "json", "--policies", str(self.policy), *args]

    def run(self, *args: str) -> CliResult:
        result: CliResult = self.cli(*args, policies=self.policy)
        return result

    def ok(self, trial: Trial | str, *args: str) -> CliResult:
        result = self.run(*args)
        assert result.code == 0, (
            f"{trial} `backupctl {' '.join(args)}` exited {result.code}:\n{result.output[-4000:]}"
        )
        return result

    def listing(self, trial: Trial | str) -> list[dict[str, Any]]:
        return list(json.loads(self.ok(trial, "list", self.name, "--json").stdout))

    def listed(self, trial: Trial | str) -> set[str]:
        return {m["backup_id"] for m in self.listing(trial)}


@pytest.fixture
def tally(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[str], Tally]]:
    """``tally(operation)``: figures of one operation, printed (and reported) at the end."""
    made: list[Tally] = []

    def make(operation: str) -> Tally:
        made.append(Tally(operation))
        return made[-1]

    yield make
    with capsys.disabled():
        for each in made:
            print(each.publish())


def _after_kill(trial: Trial, killed: Killed, what: str) -> None:
    """A run that finished before the kill must have succeeded."""
    if killed.finished:
        assert killed.code == 0, (
            f"{trial} {what} finished before the kill but exited {killed.code}:\n"
            f"{killed.stderr[-4000:]}"
        )


@dataclass
class Listing:
    listed: set[str]  # ids `list` shows
    unlisted: set[str]  # complete in the repository, not (yet) in the catalog


def assert_only_complete(rig: Rig, trial: Trial | str, verify: int = VERIFY_NEWEST) -> Listing:
    """Invariant 1: every listed backup is complete and the newest ``verify`` verify; every
    manifest in the repository is complete. Also says which complete backups are not
    listed (killed between writing a manifest and recording it in the catalog)."""
    repo = rig.repo
    listed = rig.listing(trial)
    for m in listed:
        prefix = f"{m['policy']}/{m['kind']}/{m['backup_id']}"
        assert repo.exists(f"{prefix}/manifest.json"), (
            f"{trial} backup {m['backup_id']} is listed but its manifest is gone"
        )
        missing = [a["key"] for a in m["artifacts"] if not repo.exists(a["key"])]
        assert not missing, f"{trial} listed backup {m['backup_id']} lacks {missing}"
    stored = scan_manifests(repo, rig.name)
    for manifest in stored:
        missing = [a.key for a in manifest.artifacts if not repo.exists(a.key)]
        assert not missing, f"{trial} manifest of {manifest.backup_id} names missing {missing}"
    for m in [m for m in listed if m.get("failure") is None][-verify:] if verify else []:
        result = rig.run("verify", rig.name, m["backup_id"])
        assert result.code == 0, (
            f"{trial} listed backup {m['backup_id']} does not verify (exit {result.code}):\n"
            f"{result.output[-3000:]}"
        )
    ids = {m["backup_id"] for m in listed}
    return Listing(ids, {m.backup_id for m in stored} - ids)


def assert_no_leftovers(rig: Rig, trial: Trial | str) -> None:
    """Invariant 4: after a successful run nothing half-written remains in the repository."""
    partial = [str(p) for p in rig.repo_dir.rglob(f"*{PARTIAL_MARK}*")]
    assert not partial, f"{trial} incomplete uploads left after the next run: {partial}"
    unfinished = [
        str(p.parent)
        for p in rig.repo_dir.rglob("started.json")
        if not (p.parent / "manifest.json").exists()
    ]
    assert not unfinished, f"{trial} started but never completed backups remain: {unfinished}"


def _after_next_run(
    rig: Rig, trial: Trial, killed: Killed, after_kill: Listing, nxt: CliResult | Any
) -> str:
    """Invariants after the next run: nothing half-written, nothing complete unlisted,
    the newest verifies. Returns the trial's outcome."""
    assert_no_leftovers(rig, trial)
    now = assert_only_complete(rig, trial, verify=1)
    assert not now.unlisted, f"{trial} complete but still unlisted: {now.unlisted}"
    if killed.finished:
        return "finished before the kill"
    if after_kill.unlisted:
        return "complete but unlisted; recorded by the next run"
    if "removed incomplete" in nxt.stderr:
        return "half-written; removed by the next run"
    return "nothing written yet"


# ---------------------------------------------------------------- MariaDB full backups


def _load(server: MariaDBServer, size_mb: int) -> None:
    conn = server.connect()
    try:
        sample_data.generate(conn, "shop", size_mb)
    finally:
        conn.close()


def test_full_backups_killed_at_random(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any, tally: Callable[[str], Tally]
) -> None:
    server = fresh_mariadb
    _load(server, SIZE_MB)
    repo_dir = tmp_path / "repo"
    rig = Rig(
        backupctl,
        mariadb_policy(tmp_path / "policies", server, f"file://{repo_dir}"),
        repo_dir,
        "shop",
    )
    figures = tally("mariadb full backup")
    figures.count_points(rig.args("backup", "shop"), "baseline")
    for trial in trials(figures):
        killed = run_killed(rig.args("backup", "shop"), trial)
        _after_kill(trial, killed, "backup")
        after_kill = assert_only_complete(rig, trial)
        nxt = figures.count_points(rig.args("backup", "shop"), trial)
        figures.add(trial, killed, _after_next_run(rig, trial, killed, after_kill, nxt))
    assert figures.data_lost == 0


# ---------------------------------------------------------------- binlog shipping


def _write_binlogs(server: MariaDBServer, mb: int) -> str:
    """Commit about ``mb`` MB of row events; return the GTID of the last transaction."""
    for _ in range(mb):
        server.sql(
            "INSERT INTO shop.events (payload) SELECT RANDOM_BYTES(1000) FROM shop.seq_1_to_1000"
        )
    return str(server.sql("SELECT @@gtid_binlog_pos")[0][0])


def _seq(gtid: str) -> int:
    return int(gtid.split("-")[2]) if gtid else 0


def assert_chain_reaches(rig: Rig, trial: Trial | str, gtid: str, with_list: bool = True) -> None:
    """The newest full's binlog chain has no gap and holds transaction ``gtid`` (and
    ``list`` shows no gap, ``with_list``)."""
    fulls = [m for m in scan_manifests(rig.repo, rig.name) if m.kind == "full" and m.restorable]
    links, gap = binlog_chain(rig.repo, max(fulls, key=lambda m: m.started_at))
    assert gap is None, f"{trial} the binlog chain has a gap: {gap}"
    newest = max((_seq(link.info.last_gtid or "") for link in links), default=0)
    assert newest >= _seq(gtid), f"{trial} the chain ends at seq {newest}, before {gtid}"
    if with_list:
        listing = rig.ok(trial, "list", rig.name).stdout
        assert "chain stops there" not in listing, f"{trial} `list` shows a gap:\n{listing}"


@pytest.fixture
def binlog_rig(fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any) -> Rig:
    """A server writing 1 MB binlogs, with a full backup to chain onto."""
    server = fresh_mariadb
    server.sql(
        "SET GLOBAL max_binlog_size = 1048576",
        "CREATE DATABASE shop",
        "CREATE TABLE shop.events (id INT AUTO_INCREMENT PRIMARY KEY, payload BLOB)",
    )
    repo_dir = tmp_path / "repo"
    rig = Rig(backupctl, restorable_policy(tmp_path, server), repo_dir, "shop")
    rig.ok("setup", "backup", "shop")
    return rig


def test_binlog_shipping_killed_at_random(
    fresh_mariadb: MariaDBServer, binlog_rig: Rig, tally: Callable[[str], Tally]
) -> None:
    server, rig = fresh_mariadb, binlog_rig
    _write_binlogs(server, 16)
    figures = tally("mariadb binlog shipping")
    figures.count_points(rig.args("backup", "shop", "--type", "binlog"), "baseline")
    for trial in trials(figures):
        last = _write_binlogs(server, 16)
        killed = run_killed(rig.args("backup", "shop", "--type", "binlog"), trial)
        _after_kill(trial, killed, "binlog backup")
        after_kill = assert_only_complete(rig, trial)
        if killed.finished:
            nxt = rig.ok(trial, "backup", "shop", "--type", "binlog")
        else:  # as much to ship as the killed run had: a typical duration
            nxt = figures.count_points(rig.args("backup", "shop", "--type", "binlog"), trial)
        outcome = _after_next_run(rig, trial, killed, after_kill, nxt)
        try:
            assert_chain_reaches(rig, trial, last)
        except AssertionError:
            figures.add(trial, killed, "chain broken", lost=True)
            raise
        figures.add(trial, killed, outcome)
    assert figures.data_lost == 0


class Writer:
    """Commits a row every few milliseconds on its own thread; remembers the last GTID."""

    def __init__(self, server: MariaDBServer):
        self.server, self.last = server, ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        conn = self.server.connect()
        try:
            with conn.cursor() as cur:
                while not self._stop.wait(0.005):
                    cur.execute("INSERT INTO shop.events (payload) VALUES (REPEAT('x', 2000))")
                    cur.execute("SELECT @@gtid_binlog_pos")
                    self.last = str(cur.fetchone()[0])
        finally:
            conn.close()

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_binlog_follow_killed_at_random(
    fresh_mariadb: MariaDBServer, binlog_rig: Rig, tally: Callable[[str], Tally]
) -> None:
    server, rig = fresh_mariadb, binlog_rig
    data = yaml.safe_load(rig.policy.read_text())
    data["schedule"]["binlog"] = "continuous"
    data["backup"].update(binlog_flush_interval="1s", binlog_rotate_interval="2s")
    rig.policy.write_text(yaml.safe_dump(data))
    figures = tally("mariadb binlog follow")
    figures.durations.append(6.0)  # it runs for good: kill it within its first seconds
    orphans: list[int] = []  # kill -9 of the follower alone leaves mariadb-binlog running
    try:
        with Writer(server) as writer:
            for trial in trials(figures):
                killed = run_killed(rig.args("binlog", "follow", "shop"), trial, orphan_wait=0)
                orphans += killed.orphans
                assert not killed.finished, f"{trial} follow exited:\n{killed.stderr[-3000:]}"
                assert_only_complete(rig, trial, verify=1)
                left = " (its mariadb-binlog left running)" if killed.orphans else ""
                figures.add(trial, killed, "restarted" + left)
            last = writer.last
        _final_follower(rig, last)
        # a follower killed alone leaves its mariadb-binlog streaming into the spool; the
        # next follower must stop it, not stream beside it
        left = {pid: argv_of(pid) for pid in orphans if alive(pid)}
        assert not left, f"mariadb-binlog of killed followers still streams: {left}"
    finally:
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert figures.data_lost == 0


def _final_follower(rig: Rig, last: str) -> None:
    # a last follower catches up with every transaction, with no gap
    final = subprocess.Popen(
        [sys.executable, "-m", "backupctl", *rig.args("binlog", "follow", "shop")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert_chain_reaches(rig, "final follower", last)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        final.terminate()
        _out, err = final.communicate(timeout=60)
    assert final.returncode == 0, err[-3000:]
    assert_only_complete(rig, "after the last follower", verify=2)


# ---------------------------------------------------------------- prune


def test_prune_killed_at_random(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any, tally: Callable[[str], Tally]
) -> None:
    server = fresh_mariadb
    _load(server, 5)
    server.sql("CREATE TABLE shop.events (id INT AUTO_INCREMENT PRIMARY KEY, payload BLOB)")
    repo_dir = tmp_path / "repo"
    policy = mariadb_policy(
        tmp_path / "policies",
        server,
        f"file://{repo_dir}",
        retention={"full": "1s", "binlog": "1s"},
    )
    rig = Rig(backupctl, policy, repo_dir, "shop")

    def due_for_deletion() -> str:
        """A new full and a binlog backup after it: the older full and the binlogs before
        the new full go (retention 1s); returns the GTID the chain must reach."""
        _write_binlogs(server, 1)
        rig.ok("setup", "backup", "shop", "--no-prune")  # the prune trials do the pruning
        full_done = time.monotonic()
        last = _write_binlogs(server, 1)
        rig.ok("setup", "backup", "shop", "--type", "binlog", "--no-prune")
        time.sleep(max(0.0, 1.2 - (time.monotonic() - full_done)))  # older than 1s
        return last

    due_for_deletion()
    figures = tally("mariadb prune")
    due_for_deletion()
    figures.count_points(rig.args("prune", "shop"), "baseline")
    for trial in trials(figures):
        last = due_for_deletion()
        before = rig.listed(trial)
        killed = run_killed(rig.args("prune", "shop"), trial)
        _after_kill(trial, killed, "prune")
        after_kill = assert_only_complete(rig, trial)
        assert_chain_reaches(rig, trial, last, with_list=False)
        # the next prune removes what the killed one left half-deleted, and takes a
        # backup it forgot but had not deleted yet
        figures.count_points(rig.args("prune", "shop"), trial)
        now = assert_only_complete(rig, trial, verify=1)
        assert not now.unlisted, f"{trial} complete but unlisted: {now.unlisted}"
        assert_no_leftovers(rig, trial)
        assert_chain_reaches(rig, trial, last)
        decisions = json.loads(rig.ok(trial, "prune", "shop", "--dry-run", "--json").stdout)
        assert all(d["keep"] for d in decisions["decisions"]), f"{trial} prune left {decisions}"
        figures.add(trial, killed, _prune_outcome(killed, before, after_kill))
    assert figures.data_lost == 0


def _prune_outcome(killed: Killed, before: set[str], after_kill: Listing) -> str:
    if killed.finished:
        return "finished before the kill"
    if after_kill.listed == before:
        return "killed before it deleted anything"
    if after_kill.unlisted:
        return "killed part-way, one forgotten but not deleted yet; the next prune finished"
    return "killed part-way; the next prune finished"


# ---------------------------------------------------------------- model backups and prunes


def _model_version(directory: Path, version: str, rng: Any, files: int, size: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        path = directory / f"shard-{n}.bin"
        if not path.exists() or rng.random() < 0.5:
            path.write_bytes(rng.randbytes(size))
    (directory / "VERSION").write_text(version + "\n")


def test_model_backup_and_prune_killed_at_random(
    tmp_path: Path, backupctl: Any, tally: Callable[[str], Tally]
) -> None:
    served = tmp_path / "models" / "llm"
    repo_dir = tmp_path / "repo"
    policy = model_policy(
        tmp_path / "policies",
        "llm",
        served,
        repo_dir,
        {"check": "*/15 * * * *"},
        retention={"keep_versions": 2},
    )
    rig = Rig(backupctl, policy, repo_dir, "llm")
    content = random.Random("model-content")
    versions = iter(range(1, 1000))

    def new_version() -> None:
        _model_version(served, f"v{next(versions)}", content, files=4, size=4 << 20)

    for _ in range(2):
        new_version()
        rig.ok("setup", "backup", "llm", "--no-prune")  # the prune trials do the pruning
    new_version()
    backup_tally, prune_tally = tally("model backup"), tally("model prune")
    backup_tally.count_points(rig.args("backup", "llm"), "baseline")
    prune_tally.count_points(rig.args("prune", "llm"), "baseline")
    for trial, prune_trial in zip(trials(backup_tally), trials(prune_tally), strict=True):
        new_version()
        killed = run_killed(rig.args("backup", "llm"), trial)
        _after_kill(trial, killed, "model backup")
        after_kill = assert_only_complete(rig, trial)
        # (unchanged, when the killed one finished); --no-prune: left to the prune trial
        nxt = rig.ok(trial, "backup", "llm", "--no-prune")
        backup_tally.add(trial, killed, _after_next_run(rig, trial, killed, after_kill, nxt))

        before = rig.listed(prune_trial)
        pruned = run_killed(rig.args("prune", "llm"), prune_trial)
        _after_kill(prune_trial, pruned, "model prune")
        after_kill = assert_only_complete(rig, prune_trial, verify=0)
        prune_tally.count_points(rig.args("prune", "llm"), prune_trial)
        kept = assert_only_complete(rig, prune_trial)  # both kept versions verify
        assert len(kept.listed) == 2, f"{prune_trial} keep_versions 2, but {kept.listed} listed"
        referenced = {a.key for m in scan_manifests(rig.repo, "llm") for a in m.artifacts}
        blobs = {i.key for i in rig.repo.list("llm/blobs/")}
        assert blobs == referenced, f"{prune_trial} unreferenced blobs: {blobs - referenced}"
        assert_no_leftovers(rig, prune_trial)
        prune_tally.add(prune_trial, pruned, _prune_outcome(pruned, before, after_kill))
    assert backup_tally.data_lost == prune_tally.data_lost == 0


# ---------------------------------------------------------------- in-place restores


def _checksums(server: MariaDBServer) -> dict[str, Any] | None:
    try:
        conn = server.connect()
    except Exception:
        return None
    try:
        return checksum_tables(conn)
    finally:
        conn.close()


def _journals(state_dir: Path) -> set[Path]:
    return set((state_dir / "runbooks").glob("*.json"))


def _journal_step(state_dir: Path, earlier: set[Path]) -> str:
    """The step the killed restore's journal (not one of ``earlier``) was in."""
    journals = sorted(_journals(state_dir) - earlier)
    if not journals:
        return "before the journal"
    data = json.loads(journals[-1].read_text())
    if data["state"] != "running":
        return f"after the run ({data['state']})"
    running = [s["name"] for s in data["steps"] if s["status"] == "running"]
    done = [s["name"] for s in data["steps"] if s["status"] == "ok"]
    return running[0] if running else (f"after {done[-1]}" if done else "before the first step")


def test_in_place_restores_killed_at_random(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any, tally: Callable[[str], Tally]
) -> None:
    server = fresh_mariadb
    _load(server, SIZE_MB)
    backup_sums = _checksums(server)
    policy = restorable_policy(
        tmp_path,
        server,
        verify=[{"sql": "SELECT COUNT(*) FROM shop.orders", "expect": "> 0"}],
        health_timeout="60s",
    )
    rig = Rig(backupctl, policy, tmp_path / "repo", "shop")
    rig.ok("setup", "backup", "shop")
    parent = server.datadir.parent
    # the live server is a service in its own unit: a cgroup kill of backupctl spares it
    # (while its start hook runs, it is still backupctl's descendant)
    spare = [server.instance.command()]

    def diverge(mark: str) -> dict[str, Any]:
        """Change the live data so original and backup differ; return the original's sums."""
        server.sql(
            "CREATE TABLE IF NOT EXISTS shop.after_backup (mark VARCHAR(64) PRIMARY KEY)",
            f"INSERT INTO shop.after_backup VALUES ('{mark}')",
            f"DELETE FROM shop.orders WHERE id % 7 = {len(mark) % 7}",
        )
        sums = _checksums(server)
        assert sums is not None and sums != backup_sums
        return sums

    def tidy() -> None:
        for aside in parent.glob("*.aside-*"):
            shutil.rmtree(aside)

    diverge("baseline")
    figures = tally("mariadb in-place restore")
    figures.count_points(rig.args("restore", "shop", "--yes"), "baseline")
    assert _checksums(server) == backup_sums
    tidy()
    for trial in trials(figures):
        original = diverge(f"trial-{trial.index}")
        earlier = _journals(backupctl.state_dir)
        killed = run_killed(rig.args("restore", "shop", "--yes"), trial, spare=spare)
        _after_kill(trial, killed, "restore")
        where = _journal_step(backupctl.state_dir, earlier)
        outcome = "finished before the kill" if killed.finished else ""
        if not killed.finished:
            outcome = _finish_interrupted(rig, trial)
        running = server.instance.is_running()
        sums = _checksums(server) if running else None
        restored, kept = sums == backup_sums, sums == original
        lost = not (restored or kept)
        figures.add(trial, killed, f"{outcome} ({where})", lost=lost)
        assert running, f"{trial} the server is not running after {outcome} ({where})"
        assert not lost, (
            f"{trial} after {outcome} ({where}) the data is neither the backup's nor the original"
        )
        completed = where == "after the run (completed)"
        expected = {"resumed": restored, "rolled back": kept, "nothing to undo": kept}
        expected["nothing to undo"] = restored if completed else kept
        assert expected.get(outcome.split(":")[0], restored), (
            f"{trial} {outcome} ({where}) but the data is the "
            f"{'backup' if restored else 'original'}"
        )
        assert len(servers_on(server.datadir)) == 1, (
            f"{trial} servers: {servers_on(server.datadir)}"
        )
        assert not list(parent.glob(".*.restore-*")), (
            f"{trial} staging left: {list(parent.iterdir())}"
        )
        assert not _recovery_instances(server), f"{trial} a recovery instance still runs"
        if kept:
            assert not list(parent.glob("*.aside-*")), f"{trial} aside left after {outcome}"
        again = rig.run("restore", "shop", "--resume")
        assert again.code == 2 and "no interrupted restore" in again.stderr, (
            f"{trial} {again.output}"
        )
        tidy()
    # and the next restore runs through
    diverge("after the trials")
    rig.ok("after the trials", "restore", "shop", "--yes")
    assert _checksums(server) == backup_sums
    assert figures.data_lost == 0


def _recovery_instances(server: MariaDBServer) -> list[int]:
    return [pid for pid in servers_on(server.datadir) if "--skip-grant-tables" in argv_of(pid)]


def _finish_interrupted(rig: Rig, trial: Trial) -> str:
    """Resume or roll back (seeded choice) the killed restore; return what happened."""
    first = "--resume" if trial.rng.random() < 0.5 else "--rollback"
    result = rig.run("restore", "shop", first, "--json")
    if result.code == 2 and "no interrupted restore" in result.stderr:
        # killed before the journal, or after it completed: nothing half-done
        return "nothing to undo"
    if first == "--resume" and result.code == 2 and "cannot be run again safely" in result.stderr:
        result = rig.run("restore", "shop", "--rollback", "--json")
        assert result.code == 0, f"{trial} rollback after a refused resume: {result.output[-4000:]}"
        assert json.loads(result.stdout)["state"] == "rolled-back"
        return "rolled back: resume refused"
    assert result.code == 0, (
        f"{trial} restore {first} exited {result.code}:\n{result.output[-4000:]}"
    )
    state = json.loads(result.stdout)["state"]
    assert state == ("completed" if first == "--resume" else "rolled-back"), f"{trial} {state}"
    return "resumed" if first == "--resume" else "rolled back"


def test_the_kill_harness_kills_what_backupctl_started(tmp_path: Path) -> None:
    """A cgroup kill takes every descendant, in its own session too, but spared services."""
    script = tmp_path / "tree.sh"
    script.write_text("#!/bin/sh\nsetsid sleep 300 &\nsetsid sleep 301 &\nsleep 302\n")
    script.chmod(0o755)
    proc = subprocess.Popen([str(script)], text=True, start_new_session=True)
    deadline = time.monotonic() + 10
    while len(descendants(proc.pid)) < 3:
        assert time.monotonic() < deadline, "the script did not start its children"
        time.sleep(0.02)
    children = descendants(proc.pid)
    service = ["sleep", "301"]
    kill_cgroup(proc, spare=[service])
    proc.wait()
    try:
        assert [argv_of(p) for p in children if alive(p)] == [service]
    finally:
        for pid in children:
            if argv_of(pid) == service:
                os.kill(pid, 9)


# ---------------------------------------------------------------- regressions at kill points


def _model_rig(tmp_path: Path, backupctl: Any, keep: int) -> tuple[Rig, Path]:
    served = tmp_path / "models" / "llm"
    policy = model_policy(
        tmp_path / "policies",
        "llm",
        served,
        tmp_path / "repo",
        {"check": "*/15 * * * *"},
        retention={"keep_versions": keep},
    )
    return Rig(backupctl, policy, tmp_path / "repo", "llm"), served


def test_a_prune_killed_while_deleting_a_backup_never_lists_it_half_deleted(
    tmp_path: Path, backupctl: Any
) -> None:
    """Regression: prune deleted a backup's manifest before the catalog forgot it, so a
    prune killed in between left `list` showing a backup that no longer verified (found
    by kill-point trials of `prune`). Each point of the first deletion is tried."""
    rig, served = _model_rig(tmp_path, backupctl, keep=1)
    for version in ("v1", "v2"):
        _model_version(served, version, random.Random(version), files=1, size=4096)
        rig.ok("setup", "backup", "llm", "--no-prune")  # the prune below is the one killed
    saved = tmp_path / "saved"
    shutil.copytree(rig.repo_dir, saved / "repo")
    shutil.copytree(backupctl.state_dir, saved / "state")
    _done, names = counted_run(rig.args("prune", "llm"), "counting")
    assert len(names) >= 3  # the first deletion: catalog entry, manifest, marker
    for point in (1, 2, 3):
        for name in ("repo", "state"):
            target = rig.repo_dir if name == "repo" else backupctl.state_dir
            shutil.rmtree(target)
            shutil.copytree(saved / name, target)
        trial = at_point("prune before " + names[point - 1], point)
        killed = run_killed(rig.args("prune", "llm"), trial)
        assert not killed.finished, f"{trial} {killed.stderr[-2000:]}"
        assert_only_complete(rig, trial, verify=1)
        rig.ok(trial, "prune", "llm")  # finishes the job, whatever the kill left
        now = assert_only_complete(rig, trial, verify=1)
        assert len(now.listed) == 1 and not now.unlisted, f"{trial} {now}"
        assert_no_leftovers(rig, trial)


def test_a_model_backup_killed_mid_upload_or_before_its_catalog_entry_heals_next_run(
    tmp_path: Path, backupctl: Any
) -> None:
    """Regressions: a backup killed while writing its start marker, or a model backup
    killed while uploading a blob, left the partial upload behind for good (the next
    run's cleanup only saw committed markers, and blobs live outside the backup's
    prefix); a backup killed after its manifest but before its catalog entry stayed
    unlisted until `catalog sync`. Each heals on the next run now."""
    rig, served = _model_rig(tmp_path, backupctl, keep=5)
    versions = iter(range(1, 100))

    def new_version() -> None:
        _model_version(served, f"v{next(versions)}", random.Random(0), files=2, size=1 << 20)
        (served / "shard-0.bin").write_bytes(os.urandom(1 << 20))  # a new blob each time

    new_version()
    rig.ok("setup", "backup", "llm")
    new_version()  # shaped like the ones killed below: one new shard and VERSION
    _done, names = counted_run(rig.args("backup", "llm"), "counting")
    marker_commit = names.index("LocalObjectWriter.commit") + 1
    # blobs upload in parallel; the point before the manifest's upload is the last blob's
    # commit (1-based: the manifest's 0-based index)
    blob_commit = max(n for n, name in enumerate(names) if name == "LocalRepository.open_write")
    record = names.index("Catalog.record") + 1

    new_version()
    trial = at_point("model backup before committing its start marker", marker_commit)
    killed = run_killed(rig.args("backup", "llm"), trial)
    assert not killed.finished and list(rig.repo_dir.glob(f"llm/version/*/*{PARTIAL_MARK}*"))
    nxt = rig.ok(trial, "backup", "llm")
    assert "removed incomplete uploads" in nxt.stderr
    assert_no_leftovers(rig, trial)

    new_version()
    trial = at_point("model backup before committing a blob", blob_commit)
    killed = run_killed(rig.args("backup", "llm"), trial)
    assert not killed.finished and list(rig.repo_dir.glob(f"llm/blobs/*/*{PARTIAL_MARK}*"))
    assert_only_complete(rig, trial)
    nxt = rig.ok(trial, "backup", "llm")
    assert "removed incomplete blob uploads" in nxt.stderr
    assert_no_leftovers(rig, trial)

    new_version()
    trial = at_point("model backup before its catalog entry", record)
    killed = run_killed(rig.args("backup", "llm"), trial)
    assert not killed.finished
    assert assert_only_complete(rig, trial).unlisted, f"{trial} the kill missed its moment"
    rig.ok(trial, "backup", "llm")  # nothing changed since: it records the unlisted one
    assert not assert_only_complete(rig, trial, verify=5).unlisted
    assert len(rig.listed(trial)) == 5  # setup, counted, and the three killed ones


def test_a_restore_killed_with_its_recovery_instance_after_verify_resumes(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    """Regression: a restore killed with its cgroup (the private recovery instance died
    with it) after `verify` ran but before the journal recorded it could not be resumed:
    the rerun of `verify` found no recovery instance, failed and undid everything."""
    server = fresh_mariadb
    _load(server, 10)
    backup_sums = _checksums(server)
    rig = Rig(backupctl, restorable_policy(tmp_path, server), tmp_path / "repo", "shop")
    rig.ok("setup", "backup", "shop")
    server.sql("DELETE FROM shop.orders WHERE id % 3 = 0")
    _done, names = counted_run(rig.args("restore", "shop", "--yes"), "counting")
    verified = [n for n, label in enumerate(names, 1) if label == "Journal.save(verify running)"]
    server.sql("DELETE FROM shop.orders WHERE id % 3 = 0")
    trial = at_point("restore after verify ran", verified[1])
    killed = run_killed(
        rig.args("restore", "shop", "--yes"), trial, spare=[server.instance.command()]
    )
    assert not killed.finished and not _recovery_instances(server), f"{trial} {killed.stderr}"
    result = rig.ok(trial, "restore", "shop", "--resume", "--json")
    assert json.loads(result.stdout)["state"] == "completed"
    assert _checksums(server) == backup_sums
    assert len(servers_on(server.datadir)) == 1
