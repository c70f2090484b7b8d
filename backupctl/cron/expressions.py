"""Schedule expressions: five-field cron or a named period."""

from __future__ import annotations

import re
import zoneinfo

from apscheduler.triggers.base import BaseTrigger

from backupctl.cron.parser import CronError, parse_cron
from backupctl.cron.triggers import cron_trigger

ALIASES: dict[str, str] = {
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "weekly": "0 0 * * 0",
    "monthly": "0 0 1 * *",
    "quarterly": "0 0 1 1,4,7,10 *",
}
CONTINUOUS = "continuous"
#: the shape of an IANA name: "UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"
_ZONE_RE = re.compile(r"^[A-Za-z0-9_+-]{1,40}(/[A-Za-z0-9_+-]{1,40}){0,3}$")


def to_cron(expression: str) -> str:
    """Return the five-field cron form of ``expression`` (aliases expanded)."""
    return ALIASES.get(expression.strip(), expression.strip())


def validate_expression(expression: str, *, allow_continuous: bool = False) -> str:
    """Return ``expression`` if it is a valid schedule, else raise ValueError saying why."""
    if allow_continuous and expression == CONTINUOUS:
        return expression
    cron = to_cron(expression)
    if len(cron.split()) != 5:
        names = ", ".join(ALIASES) + (f", {CONTINUOUS}" if allow_continuous else "")
        raise ValueError(
            f"expected a five-field cron expression like '0 2 * * *' or one of {names}, "
            f"got {expression!r}"
        )
    try:
        parse_cron(cron)
    except CronError as exc:
        raise ValueError(f"invalid cron expression {expression!r}: {exc}") from None
    return expression


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA timezone (``Europe/Berlin``, ``UTC``), else raise
    ValueError saying so."""
    try:
        if not _ZONE_RE.match(name):  # zoneinfo recurses per "/" and reads any file named
            raise ValueError(name)
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown timezone {name!r}: expected an IANA name like Europe/Berlin or UTC"
        ) from None
    return name


def trigger(expression: str, timezone: str | None = "UTC") -> BaseTrigger:
    """Return an APScheduler trigger for a (validated) expression, with cron's meaning
    (day of week 0 is Sunday); ``timezone`` None means the host's local time."""
    return cron_trigger(parse_cron(to_cron(expression)), timezone)
