"""Command-line times are local unless they carry an offset; reports show UTC and local."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from backupctl.errors import UsageError
from backupctl.timefmt import parse_time, utc_and_local


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_time_without_offset_is_local(berlin: None) -> None:
    assert parse_time("2026-11-21 14:02:00") == datetime(2026, 11, 21, 13, 2, tzinfo=UTC)


def test_an_offset_wins_over_the_local_zone(berlin: None) -> None:
    assert parse_time("2026-11-21T14:02:00+00:00") == datetime(2026, 11, 21, 14, 2, tzinfo=UTC)


def test_reports_show_utc_and_local(berlin: None) -> None:
    moment = datetime(2026, 11, 21, 13, 2, tzinfo=UTC)
    assert utc_and_local(moment) == "2026-11-21 13:02:00 UTC (14:02:00 CET local)"
    late = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
    assert utc_and_local(late) == "2026-11-21 23:30:00 UTC (2026-11-22 00:30:00 CET local)"


def test_an_unreadable_time_says_what_to_type() -> None:
    with pytest.raises(UsageError, match="YYYY-MM-DD HH:MM:SS"):
        parse_time("yesterday at two")
