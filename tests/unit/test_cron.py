"""Cron expressions: parsing, triggers with cron's meaning, OnCalendar conversion
(cross-checked with ``systemd-analyze calendar`` when it is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from backupctl.cron.expressions import to_cron, trigger, validate_expression
from backupctl.cron.oncalendar import to_oncalendar
from backupctl.cron.parser import CronError, parse_cron

BASE = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


def _fires(expression: str, count: int, start: datetime = BASE) -> list[datetime]:
    made = trigger(expression, "UTC")
    out, moment = [], start
    for _ in range(count):
        moment = made.get_next_fire_time(moment, moment)
        out.append(moment)
    return out


def test_weekday_zero_and_seven_are_sunday_as_in_cron() -> None:
    # APScheduler 3's from_crontab reads 0 as Monday; backupctl's triggers must not
    assert _fires("weekly", 1)[0] == datetime(2026, 1, 4, tzinfo=UTC)
    assert {d.strftime("%a") for d in _fires("0 0 * * 7", 3)} == {"Sun"}
    assert {d.strftime("%a") for d in _fires("0 9 * * 1-5", 10)} == {
        "Mon",
        "Tue",
        "Wed",
        "Thu",
        "Fri",
    }
    assert {d.strftime("%a") for d in _fires("0 0 * * */2", 8)} == {"Sun", "Tue", "Thu", "Sat"}


def test_both_day_fields_restricted_fire_on_either() -> None:
    days = [(d.day, d.strftime("%a")) for d in _fires("0 0 13 * 5", 4)]
    assert days == [(2, "Fri"), (9, "Fri"), (13, "Tue"), (16, "Fri")]
    # a day field starting with '*' restricts with AND, as Vixie cron does
    assert all(d.day % 2 == 1 and d.weekday() == 0 for d in _fires("0 0 */2 * 1", 5))


@pytest.mark.parametrize(
    ("expression", "minutes", "weekdays"),
    [
        ("*/15 * * * *", [0, 15, 30, 45], list(range(7))),
        ("5-20/5 * * * *", [5, 10, 15, 20], list(range(7))),
        ("0,30 * * * sat,sun", [0, 30], [0, 6]),
        ("0 0 * * mon-fri", [0], [1, 2, 3, 4, 5]),
        ("0 0 * * 5-7", [0], [0, 5, 6]),
        ("0 0 * * SUN", [0], [0]),
    ],
)
def test_parse_values(expression: str, minutes: list[int], weekdays: list[int]) -> None:
    spec = parse_cron(expression)
    assert sorted(spec.minute.values) == minutes
    assert sorted(spec.day_of_week.values) == weekdays


def test_months_by_name_and_aliases() -> None:
    assert sorted(parse_cron("0 0 1 jan-mar,oct *").month.values) == [1, 2, 3, 10]
    assert to_cron("quarterly") == "0 0 1 1,4,7,10 *"
    assert [d.month for d in _fires("quarterly", 4, datetime(2025, 12, 31, tzinfo=UTC))] == [
        1,
        4,
        7,
        10,
    ]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("0 0 L * *", "'L' (last day"),
        ("0 0 15W * *", "'W' (nearest weekday)"),
        ("0 0 * * 5#2", "'#' (nth weekday"),
        ("0 0 ? * *", "'?'"),
        ("0 0 * * 5-1", "runs backwards"),
        ("*/0 * * * *", "step of 0"),
        ("5/15 * * * *", "like '5-59/15'"),
        ("0 0 * * fri/2", "like 'fri-sat/2'"),
        ("0 0 * foo *", "month: expected a number or a name (jan,"),
        ("0 0 * * * *", "expected five fields"),
        ("@reboot", "'@reboot' is not supported"),
    ],
)
def test_refused_with_a_reason(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=re.escape(message)):
        parse_cron(expression)
    with pytest.raises(ValueError, match=r"expected a five-field|invalid cron expression"):
        validate_expression(expression)


#: expression -> the OnCalendar= lines it becomes (timezone UTC)
CONVERSIONS = {
    "0 2 * * *": ["*-*-* 02:00:00 UTC"],
    "30 2 * * *": ["*-*-* 02:30:00 UTC"],
    "* * * * *": ["*-*-* *:*:00 UTC"],
    "*/15 * * * *": ["*-*-* *:00/15:00 UTC"],
    "*/10 * * * *": ["*-*-* *:00/10:00 UTC"],
    "5-59/15 * * * *": ["*-*-* *:05/15:00 UTC"],
    "0 * * * *": ["*-*-* *:00:00 UTC"],
    "0 */6 * * *": ["*-*-* 00/6:00:00 UTC"],
    "0 8-18 * * *": ["*-*-* 08..18:00:00 UTC"],
    "0 8-18/2 * * *": ["*-*-* 08..18/2:00:00 UTC"],
    "0 8-22/2 * * *": ["*-*-* 08/2:00:00 UTC"],
    "0 1-5/2 * * *": ["*-*-* 01..05/2:00:00 UTC"],
    "0 1,5 * * *": ["*-*-* 01,05:00:00 UTC"],
    "15,45 9,17 * * *": ["*-*-* 09,17:15,45:00 UTC"],
    "0 0 * * 0": ["Sun *-*-* 00:00:00 UTC"],
    "0 0 * * 7": ["Sun *-*-* 00:00:00 UTC"],
    "0 9 * * 1-5": ["Mon..Fri *-*-* 09:00:00 UTC"],
    "0 9 * * sat,sun": ["Sat,Sun *-*-* 09:00:00 UTC"],
    "0 9 * * 0,1,2,5": ["Mon,Tue,Fri,Sun *-*-* 09:00:00 UTC"],
    "0 0 1 * *": ["*-*-01 00:00:00 UTC"],
    "0 0 1 1,4,7,10 *": ["*-01/3-01 00:00:00 UTC"],
    "0 0 1 */3 *": ["*-01/3-01 00:00:00 UTC"],
    "0 0 15 jan,jul *": ["*-01,07-15 00:00:00 UTC"],
    "0 12 * jan-mar *": ["*-01..03-* 12:00:00 UTC"],
    "15 3 */2 * *": ["*-*-01/2 03:15:00 UTC"],
    "0 0 1-7 * *": ["*-*-01..07 00:00:00 UTC"],
    "0 0 13 * 5": ["*-*-13 00:00:00 UTC", "Fri *-*-* 00:00:00 UTC"],
    "0 0 1,15 * 1": ["*-*-01,15 00:00:00 UTC", "Mon *-*-* 00:00:00 UTC"],
    "0 0 */2 * 1": ["Mon *-*-01/2 00:00:00 UTC"],
    "5,10,11,12,30 */6 1-10 * sat,sun": [
        "*-*-01..10 00/6:05,10..12,30:00 UTC",
        "Sat,Sun *-*-* 00/6:05,10..12,30:00 UTC",
    ],
}


@pytest.mark.parametrize(("expression", "expected"), list(CONVERSIONS.items()))
def test_oncalendar(expression: str, expected: list[str]) -> None:
    assert to_oncalendar(expression, "UTC") == expected


def test_oncalendar_aliases_and_timezones() -> None:
    assert to_oncalendar("daily") == ["*-*-* 00:00:00"]  # no timezone: local, like cron
    assert to_oncalendar("weekly", "Europe/Berlin") == ["Sun *-*-* 00:00:00 Europe/Berlin"]


@pytest.mark.parametrize("expression", ["0 0 L * *", "@daily", "0 0 * * 1#2", "1 2 3"])
def test_oncalendar_refuses_what_it_cannot_convert(expression: str) -> None:
    with pytest.raises(CronError, match=f"cannot convert {re.escape(repr(expression))}"):
        to_oncalendar(expression)


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
ITERATIONS = 12


def _systemd_elapses(spec: str) -> list[datetime]:
    proc = subprocess.run(
        [
            "systemd-analyze",
            "calendar",
            f"--iterations={ITERATIONS}",
            "--base-time=2025-12-31 23:59:59 UTC",
            spec,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
    )
    found = re.findall(
        r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", proc.stdout
    )
    return [datetime.fromisoformat(t).replace(tzinfo=UTC) for t in found]


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("expression", [*CONVERSIONS, "hourly", "weekly", "monthly", "quarterly"])
def test_systemd_agrees_with_the_scheduler(expression: str) -> None:
    """The timer fires exactly when run-due and the daemon consider the job due."""
    union: set[datetime] = set()
    for spec in to_oncalendar(expression, "UTC"):
        union.update(_systemd_elapses(spec))
    systemd = sorted(union)[:ITERATIONS]
    assert systemd == _fires(expression, ITERATIONS, datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC))
