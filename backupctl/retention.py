"""Retention decisions as pure functions: backups + rules + now -> keep or delete, each
with its reason. Nothing here deletes anything; ``prune`` carries the decisions out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from backupctl.catalog.manifest import Manifest


@dataclass(frozen=True)
class Decision:
    backup_id: str
    keep: bool
    reason: str


@dataclass(frozen=True)
class CountRules:
    """Snapshot lifecycle management's rules: ``expire_after``, ``min_count``, ``max_count``."""

    expire_after: timedelta | None = None
    min_count: int | None = None
    max_count: int | None = None


def _age(now: datetime, manifest: Manifest) -> str:
    days = (now - manifest.finished_at).total_seconds() / 86400
    return f"{days:.1f}d"


def slm_decisions(backups: Sequence[Manifest], rules: CountRules, now: datetime) -> list[Decision]:
    """Decide like Elasticsearch's SLM retention.

    Successful backups, newest first: the newest ``min_count`` are kept even if expired;
    beyond ``max_count`` they go even if not expired; otherwise those older than
    ``expire_after`` go. A failed backup goes once a newer successful one exists.
    Returns decisions oldest first.
    """
    ordered = sorted(backups, key=lambda m: (m.finished_at, m.backup_id), reverse=True)
    decisions: list[Decision] = []
    successes = 0
    newest_success: Manifest | None = None
    for manifest in ordered:
        if not manifest.restorable:
            if newest_success is not None:
                reason = f"failed, and {newest_success.backup_id} after it succeeded"
                decisions.append(Decision(manifest.backup_id, False, reason))
            else:
                reason = "failed, but no newer backup succeeded yet"
                decisions.append(Decision(manifest.backup_id, True, reason))
            continue
        newest_success = newest_success or manifest
        successes += 1
        decisions.append(_decide_success(manifest, successes, rules, now))
    return decisions[::-1]


def _decide_success(manifest: Manifest, rank: int, rules: CountRules, now: datetime) -> Decision:
    age = _age(now, manifest)
    if rules.min_count is not None and rank <= rules.min_count:
        return Decision(
            manifest.backup_id, True, f"one of the newest {rules.min_count} (min_count)"
        )
    if rules.max_count is not None and rank > rules.max_count:
        return Decision(
            manifest.backup_id,
            False,
            f"number {rank} of the successful ones, max_count {rules.max_count}",
        )
    if rules.expire_after is not None and now - manifest.finished_at > rules.expire_after:
        return Decision(
            manifest.backup_id, False, f"{age} old, expire_after {_days(rules.expire_after)}"
        )
    if rules.expire_after is not None:
        return Decision(
            manifest.backup_id, True, f"{age} old, within expire_after {_days(rules.expire_after)}"
        )
    return Decision(manifest.backup_id, True, "no expiry rule")


def _days(value: timedelta) -> str:
    return f"{value.total_seconds() / 86400:g}d"
