"""``backupctl restore --stack NAME --to-time T``: the command-line side of a stack
restore (the plan, the confirmation, the journal's summary)."""

from __future__ import annotations

import sys
from datetime import datetime

import click
from pydantic import TypeAdapter, ValidationError

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.errors import BackupctlError, UsageError
from backupctl.operations.stack import (
    OnFailure,
    StackJournal,
    StackPlan,
    describe_skew,
    plan_stack,
    resume_stack,
    run_stack,
)
from backupctl.policy.options import Moment
from backupctl.policy.stack import find_stack
from backupctl.units import human_bytes, human_duration


class StackFailed(BackupctlError):
    """A system of the stack failed: the stack stopped or was rolled back."""

    exit_code = 1


def _moment(raw: str | datetime | None) -> datetime:
    if raw is None:
        raise UsageError('--stack needs --to-time "YYYY-MM-DD HH:MM:SS" (one point for all)')
    if isinstance(raw, datetime):
        return raw
    try:
        moment: datetime = TypeAdapter(Moment).validate_python(raw)
    except ValidationError as exc:
        raise UsageError(f"--to-time: {exc.errors()[0]['msg']}") from None
    return moment


def run_stack_command(
    app: AppContext,
    name: str,
    to_time: str | None,
    *,
    dry_run: bool,
    yes: bool,
    resume: bool,
    rollback: bool,
    on_failure: OnFailure,
    as_json: bool,
) -> None:
    stack = find_stack(app.stacks_path, name)
    policies = app.policies()
    if resume or rollback:
        _finish(resume_stack(app.ops, stack, policies, rollback=rollback), as_json)
        return
    plan = plan_stack(app.ops, stack, policies, _moment(to_time))
    if dry_run:
        render.emit_json(plan.to_dict()) if as_json else _print_plan(plan)
        return
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                "a stack restore replaces live data: confirm with --yes (no terminal to ask on)"
            )
        _print_plan(plan)
        click.confirm(f"restore stack {stack.name} to {plan.moment} now?", abort=True, err=True)
    _finish(run_stack(app.ops, plan, on_failure), as_json)


def _print_plan(plan: StackPlan) -> None:
    click.echo(f"restore stack {plan.stack.name} to {render.human_time(plan.moment)}")
    for number, wave in enumerate(plan.stack.waves(), 1):
        together = " (side by side)" if len(wave) > 1 else ""
        click.echo(f"  wave {number}{together}:")
        for name in wave:
            member = plan.member(name)
            m = member.plan.manifest
            click.echo(
                f"    {name} ({member.policy.driver}): backup {m.backup_id}, "
                f"{human_bytes(m.stored_bytes)} stored, {member.plan.options.where()}; "
                f"{describe_skew(name, member.skew_seconds(plan.moment))}"
            )


def _finish(journal: StackJournal, as_json: bool) -> None:
    if as_json:
        render.emit_json(journal.to_dict())
    else:
        click.echo(f"stack restore {journal.run_id} of {journal.stack}: {journal.state}")
        for record in journal.members:
            skew = (
                describe_skew(record.policy, record.skew_seconds)
                if record.skew_seconds is not None
                else ""
            )
            click.echo(
                f"  {record.policy:<16} {record.state:<12} {human_duration(record.seconds):>8}"
                f"  {skew}{': ' + record.error if record.error else ''}"
            )
        click.echo(f"in {human_duration(journal.seconds)}")
    if journal.state != "completed":
        raise StackFailed(f"stack restore {journal.run_id} ended {journal.state}")
