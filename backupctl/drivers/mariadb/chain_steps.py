"""Restoring a chain: every link checked before anything is touched, then each incremental
applied in order onto the prepared base (``mariabackup --prepare --incremental-dir``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from backupctl.catalog.manifest import Manifest
from backupctl.drivers.mariadb.chain import object_problem
from backupctl.drivers.mariadb.datadir_steps import RestorePaths
from backupctl.drivers.mariadb.extract import extract, prepare
from backupctl.errors import NoSpace, VerificationFailed
from backupctl.policy.mariadb import MariaDBBackupOptions
from backupctl.progress import ProgressFactory, no_progress
from backupctl.runbook.step import RunContext, Step
from backupctl.storage.base import Repository
from backupctl.units import human_bytes


def apply_incremental(
    repo: Repository,
    link: Manifest,
    target: Path,
    side: Path,
    backup: MariaDBBackupOptions,
    progress: ProgressFactory = no_progress,
) -> None:
    """Extract the incremental ``link`` into ``side`` (checking its sha256 on the way) and
    apply it to the prepared backup in ``target``; ``side`` is removed afterwards. Raises
    VerificationFailed (a corrupt object, a refused apply) / ToolError."""
    shutil.rmtree(side, ignore_errors=True)
    try:
        extract(repo, link, side, progress, backup.parallel)
        prepare(target, backup.mariabackup, backup.prepare_memory, incremental_dir=side)
    finally:
        shutil.rmtree(side, ignore_errors=True)


def space_needed(links: list[Manifest], replay_bytes: int = 0) -> int:
    """Bytes a restore needs beside the datadir at once: the chain's base, plus its largest
    incremental (each is unpacked beside it, applied, and removed), plus the binlogs a
    point-in-time restore replays: they stream from the repository without landing on
    disk, but what they change is written again by the recovery instance as data."""
    base, *increments = links
    return base.raw_bytes + max((m.raw_bytes for m in increments), default=0) + replay_bytes


class CheckBackup(Step):
    """Before anything stops: every object of every link is in the repository at its
    recorded size, and the datadir's filesystem has room for the unpacked chain."""

    name = "check-backup"

    def __init__(
        self, repo: Repository, links: list[Manifest], paths: RestorePaths, replay_bytes: int = 0
    ):
        self.repo, self.links, self.paths = repo, links, paths
        self.replay_bytes = replay_bytes

    def describe(self, ctx: RunContext) -> str:
        chain = " -> ".join(
            f"{m.label} ({human_bytes(m.stored_bytes)} stored, {human_bytes(m.raw_bytes)} unpacked)"
            for m in self.links
        )
        return (
            f"check every object of {chain} is in {self.repo.url}, and "
            f"{human_bytes(space_needed(self.links, self.replay_bytes))} free beside "
            f"{self.paths.live}"
        )

    def run(self, ctx: RunContext) -> str:
        for link in self.links:
            self._check_objects(link)
        needed = space_needed(self.links, self.replay_bytes)
        where = self.paths.live.parent
        free = shutil.disk_usage(where).free
        if not ctx.get("space_checked") and free < needed:
            binlogs = (
                f" (with {human_bytes(self.replay_bytes)} of binlogs to replay)"
                if self.replay_bytes
                else ""
            )
            raise NoSpace(
                f"not enough space to restore: {human_bytes(needed)} needed unpacked in "
                f"{where}{binlogs}, {human_bytes(free)} free; nothing was changed"
            )
        ctx["space_checked"] = True  # a resumed run finds its own files taking space
        stored = sum(m.stored_bytes for m in self.links)
        return (
            f"{len(self.links)} link(s), {human_bytes(stored)} stored, all present; "
            f"{human_bytes(free)} free for {human_bytes(needed)}"
        )

    def _check_objects(self, link: Manifest) -> None:
        problem = object_problem(self.repo, link)
        if problem is not None:
            raise VerificationFailed(
                f"{link.label} of the chain is broken: {problem}; nothing was changed"
            )


class ApplyIncremental(Step):
    """Apply one incremental of the chain to the prepared base in the staging directory."""

    #: applying an incremental twice, or over a half-applied one, is not safe: an
    #: interrupted run is rolled back (the staging directory goes), then run again
    resumable = False

    def __init__(
        self,
        repo: Repository,
        link: Manifest,
        number: int,
        paths: RestorePaths,
        backup: MariaDBBackupOptions,
        progress: ProgressFactory = no_progress,
    ):
        self.repo, self.link, self.paths = repo, link, paths
        self.backup, self.progress = backup, progress
        self.name = f"apply-incremental-{number}"

    @property
    def side(self) -> Path:
        live = self.paths.live
        return live.parent / f".{live.name}.incremental-{self.paths.run_id}"

    def work_bytes(self) -> int | None:
        return self.link.raw_bytes

    def basis(self) -> str:
        return "apply-incremental"

    def describe(self, ctx: RunContext) -> str:
        return (
            f"stream {self.link.label} ({human_bytes(self.link.stored_bytes)} stored) "
            f"into {self.side}, then mariabackup --prepare --incremental-dir onto "
            f"{self.paths.staging}"
        )

    def run(self, ctx: RunContext) -> str:
        apply_incremental(
            self.repo, self.link, self.paths.staging, self.side, self.backup, self.progress
        )
        return f"applied {self.link.label} ({human_bytes(self.link.raw_bytes)})"

    def compensate(self, ctx: RunContext) -> str:
        shutil.rmtree(self.side, ignore_errors=True)
        return f"removed {self.side}"
