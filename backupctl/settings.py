"""Default locations of policies and state."""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_POLICIES = Path("/etc/backupctl/policies")
SYSTEM_STATE = Path("/var/lib/backupctl")


def default_policies() -> Path:
    """``/etc/backupctl/policies`` when it exists, else ``./policies``."""
    return SYSTEM_POLICIES if SYSTEM_POLICIES.exists() else Path("policies")


def default_state_dir() -> Path:
    """``/var/lib/backupctl`` for root, else the user's XDG state directory."""
    if os.geteuid() == 0:
        return SYSTEM_STATE
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "backupctl"
