"""``backupctl verify POLICY [BACKUP_ID] [--deep]``."""

from __future__ import annotations

from pathlib import Path

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.operations.verify import verify


@click.command("verify")
@click.argument("policy")
@click.argument("backup_id", required=False)
@click.option("--deep", is_flag=True, help="Also restore into a scratch area and check it.")
@click.option(
    "--scratch-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where --deep restores (default: STATE_DIR/scratch).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_obj
def verify_command(
    app: AppContext,
    policy: str,
    backup_id: str | None,
    deep: bool,
    scratch_dir: Path | None,
    as_json: bool,
) -> None:
    """Check a backup against the repository (exit 3 when it does not match)."""
    chosen = app.policy(policy)
    result = verify(app.ops, chosen, backup_id, deep=deep, scratch_root=scratch_dir)
    if as_json:
        render.emit_json(
            {
                "policy": chosen.name,
                "backup_id": result.manifest.backup_id,
                "passed": result.passed,
                "checks": [c.to_dict() for c in result.checks],
            }
        )
    else:
        click.echo(f"backup {result.manifest.backup_id} of {chosen.name}:")
        render.checks(result.checks)
    result.raise_if_failed()
