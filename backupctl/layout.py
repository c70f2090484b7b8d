"""Where everything lives in the state directory: the one place that names its paths.

``STATE_DIR`` (``--state-dir``, default ``/var/lib/backupctl``) holds::

    catalog.sqlite              the catalog (a cache of the repositories' manifests)
    locks/<name>.lock           per-policy locks (and ``<policy>.follow``)
    runbooks/<run_id>.json      restore journals (resume, rollback)
    restores/<run_id>.json|.md  restore reports
    recovery/<run_id>/          a recovery instance's socket, pid file and log
    drills/<drill_id>/          a drill's journal, sandbox and local reports
    binlog-follow/<policy>/     ``binlog follow``'s spool and status.json
    runs/runs.json              every run's outcome, per policy and kind
    schedule/state.json         what ``run-due`` and the scheduler remember per job
    scratch/                    ``verify --deep`` restores
    work/<policy>/<name>/       a backup's temporary files (binlogs fetched, mariabackup's
                                LSN directory); a killed run's are cleared by the next
    logs/                       tool logs kept for the operator (mariabackup's)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StateLayout:
    """The paths of one state directory. Nothing here creates them."""

    root: Path

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    def lock(self, name: str) -> Path:
        """The lock file of ``name`` (a policy, or ``<policy>.follow``)."""
        return self.locks / f"{name}.lock"

    @property
    def journals(self) -> Path:
        return self.root / "runbooks"

    def journal(self, run_id: str) -> Path:
        return self.journals / f"{run_id}.json"

    @property
    def restore_reports(self) -> Path:
        return self.root / "restores"

    def restore_report(self, run_id: str, fmt: str = "json") -> Path:
        return self.restore_reports / f"{run_id}.{fmt}"

    def recovery(self, run_id: str) -> Path:
        """Where a restore's recovery instance keeps its socket, pid file and log."""
        return self.root.absolute() / "recovery" / run_id

    @property
    def drills(self) -> Path:
        return self.root / "drills"

    def drill(self, drill_id: str) -> Path:
        """A drill's journal, sandbox (removed after) and local reports."""
        return self.drills / drill_id

    def follow(self, policy: str) -> Path:
        """``binlog follow``'s working directory for ``policy`` (spool, status)."""
        return self.root / "binlog-follow" / policy

    def follow_status(self, policy: str) -> Path:
        return self.follow(policy) / "status.json"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def schedule(self) -> Path:
        return self.root / "schedule"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    def work(self, policy: str, name: str) -> Path:
        return self.root / "work" / policy / name

    @property
    def logs(self) -> Path:
        return self.root / "logs"
