"""``backupctl drill run [POLICY…] [--json]`` / ``drill list`` / ``drill show ID``."""

from __future__ import annotations

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.drills import store
from backupctl.drills.report import DrillReport, seconds_text
from backupctl.errors import BackupctlError, UsageError, VerificationFailed
from backupctl.operations.context import policy_repository
from backupctl.operations.drill import run_and_store
from backupctl.operations.stack_drill import report_path as stack_report_path
from backupctl.operations.stack_drill import run_stack_drill
from backupctl.policy.common import PolicyBase
from backupctl.policy.stack import find_stack
from backupctl.storage.base import Repository


@click.group("drill")
def drill() -> None:
    """Recovery drills: restore into a sandbox, verify, measure RTO and RPO."""


def _repo_or_none(policy: PolicyBase) -> Repository | None:
    try:
        return policy_repository(policy)
    except BackupctlError:
        return None


@drill.command("run")
@click.argument("policies", nargs=-1)
@click.option("--stack", metavar="NAME", help="Drill every policy of this stack, as one.")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@click.pass_obj
def run(app: AppContext, policies: tuple[str, ...], stack: str | None, as_json: bool) -> None:
    """Drill POLICY… (default: every policy) or a --stack; exit 3 unless all passed and
    met objectives."""
    if stack is not None:
        if policies:
            raise UsageError("give POLICY… or --stack, not both")
        _stack_drill(app, stack, as_json)
        return
    chosen = [app.policy(name) for name in policies] if policies else app.policies()
    reports = [run_and_store(app.ops, policy) for policy in chosen]
    if as_json:
        data = [r.to_json_data() for r in reports]
        render.emit_json(data if len(data) != 1 else data[0])
    else:
        for report in reports:
            _print(report)
    failed = [r for r in reports if not r.passed]
    if failed:
        raise VerificationFailed(
            "; ".join(f"drill of {r.policy} failed: {r.reason}" for r in failed)
        )


def _stack_drill(app: AppContext, name: str, as_json: bool) -> None:
    report = run_stack_drill(app.ops, find_stack(app.stacks_path, name), app.policies())
    if as_json:
        render.emit_json(report.to_dict())
    else:
        click.echo(
            f"stack drill {report.drill_id} of {report.stack}: "
            f"{'PASSED' if report.passed else 'FAILED'}"
        )
        for system in report.systems:
            click.echo(
                f"  {system['policy']:<16} {'ok' if system['passed'] else 'FAILED':<7} "
                f"RPO {seconds_text(system['rpo_seconds'])}, "
                f"RTO {seconds_text(system['rto_seconds'])}"
            )
        click.echo(
            f"  stack RTO {seconds_text(report.rto_seconds)} "
            f"(objective {seconds_text(report.objectives['rto_seconds'])}), skew "
            f"{seconds_text(report.skew_seconds)} "
            f"(objective {seconds_text(report.objectives['max_skew_seconds'])})"
        )
        for missed in report.missed:
            click.echo(f"  missed: {missed}")
        click.echo(f"  report: {stack_report_path(app.ops, report.drill_id, 'md')}")
    if not report.passed:
        raise VerificationFailed(f"stack drill of {report.stack}: " + "; ".join(report.missed))


def _print(report: DrillReport) -> None:
    objectives = report.objectives
    click.echo(f"drill {report.drill_id} of {report.policy}: {report.verdict}")
    click.echo(f"  backup {report.backup_id or '-'}, recovery point {report.recovery_point}")
    click.echo(
        f"  RPO {seconds_text(report.rpo_seconds)} "
        f"(objective {seconds_text(objectives.rpo_seconds)}), "
        f"RTO {seconds_text(report.rto_seconds)} "
        f"(objective {seconds_text(objectives.rto_seconds)})"
    )
    for step in report.steps:
        click.echo(f"  {step.name}: {step.status} {step.seconds:.1f}s")
    if report.reason:
        click.echo(f"  reason: {report.reason}")
    for note in report.notes:
        click.echo(f"  note: {note}")
    click.echo(f"  report: {report.html_report}")


@drill.command("list")
@click.argument("policy", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the drills as JSON.")
@click.pass_obj
def list_drills(app: AppContext, policy: str | None, as_json: bool) -> None:
    """Past drills (from the repositories and the local copies), oldest first."""
    chosen = [app.policy(policy)] if policy else app.policies()
    reports: list[DrillReport] = []
    for item in chosen:
        reports += store.history_of(_repo_or_none(item), app.layout, item.name)
    keys = ("drill_id", "policy", "backup_id", "passed", "rpo_seconds", "rto_seconds", "reason")
    if as_json:
        render.emit_json([{k: r.model_dump(mode="json")[k] for k in keys} for r in reports])
        return
    render.table(
        ["drill", "policy", "result", "RPO", "RTO", "reason"],
        [
            [
                r.drill_id,
                r.policy,
                "passed" if r.passed else "FAILED",
                seconds_text(r.rpo_seconds),
                seconds_text(r.rto_seconds),
                r.reason or "",
            ]
            for r in reports
        ],
    )


@drill.command("show")
@click.argument("drill_id")
@click.option("--format", "fmt", type=click.Choice(store.FORMATS), default="md", show_default=True)
@click.pass_obj
def show(app: AppContext, drill_id: str, fmt: str) -> None:
    """Print one drill's report."""
    repos: list[tuple[str, Repository]] = []
    if not (store.local_dir(app.layout, drill_id) / f"report.{fmt}").is_file():
        for policy in app.policies():
            if (repo := _repo_or_none(policy)) is not None:
                repos.append((policy.name, repo))
    click.echo(store.find_report(drill_id, app.layout, repos, fmt), nl=False)
