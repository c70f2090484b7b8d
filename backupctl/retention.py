"""Retention decisions as pure functions: backups + rules + now -> keep or delete, each
with its reason. Nothing here deletes anything; ``prune`` carries the decisions out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    *,
    point_kind: str | None = None,
    keep_points: timedelta | None = None,
    parent_of: Callable[[Manifest], str | None] | None = None,
) -> list[Decision]:
    """Decide for full backups, the incrementals (``point_kind``) chained onto them, and
    the increments (binlogs, ``increment_kind``) replayed after either.

    A restore point is a restorable full, or a restorable incremental whose chain
    (``parent_of`` it, its parent's parent, … down to a full) is complete in ``backups``.

    - The point-in-time window is the last ``keep_increments``: any moment in it must
      stay restorable. Its base, the newest restore point that finished before the window
      starts (or the oldest point if none did), is kept whatever its age, and so is every
      increment taken since that base (or a later point) started.
    - The newest restorable full and the newest restore point are always kept.
    - Other fulls go when older than ``keep_fulls``, other incrementals when older than
      ``keep_points``, other increments when older than ``keep_increments``.
    - Whatever a kept incremental chains onto is kept with it, down to its full: a full
      (or incremental) past its retention stays while a kept incremental needs it.
    - An incremental whose chain is broken (a link gone, failed or not a restore point)
      is no restore point: it goes once older than ``keep_points`` and keeps nothing else.
    - A failed full or incremental goes once a newer restore point exists; a failed
      increment once a newer restorable full exists.
    Returns decisions oldest first, one per backup, ties ordered by backup id. ``None``
    for a rule keeps everything it governs. Without ``point_kind`` there are no
    incrementals (backups of other kinds are kept, "no rule"). ``parent_of`` gives the
    backup id an incremental builds on; it is asked once per restorable incremental.
    """
    if point_kind is not None and parent_of is None:
        raise ValueError("chain_decisions: point_kind needs parent_of")
    if point_kind in (full_kind, increment_kind):
        raise ValueError(f"chain_decisions: point_kind {point_kind!r} is already another kind")
    ordered = sorted(backups, key=_order)
    by_id = {m.backup_id: m for m in ordered}
    links: dict[str, str] = {}  # a complete incremental's id -> its parent's
    faults: dict[str, str] = {}  # a broken incremental's id -> why
    if point_kind is not None and parent_of is not None:
        incrementals = [m for m in ordered if m.kind == point_kind and m.restorable]
        links, faults = _chains(incrementals, by_id, full_kind, point_kind, parent_of)
    fulls = [m for m in ordered if m.kind == full_kind and m.restorable]
    points = [m for m in ordered if (m.kind == full_kind and m.restorable) or m.backup_id in links]
    base, binlogs_from = _window_base(points, keep_increments, now)
    plan = _Plan(
        full_kind=full_kind,
        increment_kind=increment_kind,
        point_kind=point_kind,
        keep_fulls=keep_fulls,
        keep_increments=keep_increments,
        keep_points=keep_points,
        now=now,
        newest_full=fulls[-1] if fulls else None,
        newest_point=points[-1] if points else None,
        faults=faults,
        base=base,
        binlogs_from=binlogs_from,
    )
    roots = [m for m in reversed(points) if plan.kept_for_itself(m)]
    plan.needed_by = _needed_links(roots, links, by_id)
    return [plan.decide(m) for m in ordered]


def _order(manifest: Manifest) -> tuple[datetime, str]:
    return manifest.finished_at, manifest.backup_id


def _chains(
    incrementals: Sequence[Manifest],
    by_id: dict[str, Manifest],
    full_kind: str,
    point_kind: str,
    parent_of: Callable[[Manifest], str | None],
) -> tuple[dict[str, str], dict[str, str]]:
    """Walk each incremental's chain down to its full, each link once (linear in the
    number of backups). Returns the parent of each incremental whose chain is complete,
    and why the chain is broken for the others."""
    parents = {m.backup_id: parent_of(m) for m in incrementals}
    verdicts: dict[str, tuple[str, str] | None] = {}  # None: complete; else (link, fault)
    for start in incrementals:
        _walk_chain(start.backup_id, parents, by_id, (full_kind, point_kind), verdicts)
    links = {i: p for i, p in parents.items() if p is not None and verdicts[i] is None}
    faults = {i: _fault_text(i, v) for i, v in verdicts.items() if v is not None}
    return links, faults


def _walk_chain(
    start: str,
    parents: dict[str, str | None],
    by_id: dict[str, Manifest],
    kinds: tuple[str, str],
    verdicts: dict[str, tuple[str, str] | None],
) -> None:
    """Walk from ``start`` towards its full until a link whose verdict is known, a full,
    or a fault; record the verdict for every link walked."""
    path: list[str] = []
    on_path: set[str] = set()
    node = start
    while True:
        if node in verdicts:
            verdict = verdicts[node]
            break
        if node in on_path:
            verdict = (node, "its links loop (tampered?)")
            break
        path.append(node)
        on_path.add(node)
        parent = parents[node]
        verdict = _link_fault(node, parent, by_id, kinds)
        if verdict is not None:
            break
        assert parent is not None
        if by_id[parent].kind == kinds[0]:
            break
        node = parent
    for link in path:
        verdicts[link] = verdict


def _link_fault(
    link: str, parent: str | None, by_id: dict[str, Manifest], kinds: tuple[str, str]
) -> tuple[str, str] | None:
    """What is wrong with ``link``'s own parent (``kinds``: full, incremental), if anything."""
    found = by_id.get(parent) if parent is not None else None
    if parent is None:
        return link, "it names no parent"
    if found is None:
        return link, f"parent {parent} is gone"
    if not found.restorable:
        return link, f"parent {parent} failed"
    if found.kind not in kinds:
        return link, f"parent {parent} is a {found.kind} backup, not a restore point"
    return None


def _fault_text(incremental: str, verdict: tuple[str, str]) -> str:
    link, fault = verdict
    where = "" if link == incremental else f" at {link}"
    return f"its chain is broken{where}: {fault}"


def _window_base(
    points: Sequence[Manifest], keep_increments: timedelta | None, now: datetime
) -> tuple[Manifest | None, datetime | None]:
    """The base of the point-in-time window (the newest restore point finished before it
    starts, or the oldest point), and since when increments are needed: the earliest
    start of the base and of every later point (a restore to a moment starts from the
    newest point before it, which may have started before the base did)."""
    if keep_increments is None or not points:
        return None, None
    start = now - keep_increments
    index = 0
    for i, point in enumerate(points):
        if point.finished_at > start:
            break
        index = i
    return points[index], min(p.started_at for p in points[index:])


def _needed_links(
    roots: Sequence[Manifest], links: dict[str, str], by_id: dict[str, Manifest]
) -> dict[str, Manifest]:
    """Close the kept points under "parent of": each link a kept incremental chains onto,
    mapped to its child that needs it (the first one reached, walking from ``roots``
    in order). Each link is walked once."""
    walked: set[str] = set()
    needed_by: dict[str, Manifest] = {}
    for root in roots:
        node = root
        while node.backup_id in links and node.backup_id not in walked:
            walked.add(node.backup_id)
            parent = by_id[links[node.backup_id]]
            needed_by.setdefault(parent.backup_id, node)
            node = parent
    return needed_by


@dataclass
class _Plan:
    """What ``chain_decisions`` found out about the history, and the decision for each
    backup from it."""

    full_kind: str
    increment_kind: str
    point_kind: str | None
    keep_fulls: timedelta | None
    keep_increments: timedelta | None
    keep_points: timedelta | None
    now: datetime
    newest_full: Manifest | None
    newest_point: Manifest | None
    faults: dict[str, str]
    base: Manifest | None
    binlogs_from: datetime | None
    #: each link a kept incremental chains onto -> the child that needs it
    needed_by: dict[str, Manifest] = field(default_factory=dict)

    def within(self, m: Manifest, keep: timedelta | None) -> bool:
        return keep is None or self.now - m.finished_at <= keep

    def kept_for_itself(self, point: Manifest) -> bool:
        """Whether a restore point is kept whatever needs it."""
        keep = self.keep_fulls if point.kind == self.full_kind else self.keep_points
        return self.pinned(point) or self.within(point, keep)

    def pinned(self, m: Manifest) -> bool:
        """The newest restorable full, the newest restore point, the window's base."""
        return m is self.newest_full or m is self.newest_point or m is self.base

    @property
    def points_word(self) -> str:
        return "full" if self.point_kind is None else "restore point"

    def decide(self, m: Manifest) -> Decision:
        age = _age(self.now, m)
        if not m.restorable:
            return self._decide_failed(m)
        if m.kind == self.full_kind:
            return self._decide_point(m, age, self.keep_fulls)
        if m.kind == self.point_kind and m.backup_id in self.faults:
            return self._decide_broken(m, age)
        if m.kind == self.point_kind:
            return self._decide_point(m, age, self.keep_points)
        if m.kind == self.increment_kind:
            return self._decide_increment(m, age)
        return Decision(m.backup_id, True, f"no rule for {m.kind} backups")

    def _decide_failed(self, m: Manifest) -> Decision:
        if m.kind in (self.full_kind, self.point_kind):
            newer = self.newest_point
            if newer is not None and m.finished_at < newer.finished_at:
                return Decision(m.backup_id, False, f"failed, and a newer {newer.kind} succeeded")
            return Decision(m.backup_id, True, f"failed; no newer {self.points_word} yet")
        gone = self.newest_full is not None and m.finished_at < self.newest_full.finished_at
        why = "failed, and a newer full succeeded" if gone else "failed; no newer full yet"
        return Decision(m.backup_id, not gone, why)

    def _decide_point(self, m: Manifest, age: str, keep: timedelta | None) -> Decision:
        """A restore point: a restorable full, or an incremental with a complete chain."""
        child = self.needed_by.get(m.backup_id)
        if m is self.newest_full:
            return Decision(m.backup_id, True, f"{age} old, the newest restorable full")
        if m is self.newest_point:
            return Decision(m.backup_id, True, f"{age} old, the newest restore point")
        if m is self.base:
            return Decision(m.backup_id, True, f"{age} old, base of the point-in-time window")
        if self.within(m, keep):
            return Decision(m.backup_id, True, f"{age} old, within retention")
        assert keep is not None  # within any age otherwise
        if child is not None:
            return Decision(
                m.backup_id,
                True,
                f"{age} old, past retention {_days(keep)}, but needed by {child.label} (kept)",
            )
        return Decision(m.backup_id, False, f"{age} old, retention {_days(keep)}")

    def _decide_broken(self, m: Manifest, age: str) -> Decision:
        """An incremental that restores nothing: it goes with its retention."""
        fault = self.faults[m.backup_id]
        if self.keep_points is None:
            return Decision(m.backup_id, True, f"{age} old, no retention rule; {fault}")
        if self.within(m, self.keep_points):
            return Decision(
                m.backup_id, True, f"{age} old, within retention {_days(self.keep_points)}; {fault}"
            )
        return Decision(m.backup_id, False, f"{age} old, {fault}")

    def _decide_increment(self, m: Manifest, age: str) -> Decision:
        keep = self.keep_increments
        if keep is None:
            return Decision(m.backup_id, True, "no retention rule for increments")
        if self.binlogs_from is not None and m.started_at >= self.binlogs_from:
            assert self.base is not None
            if not self.within(m, keep):
                return Decision(
                    m.backup_id, True, f"{age} old, needed by {self.base.backup_id} for the window"
                )
            return Decision(m.backup_id, True, f"{age} old, within retention {_days(keep)}")
        if not self.within(m, keep):
            return Decision(
                m.backup_id,
                False,
                f"{age} old, retention {_days(keep)}, no kept {self.points_word} needs it",
            )
        return Decision(m.backup_id, True, f"{age} old, within retention {_days(keep)}")
