"""The MariaDB recovery drill: the target-datadir restore, replayed to the newest point."""

from __future__ import annotations

from dataclasses import replace

from backupctl.catalog.manifest import Manifest
from backupctl.drivers.base import DrillPlan, RestoreRequest
from backupctl.drivers.mariadb.pitr import binlog_chain, gtid_seq, latest_point
from backupctl.drivers.mariadb.restore_plan import restore_steps
from backupctl.errors import UsageError
from backupctl.policy.mariadb import MariaDBPolicy
from backupctl.storage.base import Repository


def newest_gtid(repo: Repository, full: Manifest) -> str | None:
    """The last transaction of the unbroken binlog chain after ``full`` (None when no
    transaction followed it): replaying up to it, inclusive, reaches the newest point."""
    links, _gap = binlog_chain(repo, full)
    start = (full.details.get("binlog") or {}).get("gtid")
    for link in reversed(links):
        last = link.info.get("last_gtid")
        if not last:
            continue
        domain = int(str(last).split("-")[0])
        if (gtid_seq(last, domain) or 0) > (gtid_seq(start, domain) or 0):
            return str(last)
        return None
    return None


def drill_plan(
    policy: MariaDBPolicy, repo: Repository, full: Manifest, request: RestoreRequest
) -> DrillPlan:
    """Restore ``full`` plus every shipped binlog into ``request.target_dir/datadir`` with a
    private recovery instance; the live server is never touched. Raises UsageError."""
    if request.target_dir is None:
        raise UsageError("a drill needs a sandbox directory")
    links, gap = binlog_chain(repo, full)
    point = latest_point(links, full)
    target = replace(
        request,
        target_datadir=request.target_dir / "datadir",
        target_dir=None,
        to_gtid=newest_gtid(repo, full),
    )
    steps = restore_steps(policy, repo, full, target)
    return DrillPlan(steps, point, "verify", reaches_newest=gap is None)
