"""``backupctl dr bootstrap URL``: the server is gone; rebuild the stack on a new host from
one repository (policies, hooks, catalog, then every system to its newest point)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.errors import UsageError, VerificationFailed
from backupctl.operations.dr import (
    DrReport,
    describe,
    open_source,
    plan_bootstrap,
    report_path,
    run_bootstrap,
)
from backupctl.units import human_duration


@click.group("dr")
def dr_group() -> None:
    """Disaster recovery of the whole server."""


@dr_group.command("bootstrap")
@click.argument("url")
@click.option(
    "--key-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The repository's encryption key (installed where the recovered policies read it).",
)
@click.option(
    "--endpoint-url",
    metavar="URL",
    help="S3-compatible endpoint (MinIO, Ceph); credentials "
    "come from the environment (AWS_ACCESS_KEY_ID…) as for any S3 repository.",
)
@click.option(
    "--target-root",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where policies/ and hooks/ are written (default: the directory above --policies).",
)
@click.option(
    "--stack",
    metavar="NAME",
    help="Restore in this recovered stack's order and parallel groups (default: the one "
    "stack the repository keeps, if there is one).",
)
@click.option("--dry-run", is_flag=True, help="Show the plan; write nothing but the catalog.")
@click.option("--yes", is_flag=True, help="Run the restores without asking.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan or the report as JSON.")
@click.pass_obj
def bootstrap(
    app: AppContext,
    /,
    url: str,
    key_file: Path | None,
    endpoint_url: str | None,
    target_root: Path | None,
    stack: str | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Rebuild the stack from the repository at URL (s3://bucket/prefix or file:///path)."""
    if not dry_run and not yes and not sys.stdin.isatty():
        raise UsageError(
            "a rebuild restores every system in place: confirm with --yes "
            "(or look first with --dry-run)"
        )
    root = (target_root or app.policies_path.parent).absolute()
    source = open_source(url, endpoint_url, key_file)
    boot = plan_bootstrap(app.ops, source, root, key_file, write=not dry_run, stack=stack)
    if dry_run:
        render.emit_json(boot.to_dict()) if as_json else click.echo("\n".join(describe(boot)))
        return
    if boot.needs:
        raise UsageError(
            "the recovered policies need, before anything is restored:\n  "
            + "\n  ".join(boot.needs)
        )
    if not yes:
        click.echo("\n".join(describe(boot)))
        click.confirm("restore every system above in place now?", abort=True, err=True)
    report = run_bootstrap(app.ops, boot)
    if as_json:
        render.emit_json(report.to_dict())
    else:
        _print(report, app)
    if not report.passed:
        raise VerificationFailed(f"rebuild {report.dr_id} stopped: a restore failed")


def _print(report: DrReport, app: AppContext) -> None:
    click.echo(f"rebuild {report.dr_id}: {'PASSED' if report.passed else 'FAILED'}")
    for s in report.systems:
        rpo = human_duration(s.rpo_seconds) if s.rpo_seconds is not None else "-"
        click.echo(
            f"  {s.policy:<16} {s.state:<12} {human_duration(s.seconds):>8}  "
            f"recovered to {s.recovery_point or '-'} (RPO {rpo})"
            + (f": {s.error}" if s.error else "")
        )
    click.echo(f"RTO {human_duration(report.rto_seconds)}")
    click.echo(f"report: {report_path(app.ops, report.dr_id, 'md')}")
