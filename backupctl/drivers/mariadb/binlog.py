"""Binlog backups: rotate, then ship every closed binlog not yet in the repository.

Binlogs are read over the replication protocol (``mariadb-binlog
--read-from-remote-server --raw``), so the datadir need not be local. Each file is
fetched to a private temporary directory (one binlog at a time, at most
``max_binlog_size``), described, then compressed and checksummed into the repository.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from backupctl.catalog.manifest import Manifest, scan_manifests
from backupctl.checks import CheckResult
from backupctl.drivers.mariadb import connection
from backupctl.drivers.mariadb.binlog_events import scan_file
from backupctl.drivers.mariadb.details import BinlogDetails, BinlogInfo
from backupctl.errors import BackupctlError, BackupFailed, UsageError, VerificationFailed
from backupctl.locks import follow_lock, lock_holder
from backupctl.pipeline import CHUNK, decompress
from backupctl.policy.mariadb import MariaDBPolicy
from backupctl.proc import require_tool, secret_file, tail_text
from backupctl.redaction import scrub
from backupctl.storage.base import Repository

if TYPE_CHECKING:
    from backupctl.drivers.session import BackupSession

BINLOG_KIND = "binlog"

log = structlog.get_logger()


def shipped_binlogs(repo: Repository, policy: str, current: str) -> set[str]:
    """Names of the binlogs of this policy in the repository that belong to the server's
    present numbering (``current`` is the binlog it writes now)."""
    names: set[str] = set()
    for manifest in scan_manifests(repo, policy):
        if manifest.kind == BINLOG_KIND:
            names.update(b.file for b in binlogs_of(manifest))
    if names and sequence(current) <= max(sequence(n) for n in names):
        # numbering went backwards: the server was restored or rebuilt, and its binlogs
        # are new files that merely reuse old names
        log.warning(
            "binlog numbering restarted on the server; shipping its binlogs afresh",
            current=current,
            newest_shipped=max(names, key=sequence),
        )
        return set()
    return names


def server_binlogs(policy: MariaDBPolicy, rotate: bool) -> tuple[list[str], str, int]:
    """Rotate (when asked) and return (closed binlog names, current name, server id)."""
    db = connection.connect(policy.connection)
    try:
        with db.cursor() as cur:
            cur.execute("SELECT @@log_bin, @@server_id")
            log_bin, server_id = cur.fetchone()
            if not log_bin:
                raise BackupFailed("binary logging is off on the server: start it with --log-bin")
            if rotate:
                cur.execute("FLUSH BINARY LOGS")
            cur.execute("SHOW BINARY LOGS")
            names = [row[0] for row in cur.fetchall()]
    finally:
        db.close()
    return names[:-1], names[-1], int(server_id)


def server_position(policy: MariaDBPolicy) -> tuple[str, int]:
    """The server's current binlog and the position its last event ends at."""
    db = connection.connect(policy.connection)
    try:
        with db.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
    finally:
        db.close()
    if row is None:
        raise BackupFailed("binary logging is off on the server: start it with --log-bin")
    return str(row[0]), int(row[1])


def binlogs_of(manifest: Manifest) -> list[BinlogInfo]:
    """The binlogs a binlog backup stored. Raises VerificationFailed naming the backup when
    its details do not describe a binlog backup."""
    return BinlogDetails.of(manifest).binlogs


def _file_name(name: str, policy: str) -> str:
    """``name``, a binlog name from the repository of ``policy``, when it can become a file
    name in a directory and nothing else (no path). Raises VerificationFailed."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise VerificationFailed(
            f"refusing binlog name {name!r} from the repository of {policy} (tampered?)"
        )
    return name


def describe_binlog(path: Path) -> dict[str, Any]:
    """Return event times, positions, server ids and GTIDs of a complete local binlog."""
    return scan_file(path).info()


def check_readable(path: Path) -> None:
    """Let mariadb-binlog decode every event of ``path``; raise BackupFailed if it cannot."""
    binary = require_tool("mariadb-binlog", "mariadb-client")
    proc = subprocess.run(
        [binary, "--no-defaults", "--base64-output=decode-rows", "--verbose", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        check=False,
    )
    if proc.returncode != 0:
        raise BackupFailed(f"mariadb-binlog cannot read {path.name}: {tail_text(proc.stderr, 3)}")


def _fetch(policy: MariaDBPolicy, name: str, directory: Path) -> Path:
    """Copy one binlog from the server over the replication protocol; return the file."""
    binary = require_tool("mariadb-binlog", "mariadb-client")
    with secret_file(connection.client_options(policy.connection)) as (cnf, fd):
        proc = subprocess.run(
            [
                binary,
                f"--defaults-extra-file={cnf}",
                "--read-from-remote-server",
                "--raw",
                f"--result-file={directory}/",
                name,
            ],
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
    target = directory / name
    if proc.returncode != 0 or not target.is_file():
        detail = scrub(tail_text(proc.stderr + proc.stdout, 5))
        raise BackupFailed(f"mariadb-binlog could not fetch {name}: {detail}")
    return target


def store_binlog(
    session: BackupSession, path: Path, level: int, described: dict[str, Any] | None = None
) -> BinlogInfo:
    """Compress one complete local binlog into the backup; return its description
    (from ``described``, when the caller has already scanned the file)."""
    info = BinlogInfo.model_validate({**(described or describe_binlog(path)), "file": path.name})
    with session.artifact(f"{path.name}.zst", level, threads=1) as out, open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            out.write(chunk)
    log.info("binlog shipped", file=path.name, bytes=info.size, last_event_at=info.last_event_at)
    return info


def ship_binlogs(policy: MariaDBPolicy, session: BackupSession) -> BinlogDetails:
    """Rotate, then store every closed binlog newer than the newest shipped one (all of
    them the first time, or after the server's numbering restarted); return manifest
    details."""
    if (holder := lock_holder(session.layout, follow_lock(policy.name))) is not None:
        raise UsageError(
            f"binlog follow is streaming the binlogs of {policy.name!r} ({holder}); "
            "binlog backups are not needed while it runs"
        )
    closed, current, server_id = server_binlogs(policy, rotate=True)
    shipped = shipped_binlogs(session.repo, policy.name, current)
    # only what came after the newest shipped binlog: one that retention pruned from the
    # repository but the server still keeps must not come back (hour after hour)
    newest = max((sequence(name) for name in shipped), default=-1)
    wanted = [name for name in closed if name not in shipped and sequence(name) > newest]
    gaps = purged_before(closed, shipped)
    binlogs = []
    with session.work_dir("binlogs") as tmp:
        for name in wanted:
            path = _fetch(policy, name, tmp)
            binlogs.append(store_binlog(session, path, policy.backup.compression_level))
            path.unlink()
    if gaps:
        log.warning("binlogs were purged on the server before they were shipped", missing=gaps)
    return BinlogDetails(
        server_id=server_id, current_binlog=current, binlogs=binlogs, purged_before_shipping=gaps
    )


def purged_before(closed: list[str], shipped: set[str]) -> list[str]:
    """Binlogs between the newest shipped one and the oldest on the server: lost."""
    if not shipped or not closed:
        return []
    newest_shipped = max(shipped, key=sequence)
    oldest_there = sequence(closed[0])
    base = newest_shipped.rsplit(".", 1)[0]
    width = len(newest_shipped.rsplit(".", 1)[1])
    return [f"{base}.{n:0{width}d}" for n in range(sequence(newest_shipped) + 1, oldest_there)]


def sequence(name: str) -> int:
    return int(name.rsplit(".", 1)[1])


def verify_binlogs(repo: Repository, manifest: Manifest, scratch: Path) -> list[CheckResult]:
    """Decompress every shipped binlog and let mariadb-binlog read it end to end."""
    checks = []
    for info in binlogs_of(manifest):
        artifact = manifest.artifact(f"{info.file}.zst")
        path = scratch / _file_name(info.file, manifest.policy)
        try:
            with open(path, "wb") as fh:
                for chunk in decompress(repo.iter_read(artifact.key), artifact.raw_bytes):
                    fh.write(chunk)
            check_readable(path)
            described = describe_binlog(path)
        except BackupctlError as exc:
            checks.append(CheckResult(f"binlog {info.file}", False, str(exc)))
            continue
        finally:
            path.unlink(missing_ok=True)
        same = described["end_position"] == info.end_position
        detail = f"{described['transactions']} transaction(s) up to {described['last_event_at']}"
        checks.append(CheckResult(f"binlog {info.file}", same, detail))
    return checks
