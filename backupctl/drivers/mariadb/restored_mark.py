"""The mark a restore leaves in the datadir it puts in place: which backup, which run,
when. An incremental must not build on a backup taken before the server was restored
(its pages came from another point in history), whatever the server's LSN says since."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

#: in the datadir's top directory: the server ignores it, mariabackup does not copy it
MARK_NAME = "backupctl-restored.json"


@dataclass(frozen=True)
class RestoredMark:
    backup_id: str
    run_id: str
    restored_at: datetime


def write_mark(datadir: Path, mark: RestoredMark) -> None:
    """Leave ``mark`` in ``datadir`` (replacing an older one)."""
    document = {
        "backup_id": mark.backup_id,
        "run_id": mark.run_id,
        "restored_at": mark.restored_at.isoformat(),
    }
    (datadir / MARK_NAME).write_text(json.dumps(document) + "\n")


def read_mark(datadir: Path) -> RestoredMark | None:
    """The mark the last restore left in ``datadir``, or None (never restored by backupctl,
    or unreadable)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        document = json.loads((datadir / MARK_NAME).read_text())
        restored_at = datetime.fromisoformat(document["restored_at"])
        if restored_at.tzinfo is not None:
            return RestoredMark(str(document["backup_id"]), str(document["run_id"]), restored_at)
    return None
