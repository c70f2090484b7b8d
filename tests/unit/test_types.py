"""Durations and schedule expressions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backupctl.cron.expressions import to_cron, validate_expression
from backupctl.policy.types import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 2592000), ("12h", 43200), ("15m", 900), ("90s", 90), ("2w", 1209600)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize("text", ["thirty", "30", "0d", "-1d", "1y", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_schedules() -> None:
    assert validate_expression("0 2 * * *") == "0 2 * * *"
    assert to_cron("quarterly") == "0 0 1 1,4,7,10 *"
    assert validate_expression("continuous", allow_continuous=True) == "continuous"
    with pytest.raises(ValueError, match="five-field"):
        validate_expression("continuous")
    with pytest.raises(ValueError, match="invalid cron"):
        validate_expression("61 * * * *")
