"""The MariaDB restore plan: which steps, in which order, for in-place and target restores."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from backupctl.catalog.manifest import Manifest
from backupctl.drivers.base import RestoreRun
from backupctl.drivers.mariadb.chain import chain_of
from backupctl.drivers.mariadb.chain_steps import ApplyIncremental, CheckBackup
from backupctl.drivers.mariadb.datadir_steps import (
    CheckTarget,
    EnsureStopped,
    Extract,
    MoveAside,
    MoveIntoPlace,
    Prepare,
    RestorePaths,
)
from backupctl.drivers.mariadb.details import FullDetails
from backupctl.drivers.mariadb.instance import MAX_SOCKET_PATH
from backupctl.drivers.mariadb.pitr import ReplayBinlogs, ReplayTarget, backup_gtid
from backupctl.drivers.mariadb.service_steps import (
    HealthCheck,
    StartRecoveryInstance,
    StopRecoveryInstance,
    VerifyRestored,
)
from backupctl.layout import StateLayout
from backupctl.policy.mariadb import MariaDBPolicy, MariaDBRestoreOptions
from backupctl.runbook.hook_step import HookStep
from backupctl.runbook.step import Step
from backupctl.storage.base import Repository


def recovery_run_dir(layout: StateLayout, run_id: str, shared: bool = False) -> Path:
    """Where the recovery instance keeps socket, pid file and log: derived from the run id,
    so a resumed run finds them; under the state directory when the socket path fits.
    ``shared``: the instance may run as another user (root restoring a datadir owned by
    ``mysql``), who cannot enter the private (0700) state directory: a directory of its
    own (0700, handed to that user) under the temp directory then."""
    preferred = layout.recovery(run_id)
    if not shared and len(str(preferred / "mysqld.sock")) <= MAX_SOCKET_PATH:
        return preferred
    return Path(tempfile.gettempdir()) / f"backupctl-recovery-{run_id}"


def _may_run_as_another_user(live: Path, in_place: bool) -> bool:
    """Root runs the recovery instance as the restored datadir's owner: the live datadir's
    (in place) or the target's parent's (see MoveIntoPlace). Decided from what a resumed
    run sees too, so it finds the same run directory."""
    if os.geteuid() != 0:
        return False
    if in_place:
        return True
    try:
        return live.parent.stat().st_uid != 0
    except OSError:
        return False


def restore_steps(
    policy: MariaDBPolicy,
    repo: Repository,
    manifest: Manifest,
    options: MariaDBRestoreOptions,
    run: RestoreRun,
) -> list[Step]:
    """Every link of the backup's chain checked, extracted and prepared (each incremental
    applied in order) beside the datadir, then in place: stop hooks -> … -> start hooks ->
    health check. To a target: no hooks, no live server touched. Nothing stops before the
    restored copy is prepared: a broken link, a corrupt object or a full disk are found
    while the server still runs. Raises VerificationFailed for a broken chain."""
    links = chain_of(repo, manifest)  # refused before any step when a link is gone
    live = options.target_datadir or policy.datadir
    paths = RestorePaths(live.absolute(), run.run_id, options.in_place)
    shared = _may_run_as_another_user(paths.live, options.in_place)
    run_dir = recovery_run_dir(run.layout, run.run_id, shared)
    env = {
        "BACKUPCTL_BACKUP_ID": manifest.backup_id,
        "BACKUPCTL_DATADIR": str(paths.live),
        "BACKUPCTL_RUN_ID": run.run_id,
    }
    restore = policy.restore
    replay: list[Step] = []
    replay_bytes = 0
    strict_from = None
    if options.to_point:
        if FullDetails.of(manifest).gtid_strict_mode:
            strict_from = backup_gtid(manifest) or ""
        target = ReplayTarget(options.to_time, options.to_gtid)
        binlogs = target.check(repo, manifest)  # refuse before anything changes
        replay_bytes = sum(size for link in binlogs for _key, size in link.parts)
        replay.append(
            ReplayBinlogs(
                repo,
                manifest,
                target,
                run_dir / "mysqld.sock",
                run_dir / "replay",  # the tools' messages only: binlogs stream through
                binlog_bytes=replay_bytes,
                progress=run.progress,
            )
        )
    base, *increments = links
    staged: list[Step] = [
        CheckBackup(repo, links, paths, replay_bytes),
        Extract(repo, base, paths, run.progress, policy.backup.parallel),
        Prepare(paths, policy.backup),
        *(
            ApplyIncremental(repo, link, n, paths, policy.backup, run.progress)
            for n, link in enumerate(increments, start=1)
        ),
    ]
    recovered: list[Step] = [
        MoveIntoPlace(paths, manifest.backup_id),
        StartRecoveryInstance(paths.live, run_dir, policy, strict_from, bool(replay)),
        *replay,
        VerifyRestored(
            paths.live,
            run_dir,
            manifest,
            policy,
            options.verify_level or restore.verify_level,
            replayed=bool(replay),
            data_bytes=links[0].raw_bytes,  # the base: the size of the restored data
        ),
        StopRecoveryInstance(paths.live, run_dir, policy),
    ]
    if not options.in_place:
        return [CheckTarget(paths), *staged, *recovered]
    return [
        *staged,
        HookStep("stop-services", policy, restore.stop, restore.start, env, restore.hook_timeout),
        EnsureStopped(policy, paths),
        MoveAside(paths),
        *recovered,
        HookStep("start-services", policy, restore.start, restore.stop, env, restore.hook_timeout),
        HealthCheck(policy, restore.health_timeout),
    ]
