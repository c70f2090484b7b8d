"""``backupctl policy validate`` and ``backupctl policy schema``."""

from __future__ import annotations

from pathlib import Path

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.policy.loader import load_policies
from backupctl.policy.schema import policy_json_schema


@click.group("policy")
def policy_group() -> None:
    """Check policies and print their schema."""


@policy_group.command("validate")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def validate(app: AppContext, path: Path | None, as_json: bool) -> None:
    """Validate policies; every error with file, line and field path (exit 2)."""
    policies = load_policies(path or app.policies_path)
    if as_json:
        render.emit_json(
            {
                "valid": True,
                "policies": [
                    {"name": p.name, "driver": p.driver, "file": str(p.source)} for p in policies
                ],
            }
        )
        return
    if not policies:
        click.echo(f"no policies found in {path or app.policies_path}")
        return
    for policy in policies:
        click.echo(f"ok  {policy.name} ({policy.driver})  {policy.source}")
    click.echo(f"{len(policies)} policy file(s) valid")


@policy_group.command("schema")
def schema() -> None:
    """Print the JSON Schema of the policy format."""
    render.emit_json(policy_json_schema())
