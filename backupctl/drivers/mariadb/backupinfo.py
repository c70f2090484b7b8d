"""Parse the files mariabackup writes to ``--extra-lsndir``."""

from __future__ import annotations

import re
from pathlib import Path

from backupctl.drivers.mariadb.details import BinlogCoordinates, Lsn, MariabackupInfo

_BINLOG_RE = re.compile(
    r"filename '(?P<file>[^']*)', position '(?P<position>\d+)'"
    r"(?:, GTID of the last change '(?P<gtid>[^']*)')?"
)


def parse_key_values(text: str) -> dict[str, str]:
    """Parse ``key = value`` lines."""
    result = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            result[key.strip()] = value.strip()
    return result


def read_backup_info(lsndir: Path) -> MariabackupInfo:
    """Return LSNs, binlog coordinates and tool version from ``lsndir``.

    Missing files leave their fields None (an old mariabackup, a server without binlog).
    """
    info = MariabackupInfo()
    checkpoints = lsndir / "xtrabackup_checkpoints"
    if checkpoints.is_file():
        values = parse_key_values(checkpoints.read_text())
        info.lsn = Lsn.model_validate(
            {
                k: int(values[k])
                for k in ("from_lsn", "to_lsn", "last_lsn")
                if values.get(k, "").isdigit()
            }
        )
        info.backup_type = values.get("backup_type")
    described = lsndir / "xtrabackup_info"
    if described.is_file():
        values = parse_key_values(described.read_text())
        info.mariabackup_version = values.get("tool_version")
        match = _BINLOG_RE.search(values.get("binlog_pos", ""))
        if match:
            info.binlog = BinlogCoordinates(
                file=match["file"], position=int(match["position"]), gtid=match["gtid"] or None
            )
    return info
