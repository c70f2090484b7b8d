"""The journal: a runbook's progress on disk, rewritten atomically at every transition."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from backupctl.errors import NotFoundError
from backupctl.layout import StateLayout
from backupctl.runbook.step import StepResult
from backupctl.statefile import open_private, private_dir

State = Literal["running", "completed", "failed", "rolled-back", "interrupted"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Journal:
    path: Path
    run_id: str
    kind: str
    policy: str
    params: dict[str, Any]
    steps: list[StepResult]
    values: dict[str, Any] = field(default_factory=dict)
    state: State = "running"
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    error: str | None = None

    def save(self) -> None:
        """Write the journal atomically (a crash leaves the old or the new version)."""
        private_dir(self.path.parent)
        data = {
            "run_id": self.run_id,
            "kind": self.kind,
            "policy": self.policy,
            "params": self.params,
            "state": self.state,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "values": self.values,
            "pid": os.getpid(),
            "steps": [s.to_dict() for s in self.steps],
        }
        tmp = self.path.with_suffix(".tmp")
        with open_private(tmp) as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> Journal:
        """Read a journal. Raises NotFoundError when it is missing or unreadable."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise NotFoundError(f"cannot read runbook journal {path}: {exc}") from exc
        return cls(
            path=path,
            run_id=data["run_id"],
            kind=data["kind"],
            policy=data["policy"],
            params=data["params"],
            steps=[StepResult(**s) for s in data["steps"]],
            values=data["values"],
            state=data["state"],
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            error=data.get("error"),
        )

    @property
    def unfinished(self) -> bool:
        """True when the run stopped half-way (killed) or its rollback did not complete."""
        if self.state in ("running", "interrupted"):
            return True
        return any(s.status == "compensation-failed" for s in self.steps)


def find_unfinished(layout: StateLayout, policy: str) -> Journal | None:
    """Return the newest unfinished journal of ``policy``, if any."""
    directory = layout.journals
    if not directory.is_dir():
        return None
    for path in sorted(directory.glob("*.json"), reverse=True):
        journal = Journal.load(path)
        if journal.policy == policy and journal.unfinished:
            return journal
    return None
