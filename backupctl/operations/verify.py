"""``backupctl verify``: a stored backup checked against the repository (every object's
size and sha256, the driver's own checks), and with ``--deep`` restored into scratch."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from backupctl.catalog.manifest import Manifest, read_manifest
from backupctl.checks import CheckResult
from backupctl.drivers.registry import driver_for
from backupctl.errors import ObjectNotFound, RepositoryError, VerificationFailed
from backupctl.operations.context import Context
from backupctl.pipeline import measure
from backupctl.policy.common import PolicyBase
from backupctl.progress import ProgressFactory, no_progress
from backupctl.statefile import private_dir
from backupctl.storage.base import Repository


def check_artifacts(
    repo: Repository, manifest: Manifest, progress: ProgressFactory = no_progress
) -> list[CheckResult]:
    """Re-read every stored object; one check per object comparing size and sha256."""
    checks = []
    for artifact in manifest.artifacts:
        name, where = f"checksum {artifact.name}", f"{repo.url}/{artifact.key}"
        try:
            with progress(f"reading {artifact.name}", artifact.stored_bytes) as advance:
                size, sha256 = measure(repo.iter_read(artifact.key), advance)
        except ObjectNotFound:
            checks.append(CheckResult(name, False, f"{where} is missing"))
            continue
        except RepositoryError as exc:
            checks.append(CheckResult(name, False, f"{where} could not be read: {exc}"))
            continue
        if size != artifact.stored_bytes:
            detail = f"{where}: size {size} bytes, manifest says {artifact.stored_bytes}"
            checks.append(CheckResult(name, False, detail))
        elif sha256 != artifact.sha256:
            detail = f"{where}: sha256 {sha256} does not match the manifest's {artifact.sha256}"
            checks.append(CheckResult(name, False, detail))
        else:
            checks.append(CheckResult(name, True, f"{size} bytes, sha256 {sha256[:16]}…"))
    return checks


@dataclass(frozen=True)
class Verification:
    """The checks run on one backup."""

    manifest: Manifest
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def raise_if_failed(self) -> None:
        """Raise VerificationFailed (exit 3) naming every failed check."""
        raise_if_failed(self.manifest, self.checks)


def verify(
    ctx: Context,
    policy: PolicyBase,
    backup_id: str | None = None,
    *,
    deep: bool = False,
    scratch_root: Path | None = None,
) -> Verification:
    """Verify ``backup_id`` of ``policy`` (default: its newest restorable backup of any
    kind); ``deep`` restores it into ``scratch_root`` (default ``STATE_DIR/scratch``).
    Raises NotFoundError for an unknown backup, RepositoryError when the manifest cannot
    be read."""
    driver = driver_for(policy)
    backups = ctx.backups(policy, driver)
    known = backups.find(backup_id) if backup_id else backups.newest_of_any_kind()
    repo = ctx.repository(policy)
    # the repository's manifest is the truth; the catalog only says where to look
    manifest = read_manifest(repo, known.policy, known.kind, known.backup_id)
    scratch = scratch_root or ctx.layout.scratch
    checks = verify_backup(
        policy, repo, manifest, deep=deep, scratch_root=scratch, progress=ctx.progress
    )
    return Verification(manifest, checks)


def verify_backup(
    policy: PolicyBase,
    repo: Repository,
    manifest: Manifest,
    *,
    deep: bool = False,
    scratch_root: Path | None = None,
    progress: ProgressFactory = no_progress,
) -> list[CheckResult]:
    """Return every check run on ``manifest`` and on every backup it depends on (an
    incremental's chain: each link's objects, named by link); deep checks run only if
    every checksum passes."""
    checks = check_artifacts(repo, manifest, progress)
    if manifest.failure is not None:
        checks.append(CheckResult("outcome", False, f"recorded as failed: {manifest.failure}"))
    checks += _check_links(policy, repo, manifest, progress)
    checks += driver_for(policy).verify_quick(repo, manifest)
    if deep and all(c.passed for c in checks):
        if scratch_root is not None:
            private_dir(scratch_root)
        scratch = Path(tempfile.mkdtemp(prefix=f"verify-{manifest.backup_id}-", dir=scratch_root))
        try:
            checks += driver_for(policy).verify_deep(repo, manifest, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return checks


def _check_links(
    policy: PolicyBase, repo: Repository, manifest: Manifest, progress: ProgressFactory
) -> list[CheckResult]:
    """Every object of every backup ``manifest`` depends on, each check named by its link."""
    try:
        links = driver_for(policy).depends_on(repo, manifest)
    except VerificationFailed as exc:
        return [CheckResult("chain", False, str(exc))]
    checks = []
    for link in links:
        checks += [
            CheckResult(f"{link.label}: {c.name}", c.passed, c.detail)
            for c in check_artifacts(repo, link, progress)
        ]
    if links:
        names = " -> ".join(m.backup_id for m in [*links, manifest])
        checks.append(CheckResult("chain", True, f"{len(links) + 1} links: {names}"))
    return checks


def raise_if_failed(manifest: Manifest, checks: list[CheckResult]) -> None:
    """Raise VerificationFailed naming every failed check."""
    failed = [c for c in checks if not c.passed]
    if failed:
        lines = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        raise VerificationFailed(f"backup {manifest.backup_id} failed verification: {lines}")
