"""What follows a stored backup on every path that backs up (its copies, its retention):
run so that an expected failure never hides that the backup is stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog

from backupctl.errors import BackupctlError, LockHeldError

log = structlog.get_logger()

T = TypeVar("T")


def guarded(
    what: str, policy: str, step: Callable[[], T]
) -> tuple[T | None, str | None, str | None]:
    """Run ``step`` (``what``: "copy", "prune") after a backup of ``policy``; return
    (its result, None, None), or (None, why it was skipped, None) when another run holds
    the policy (the next backup does it), or (None, None, the error) when it failed."""
    try:
        return step(), None, None
    except LockHeldError as exc:
        log.warning(f"{what} skipped: the policy is busy", policy=policy, reason=str(exc))
        return None, str(exc), None
    except BackupctlError as exc:
        log.error(f"{what} after the backup failed", policy=policy, error=str(exc))
        return None, None, str(exc)
    except Exception as exc:  # a bug here must not hide that the backup is stored
        log.exception(f"{what} failed with an internal error", policy=policy)
        return None, None, f"internal error: {type(exc).__name__}: {exc}"
