"""What happens when a run ends: one JSON summary line in the log, the record in the run
history, the policy's webhooks, the metrics textfile.

None of it may change a run's result: a record, a notification or a textfile that
cannot be written is logged, and the run's own error (or success) stands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from backupctl.errors import BackupctlError
from backupctl.history import RunEvent, RunHistory, RunHistoryError
from backupctl.layout import StateLayout
from backupctl.policy.common import PolicyBase

log = structlog.get_logger()

#: writes the metrics of every policy somewhere (a textfile, a Pushgateway)
MetricsWriter = Callable[[], None]


@dataclass
class RunReporter:
    """Told about every finished run: records it, logs its summary line, sends the
    policy's notifications and refreshes the metrics (when ``write_metrics`` is set)."""

    layout: StateLayout
    write_metrics: MetricsWriter | None = None

    def report(self, policy: PolicyBase, event: RunEvent) -> None:
        """Never raises for its own failures (they are logged)."""
        summary = event.to_dict()
        for name in ("source", "version", "event", "host", "details"):
            summary.pop(name)
        level = logging.ERROR if event.outcome == "failure" else logging.INFO
        log.log(level, "run summary", **summary)
        try:
            RunHistory(self.layout).add(event)
        except RunHistoryError as exc:
            log.error("run not recorded", error=str(exc))
        if policy.notify:
            from backupctl.observability.notify import send_notifications

            send_notifications(policy, event)
        self.refresh_metrics()

    def refresh_metrics(self) -> None:
        """Rewrite the metrics now, if configured; failures are logged, never raised."""
        if self.write_metrics is None:
            return
        try:
            self.write_metrics()
        except BackupctlError as exc:
            log.error("metrics not written", error=str(exc))
        except Exception as exc:  # metrics must never turn a good run into a failure
            log.exception("metrics not written: internal error", error=str(exc))
