"""``backupctl catalog sync``: rebuild the local catalog from the repositories alone."""

from __future__ import annotations

from backupctl.catalog.manifest import scan_manifests
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
        for copy in policy.copies:
            held = scan_manifests(ctx.repository_named(policy, copy.name), policy.name)
            catalog.replace_copies(
                policy.name,
                copy.name,
                {m.backup_id: m.finished_at for m in held},
                {m.backup_id: m for m in held},
            )
            counts[copy.url] = counts.get(copy.url, 0) + len(held)
    return counts
