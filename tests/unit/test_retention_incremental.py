"""MariaDB retention with incrementals (``mariabackup --incremental-lsn``) over random
histories: a kept incremental keeps its whole chain down to its full, every moment of the
point-in-time window stays restorable, a broken chain keeps nothing, and what no rule and
no kept backup needs goes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from backupctl.catalog.manifest import Manifest
from backupctl.retention import Decision, chain_decisions

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MINUTES = {"full": 10, "incremental": 3, "binlog": 1}


def backup(kind: str, hours_ago: float, n: int, failed: bool = False) -> Manifest:
    finished = NOW - timedelta(hours=hours_ago)
    return Manifest(
        backup_id=finished.strftime("%Y%m%dT%H%M%SZ") + f"-{n:06x}",
        policy="shop",
        driver="mariadb",
        kind=kind,
        started_at=finished - timedelta(minutes=MINUTES[kind]),
        finished_at=finished,
        artifacts=[],
        failure="mariabackup failed" if failed else None,
    )


def order(m: Manifest) -> tuple[datetime, str]:
    return m.finished_at, m.backup_id


@dataclass
class History:
    """Backups, each incremental's parent (what its manifest names), and the rules."""

    backups: list[Manifest]
    parents: dict[str, str | None] = field(default_factory=dict)
    fulls: timedelta | None = 30 * DAY
    points: timedelta | None = 30 * DAY
    binlogs: timedelta | None = 7 * DAY

    def parent_of(self, m: Manifest) -> str | None:
        return self.parents.get(m.backup_id)

    def decide(self, backups: list[Manifest] | None = None) -> list[Decision]:
        return chain_decisions(
            self.backups if backups is None else backups,
            "full",
            "binlog",
            self.fulls,
            self.binlogs,
            NOW,
            point_kind="incremental",
            keep_points=self.points,
            parent_of=self.parent_of,
        )

    def kept(self) -> set[str]:
        return {d.backup_id for d in self.decide() if d.keep}

    # -- the test's own reading of the history (before pruning) ---------------------------

    def chain(self, point: Manifest) -> list[Manifest] | None:
        """``point`` and its links down to its full, or None when it restores nothing."""
        by_id = {m.backup_id: m for m in self.backups}
        links = [point]
        while links[-1].kind == "incremental":
            parent = by_id.get(self.parents.get(links[-1].backup_id) or "")
            if parent is None or parent in links or parent.kind == "binlog":
                return None
            links.append(parent)
        return links if all(m.restorable for m in links) else None

    def points_done(self) -> list[Manifest]:
        """The restore points (complete chains), oldest first."""
        return sorted(
            (m for m in self.backups if m.kind != "binlog" and self.chain(m) is not None),
            key=order,
        )

    def descendants(self, link: Manifest) -> list[Manifest]:
        """The restore points whose chain goes through ``link`` (``link`` itself aside)."""
        return [p for p in self.points_done() if p is not link and link in (self.chain(p) or [])]

    def old(self, m: Manifest, keep: timedelta | None) -> bool:
        return keep is not None and NOW - m.finished_at > keep


@st.composite
def histories(draw: st.DrawFn) -> History:
    """Fulls, incrementals and binlogs at random times. Each incremental names the previous
    point (full or incremental, failed or not) or the previous restorable one as its parent,
    or a backup that never existed; some backups are then lost, orphaning their children."""
    items = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["full", "incremental", "incremental", "binlog", "binlog"]),
                st.floats(min_value=0.5, max_value=24 * 90),
                st.sampled_from([False] * 5 + [True]),
                st.sampled_from(["previous"] * 2 + ["previous restorable"] * 6 + ["dangling"]),
            ),
            min_size=1,
            max_size=60,
        )
    )
    made = [
        (backup(kind, hours, n, failed), rule)
        for n, (kind, hours, failed, rule) in enumerate(items)
    ]
    made.sort(key=lambda pair: order(pair[0]))
    parents: dict[str, str | None] = {}
    previous: Manifest | None = None
    previous_good: Manifest | None = None
    for m, rule in made:
        if m.kind == "incremental":
            parent = previous if rule == "previous" else previous_good
            parents[m.backup_id] = (
                f"gone-{m.backup_id}" if rule == "dangling" else parent and parent.backup_id
            )
        if m.kind != "binlog":
            previous = m
            previous_good = m if m.restorable else previous_good
    lost = draw(st.sets(st.integers(min_value=0, max_value=len(made) - 1), max_size=3))
    backups = [m for i, (m, _) in enumerate(made) if i not in lost]
    draw(st.randoms()).shuffle(backups)
    return History(
        backups,
        parents,
        fulls=draw(st.sampled_from([7 * DAY, 30 * DAY, None])),
        points=draw(st.sampled_from([3 * DAY, 14 * DAY, 30 * DAY, None])),
        binlogs=draw(st.sampled_from([2 * DAY, 7 * DAY, None])),
    )


@settings(max_examples=400, deadline=None)
@given(histories())
def test_a_kept_incremental_keeps_its_whole_chain(history: History) -> None:
    kept = history.kept()
    for m in history.backups:
        chain = history.chain(m) if m.kind == "incremental" else None
        if m.backup_id in kept and chain is not None:
            event("a kept incremental with a complete chain")
            assert {link.backup_id for link in chain} <= kept, m.backup_id


@settings(max_examples=400, deadline=None)
@given(histories(), st.floats(min_value=0, max_value=1))
def test_every_moment_of_the_window_stays_restorable(history: History, where: float) -> None:
    """A moment T of the window that was restorable before pruning (a complete chain
    finished before T, binlogs since) still is: the newest point kept before T has its
    whole chain kept, and every binlog backup taken since it started."""
    if history.binlogs is None:
        return
    moment = NOW - history.binlogs * where
    before = [p for p in history.points_done() if p.finished_at <= moment]
    if not before:
        return
    kept = history.kept()
    after = [p for p in before if p.backup_id in kept]
    assert after, "no restore point before the moment is left"
    point = after[-1]
    event(f"the moment restores from a {point.kind}")
    assert {link.backup_id for link in history.chain(point) or []} <= kept
    needed = [
        m
        for m in history.backups
        if m.kind == "binlog" and m.restorable and m.started_at >= point.started_at
    ]
    assert all(m.backup_id in kept for m in needed)


@settings(max_examples=300, deadline=None)
@given(histories())
def test_the_newest_point_and_its_chain_and_the_newest_full_are_kept(history: History) -> None:
    kept = history.kept()
    points = history.points_done()
    if points:
        assert {link.backup_id for link in history.chain(points[-1]) or []} <= kept
    fulls = [m for m in points if m.kind == "full"]
    if fulls:
        assert fulls[-1].backup_id in kept


@settings(max_examples=300, deadline=None)
@given(histories())
def test_nothing_within_its_retention_is_deleted(history: History) -> None:
    keep = {"full": history.fulls, "incremental": history.points, "binlog": history.binlogs}
    kept = history.kept()
    for m in history.backups:
        if m.restorable and not history.old(m, keep[m.kind]):
            assert m.backup_id in kept, m.backup_id


def deletable(history: History) -> Iterator[Manifest]:
    """Backups older than every rule that governs them and needed by nothing, by the
    test's own reckoning: each must go."""
    for m in history.backups:
        if not m.restorable:
            needless = failed_needless(history, m)
        elif m.kind == "binlog":
            needless = binlog_needless(history, m)
        elif history.chain(m) is None:  # a broken incremental
            needless = history.old(m, history.points)
        else:
            needless = point_needless(history, m)
        if needless:
            yield m


def failed_needless(history: History, m: Manifest) -> bool:
    """A failed binlog once a newer full succeeded, a failed point once a newer one did."""
    newer = [p for p in history.points_done() if p.finished_at > m.finished_at]
    return any(p.kind == "full" for p in newer) if m.kind == "binlog" else bool(newer)


def point_needless(history: History, m: Manifest) -> bool:
    """Past its retention, not the newest full nor the newest point, not the window's base
    (a newer point finished before the window), and no point at all chains onto it."""
    keep = history.fulls if m.kind == "full" else history.points
    window = None if history.binlogs is None else NOW - history.binlogs
    newer = [p for p in history.points_done() if order(p) > order(m)]
    newer_before = [p for p in newer if window is None or p.finished_at <= window]
    newer_full = any(p.kind == "full" for p in newer)
    return (
        history.old(m, keep)
        and bool(newer_before)
        and (m.kind == "incremental" or newer_full)
        and not history.descendants(m)
    )


def binlog_needless(history: History, m: Manifest) -> bool:
    """Past its retention, and some point finished before the window such that it and every
    later point started after this binlog backup did."""
    if history.binlogs is None or not history.old(m, history.binlogs):
        return False
    window = NOW - history.binlogs
    points = history.points_done()
    return any(
        p.finished_at <= window and all(q.started_at > m.started_at for q in points[i:])
        for i, p in enumerate(points)
    )


@settings(max_examples=400, deadline=None)
@given(histories())
def test_what_no_rule_and_nothing_kept_needs_goes(history: History) -> None:
    kept = history.kept()
    gone = list(deletable(history))
    event(f"deletable: {'some' if gone else 'none'}")
    for m in gone:
        assert m.backup_id not in kept, m.backup_id


@settings(max_examples=300, deadline=None)
@given(histories())
def test_a_broken_chain_keeps_nothing_else(history: History) -> None:
    """Leaving out the incrementals that restore nothing changes no other decision."""
    broken = {
        m.backup_id
        for m in history.backups
        if m.kind == "incremental" and m.restorable and history.chain(m) is None
    }
    whole = {d.backup_id: d.keep for d in history.decide()}
    without = history.decide([m for m in history.backups if m.backup_id not in broken])
    assert all(whole[d.backup_id] == d.keep for d in without)


@settings(max_examples=300, deadline=None)
@given(histories())
def test_one_decision_per_backup_oldest_first_and_deterministic(history: History) -> None:
    decisions = history.decide()
    assert [d.backup_id for d in decisions] == [
        m.backup_id for m in sorted(history.backups, key=order)
    ]
    assert decisions == history.decide(list(reversed(history.backups)))
    assert all(d.reason for d in decisions)


@settings(max_examples=200, deadline=None)
@given(histories())
def test_without_incrementals_the_decisions_are_the_old_ones(history: History) -> None:
    backups = [m for m in history.backups if m.kind != "incremental"]
    old = chain_decisions(backups, "full", "binlog", history.fulls, history.binlogs, NOW)
    new = history.decide(backups)
    assert [(d.backup_id, d.keep) for d in old] == [(d.backup_id, d.keep) for d in new]


# -- examples ------------------------------------------------------------------------------


def weekly_history() -> tuple[History, dict[str, Manifest]]:
    """Day 40 of a weekly full (days 40, 33, 26, …, 5 ago) with a daily incremental on
    the other days, each on the day before, and a binlog backup every 6 hours. Rules:
    full 30d, incremental 30d, binlog 7d. Backups are named by kind and days ago."""
    named: dict[str, Manifest] = {}
    history = History([])
    parent: Manifest | None = None
    for n, days in enumerate(range(40, 0, -1)):
        kind = "full" if (40 - days) % 7 == 0 else "incremental"
        m = backup(kind, 24 * days - 0.5, n)
        named[f"{kind}-{days}"] = m
        if kind == "incremental":
            assert parent is not None
            history.parents[m.backup_id] = parent.backup_id
        parent = m
    for n, hours in enumerate(range(6, 24 * 40, 6), start=100):
        named[f"binlog-{hours}h"] = backup("binlog", hours, n)
    history.backups = list(named.values())
    return history, named


def by_name(history: History, named: dict[str, Manifest]) -> dict[str, Decision]:
    decisions = {d.backup_id: d for d in history.decide()}
    return {name: decisions[m.backup_id] for name, m in named.items()}


def test_weekly_fulls_daily_incrementals_the_old_chain_goes_together() -> None:
    history, named = weekly_history()
    d = by_name(history, named)
    for days in range(40, 33, -1):  # the chain of the full of day 40: all past 30 days
        kind = "full" if days == 40 else "incremental"
        assert not d[f"{kind}-{days}"].keep, d[f"{kind}-{days}"]
    assert "retention 30d" in d["full-40"].reason
    assert "retention 30d" in d["incremental-34"].reason


def test_a_full_past_its_retention_stays_while_an_incremental_chains_onto_it() -> None:
    history, named = weekly_history()
    d = by_name(history, named)
    # full of day 33, incrementals of days 32..27: those of days 29..27 are within 30d
    assert d["full-33"].keep
    assert d["full-33"].reason == (
        f"33.0d old, past retention 30d, but needed by incremental "
        f"{named['incremental-32'].backup_id} (kept)"
    )
    assert d["incremental-31"].keep and "needed by incremental" in d["incremental-31"].reason
    assert d["incremental-29"].keep and "within retention" in d["incremental-29"].reason


def test_the_window_starts_at_an_incremental_and_binlogs_since_it_stay() -> None:
    history, named = weekly_history()
    d = by_name(history, named)
    # 7 days ago: the newest point before is the incremental of day 8 (finished 7.98d ago)
    assert "base of the point-in-time window" in d["incremental-8"].reason
    base = named["incremental-8"]
    for name, m in named.items():
        if m.kind == "binlog":
            assert d[name].keep == (m.started_at >= base.started_at), (name, d[name])
    assert f"needed by {base.backup_id} for the window" in d["binlog-186h"].reason
    assert not d["binlog-192h"].keep and "retention 7d" in d["binlog-192h"].reason


def test_the_window_base_keeps_its_chain_past_the_incrementals_retention() -> None:
    history, named = weekly_history()
    history.points = 3 * DAY
    d = by_name(history, named)
    assert "base of the point-in-time window" in d["incremental-8"].reason
    for days in (11, 10, 9):  # older than 3 days, links of the base
        assert d[f"incremental-{days}"].keep
        assert "needed by incremental" in d[f"incremental-{days}"].reason
    assert d["full-12"].keep
    assert not d["incremental-7"].keep and "retention 3d" in d["incremental-7"].reason
    assert not d["incremental-25"].keep  # older than 3 days, needed by nothing kept
    assert d["full-26"].keep and "within retention" in d["full-26"].reason  # 30d for fulls


def test_an_orphaned_incremental_goes_with_its_age_and_keeps_nothing() -> None:
    old_full, orphan_old = backup("full", 24 * 50, 1), backup("incremental", 24 * 40, 2)
    newer_full, orphan_new = backup("full", 24 * 10, 3), backup("incremental", 24 * 2, 4)
    history = History(
        [old_full, orphan_old, newer_full, orphan_new],
        {orphan_old.backup_id: "20260101T000000Z-0000aa", orphan_new.backup_id: old_full.backup_id},
    )
    history.parents[orphan_new.backup_id] = orphan_old.backup_id  # a chain through the gone one
    decisions = {d.backup_id: d for d in history.decide()}
    assert not decisions[orphan_old.backup_id].keep
    assert decisions[orphan_old.backup_id].reason == (
        "40.0d old, its chain is broken: parent 20260101T000000Z-0000aa is gone"
    )
    assert decisions[orphan_new.backup_id].keep
    assert (
        f"its chain is broken at {orphan_old.backup_id}: parent"
        in decisions[orphan_new.backup_id].reason
    )
    assert not decisions[old_full.backup_id].keep  # nothing restorable needs it
    assert "the newest restorable full" in decisions[newer_full.backup_id].reason


def test_a_failed_incremental_goes_once_a_newer_point_exists() -> None:
    full = backup("full", 24 * 5, 1)
    failed = backup("incremental", 24 * 4, 2, failed=True)
    after = backup("incremental", 24 * 3, 3)
    last_failed = backup("incremental", 24 * 1, 4, failed=True)
    history = History(
        [full, failed, after, last_failed],
        {after.backup_id: full.backup_id, last_failed.backup_id: after.backup_id},
    )
    decisions = {d.backup_id: d for d in history.decide()}
    assert not decisions[failed.backup_id].keep
    assert decisions[failed.backup_id].reason == "failed, and a newer incremental succeeded"
    assert decisions[last_failed.backup_id].keep
    assert decisions[last_failed.backup_id].reason == "failed; no newer restore point yet"
    assert "the newest restore point" in decisions[after.backup_id].reason


def test_the_newest_point_keeps_a_chain_past_every_retention() -> None:
    full = backup("full", 24 * 60, 1)
    links = [backup("incremental", 24 * (59 - i), 2 + i) for i in range(3)]
    history = History([full, *links], fulls=DAY, points=DAY, binlogs=DAY)
    for child, parent in zip(links, [full, *links], strict=False):
        history.parents[child.backup_id] = parent.backup_id
    assert history.kept() == {m.backup_id for m in history.backups}


def test_point_kind_needs_parent_of() -> None:
    with pytest.raises(ValueError, match="parent_of"):
        chain_decisions([], "full", "binlog", DAY, DAY, NOW, point_kind="incremental")


def test_a_long_history_is_decided_in_linear_time() -> None:
    """50,000 backups in one unbroken chain: each link walked once."""
    rng = random.Random(7)
    history = History([], fulls=30 * DAY, points=14 * DAY, binlogs=7 * DAY)
    parent: Manifest | None = None
    for n in range(50_000):
        kind = "full" if parent is None or rng.random() < 0.0001 else "incremental"
        m = backup(kind, 24 * 90 - n * 0.04, n)
        if parent is not None and kind == "incremental":
            history.parents[m.backup_id] = parent.backup_id
        history.backups.append(m)
        parent = m
    decisions = history.decide()
    assert len(decisions) == 50_000 and decisions[-1].keep
