"""``backupctl drill run [POLICY…] [--json]`` / ``drill list`` / ``drill show ID``."""

from __future__ import annotations

from typing import Any

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.drills import store
from backupctl.drills.report import seconds_text, verdict
from backupctl.drills.runner import run_and_store
from backupctl.drivers.registry import driver_class
from backupctl.errors import BackupctlError, VerificationFailed
from backupctl.policy.common import PolicyBase
from backupctl.storage.base import Repository


@click.group("drill")
def drill() -> None:
    """Recovery drills: restore into a sandbox, verify, measure RTO and RPO."""


def _repo_or_none(app: AppContext, policy: PolicyBase) -> tuple[Repository | None, str | None]:
    try:
        return app.repository(policy), None
    except BackupctlError as exc:
        return None, str(exc)


@drill.command("run")
@click.argument("policies", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@click.pass_obj
def run(app: AppContext, policies: tuple[str, ...], as_json: bool) -> None:
    """Drill POLICY… (default: every policy); exit 3 unless all passed and met objectives."""
    chosen = [app.policy(name) for name in policies] if policies else app.policies()
    if not policies:  # every policy whose driver can drill; say which cannot
        for policy in chosen:
            if not driver_class(policy.driver).can_drill():
                click.echo(f"{policy.name}: skipped, {policy.driver} policies have no drill yet")
        chosen = [p for p in chosen if driver_class(p.driver).can_drill()]
    reports: list[dict[str, Any]] = []
    for policy in chosen:
        repo, problem = _repo_or_none(app, policy)
        target = repo if repo is not None else str(problem)
        reports.append(run_and_store(policy, target, app.state_dir, app.progress, app.reporter()))
    if as_json:
        render.emit_json(reports if len(reports) != 1 else reports[0])
    else:
        for report in reports:
            _print(report)
    failed = [r for r in reports if not r["passed"]]
    if failed:
        raise VerificationFailed(
            "; ".join(f"drill of {r['policy']} failed: {r['reason']}" for r in failed)
        )


def _print(report: dict[str, Any]) -> None:
    objectives = report["objectives"]
    click.echo(f"drill {report['drill_id']} of {report['policy']}: {verdict(report)}")
    click.echo(f"  backup {report['backup_id'] or '-'}, recovery point {report['recovery_point']}")
    click.echo(
        f"  RPO {seconds_text(report['rpo_seconds'])} "
        f"(objective {seconds_text(objectives['rpo_seconds'])}), "
        f"RTO {seconds_text(report['rto_seconds'])} "
        f"(objective {seconds_text(objectives['rto_seconds'])})"
    )
    for step in report["steps"]:
        click.echo(f"  {step['name']}: {step['status']} {step['seconds']:.1f}s")
    if report.get("reason"):
        click.echo(f"  reason: {report['reason']}")
    for note in report.get("notes") or []:
        click.echo(f"  note: {note}")
    click.echo(f"  report: {report['html_report']}")


def _all_repos(app: AppContext) -> list[tuple[str, Repository]]:
    repos = []
    for policy in app.policies():
        repo, _problem = _repo_or_none(app, policy)
        if repo is not None:
            repos.append((policy.name, repo))
    return repos


@drill.command("list")
@click.argument("policy", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the drills as JSON.")
@click.pass_obj
def list_drills(app: AppContext, policy: str | None, as_json: bool) -> None:
    """Past drills (from the repositories and the local copies), oldest first."""
    chosen = [app.policy(policy)] if policy else app.policies()
    reports = []
    for item in chosen:
        repo, _problem = _repo_or_none(app, item)
        reports += store.history_of(repo, app.state_dir, item.name)
    keys = ("drill_id", "policy", "backup_id", "passed", "rpo_seconds", "rto_seconds", "reason")
    rows = [{k: r.get(k) for k in keys} for r in reports]
    if as_json:
        render.emit_json(rows)
        return
    render.table(
        ["drill", "policy", "result", "RPO", "RTO", "reason"],
        [
            [
                r["drill_id"],
                r["policy"],
                "passed" if r["passed"] else "FAILED",
                seconds_text(r["rpo_seconds"]),
                seconds_text(r["rto_seconds"]),
                r["reason"] or "",
            ]
            for r in rows
        ],
    )


@drill.command("show")
@click.argument("drill_id")
@click.option("--format", "fmt", type=click.Choice(store.FORMATS), default="md", show_default=True)
@click.pass_obj
def show(app: AppContext, drill_id: str, fmt: str) -> None:
    """Print one drill's report."""
    repos: list[tuple[str, Repository]] = []
    if not (store.local_dir(app.state_dir, drill_id) / f"report.{fmt}").is_file():
        repos = _all_repos(app)
    click.echo(store.find_report(drill_id, app.state_dir, repos, fmt), nl=False)


def register(cli: click.Group) -> None:
    cli.add_command(drill)
