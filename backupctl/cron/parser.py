"""Five-field cron expressions, parsed into the set of values each field matches.

One parser serves validation, the APScheduler triggers and the systemd OnCalendar
conversion, so all three agree on what an expression means. It reads what Vixie
cron reads: numbers, names (``jan``-``dec``, ``sun``-``sat``), ``*``, lists,
ranges and steps; day of week 0 and 7 are Sunday; when both day of month and day
of week are restricted (neither starts with ``*``), a day matching either fires.
Extensions some crons have (``L``, ``W``, ``#``, ``?``, ``@reboot``, a seconds
field) are refused with a message that names them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

_ITEM_RE = re.compile(r"^(?P<range>\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?$")
_UNSUPPORTED = {
    "L": "'L' (last day of the month or weekday)",
    "W": "'W' (nearest weekday)",
    "#": "'#' (nth weekday of the month)",
    "?": "'?'",
}


class CronError(ValueError):
    """An expression that is not a five-field cron expression this parser reads."""


@dataclass(frozen=True)
class FieldKind:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_start: int = 0

    @property
    def full(self) -> frozenset[int]:
        return frozenset(range(self.low, self.high + 1))


MINUTE = FieldKind("minute", 0, 59)
HOUR = FieldKind("hour", 0, 23)
DAY_OF_MONTH = FieldKind("day-of-month", 1, 31)
MONTH = FieldKind("month", 1, 12, MONTHS, 1)
DAY_OF_WEEK = FieldKind("day-of-week", 0, 7, WEEKDAYS, 0)  # 7 is Sunday too


@dataclass(frozen=True)
class CronField:
    """The values one field matches; ``star`` when its text starts with ``*``."""

    kind: FieldKind
    values: frozenset[int]
    star: bool
    text: str

    @property
    def every(self) -> bool:
        """True when the field matches every value of its range."""
        return self.values >= self.kind.full - ({7} if self.kind is DAY_OF_WEEK else set())


@dataclass(frozen=True)
class CronSpec:
    """A parsed expression. Day-of-week values are 0-6, Sunday 0."""

    expression: str
    minute: CronField
    hour: CronField
    day_of_month: CronField
    month: CronField
    day_of_week: CronField

    @property
    def day_or_weekday(self) -> bool:
        """Cron's rule: both day fields restricted means a day matching either fires."""
        return not self.day_of_month.star and not self.day_of_week.star


def parse_cron(expression: str) -> CronSpec:
    """Return the parsed form of a five-field cron ``expression``.

    Raises CronError saying which field is wrong and why.
    """
    text = expression.strip()
    if text.startswith("@"):
        raise CronError(f"{text.split()[0]!r} is not supported; write the five fields instead")
    parts = text.split()
    if len(parts) != 5:
        raise CronError(
            f"expected five fields (minute hour day-of-month month day-of-week), "
            f"got {len(parts)} in {expression!r}"
        )
    kinds = (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK)
    fields = [_parse_field(part, kind) for part, kind in zip(parts, kinds, strict=True)]
    return CronSpec(text, *fields)


def _parse_field(text: str, kind: FieldKind) -> CronField:
    values: set[int] = set()
    for item in text.lower().split(","):
        values |= _parse_item(item, kind, text)
    if kind is DAY_OF_WEEK and 7 in values:
        values = (values - {7}) | {0}
    return CronField(kind, frozenset(values), text.startswith("*"), text)


def _unreadable(item: str, kind: FieldKind, field_text: str) -> CronError:
    """The error for an item this parser does not read, naming a known extension."""
    what = None
    if "#" in item:
        what = _UNSUPPORTED["#"]
    elif "?" in item:
        what = _UNSUPPORTED["?"]
    elif re.fullmatch(r"\d*l|lw", item):
        what = _UNSUPPORTED["L"]
    elif re.fullmatch(r"\d+w", item):
        what = _UNSUPPORTED["W"]
    if what is not None:
        return CronError(f"{what} in the {kind.name} field {field_text!r} is not supported")
    return CronError(f"cannot read {item!r} in the {kind.name} field {field_text!r}")


def _parse_item(item: str, kind: FieldKind, field_text: str) -> set[int]:
    match = _ITEM_RE.match(item)
    if not match or re.fullmatch(r"\d*l|lw|\d+w", item):
        raise _unreadable(item, kind, field_text)
    span, step_text = match.group("range"), match.group("step")
    step = int(step_text) if step_text is not None else 1
    if step == 0:
        raise CronError(f"a step of 0 in the {kind.name} field {field_text!r} never advances")
    high = kind.high - 1 if kind is DAY_OF_WEEK else kind.high  # '*' covers 0-6
    if span == "*":
        start, end = kind.low, high
    elif "-" in span:
        first, last = span.split("-", 1)
        start, end = _value(first, kind), _value(last, kind)
        if start > end:
            raise CronError(f"the range {span!r} in the {kind.name} field runs backwards")
    elif step_text is not None:  # '5/15': some crons read 5-max/15, Vixie cron refuses it
        last = kind.names[high - kind.names_start] if span.isalpha() else str(high)
        raise CronError(
            f"{item!r} in the {kind.name} field: put a range before the step, "
            f"like '{span}-{last}/{step_text}'"
        )
    else:
        start = end = _value(span, kind)
    return set(range(start, end + 1, step))


def _value(token: str, kind: FieldKind) -> int:
    if token.isdigit():
        number = int(token)
        if not kind.low <= number <= kind.high:
            raise CronError(f"{kind.name} {number} is out of range {kind.low}-{kind.high}")
        return number
    if token in kind.names:
        return kind.names.index(token) + kind.names_start
    expected = f"a number or a name ({', '.join(kind.names)})" if kind.names else "a number"
    raise CronError(f"{kind.name}: expected {expected}, got {token!r}")
