"""``backupctl restore``: what an operator types during an incident.

The driver-specific flags (``--to-time``, ``--indices``, ``--at``…) are not written
here: they come from every driver's restore-options model (``policy.options``). This
command turns the flags given into the chosen policy's options and calls the restore
operation; the driver chooses the backup and the steps.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.cli.stack_cmd import run_stack_command
from backupctl.errors import UsageError, VerificationFailed
from backupctl.operations.restore import RestorePlan, plan_restore, resume_restore, run_restore
from backupctl.operations.stack import OnFailure
from backupctl.policy.common import PolicyBase
from backupctl.policy.options import RestoreFlag
from backupctl.policy.registry import POLICY_MODELS
from backupctl.runbook.engine import RunbookFailed
from backupctl.runbook.report import RestoreReport
from backupctl.units import human_bytes, human_duration


def _print_plan(plan: RestorePlan) -> None:
    m = plan.manifest
    click.echo(
        f"restore {m.policy} from backup {m.backup_id} "
        f"(finished {render.human_time(m.finished_at)}, "
        f"{human_bytes(m.raw_bytes)}, {human_bytes(m.stored_bytes)} stored)"
    )
    click.echo(plan.options.where())
    for number, (step, eta) in enumerate(zip(plan.steps, plan.projections, strict=True), 1):
        click.echo(f"  {number:2}. {step.name}: {step.description}")
        for hook in step.hooks:
            click.echo(f"        hook: {hook}")
        if eta.seconds is not None:
            click.echo(f"        about {human_duration(eta.seconds)}: {eta.how}")
    if plan.estimate_seconds is None:
        click.echo("estimated duration: unknown (no past restore or drill of this policy)")
        return
    left_out = f"; {plan.unmeasured} step(s) never measured" if plan.unmeasured else ""
    click.echo(
        f"estimated duration: {human_duration(plan.estimate_seconds)} "
        f"(each step from past restores and drills of {m.policy}{left_out})"
    )


def print_report(report: RestoreReport) -> None:
    for step in report.steps:
        click.echo(
            f"  {step.status:>12}  {step.name:<24} {step.seconds:7.2f}s  "
            f"{step.detail.splitlines()[0] if step.detail else ''}"
        )
    for check in report.checks:
        mark = "PASS" if check.passed else "FAIL"
        click.echo(f"  {mark}  {check.name}: {check.detail}")


def _driver_flags() -> dict[str, tuple[RestoreFlag, list[str]]]:
    """Every driver's restore flags by field name, with the drivers taking each."""
    flags: dict[str, tuple[RestoreFlag, list[str]]] = {}
    for driver, model in POLICY_MODELS.items():
        for flag in model.restore_options.flags():
            known = flags.setdefault(flag.field, (flag, []))
            if known[0].flag != flag.flag or known[0].is_switch != flag.is_switch:
                raise AssertionError(f"drivers disagree on the restore option {flag.field!r}")
            known[1].append(driver)
    return flags


FLAGS = _driver_flags()


def _with_driver_flags(command: Callable[..., None]) -> Callable[..., None]:
    for flag, _drivers in reversed(list(FLAGS.values())):
        if flag.is_switch:
            command = click.option(flag.flag, flag.field, is_flag=True, help=flag.description)(
                command
            )
        else:
            kind = click.Path(path_type=Path) if flag.is_path else None
            command = click.option(
                flag.flag, flag.field, type=kind, default=None, help=flag.description
            )(command)
    return command


def _options(policy: PolicyBase, backup_id: str | None, given: dict[str, Any]) -> Any:
    """The policy's restore options from the flags given. Raises UsageError for a flag
    its driver does not take, or values it refuses."""
    model = policy.restore_options
    own = {flag.field for flag in model.flags()}
    foreign = [FLAGS[name] for name, value in given.items() if value and name not in own]
    if foreign:
        names = ", ".join(flag.flag for flag, _drivers in foreign)
        takes = ", ".join(["BACKUP_ID", *(f.flag for f in model.flags())])
        whose = "; ".join(f"{flag.flag} is for {', '.join(d)}" for flag, d in foreign)
        raise UsageError(f"{policy.driver} restores take {takes}, not {names} ({whose} policies)")
    values = {name: value for name, value in given.items() if name in own and value}
    if backup_id is not None:
        values["backup_id"] = backup_id
    return model.from_command_line(values)


@click.command("restore")
@click.argument("policy", required=False)
@click.argument("backup_id", required=False)
@_with_driver_flags
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option(
    "--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal)."
)
@click.option("--resume", "do_resume", is_flag=True, help="Finish an interrupted restore.")
@click.option("--rollback", is_flag=True, help="Undo an interrupted restore.")
@click.option(
    "--from",
    "from_repo",
    metavar="NAME",
    help="Read the backup from this one of the policy's repositories only (default: all "
    "of them, the best first, an object missing or corrupt in one read from another).",
)
@click.option(
    "--stack",
    metavar="NAME",
    help="Restore every policy of this stack (stacks/NAME.yaml) to one --to-time.",
)
@click.option(
    "--on-failure",
    type=click.Choice(["stop", "rollback"]),
    default="stop",
    show_default=True,
    help="--stack: when one system fails, stop (keep what is restored) or undo the others.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan or the report as JSON.")
@click.pass_obj
def restore(
    app: AppContext,
    /,
    policy: str | None,
    backup_id: str | None,
    dry_run: bool,
    yes: bool,
    do_resume: bool,
    rollback: bool,
    from_repo: str | None,
    stack: str | None,
    on_failure: OnFailure,
    as_json: bool,
    **driver_flags: Any,
) -> None:
    """Restore POLICY from BACKUP_ID (default: the newest complete backup), or every
    policy of a --stack to one --to-time."""
    if do_resume and rollback:
        raise UsageError("give --resume or --rollback, not both")
    if stack is not None:
        if policy is not None or backup_id is not None or from_repo is not None:
            raise UsageError(
                "--stack restores the stack's policies: give no POLICY, BACKUP_ID or --from"
            )
        others = sorted(name for name, value in driver_flags.items() if value and name != "to_time")
        if others:
            flags = ", ".join(FLAGS[name][0].flag for name in others)
            raise UsageError(f"--stack takes --to-time only, not {flags}")
        run_stack_command(
            app,
            stack,
            driver_flags.get("to_time"),
            dry_run=dry_run,
            yes=yes,
            resume=do_resume,
            rollback=rollback,
            on_failure=on_failure,
            as_json=as_json,
        )
        return
    if policy is None:
        raise UsageError("give a POLICY to restore (or --stack NAME)")
    chosen = app.policy(policy)
    ops = app.ops
    if do_resume or rollback:
        _finish(resume_restore(ops, chosen, rollback=rollback, source=from_repo), as_json, app)
        return
    options = _options(chosen, backup_id, driver_flags)
    plan = plan_restore(ops, chosen, options, from_repo)
    if dry_run:
        render.emit_json(plan.to_dict()) if as_json else _print_plan(plan)
        return
    if options.in_place and not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                "an in-place restore replaces live data: confirm with --yes (no terminal to ask on)"
            )
        _print_plan(plan)
        click.confirm(f"replace the live data of {chosen.name} now?", abort=True, err=True)
    try:
        report = run_restore(ops, plan)
    except RunbookFailed as exc:
        if as_json and exc.report_path is not None:
            render.emit_json_text(exc.report_path.read_text())
        elif exc.report_path is not None:
            click.echo(f"report: {exc.report_path}", err=True)
        raise
    _finish(report, as_json, app)


def _finish(report: RestoreReport, as_json: bool, app: AppContext) -> None:
    if as_json:
        render.emit_json(report.to_json_data())
    else:
        click.echo(f"restore {report.run_id} of {report.policy}: {report.state}")
        print_report(report)
        if report.recovery_point is not None:
            click.echo(f"recovered to {report.recovery_point.describe()}")
        if report.aside:
            click.echo(f"previous datadir kept at {report.aside}")
        click.echo(f"report: {app.layout.restore_report(report.run_id, 'md')}")
    if not report.ended_well:
        raise VerificationFailed(f"restore {report.run_id} ended {report.state}")
