"""``backupctl binlog follow POLICY``: continuous binlog streaming until SIGTERM."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from backupctl.cli.context import AppContext
from backupctl.operations.follow import follow as follow_policy


@click.group("binlog")
def binlog() -> None:
    """Binary log streaming (MariaDB)."""


@binlog.command("follow")
@click.argument("policy")
@click.pass_obj
def follow(app: AppContext, policy: str) -> None:
    """Stream POLICY's binlogs into its repository continuously.

    New events are stored every backup.binlog_flush_interval (default 2s); closed
    binlogs become ordinary binlog backups. Reconnects with backoff when the server
    goes away. Stops cleanly, storing what it received, on SIGTERM or Ctrl-C.
    """
    chosen = app.policy(policy)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        follow_policy(app.ops, chosen, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
