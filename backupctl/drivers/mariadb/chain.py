"""Chains of physical backups: a full, then incrementals each holding the InnoDB pages
changed since its parent (``mariabackup --incremental-lsn``).

A restore point is a full or an incremental; restoring an incremental means extracting
and preparing its base full, then applying every incremental of the chain in order. The
chain is read from the repository (each incremental's manifest names its parent), so a
host with nothing but the repository restores it.
"""

from __future__ import annotations

from dataclasses import dataclass

from backupctl.catalog.manifest import Manifest, backup_prefix, read_manifest
from backupctl.drivers.mariadb.details import FullDetails, IncrementalDetails
from backupctl.drivers.mariadb.restored_mark import RestoredMark
from backupctl.errors import BackupctlError, VerificationFailed
from backupctl.storage.base import Repository

FULL_KIND = "full"
INCREMENTAL_KIND = "incremental"
#: the kinds a restore can start from
POINT_KINDS = (FULL_KIND, INCREMENTAL_KIND)
#: a chain longer than this is taken for a loop in tampered manifests
_MAX_LINKS = 10_000


def chain_of(repo: Repository, point: Manifest) -> list[Manifest]:
    """The chain that restores ``point``: its base full first, ``point`` last (a full alone
    for a full). Raises VerificationFailed naming the link that is missing, unreadable or
    not what its child says (another policy's, a loop, not ending in a full)."""
    links = [point]
    seen = {point.backup_id}
    while links[-1].kind == INCREMENTAL_KIND:
        child = links[-1]
        details = IncrementalDetails.of(child)
        if details.parent in seen or len(links) > _MAX_LINKS:
            raise VerificationFailed(
                f"the chain of {point.backup_id} loops at {details.parent} (tampered?)"
            )
        if details.parent_kind not in POINT_KINDS:
            raise VerificationFailed(
                f"incremental {child.backup_id} names a parent of kind "
                f"{details.parent_kind!r}, not a full or an incremental (tampered?)"
            )
        try:
            parent = read_manifest(repo, child.policy, details.parent_kind, details.parent)
        except VerificationFailed:
            raise  # a tampered manifest says so itself
        except BackupctlError as exc:
            raise VerificationFailed(
                f"the chain of {point.backup_id} is broken: its link {details.parent} "
                f"({details.parent_kind}) cannot be read from {repo.url}: {exc}"
            ) from exc
        if not parent.restorable:
            raise VerificationFailed(
                f"the chain of {point.backup_id} is broken: its link {parent.backup_id} "
                f"is recorded as failed ({parent.failure})"
            )
        seen.add(parent.backup_id)
        links.append(parent)
    links.reverse()
    base = links[0]
    if links[-1].kind == INCREMENTAL_KIND:
        wanted = IncrementalDetails.of(links[-1]).base
        if wanted != base.backup_id:
            raise VerificationFailed(
                f"the chain of {point.backup_id} starts from {base.backup_id}, but its "
                f"manifest says {wanted} (tampered?)"
            )
    return links


def catalog_chains(manifests: list[Manifest]) -> list[list[Manifest]]:
    """The chains among ``manifests`` (a policy's, from the catalog: no repository read),
    each from its full to its newest incremental, oldest chain first; a full without
    incrementals is no chain. An incremental whose parent is not among them is left out."""
    by_id = {m.backup_id: m for m in manifests if m.kind in POINT_KINDS}
    children: dict[str, list[Manifest]] = {}
    for m in by_id.values():
        if m.kind == INCREMENTAL_KIND:
            children.setdefault(IncrementalDetails.of(m).parent, []).append(m)
    chains = []
    for m in sorted(by_id.values(), key=lambda m: (m.finished_at, m.backup_id)):
        if m.kind != FULL_KIND or m.backup_id not in children:
            continue
        links = [m]
        while found := children.get(links[-1].backup_id):
            links.append(max(found, key=lambda c: (c.finished_at, c.backup_id)))
        chains.append(links)
    return chains


def object_problem(repo: Repository, link: Manifest) -> str | None:
    """What is wrong with ``link``'s objects in ``repo`` (one listing, no download): an
    object missing or not at its recorded size; None when all are there."""
    prefix = backup_prefix(link.policy, link.kind, link.backup_id)
    sizes = {info.key: info.size for info in repo.list(prefix + "/")}
    for artifact in link.artifacts:
        size = sizes.get(artifact.key)
        if size is None:
            return f"{repo.url}/{artifact.key} is missing"
        if size != artifact.stored_bytes:
            return (
                f"{repo.url}/{artifact.key} is {size} bytes, its manifest says "
                f"{artifact.stored_bytes}"
            )
    return None


@dataclass(frozen=True)
class ServerState:
    """What an incremental's parent must agree with: the server's id and current LSN, and
    the mark of the last restore into its datadir."""

    server_id: int
    lsn: int | None
    restored: RestoredMark | None = None


@dataclass(frozen=True)
class ParentChoice:
    """The backup a new incremental builds on, or why there is none (take a full)."""

    parent: Manifest | None
    reason: str | None = None


def choose_parent(
    repo: Repository,
    points: list[Manifest],
    server: ServerState,
    max_chain: int | None,
) -> ParentChoice:
    """The newest restorable point (``points``: fulls and incrementals, oldest first) an
    incremental of this server can build on, or the reason a full must be taken instead:
    none yet, another server's, one taken before the datadir was restored (its mark), a
    parent ahead of the server's LSN (restored or re-initialised since), a broken chain
    (a manifest or an object missing, or not at its size), or a chain already
    ``max_chain`` links long."""
    if not points:
        return ParentChoice(None, "there is no full backup to build on yet")
    parent = points[-1]
    details = FullDetails.of(parent)
    restored = server.restored
    if restored is not None and restored.restored_at >= parent.started_at:
        return ParentChoice(
            None,
            f"the datadir was restored from {restored.backup_id} (run {restored.run_id}, "
            f"{restored.restored_at:%Y-%m-%d %H:%M:%S} UTC) after the newest backup "
            f"{parent.backup_id} was taken: a chain does not continue across a restore",
        )
    server_id, server_lsn = server.server_id, server.lsn
    if details.server_id != server_id:
        return ParentChoice(
            None,
            f"the newest backup {parent.backup_id} is from server id {details.server_id}, "
            f"this server is {server_id}",
        )
    lsn = details.lsn.to_lsn if details.lsn is not None else None
    last = details.lsn.last_lsn if details.lsn is not None else None
    if lsn is None:
        return ParentChoice(None, f"the newest backup {parent.backup_id} recorded no LSN")
    if server_lsn is not None and (last or lsn) > server_lsn:
        return ParentChoice(
            None,
            f"the server's LSN {server_lsn} is behind the newest backup's {last or lsn}: "
            "it was restored or re-initialised since",
        )
    try:
        links = chain_of(repo, parent)
    except VerificationFailed as exc:
        return ParentChoice(None, str(exc))
    for link in links:
        problem = object_problem(repo, link)
        if problem is not None:
            return ParentChoice(None, f"{link.label} of the chain is broken: {problem}")
    if max_chain is not None and len(links) >= max_chain:
        return ParentChoice(
            None, f"the chain of {links[0].backup_id} has {len(links)} links (max_chain)"
        )
    return ParentChoice(parent)
