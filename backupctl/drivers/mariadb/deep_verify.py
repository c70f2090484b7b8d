"""``verify --deep`` of a MariaDB backup: its chain extracted and prepared in scratch (the
base, then every incremental applied in order), every table of the manifest there."""

from __future__ import annotations

import shutil
from pathlib import Path

from backupctl.catalog.manifest import Manifest
from backupctl.checks import CheckResult
from backupctl.drivers.mariadb.chain import chain_of
from backupctl.drivers.mariadb.chain_steps import apply_incremental, space_needed
from backupctl.drivers.mariadb.details import FullDetails
from backupctl.drivers.mariadb.extract import extract, prepare
from backupctl.errors import BackupctlError, NoSpace
from backupctl.policy.mariadb import MariaDBPolicy
from backupctl.storage.base import Repository
from backupctl.units import human_bytes


def verify_full(
    policy: MariaDBPolicy, repo: Repository, manifest: Manifest, scratch: Path
) -> list[CheckResult]:
    """Extract and prepare the backup in ``scratch`` (an incremental: its base, then every
    incremental of its chain applied in order); check every table is there."""
    details = FullDetails.of(manifest)  # refused (VerificationFailed) before any work
    checks: list[CheckResult] = []
    target = scratch / "datadir"
    name = "extract"
    try:
        links = chain_of(repo, manifest)
    except BackupctlError as exc:
        return [CheckResult(name, False, str(exc))]
    needed, free = space_needed(links), shutil.disk_usage(scratch).free
    if free < needed:
        raise NoSpace(
            f"not enough space to verify {manifest.label} deeply: {human_bytes(needed)} "
            f"needed unpacked in {scratch.parent}, {human_bytes(free)} free; nothing was "
            "extracted (--scratch-dir chooses another place)"
        )
    try:
        base, *increments = links
        extract(repo, base, target, parallel=policy.backup.parallel)
        checks.append(CheckResult("extract", True, f"mbstream -x {base.backup_id} into {target}"))
        name = "prepare"
        prepare(target, policy.backup.mariabackup, policy.backup.prepare_memory)
        checks.append(CheckResult("prepare", True, "mariabackup --prepare completed OK"))
        for number, link in enumerate(increments, start=1):
            name = f"apply-incremental-{number}"
            side = scratch / f"incremental-{number}"
            apply_incremental(repo, link, target, side, policy.backup)
            checks.append(CheckResult(name, True, f"{link.label} applied (--incremental-dir)"))
    except BackupctlError as exc:
        return [*checks, CheckResult(name, False, str(exc))]
    checks.append(_tables_present(details, target))
    return checks


def _tables_present(details: FullDetails, datadir: Path) -> CheckResult:
    missing = []
    databases = details.databases
    for database in databases:
        for table in database.tables:
            base = datadir / database.name / table.name
            if not base.with_suffix(".frm").exists() and not base.with_suffix(".ibd").exists():
                missing.append(f"{database.name}.{table.name}")
    total = sum(len(d.tables) for d in databases)
    if missing:
        return CheckResult(
            "tables-present", False, f"missing from the backup: {', '.join(missing[:20])}"
        )
    return CheckResult("tables-present", True, f"all {total} tables of the manifest are present")
