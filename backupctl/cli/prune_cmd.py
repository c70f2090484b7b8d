"""``backupctl prune [POLICY] [--dry-run]``: apply retention, saying why for each backup."""

from __future__ import annotations

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.operations.prune import PruneResult, prune_policy


@click.command("prune")
@click.argument("policy", required=False)
@click.option("--dry-run", is_flag=True, help="Say what would go, delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print every decision as JSON.")
@click.pass_obj
def prune(app: AppContext, policy: str | None, dry_run: bool, as_json: bool) -> None:
    """Apply retention to POLICY (default: every policy), with the reason for each backup."""
    chosen = [app.policy(policy)] if policy else app.policies()
    results: list[PruneResult] = []
    for item in chosen:
        results += prune_policy(app.ops, item, dry_run)
    if as_json:
        render.emit_json({"dry_run": dry_run, "decisions": [r.to_dict() for r in results]})
        return
    verb = "would delete" if dry_run else "deleted"
    for r in results:
        action = "keep" if r.keep else verb
        where = f" in {r.repository}" if r.repository else ""
        click.echo(f"{r.policy} {r.backup_id} ({r.kind}){where}: {action}: {r.reason}")
        if r.done:
            click.echo(f"    {r.done}")
    gone = sum(1 for r in results if not r.keep)
    click.echo(f"{gone} backup(s) {verb}, {len(results) - gone} kept")
