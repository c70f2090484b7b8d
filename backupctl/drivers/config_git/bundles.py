"""Each commit's history as an object of the backup: ``history.bundle``, a Git bundle.

Why. The Git directory is on the host's disk; a lost host takes it with it. A bundle is
an ordinary object of the backup, so the generic copy (``backupctl copy``) takes it to
every other repository (an S3 bucket, an encrypted one) with the manifest, checked
against its sha256 like any other, and a restore on a new host rebuilds the history
from the copies alone (``rebuild``).

What. The bundle of a backup holds the commits (and their objects) since the commit of
the backup before it, ``bundle_base`` in its details, recorded by ``bundle_base_backup``:
``git bundle create - ^<bundle_base> refs/heads/<policy>``. The first backup's holds the
whole history, and so does one whose predecessor's commit is no longer in the Git
repository or whose predecessor has no bundle (taken before bundles were stored): the
chain never points at a link that cannot be fetched. Each commit's bundle is small and
the whole chain is about the size of the history, so "kept forever" stays linear.

Stored as Git writes it, not compressed again: a bundle is a pack, whose objects are
already zlib-compressed (and deltified); zstd over it would cost time for a few percent.
The manifest records ``compression: "none"``.
"""

from __future__ import annotations

import hashlib

from backupctl.catalog.manifest import Artifact, Manifest, read_manifest
from backupctl.drivers.config_git.details import ConfigGitDetails
from backupctl.drivers.config_git.gitrepo import GitRepository
from backupctl.errors import ObjectNotFound, VerificationFailed
from backupctl.storage import keys
from backupctl.storage.base import Repository

#: the name (and last key component) of a backup's bundle
BUNDLE = "history.bundle"


def bundle_of(manifest: Manifest) -> Artifact | None:
    """The backup's bundle, None when it has none (taken before bundles were stored)."""
    return next((a for a in manifest.artifacts if a.name == BUNDLE), None)


def builds_on(previous: Manifest | None, previous_commit: str | None) -> Manifest | None:
    """The backup a new bundle starts from: the previous recorded one when its commit is
    still in the Git repository (``previous_commit`` is None otherwise) and it has a
    bundle itself; else None: the new bundle holds the whole history."""
    if previous is None or previous_commit is None or previous.failure is not None:
        return None
    return previous if bundle_of(previous) is not None else None


def store(
    repo: Repository, prefix: str, git: GitRepository, ref: str, base: str | None
) -> Artifact:
    """Stream the bundle of ``ref`` since commit ``base`` (None: everything) into
    ``repo`` under ``prefix``, hashing it on the way; committed only when git succeeded.
    Raises ToolError / RepositoryError (nothing is left in the repository)."""
    key = keys.join(prefix, BUNDLE)
    writer = repo.open_write(key)
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in git.bundle(ref, base):
            digest.update(chunk)
            size += len(chunk)
            writer.write(chunk)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return Artifact(
        name=BUNDLE,
        key=key,
        raw_bytes=size,
        stored_bytes=size,
        sha256=digest.hexdigest(),
        compression="none",
    )


def chain(repo: Repository, manifest: Manifest) -> list[Manifest]:
    """The backups whose bundles rebuild ``manifest``'s commit, oldest first, ending with
    ``manifest``: each link's ``bundle_base_backup``, read from ``repo``, back to the one
    whose bundle holds the whole history.

    Raises VerificationFailed naming the link when one has no bundle, names a backup
    ``repo`` does not hold, or a backup whose commit is not the one recorded."""
    links = [manifest]
    while True:
        link = links[-1]
        details = ConfigGitDetails.of(link)
        if bundle_of(link) is None:
            raise VerificationFailed(
                f"backup {link.backup_id} of {link.policy} has no {BUNDLE} (taken before "
                "backupctl stored bundles): its history is only in the Git repository "
                f"{details.git_dir or ''}".rstrip()
            )
        if details.bundle_base is None:
            return links[::-1]
        base_id = details.bundle_base_backup
        if base_id is None or any(m.backup_id == base_id for m in links):
            raise VerificationFailed(
                f"backup {link.backup_id} of {link.policy}: its bundle starts from commit "
                f"{details.bundle_base[:12]} without a valid backup that recorded it"
            )
        try:
            base = read_manifest(repo, link.policy, link.kind, base_id)
        except ObjectNotFound:
            raise VerificationFailed(
                f"backup {link.backup_id} of {link.policy} builds on backup {base_id}, "
                f"which {repo.url} does not hold: its history cannot be rebuilt"
            ) from None
        if ConfigGitDetails.of(base).commit != details.bundle_base:
            raise VerificationFailed(
                f"backup {link.backup_id} of {link.policy}: backup {base_id} recorded commit "
                f"{ConfigGitDetails.of(base).commit[:12]}, not {details.bundle_base[:12]} "
                "its bundle starts from"
            )
        links.append(base)
