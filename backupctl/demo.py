"""``backupctl demo``: the whole tour on a throwaway MariaDB and a local repository."""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backupctl.catalog.index import Catalog
from backupctl.catalog.manifest import Manifest
from backupctl.checks import CheckResult
from backupctl.drivers.mariadb import sample_data
from backupctl.drivers.mariadb.instance import MariaDBInstance
from backupctl.jobs import run_backup
from backupctl.policy.loader import load_policies
from backupctl.progress import ProgressFactory, no_progress
from backupctl.storage.factory import open_repository
from backupctl.verify import verify_backup

Say = Callable[[str], None]


@dataclass
class DemoResult:
    workdir: Path
    policy_file: Path
    repository: Path
    manifest: Manifest
    checks: list[CheckResult]


def write_policy(workdir: Path, instance: MariaDBInstance, password_file: Path) -> Path:
    """Write the demo's policy file and return its path."""
    policy_file = workdir / "policies" / "demo-db.yaml"
    policy_file.parent.mkdir(parents=True, exist_ok=True)
    policy_file.write_text(
        textwrap.dedent(f"""\
        version: 1
        name: demo-db
        driver: mariadb
        connection:
          host: 127.0.0.1
          port: {instance.port}
          user: backup
          password_file: {password_file}
        datadir: {instance.datadir}
        repository: file://{workdir / "repository"}
        schedule:
          full: "0 2 * * *"
        retention:
          full: 30d
        objectives:
          rpo: 24h
          rto: 1h
        restore:
          verify:
            - sql: "SELECT COUNT(*) FROM shop.orders"
              expect: "> 0"
        """)
    )
    return policy_file


def run_demo(
    workdir: Path, size_mb: float, say: Say, progress: ProgressFactory = no_progress
) -> DemoResult:
    """Start a throwaway server, fill it, back it up, list and deep-verify the backup.

    The server is stopped before returning; ``workdir`` keeps the repository,
    policy and catalog for the user to look at. Raises BackupctlError subclasses.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    say(f"1. starting a throwaway MariaDB in {workdir / 'mariadb'}")
    with MariaDBInstance.create(workdir / "mariadb") as instance:
        password_file = workdir / "secrets" / "demo-db"
        password_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        password = secrets.token_urlsafe(18)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        instance.create_user("backup", password)
        say(f"2. creating about {size_mb:g} MB of sample data (database `shop`)")
        db = instance.connect()
        try:
            rows = sample_data.generate(db, "shop", size_mb)
        finally:
            db.close()
        say("   " + ", ".join(f"{table}: {count} rows" for table, count in rows.items()))
        policy_file = write_policy(workdir, instance, password_file)
        policy = load_policies(policy_file)[0]
        say(f"3. policy {policy_file} is valid; taking a full backup with mariabackup")
        repo = open_repository(policy.repository)
        catalog = Catalog(workdir / "state" / "catalog.sqlite")
        manifest = run_backup(policy, repo, catalog, workdir / "state", progress=progress)
    say("4. verifying: checksums, then extract + mariabackup --prepare in a scratch directory")
    checks = verify_backup(
        policy, repo, manifest, deep=True, scratch_root=workdir / "scratch", progress=progress
    )
    return DemoResult(workdir, policy_file, workdir / "repository", manifest, checks)
