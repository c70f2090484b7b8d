"""Full physical backups with ``mariabackup --backup --stream=mbstream``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import structlog

from backupctl.catalog.manifest import Manifest
from backupctl.checks import CheckResult
from backupctl.drivers.base import DrillPlan, Driver, RecoveryWindow, RestoreRequest
from backupctl.drivers.mariadb import connection
from backupctl.drivers.mariadb.backupinfo import read_backup_info
from backupctl.drivers.mariadb.binlog import BINLOG_KIND, ship_binlogs, verify_binlogs
from backupctl.drivers.mariadb.extract import DATA_ARTIFACT, LOG_ARTIFACT, OK_MARK, extract, prepare
from backupctl.drivers.mariadb.pitr import (
    binlog_chain,
    latest_point,
    newest_before,
    newest_before_gtid,
)
from backupctl.drivers.mariadb.restore_plan import restore_steps
from backupctl.errors import BackupctlError, BackupFailed
from backupctl.pipeline import CHUNK
from backupctl.policy.mariadb import MariaDBPolicy
from backupctl.proc import grow_pipe, redact, require_tool, secret_file, tail_text
from backupctl.retention import Decision, chain_decisions
from backupctl.statefile import open_private, private_dir
from backupctl.storage.base import Repository

if TYPE_CHECKING:
    import threading

    from backupctl.catalog.index import Catalog
    from backupctl.jobs import BackupSession
    from backupctl.runbook.step import Step

log = structlog.get_logger()


class MariaDBDriver(Driver):
    """MariaDB server: ``full`` backups with mariabackup."""

    name = "mariadb"
    policy_model = MariaDBPolicy
    kinds = ("full", BINLOG_KIND)

    @property
    def mpolicy(self) -> MariaDBPolicy:
        return cast(MariaDBPolicy, self.policy)

    def backup(self, kind: str, session: BackupSession) -> dict[str, Any]:
        if kind == BINLOG_KIND:
            return ship_binlogs(self.mpolicy, session)
        return self._backup_full(session)

    def _backup_full(self, session: BackupSession) -> dict[str, Any]:
        policy = self.mpolicy
        binary = require_tool(policy.backup.mariabackup, "mariadb-backup")
        db = connection.connect(policy.connection)
        try:
            details = connection.inventory(db)
        finally:
            db.close()
        self._check_datadir(details["server_datadir"])
        session.tool_versions["mariabackup"] = _tool_version(binary)
        with tempfile.TemporaryDirectory(prefix="backupctl-mb-") as tmp:
            lsndir, log_path = Path(tmp) / "lsn", Path(tmp) / "mariabackup.log"
            estimate = _datadir_bytes(policy.datadir) or sum(
                t["bytes"] for d in details["databases"] for t in d["tables"]
            )
            try:
                self._stream(binary, session, lsndir, log_path, estimate)
            finally:
                self._keep_log(session, log_path)
            details.update(read_backup_info(lsndir))
        details["datadir"] = str(policy.datadir)
        return details

    def _check_datadir(self, server_datadir: str) -> None:
        mine = os.path.realpath(self.mpolicy.datadir)
        if os.path.realpath(server_datadir.rstrip("/")) != mine:
            log.warning(
                "the server reports another datadir than the policy",
                policy_datadir=mine,
                server_datadir=server_datadir,
            )

    def _stream(
        self, binary: str, session: BackupSession, lsndir: Path, log_path: Path, estimate: int
    ) -> None:
        policy = self.mpolicy
        options = policy.backup
        with (
            secret_file(connection.client_options(policy.connection)) as (cnf, fd),
            open(log_path, "wb") as log_fh,
        ):
            argv = [
                binary,
                f"--defaults-extra-file={cnf}",
                "--backup",
                "--stream=mbstream",
                f"--extra-lsndir={lsndir}",
                f"--target-dir={lsndir}",
                f"--datadir={policy.datadir}",
                f"--parallel={options.parallel}",
            ]
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log_fh, pass_fds=(fd,))
        stdout = cast(IO[bytes], proc.stdout)
        grow_pipe(stdout.fileno())
        try:
            with (
                session.artifact(
                    DATA_ARTIFACT, options.compression_level, options.compression_threads
                ) as out,
                session.progress("backup " + policy.name, estimate or None) as advance,
            ):
                while chunk := stdout.read(CHUNK):
                    out.write(chunk)
                    advance(len(chunk))
                self._check_result(proc.wait(), log_path)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            stdout.close()

    @staticmethod
    def _check_result(returncode: int, log_path: Path) -> None:
        text = redact(log_path.read_text(errors="replace"))
        if returncode != 0 or OK_MARK not in tail_text(text, 3):
            last = tail_text(text, 15)
            raise BackupFailed(f"mariabackup failed (exit {returncode}); end of its log:\n{last}")

    def _keep_log(self, session: BackupSession, log_path: Path) -> None:
        if not log_path.exists():
            return
        data = redact(log_path.read_text(errors="replace")).encode()
        failed_dir = session.state_dir / "logs"
        private_dir(failed_dir)
        name = f"{session.policy.name}-{session.backup_id}-mariabackup.log"
        with open_private(failed_dir / name, "wb") as fh:
            fh.write(data)
        try:
            with session.artifact(LOG_ARTIFACT, threads=1) as out:
                out.write(data)
        except BackupctlError as exc:
            log.warning("could not store mariabackup's log", error=str(exc))

    def restore_steps(
        self, repo: Repository, manifest: Manifest, request: RestoreRequest
    ) -> list[Step]:
        return restore_steps(self.mpolicy, repo, manifest, request)

    def drill_plan(
        self, repo: Repository, manifest: Manifest, request: RestoreRequest
    ) -> DrillPlan:
        from backupctl.drivers.mariadb.drill import drill_plan

        return drill_plan(self.mpolicy, repo, manifest, request)

    def retention(self, backups: list[Manifest], now: datetime) -> list[Decision]:
        rules = self.mpolicy.retention
        return chain_decisions(backups, "full", BINLOG_KIND, rules.full, rules.binlog, now)

    def base_for_point(
        self, fulls: list[Manifest], to_time: datetime | None, to_gtid: str | None
    ) -> Manifest:
        if to_gtid is not None:
            return newest_before_gtid(fulls, to_gtid)
        assert to_time is not None
        return newest_before(fulls, to_time)

    def follow(
        self, repo: Repository, catalog: Catalog, state_dir: Path, stop: threading.Event
    ) -> None:
        from backupctl.drivers.mariadb.follow import BinlogFollower

        BinlogFollower(self.mpolicy, repo, catalog, state_dir, stop).run()

    def recovery_window(self, repo: Repository, fulls: list[Manifest]) -> RecoveryWindow | None:
        if not fulls:
            return None
        links, gap = binlog_chain(repo, fulls[-1])
        return RecoveryWindow(fulls[0].finished_at, latest_point(links, fulls[-1]), gap)

    def verify_deep(self, repo: Repository, manifest: Manifest, scratch: Path) -> list[CheckResult]:
        if manifest.kind == BINLOG_KIND:
            return verify_binlogs(repo, manifest, scratch)
        checks = []
        target = scratch / "datadir"
        try:
            extract(repo, manifest, target)
            checks.append(CheckResult("extract", True, f"mbstream -x into {target}"))
            prepare(target, self.mpolicy.backup.mariabackup)
            checks.append(CheckResult("prepare", True, "mariabackup --prepare completed OK"))
        except BackupctlError as exc:
            name = "prepare" if checks else "extract"
            return [*checks, CheckResult(name, False, str(exc))]
        checks.append(_tables_present(manifest, target))
        return checks


def _tables_present(manifest: Manifest, datadir: Path) -> CheckResult:
    missing = []
    for database in manifest.details.get("databases", []):
        for table in database["tables"]:
            base = datadir / database["name"] / table["name"]
            if not base.with_suffix(".frm").exists() and not base.with_suffix(".ibd").exists():
                missing.append(f"{database['name']}.{table['name']}")
    total = sum(len(d["tables"]) for d in manifest.details.get("databases", []))
    if missing:
        return CheckResult(
            "tables-present", False, f"missing from the backup: {', '.join(missing[:20])}"
        )
    return CheckResult("tables-present", True, f"all {total} tables of the manifest are present")


def _datadir_bytes(datadir: Path) -> int:
    """Return the size of the files under ``datadir`` (what mariabackup will stream), or 0."""
    total = 0
    for root, _dirs, files in os.walk(datadir, onerror=lambda exc: None):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _tool_version(binary: str) -> str:
    """Return the last line ``binary --version`` prints, or "unknown"."""
    try:
        proc = subprocess.run([binary, "--version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (proc.stdout + proc.stderr).decode(errors="replace").strip().splitlines()
    return lines[-1][:200] if proc.returncode == 0 and lines else "unknown"
