"""``backupctl verify POLICY [BACKUP_ID] [--deep]``."""

from __future__ import annotations

from pathlib import Path

import click

from backupctl.catalog.manifest import read_manifest
from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.verify import raise_if_failed, verify_backup


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
def verify(
    app: AppContext,
    policy: str,
    backup_id: str | None,
    deep: bool,
    scratch_dir: Path | None,
    as_json: bool,
) -> None:
    """Check a backup against the repository (exit 3 when it does not match)."""
    chosen = app.policy(policy)
    repo = app.repository(chosen)
    known = app.catalog().get(chosen.name, backup_id)
    # the repository's manifest is the truth; the catalog only says where to look
    manifest = read_manifest(repo, known.policy, known.kind, known.backup_id)
    checks = verify_backup(
        chosen,
        repo,
        manifest,
        deep=deep,
        scratch_root=scratch_dir or app.state_dir / "scratch",
        progress=app.progress,
    )
    passed = all(c.passed for c in checks)
    if as_json:
        render.emit_json(
            {
                "policy": chosen.name,
                "backup_id": manifest.backup_id,
                "passed": passed,
                "checks": [c.to_dict() for c in checks],
            }
        )
    else:
        click.echo(f"backup {manifest.backup_id} of {chosen.name}:")
        render.checks(checks)
    raise_if_failed(manifest, checks)


def register(cli: click.Group) -> None:
    cli.add_command(verify)
