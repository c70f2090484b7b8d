"""``backupctl catalog sync``: rebuild the local catalog from the repositories alone."""

from __future__ import annotations

import click

from backupctl.catalog.manifest import scan_manifests
from backupctl.cli import render
from backupctl.cli.context import AppContext


@click.group("catalog")
def catalog_group() -> None:
    """The local catalog (a cache of the repositories' manifests)."""


@catalog_group.command("sync")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def sync(app: AppContext, as_json: bool) -> None:
    """Rebuild the catalog from every repository the policies name."""
    catalog = app.catalog()
    seen: dict[str, int] = {}
    for policy in app.policies():
        repo = app.repository(policy)
        if repo.url in seen:
            continue
        seen[repo.url] = catalog.replace_repository(repo.url, scan_manifests(repo))
    if as_json:
        render.emit_json({"repositories": seen})
        return
    for url, count in seen.items():
        click.echo(f"{url}: {count} backup(s)")


def register(cli: click.Group) -> None:
    cli.add_command(catalog_group)
