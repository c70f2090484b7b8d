"""What one run came to: the summary logged, recorded, exported and sent to webhooks."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from backupctl.log import scrub

#: success: stored (or a drill passed); unchanged: nothing new to store (the newest
#: backup is still current); skipped: another run held the policy's lock
RunOutcome = Literal["success", "failure", "unchanged", "skipped"]


@dataclass(frozen=True)
class RunEvent:
    """One finished run of a policy: a backup of some kind, or a drill (kind ``drill``)."""

    policy: str
    driver: str
    kind: str
    outcome: RunOutcome
    started_at: datetime
    finished_at: datetime
    backup_id: str | None = None
    #: bytes stored by the run (compressed), when it stored any
    bytes: int | None = None
    #: why it failed (or was skipped), one line
    error: str | None = None
    host: str = field(default_factory=socket.gethostname)
    #: kind-specific facts (a drill's id, RTO and RPO, its report's path)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.error is not None:  # logged, recorded and sent to webhooks: never a secret
            object.__setattr__(self, "error", scrub(self.error))

    @property
    def duration_seconds(self) -> float:
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data (the generic webhook's body, version 1)."""
        return {
            "source": "backupctl",
            "version": 1,
            "event": f"run.{self.outcome}",
            "policy": self.policy,
            "driver": self.driver,
            "kind": self.kind,
            "outcome": self.outcome,
            "host": self.host,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_seconds": self.duration_seconds,
            "backup_id": self.backup_id,
            "bytes": self.bytes,
            "error": self.error,
            "details": self.details,
        }
