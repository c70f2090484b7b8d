"""``backupctl catalog sync``: rebuild the local catalog from the repositories alone."""

from __future__ import annotations

import structlog

from backupctl.catalog.manifest import scan_manifests
from backupctl.catalog.sync import sync_repository
from backupctl.errors import RepositoryError
from backupctl.operations.context import Context
from backupctl.policy.common import PolicyBase

log = structlog.get_logger()


def sync_catalog(
    ctx: Context, policies: list[PolicyBase], *, skip_unreadable: bool = False
) -> dict[str, int]:
    """Make the catalog's view of every repository the policies name exactly its
    manifests. Returns the number of backups per repository URL. Raises RepositoryError,
    unless ``skip_unreadable``: a repository that does not answer (the lost host's local
    one, on a rebuild) is then logged and left out."""
    catalog = ctx.catalog()
    counts: dict[str, int] = {}
    for policy in policies:
        try:
            repo = ctx.repository(policy)
            if repo.url not in counts:
                counts[repo.url] = sync_repository(catalog, repo)
        except RepositoryError as exc:
            if not skip_unreadable:
                raise
            log.warning("repository not read", policy=policy.name, error=str(exc))
        for copy in policy.copies:
            try:
                held = scan_manifests(ctx.repository_named(policy, copy.name), policy.name)
            except RepositoryError as exc:
                if not skip_unreadable:
                    raise
                log.warning("not read", policy=policy.name, repository=copy.name, error=str(exc))
                continue
            catalog.replace_copies(
                policy.name,
                copy.name,
                {m.backup_id: m.finished_at for m in held},
                {m.backup_id: m for m in held},
            )
            counts[copy.url] = counts.get(copy.url, 0) + len(held)
    return counts
