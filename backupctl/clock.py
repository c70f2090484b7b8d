"""The clock decisions are taken by: what is due, how old a backup is, what retention
keeps. Operations take it from their context, so tests can move time instead of waiting
for it to pass."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

#: returns the current time, timezone-aware
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real time, in UTC."""
    return datetime.now(UTC)


def ahead_by(seconds: float) -> Clock:
    """A clock running ``seconds`` ahead of the real one (a test hook: see
    ``--clock-offset``)."""
    offset = timedelta(seconds=seconds)
    return lambda: utc_now() + offset
