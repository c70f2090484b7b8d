"""Restore steps around the server: hooks, the private recovery instance, checks, health."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import time
from datetime import timedelta
from pathlib import Path

import pymysql

from backupctl.catalog.manifest import Manifest
from backupctl.drivers.mariadb import connection
from backupctl.drivers.mariadb.instance import MariaDBInstance
from backupctl.drivers.mariadb.verification import describe, verify_restored
from backupctl.errors import BackupctlError, UsageError, VerificationFailed
from backupctl.policy.mariadb import MariaDBPolicy, VerifyLevel
from backupctl.runbook.step import RunContext, Step
from backupctl.statefile import private_dir


def _instance(
    datadir: Path,
    run_dir: Path,
    owner: dict[str, int] | None,
    policy: MariaDBPolicy,
    strict_gtid: bool = False,
    log_replay: bool = False,
) -> MariaDBInstance:
    run_as = None
    if owner and owner["uid"] != 0:
        run_as = pwd.getpwuid(owner["uid"]).pw_name
    private_dir(run_dir)
    info = run_dir.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (os.geteuid(), owner and owner["uid"]):
        raise UsageError(f"{run_dir} exists and is not ours: refusing to use it")
    # a replay goes to a private binlog: its GTID position then says where the replay
    # really ended (checked against the target), and under gtid_strict_mode the server
    # checks the transactions' order as the source did. Small files: the replay purges
    # all but the current one as it goes. Without a replay, binlogging would only cost time
    # A transaction's events stay in memory up to 128 MiB instead of spilling to a temp
    # file at 32 KiB, and row images are minimal: the private binlog then costs about 5 %
    # of the replay's time instead of 25 % (bench/bench_replay.py). InnoDB keeps flushing
    # at each commit: with innodb_flush_log_at_trx_commit=2 the binlog checkpoint lags
    # and the replay's purges would leave the files it has to drop
    binlog = [
        f"--log-bin={run_dir}/replay-bin",
        "--max-binlog-size=64M",
        "--binlog-cache-size=128M",
        "--binlog-row-image=minimal",
    ]
    if strict_gtid:
        binlog.append("--gtid-strict-mode=ON")
    return MariaDBInstance.for_datadir(
        datadir,
        run_dir,
        networking=False,
        binlog=False,
        run_as=run_as,
        buffer_pool=policy.restore.recovery_buffer_pool,
        # private socket in a 0700 directory, no network: nobody else can reach it
        extra_args=[
            "--skip-grant-tables",
            "--skip-slave-start",
            *(binlog if strict_gtid or log_replay else ["--skip-log-bin"]),
        ],
    )


class StartRecoveryInstance(Step):
    """Start the private instance. ``strict_gtid_from``: replay under gtid_strict_mode,
    the instance's binlog state starting at this GTID position (the full backup's);
    ``log_replay``: binlogs are replayed into it (it keeps a private binlog)."""

    name = "start-recovery-instance"

    def __init__(
        self,
        datadir: Path,
        run_dir: Path,
        policy: MariaDBPolicy,
        strict_gtid_from: str | None = None,
        log_replay: bool = False,
    ):
        self.datadir, self.run_dir, self.policy = datadir, run_dir, policy
        self.strict_gtid_from = strict_gtid_from
        self.log_replay = log_replay or strict_gtid_from is not None

    def describe(self, ctx: RunContext) -> str:
        strict = ""
        if self.strict_gtid_from is not None:
            strict = f", gtid_strict_mode=ON from GTID {self.strict_gtid_from or '(none)'}"
        return (
            f"start a private mariadbd on {self.datadir} "
            f"(no network, socket in {self.run_dir}{strict})"
        )

    def run(self, ctx: RunContext) -> str:
        strict = self.strict_gtid_from is not None
        instance = _instance(
            self.datadir, self.run_dir, ctx.get("owner"), self.policy, strict, self.log_replay
        )
        instance.stop()  # a resumed run may find the instance a killed run started
        instance.start(timeout=600)
        if not self.log_replay:
            return f"recovery instance up on {instance.socket}"
        db = instance.connect()
        try:
            with db.cursor() as cur:
                cur.execute("RESET MASTER")
                if self.strict_gtid_from:
                    cur.execute("SET GLOBAL gtid_binlog_state = %s", (self.strict_gtid_from,))
        finally:
            db.close()
        if not strict:
            return f"recovery instance up on {instance.socket}, replay binlogged privately"
        return f"recovery instance up on {instance.socket}, gtid_strict_mode=ON"

    def compensate(self, ctx: RunContext) -> str:
        if self.datadir.exists() and self.run_dir.exists():
            _instance(self.datadir, self.run_dir, ctx.get("owner"), self.policy).stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        return "recovery instance stopped"


class VerifyRestored(Step):
    name = "verify"

    def __init__(
        self,
        datadir: Path,
        run_dir: Path,
        manifest: Manifest,
        policy: MariaDBPolicy,
        level: VerifyLevel,
        replayed: bool = False,
        data_bytes: int | None = None,
    ):
        self.datadir, self.run_dir, self.manifest, self.policy = datadir, run_dir, manifest, policy
        self.level, self.replayed, self.data_bytes = level, replayed, data_bytes

    def work_bytes(self) -> int | None:
        return self.data_bytes

    def basis(self) -> str:
        return f"verify-{self.level}"

    def describe(self, ctx: RunContext) -> str:
        n = len(self.policy.restore.verify)
        return f"{self.level}: {describe(self.level, not self.replayed)}, {n} SQL assertion(s)"

    def run(self, ctx: RunContext) -> str:
        instance = _instance(self.datadir, self.run_dir, ctx.get("owner"), self.policy)
        # a no-op while it runs; a run resumed after a kill that took the recovery
        # instance too (its cgroup) finds it gone
        instance.start(timeout=600)
        restore = self.policy.restore
        started = time.monotonic()
        checks = verify_restored(
            instance.connect,
            self.manifest,
            restore.verify,
            self.level,
            restore.check_connections,
            exact=not self.replayed,
        )
        ctx.record_checks(checks)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise VerificationFailed("; ".join(f"{c.name}: {c.detail}" for c in failed))
        took = time.monotonic() - started
        return f"{self.level} verification: {len(checks)} check(s) passed in {took:.1f} s"


class StopRecoveryInstance(Step):
    name = "stop-recovery-instance"

    def __init__(self, datadir: Path, run_dir: Path, policy: MariaDBPolicy):
        self.datadir, self.run_dir, self.policy = datadir, run_dir, policy

    def describe(self, ctx: RunContext) -> str:
        return "shut the recovery instance down cleanly"

    def run(self, ctx: RunContext) -> str:
        _instance(self.datadir, self.run_dir, ctx.get("owner"), self.policy).stop(timeout=600)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        return "recovery instance shut down"


class HealthCheck(Step):
    name = "health-check"

    def __init__(self, policy: MariaDBPolicy, timeout: timedelta):
        self.policy, self.timeout = policy, timeout

    def describe(self, ctx: RunContext) -> str:
        return (
            f"connect as {connection.describe(self.policy.connection)} and run SELECT 1 "
            f"(up to {int(self.timeout.total_seconds())}s)"
        )

    def run(self, ctx: RunContext) -> str:
        deadline = time.monotonic() + self.timeout.total_seconds()
        while True:
            try:
                db = connection.connect(self.policy.connection)
                try:
                    with db.cursor() as cur:
                        cur.execute("SELECT VERSION()")
                        version = cur.fetchone()[0]
                finally:
                    db.close()
                return f"server answers: {version}"
            except (BackupctlError, pymysql.MySQLError) as exc:
                if time.monotonic() >= deadline:
                    raise BackupctlError(f"no answer after the restart: {exc}") from exc
                time.sleep(1)
