"""Object keys, derived from validated names only (no path traversal)."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from backupctl.errors import RepositoryError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
BACKUP_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[a-z0-9]{4,12}$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if every segment is a safe name, else raise RepositoryError."""
    segments = key.split("/")
    for seg in segments:
        if not _SEGMENT_RE.match(seg) or seg in (".", ".."):
            raise RepositoryError(f"refusing unsafe object key {key!r}")
    return key


def join(*parts: str) -> str:
    """Join key segments with '/' and validate the result."""
    return validate_key("/".join(p.strip("/") for p in parts if p))


def new_backup_id(now: datetime) -> str:
    """A sortable, unique id like ``20261122T020000Z-3fa9c1``: of a backup, and of a
    restore or drill run (``now`` in UTC)."""
    return f"{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
