"""``backupctl scheduler``: the foreground daemon running every schedule."""

from __future__ import annotations

import click
from apscheduler.triggers.cron import CronTrigger

from backupctl.cli.context import AppContext
from backupctl.policy.loader import load_policies
from backupctl.policy.types import parse_duration
from backupctl.scheduling.daemon import SchedulerDaemon, serve
from backupctl.scheduling.runner import JobRunner
from backupctl.scheduling.triggers import TriggerFactory, cron_trigger, seconds_trigger_factory


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
    "--test-second",
    envvar="BACKUPCTL_SCHEDULER_TEST_SECOND",
    hidden=True,
    help="Test hook: a seconds field (e.g. '*/2') added to every schedule.",
)
@click.pass_obj
def scheduler(app: AppContext, misfire_grace: str, workers: int, test_second: str | None) -> None:
    """Run every policy's schedule in the foreground until SIGTERM (a service).

    SIGHUP reloads the policies (an invalid change keeps the running jobs); SIGTERM
    or Ctrl-C stops scheduling and waits for running backups to finish. Jobs share
    run-due's state, so a job overdue at start runs once, at once.
    """
    try:
        grace = parse_duration(misfire_grace)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--misfire-grace") from None
    runner = JobRunner(app.state_dir, app.repository, app.catalog)
    daemon = SchedulerDaemon(
        lambda: load_policies(app.policies_path),
        runner,
        trigger_factory=_trigger_factory(test_second),
        misfire_grace=grace,
        workers=workers,
    )
    serve(daemon)


def register(cli: click.Group) -> None:
    cli.add_command(scheduler)
