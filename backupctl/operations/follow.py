"""``backupctl binlog follow``: a driver's continuous streaming, until ``stop`` is set.

The follower records what it seals (closed binlogs) through ``run_backup``, like any
backup: locked, manifest last, catalogued, reported."""

from __future__ import annotations

import threading
from collections.abc import Callable

from backupctl.catalog.manifest import Manifest
from backupctl.drivers.base import Details, FollowContext, Follower
from backupctl.drivers.registry import driver_for
from backupctl.drivers.session import BackupSession
from backupctl.errors import UnsupportedOperation
from backupctl.operations.backup import run_backup
from backupctl.operations.context import Context
from backupctl.policy.common import PolicyBase


def follow(ctx: Context, policy: PolicyBase, stop: threading.Event) -> None:
    """Stream ``policy``'s changes into its repository until ``stop`` is set. Raises
    UnsupportedOperation for a driver that cannot, LockHeldError when another follower
    of the policy runs, BackupctlError when it cannot start."""
    driver = driver_for(policy)
    if not isinstance(driver, Follower):
        raise UnsupportedOperation(f"the {driver.name} driver has nothing to follow continuously")
    repo = ctx.repository(policy)

    def store(kind: str, produce: Callable[[BackupSession], Details]) -> Manifest:
        return run_backup(ctx, policy, kind, produce=produce, repo=repo)

    driver.follow(FollowContext(repo, ctx.catalog(), ctx.layout, stop, store))
