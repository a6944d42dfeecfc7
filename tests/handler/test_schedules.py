"""EventBridge Scheduler's expression rules (handler/schedules.py): what AWS accepts passes, and each kind of
mistake is named with its field and range. The dataset config's own tests (test_config.py) check the wiring."""

from __future__ import annotations

import pytest

from handler.schedules import schedule_problem


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
