"""``backupctl policy validate`` and ``backupctl policy schema``."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.errors import PolicyError, PolicyProblem
from backupctl.offline import offline as offline_checks
from backupctl.policy.common import PolicyBase
from backupctl.policy.loader import load_policies, policy_files
from backupctl.policy.schema import policy_json_schema
from backupctl.policy.stack import Stack, load_stacks


@click.group("policy")
def policy_group() -> None:
    """Check policies and print their schema."""


@policy_group.command("validate")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--offline",
    is_flag=True,
    help="Check everything but what only the target host has: secret files, environment "
    "variables, certificates, encryption keys (for CI).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def validate(app: AppContext, path: Path | None, offline: bool, as_json: bool) -> None:
    """Validate policies; every error with file, line and field path (exit 2)."""
    with offline_checks() if offline else nullcontext():
        policies = load_policies(path or app.policies_path)
    stacks = [] if path is not None else _checked_stacks(app, policies, offline)
    if as_json:
        render.emit_json(
            {
                "valid": True,
                "offline": offline,
                "policies": [
                    {"name": p.name, "driver": p.driver, "file": str(p.source)} for p in policies
                ],
                "stacks": [{"name": s.name, "file": str(s.source)} for s in stacks],
            }
        )
        return
    if not policies:
        click.echo(f"no policies found in {path or app.policies_path}")
        return
    for policy in policies:
        click.echo(f"ok  {policy.name} ({policy.driver})  {policy.source}")
    checked = {policy.source for policy in policies}
    for file in policy_files(path or app.policies_path) if offline else ():
        if file not in checked:  # valid but for fields taken from variables unset here
            click.echo(f"ok  {file}  (offline: fields from unset ${{VAR}}s not checked)")
    unchecked = " (offline: secrets, certificates and keys not checked)" if offline else ""
    count = len(policy_files(path or app.policies_path)) if offline else len(policies)
    click.echo(f"{count} policy file(s) valid{unchecked}")
    for stack in stacks:
        waves = " → ".join("+".join(wave) for wave in stack.waves())
        click.echo(f"ok  stack {stack.name}: {waves}  {stack.source}")


def _checked_stacks(app: AppContext, policies: list[PolicyBase], offline: bool) -> list[Stack]:
    """The stack files beside the policies, each naming only policies that exist (offline,
    a policy not loaded for an unset variable is not known: names are not checked)."""
    stacks = load_stacks(app.stacks_path)
    if offline:
        return stacks
    known = {p.name for p in policies}
    problems = [
        PolicyProblem(str(stack.source), None, "policies", f"no policy named {name!r}")
        for stack in stacks
        for name in stack.policies
        if name not in known
    ]
    if problems:
        raise PolicyError(problems)
    return stacks


@policy_group.command("schema")
def schema() -> None:
    """Print the JSON Schema of the policy format."""
    render.emit_json(policy_json_schema())
