"""APScheduler triggers for parsed cron expressions, with cron's meaning.

APScheduler 3's ``CronTrigger.from_crontab`` reads day-of-week 0 as Monday (cron:
Sunday) and ANDs the two day fields (cron ORs them when both are restricted), so
triggers are built from the parsed values instead: weekdays by name, and an
``OrTrigger`` for "day of month or day of week".
"""

from __future__ import annotations

from collections.abc import Callable

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from backupctl.cron.parser import DAY_OF_WEEK, CronField, CronSpec

#: Builds the trigger of a parsed expression in a timezone (None: the host's local zone).
TriggerFactory = Callable[[CronSpec, str | None], BaseTrigger]

_APS_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # indexed by cron number


def _values(field: CronField) -> str:
    if field.every:
        return "*"
    if field.kind is DAY_OF_WEEK:
        return ",".join(_APS_WEEKDAYS[v] for v in sorted(field.values))
    return ",".join(str(v) for v in sorted(field.values))


def cron_trigger(spec: CronSpec, timezone: str | None, second: str = "0") -> BaseTrigger:
    """The trigger firing when ``spec`` matches, in ``timezone`` (None: local time).

    ``second`` is for tests only: a seconds field (e.g. ``*/2``) makes schedules that
    fire within seconds instead of minutes.
    """
    common = {
        "minute": _values(spec.minute),
        "hour": _values(spec.hour),
        "month": _values(spec.month),
        "second": second,
        "timezone": timezone,
    }
    if spec.day_or_weekday:
        return OrTrigger(
            [
                CronTrigger(day=_values(spec.day_of_month), day_of_week="*", **common),
                CronTrigger(day="*", day_of_week=_values(spec.day_of_week), **common),
            ]
        )
    return CronTrigger(
        day=_values(spec.day_of_month), day_of_week=_values(spec.day_of_week), **common
    )


def seconds_trigger_factory(second: str) -> TriggerFactory:
    """A factory adding a seconds field to every trigger (a test hook: see ``cron_trigger``)."""

    def make(spec: CronSpec, timezone: str | None) -> BaseTrigger:
        return cron_trigger(spec, timezone, second=second)

    return make
