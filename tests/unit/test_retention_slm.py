"""Elasticsearch retention decides exactly as SLM would: expire_after, min_count,
max_count over successful snapshots; failed ones go once a newer success exists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backupctl.catalog.manifest import Manifest
from backupctl.retention import CountRules, slm_decisions

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def snap(days_ago: float, failed: bool = False) -> Manifest:
    finished = NOW - timedelta(days=days_ago)
    return Manifest(
        backup_id=finished.strftime("%Y%m%dT%H%M%SZ") + "-abcdef",
        policy="search",
        driver="elasticsearch",
        kind="snapshot",
        started_at=finished - timedelta(minutes=5),
        finished_at=finished,
        artifacts=[],
        failure="snapshot ended PARTIAL" if failed else None,
    )


def kept(backups: list[Manifest], rules: CountRules) -> list[float]:
    decisions = {d.backup_id: d for d in slm_decisions(backups, rules, NOW)}
    return [
        round((NOW - m.finished_at).total_seconds() / 86400, 1)
        for m in backups
        if decisions[m.backup_id].keep
    ]


def test_expired_snapshots_go_but_min_count_stays() -> None:
    daily = [snap(d) for d in range(40, -1, -1)]  # 40 days ago .. today
    assert kept(daily, CountRules(expire_after=timedelta(days=30))) == list(range(30, -1, -1))
    few = [snap(d) for d in (90, 60, 45)]
    rules = CountRules(expire_after=timedelta(days=30), min_count=2)
    assert kept(few, rules) == [60, 45]


def test_max_count_deletes_the_oldest_even_if_not_expired() -> None:
    recent = [snap(d) for d in (5, 4, 3, 2, 1)]
    rules = CountRules(expire_after=timedelta(days=30), min_count=1, max_count=3)
    assert kept(recent, rules) == [3, 2, 1]


def test_failed_snapshots_go_once_a_newer_one_succeeded() -> None:
    history = [snap(3), snap(2, failed=True), snap(1), snap(0.5, failed=True)]
    decisions = slm_decisions(history, CountRules(min_count=5), NOW)
    assert [d.keep for d in decisions] == [True, False, True, True]
    assert "no newer backup succeeded yet" in decisions[-1].reason
    assert "succeeded" in decisions[1].reason


def test_failed_snapshots_do_not_count_towards_min_or_max() -> None:
    history = [snap(50), snap(40, failed=True), snap(35, failed=True)]
    rules = CountRules(expire_after=timedelta(days=30), min_count=1, max_count=1)
    decisions = slm_decisions(history, rules, NOW)
    assert [d.keep for d in decisions] == [True, True, True]
    assert decisions[0].reason == "one of the newest 1 (min_count)"


def test_every_decision_says_why_and_is_deterministic() -> None:
    history = [snap(d, failed=d % 7 == 0) for d in range(60)]
    rules = CountRules(expire_after=timedelta(days=30), min_count=5, max_count=40)
    first = slm_decisions(history, rules, NOW)
    assert first == slm_decisions(list(reversed(history)), rules, NOW)
    assert all(d.reason for d in first)
