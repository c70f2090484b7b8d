"""The ``model`` driver: a complete, independently restorable copy of each model version,
its files stored content-addressed so unchanged files are stored once."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from backupctl.catalog.manifest import Artifact, Manifest, scan_manifests
from backupctl.catalog.query import PolicyBackups
from backupctl.checks import CheckResult
from backupctl.drivers.base import DrillPlan, Driver, RestoreRun
from backupctl.drivers.models import steps
from backupctl.drivers.models.blobs import BLOB_DIR, blob_key, upload_many
from backupctl.drivers.models.details import ModelDetails
from backupctl.drivers.models.tree import read_version, scan_tree, tree_hash
from backupctl.errors import BackupctlError, NotFoundError, NothingChanged
from backupctl.policy.model import ModelPolicy, ModelRestoreOptions
from backupctl.retention import Decision
from backupctl.runbook.hook_step import HookStep
from backupctl.runbook.step import RunContext
from backupctl.storage import keys
from backupctl.storage.base import Repository
from backupctl.units import human_bytes

if TYPE_CHECKING:
    from backupctl.drivers.session import BackupSession
    from backupctl.runbook.step import Step

log = structlog.get_logger()
KIND = "version"


class ModelDriver(Driver[ModelPolicy, ModelRestoreOptions]):
    """AI model directories: one ``version`` backup each time the version changes."""

    name = "model"
    kinds = (KIND,)
    rebuild_rank = 30

    def backup(self, kind: str, session: BackupSession) -> ModelDetails:
        policy = self.policy
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
        if newest is not None and ModelDetails.of(newest).version == version:
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
        details = ModelDetails(
            version=version,
            version_from=policy.version_from,
            path=str(policy.path),
            tree_hash=tree_hash(entries),
            files=len(files),
            bytes=sum(e.size for e in files),
            new_bytes=sum(a.raw_bytes for a in new),
            new_stored_bytes=sum(a.stored_bytes for a in new),
            entries=[e.to_dict() for e in entries],
        )
        log.info("model version stored", version=version, new_bytes=details.new_bytes)
        return details

    def names(self, manifest: Manifest) -> Sequence[str]:
        """A version backup is also known by its version (unless its details are unreadable:
        then only by its id, and using it is refused)."""
        details = ModelDetails.readable(manifest)
        return (details.version,) if details is not None else ()

    def choose_backup(self, options: ModelRestoreOptions, backups: PolicyBackups) -> Manifest:
        """VERSION (or BACKUP_ID), ``--previous``, else the newest stored version."""
        if options.previous:
            return self.previous_backup(backups.restorable())
        return super().choose_backup(options, backups)

    def previous_backup(self, backups: list[Manifest]) -> Manifest:
        """The newest stored version older than the one served now (by its version)."""
        policy = self.policy
        current = read_version(policy.path, policy.version_from, scan_tree(policy.path))
        ordered = sorted(backups, key=lambda m: (m.finished_at, m.backup_id))
        # a version whose details are unreadable is not the one served (restoring it is
        # refused, naming it, when it is the one chosen)
        versions = [_version(m) for m in ordered]
        serving = [i for i, version in enumerate(versions) if version == current]
        end = serving[-1] if serving else len(ordered)
        candidates = [m for i, m in enumerate(ordered[:end]) if versions[i] != current]
        if not candidates:
            raise NotFoundError(
                f"no stored version of {policy.name} before the one served now ({current})"
            )
        return candidates[-1]

    @classmethod
    def note(cls, manifest: Manifest) -> str:
        """``version v3, 1.2 MiB new``; empty when the details are unreadable."""
        details = ModelDetails.readable(manifest)
        if details is None:
            return ""
        if details.new_bytes is None:  # not recorded
            return f"version {details.version}"
        return f"version {details.version}, {human_bytes(details.new_bytes)} new"

    def restore_steps(
        self, repo: Repository, manifest: Manifest, options: ModelRestoreOptions, run: RestoreRun
    ) -> list[Step]:
        policy = self.policy
        served = policy.path
        version = ModelDetails.of(manifest).version  # refused here when unreadable
        tag = re.sub(r"[^A-Za-z0-9._-]", "_", version)[:40]
        staging = served.with_name(f".{served.name}.{tag}-{run.run_id}")
        aside = served.with_name(f"{served.name}.aside-{run.run_id}")
        env = {
            "BACKUPCTL_BACKUP_ID": manifest.backup_id,
            "BACKUPCTL_RUN_ID": run.run_id,
            "BACKUPCTL_VERSION": version,
            "BACKUPCTL_STAGING": str(staging),
            "BACKUPCTL_MODEL_DIR": str(served),
        }
        restore = policy.restore
        timeout = restore.hook_timeout
        return [
            steps.Materialise(repo, manifest, staging),
            steps.CheckHashes(manifest, staging),
            HookStep("validate", policy, restore.verify, [], env, timeout),
            steps.PerfGate(policy, env),
            steps.Apply(policy, staging, aside, env),
            HookStep("start-services", policy, restore.start, [], env, timeout),
        ]

    def drill_plan(
        self, repo: Repository, manifest: Manifest, run: RestoreRun, sandbox: Path
    ) -> DrillPlan:
        """Materialise the version in the sandbox, check hashes, run the validate and
        performance hooks on it; never apply it to the service."""
        policy = self.policy
        staging = sandbox / "model"
        env = {
            "BACKUPCTL_BACKUP_ID": manifest.backup_id,
            "BACKUPCTL_RUN_ID": run.run_id,
            "BACKUPCTL_VERSION": ModelDetails.of(manifest).version,
            "BACKUPCTL_STAGING": str(staging),
            "BACKUPCTL_MODEL_DIR": str(staging),
            "BACKUPCTL_DRILL": "1",
        }
        restore = policy.restore
        drill_steps: list[Step] = [
            steps.Materialise(repo, manifest, staging),
            steps.CheckHashes(manifest, staging),
            HookStep("validate", policy, restore.verify, [], env, restore.hook_timeout),
            steps.PerfGate(policy, env),
        ]
        return DrillPlan(drill_steps, manifest.finished_at, "perf-test")

    def verify_deep(self, repo: Repository, manifest: Manifest, scratch: Path) -> list[CheckResult]:
        """Write the version into ``scratch`` (each file's sha256 checked as it is written)
        and compare the tree read back with the manifest's tree hash."""
        checks = []
        staging, ctx = scratch / "model", RunContext(f"verify-{manifest.backup_id}")
        for step in (
            steps.Materialise(repo, manifest, staging),
            steps.CheckHashes(manifest, staging),
        ):
            try:
                checks.append(CheckResult(step.name, True, step.run(ctx)))
            except BackupctlError as exc:
                return [*checks, CheckResult(step.name, False, str(exc))]
        return checks

    def retention(self, backups: list[Manifest], now: datetime) -> list[Decision]:
        keep = self.policy.retention.keep_versions
        ordered = sorted(backups, key=lambda m: (m.finished_at, m.backup_id), reverse=True)
        decisions = []
        rank = 0
        for manifest in ordered:
            if not manifest.restorable:
                decisions.append(Decision(manifest.backup_id, False, "failed version backup"))
                continue
            rank += 1
            version = _version(manifest) or "unknown (unreadable details)"
            if rank <= keep:
                reason = f"version {version}: one of the last {keep} (keep_versions)"
            else:
                reason = f"version {version}: number {rank}, keep_versions {keep}"
            decisions.append(Decision(manifest.backup_id, rank <= keep, reason))
        return decisions[::-1]

    def collect_garbage(self, repo: Repository, kept: list[Manifest], now: datetime) -> int:
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


def _version(manifest: Manifest) -> str | None:
    """The backup's version; None when its details are unreadable."""
    details = ModelDetails.readable(manifest)
    return details.version if details is not None else None
