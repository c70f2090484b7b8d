"""Physical backups with ``mariabackup --backup --stream=mbstream`` (full, or incremental
with ``--incremental-lsn``), streamed through zstd and sha256 into the repository (no
temporary copy), and their deep verification (a chain: the base, then each incremental)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import IO, cast

import structlog

from backupctl.drivers.mariadb import connection
from backupctl.drivers.mariadb.backupinfo import read_backup_info
from backupctl.drivers.mariadb.chain import INCREMENTAL_KIND
from backupctl.drivers.mariadb.details import (
    FullDetails,
    IncrementalDetails,
    MariabackupInfo,
    ServerInventory,
)
from backupctl.drivers.mariadb.extract import DATA_ARTIFACT, LOG_ARTIFACT, OK_MARK
from backupctl.drivers.session import BackupSession
from backupctl.errors import BackupctlError, BackupFailed
from backupctl.pipeline import CHUNK
from backupctl.policy.mariadb import MariaDBPolicy
from backupctl.proc import dies_with_us, grow_pipe, lock_fds, require_tool, secret_file, tail_text
from backupctl.redaction import scrub
from backupctl.statefile import open_private, private_dir

log = structlog.get_logger()


def backup_full(policy: MariaDBPolicy, session: BackupSession) -> FullDetails:
    """Stream one full backup into ``session``; return the manifest's details (the
    server's inventory, LSNs, binlog coordinates). Raises BackupFailed / ToolError."""
    server, mariabackup = _take(policy, session)
    return FullDetails.assemble(server, mariabackup, str(policy.datadir), session.instead)


def backup_incremental(policy: MariaDBPolicy, session: BackupSession) -> IncrementalDetails:
    """Stream the pages changed since ``session.basis`` (its to_lsn) into ``session``;
    return the details: a full's, plus the chain it extends. Raises BackupFailed /
    ToolError."""
    parent = session.basis
    if parent is None:
        raise BackupFailed("an incremental backup needs the backup it builds on")
    details = FullDetails.of(parent)
    if details.lsn is None or details.lsn.to_lsn is None:
        raise BackupFailed(f"backup {parent.backup_id} recorded no LSN to build on")
    since = details.lsn.to_lsn
    server, mariabackup = _take(policy, session, incremental_lsn=since)
    chained = IncrementalDetails.of(parent) if parent.kind == INCREMENTAL_KIND else None
    return IncrementalDetails(
        **dict(FullDetails.assemble(server, mariabackup, str(policy.datadir))),
        parent=parent.backup_id,
        parent_kind=parent.kind,
        base=chained.base if chained else parent.backup_id,
        chain_length=(chained.chain_length if chained else 1) + 1,
        incremental_lsn=since,
    )


def _take(
    policy: MariaDBPolicy, session: BackupSession, incremental_lsn: int | None = None
) -> tuple[ServerInventory, MariabackupInfo]:
    """Run mariabackup into ``session`` (with ``incremental_lsn``: only the pages changed
    after it); return what the server and mariabackup said."""
    binary = require_tool(policy.backup.mariabackup, "mariadb-backup")
    db = connection.connect(policy.connection)
    try:
        server = connection.inventory(db)
    finally:
        db.close()
    _check_datadir(policy, server.server_datadir)
    session.tool_versions["mariabackup"] = _tool_version(binary)
    with session.work_dir("mariabackup") as tmp:
        lsndir, log_path = tmp / "lsn", tmp / "mariabackup.log"
        # a full streams the datadir; an incremental only what changed (unknown ahead)
        estimate = (
            0
            if incremental_lsn is not None
            else _datadir_bytes(policy.datadir)
            or sum(t.bytes for d in server.databases for t in d.tables)
        )
        extra = [] if incremental_lsn is None else [f"--incremental-lsn={incremental_lsn}"]
        try:
            _stream(policy, binary, session, lsndir, log_path, estimate, extra)
        finally:
            _keep_log(session, log_path)
        return server, read_backup_info(lsndir)


def _check_datadir(policy: MariaDBPolicy, server_datadir: str) -> None:
    mine = os.path.realpath(policy.datadir)
    if os.path.realpath(server_datadir.rstrip("/")) != mine:
        log.warning(
            "the server reports another datadir than the policy",
            policy_datadir=mine,
            server_datadir=server_datadir,
        )


def _stream(
    policy: MariaDBPolicy,
    binary: str,
    session: BackupSession,
    lsndir: Path,
    log_path: Path,
    estimate: int,
    extra: list[str],
) -> None:
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
            *extra,
        ]
        proc = subprocess.Popen(
            dies_with_us(argv), stdout=subprocess.PIPE, stderr=log_fh, pass_fds=(fd, *lock_fds())
        )
    stdout = cast(IO[bytes], proc.stdout)
    grow_pipe(stdout.fileno())
    try:
        with (
            # the raw estimate bounds the compressed size: S3 sizes its parts by it
            session.artifact(
                DATA_ARTIFACT,
                options.compression_level,
                options.compression_threads,
                size_hint=estimate or None,
            ) as out,
            session.progress("backup " + policy.name, estimate or None) as advance,
        ):
            while chunk := stdout.read(CHUNK):
                out.write(chunk)
                advance(len(chunk))
            _check_result(proc.wait(), log_path)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        stdout.close()


def _check_result(returncode: int, log_path: Path) -> None:
    text = scrub(log_path.read_text(errors="replace"))
    if returncode != 0 or OK_MARK not in tail_text(text, 3):
        last = tail_text(text, 15)
        raise BackupFailed(f"mariabackup failed (exit {returncode}); end of its log:\n{last}")


def _keep_log(session: BackupSession, log_path: Path) -> None:
    if not log_path.exists():
        return
    data = scrub(log_path.read_text(errors="replace")).encode()
    kept = session.layout.logs
    private_dir(kept)
    name = f"{session.policy.name}-{session.backup_id}-mariabackup.log"
    with open_private(kept / name, "wb") as fh:
        fh.write(data)
    try:
        with session.artifact(LOG_ARTIFACT, threads=1) as out:
            out.write(data)
    except BackupctlError as exc:
        log.warning("could not store mariabackup's log", error=str(exc))


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
