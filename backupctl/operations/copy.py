"""``backupctl copy``: complete backups of a policy, from the repository they were written
to, into its other repositories (``repositories:``).

Every object is streamed (one chunk in memory), hashed on the way and compared with its
manifest before it is committed at the destination; the manifest goes last, so a copy
killed part-way is never listed there: the next copy removes what it left and starts
that backup again. Shared content-addressed objects (model blobs) already at the
destination are not copied twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import asdict, dataclass, field

import structlog

from backupctl.catalog.manifest import (
    MANIFEST,
    SHARED_DIRS,
    STARTED,
    Manifest,
    backup_listing,
    read_manifest,
)
from backupctl.drivers.registry import driver_for
from backupctl.errors import BackupctlError, LockHeldError, UsageError, VerificationFailed
from backupctl.locks import COPY_LANE, lanes_locked
from backupctl.operations.context import Context
from backupctl.policy.common import PolicyBase
from backupctl.storage import keys
from backupctl.storage.base import Repository
from backupctl.storage.encryption import encryption_of

log = structlog.get_logger()


@dataclass
class CopyResult:
    """What one copy to one repository did."""

    policy: str
    repository: str
    url: str
    copied: list[str] = field(default_factory=list)
    already: int = 0
    bytes: int = 0
    removed_partial: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def copy_targets(policy: PolicyBase, to: str | None) -> list[str]:
    """The names of the repositories a copy of ``policy`` writes to (``to`` or every
    copy). Raises UsageError for a name the policy does not have."""
    names = [repo.name for repo in policy.copies]
    if not names:
        raise UsageError(
            f"policy {policy.name!r} has one repository: list others under `repositories:` "
            "to copy to them"
        )
    if to is None:
        return names
    if to not in names:
        known = ", ".join(names) or "none: the policy has one repository"
        raise UsageError(f"policy {policy.name!r} has no copy repository {to!r} (copies: {known})")
    return [to]


def copy_policy(ctx: Context, policy: PolicyBase, to: str | None = None) -> list[CopyResult]:
    """Copy every complete, restorable backup of ``policy`` its first repository holds
    and repository ``to`` (default: each copy) lacks, oldest first (a chain's base before
    what builds on it). Raises LockHeldError when another copy (or a prune or restore)
    of the policy runs, VerificationFailed when an object does not match its manifest,
    RepositoryError when a repository fails."""
    targets = copy_targets(policy, to)
    source = ctx.repository(policy)
    kinds = driver_for(policy).kinds
    results = []
    with lanes_locked(ctx.layout, source, policy.name, [COPY_LANE], "copy"):
        wanted = _restorable(ctx, source, policy.name, kinds)
        for name in targets:
            destination = ctx.repository_named(policy, name)
            # across hosts sharing the destination (locally, the lane lock above holds)
            with destination.lock(policy.name, "copy", COPY_LANE):
                results.append(_copy_to(ctx, policy, name, source, destination, wanted))
    return results


def _restorable(
    ctx: Context, source: Repository, policy: str, kinds: tuple[str, ...]
) -> list[Manifest]:
    """The restorable backups ``source`` holds, oldest first: their manifests from the
    catalog (no read per backup), read from ``source`` only for one the catalog lacks."""
    there = backup_listing(source, policy, kinds).complete
    known = {m.backup_id: m for m in ctx.catalog().list(policy) if m.backup_id in there}
    for backup_id, prefix in there.items():
        if backup_id not in known:
            _policy, kind, _id = prefix.split("/")
            known[backup_id] = read_manifest(source, policy, kind, backup_id)
    return sorted(
        (m for m in known.values() if m.restorable), key=lambda m: (m.finished_at, m.backup_id)
    )


def _copy_to(
    ctx: Context,
    policy: PolicyBase,
    name: str,
    source: Repository,
    destination: Repository,
    wanted: list[Manifest],
) -> CopyResult:
    started = ctx.clock()
    result = CopyResult(policy.name, name, destination.url)
    listing = backup_listing(destination, policy.name, driver_for(policy).kinds)
    # what a copy killed part-way left: objects of a backup whose manifest never came
    for prefix in listing.incomplete:
        destination.delete_prefix(prefix)
        result.removed_partial.append(prefix)
        log.info("removed a partial copy", repository=name, prefix=prefix)
    finished = {m.backup_id: m.finished_at for m in wanted}
    held = {bid: finished.get(bid, started) for bid in listing.complete}
    stored: dict[str, Manifest] = {}  # what was copied now: its manifest, for prune
    for manifest in wanted:
        if manifest.backup_id in held:
            result.already += 1
            continue
        result.bytes += copy_backup(source, destination, manifest)
        result.copied.append(manifest.backup_id)
        held[manifest.backup_id] = ctx.clock()
        stored[manifest.backup_id] = manifest.model_copy(
            update={"encryption": encryption_of(destination)}
        )
        log.info("backup copied", repository=name, backup_id=manifest.backup_id)
    # a backup already recorded keeps its time; one found there gets its finish time
    ctx.catalog().replace_copies(policy.name, name, held, stored)
    result.seconds = round((ctx.clock() - started).total_seconds(), 1)
    return result


def copy_backup(source: Repository, destination: Repository, manifest: Manifest) -> int:
    """Copy one backup: a start marker, every object checked against its manifest, then
    the manifest (recording the destination's encryption). Returns the bytes written.
    Raises VerificationFailed (nothing listed at the destination) when an object read
    from ``source`` does not match."""
    prefix = manifest.prefix
    marker = {
        "backup_id": manifest.backup_id,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "copy_of": source.url,
    }
    destination.put_bytes(keys.join(prefix, STARTED), json.dumps(marker).encode())
    written = 0
    shared = tuple(keys.join(manifest.policy, d) + "/" for d in SHARED_DIRS)
    for artifact in manifest.artifacts:
        if artifact.key.startswith(shared) and destination.exists(artifact.key):
            continue  # content-addressed: the same key holds the same bytes
        digest, size = hashlib.sha256(), 0
        writer = destination.open_write(artifact.key, size_hint=artifact.stored_bytes)
        try:
            for chunk in source.iter_read(artifact.key):
                digest.update(chunk)
                size += len(chunk)
                writer.write(chunk)
            if digest.hexdigest() != artifact.sha256 or size != artifact.stored_bytes:
                raise VerificationFailed(
                    f"not copied: {source.url}/{artifact.key} does not match its manifest "
                    f"(sha256 {digest.hexdigest()[:16]}…, {size} bytes; the manifest says "
                    f"{artifact.sha256[:16]}…, {artifact.stored_bytes}): corrupt at the source"
                )
        except BaseException:
            writer.abort()
            raise
        writer.commit()
        written += size
    copied = manifest.model_copy(update={"encryption": encryption_of(destination)})
    destination.put_bytes(keys.join(prefix, MANIFEST), copied.to_json().encode())
    return written


@dataclass(frozen=True)
class AfterBackupCopy:
    """What copying after a backup did: copied backups per repository, or why not."""

    copied: dict[str, int] = field(default_factory=dict)
    skipped: str = ""
    error: str = ""


def copy_after_backup(ctx: Context, policy: PolicyBase) -> AfterBackupCopy:
    """Copy a policy's new backups to its other repositories after one of its backups
    succeeded. Never raises for an expected failure: no copies or ``copy_after_backup:
    false`` or a busy policy (the next backup copies) is skipped, a failed copy is
    returned as ``error`` (the backup itself is stored)."""
    if not policy.copies:
        return AfterBackupCopy(skipped="the policy has one repository")
    if not policy.copy_after_backup:
        return AfterBackupCopy(skipped="copy_after_backup is false")
    try:
        results = copy_policy(ctx, policy)
    except LockHeldError as exc:
        log.warning("copy skipped: the policy is busy", policy=policy.name, reason=str(exc))
        return AfterBackupCopy(skipped=str(exc))
    except BackupctlError as exc:
        log.error("copy after the backup failed", policy=policy.name, error=str(exc))
        return AfterBackupCopy(error=str(exc))
    except Exception as exc:  # a bug in copy must not hide that the backup is stored
        log.exception("copy failed with an internal error", policy=policy.name)
        return AfterBackupCopy(error=f"internal error: {type(exc).__name__}: {exc}")
    return AfterBackupCopy(copied={r.repository: len(r.copied) for r in results})
