"""``backupctl scheduler``: the foreground daemon running every schedule."""

from __future__ import annotations

import click
import structlog
from apscheduler.triggers.cron import CronTrigger
from prometheus_client import start_http_server

from backupctl.cli.context import AppContext
from backupctl.cron.triggers import TriggerFactory, cron_trigger, seconds_trigger_factory
from backupctl.errors import UsageError
from backupctl.observability.metrics import registry_for
from backupctl.observability.status import PolicyStatus, policy_statuses
from backupctl.operations.context import policy_repository
from backupctl.operations.daemon import SchedulerDaemon, serve
from backupctl.operations.jobs import JobRunner
from backupctl.policy.loader import load_policies
from backupctl.policy.stack import load_stacks
from backupctl.policy.types import parse_duration

log = structlog.get_logger()


def _trigger_factory(test_second: str | None) -> TriggerFactory:
    if not test_second:
        return cron_trigger
    try:
        CronTrigger(second=test_second)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--test-second") from None
    return seconds_trigger_factory(test_second)


@click.command("scheduler")
@click.option(
    "--misfire-grace",
    default="1h",
    show_default=True,
    help="A run delayed longer than this (busy workers, suspend) waits for the next slot.",
)
@click.option(
    "--workers", default=4, show_default=True, type=click.IntRange(1, 64), help="Jobs at once."
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve the metrics over HTTP at /metrics on this port.",
)
@click.option(
    "--metrics-address",
    default="127.0.0.1",
    show_default=True,
    help="Address to serve the metrics on (0.0.0.0: every interface).",
)
@click.option(
    "--test-second",
    envvar="BACKUPCTL_SCHEDULER_TEST_SECOND",
    hidden=True,
    help="Test hook: a seconds field (e.g. '*/2') added to every schedule.",
)
@click.pass_obj
def scheduler(
    app: AppContext,
    misfire_grace: str,
    workers: int,
    metrics_port: int | None,
    metrics_address: str,
    test_second: str | None,
) -> None:
    """Run every policy's schedule in the foreground until SIGTERM (a service).

    SIGHUP reloads the policies (an invalid change keeps the running jobs); SIGTERM
    or Ctrl-C stops scheduling and waits for running backups to finish. Jobs share
    run-due's state, so a job overdue at start runs once, at once.
    """
    try:
        grace = parse_duration(misfire_grace)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--misfire-grace") from None
    runner = JobRunner(app.ops)
    daemon = SchedulerDaemon(
        lambda: load_policies(app.policies_path),
        runner,
        load_stacks=lambda: load_stacks(app.stacks_path),
        trigger_factory=_trigger_factory(test_second),
        misfire_grace=grace,
        workers=workers,
    )
    if metrics_port is not None:
        _serve_metrics(app, daemon, metrics_address, metrics_port)
    serve(daemon)


def _serve_metrics(app: AppContext, daemon: SchedulerDaemon, address: str, port: int) -> None:
    """Serve /metrics (computed on each scrape, for the policies scheduled now)."""

    def statuses() -> list[PolicyStatus]:
        return policy_statuses(
            daemon.policies, app.catalog(), policy_repository, app.layout, app.clock()
        )

    try:
        start_http_server(port, address, registry=registry_for(statuses, app.clock))
    except OSError as exc:
        raise UsageError(f"cannot serve metrics on {address}:{port}: {exc.strerror}") from exc
    log.info("serving metrics", url=f"http://{address}:{port}/metrics")
