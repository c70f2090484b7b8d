"""Prometheus metrics from the policies' status (docs/metrics.md is the contract).

Computed afresh from backupctl's own records whenever they are collected, so the text
format (``backupctl metrics``), the node-exporter textfile, the Pushgateway and the
scheduler's ``/metrics`` all say the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.client import HTTPException
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, push_to_gateway
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from backupctl.errors import BackupctlError
from backupctl.observability.status import PolicyStatus
from backupctl.statefile import write_atomic

StatusSource = Callable[[], list[PolicyStatus]]
OUTCOMES = ("success", "failure", "unchanged", "skipped")


class MetricsError(BackupctlError):
    """Metrics could not be written or pushed."""


def _ts(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


class _Families:
    """Gauges and counters being filled, by metric name."""

    def __init__(self) -> None:
        self.items: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}

    def gauge(self, name: str, doc: str, labels: dict[str, str], value: float | None) -> None:
        if value is None:
            return
        family = self.items.get(name)
        if family is None:
            family = self.items[name] = GaugeMetricFamily(name, doc, labels=list(labels))
        family.add_metric(list(labels.values()), value)

    def counter(self, name: str, doc: str, labels: dict[str, str], value: float) -> None:
        family = self.items.get(name)
        if family is None:
            family = self.items[name] = CounterMetricFamily(name, doc, labels=list(labels))
        family.add_metric(list(labels.values()), value)


class StatusCollector(Collector):
    """Collects every metric of docs/metrics.md from ``source`` on each collection."""

    def __init__(self, source: StatusSource, clock: Callable[[], datetime] | None = None):
        self.source = source
        self.clock = clock or (lambda: datetime.now(UTC))

    def collect(self) -> Iterator[Metric]:
        families = _Families()
        for status in self.source():
            _policy_metrics(families, status)
        families.gauge(
            "backupctl_metrics_generated_timestamp_seconds",
            "When these metrics were computed.",
            {},
            self.clock().timestamp(),
        )
        yield from families.items.values()


def _policy_metrics(f: _Families, status: PolicyStatus) -> None:
    policy = {"policy": status.policy}
    started = [r.first_started or r.last_started for r in status.runs.values()]
    if first := min((moment for moment in started if moment is not None), default=None):
        f.gauge(
            "backupctl_policy_first_run_timestamp_seconds",
            "When the first run of the policy started (never-succeeded alerts count from it).",
            policy,
            first.timestamp(),
        )
    for kind, record in sorted(status.runs.items()):
        labels = {"policy": status.policy, "kind": kind}
        for outcome in OUTCOMES:
            f.counter(
                "backupctl_runs",
                "Runs since the state directory was created, by outcome.",
                {**labels, "outcome": outcome},
                record.counts.get(outcome, 0),
            )
        f.gauge(
            "backupctl_last_run_timestamp_seconds",
            "When the last run finished.",
            labels,
            _ts(record.last_finished),
        )
        f.gauge(
            "backupctl_last_run_duration_seconds",
            "How long the last run took.",
            labels,
            record.last_seconds,
        )
        if record.last_outcome in ("success", "unchanged", "failure"):
            f.gauge(
                "backupctl_last_run_success",
                "1 when the last run succeeded (or found nothing changed), 0 when it failed.",
                labels,
                0.0 if record.last_outcome == "failure" else 1.0,
            )
        f.gauge(
            "backupctl_last_success_timestamp_seconds",
            "When the last successful (or unchanged) run finished.",
            labels,
            _ts(record.last_success),
        )
        f.gauge(
            "backupctl_last_failure_timestamp_seconds",
            "When the last failed run finished.",
            labels,
            _ts(record.last_failure),
        )
        f.gauge(
            "backupctl_consecutive_failures",
            "Failed runs since the last success.",
            labels,
            record.consecutive_failures,
        )
    for kind, size in sorted(status.newest_size.items()):
        f.gauge(
            "backupctl_last_backup_size_bytes",
            "Stored bytes of the newest restorable backup of the kind.",
            {**policy, "kind": kind},
            size,
        )
    for kind, count in sorted(status.backups.items()):
        f.gauge(
            "backupctl_backups",
            "Restorable backups in the catalog.",
            {**policy, "kind": kind},
            count,
        )
    _recoverability(f, status, policy)
    _drill(f, status, policy)


def _recoverability(f: _Families, status: PolicyStatus, policy: dict[str, str]) -> None:
    window = status.window
    if window is not None:
        f.gauge(
            "backupctl_recoverability_first_timestamp_seconds",
            "The earliest moment a restore can reach.",
            policy,
            window.earliest.timestamp(),
        )
        f.gauge(
            "backupctl_recoverability_last_timestamp_seconds",
            "The newest moment a restore can reach (a connected binlog follow's last flush).",
            policy,
            (status.recoverable_until or window.latest).timestamp(),
        )
        f.gauge(
            "backupctl_recoverability_gap",
            "1 when the binlog chain breaks before its newest binlog.",
            policy,
            1.0 if window.gap else 0.0,
        )
    for name, objective in (("rpo", status.rpo_objective), ("rto", status.rto_objective)):
        f.gauge(
            f"backupctl_{name}_objective_seconds",
            f"The policy's {name.upper()} objective.",
            policy,
            objective.total_seconds() if objective is not None else None,
        )
    f.gauge(
        "backupctl_repository_bytes",
        "Stored bytes of the policy's backups in its repository.",
        policy,
        status.repository_bytes,
    )
    for name, state in sorted(status.copies.items()):
        labels = {**policy, "repository": name}
        f.gauge(
            "backupctl_copy_lag_seconds",
            "How long the oldest backup a copy repository lacks has waited (0: none missing).",
            labels,
            state.lag(status.now).total_seconds(),
        )
        f.gauge(
            "backupctl_copy_missing_backups",
            "Restorable backups of the first repository a copy repository lacks.",
            labels,
            state.missing,
        )
    if status.follow is not None:
        f.gauge(
            "backupctl_binlog_stream_lag_seconds",
            "Seconds since binlog follow last stored everything it had received.",
            policy,
            status.follow.lag_seconds,
        )
        f.gauge(
            "backupctl_binlog_stream_connected",
            "1 while binlog follow is connected to the server.",
            policy,
            1.0 if status.follow.connected else 0.0,
        )


def _drill(f: _Families, status: PolicyStatus, policy: dict[str, str]) -> None:
    drill = status.last_drill
    if drill is not None:
        finished = drill.finished_at
        f.gauge(
            "backupctl_drill_last_timestamp_seconds",
            "When the last drill finished.",
            policy,
            datetime.fromisoformat(finished).timestamp() if finished else None,
        )
        f.gauge(
            "backupctl_drill_passed",
            "1 when the last drill passed every check and objective.",
            policy,
            1.0 if drill.passed else 0.0,
        )
        f.gauge(
            "backupctl_drill_rto_seconds",
            "RTO measured by the last drill.",
            policy,
            drill.rto_seconds,
        )
        f.gauge(
            "backupctl_drill_rpo_seconds",
            "RPO measured by the last drill.",
            policy,
            drill.rpo_seconds,
        )
    f.gauge(
        "backupctl_drill_next_due_timestamp_seconds",
        "When the next drill is due by drill.schedule.",
        policy,
        _ts(status.drill_next_due),
    )


def registry_for(
    source: StatusSource, clock: Callable[[], datetime] | None = None
) -> CollectorRegistry:
    """A registry collecting from ``source``; ``clock`` stamps the generation time (the
    clock the statuses were judged by, so a moved test clock moves both)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(source, clock))
    return registry


def render(registry: CollectorRegistry) -> str:
    """The metrics in the Prometheus text format."""
    return generate_latest(registry).decode()


def write_textfile(registry: CollectorRegistry, path: Path) -> None:
    """Write the metrics to ``path`` atomically (node-exporter must never read half a
    file), readable by the node-exporter's user. Raises MetricsError."""
    text = render(registry)
    try:
        # the one file backupctl writes for others (no secret in it): 0644, not the 0600 of
        # everything else it creates, as node-exporter reads it as its own user
        write_atomic(path, text, mode=0o644)
    except OSError as exc:
        raise MetricsError(f"cannot write metrics to {path}: {exc.strerror}") from exc


def push(registry: CollectorRegistry, gateway: str, job: str = "backupctl") -> None:
    """Push the metrics to a Pushgateway (replacing this job's group). Raises MetricsError."""
    try:
        push_to_gateway(gateway, job=job, registry=registry, timeout=10)
    except (OSError, ValueError, HTTPException) as exc:  # malformed URL, garbled reply
        raise MetricsError(f"cannot push metrics to {gateway}: {exc}") from exc
