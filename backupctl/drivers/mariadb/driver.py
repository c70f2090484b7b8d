"""The ``mariadb`` driver: full physical backups with mariabackup, binlog backups and
continuous binlog streaming, restores in place or into a directory, to a backup or a
point in time, and recovery drills into a sandbox."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from backupctl.catalog.manifest import Manifest
from backupctl.catalog.query import PolicyBackups, RecoveryWindow
from backupctl.checks import CheckResult
from backupctl.drivers.base import (
    DrillPlan,
    Driver,
    FollowContext,
    Follower,
    KindChoice,
    RestoreRun,
)
from backupctl.drivers.mariadb import connection
from backupctl.drivers.mariadb.binlog import BINLOG_KIND, ship_binlogs, verify_binlogs
from backupctl.drivers.mariadb.binlog_stream import read_streams, remove_stream
from backupctl.drivers.mariadb.chain import (
    FULL_KIND,
    INCREMENTAL_KIND,
    POINT_KINDS,
    ServerState,
    catalog_chains,
    chain_of,
    choose_parent,
)
from backupctl.drivers.mariadb.deep_verify import verify_full
from backupctl.drivers.mariadb.details import BinlogDetails, FullDetails, IncrementalDetails
from backupctl.drivers.mariadb.full import backup_full, backup_incremental
from backupctl.drivers.mariadb.pitr import (
    backup_gtid,
    binlog_chain,
    gtid_seq,
    latest_point,
    newest_before,
    newest_before_gtid,
)
from backupctl.drivers.mariadb.restore_plan import restore_steps
from backupctl.drivers.mariadb.restored_mark import read_mark
from backupctl.errors import BackupFailed
from backupctl.policy.mariadb import MariaDBPolicy, MariaDBRestoreOptions
from backupctl.retention import Decision, chain_decisions
from backupctl.storage.base import Repository

if TYPE_CHECKING:
    from backupctl.drivers.session import BackupSession
    from backupctl.runbook.step import Step


log = structlog.get_logger()


class MariaDBDriver(Driver[MariaDBPolicy, MariaDBRestoreOptions], Follower):
    """MariaDB server: ``full`` and ``incremental`` physical backups with mariabackup
    (chains: a full, then incrementals each building on the previous backup), and
    ``binlog`` backups."""

    name = "mariadb"
    kinds = (FULL_KIND, BINLOG_KIND, INCREMENTAL_KIND)
    #: binlogs ship while a full or incremental backup runs (they only read closed
    #: binlog files and the server's binlog state)
    lanes = {BINLOG_KIND: "binlog"}
    rebuild_rank = 20
    new_host_makes_live_dir = True

    @property
    def point_kinds(self) -> tuple[str, ...]:
        return POINT_KINDS

    def choose_kind(
        self, kind: str, backups: PolicyBackups, repo: Repository, fallback: bool
    ) -> KindChoice:
        """An incremental builds on the newest restorable full or incremental of this
        server; when it cannot (see ``chain.choose_parent``), a full is taken, or with
        ``fallback`` False the backup fails saying why."""
        if kind != INCREMENTAL_KIND:
            return KindChoice(kind)
        db = connection.connect(self.policy.connection)
        try:
            server_id, server_lsn = connection.innodb_position(db)
        finally:
            db.close()
        server = ServerState(server_id, server_lsn, read_mark(self.policy.datadir))
        choice = choose_parent(repo, backups.restorable(), server, self.policy.backup.max_chain)
        if choice.parent is not None:
            return KindChoice(INCREMENTAL_KIND, basis=choice.parent)
        if not fallback:
            raise BackupFailed(f"no incremental backup taken (--no-fallback): {choice.reason}")
        return KindChoice(FULL_KIND, reason=choice.reason)

    def backup(
        self, kind: str, session: BackupSession
    ) -> FullDetails | IncrementalDetails | BinlogDetails:
        if kind == BINLOG_KIND:
            return ship_binlogs(self.policy, session)
        if kind == INCREMENTAL_KIND:
            return backup_incremental(self.policy, session)
        return backup_full(self.policy, session)

    @classmethod
    def note(cls, manifest: Manifest) -> str:
        """An incremental: what it builds on and its place in the chain; a full taken
        instead of an incremental: why."""
        if manifest.kind == FULL_KIND:
            instead = FullDetails.of(manifest).instead_of_incremental
            return f"a full instead of an incremental: {instead}" if instead else ""
        if manifest.kind != INCREMENTAL_KIND:
            return ""
        details = IncrementalDetails.of(manifest)
        return (
            f"link {details.chain_length} of {details.base}'s chain, on "
            f"{details.parent_kind} {details.parent}"
        )

    @classmethod
    def chains(cls, manifests: list[Manifest]) -> list[list[Manifest]]:
        return catalog_chains(manifests)

    def depends_on(self, repo: Repository, manifest: Manifest) -> list[Manifest]:
        if manifest.kind != INCREMENTAL_KIND:
            return []
        return chain_of(repo, manifest)[:-1]

    def verify_deep(self, repo: Repository, manifest: Manifest, scratch: Path) -> list[CheckResult]:
        if manifest.kind == BINLOG_KIND:
            return verify_binlogs(repo, manifest, scratch)
        return verify_full(self.policy, repo, manifest, scratch)

    def collect_garbage(self, repo: Repository, kept: list[Manifest], now: datetime) -> int:
        """Binlog streams ``binlog follow`` never sealed (a binlog of an old timeline,
        after a restore reset the numbering, or a follower stopped for good) go once
        their last update is older than the binlog retention; the newest stream stays."""
        keep_for = self.policy.retention.binlog
        if keep_for is None:
            return 0
        older = read_streams(repo, self.policy.name)[:-1]  # oldest update first
        stale = [s for s in older if s.updated_at < now - keep_for]
        for stream in stale:
            remove_stream(repo, stream)
            log.info("stale binlog stream removed", file=stream.file, updated_at=stream.updated_at)
        return len(stale)

    def retention(self, backups: list[Manifest], now: datetime) -> list[Decision]:
        rules = self.policy.retention
        return chain_decisions(
            backups,
            FULL_KIND,
            BINLOG_KIND,
            rules.full,
            rules.binlog,
            now,
            point_kind=INCREMENTAL_KIND,
            keep_points=rules.incremental if rules.incremental is not None else rules.full,
            parent_of=_parent_of,
        )

    def choose_backup(self, options: MariaDBRestoreOptions, backups: PolicyBackups) -> Manifest:
        """BACKUP_ID, else for a point in time the newest restore point (full or
        incremental) before it, else the newest restore point."""
        if options.backup_id is None and options.to_gtid is not None:
            return newest_before_gtid(backups.restorable(), options.to_gtid)
        if options.backup_id is None and options.to_time is not None:
            return newest_before(backups.restorable(), options.to_time)
        return super().choose_backup(options, backups)

    def options_at(
        self, moment: datetime, backups: PolicyBackups, staging: Path
    ) -> MariaDBRestoreOptions:
        """A point-in-time restore to ``moment`` (the newest backup before it, then its
        binlogs up to it)."""
        return MariaDBRestoreOptions(to_time=moment)

    def point_reached(self, options: MariaDBRestoreOptions, manifest: Manifest) -> datetime:
        return options.to_time or manifest.finished_at

    def rebuild_options(
        self, repo: Repository, backups: PolicyBackups, staging: Path
    ) -> MariaDBRestoreOptions:
        """The newest backup and every binlog after it: to the chain's last GTID when it has
        one domain (every transaction, including those of its last second), else to the
        chain's last event."""
        newest = backups.newest()
        links, _gap = binlog_chain(repo, newest)
        last = links[-1].info.last_gtid if links else None
        if last and "," not in last:
            domain = int(last.split("-")[0])
            if (gtid_seq(last, domain) or 0) > (gtid_seq(backup_gtid(newest), domain) or 0):
                return MariaDBRestoreOptions(to_gtid=last.strip())
        if links and latest_point(links, newest) > newest.finished_at:
            return MariaDBRestoreOptions(to_time=latest_point(links, newest))
        return MariaDBRestoreOptions()

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


def _parent_of(manifest: Manifest) -> str | None:
    """The backup an incremental builds on (retention's view of a chain)."""
    return IncrementalDetails.of(manifest).parent
