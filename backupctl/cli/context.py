"""What every command shares: where policies and state are, loaded lazily, and the
operations' context built from the global options."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from backupctl.catalog.index import Catalog
from backupctl.clock import Clock, utc_now
from backupctl.layout import StateLayout
from backupctl.log import LogFormat, quiet
from backupctl.observability.reporter import RunReporter
from backupctl.observability.status import PolicyStatus, policy_statuses
from backupctl.operations.context import Context, policy_repository
from backupctl.policy.common import PolicyBase
from backupctl.policy.loader import find_policy, load_policies
from backupctl.progress import choose_progress

if TYPE_CHECKING:  # prometheus_client is imported only by the runs that publish metrics
    from prometheus_client import CollectorRegistry


@dataclass
class AppContext:
    policies_path: Path
    state_dir: Path
    log_format: LogFormat
    verbose: int = 0
    #: rewritten after every run (--metrics-textfile / BACKUPCTL_METRICS_TEXTFILE)
    metrics_textfile: Path | None = None
    #: pushed to after every run (--pushgateway / BACKUPCTL_PUSHGATEWAY)
    pushgateway: str | None = None
    #: what operations take the time from (the real clock, unless a test moves it)
    clock: Clock = utc_now
    _policies: list[PolicyBase] | None = field(default=None, repr=False)

    @property
    def layout(self) -> StateLayout:
        return StateLayout(self.state_dir)

    def policies(self) -> list[PolicyBase]:
        """Every policy (raises PolicyError / NotFoundError)."""
        if self._policies is None:
            self._policies = load_policies(self.policies_path)
        return self._policies

    @property
    def stacks_path(self) -> Path:
        """``stacks/`` beside the policies directory."""
        base = self.policies_path if self.policies_path.is_dir() else self.policies_path.parent
        return base.parent / "stacks"

    def policy(self, name: str) -> PolicyBase:
        return find_policy(self.policies(), name)

    def catalog(self) -> Catalog:
        return Catalog(self.layout.catalog)

    @cached_property
    def ops(self) -> Context:
        """The context operations run in: this state directory, progress on a terminal,
        runs reported to the history, the log, webhooks and the configured metrics."""
        return Context(
            self.layout,
            progress=choose_progress(self.log_format, quiet()),
            reporter=self.reporter(),
            clock=self.clock,
        )

    def statuses(self) -> list[PolicyStatus]:
        """Every policy's status now (raises PolicyError for invalid policies)."""
        return policy_statuses(
            self.policies(), self.catalog(), policy_repository, self.layout, self.clock()
        )

    def metrics_registry(self) -> CollectorRegistry:
        from backupctl.observability.metrics import registry_for

        return registry_for(self.statuses, self.clock)

    def publish_metrics(self, textfile: Path | None = None, gateway: str | None = None) -> None:
        """Write the metrics to ``textfile`` and push them to ``gateway`` (each when given).
        Raises MetricsError."""
        from backupctl.observability.metrics import push, write_textfile

        registry = self.metrics_registry()
        if textfile is not None:
            write_textfile(registry, textfile)
        if gateway is not None:
            push(registry, gateway)

    def reporter(self) -> RunReporter:
        """What every run reports to: the run history, the log, the policy's webhooks, and
        the configured textfile or Pushgateway."""
        if self.metrics_textfile is None and self.pushgateway is None:
            return RunReporter(self.layout)
        return RunReporter(
            self.layout, lambda: self.publish_metrics(self.metrics_textfile, self.pushgateway)
        )
