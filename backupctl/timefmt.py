"""Times for people: reports and messages show UTC and the machine's local time."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_and_local(moment: datetime) -> str:
    """``2026-11-21 13:02:00 UTC (14:02:00 CET local)``; the local date only if it differs."""
    utc = moment.astimezone(UTC)
    local = moment.astimezone()
    same_day = local.date() == utc.date()
    local_text = local.strftime("%H:%M:%S %Z" if same_day else "%Y-%m-%d %H:%M:%S %Z")
    return f"{utc.strftime('%Y-%m-%d %H:%M:%S')} UTC ({local_text} local)"
