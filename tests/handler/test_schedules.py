"""EventBridge Scheduler's expression rules (handler/schedules.py): what AWS accepts passes, and each kind of
mistake is named with its field and range. The dataset config's own tests (test_config.py) check the wiring."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest

from handler.schedules import longest_gap, schedule_problem


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 20 * * ? *)",
        "cron(*/5 * * * ? *)",
        "cron(0/15 8-18 ? * MON-FRI *)",
        "cron(0 0 ? jan-mar mon *)",
        "cron(0 0 L * ? *)",
        "cron(0 0 LW * ? *)",
        "cron(0 0 15W * ? *)",
        "cron(0 0 ? * 6L *)",
        "cron(0 0 ? * FRIL *)",
        "cron(0 9 ? * 2#1 *)",
        "cron(0 9 ? * 7#5 *)",
        "cron(0 0 1,15,31 1,6,12 ? 1970,2199)",
        "cron(59 23 31 DEC ? 2026-2030)",
        "cron(0 0 ? * 1-7 *)",
        "at(2027-01-31T20:00:00)",
        "rate(1 minute)",
        "rate(1 day)",
        "rate(90 minutes)",
    ],
)
def test_what_aws_accepts_passes(expression: str) -> None:
    assert schedule_problem(expression) is None


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("cron(0 0 ? * 0 *)", "day-of-week value 0 is outside 1-7 or SUN-SAT (1 is Sunday)"),
        ("cron(0 0 ? * 8 *)", "day-of-week value 8 is outside 1-7"),
        ("cron(0 0 ? * MON-8 *)", "day-of-week value 8 is outside 1-7"),
        ("cron(0 0 ? * FOO *)", "day-of-week item 'FOO': 'FOO' is not a number or a name (1-7 or SUN-SAT)"),
        ("cron(0 0 ? * 2#6 *)", "the week in '#' is 1-5, not 6"),
        ("cron(0 0 ? * 9L *)", "day-of-week value 9 is outside 1-7"),
        ("cron(0 0 32 * ? *)", "day-of-month value 32 is outside 1-31"),
        ("cron(0 0 0 * ? *)", "day-of-month value 0 is outside 1-31"),
        ("cron(0 0 0W * ? *)", "day-of-month value 0 is outside 1-31"),
        ("cron(0 0 L,5 * ? *)", "day-of-month item 'L'"),
        ("cron(0 0 1 13 ? *)", "month value 13 is outside 1-12 or JAN-DEC"),
        ("cron(0 0 1 FOO ? *)", "month item 'FOO'"),
        ("cron(0 0 1 * ? 1969)", "year value 1969 is outside 1970-2199"),
        ("cron(0 0 1 * ? 2200)", "year value 2200 is outside 1970-2199"),
        ("cron(0/0 * * * ? *)", "minutes increment '0/0' needs a whole number above 0"),
        ("cron(0 */x * * ? *)", "hours increment '*/x'"),
        ("cron(? 0 1 * ? *)", "'?' is only for day-of-month or day-of-week"),
        ("cron(0 0 1-2-3 * ? *)", "day-of-month item '1-2-3' is not a value, a range a-b"),
        ("cron(0 0 1 * ? *,)", "year item ''"),
        ("cron(0 0 1 * 2 *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 0 1 * ? *", "is not 'cron(...)', 'rate(...)' or 'at(...)'"),
        ("at(2027-02-30T20:00:00)", "at takes one moment as yyyy-mm-ddThh:mm:ss"),
        ("at(2027-01-31 20:00:00)", "at takes one moment"),
        ("at(tomorrow)", "at takes one moment"),
        ("rate(05 minutes)", "'05' is not a whole number above 0"),
        ("rate(5minutes)", "rate takes a whole number above 0"),
        ("rate(2 days 3 hours)", "rate takes a whole number above 0"),
    ],
)
def test_each_mistake_is_named_with_its_field_and_range(expression: str, why: str) -> None:
    problem = schedule_problem(expression)

    assert problem is not None and problem.startswith(repr(expression))
    assert why in problem


# ---- the longest gap between runs (what the freshness alarm waits for) ------------------------------------


@pytest.mark.parametrize(
    ("expression", "gap"),
    [
        ("cron(0 20 * * ? *)", timedelta(days=1)),
        ("  cron(0 20 * * ? *) ", timedelta(days=1)),
        ("cron(0 20 ? * MON-FRI *)", timedelta(days=3)),  # Friday evening to Monday evening
        ("cron(0 20 ? * 2-6 *)", timedelta(days=3)),
        ("cron(0 20 ? * FRI-MON *)", timedelta(days=4)),  # a range that wraps: Monday to Friday
        ("cron(0 6,18 * * ? *)", timedelta(hours=12)),
        ("cron(0 6,9 * * ? *)", timedelta(hours=21)),  # the long gap is overnight
        ("cron(*/15 * * * ? *)", timedelta(minutes=15)),
        ("cron(10/25 * * * ? *)", timedelta(minutes=35)),  # :10, :35, then :10 of the next hour
        ("cron(0 0 1 * ? *)", timedelta(days=31)),
        ("cron(0 0 L * ? *)", timedelta(days=31)),
        ("cron(0 0 LW * ? *)", timedelta(days=33)),
        ("cron(0 0 ? * 6#3 *)", timedelta(days=35)),
        ("cron(0 0 ? * 2L *)", timedelta(days=35)),
        ("cron(0 0 1 JAN,JUL ? *)", timedelta(days=184)),
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(90 minutes)", timedelta(minutes=90)),
        ("rate(3 days)", timedelta(days=3)),
    ],
)
def test_longest_gap_between_two_runs(expression, gap):
    assert schedule_problem(expression) is None
    assert longest_gap(expression) == gap


@pytest.mark.parametrize(
    "expression",
    ["at(2027-01-31T20:00:00)", "cron(0 20 * * ? 2027)", "cron(0 20 * * ? 2027-2030)", "cron(0 9 29 2 ? *)"],
)
def test_schedules_that_stop_or_run_once_have_no_longest_gap(expression):
    assert schedule_problem(expression) is None
    assert longest_gap(expression) is None


def test_the_weekday_nearest_the_first_stays_in_its_month():
    # 2027-05-01 is a Saturday: 1W is Monday the 3rd, not Friday the 30th of April.
    assert longest_gap("cron(0 0 1W * ? *)") == max_gap_of_days(first_weekday_days())


def first_weekday_days() -> list[date]:
    found = []
    for year in range(2027, 2031):
        for month in range(1, 13):
            day = date(year, month, 1)
            while day.weekday() >= 5:
                day += timedelta(days=1)
            found.append(day)
    return found


def max_gap_of_days(days: list[date]) -> timedelta:
    return max(b - a for a, b in itertools.pairwise(days))
