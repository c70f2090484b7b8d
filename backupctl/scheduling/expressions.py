"""Schedule expressions: five-field cron or a named period."""

from __future__ import annotations

from apscheduler.triggers.cron import CronTrigger

ALIASES: dict[str, str] = {
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "weekly": "0 0 * * 0",
    "monthly": "0 0 1 * *",
    "quarterly": "0 0 1 1,4,7,10 *",
}
CONTINUOUS = "continuous"


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
        CronTrigger.from_crontab(cron, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {expression!r}: {exc}") from None
    return expression


def trigger(expression: str, timezone: str = "UTC") -> CronTrigger:
    """Return an APScheduler trigger for a (validated) expression."""
    return CronTrigger.from_crontab(to_cron(expression), timezone=timezone)
