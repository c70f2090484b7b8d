"""``backupctl copy``: complete backups of a policy, from the repository they were written
to, into its other repositories (``repositories:``).

Every object is streamed (one chunk in memory), hashed on the way and compared with its
manifest before it is committed at the destination; the manifest goes last, so a copy
killed part-way is never listed there: the next copy removes what it left and starts
that backup again. Shared content-addressed objects (model blobs) already at the
destination are not copied twice.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import structlog

from backupctl.catalog.manifest import (
    MANIFEST,
    SHARED_DIRS,
    STARTED,
    Artifact,
    Manifest,
    backup_listing,
    listed_manifests,
)
from backupctl.drivers.registry import driver_for
from backupctl.errors import NoSpace, UsageError, VerificationFailed
from backupctl.locks import COPY_LANE, lanes_locked
from backupctl.operations.after_backup import guarded
from backupctl.operations.context import Context
from backupctl.pipeline import measure
from backupctl.policy.common import PolicyBase
from backupctl.progress import Advance, ProgressFactory, no_progress
from backupctl.storage import keys
from backupctl.storage.base import ObjectWriter, Repository
from backupctl.storage.encryption import encryption_of
from backupctl.units import human_bytes

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
        known = ", ".join(names)
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
                results.append(_copy_to(ctx, policy.name, name, source, destination, wanted, kinds))
    return results


def _restorable(
    ctx: Context, source: Repository, policy: str, kinds: tuple[str, ...]
) -> list[Manifest]:
    """The restorable backups ``source`` holds, oldest first: their manifests from the
    catalog (no read per backup), read from ``source`` only for one the catalog lacks."""
    listing = backup_listing(source, policy, kinds)
    known = {m.backup_id: m for m in ctx.catalog().list(policy)}
    return [m for m in listed_manifests(source, policy, listing, known) if m.restorable]


def _copy_to(
    ctx: Context,
    policy: str,
    name: str,
    source: Repository,
    destination: Repository,
    wanted: list[Manifest],
    kinds: tuple[str, ...],
) -> CopyResult:
    started = ctx.clock()
    result = CopyResult(policy, name, destination.url)
    listing = backup_listing(destination, policy, kinds)
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
        check_room(destination, manifest)
        written, stored[manifest.backup_id] = copy_backup(
            source, destination, manifest, ctx.progress
        )
        result.bytes += written
        result.copied.append(manifest.backup_id)
        held[manifest.backup_id] = ctx.clock()
        log.info("backup copied", repository=name, backup_id=manifest.backup_id)
    # a backup already recorded keeps its time; one found there gets its finish time
    ctx.catalog().replace_copies(policy, name, held, stored)
    result.seconds = round((ctx.clock() - started).total_seconds(), 1)
    return result


def check_room(destination: Repository, manifest: Manifest) -> None:
    """Refuse to start copying ``manifest`` when the destination's filesystem has not room
    for all of it (its size is known: the manifest's; plus 1% and 1 MiB for encryption's
    tags and the manifest). Raises NoSpace; nothing of that backup is written."""
    free = destination.free_bytes()
    needed = int(manifest.stored_bytes * 1.01) + (1 << 20)
    if free is not None and free < needed:
        raise NoSpace(
            f"not enough space in {destination.url} to copy {manifest.label}: "
            f"{human_bytes(needed)} needed, {human_bytes(free)} free; nothing of it was written"
        )


def copy_backup(
    source: Repository,
    destination: Repository,
    manifest: Manifest,
    progress: ProgressFactory = no_progress,
) -> tuple[int, Manifest]:
    """Copy one backup: a start marker, every object checked against its manifest, then
    the manifest (recording the destination's encryption). Returns the bytes written and
    the manifest as stored there.
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
    with progress(f"copying {manifest.label}", manifest.stored_bytes) as advance:
        for artifact in manifest.artifacts:
            if artifact.key.startswith(shared) and destination.exists(artifact.key):
                advance(artifact.stored_bytes)
                continue  # content-addressed: the same key holds the same bytes
            written += _copy_object(source, destination, artifact, advance)
    copied = manifest.model_copy(update={"encryption": encryption_of(destination)})
    destination.put_bytes(keys.join(prefix, MANIFEST), copied.to_json().encode())
    return written, copied


def _copy_object(
    source: Repository, destination: Repository, artifact: Artifact, advance: Advance
) -> int:
    """Stream one object, checked against its manifest entry before it is committed;
    return its size. Raises VerificationFailed (nothing committed) on a mismatch."""
    writer = destination.open_write(artifact.key, size_hint=artifact.stored_bytes)
    try:
        size, sha256 = measure(_written(source.iter_read(artifact.key), writer), advance)
        if sha256 != artifact.sha256 or size != artifact.stored_bytes:
            raise VerificationFailed(
                f"not copied: {source.url}/{artifact.key} does not match its manifest "
                f"(sha256 {sha256[:16]}…, {size} bytes; the manifest says "
                f"{artifact.sha256[:16]}…, {artifact.stored_bytes}): corrupt at the source"
            )
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    return size


def _written(chunks: Iterator[bytes], writer: ObjectWriter) -> Iterator[bytes]:
    """``chunks``, each written to ``writer`` as it passes."""
    for chunk in chunks:
        writer.write(chunk)
        yield chunk


@dataclass(frozen=True)
class AfterBackupCopy:
    """What copying after a backup did: copied backups per repository, or why not."""

    copied: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None


def copy_after_backup(ctx: Context, policy: PolicyBase) -> AfterBackupCopy:
    """Copy a policy's new backups to its other repositories after one of its backups
    succeeded. Never raises for an expected failure: no copies or ``copy_after_backup:
    false`` or a busy policy (the next backup copies) is skipped, a failed copy is
    returned as ``error`` (the backup itself is stored)."""
    if not policy.copies:
        return AfterBackupCopy(skipped="the policy has one repository")
    if not policy.copy_after_backup:
        return AfterBackupCopy(skipped="copy_after_backup is false")
    results, skipped, error = guarded("copy", policy.name, lambda: copy_policy(ctx, policy))
    if results is None:
        return AfterBackupCopy(skipped=skipped, error=error)
    return AfterBackupCopy(copied={r.repository: len(r.copied) for r in results})
