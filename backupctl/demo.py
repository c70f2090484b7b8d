"""``backupctl demo``: the whole tour on a throwaway MariaDB and a local repository."""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backupctl.catalog.index import Catalog
from backupctl.catalog.manifest import Manifest
from backupctl.checks import CheckResult
from backupctl.drivers.mariadb import sample_data
from backupctl.drivers.mariadb.instance import MariaDBInstance, checksum_tables
from backupctl.jobs import run_backup
from backupctl.policy.loader import load_policies
from backupctl.progress import ProgressFactory, no_progress
from backupctl.restore import execute, plan_restore
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
    restore_report: dict[str, Any]


def write_policy(workdir: Path, instance: MariaDBInstance, password_file: Path) -> Path:
    """Write the demo's policy file (with hooks that stop and start the server); return it."""
    stop, start = instance.write_service_hooks(workdir / "hooks")
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
          stop: ["{stop}"]
          start: ["{start}"]
          verify:
            - sql: "SELECT COUNT(*) FROM shop.orders"
              expect: "> 0"
        """)
    )
    return policy_file


def run_demo(
    workdir: Path, size_mb: float, say: Say, progress: ProgressFactory = no_progress
) -> DemoResult:
    """Start a throwaway server, fill it, back it up, deep-verify the backup, wreck the
    database and restore it in place.

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
        say("4. verifying: checksums, then extract + mariabackup --prepare in scratch")
        checks = verify_backup(
            policy,
            repo,
            manifest,
            deep=True,
            scratch_root=workdir / "scratch",
            progress=progress,
        )
        before = _checksums(instance)
        say("5. wrecking the database: DROP TABLE shop.order_items, DELETE half of shop.orders")
        _wreck(instance)
        say("6. restoring in place: stop, move aside, extract, prepare, verify, start")
        plan = plan_restore(policy, repo, manifest, workdir / "state", progress=progress)
        report = execute(plan, policy, workdir / "state")
        after = _checksums(instance)
        same = after == before
        say(
            f"7. after the restore, {len(after)} table checksums "
            + ("equal those at backup time" if same else "DIFFER from those at backup time")
        )
        report["checksums_match_backup"] = same
    return DemoResult(workdir, policy_file, workdir / "repository", manifest, checks, report)


def _checksums(instance: MariaDBInstance) -> dict[str, int | None]:
    db = instance.connect()
    try:
        return checksum_tables(db)
    finally:
        db.close()


def _wreck(instance: MariaDBInstance) -> None:
    db = instance.connect()
    try:
        with db.cursor() as cur:
            cur.execute("DROP TABLE shop.order_items")
            cur.execute("DELETE FROM shop.orders WHERE id % 2 = 0")
    finally:
        db.close()
