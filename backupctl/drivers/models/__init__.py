"""The ``model`` driver: a complete, independently restorable copy of each model version,
its files stored content-addressed so unchanged files are stored once."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import structlog

from backupctl.catalog.manifest import Artifact, Manifest, scan_manifests
from backupctl.drivers.base import DrillPlan, Driver, RestoreRequest
from backupctl.drivers.models import steps
from backupctl.drivers.models.blobs import BLOB_DIR, blob_key, upload_many
from backupctl.drivers.models.tree import read_version, scan_tree, tree_hash
from backupctl.errors import NotFoundError, NothingChanged, UsageError
from backupctl.policy.model import ModelPolicy
from backupctl.retention import Decision
from backupctl.runbook.hook_step import HookStep
from backupctl.storage import keys
from backupctl.storage.base import Repository
from backupctl.units import human_bytes

if TYPE_CHECKING:
    from backupctl.jobs import BackupSession
    from backupctl.runbook.step import Step

log = structlog.get_logger()
KIND = "version"


class ModelDriver(Driver):
    """AI model directories: one ``version`` backup each time the version changes."""

    name = "model"
    policy_model = ModelPolicy
    kinds = (KIND,)

    @property
    def mpolicy(self) -> ModelPolicy:
        return cast(ModelPolicy, self.policy)

    def backup(self, kind: str, session: BackupSession) -> dict[str, Any]:
        policy = self.mpolicy
        # blobs live outside the backup's prefix, so clean_incomplete does not see the
        # uploads a killed run left there; we hold the policy's lock: nothing else writes
        if aborted := session.repo.abort_incomplete(keys.join(policy.name, BLOB_DIR) + "/"):
            log.warning("removed incomplete blob uploads left by an interrupted run", count=aborted)
        stored = [m for m in scan_manifests(session.repo, policy.name) if m.kind == KIND]
        stored = [m for m in stored if m.restorable]
        newest = max(stored, key=lambda m: m.finished_at, default=None)
        before = {e.path: e for e in steps.entries_of(newest)} if newest else {}
        entries = scan_tree(policy.path, before)
        version = read_version(policy.path, policy.version_from, entries)
        if newest is not None and newest.details.get("version") == version:
            raise NothingChanged(f"version {version} is already stored (backup {newest.backup_id})")
        known: dict[str, Artifact] = {}
        for manifest in stored:
            known.update({a.key: a for a in manifest.artifacts})
        artifacts: dict[str, Artifact] = {}
        jobs: list[tuple[str, Path, str]] = []
        for entry in entries:
            if entry.kind != "file":
                continue
            key = blob_key(policy.name, entry.sha256)
            if key in artifacts or any(j[0] == key for j in jobs):
                continue
            if key in known and session.repo.exists(key):
                artifacts[key] = known[key]
            else:
                jobs.append((key, policy.path / entry.path, entry.sha256))
        with session.progress(f"storing {policy.name} {version}", None):
            new = upload_many(
                session.repo, jobs, policy.backup.compression_level, policy.backup.parallel
            )
        artifacts.update({a.key: a for a in new})
        session.artifacts.extend(artifacts.values())
        files = [e for e in entries if e.kind == "file"]
        details = {
            "version": version,
            "version_from": policy.version_from,
            "path": str(policy.path),
            "tree_hash": tree_hash(entries),
            "files": len(files),
            "bytes": sum(e.size for e in files),
            "new_bytes": sum(a.raw_bytes for a in new),
            "new_stored_bytes": sum(a.stored_bytes for a in new),
            "entries": [e.to_dict() for e in entries],
        }
        log.info("model version stored", version=version, new_bytes=details["new_bytes"])
        return details

    def previous_backup(self, backups: list[Manifest]) -> Manifest:
        """The newest stored version older than the one served now (by its version)."""
        policy = self.mpolicy
        current = read_version(policy.path, policy.version_from, scan_tree(policy.path))
        ordered = sorted(backups, key=lambda m: (m.finished_at, m.backup_id))
        serving = [i for i, m in enumerate(ordered) if m.details.get("version") == current]
        candidates = ordered[: serving[-1]] if serving else ordered
        candidates = [m for m in candidates if m.details.get("version") != current]
        if not candidates:
            raise NotFoundError(
                f"no stored version of {policy.name} before the one served now ({current})"
            )
        return candidates[-1]

    @classmethod
    def note(cls, manifest: Manifest) -> str:
        d = manifest.details
        return f"version {d.get('version')}, {human_bytes(d.get('new_bytes', 0))} new"

    def restore_steps(
        self, repo: Repository, manifest: Manifest, request: RestoreRequest
    ) -> list[Step]:
        if request.target_datadir is not None or request.to_time or request.to_gtid:
            raise UsageError("model restores take a VERSION (or --previous), nothing else")
        policy = self.mpolicy
        served = policy.path
        tag = re.sub(r"[^A-Za-z0-9._-]", "_", str(manifest.details["version"]))[:40]
        staging = served.with_name(f".{served.name}.{tag}-{request.run_id}")
        aside = served.with_name(f"{served.name}.aside-{request.run_id}")
        env = {
            "BACKUPCTL_BACKUP_ID": manifest.backup_id,
            "BACKUPCTL_RUN_ID": request.run_id,
            "BACKUPCTL_VERSION": str(manifest.details["version"]),
            "BACKUPCTL_STAGING": str(staging),
            "BACKUPCTL_MODEL_DIR": str(served),
        }
        options = policy.restore
        timeout = options.hook_timeout
        return [
            steps.Materialise(repo, manifest, staging),
            steps.CheckHashes(manifest, staging),
            HookStep("validate", policy, options.verify, [], env, timeout),
            steps.PerfGate(policy, env),
            steps.Apply(policy, staging, aside, env),
            HookStep("start-services", policy, options.start, [], env, timeout),
        ]

    def drill_plan(
        self, repo: Repository, manifest: Manifest, request: RestoreRequest
    ) -> DrillPlan:
        """Materialise the version in the sandbox, check hashes, run the validate and
        performance hooks on it; never apply it to the service."""
        if request.target_dir is None:
            raise UsageError("a drill needs a sandbox directory")
        policy = self.mpolicy
        staging = request.target_dir / "model"
        env = {
            "BACKUPCTL_BACKUP_ID": manifest.backup_id,
            "BACKUPCTL_RUN_ID": request.run_id,
            "BACKUPCTL_VERSION": str(manifest.details["version"]),
            "BACKUPCTL_STAGING": str(staging),
            "BACKUPCTL_MODEL_DIR": str(staging),
            "BACKUPCTL_DRILL": "1",
        }
        options = policy.restore
        drill_steps: list[Step] = [
            steps.Materialise(repo, manifest, staging),
            steps.CheckHashes(manifest, staging),
            HookStep("validate", policy, options.verify, [], env, options.hook_timeout),
            steps.PerfGate(policy, env),
        ]
        return DrillPlan(drill_steps, manifest.finished_at, "perf-test")

    def retention(self, backups: list[Manifest], now: datetime) -> list[Decision]:
        keep = self.mpolicy.retention.keep_versions
        ordered = sorted(backups, key=lambda m: (m.finished_at, m.backup_id), reverse=True)
        decisions = []
        rank = 0
        for manifest in ordered:
            version = manifest.details.get("version")
            if not manifest.restorable:
                decisions.append(Decision(manifest.backup_id, False, "failed version backup"))
                continue
            rank += 1
            if rank <= keep:
                reason = f"version {version}: one of the last {keep} (keep_versions)"
            else:
                reason = f"version {version}: number {rank}, keep_versions {keep}"
            decisions.append(Decision(manifest.backup_id, rank <= keep, reason))
        return decisions[::-1]

    def collect_garbage(self, repo: Repository, kept: list[Manifest]) -> int:
        """Delete blobs no version in the repository references, and unfinished blob
        uploads (call under the policy's lock). The repository's manifests decide, not the
        catalog: a host whose catalog is behind must not take blobs from versions it does
        not know."""
        stored = scan_manifests(repo, self.policy.name)
        wanted = {a.key for m in stored for a in m.artifacts}
        removed = repo.abort_incomplete(keys.join(self.policy.name, BLOB_DIR) + "/")
        for info in list(repo.list(keys.join(self.policy.name, BLOB_DIR) + "/")):
            if info.key not in wanted:
                repo.delete(info.key)
                removed += 1
        return removed


__all__ = ["Entry", "ModelDriver"]
