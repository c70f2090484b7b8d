"""Cron expressions as systemd ``OnCalendar=`` specifications (systemd.time(7)).

``0 2 * * 1-5`` becomes ``Mon..Fri *-*-* 02:00:00``. A field matching everything is
``*``, a progression ``00/15`` (to the end of the range) or ``08..18/2``, anything
else a list with ranges (``1..5,10``). When both day fields are restricted, cron
fires on a day matching either; systemd ANDs the parts of one specification, so that
becomes two ``OnCalendar=`` lines (a timer fires on the union of its lines). A
timezone is appended (``… Europe/Berlin``); without one, systemd uses local time,
like cron. What the cron parser refuses (``L``, ``W``, ``#``, ``@reboot``…) cannot
be converted either, and the error says so.
"""

from __future__ import annotations

from itertools import pairwise

from backupctl.cron.expressions import to_cron
from backupctl.cron.parser import CronError, CronField, CronSpec, parse_cron

_SYSTEMD_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # systemd order


def to_oncalendar(expression: str, timezone: str | None = None) -> list[str]:
    """The ``OnCalendar=`` values equivalent to ``expression`` (a cron expression or an
    alias such as ``daily``). Raises CronError for what cannot be converted."""
    try:
        spec = parse_cron(to_cron(expression))
    except CronError as exc:
        raise CronError(f"cannot convert {expression!r} to OnCalendar: {exc}") from None
    return spec_to_oncalendar(spec, timezone)


def spec_to_oncalendar(spec: CronSpec, timezone: str | None = None) -> list[str]:
    """The ``OnCalendar=`` values for a parsed expression."""
    clock = f"{_component(spec.hour)}:{_component(spec.minute)}:00"
    zone = f" {timezone}" if timezone else ""
    month = _component(spec.month)
    if spec.day_or_weekday:
        return [
            f"*-{month}-{_component(spec.day_of_month)} {clock}{zone}",
            f"{_weekdays(spec.day_of_week)} *-{month}-* {clock}{zone}",
        ]
    weekdays = "" if spec.day_of_week.every else f"{_weekdays(spec.day_of_week)} "
    return [f"{weekdays}*-{month}-{_component(spec.day_of_month)} {clock}{zone}"]


def _component(field: CronField) -> str:
    if field.every:
        return "*"
    values = sorted(field.values)
    if len(values) == 1:
        return f"{values[0]:02d}"
    step = values[1] - values[0]
    if len(values) >= 3 and step > 1 and all(b - a == step for a, b in pairwise(values)):
        if values[-1] + step > field.kind.high:
            return f"{values[0]:02d}/{step}"  # start/step: on to the end of the range
        return f"{values[0]:02d}..{values[-1]:02d}/{step}"
    return ",".join(_runs([f"{v:02d}" for v in values], values))


def _weekdays(field: CronField) -> str:
    ordered = sorted((v - 1) % 7 for v in field.values)  # cron Sunday 0 -> systemd last
    return ",".join(_runs([_SYSTEMD_WEEKDAYS[i] for i in ordered], ordered))


def _runs(labels: list[str], values: list[int]) -> list[str]:
    """Labels with runs of three or more consecutive values written ``first..last``."""
    parts: list[str] = []
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or values[end] != values[end - 1] + 1:
            if end - start >= 3:
                parts.append(f"{labels[start]}..{labels[end - 1]}")
            else:
                parts.extend(labels[start:end])
            start = end
    return parts
