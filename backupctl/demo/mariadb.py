"""``backupctl demo``: the whole tour on a throwaway MariaDB and a local repository."""

from __future__ import annotations

import secrets
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from backupctl.catalog.manifest import Manifest
from backupctl.checks import CheckResult
from backupctl.demo import sample_data
from backupctl.demo.server import ThrowawayServer, checksum_tables
from backupctl.layout import StateLayout
from backupctl.operations.backup import run_backup
from backupctl.operations.context import Context
from backupctl.operations.restore import plan_restore, run_restore
from backupctl.operations.verify import verify_backup
from backupctl.policy.loader import load_policies
from backupctl.policy.mariadb import MariaDBRestoreOptions
from backupctl.progress import ProgressFactory, no_progress
from backupctl.runbook.report import RestoreReport
from backupctl.timefmt import utc_and_local
from backupctl.units import human_bytes

Say = Callable[[str], None]


@dataclass
class DemoResult:
    workdir: Path
    policy_file: Path
    repository: Path
    manifest: Manifest
    #: the incremental taken on top of ``manifest``, which the restore starts from
    incremental: Manifest
    checks: list[CheckResult]
    restore_report: RestoreReport
    #: the restored tables equal those just before the accident
    restored_matches: bool


def write_policy(workdir: Path, instance: ThrowawayServer, password_file: Path) -> Path:
    """Write the demo's policy file (with hooks that stop and start the server, named
    relative to it: beside ``policies/``, wherever a rebuild puts both); return it."""
    instance.write_service_hooks(workdir / "hooks")
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
          full: "0 2 * * 0"
          incremental: "0 2 * * 1-6"
        retention:
          full: 30d
          incremental: 30d
        objectives:
          rpo: 24h
          rto: 1h
        restore:
          stop: ["hooks/stop.sh"]
          start: ["hooks/start.sh"]
          verify:
            - sql: "SELECT COUNT(*) FROM shop.orders"
              expect: "> 0"
        """)
    )
    return policy_file


def run_demo(
    workdir: Path, size_mb: float, say: Say, progress: ProgressFactory = no_progress
) -> DemoResult:
    """Start a throwaway server, fill it, back it up, deep-verify the backup, write more,
    take an incremental, wreck the database, and restore it in place from the chain (the
    full, then the incremental) to just before the accident (PITR).

    The server is stopped before returning; ``workdir`` keeps the repository,
    policy and catalog for the user to look at. Raises BackupctlError subclasses.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    say(f"1. starting a throwaway MariaDB in {workdir / 'mariadb'}")
    with ThrowawayServer.create(workdir / "mariadb") as instance:
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
        ctx = Context(StateLayout(workdir / "state"), progress=progress)
        instance.checkpoint()  # its to_lsn is where the incremental starts (see step 5)
        manifest = run_backup(ctx, policy)
        say("4. verifying: checksums, then extract + mariabackup --prepare in scratch")
        checks = verify_backup(
            policy,
            ctx.repository(policy),
            manifest,
            deep=True,
            scratch_root=workdir / "scratch",
            progress=progress,
        )
        say(
            "5. business goes on after the backup: 25 new orders; taking an incremental "
            "backup (only the pages changed since the full)"
        )
        _new_orders(instance, 25)
        instance.checkpoint()  # as a server in service does: the incremental stays small
        incremental = run_backup(ctx, policy, "incremental")
        say(
            f"   incremental {incremental.backup_id}: {human_bytes(incremental.stored_bytes)} "
            f"stored, on full {manifest.backup_id} ({human_bytes(manifest.stored_bytes)})"
        )
        before = _checksums(instance)
        moment = _accident(instance)
        say(
            f"6. at {utc_and_local(moment)} an accident: DROP TABLE shop.order_items and "
            "DELETE of half of shop.orders; shipping the binlogs (backup --type binlog)"
        )
        run_backup(ctx, policy, "binlog")
        say(
            "7. restoring in place to just before the accident from the chain: extract and "
            "prepare the full, apply the incremental, then stop, move aside, move into "
            "place, replay binlogs, verify, start"
        )
        options = MariaDBRestoreOptions(to_time=moment)
        report = run_restore(ctx, plan_restore(ctx, policy, options))
        after = _checksums(instance)
        same = after == before
        say(
            f"8. after the restore, {len(after)} table checksums "
            + (
                "equal those just before the accident (the 25 new orders included)"
                if same
                else "DIFFER from those just before the accident"
            )
            + "; a full backup of the repaired server"
        )
        _analyze(instance)  # as after any restore: statistics the backup records fresh
        instance.checkpoint()
        run_backup(ctx, policy)
    return DemoResult(
        workdir, policy_file, workdir / "repository", manifest, incremental, checks, report, same
    )


def _analyze(instance: ThrowawayServer) -> None:
    """ANALYZE every table of ``shop``: a replayed PITR leaves InnoDB's row estimates
    where the full backup had them, and a backup records those estimates."""
    db = instance.connect()
    try:
        with db.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema='shop'"
            )
            for (table,) in cur.fetchall():
                cur.execute(f"ANALYZE TABLE shop.`{table}`")
                cur.fetchall()
    finally:
        db.close()


def _checksums(instance: ThrowawayServer) -> dict[str, int | None]:
    db = instance.connect()
    try:
        return checksum_tables(db)
    finally:
        db.close()


def _new_orders(instance: ThrowawayServer, count: int) -> None:
    db = instance.connect()
    try:
        with db.cursor() as cur:
            cur.execute(
                "INSERT INTO shop.orders (id, customer_id, status, total, created_at,"
                " shipping_address) SELECT (SELECT MAX(id) FROM shop.orders) + seq, 1, 'new',"
                f" 9.99 * seq, NOW(), 'after the backup' FROM shop.seq_1_to_{count}"
            )
    finally:
        db.close()


def _accident(instance: ThrowawayServer) -> datetime:
    """Wreck the database a moment after now; return that moment (whole seconds, as binlog
    event times are, with a second of quiet on either side)."""
    time.sleep(1.1)
    moment = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.1)
    db = instance.connect()
    try:
        with db.cursor() as cur:
            cur.execute("DROP TABLE shop.order_items")
            cur.execute("DELETE FROM shop.orders WHERE id % 2 = 0")
    finally:
        db.close()
    return moment
