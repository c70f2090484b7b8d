"""The MariaDB recovery drill: the target-datadir restore, replayed to the newest point."""

from __future__ import annotations

from pathlib import Path

from backupctl.catalog.manifest import Manifest
from backupctl.drivers.base import DrillPlan, RestoreRun
from backupctl.drivers.mariadb.pitr import backup_gtid, binlog_chain, gtid_seq, latest_point
from backupctl.drivers.mariadb.restore_plan import restore_steps
from backupctl.policy.mariadb import MariaDBPolicy, MariaDBRestoreOptions
from backupctl.storage.base import Repository


def newest_gtid(repo: Repository, full: Manifest) -> str | None:
    """The last transaction of the unbroken binlog chain after ``full`` (None when no
    transaction followed it): replaying up to it, inclusive, reaches the newest point."""
    links, _gap = binlog_chain(repo, full)
    start = backup_gtid(full)
    for link in reversed(links):
        last = link.info.last_gtid
        if not last:
            continue
        domain = int(last.split("-")[0])  # a GTID (domain-server-sequence): checked when read
        if (gtid_seq(last, domain) or 0) > (gtid_seq(start, domain) or 0):
            return last
        return None
    return None


def drill_plan(
    policy: MariaDBPolicy, repo: Repository, full: Manifest, run: RestoreRun, sandbox: Path
) -> DrillPlan:
    """Restore ``full`` plus every shipped binlog into ``sandbox/datadir`` with a private
    recovery instance; the live server is never touched."""
    links, gap = binlog_chain(repo, full)
    point = latest_point(links, full)
    options = MariaDBRestoreOptions(
        target_datadir=sandbox / "datadir",
        to_gtid=newest_gtid(repo, full),
        verify_level=policy.restore.drill_verify_level,
    )
    steps = restore_steps(policy, repo, full, options, run)
    return DrillPlan(steps, point, "verify", reaches_newest=gap is None)
