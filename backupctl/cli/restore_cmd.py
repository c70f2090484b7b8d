"""``backupctl restore``: what an operator types during an incident."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from backupctl.catalog.manifest import read_manifest
from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.drivers.registry import driver_for
from backupctl.errors import UsageError, VerificationFailed
from backupctl.restore import RestorePlan, execute, plan_restore, resume
from backupctl.runbook.engine import RunbookFailed
from backupctl.runbook.report import describe_point
from backupctl.units import human_bytes


def _print_plan(plan: RestorePlan, in_place: bool) -> None:
    m = plan.manifest
    click.echo(
        f"restore {m.policy} from backup {m.backup_id} "
        f"(finished {render.human_time(m.finished_at)}, "
        f"{human_bytes(m.raw_bytes)}, {human_bytes(m.stored_bytes)} stored)"
    )
    params = plan.runbook.journal.params
    if in_place:
        click.echo("in place: the live data is replaced")
    elif params.get("target_dir"):
        click.echo(f"into {params['target_dir']} (live files untouched)")
    else:
        click.echo(f"into {params['target_datadir']} (live server untouched)")
    for number, step in enumerate(plan.steps, 1):
        click.echo(f"  {number:2}. {step.name}: {step.description}")
        for hook in step.hooks:
            click.echo(f"        hook: {hook}")
    if plan.estimate_seconds is not None:
        click.echo(f"estimated duration: {plan.estimate_seconds:.0f}s (from past restores)")
    else:
        click.echo("estimated duration: unknown (no past restore or drill of this policy)")


def parse_time(text: str) -> datetime:
    """A time from the command line: local time unless it carries an offset."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        hint = 'use "YYYY-MM-DD HH:MM:SS" with an optional +HH:MM offset'
        raise UsageError(f"cannot read the time {text!r}: {hint}") from None
    return moment.astimezone() if moment.tzinfo is None else moment


def _as_time(text: str) -> datetime | None:
    """``text`` as a time when it reads as one (``--at`` also takes commit ids)."""
    try:
        return parse_time(text)
    except UsageError:
        return None


def print_report(report: dict[str, Any]) -> None:
    for step in report["steps"]:
        click.echo(
            f"  {step['status']:>12}  {step['name']:<24} {step['seconds']:7.2f}s  "
            f"{str(step['detail']).splitlines()[0] if step['detail'] else ''}"
        )
    for check in report["checks"]:
        mark = "PASS" if check["passed"] else "FAIL"
        click.echo(f"  {mark}  {check['name']}: {check['detail']}")


@click.command("restore")
@click.argument("policy")
@click.argument("backup_id", required=False)
@click.option(
    "--target-datadir",
    type=click.Path(path_type=Path),
    default=None,
    help="Restore into this (empty) directory; the live server is not touched.",
)
@click.option(
    "--to-time",
    default=None,
    help='Point in time, e.g. "2026-11-21 14:02:00" (local time unless it has an offset).',
)
@click.option("--to-gtid", default=None, help="Replay up to and including this GTID, e.g. 0-1-42.")
@click.option(
    "--indices",
    default=None,
    help="Elasticsearch: restore only these indices (comma-separated patterns).",
)
@click.option(
    "--at",
    default=None,
    help="config-git: the commit (or backup id), or a time (local unless it has an offset): "
    "the newest commit at or before it.",
)
@click.option(
    "--path",
    "only_path",
    type=click.Path(path_type=Path),
    default=None,
    help="config-git: restore only this file or directory (absolute).",
)
@click.option(
    "--target-dir",
    type=click.Path(path_type=Path, resolve_path=True),
    default=None,
    help="config-git: write the files into this new or empty directory.",
)
@click.option(
    "--previous",
    is_flag=True,
    help="model: the version stored before the one served now (a rollback).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option(
    "--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal)."
)
@click.option("--resume", "do_resume", is_flag=True, help="Finish an interrupted restore.")
@click.option("--rollback", is_flag=True, help="Undo an interrupted restore.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan or the report as JSON.")
@click.pass_obj
def restore(
    app: AppContext,
    policy: str,
    backup_id: str | None,
    target_datadir: Path | None,
    to_time: str | None,
    to_gtid: str | None,
    indices: str | None,
    at: str | None,
    only_path: Path | None,
    target_dir: Path | None,
    previous: bool,
    dry_run: bool,
    yes: bool,
    do_resume: bool,
    rollback: bool,
    as_json: bool,
) -> None:
    """Restore POLICY from BACKUP_ID (default: the newest complete backup)."""
    chosen = app.policy(policy)
    repo = app.repository(chosen)
    if do_resume or rollback:
        if do_resume and rollback:
            raise UsageError("give --resume or --rollback, not both")
        report = resume(chosen, repo, app.state_dir, rollback=rollback, progress=app.progress)
        _finish(report, as_json, app)
        return
    if to_time and to_gtid:
        raise UsageError("give --to-time or --to-gtid, not both")
    if at is not None and (backup_id or to_time or to_gtid):
        raise UsageError("give --at, or BACKUP_ID / --to-time / --to-gtid, not both")
    if (target_dir or only_path) and at is None:
        raise UsageError(
            "--target-dir and --path go with --at TIME|COMMIT (config-git restores; "
            "--at also takes a backup id)"
        )
    target = parse_time(to_time) if to_time else None
    # a restore starts from a full backup (binlogs are replayed on top of one)
    driver = driver_for(chosen)
    full_kind = driver.default_kind
    if previous:
        if backup_id or at or to_time or to_gtid:
            raise UsageError("--previous picks the backup itself: give no BACKUP_ID or time")
        restorable = [m for m in app.catalog().list(chosen.name, full_kind) if m.restorable]
        known = driver.previous_backup(restorable)
    elif at is not None:
        restorable = [m for m in app.catalog().list(chosen.name, full_kind) if m.restorable]
        known = driver.backup_at(restorable, at, _as_time(at))
    elif backup_id is None and (target is not None or to_gtid is not None):
        restorable = [m for m in app.catalog().list(chosen.name, full_kind) if m.restorable]
        known = driver.base_for_point(restorable, target, to_gtid)
    else:
        known = app.catalog().get(chosen.name, backup_id, kind=full_kind)
    manifest = read_manifest(repo, known.policy, known.kind, known.backup_id)
    only = [p.strip() for p in indices.split(",") if p.strip()] if indices else None
    plan = plan_restore(
        chosen,
        repo,
        manifest,
        app.state_dir,
        target_datadir,
        app.progress,
        target,
        to_gtid,
        indices=only,
        at=at,
        target_dir=target_dir,
        path=only_path,
    )
    in_place = target_datadir is None and target_dir is None
    if dry_run:
        render.emit_json(plan.to_dict()) if as_json else _print_plan(plan, in_place)
        return
    if in_place and not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                "an in-place restore replaces live data: confirm with --yes (no terminal to ask on)"
            )
        _print_plan(plan, in_place=True)
        click.confirm(f"replace the live data of {chosen.name} now?", abort=True, err=True)
    try:
        report = execute(plan, chosen, app.state_dir)
    except RunbookFailed as exc:
        if as_json and exc.report_path is not None:
            click.echo(exc.report_path.read_text())
        elif exc.report_path is not None:
            click.echo(f"report: {exc.report_path}", err=True)
        raise
    _finish(report, as_json, app)


def _finish(report: dict[str, Any], as_json: bool, app: AppContext) -> None:
    if as_json:
        render.emit_json(report)
    else:
        click.echo(f"restore {report['run_id']} of {report['policy']}: {report['state']}")
        print_report(report)
        if report.get("recovery_point"):
            click.echo(f"recovered to {describe_point(report['recovery_point'])}")
        if report.get("aside"):
            click.echo(f"previous datadir kept at {report['aside']}")
        click.echo(f"report: {app.state_dir / 'restores' / (report['run_id'] + '.md')}")
    if report["state"] != "completed" and report["state"] != "rolled-back":
        raise VerificationFailed(f"restore {report['run_id']} ended {report['state']}")


def register(cli: click.Group) -> None:
    cli.add_command(restore)
