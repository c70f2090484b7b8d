"""Snapshot repositories and snapshots: register, verify, take, wait, describe.

Snapshots are named ``<policy>-<backup id>`` (lower case, as Elasticsearch requires)
and carry the backup id in their metadata. Their outcome is recorded honestly: only
SUCCESS is restorable; PARTIAL, FAILED and INCOMPATIBLE are failed backups.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog
from elasticsearch import Elasticsearch

from backupctl.drivers.elasticsearch.client import AnswerLost, ElasticsearchError, body, call
from backupctl.errors import BackupFailed
from backupctl.policy.elasticsearch import SnapshotRepository

log = structlog.get_logger()

DONE_STATES = {"SUCCESS", "PARTIAL", "FAILED", "INCOMPATIBLE"}


def snapshot_name(policy: str, backup_id: str) -> str:
    return f"{policy}-{backup_id}".lower()


def _same_settings(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Elasticsearch returns settings as strings ("true", "5mb"): compare them that way."""

    def text(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    return all(text(current.get(k)) == text(v) for k, v in wanted.items())


def ensure_repository(es: Elasticsearch, spec: SnapshotRepository) -> str:
    """Register the snapshot repository when missing or different, then verify it.

    Returns what was done, for the log and the manifest. Raises ElasticsearchError
    quoting the cluster (e.g. a location outside ``path.repo``).
    """
    try:
        current = body(call("get snapshot repository", es.snapshot.get_repository, name=spec.name))
        current = current.get(spec.name)
    except ElasticsearchError as exc:
        if exc.status != 404:
            raise
        current = None
    action = "unchanged"
    if (
        current is None
        or current.get("type") != spec.type
        or not _same_settings(current.get("settings", {}), spec.settings)
    ):
        action = "registered" if current is None else "updated"
        call(
            f"register snapshot repository {spec.name}",
            es.snapshot.create_repository,
            name=spec.name,
            repository={"type": spec.type, "settings": spec.settings},
        )
    nodes = body(
        call(
            f"verify snapshot repository {spec.name}", es.snapshot.verify_repository, name=spec.name
        )
    )
    log.info(
        "snapshot repository ready",
        repository=spec.name,
        action=action,
        nodes=len(nodes.get("nodes", {})),
    )
    return action


@dataclass
class SnapshotOutcome:
    name: str
    info: dict[str, Any]

    @property
    def state(self) -> str:
        return str(self.info.get("state"))

    def failure(self) -> str | None:
        """Why the snapshot is not restorable, or None when it is (SUCCESS)."""
        if self.state == "SUCCESS":
            return None
        shards = self.info.get("shards") or {}
        reasons = sorted({str(f.get("reason", "")) for f in self.info.get("failures") or []} - {""})
        detail = f": {'; '.join(reasons[:3])}" if reasons else ""
        return (
            f"snapshot {self.name} ended {self.state} "
            f"({shards.get('failed', '?')} of {shards.get('total', '?')} shards failed){detail}"
        )


def take_snapshot(
    es: Elasticsearch,
    repository: str,
    name: str,
    indices: list[str],
    include_global_state: bool,
    metadata: dict[str, Any],
    timeout: float,
) -> SnapshotOutcome:
    """Start the snapshot without blocking the request, then poll until it is done.

    A start whose answer was lost is not sent again blindly (a second one fails: "a
    snapshot with the same name is already in-progress"): the repository says whether the
    cluster took it. Raises BackupFailed (after aborting the snapshot) when it runs past
    ``timeout``.
    """
    for attempt in range(1, 4):
        try:
            call(
                f"start snapshot {name}",
                es.snapshot.create,
                repository=repository,
                snapshot=name,
                indices=",".join(indices),
                include_global_state=include_global_state,
                metadata=metadata,
                wait_for_completion=False,
                safe=False,
            )
            break
        except AnswerLost:
            if get_snapshot(es, repository, name) is not None:
                log.warning("snapshot start: answer lost, the cluster has it", snapshot=name)
                break
            if attempt == 3:
                raise
    log.info("snapshot started", snapshot=name, repository=repository)
    try:
        return _wait(es, repository, name, timeout)
    except BaseException:
        _abort(es, repository, name)
        raise


def _wait(es: Elasticsearch, repository: str, name: str, timeout: float) -> SnapshotOutcome:
    deadline, pause, last_log = time.monotonic() + timeout, 0.2, time.monotonic()
    while True:
        info = get_snapshot(es, repository, name)
        if info is not None and info.get("state") in DONE_STATES:
            return SnapshotOutcome(name, info)
        if time.monotonic() > deadline:
            raise BackupFailed(f"snapshot {name} did not finish within {timeout:.0f}s; aborted it")
        if time.monotonic() - last_log > 30:
            shards = (info or {}).get("shards") or {}
            log.info("snapshot in progress", snapshot=name, shards=shards)
            last_log = time.monotonic()
        time.sleep(pause)
        pause = min(pause * 1.5, 5.0)


def get_snapshot(es: Elasticsearch, repository: str, name: str) -> dict[str, Any] | None:
    """The snapshot's description, or None when the repository does not have it."""
    try:
        found = body(
            call(f"get snapshot {name}", es.snapshot.get, repository=repository, snapshot=name)
        )
    except ElasticsearchError as exc:
        if exc.error_type == "snapshot_missing_exception" or exc.status == 404:
            return None
        raise
    snapshots = found.get("snapshots") or []
    return dict(snapshots[0]) if snapshots else None


def delete_snapshot(es: Elasticsearch, repository: str, name: str) -> bool:
    """Delete (or abort) a snapshot through the API; False when it was already gone."""
    try:
        call(f"delete snapshot {name}", es.snapshot.delete, repository=repository, snapshot=name)
    except ElasticsearchError as exc:
        if exc.error_type == "snapshot_missing_exception" or exc.status == 404:
            return False
        raise
    return True


def _abort(es: Elasticsearch, repository: str, name: str) -> None:
    try:
        delete_snapshot(es, repository, name)
        log.warning("snapshot aborted", snapshot=name)
    except ElasticsearchError as exc:
        log.error("could not abort the snapshot; delete it by hand", snapshot=name, error=str(exc))
