"""``backupctl copy [POLICY] [--to NAME]``: complete backups to the policy's other
repositories, each object checked against its manifest, the manifest last."""

from __future__ import annotations

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.operations.copy import CopyResult, copy_policy
from backupctl.units import human_bytes


@click.command("copy")
@click.argument("policy", required=False)
@click.option("--to", "to", metavar="NAME", help="Only to this repository (default: every copy).")
@click.option("--json", "as_json", is_flag=True, help="Print what was copied as JSON.")
@click.pass_obj
def copy(app: AppContext, policy: str | None, to: str | None, as_json: bool) -> None:
    """Copy the backups of POLICY (default: every policy with several repositories) that
    its other repositories lack; a copy killed part-way is never listed there."""
    chosen = [app.policy(policy)] if policy else [p for p in app.policies() if p.copies]
    results: list[CopyResult] = []
    for item in chosen:
        results += copy_policy(app.ops, item, to)
    if as_json:
        render.emit_json({"copies": [r.to_dict() for r in results]})
        return
    if not results:
        click.echo("no policy has a repository to copy to")
    for r in results:
        partial = (
            f", {len(r.removed_partial)} partial copy(ies) removed" if r.removed_partial else ""
        )
        click.echo(
            f"{r.policy} → {r.repository} ({r.url}): {len(r.copied)} copied "
            f"({human_bytes(r.bytes)}), {r.already} already there{partial}, {r.seconds} s"
        )
