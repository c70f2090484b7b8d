"""``backupctl backup POLICY``."""

from __future__ import annotations

import json

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.jobs import run_backup


@click.command("backup")
@click.argument("policy")
@click.option("--type", "kind", default=None, help="Backup type (mariadb: full|binlog).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_obj
def backup(app: AppContext, policy: str, kind: str | None, as_json: bool) -> None:
    """Run one backup of POLICY now."""
    chosen = app.policy(policy)
    manifest = run_backup(
        chosen,
        app.repository(chosen),
        app.catalog(),
        app.state_dir,
        kind=kind,
        progress=app.progress,
    )
    if as_json:
        click.echo(json.dumps(json.loads(manifest.to_json()), indent=2, sort_keys=True))
        return
    seconds = (manifest.finished_at - manifest.started_at).total_seconds()
    click.echo(
        f"backup {manifest.backup_id} of {manifest.policy} complete: "
        f"{render.human_bytes(manifest.raw_bytes)} -> {render.human_bytes(manifest.stored_bytes)} "
        f"stored in {seconds:.1f}s ({chosen.repository.url})"
    )


def register(cli: click.Group) -> None:
    cli.add_command(backup)
