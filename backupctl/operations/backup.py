"""``backupctl backup``: one backup, under the policy's lock; artifacts first, the
manifest last (its presence means complete), then the catalog; on failure, what was
written is removed. Every run, whatever its outcome, is reported."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Sequence
from functools import partial

import structlog
from pydantic import BaseModel

from backupctl import __version__
from backupctl.catalog.manifest import MANIFEST, STARTED, Manifest, incomplete_backups
from backupctl.catalog.sync import sync_policy
from backupctl.drivers.base import Details
from backupctl.drivers.registry import AnyDriver, driver_for
from backupctl.drivers.session import BackupSession
from backupctl.errors import (
    BackupctlError,
    IncompleteBackup,
    LockHeldError,
    NoSpace,
    NothingChanged,
    UsageError,
)
from backupctl.history import RunEvent
from backupctl.locks import lanes_locked
from backupctl.operations.context import Context
from backupctl.operations.setup import keep_setup_everywhere
from backupctl.policy.common import PolicyBase
from backupctl.storage import keys
from backupctl.storage.base import Repository
from backupctl.storage.encryption import encryption_of
from backupctl.units import human_bytes

log = structlog.get_logger()

#: writes a backup's artifacts through the session and returns its manifest details
Producer = Callable[[BackupSession], Details]


def clean_incomplete(repo: Repository, policy: str, kinds: Sequence[str]) -> list[str]:
    """Remove backups of ``policy``'s ``kinds`` that were started but never completed, and
    uploads under them that were never committed (e.g. a marker a run was killed
    writing, before anything is listed).

    Call only while holding the locks of the lanes of ``kinds``: then no backup of them
    is running (one of another lane may be: it is left alone).
    Returns the prefixes removed.
    """
    removed = incomplete_backups(repo, policy, kinds)
    for prefix in removed:
        repo.delete_prefix(prefix)
        log.warning("removed incomplete backup left by an interrupted run", prefix=prefix)
    for kind in kinds:
        if aborted := repo.abort_incomplete(keys.join(policy, kind) + "/"):
            log.warning("removed incomplete uploads left by an interrupted run", count=aborted)
    return removed


def run_backup(
    ctx: Context,
    policy: PolicyBase,
    kind: str | None = None,
    produce: Producer | None = None,
    repo: Repository | None = None,
    fallback: bool = True,
) -> Manifest:
    """Take one backup of ``policy`` (of ``kind``, default the driver's main kind) into
    ``repo`` (default: the policy's repository) and record it.

    The driver may take another kind than asked (an incremental with nothing to build on
    becomes a full, and says why) unless ``fallback`` is False. ``produce`` writes the
    artifacts and returns the manifest's details; by default the driver's ``backup``.
    Every run, whatever its outcome, is reported to ``ctx.runs``.
    Returns the manifest. Raises LockHeldError when a run is in progress, UsageError for
    a kind the driver does not make, and the driver's errors; whatever was written is
    removed before the error propagates, except for a backup that ended unrestorable
    (IncompleteBackup): it is recorded as failed, then raised.
    """
    driver = driver_for(policy)
    kind = kind or driver.main_kind
    if kind not in driver.kinds:
        raise UsageError(
            f"the {driver.name} driver makes {', '.join(driver.kinds)} backups, not {kind!r}"
        )
    started = ctx.clock()
    event = partial(RunEvent, policy.name, driver.name, kind, started_at=started)
    report = ctx.runs.report
    try:
        target = repo or ctx.repository(policy)
        manifest = _locked_backup(ctx, driver, kind, produce, target, fallback)
    except NothingChanged as exc:
        report(policy, event("unchanged", finished_at=ctx.clock(), error=str(exc)))
        raise
    except LockHeldError as exc:
        report(policy, event("skipped", finished_at=ctx.clock(), error=str(exc)))
        raise
    except IncompleteBackup as exc:
        report(policy, event("failure", finished_at=ctx.clock(), error=_line(exc)))
        raise
    except BaseException as exc:
        reason = _line(exc) or f"interrupted ({type(exc).__name__})"
        report(policy, event("failure", finished_at=ctx.clock(), error=reason))
        raise
    done = RunEvent(
        policy.name,
        driver.name,
        manifest.kind,  # what was taken (an incremental may have become a full)
        "success",
        started_at=started,
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
    ctx: Context,
    driver: AnyDriver,
    kind: str,
    produce: Producer | None,
    repo: Repository,
    fallback: bool,
) -> Manifest:
    policy, catalog = driver.policy, ctx.catalog()
    lane = driver.lane_of(kind)
    with lanes_locked(ctx.layout, repo, policy.name, [lane], f"backup {kind}"):
        clean_incomplete(repo, policy.name, driver.lane_kinds(lane))
        sync_policy(catalog, repo, policy.name)
        backups = ctx.backups(policy, driver)
        choice = driver.choose_kind(kind, backups, repo, fallback)
        if choice.reason is not None:
            log.warning(f"taking a {choice.kind} backup instead of {kind}", reason=choice.reason)
        check_room(repo, choice.kind, backups.restorable(choice.kind))
        now = ctx.clock()
        session = BackupSession(
            repo,
            policy,
            choice.kind,
            keys.new_backup_id(now),
            now,
            ctx.layout,
            ctx.progress,
            basis=choice.basis,
            instead=choice.reason,
        )
        structlog.contextvars.bind_contextvars(policy=policy.name, backup_id=session.backup_id)
        try:
            manifest = _write_backup(ctx, driver, session, produce)
        finally:
            structlog.contextvars.unbind_contextvars("policy", "backup_id")
    catalog.record(manifest, repo.url)
    if manifest.failure is not None:
        raise IncompleteBackup(manifest.failure, manifest.details)
    keep_setup_everywhere(ctx, policy)  # what a new host needs besides the backups
    return manifest


#: the database grows: a backup may need this much more than the last one of its kind
GROWTH = 1.10


def check_room(repo: Repository, kind: str, earlier: Sequence[Manifest]) -> None:
    """Refuse a backup before anything is written when the repository's filesystem has
    less room than the last complete backup of ``kind`` took, plus ``GROWTH``. Without an
    earlier one nothing is known ahead: the write itself then fails cleanly on a full disk.
    Raises NoSpace."""
    free = repo.free_bytes()
    if free is None or not earlier:
        return
    last = earlier[-1]
    needed = int(last.stored_bytes * GROWTH)
    if free < needed:
        raise NoSpace(
            f"not enough space in {repo.url} for a {kind} backup: about {human_bytes(needed)} "
            f"needed (the last one, {last.backup_id}, stored {human_bytes(last.stored_bytes)}), "
            f"{human_bytes(free)} free; nothing was written"
        )


def as_json(details: Details) -> dict[str, object]:
    """Manifest details as stored: a typed document dumped to JSON data."""
    if isinstance(details, BaseModel):
        return details.model_dump(mode="json")
    return dict(details)


def _write_backup(
    ctx: Context, driver: AnyDriver, session: BackupSession, produce: Producer | None
) -> Manifest:
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
            produced = driver.backup(session.kind, session) if produce is None else produce(session)
            details = as_json(produced)
        except IncompleteBackup as exc:  # recorded, as failed: listed, never restored
            details, failure = as_json(exc.details), str(exc)
        manifest = Manifest(
            backup_id=session.backup_id,
            policy=session.policy.name,
            driver=driver.name,
            kind=session.kind,
            started_at=session.started_at,
            finished_at=ctx.clock(),
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
