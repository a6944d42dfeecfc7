"""EventBridge Scheduler expressions, checked as AWS checks them, so a bad schedule fails `pulumi preview` and a
config check instead of a `pulumi up` halfway through (the schedule is created after the buckets and the Lambda).

The rules are AWS's, from the EventBridge Scheduler user guide ("Schedule types"):

- `rate(value unit)`: a positive whole number and minute, hour or day, singular for 1 and plural above it.
- `at(yyyy-mm-ddThh:mm:ss)`: one run at that moment (in the dataset's `timezone`).
- `cron(minutes hours day-of-month month day-of-week year)`: six fields. Minutes 0-59, hours 0-23,
  day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 1-7 (1 is Sunday) or SUN-SAT, year 1970-2199. Each
  takes `*`, a value, a range `a-b`, an increment `a/n` or `*/n`, and lists of those (`1,15`). Exactly one of
  day-of-month and day-of-week is `?`. Day-of-month also takes `L` (the last day), `LW` (the last weekday)
  and `nW` (the weekday nearest day n); day-of-week takes `L`, `nL` (the last such day of the month) and `n#k`
  (the k-th such day, k 1-5). These stand alone in their field.
"""

from __future__ import annotations

import calendar
import itertools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

EXAMPLE = "cron(0 20 * * ? *)"

_RATE = re.compile(r"rate\((\S+) (\S+)\)\Z")
_RATE_UNITS = ("minute", "hour", "day")
_AT = re.compile(r"at\((.*)\)\Z")
_ALLOWED = re.compile(r"[0-9A-Za-z*?,/#-]+\Z")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    specials: tuple[re.Pattern[str], ...] = ()

    def value(self, text: str) -> int | None:
        """A number or a name (JAN, MON: any case) as its number; None if it is neither."""
        if text.isdigit():
            return int(text)
        upper = text.upper()
        return self.names.index(upper) + 1 if upper in self.names else None

    @property
    def span(self) -> str:
        named = f" or {self.names[0]}-{self.names[-1]}" if self.names else ""
        return f"{self.low}-{self.high}{named}"


_FIELDS = (
    _Field("minutes", 0, 59),
    _Field("hours", 0, 23),
    _Field("day-of-month", 1, 31, specials=(re.compile(r"L\Z"), re.compile(r"LW\Z"), re.compile(r"(\d+)W\Z"))),
    _Field("month", 1, 12, _MONTHS),
    _Field(
        "day-of-week",
        1,
        7,
        _DAYS,
        specials=(re.compile(r"L\Z"), re.compile(r"(\w+)L\Z"), re.compile(r"(\w+)#(\d+)\Z")),
    ),
    _Field("year", 1970, 2199),
)


def schedule_problem(expression: object) -> str | None:
    """Why EventBridge Scheduler would refuse `expression`, in a sentence that quotes it; None if it would not."""
    if not isinstance(expression, str):
        return f"must be a string such as {EXAMPLE!r}"
    text = expression.strip()
    if text.startswith("rate("):
        return _rate_problem(expression, text)
    if text.startswith("at("):
        return _at_problem(expression, text)
    if text.startswith("cron(") and text.endswith(")"):
        return _cron_problem(expression, text[5:-1].split())
    return f"{expression!r} is not 'cron(...)', 'rate(...)' or 'at(...)', e.g. {EXAMPLE!r}"


def _rate_problem(expression: str, text: str) -> str | None:
    match = _RATE.match(text)
    how = "rate takes a whole number above 0 and minute, hour or day, singular for 1: rate(1 hour), rate(12 hours)"
    if match is None:
        return f"{expression!r}: {how}"
    value, unit = match.groups()
    if not value.isdigit() or int(value) < 1 or value.startswith("0"):
        return f"{expression!r}: {value!r} is not a whole number above 0; {how}"
    if unit.rstrip("s") not in _RATE_UNITS:
        return f"{expression!r}: {unit!r} is not a unit; {how}"
    wanted = unit.rstrip("s") + ("" if int(value) == 1 else "s")
    if unit != wanted:
        return f"{expression!r}: write {value} {wanted}, not {value} {unit}; {how}"
    return None


def _at_problem(expression: str, text: str) -> str | None:
    match = _AT.match(text)
    try:
        datetime.strptime(match.group(1) if match else "", "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return f"{expression!r}: at takes one moment as yyyy-mm-ddThh:mm:ss, e.g. 'at(2027-01-31T20:00:00)'"
    return None


def _cron_problem(expression: str, parts: list[str]) -> str | None:
    if len(parts) != 6:
        return (
            f"{expression!r} has {len(parts)} fields; EventBridge cron takes 6: "
            f"minutes hours day-of-month month day-of-week year, e.g. {EXAMPLE!r}"
        )
    if not all(_ALLOWED.match(p) for p in parts):
        return f"{expression!r} has a field with characters cron does not allow"
    day_of_month, day_of_week = parts[2], parts[4]
    if (day_of_month == "?") == (day_of_week == "?"):
        return f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'"
    for spec, part in zip(_FIELDS, parts, strict=True):
        problem = _field_problem(spec, part)
        if problem:
            return f"{expression!r}: {problem}"
    return None


def _field_problem(spec: _Field, part: str) -> str | None:
    if part == "?":
        return None if spec.name in ("day-of-month", "day-of-week") else "'?' is only for day-of-month or day-of-week"
    for special in spec.specials:
        match = special.match(part.upper())
        if match:
            return _special_problem(spec, match.groups())
    for item in part.split(","):
        problem = _item_problem(spec, item)
        if problem:
            return problem
    return None


def _special_problem(spec: _Field, numbers: tuple[str, ...]) -> str | None:
    """`nW` (day-of-month), `nL` and `n#k` (day-of-week): n is a day of the field, k a week of the month."""
    if not numbers:
        return None
    value = spec.value(numbers[0])
    if value is None or not spec.low <= value <= spec.high:
        return f"{spec.name} value {numbers[0]} is outside {spec.span}"
    if len(numbers) > 1 and not 1 <= int(numbers[1]) <= 5:
        return f"{spec.name}: the week in '#' is 1-5, not {numbers[1]}"
    return None


def _item_problem(spec: _Field, item: str) -> str | None:
    base, slash, step = item.partition("/")
    if slash and (not step.isdigit() or int(step) < 1):
        return f"{spec.name} increment {item!r} needs a whole number above 0 after '/'"
    if base == "*":
        return None
    bounds = base.split("-")
    if len(bounds) > 2 or not all(bounds):
        return f"{spec.name} item {item!r} is not a value, a range a-b, an increment a/n or '*'"
    for bound in bounds:
        value = spec.value(bound)
        if value is None:
            return f"{spec.name} item {item!r}: {bound!r} is not a number or a name ({spec.span})"
        if not spec.low <= value <= spec.high:
            hint = " (1 is Sunday)" if spec.name == "day-of-week" else ""
            return f"{spec.name} value {bound} is outside {spec.span}{hint}"
    return None


def longest_gap(expression: str) -> timedelta | None:
    """The longest time between two runs of a valid, repeating expression: what a freshness alarm must wait
    before "no run" means "a run was missed". None for `at(...)` (it runs once), for a cron limited to some
    years (it stops), and for one that runs less than twice in four years. Cron is read in the schedule's own
    clock; a time zone's DST shift is the caller's to add.
    """
    text = expression.strip()
    if text.startswith("rate("):
        value, unit = text[5:-1].split()
        return timedelta(**{unit.rstrip("s") + "s": int(value)})
    if not text.startswith("cron("):
        return None
    minutes, hours, day_of_month, month, day_of_week, year = text[5:-1].split()
    if year != "*":
        return None
    times = sorted(h * 60 + m for h in _expand(_FIELDS[1], hours) for m in _expand(_FIELDS[0], minutes))
    months = _expand(_FIELDS[3], month)
    longest = max((b - a for a, b in itertools.pairwise(times)), default=0)
    previous: date | None = None
    day = _GAP_SPAN[0]
    while day < _GAP_SPAN[1]:
        if day.month in months and _day_matches(day, day_of_month, day_of_week):
            if previous is not None:
                longest = max(longest, (day - previous).days * 1440 + times[0] - times[-1])
            previous = day
        day += timedelta(days=1)
    return timedelta(minutes=longest) if previous is not None and longest else None


_GAP_SPAN = (date(2027, 1, 1), date(2031, 1, 1))
"""Four whole years, a leap year among them: every pattern of months, weekdays and month ends repeats within."""


def _expand(spec: _Field, part: str) -> set[int]:
    """The values a plain field (no specials) takes; a range may wrap past the end (FRI-MON)."""
    values: set[int] = set()
    span = spec.high - spec.low + 1
    for item in part.split(","):
        base, slash, step_text = item.partition("/")
        step = int(step_text) if slash else 1
        if base == "*":
            start, end = spec.low, spec.high
        elif "-" in base:
            first, last = base.split("-")
            start, end = spec.value(first), spec.value(last)
        else:
            start = spec.value(base)
            end = spec.high if slash else start
        assert start is not None and end is not None, f"{item!r} was validated first"
        length = (end - start) % span + 1
        values.update(spec.low + (start - spec.low + offset) % span for offset in range(0, length, step))
    return values


def _day_matches(day: date, day_of_month: str, day_of_week: str) -> bool:
    last = calendar.monthrange(day.year, day.month)[1]
    if day_of_week == "?":
        return _month_day_matches(day, day_of_month.upper(), last)
    return _week_day_matches(day, day_of_week.upper(), last)


def _month_day_matches(day: date, spec: str, last: int) -> bool:
    if spec == "L":
        return day.day == last
    if spec == "LW":
        return day.day == _nearest_weekday(day, last, last)
    if spec.endswith("W"):
        wanted = int(spec[:-1])
        return wanted <= last and day.day == _nearest_weekday(day, wanted, last)
    return day.day in _expand(_FIELDS[2], spec)


def _nearest_weekday(day: date, wanted: int, last: int) -> int:
    """The weekday nearest to day `wanted` of day's month, never leaving the month (Quartz's `W`)."""
    weekday = day.replace(day=wanted).weekday()
    if weekday == 5:
        return wanted - 1 if wanted > 1 else wanted + 2
    if weekday == 6:
        return wanted + 1 if wanted < last else wanted - 2
    return wanted


def _week_day_matches(day: date, spec: str, last: int) -> bool:
    weekday = (day.weekday() + 1) % 7 + 1  # 1 is Sunday, as in cron
    days = _FIELDS[4]
    if spec == "L":
        return weekday == 7
    if spec.endswith("L"):
        return weekday == days.value(spec[:-1]) and day.day + 7 > last
    if "#" in spec:
        name, week = spec.split("#")
        return weekday == days.value(name) and (day.day - 1) // 7 + 1 == int(week)
    return weekday in _expand(days, spec)
