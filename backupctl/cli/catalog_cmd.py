"""``backupctl catalog sync``: rebuild the local catalog from the repositories alone."""

from __future__ import annotations

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.operations.catalog import sync_catalog


@click.group("catalog")
def catalog_group() -> None:
    """The local catalog (a cache of the repositories' manifests)."""


@catalog_group.command("sync")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def sync(app: AppContext, as_json: bool) -> None:
    """Rebuild the catalog from every repository the policies name."""
    counts = sync_catalog(app.ops, app.policies())
    if as_json:
        render.emit_json({"repositories": counts})
        return
    for url, count in counts.items():
        click.echo(f"{url}: {count} backup(s)")
