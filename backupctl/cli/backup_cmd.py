"""``backupctl backup POLICY``."""

from __future__ import annotations

import json

import click

from backupctl.catalog.manifest import Manifest
from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.drivers.registry import driver_class
from backupctl.errors import BackupctlError, NothingChanged
from backupctl.operations.backup import run_backup
from backupctl.operations.copy import AfterBackupCopy, copy_after_backup
from backupctl.operations.prune import AfterBackup, prune_after_backup
from backupctl.units import human_bytes


@click.command("backup")
@click.argument("policy")
@click.option(
    "--type",
    "kind",
    default=None,
    help="Backup type (mariadb: full|incremental|binlog; default: the driver's main one).",
)
@click.option(
    "--no-fallback",
    is_flag=True,
    help="Fail rather than take another type (an incremental with nothing sound to build "
    "on is otherwise taken as a full, saying why).",
)
@click.option(
    "--no-prune",
    is_flag=True,
    help="Do not apply the policy's retention after the backup (it does by default, "
    "unless the policy says prune_after_backup: false).",
)
@click.option(
    "--no-copy",
    is_flag=True,
    help="Do not copy the backup to the policy's other repositories (it does by default, "
    "before retention, unless the policy says copy_after_backup: false).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_obj
def backup(
    app: AppContext,
    policy: str,
    kind: str | None,
    no_fallback: bool,
    no_prune: bool,
    no_copy: bool,
    as_json: bool,
) -> None:
    """Run one backup of POLICY now, copy it to the policy's other repositories, then
    apply its retention.

    Exits 75 without doing anything when another run of the policy holds its lock.
    """
    chosen = app.policy(policy)
    try:
        manifest = run_backup(app.ops, chosen, kind, fallback=not no_fallback)
    except NothingChanged as exc:
        if as_json:
            render.emit_json({"policy": chosen.name, "changed": False, "reason": str(exc)})
        else:
            click.echo(f"{chosen.name}: {exc}; nothing stored")
        return
    copied = AfterBackupCopy(skipped="--no-copy") if no_copy else copy_after_backup(app.ops, chosen)
    after = AfterBackup(skipped="--no-prune") if no_prune else prune_after_backup(app.ops, chosen)
    if as_json:
        render.emit_json(json.loads(manifest.to_json()))
    else:
        _describe(manifest, chosen.repository.url, after)
        for name, count in copied.copied.items():
            click.echo(f"  copied to {name}: {count} backup(s)")
    if copied.error:
        raise BackupctlError(
            f"backup {manifest.backup_id} is stored, but copying it to the other "
            f"repositories of {chosen.name} failed: {copied.error}"
        )
    if after.error is not None:
        raise BackupctlError(
            f"backup {manifest.backup_id} is stored, but applying the retention of "
            f"{chosen.name} failed: {after.error}"
        )


def _describe(manifest: Manifest, url: str, after: AfterBackup) -> None:
    seconds = (manifest.finished_at - manifest.started_at).total_seconds()
    click.echo(
        f"backup {manifest.backup_id} of {manifest.policy} complete: "
        f"{human_bytes(manifest.raw_bytes)} -> {human_bytes(manifest.stored_bytes)} "
        f"stored in {seconds:.1f}s ({url})"
    )
    if note := driver_class(manifest.driver).note(manifest):
        click.echo(f"  {note}")
    if after.pruned:
        click.echo(f"  retention: {after.pruned} older backup(s) pruned")
