"""Rebuilding the catalog from the repositories alone: the one home of that concept.

``sync_repository`` makes the catalog's view of a repository exactly its manifests
(``catalog sync``, a new host). ``sync_policy`` brings one policy's entries up to date
cheaply (one listing; only manifests the catalog lacks are read): every backup, prune and
drill starts with it, so a run killed between writing a manifest and recording it, a
prune killed between forgetting a backup and deleting it, or another host's runs are
seen before anything is decided.
"""

from __future__ import annotations

import structlog

from backupctl.catalog.index import Catalog
from backupctl.catalog.manifest import MANIFEST, parse_manifest, scan_manifests
from backupctl.errors import BackupctlError
from backupctl.storage import keys
from backupctl.storage.base import Repository

log = structlog.get_logger()


def sync_repository(catalog: Catalog, repo: Repository) -> int:
    """Make the catalog's view of ``repo`` exactly the manifests in it; return how many.
    Raises RepositoryError / VerificationFailed for an unreadable or unsafe manifest."""
    return catalog.replace_repository(repo.url, scan_manifests(repo))


def sync_policy(catalog: Catalog, repo: Repository, policy: str) -> list[str]:
    """Record the complete backups of ``policy`` that ``repo`` has and the catalog lacks,
    and forget those it lists from ``repo`` whose manifest is gone. Returns the ids
    recorded. An unreadable manifest is logged and skipped (``catalog sync`` reports it)."""
    known = set(catalog.ids(policy, repo.url))
    stored: set[str] = set()
    recorded = []
    for info in repo.list(f"{policy}/"):
        parts = info.key.split("/")
        if len(parts) != 4 or parts[3] != MANIFEST or not keys.BACKUP_ID_RE.match(parts[2]):
            continue
        stored.add(parts[2])
        if parts[2] in known:
            continue
        try:
            manifest = parse_manifest(repo.get_bytes(info.key), f"{repo.url}/{info.key}")
        except BackupctlError as exc:
            log.warning("unreadable manifest in the repository", key=info.key, error=str(exc))
            continue
        catalog.record(manifest, repo.url)
        recorded.append(manifest.backup_id)
        log.warning("recorded a complete backup the catalog lacked", backup_id=parts[2])
    for gone in sorted(known - stored):
        catalog.forget(policy, gone)
        log.warning("forgot a backup whose manifest is gone from the repository", backup_id=gone)
    return recorded
