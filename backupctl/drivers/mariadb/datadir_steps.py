"""Restore steps that move files: make sure nothing runs, move aside, extract, prepare, move in.

Paths are derived from the run id, so a resumed run finds what the killed one left.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from backupctl.catalog.manifest import Manifest
from backupctl.clock import utc_now
from backupctl.drivers.mariadb.extract import default_prepare_memory, extract, prepare
from backupctl.drivers.mariadb.restored_mark import MARK_NAME, RestoredMark, write_mark
from backupctl.errors import BackupctlError, UsageError
from backupctl.policy.mariadb import MariaDBBackupOptions, MariaDBPolicy
from backupctl.proc import process_args
from backupctl.progress import ProgressFactory, no_progress
from backupctl.runbook.step import RunContext, Step
from backupctl.storage.base import Repository


class ServerStillRunning(BackupctlError):
    """A server still runs on the datadir that is about to be replaced."""


@dataclass(frozen=True)
class RestorePaths:
    """Where a restore puts things. ``live`` is the datadir the server will use."""

    live: Path
    run_id: str
    in_place: bool

    @property
    def staging(self) -> Path:
        return self.live.parent / f".{self.live.name}.restore-{self.run_id}"

    @property
    def aside(self) -> Path:
        return self.live.parent / f"{self.live.name}.aside-{self.run_id}"


def _rmtree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def servers_on(datadir: Path) -> list[int]:
    """Pids of mariadbd/mysqld processes whose command line names ``datadir``."""
    names = (f"--datadir={datadir.resolve()}", f"--datadir={datadir}")
    return [
        pid
        for pid, args in process_args()
        if os.path.basename(args[0]) in ("mariadbd", "mysqld")
        and any(a.rstrip("/") in names for a in args)
    ]


def _answers(policy: MariaDBPolicy) -> str | None:
    """Describe the policy's endpoint if something accepts connections there."""
    conn = policy.connection
    try:
        if conn.socket is not None:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(str(conn.socket))
            return f"socket {conn.socket}"
        if conn.host in ("127.0.0.1", "localhost", "::1"):
            with socket.create_connection((conn.host, conn.port), timeout=2):
                return f"{conn.host}:{conn.port}"
    except OSError:
        return None
    return None


class EnsureStopped(Step):
    name = "ensure-stopped"

    def __init__(self, policy: MariaDBPolicy, paths: RestorePaths):
        self.policy, self.paths = policy, paths

    def describe(self, ctx: RunContext) -> str:
        return f"make sure no server runs on {self.paths.live} (processes, socket, port)"

    def run(self, ctx: RunContext) -> str:
        if not self.paths.live.exists():
            return f"{self.paths.live} does not exist (already moved aside)"
        pids = servers_on(self.paths.live)
        if pids:
            raise ServerStillRunning(f"mariadbd (pid {pids[0]}) still runs on {self.paths.live}")
        endpoint = _answers(self.policy)
        if endpoint:
            raise ServerStillRunning(f"a server still accepts connections on {endpoint}")
        return "no server runs on the datadir"


class CheckTarget(Step):
    name = "check-target"

    def __init__(self, paths: RestorePaths):
        self.paths = paths

    def describe(self, ctx: RunContext) -> str:
        return f"make sure {self.paths.live} is empty or missing (the live server is not touched)"

    def run(self, ctx: RunContext) -> str:
        live = self.paths.live
        occupied = live.exists() and (not live.is_dir() or any(live.iterdir()))
        if occupied and not ctx.get("target_checked"):  # a resumed run finds its own files
            raise UsageError(f"target datadir {live} is not empty")
        ctx["target_checked"] = True
        return f"{live} is free"


class MoveAside(Step):
    name = "move-aside"

    def __init__(self, paths: RestorePaths):
        self.paths = paths

    def describe(self, ctx: RunContext) -> str:
        return f"move {self.paths.live} aside to {self.paths.aside} (kept, never deleted)"

    def run(self, ctx: RunContext) -> str:
        live, aside = self.paths.live, self.paths.aside
        if not aside.exists():
            if not live.is_dir():
                raise UsageError(f"datadir {live} does not exist")
            os.rename(live, aside)
        info = aside.stat()
        ctx["aside"] = str(aside)
        ctx["owner"] = {"uid": info.st_uid, "gid": info.st_gid, "mode": info.st_mode & 0o7777}
        return f"moved {live} to {aside}"

    def compensate(self, ctx: RunContext) -> str:
        live, aside = self.paths.live, self.paths.aside
        if not aside.exists():
            return "the original datadir was never moved"
        _rmtree(live)  # only ever the restored copy: the original is at ``aside``
        os.rename(aside, live)
        return f"original datadir back at {live}"


class Extract(Step):
    name = "fetch-extract"

    def __init__(
        self,
        repo: Repository,
        manifest: Manifest,
        paths: RestorePaths,
        progress: ProgressFactory = no_progress,
        parallel: int = 1,
    ):
        self.repo, self.manifest, self.paths, self.progress = repo, manifest, paths, progress
        self.parallel = parallel

    def describe(self, ctx: RunContext) -> str:
        return (
            f"stream {self.manifest.backup_id} from {self.repo.url} through zstd -d and "
            f"mbstream -x into {self.paths.staging}"
        )

    def work_bytes(self) -> int | None:
        return self.manifest.raw_bytes

    def run(self, ctx: RunContext) -> str:
        _rmtree(self.paths.staging)  # a resumed run starts the extraction over
        extract(self.repo, self.manifest, self.paths.staging, self.progress, self.parallel)
        return f"extracted {self.manifest.raw_bytes} bytes"

    def compensate(self, ctx: RunContext) -> str:
        _rmtree(self.paths.staging)
        return f"removed {self.paths.staging}"


class Prepare(Step):
    name = "prepare"

    def __init__(self, paths: RestorePaths, backup: MariaDBBackupOptions):
        self.paths, self.backup = paths, backup

    def describe(self, ctx: RunContext) -> str:
        memory = self.backup.prepare_memory or f"{default_prepare_memory()} (a quarter of free)"
        return f"mariabackup --prepare --target-dir {self.paths.staging} --use-memory {memory}"

    def run(self, ctx: RunContext) -> str:
        memory = self.backup.prepare_memory or default_prepare_memory()
        prepare(self.paths.staging, self.backup.mariabackup, memory)
        return f"mariabackup --prepare completed OK (--use-memory={memory})"


class MoveIntoPlace(Step):
    name = "move-into-place"

    def __init__(self, paths: RestorePaths, backup_id: str):
        self.paths, self.backup_id = paths, backup_id

    def describe(self, ctx: RunContext) -> str:
        return (
            f"move {self.paths.staging} to {self.paths.live} with the original owner and "
            f"mode, marked restored from {self.backup_id} ({MARK_NAME})"
        )

    def run(self, ctx: RunContext) -> str:
        staging, live = self.paths.staging, self.paths.live
        owner = ctx.get("owner") or _owner_of(live.parent)
        if staging.exists():
            mark = RestoredMark(self.backup_id, self.paths.run_id, utc_now())
            write_mark(staging, mark)  # later incrementals must not chain across it
            _chown_tree(staging, owner["uid"], owner["gid"])
            os.chmod(staging, owner["mode"])
            if live.exists():  # an empty target directory
                live.rmdir()
            os.rename(staging, live)
        return f"{live} owned by uid {owner['uid']} gid {owner['gid']}, mode {owner['mode']:o}"

    def compensate(self, ctx: RunContext) -> str:
        live, staging = self.paths.live, self.paths.staging
        if self.paths.in_place and not self.paths.aside.exists():
            return "nothing was moved into place"
        if live.exists() and not staging.exists():
            os.rename(live, staging)  # fetch-extract's undo removes it
            return f"moved the restored datadir back to {staging}"
        return "nothing was moved into place"


def _owner_of(path: Path) -> dict[str, int]:
    info = path.stat()
    return {"uid": info.st_uid, "gid": info.st_gid, "mode": 0o750}


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    if os.geteuid() != 0:
        return
    for dirpath, _dirs, filenames in os.walk(root):
        os.chown(dirpath, uid, gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)
