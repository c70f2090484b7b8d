"""Times for people: reports and messages show UTC and the machine's local time."""

from __future__ import annotations

from datetime import UTC, datetime

from backupctl.errors import UsageError


def utc_and_local(moment: datetime) -> str:
    """``2026-11-21 13:02:00 UTC (14:02:00 CET local)``; the local date only if it differs."""
    utc = moment.astimezone(UTC)
    local = moment.astimezone()
    same_day = local.date() == utc.date()
    local_text = local.strftime("%H:%M:%S %Z" if same_day else "%Y-%m-%d %H:%M:%S %Z")
    return f"{utc.strftime('%Y-%m-%d %H:%M:%S')} UTC ({local_text} local)"


def parse_time(text: str) -> datetime:
    """A time as an operator types it: local time unless it carries an offset.

    Raises UsageError saying what to type."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        hint = 'use "YYYY-MM-DD HH:MM:SS" with an optional +HH:MM offset'
        raise UsageError(f"cannot read the time {text!r}: {hint}") from None
    return moment.astimezone() if moment.tzinfo is None else moment


def as_time(text: str) -> datetime | None:
    """``text`` as a time when it reads as one, else None (``--at`` also takes commit ids)."""
    try:
        return parse_time(text)
    except UsageError:
        return None
