"""The ``mariadb`` driver: full physical backups with mariabackup, binlog backups and
continuous binlog streaming, restores in place or into a directory, to a backup or a
point in time, and recovery drills into a sandbox."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from backupctl.catalog.manifest import Manifest
from backupctl.catalog.query import PolicyBackups, RecoveryWindow
from backupctl.checks import CheckResult
from backupctl.drivers.base import DrillPlan, Driver, FollowContext, Follower, RestoreRun
from backupctl.drivers.mariadb.binlog import BINLOG_KIND, ship_binlogs, verify_binlogs
from backupctl.drivers.mariadb.details import BinlogDetails, FullDetails
from backupctl.drivers.mariadb.full import backup_full, verify_full
from backupctl.drivers.mariadb.pitr import (
    binlog_chain,
    latest_point,
    newest_before,
    newest_before_gtid,
)
from backupctl.drivers.mariadb.restore_plan import restore_steps
from backupctl.policy.mariadb import MariaDBPolicy, MariaDBRestoreOptions
from backupctl.retention import Decision, chain_decisions
from backupctl.storage.base import Repository

if TYPE_CHECKING:
    from backupctl.drivers.session import BackupSession
    from backupctl.runbook.step import Step


class MariaDBDriver(Driver[MariaDBPolicy, MariaDBRestoreOptions], Follower):
    """MariaDB server: ``full`` backups with mariabackup, and ``binlog`` backups."""

    name = "mariadb"
    kinds = ("full", BINLOG_KIND)

    def backup(self, kind: str, session: BackupSession) -> FullDetails | BinlogDetails:
        if kind == BINLOG_KIND:
            return ship_binlogs(self.policy, session)
        return backup_full(self.policy, session)

    def verify_deep(self, repo: Repository, manifest: Manifest, scratch: Path) -> list[CheckResult]:
        if manifest.kind == BINLOG_KIND:
            return verify_binlogs(repo, manifest, scratch)
        return verify_full(self.policy, repo, manifest, scratch)

    def retention(self, backups: list[Manifest], now: datetime) -> list[Decision]:
        rules = self.policy.retention
        return chain_decisions(backups, "full", BINLOG_KIND, rules.full, rules.binlog, now)

    def choose_backup(self, options: MariaDBRestoreOptions, backups: PolicyBackups) -> Manifest:
        """BACKUP_ID, else for a point in time the newest full backup before it, else the
        newest full backup."""
        if options.backup_id is None and options.to_gtid is not None:
            return newest_before_gtid(backups.restorable(), options.to_gtid)
        if options.backup_id is None and options.to_time is not None:
            return newest_before(backups.restorable(), options.to_time)
        return super().choose_backup(options, backups)

    def restore_steps(
        self, repo: Repository, manifest: Manifest, options: MariaDBRestoreOptions, run: RestoreRun
    ) -> list[Step]:
        return restore_steps(self.policy, repo, manifest, options, run)

    def drill_plan(
        self, repo: Repository, manifest: Manifest, run: RestoreRun, sandbox: Path
    ) -> DrillPlan:
        from backupctl.drivers.mariadb.drill import drill_plan

        return drill_plan(self.policy, repo, manifest, run, sandbox)

    def follow(self, context: FollowContext) -> None:
        from backupctl.drivers.mariadb.follow import BinlogFollower

        BinlogFollower(self.policy, context).run()

    def recovery_window(
        self, repo: Repository, restorable: list[Manifest]
    ) -> RecoveryWindow | None:
        """From the oldest full backup to the end of the newest one's binlog chain."""
        if not restorable:
            return None
        links, gap = binlog_chain(repo, restorable[-1])
        return RecoveryWindow(restorable[0].finished_at, latest_point(links, restorable[-1]), gap)
