"""Where a restore reads a policy's backups from: one repository the operator named
(``--from``), or all of them as one (``storage.mirror``), best first.

With copies, the backups a restore can choose from are those of every repository: a
backup pruned from the first (local, kept 7 days) and still held by an off-site copy
(kept 30) is restorable. The first repository's are in the catalog's ``backups`` table,
each copy's in its ``copies`` table (with their manifests).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from backupctl.catalog.manifest import MANIFEST, Manifest
from backupctl.catalog.query import PolicyBackups, RecoveryModel
from backupctl.errors import RepositoryError
from backupctl.operations.context import Context
from backupctl.policy.common import PolicyBase
from backupctl.storage import keys
from backupctl.storage.base import Repository
from backupctl.storage.mirror import Expected, MirroredRepository, Probe, Source

log = structlog.get_logger()


@dataclass
class Reading:
    """The repository a restore reads (a mirror of every repository, or the one named),
    the backups it can choose from, and how each repository answered its probe."""

    repo: Repository
    backups: PolicyBackups
    named: str | None = None
    probes: list[Probe] | None = None

    @property
    def mirror(self) -> MirroredRepository | None:
        return self.repo if isinstance(self.repo, MirroredRepository) else None

    def order(self) -> list[str]:
        """The repositories in the order they are read from."""
        if self.mirror is not None:
            return self.mirror.names
        return [self.named] if self.named else []


def held_backups(
    ctx: Context, policy: PolicyBase, model: RecoveryModel, names: list[str]
) -> PolicyBackups:
    """The backups repositories ``names`` of ``policy`` hold, as the catalog knows them
    (one held by several counts once: the first repository's manifest wins)."""
    first = ctx.backups(policy, model)
    if names == [policy.repository_names[0]]:
        return first
    catalog = ctx.catalog()
    found: dict[str, Manifest] = {}
    for name in names:
        if name == policy.repository_names[0]:
            held = {m.backup_id: m for m in first.all}
        else:
            held = catalog.copy_manifests(policy.name, name)
        for backup_id, manifest in held.items():
            found.setdefault(backup_id, manifest)
    return PolicyBackups(policy.name, list(found.values()), model, first.last_unchanged)


def reading(
    ctx: Context, policy: PolicyBase, model: RecoveryModel, named: str | None = None
) -> Reading:
    """How a restore of ``policy`` reads: from repository ``named`` alone, or (a policy
    with copies) from all of them, best first once ``rank`` has seen the backup. Raises
    UsageError for an unknown name, RepositoryError when no repository opens."""
    if named is not None:
        repo = ctx.repository_named(policy, named)
        return Reading(repo, held_backups(ctx, policy, model, [named]), named)
    if not policy.copies:
        return Reading(ctx.repository(policy), ctx.backups(policy, model))
    sources, failures = [], []
    for name in policy.repository_names:
        try:
            sources.append(Source(name, ctx.repository_named(policy, name)))
        except RepositoryError as exc:  # e.g. a key file this host lost: the others serve
            failures.append(f"{name}: {exc}")
            log.warning("repository not opened", repository=name, error=str(exc))
    if not sources:
        opened = "; ".join(failures)
        raise RepositoryError(f"no repository of policy {policy.name!r} opens: {opened}")
    backups = held_backups(ctx, policy, model, [s.name for s in sources])
    expected = {
        artifact.key: Expected(artifact.stored_bytes, artifact.sha256)
        for manifest in backups.all
        for artifact in manifest.artifacts
    }
    return Reading(MirroredRepository(sources, expected), backups)


def rank(read: Reading, chain: list[Manifest]) -> Reading:
    """``read`` with its repositories ordered for restoring ``chain`` (the backup and what
    it builds on): reachable first, then those holding any of its objects, then the
    fastest to list them."""
    mirror = read.mirror
    if mirror is None:
        return read
    prefixes = [m.prefix + "/" for m in chain]
    manifests = [keys.join(m.prefix, MANIFEST) for m in chain]
    ranked, probes = MirroredRepository.ranked(mirror.sources, mirror.expected, prefixes, manifests)
    log.info("repositories ranked", order=ranked.names)
    return Reading(ranked, read.backups, read.named, probes)
