"""MariaDB retention over random histories: fulls by age but never the newest restorable
one, binlogs by age but never one a kept full needs for the point-in-time window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from backupctl.catalog.manifest import Manifest
from backupctl.retention import chain_decisions

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
FULLS, BINLOGS = timedelta(days=30), timedelta(days=7)


def backup(kind: str, hours_ago: float, n: int, failed: bool = False) -> Manifest:
    finished = NOW - timedelta(hours=hours_ago)
    return Manifest(
        backup_id=finished.strftime("%Y%m%dT%H%M%SZ") + f"-{n:06x}",
        policy="shop",
        driver="mariadb",
        kind=kind,
        started_at=finished - timedelta(minutes=10 if kind == "full" else 1),
        finished_at=finished,
        artifacts=[],
        failure="mariabackup failed" if failed else None,
    )


@st.composite
def histories(draw: st.DrawFn) -> list[Manifest]:
    items = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["full", "binlog", "binlog", "binlog"]),
                st.floats(min_value=0.5, max_value=24 * 90),
                st.booleans(),
            ),
            min_size=1,
            max_size=60,
        )
    )
    return [
        backup(kind, hours, n, failed and kind == "full")
        for n, (kind, hours, failed) in enumerate(items)
    ]


def kept(history: list[Manifest]) -> list[Manifest]:
    decisions = {
        d.backup_id: d for d in chain_decisions(history, "full", "binlog", FULLS, BINLOGS, NOW)
    }
    return [m for m in history if decisions[m.backup_id].keep]


@settings(max_examples=300, deadline=None)
@given(histories())
def test_the_newest_restorable_full_is_never_deleted(history: list[Manifest]) -> None:
    good = [m for m in history if m.kind == "full" and m.restorable]
    if good:
        newest = max(good, key=lambda m: (m.finished_at, m.backup_id))
        assert newest in kept(history)


@settings(max_examples=300, deadline=None)
@given(histories(), st.floats(min_value=0, max_value=1))
def test_every_moment_of_the_window_stays_restorable(history: list[Manifest], where: float) -> None:
    """A moment T in the last 7 days that was restorable before pruning (a full finished
    before T, and the binlogs after it) still is: its base full and every binlog backup
    taken since that full started are kept."""
    moment = NOW - BINLOGS * where
    good = [m for m in history if m.kind == "full" and m.restorable and m.finished_at <= moment]
    if not good:
        return
    after = kept(history)
    bases = [m for m in good if m in after]
    assert bases, "no full before the moment is left"
    base = max(bases, key=lambda m: (m.finished_at, m.backup_id))
    needed = [m for m in history if m.kind == "binlog" and m.started_at >= base.started_at]
    assert all(m in after for m in needed)


@settings(max_examples=200, deadline=None)
@given(histories())
def test_decisions_are_deterministic_and_explained(history: list[Manifest]) -> None:
    first = chain_decisions(history, "full", "binlog", FULLS, BINLOGS, NOW)
    assert first == chain_decisions(list(reversed(history)), "full", "binlog", FULLS, BINLOGS, NOW)
    assert all(d.reason for d in first)


def test_old_fulls_and_binlogs_go_with_their_reasons() -> None:
    history = [
        backup("full", 24 * 40, 1),
        backup("binlog", 24 * 39, 2),
        backup("full", 24 * 10, 3),
        backup("binlog", 24 * 9, 4),
        backup("full", 24 * 1, 5),
        backup("binlog", 2, 6),
    ]
    decisions = {
        d.backup_id: d for d in chain_decisions(history, "full", "binlog", FULLS, BINLOGS, NOW)
    }
    by_n = {int(m.backup_id[-6:], 16): decisions[m.backup_id] for m in history}
    assert not by_n[1].keep and "retention 30d" in by_n[1].reason
    assert not by_n[2].keep
    assert by_n[3].keep and "base of the point-in-time window" in by_n[3].reason
    assert by_n[4].keep and "needed by" in by_n[4].reason
    assert by_n[5].keep and "newest restorable full" in by_n[5].reason
    assert by_n[6].keep
