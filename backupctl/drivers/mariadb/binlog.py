"""Binlog backups: rotate, then ship every closed binlog not yet in the repository.

Binlogs are read over the replication protocol (``mariadb-binlog
--read-from-remote-server --raw``), so the datadir need not be local. Each file is
fetched to a private temporary directory (one binlog at a time, at most
``max_binlog_size``), described, then compressed and checksummed into the repository.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from backupctl.catalog.manifest import Manifest, scan_manifests
from backupctl.checks import CheckResult
from backupctl.drivers.mariadb import connection
from backupctl.errors import BackupctlError, BackupFailed
from backupctl.pipeline import CHUNK, decompress
from backupctl.policy.mariadb import MariaDBPolicy
from backupctl.proc import redact, require_tool, secret_file, tail_text
from backupctl.storage.base import Repository

if TYPE_CHECKING:
    from backupctl.jobs import BackupSession

BINLOG_KIND = "binlog"
_HEADER_RE = re.compile(r"^#(\d{6})\s+(\d{1,2}:\d{2}:\d{2}) server id (\d+)\s+end_log_pos (\d+)")
_GTID_RE = re.compile(r"\bGTID (\d+-\d+-\d+)")
_GTID_LIST_RE = re.compile(r"Gtid list \[([^\]]*)\]")

log = structlog.get_logger()


def shipped_binlogs(session: BackupSession) -> set[str]:
    """Names of the binlogs of this policy already in the repository."""
    names: set[str] = set()
    for manifest in scan_manifests(session.repo, session.policy.name):
        if manifest.kind == BINLOG_KIND:
            names.update(b["file"] for b in manifest.details.get("binlogs", []))
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


def _event_time(day: str, clock: str) -> str:
    return datetime.strptime(f"{day} {clock}", "%y%m%d %H:%M:%S").replace(tzinfo=UTC).isoformat()


def describe_binlog(path: Path) -> dict[str, Any]:
    """Return event times, positions, server ids and GTIDs of a local binlog file."""
    binary = require_tool("mariadb-binlog", "mariadb-client")
    env = {**os.environ, "TZ": "UTC"}
    proc = subprocess.Popen(
        [binary, "--no-defaults", "--base64-output=decode-rows", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    info = _parse_events(proc.stdout)
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise BackupFailed(f"mariadb-binlog cannot read {path.name}: {tail_text(err, 3)}")
    info["size"] = path.stat().st_size
    return info


def _parse_events(lines: Iterable[str]) -> dict[str, Any]:
    first = last = None
    end_pos, server_ids, gtids = 4, set(), []
    gtid_list: str | None = None
    for line in lines:
        if not line.startswith("#"):
            continue
        header = _HEADER_RE.match(line)
        if header:
            stamp = _event_time(header.group(1), header.group(2))
            first = first or stamp
            last = stamp
            server_ids.add(int(header.group(3)))
            end_pos = max(end_pos, int(header.group(4)))
        if (gtid := _GTID_RE.search(line)) is not None:
            gtids.append(gtid.group(1))
        elif gtid_list is None and (listed := _GTID_LIST_RE.search(line)) is not None:
            gtid_list = listed.group(1)
    return {
        "first_event_at": first,
        "last_event_at": last,
        "start_position": 4,
        "end_position": end_pos,
        "server_ids": sorted(server_ids),
        "gtid_state_before": gtid_list or "",
        "first_gtid": gtids[0] if gtids else None,
        "last_gtid": gtids[-1] if gtids else None,
        "transactions": len(gtids),
    }


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
        detail = redact(tail_text(proc.stderr + proc.stdout, 5))
        raise BackupFailed(f"mariadb-binlog could not fetch {name}: {detail}")
    return target


def ship_binlogs(policy: MariaDBPolicy, session: BackupSession) -> dict[str, Any]:
    """Rotate, then store every closed binlog not shipped yet; return manifest details."""
    shipped = shipped_binlogs(session)
    closed, current, server_id = server_binlogs(policy, rotate=True)
    if shipped and _sequence(current) <= max(_sequence(n) for n in shipped):
        # numbering went backwards: the server was restored or rebuilt, and its binlogs
        # are new files that merely reuse old names
        log.warning(
            "binlog numbering restarted on the server; shipping its binlogs afresh",
            current=current,
            newest_shipped=max(shipped, key=_sequence),
        )
        shipped = set()
    wanted = [name for name in closed if name not in shipped]
    gaps = _purged_before(closed, shipped)
    binlogs = []
    with tempfile.TemporaryDirectory(prefix="backupctl-binlog-") as tmp:
        for name in wanted:
            path = _fetch(policy, name, Path(tmp))
            info = {"file": name, **describe_binlog(path)}
            with (
                session.artifact(f"{name}.zst", policy.backup.compression_level, threads=1) as out,
                open(path, "rb") as fh,
            ):
                while chunk := fh.read(CHUNK):
                    out.write(chunk)
            binlogs.append(info)
            path.unlink()
            log.info(
                "binlog shipped", file=name, bytes=info["size"], last_event_at=info["last_event_at"]
            )
    if gaps:
        log.warning("binlogs were purged on the server before they were shipped", missing=gaps)
    return {
        "server_id": server_id,
        "current_binlog": current,
        "binlogs": binlogs,
        "purged_before_shipping": gaps,
    }


def _purged_before(closed: list[str], shipped: set[str]) -> list[str]:
    """Binlogs between the newest shipped one and the oldest on the server: lost."""
    if not shipped or not closed:
        return []
    newest_shipped = max(shipped, key=_sequence)
    oldest_there = _sequence(closed[0])
    base = newest_shipped.rsplit(".", 1)[0]
    width = len(newest_shipped.rsplit(".", 1)[1])
    return [f"{base}.{n:0{width}d}" for n in range(_sequence(newest_shipped) + 1, oldest_there)]


def _sequence(name: str) -> int:
    return int(name.rsplit(".", 1)[1])


def verify_binlogs(repo: Repository, manifest: Manifest, scratch: Path) -> list[CheckResult]:
    """Decompress every shipped binlog and let mariadb-binlog read it end to end."""
    checks = []
    for info in manifest.details.get("binlogs", []):
        artifact = manifest.artifact(f"{info['file']}.zst")
        path = scratch / info["file"]
        try:
            with open(path, "wb") as fh:
                for chunk in decompress(repo.iter_read(artifact.key), artifact.raw_bytes):
                    fh.write(chunk)
            described = describe_binlog(path)
        except BackupctlError as exc:
            checks.append(CheckResult(f"binlog {info['file']}", False, str(exc)))
            continue
        finally:
            path.unlink(missing_ok=True)
        same = described["end_position"] == info["end_position"]
        detail = f"{described['transactions']} transaction(s) up to {described['last_event_at']}"
        checks.append(CheckResult(f"binlog {info['file']}", same, detail))
    return checks
