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


def chain_decisions(
    backups: Sequence[Manifest],
    full_kind: str,
    increment_kind: str,
    keep_fulls: timedelta | None,
    keep_increments: timedelta | None,
    now: datetime,
) -> list[Decision]:
    """Decide for full backups and the increments (binlogs) that chain onto them.

    - The point-in-time window is the last ``keep_increments``: any moment in it must
      stay restorable. Its base, the newest restorable full that finished before the
      window starts (or the oldest full if none did), is kept whatever its age, and so
      is every increment taken since that base started.
    - Other fulls go when older than ``keep_fulls``, but never the newest restorable one.
    - Other increments go when older than ``keep_increments``.
    - A failed backup goes once it is older than the newest restorable full.
    Returns decisions oldest first. ``None`` for a rule keeps everything it governs.
    """
    fulls = sorted(
        (m for m in backups if m.kind == full_kind), key=lambda m: (m.finished_at, m.backup_id)
    )
    good = [m for m in fulls if m.restorable]
    newest = good[-1] if good else None
    base = None
    if keep_increments is not None and good:
        window_start = now - keep_increments
        before = [m for m in good if m.finished_at <= window_start]
        base = before[-1] if before else good[0]
    decisions = []
    for m in sorted(backups, key=lambda m: (m.finished_at, m.backup_id)):
        age = _age(now, m)
        if not m.restorable:
            gone = newest is not None and m.finished_at < newest.finished_at
            why = "failed, and a newer full succeeded" if gone else "failed; no newer full yet"
            decisions.append(Decision(m.backup_id, not gone, why))
        elif m.kind == full_kind:
            decisions.append(_decide_full(m, age, newest, base, keep_fulls, now))
        elif m.kind == increment_kind:
            decisions.append(_decide_increment(m, age, base, keep_increments, now))
        else:
            decisions.append(Decision(m.backup_id, True, f"no rule for {m.kind} backups"))
    return decisions


def _decide_full(
    m: Manifest,
    age: str,
    newest: Manifest | None,
    base: Manifest | None,
    keep: timedelta | None,
    now: datetime,
) -> Decision:
    if m is newest:
        return Decision(m.backup_id, True, f"{age} old, the newest restorable full")
    if m is base:
        return Decision(m.backup_id, True, f"{age} old, base of the point-in-time window")
    if keep is not None and now - m.finished_at > keep:
        return Decision(m.backup_id, False, f"{age} old, retention {_days(keep)}")
    return Decision(m.backup_id, True, f"{age} old, within retention")


def _decide_increment(
    m: Manifest, age: str, base: Manifest | None, keep: timedelta | None, now: datetime
) -> Decision:
    if keep is None:
        return Decision(m.backup_id, True, "no retention rule for increments")
    if base is not None and m.started_at >= base.started_at:
        if now - m.finished_at > keep:
            return Decision(
                m.backup_id, True, f"{age} old, needed by {base.backup_id} for the window"
            )
        return Decision(m.backup_id, True, f"{age} old, within retention {_days(keep)}")
    if now - m.finished_at > keep:
        return Decision(
            m.backup_id, False, f"{age} old, retention {_days(keep)}, no kept full needs it"
        )
    return Decision(m.backup_id, True, f"{age} old, within retention {_days(keep)}")
