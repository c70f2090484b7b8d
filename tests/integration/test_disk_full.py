"""Disk full: a file:// repository or a restore target on a real, tiny filesystem (a tmpfs,
or an ext4 loop device when tmpfs cannot be mounted) runs out of space mid-operation.

- a full backup into the repository: exit 1, the message names the path and says no
  space is left, nothing is listed, no partial file remains;
- a restore into ``--target-datadir`` or in place, on a filesystem without room for the
  unpacked backup: refused by ``check-backup`` before anything is written or stopped,
  naming the space needed and free;
- the same restores when the filesystem fills up during the extraction (another process
  takes the space after the check): exit 1 naming the path, nothing left behind, and in
  place the server, never stopped, serves exactly the original data (CHECKSUM TABLE);
- a model rollback whose staging copy fills the served directory's filesystem: exit 1
  naming the file, the served version untouched, nothing left behind;
- a small object (a manifest) whose write fails only at commit: the error still names it.

Mounting needs root; without it (or when the kernel refuses both) the tests are skipped
with the reason. Everything mounted is unmounted at teardown, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from backupctl.demo.server import checksum_tables
from backupctl.drivers.models.tree import scan_tree, tree_hash
from backupctl.errors import RepositoryError
from backupctl.storage.local import LocalRepository
from tests.support.cli import CliResult
from tests.support.mariadb import MariaDBServer, start_server
from tests.support.model_policies import model_policy, write_model
from tests.support.noise import fill_with_noise, noise_database
from tests.support.policies import mariadb_policy

MIB = 1 << 20
NO_SPACE = "no space left on device"


def _fill(server: MariaDBServer, size_mb: int, noise_mb: int) -> dict[str, Any]:
    """Sample data plus ``noise_mb`` of incompressible rows; return the table checksums."""
    fill_with_noise(server, size_mb, noise_mb)
    return _checksums(server)


def _checksums(server: MariaDBServer) -> dict[str, Any]:
    conn = server.connect()
    try:
        return checksum_tables(conn)
    finally:
        conn.close()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def _entries(root: Path) -> list[str]:
    """Everything under ``root``, directories included (but ext4's lost+found)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "lost+found" not in p.parts)


def _error(result: CliResult) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert lines, result.output[-3000:]
    return "\n".join(lines)


def _ballast(where: Path, leave_mb: float, fast: bool = False) -> Path:
    """Fill ``where``'s filesystem up to ``leave_mb`` MiB of free space (``fast``: in one
    fallocate where the filesystem supports it)."""
    stats = os.statvfs(where)
    free = stats.f_bavail * stats.f_frsize
    ballast = where / "ballast"
    with open(ballast, "wb") as out:
        remaining = max(0, free - int(leave_mb * MIB))
        if fast and remaining > 0:
            with contextlib.suppress(OSError):
                os.posix_fallocate(out.fileno(), 0, remaining)
                return ballast
        block = b"\0" * MIB
        while remaining > 0:
            remaining -= out.write(block[: min(MIB, remaining)])
    return ballast


def test_an_object_that_does_not_fit_is_refused_naming_its_path(tiny_fs: Any) -> None:
    """Small objects (started.json, manifests) stay in the write buffer until commit: the
    flush there hits the full disk, and the abort's second flush must not hide the path."""
    small = tiny_fs("small", 1)
    root = small / "repo"
    repo = LocalRepository(root)
    repo.put_bytes("shop/full/a/started.json", b"{}")
    with contextlib.suppress(OSError), open(small / "ballast", "wb") as out:
        while True:
            out.write(b"\0" * 4096)
            out.flush()
    with pytest.raises(RepositoryError) as excinfo:
        repo.put_bytes("shop/full/a/manifest.json", b"{}" * 300)
    message = str(excinfo.value)
    assert NO_SPACE in message.lower() and str(root / "shop/full/a/manifest.json") in message
    assert _files(root / "shop") == ["full/a/started.json"]  # no partial file left
    assert [info.key for info in repo.list()] == ["shop/full/a/started.json"]


def test_a_backup_into_a_full_repository_fails_cleanly(
    mariadb_server: MariaDBServer, tiny_fs: Any, tmp_path: Path, backupctl: Any
) -> None:
    repo = tiny_fs("repo", 8)
    # 12 MiB that do not compress: the backup cannot fit in 8 MiB
    with noise_database(mariadb_server, "diskfull", 12):
        policy = mariadb_policy(tmp_path / "policies", mariadb_server, f"file://{repo}")
        result = backupctl("backup", "shop", policies=policy)
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    message = _error(result)
    print(f"\nbackup into a full repository: {message}")
    assert NO_SPACE in message.lower() and f"{repo}/shop/full/" in message, message
    assert _entries(repo) == []  # no partial file, no started marker, no directory
    assert json.loads(backupctl("list", "--json", policies=policy).stdout) == []


def test_a_backup_that_will_not_fit_is_refused_before_anything_is_written(
    mariadb_server: MariaDBServer, tiny_fs: Any, tmp_path: Path, backupctl: Any
) -> None:
    repo = tiny_fs("repo", 64)
    with noise_database(mariadb_server, "roomcheck", 6):  # 6 MiB that do not compress
        policy = mariadb_policy(tmp_path / "policies", mariadb_server, f"file://{repo}")
        first = backupctl("backup", "shop", "--json", policies=policy)
        assert first.code == 0, first.output
        stored = json.loads(first.stdout)["stored_bytes"]
        before = _entries(repo)
        # room for less than the last full took: the next one cannot fit
        ballast = _ballast(repo, leave_mb=stored / MIB * 0.8, fast=True)
        refused = backupctl("backup", "shop", policies=policy)
        ballast.unlink()
    assert refused.code == 1, refused.output
    assert "Traceback" not in refused.output
    message = _error(refused)
    print(f"\nbackup into a repository without room for it: {message}")
    assert message.startswith(f"error: not enough space in file://{repo} for a full backup:")
    assert "needed (the last one, " in message and "free; nothing was written" in message
    assert _entries(repo) == before, before  # no started marker, no partial object
    listed = json.loads(backupctl("list", "--json", policies=policy).stdout)
    assert len(listed) == 1
    # the refusal is a failed run: status and the alerts see it
    status = json.loads(backupctl("status", "--json", policies=policy).stdout)
    assert "not enough space" in json.dumps(status)


class _FillDuringExtraction:
    """Fill ``parent``'s filesystem (``_ballast``) as soon as a restore's staging directory
    appears in it: the space the restore checked for is gone by the time it writes, as
    when another process fills the disk. Stops watching after ``timeout`` seconds."""

    def __init__(self, parent: Path, leave_mb: float, timeout: float = 120):
        self.parent, self.leave_mb, self.timeout = parent, leave_mb, timeout
        self.ballast: Path | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _FillDuringExtraction:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.ballast is not None:
            self.ballast.unlink(missing_ok=True)

    @property
    def filled(self) -> bool:
        """Whether the filesystem was filled (read after the ``with`` block)."""
        return self.ballast is not None

    def _watch(self) -> None:
        deadline = time.monotonic() + self.timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            if any(".restore-" in p.name for p in self.parent.iterdir()):
                self.ballast = _ballast(self.parent, self.leave_mb, fast=True)
                return
            time.sleep(0.001)


def _backed_up(server: MariaDBServer, tmp_path: Path, backupctl: Any) -> Path:
    """A full backup of ~66 MiB unpacked into a file:// repository; return the policy."""
    _fill(server, 8, 4)
    policy = mariadb_policy(tmp_path / "policies", server, f"file://{tmp_path / 'repo'}")
    backed_up = backupctl("backup", "shop", policies=policy)
    assert backed_up.code == 0, backed_up.output
    return policy


def test_a_restore_into_a_small_target_is_refused_before_anything_is_written(
    fresh_mariadb: MariaDBServer, tiny_fs: Any, tmp_path: Path, backupctl: Any
) -> None:
    policy = _backed_up(fresh_mariadb, tmp_path, backupctl)
    small = tiny_fs("small", 16)
    target = small / "datadir"
    result = backupctl("restore", "shop", "--target-datadir", str(target), policies=policy)
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    message = _error(result)
    print(f"\nrestore into a small target: {message}")
    assert "step 'check-backup' failed: not enough space to restore" in message
    assert f"needed unpacked in {small}" in message and "nothing was changed" in message
    assert _entries(small) == [], "the refused restore left something behind"
    assert fresh_mariadb.instance.is_running()  # the live server was never touched


def test_deep_verification_and_drills_without_room_are_refused_before_extracting(
    fresh_mariadb: MariaDBServer, tiny_fs: Any, tmp_path: Path, backupctl: Any
) -> None:
    policy = _backed_up(fresh_mariadb, tmp_path, backupctl)
    small = tiny_fs("small", 16)

    deep = backupctl("verify", "shop", "--deep", "--scratch-dir", str(small), policies=policy)
    assert deep.code == 1, deep.output
    assert "Traceback" not in deep.output
    message = _error(deep)
    print(f"\nverify --deep without room: {message}")
    assert "not enough space to verify full " in message and f"unpacked in {small}" in message
    assert _entries(small) == []

    # a drill restores into STATE_DIR/drills/<id>/sandbox: a state directory without room
    state = small / "state"
    drill = backupctl("--state-dir", str(state), "drill", "run", "shop", "--json", policies=policy)
    assert drill.code == 3, drill.output  # a drill that did not restore failed its proof
    assert "Traceback" not in drill.output
    report = json.loads(drill.stdout)
    print(f"drill without room: {report['reason']}")
    assert not report["passed"] and "not enough space to restore" in report["reason"]
    assert not list(state.glob("drills/*/sandbox/*"))  # nothing was extracted
    assert fresh_mariadb.instance.is_running()


def test_a_restore_into_a_target_that_fills_up_fails_cleanly(
    fresh_mariadb: MariaDBServer, tiny_fs: Any, tmp_path: Path, backupctl: Any
) -> None:
    _fill(fresh_mariadb, 8, 12)
    policy = mariadb_policy(tmp_path / "policies", fresh_mariadb, f"file://{tmp_path / 'repo'}")
    backed_up = backupctl("backup", "shop", policies=policy)
    assert backed_up.code == 0, backed_up.output
    small = tiny_fs("small", 192)
    target = small / "datadir"
    with _FillDuringExtraction(small, leave_mb=4) as filler:
        result = backupctl("restore", "shop", "--target-datadir", str(target), policies=policy)
    assert filler.filled, result.output
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    message = _error(result)
    print(f"\nrestore into a target that fills up: {message}")
    assert NO_SPACE in message.lower() and str(small) in message, message
    assert _entries(small) == [], "the failed restore left something behind"
    assert fresh_mariadb.instance.is_running()


def test_an_in_place_restore_whose_filesystem_fills_up_leaves_the_server_serving(
    tiny_fs: Any, tmp_path: Path, backupctl: Any
) -> None:
    small = tiny_fs("small", 320)  # the server (~180 MiB with its redo log) and a copy
    server = start_server(small)  # the datadir lives on the tiny filesystem
    ballast: Path | None = None
    try:
        _fill(server, 8, 12)
        stop, start = server.instance.write_service_hooks(tmp_path / "hooks")
        policy = mariadb_policy(
            tmp_path / "policies",
            server,
            f"file://{tmp_path / 'repo'}",
            restore={"stop": [str(stop)], "start": [str(start)], "health_timeout": "60s"},
        )
        backed_up = backupctl("backup", "shop", "--json", policies=policy)
        assert backed_up.code == 0, backed_up.output
        server.sql(
            "CREATE TABLE shop.after_backup (id INT PRIMARY KEY)",
            "INSERT INTO shop.after_backup VALUES (1), (2), (3)",
        )
        original = _checksums(server)
        siblings = sorted(p.name for p in server.datadir.parent.iterdir())
        pid = server.instance.pid()

        # no room for the unpacked copy beside the live datadir: refused by the check
        ballast = _ballast(small, leave_mb=10)
        result = backupctl("restore", "shop", "--yes", "--json", policies=policy)
        assert result.code == 1, result.output
        report = json.loads(result.stdout)
        assert report["error"].startswith("check-backup: not enough space to restore")
        assert [s["name"] for s in report["steps"] if s["status"] != "pending"] == ["check-backup"]
        ballast.unlink()

        # room at the check, gone during the extraction
        with _FillDuringExtraction(server.datadir.parent, leave_mb=2) as filler:
            result = backupctl("restore", "shop", "--yes", "--json", policies=policy)
        assert filler.filled, result.output
        assert result.code == 1, result.output
        assert "Traceback" not in result.output
        report = json.loads(result.stdout)
        message = _error(result)
        print(f"\nin-place restore on a filesystem that fills up: {message}")
        assert report["state"] == "failed" and report["error"].startswith("fetch-extract: ")
        assert NO_SPACE in message.lower() and str(server.datadir.parent) in message, message
        assert server.instance.pid() == pid, "the server was never stopped"
        assert _checksums(server) == original
        assert sorted(p.name for p in server.datadir.parent.iterdir()) == siblings
    finally:
        with contextlib.suppress(Exception):
            server.instance.stop()
        if ballast is not None:
            ballast.unlink(missing_ok=True)


def test_a_model_rollback_on_a_full_filesystem_leaves_the_served_version_alone(
    tiny_fs: Any, tmp_path: Path, backupctl: Any
) -> None:
    small = tiny_fs("small", 24)
    served = small / "models" / "llm"
    policy = model_policy(
        tmp_path / "policies",
        "llm",
        served,
        tmp_path / "repo",
        {"check": "*/15 * * * *"},
        retention={"keep_versions": 5},
    )
    for version in ("v1", "v2"):
        write_model(served, version)
        (served / "weights.bin").write_bytes(os.urandom(6 * MIB))
        backed_up = backupctl("backup", "llm", policies=policy)
        assert backed_up.code == 0, backed_up.output
    serving = tree_hash(scan_tree(served))
    siblings = _entries(small)
    ballast = _ballast(small, leave_mb=2)  # v1's 6 MiB no longer fit beside v2
    result = backupctl("restore", "llm", "--previous", "--yes", policies=policy)
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    message = _error(result)
    print(f"\nmodel rollback on a full filesystem: {message}")
    assert NO_SPACE in message.lower() and f"{small}/models/" in message, message
    assert tree_hash(scan_tree(served)) == serving  # v2 is still what is served
    ballast.unlink()
    assert _entries(small) == siblings, "the failed rollback left files behind"
