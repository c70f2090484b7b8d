"""``backupctl run-due``: run every scheduled job whose time has come (cron, timers)."""

from __future__ import annotations

from datetime import datetime

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.clock import Clock
from backupctl.operations.jobs import JobRunner
from backupctl.operations.run_due import RunDueReport, run_due
from backupctl.policy.stack import load_stacks
from backupctl.scheduling.plan import plan_jobs


def _fixed_clock(text: str) -> Clock:
    """Test hook: a clock stopped at ``text`` (ISO 8601; local time without an offset)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"expected an ISO 8601 time like 2026-11-22T02:00:00+00:00, got {text!r}",
            param_hint="--now / BACKUPCTL_NOW",
        ) from None
    moment = moment if moment.tzinfo is not None else moment.astimezone()
    return lambda: moment


@click.command("run-due")
@click.option(
    "--catch-up",
    is_flag=True,
    help="Also run, now, jobs never seen before (by default a new job waits for its first slot).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what ran and what waits as JSON.")
@click.option(
    "--now",
    "now_text",
    envvar="BACKUPCTL_NOW",
    hidden=True,
    help="Test hook: take this ISO 8601 time as now when deciding what is due.",
)
@click.pass_obj
def run_due_command(app: AppContext, catch_up: bool, as_json: bool, now_text: str | None) -> None:
    """Run every scheduled job that is due, each once however many slots were missed.

    For cron every minute or a systemd timer. A job whose previous run is still going
    is skipped. Exit 1 when a job failed (after running the others).
    """
    policies, stacks = app.policies(), load_stacks(app.stacks_path)
    runner = JobRunner(
        app.ops, clock=_fixed_clock(now_text) if now_text else None, policies=policies
    )
    plan = plan_jobs(policies, stacks=stacks)
    by_name = {p.name: p for p in policies}
    report = run_due(plan, by_name, runner, catch_up, {s.name: s for s in stacks})
    if not report.results:  # each run refreshed the metrics; with none, refresh them now
        app.ops.runs.refresh_metrics()
    if as_json:
        render.emit_json(report.to_dict())
    else:
        _print(report)
    report.raise_for_failures()


def _print(report: RunDueReport) -> None:
    """One line per job that ran, nothing when none did (cron mails what is printed)."""
    for result in report.results:
        seconds = (result.finished_at - result.started_at).total_seconds()
        click.echo(
            f"{result.job} ({result.kind}): {result.outcome}: {result.detail} "
            f"(due {render.human_time(result.due_at)}, {seconds:.1f}s)"
        )
