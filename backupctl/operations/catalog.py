"""``backupctl catalog sync``: rebuild the local catalog from the repositories alone."""

from __future__ import annotations

from backupctl.catalog.sync import sync_repository
from backupctl.operations.context import Context
from backupctl.policy.common import PolicyBase


def sync_catalog(ctx: Context, policies: list[PolicyBase]) -> dict[str, int]:
    """Make the catalog's view of every repository the policies name exactly its
    manifests. Returns the number of backups per repository URL."""
    catalog = ctx.catalog()
    counts: dict[str, int] = {}
    for policy in policies:
        repo = ctx.repository(policy)
        if repo.url not in counts:
            counts[repo.url] = sync_repository(catalog, repo)
    return counts
