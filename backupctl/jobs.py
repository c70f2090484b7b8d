"""Running one backup: lock, id, artifacts, manifest last, catalog; cleanup on failure."""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from backupctl import __version__
from backupctl.catalog.index import Catalog
from backupctl.catalog.manifest import (
    MANIFEST,
    STARTED,
    Artifact,
    Manifest,
    backup_prefix,
    incomplete_backups,
    parse_manifest,
)
from backupctl.drivers.base import Driver
from backupctl.drivers.registry import driver_for
from backupctl.errors import (
    BackupctlError,
    IncompleteBackup,
    LockHeldError,
    NothingChanged,
    UsageError,
)
from backupctl.observability.events import RunEvent
from backupctl.observability.runs import RunReporter
from backupctl.pipeline import CompressingWriter
from backupctl.policy.common import PolicyBase
from backupctl.progress import ProgressFactory, no_progress
from backupctl.scheduling.locks import policy_lock
from backupctl.storage import keys
from backupctl.storage.base import ObjectWriter, Repository
from backupctl.storage.encryption import encryption_of

log = structlog.get_logger()


def new_backup_id(now: datetime) -> str:
    """Return a sortable, unique id like ``20261122T020000Z-3fa9c1``."""
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


class ArtifactWriter:
    """Context manager streaming one compressed artifact; committed only on clean exit."""

    def __init__(self, session: BackupSession, name: str, level: int, threads: int):
        self.session, self.name = session, name
        self.key = keys.join(session.prefix, name)
        self._writer: ObjectWriter = session.repo.open_write(self.key)
        self._compressor = CompressingWriter(self._writer, level=level, threads=threads)

    def write(self, data: bytes) -> None:
        self._compressor.write(data)

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._writer.abort()
            return
        try:
            stats = self._compressor.finish()
            self._writer.commit()
        except BaseException:
            self._writer.abort()
            raise
        self.session.artifacts.append(
            Artifact(
                name=self.name,
                key=self.key,
                raw_bytes=stats.raw_bytes,
                stored_bytes=stats.stored_bytes,
                sha256=stats.sha256,
            )
        )


@dataclass
class BackupSession:
    """What a driver gets to write one backup."""

    repo: Repository
    policy: PolicyBase
    kind: str
    backup_id: str
    started_at: datetime
    state_dir: Path
    progress: ProgressFactory = no_progress
    artifacts: list[Artifact] = field(default_factory=list)
    tool_versions: dict[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return backup_prefix(self.policy.name, self.kind, self.backup_id)

    def artifact(self, name: str, level: int = 3, threads: int = 0) -> ArtifactWriter:
        """Open a compressed, checksummed artifact called ``name`` (e.g. ``data.mbstream.zst``)."""
        return ArtifactWriter(self, name, level, threads)


Producer = Callable[[BackupSession], dict[str, Any]]


def clean_incomplete(repo: Repository, policy: str, kinds: Sequence[str] = ()) -> list[str]:
    """Remove backups of ``policy`` that were started but never completed, and uploads
    under its ``kinds`` that were never committed (e.g. a marker a run was killed
    writing, before anything is listed).

    Call only while holding the policy lock: then no backup of it is running.
    Returns the prefixes removed.
    """
    removed = incomplete_backups(repo, policy)
    for prefix in removed:
        repo.delete_prefix(prefix)
        log.warning("removed incomplete backup left by an interrupted run", prefix=prefix)
    for kind in kinds:
        if aborted := repo.abort_incomplete(keys.join(policy, kind) + "/"):
            log.warning("removed incomplete uploads left by an interrupted run", count=aborted)
    return removed


def record_unlisted(repo: Repository, catalog: Catalog, policy: str) -> list[str]:
    """Record the complete backups of ``policy`` the repository has and the catalog lacks:
    a run killed between writing a manifest and recording it, or a prune killed between
    forgetting a backup and deleting it (the next prune then takes it). Returns their ids.
    """
    known = {json.loads(raw)["backup_id"] for raw in catalog.raw(policy)}
    recorded = []
    for info in repo.list(f"{policy}/"):
        parts = info.key.split("/")
        if len(parts) != 4 or parts[3] != MANIFEST or parts[2] in known:
            continue
        if not keys.BACKUP_ID_RE.match(parts[2]):
            continue
        try:
            manifest = parse_manifest(repo.get_bytes(info.key), f"{repo.url}/{info.key}")
        except BackupctlError as exc:  # `catalog sync` reports it; backups go on
            log.warning("unreadable manifest in the repository", key=info.key, error=str(exc))
            continue
        catalog.record(manifest, repo.url)
        recorded.append(manifest.backup_id)
        log.warning("recorded a complete backup the catalog lacked", backup_id=parts[2])
    return recorded


def run_backup(
    policy: PolicyBase,
    repo: Repository,
    catalog: Catalog,
    state_dir: Path,
    kind: str | None = None,
    progress: ProgressFactory = no_progress,
    produce: Producer | None = None,
    reporter: RunReporter | None = None,
) -> Manifest:
    """Take one backup of ``policy`` and record it.

    ``produce`` writes the artifacts and returns the manifest's details; by default the
    driver's ``backup``. Every run, whatever its outcome, is reported to ``reporter``
    (default: recorded in the run history, logged, notified). Returns the manifest.
    Raises LockHeldError when a run is in progress, UsageError for a kind the driver
    does not make, and the driver's errors; whatever was written is removed before the
    error propagates, except for a backup that ended unrestorable (IncompleteBackup):
    it is recorded as failed, then raised.
    """
    driver = driver_for(policy)
    kind = kind or driver.default_kind
    if kind not in driver.kinds:
        raise UsageError(
            f"the {driver.name} driver makes {', '.join(driver.kinds)} backups, not {kind!r}"
        )
    started = datetime.now(UTC)
    event = partial(RunEvent, policy.name, driver.name, kind, started_at=started)
    report = (reporter or RunReporter(state_dir)).report
    try:
        manifest = _locked_backup(policy, repo, catalog, state_dir, kind, progress, produce)
    except NothingChanged as exc:
        report(policy, event("unchanged", finished_at=datetime.now(UTC), error=str(exc)))
        raise
    except LockHeldError as exc:
        report(policy, event("skipped", finished_at=datetime.now(UTC), error=str(exc)))
        raise
    except IncompleteBackup as exc:
        report(policy, event("failure", finished_at=datetime.now(UTC), error=_line(exc)))
        raise
    except BaseException as exc:
        reason = _line(exc) or f"interrupted ({type(exc).__name__})"
        report(policy, event("failure", finished_at=datetime.now(UTC), error=reason))
        raise
    done = event(
        "success",
        finished_at=manifest.finished_at,
        backup_id=manifest.backup_id,
        bytes=manifest.stored_bytes,
    )
    report(policy, done)
    return manifest


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _locked_backup(
    policy: PolicyBase,
    repo: Repository,
    catalog: Catalog,
    state_dir: Path,
    kind: str,
    progress: ProgressFactory,
    produce: Producer | None,
) -> Manifest:
    driver = driver_for(policy)
    with policy_lock(state_dir, policy.name), repo.lock(policy.name, f"backup {kind}"):
        clean_incomplete(repo, policy.name, driver.kinds)
        record_unlisted(repo, catalog, policy.name)
        now = datetime.now(UTC)
        session = BackupSession(repo, policy, kind, new_backup_id(now), now, state_dir, progress)
        structlog.contextvars.bind_contextvars(policy=policy.name, backup_id=session.backup_id)
        try:
            manifest = _write_backup(driver, session, produce)
        finally:
            structlog.contextvars.unbind_contextvars("policy", "backup_id")
    catalog.record(manifest, repo.url)
    if manifest.failure is not None:
        raise IncompleteBackup(manifest.failure, manifest.details)
    return manifest


def _write_backup(driver: Driver, session: BackupSession, produce: Producer | None) -> Manifest:
    repo = session.repo
    started = {
        "backup_id": session.backup_id,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": session.started_at.isoformat(),
    }
    repo.put_bytes(keys.join(session.prefix, STARTED), json.dumps(started).encode())
    log.info("backup started", kind=session.kind, repository=repo.url)
    failure = None
    try:
        try:
            details = driver.backup(session.kind, session) if produce is None else produce(session)
        except IncompleteBackup as exc:  # recorded, as failed: listed, never restored
            details, failure = dict(exc.details), str(exc)
        manifest = Manifest(
            backup_id=session.backup_id,
            policy=session.policy.name,
            driver=driver.name,
            kind=session.kind,
            started_at=session.started_at,
            finished_at=datetime.now(UTC),
            artifacts=session.artifacts,
            tool_versions={"backupctl": __version__, **session.tool_versions},
            details=details,
            failure=failure,
            encryption=encryption_of(repo),
        )
        repo.put_bytes(keys.join(session.prefix, MANIFEST), manifest.to_json().encode())
    except NothingChanged as exc:
        repo.delete_prefix(session.prefix)
        log.info("nothing changed; nothing stored", reason=str(exc))
        raise
    except BaseException as exc:
        _remove_failed(repo, session.prefix, exc)
        raise
    if failure is not None:
        log.error("backup ended but is not restorable; recorded as failed", reason=failure)
        return manifest
    log.info(
        "backup complete",
        raw_bytes=manifest.raw_bytes,
        stored_bytes=manifest.stored_bytes,
        seconds=round((manifest.finished_at - manifest.started_at).total_seconds(), 1),
    )
    return manifest


def _remove_failed(repo: Repository, prefix: str, cause: BaseException) -> None:
    try:
        repo.delete_prefix(prefix)
    except BackupctlError as exc:  # the next run's clean_incomplete retries it
        log.error("could not remove the failed backup", prefix=prefix, error=str(exc))
    reason = str(cause) or type(cause).__name__
    log.error(
        "backup failed; nothing was recorded", reason=reason.splitlines()[0] if reason else ""
    )
