"""Progress on a terminal: the line it draws, how often it redraws, and when it is shown at all."""

from __future__ import annotations

import io

import pytest

from handler.progress import MAX_DRAWS_PER_SECOND, Meter, Snapshot, duration, eta, render, size, wanted

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("is_tty", "quiet", "shown"),
    [(True, False, True), (True, True, False), (False, False, False), (False, True, False)],
)
def test_progress_is_shown_only_on_a_terminal_and_never_under_quiet(is_tty, quiet, shown):
    assert wanted(is_tty, quiet) is shown


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (96 * MiB, "96.0 MiB"),
        (3 * 1024**4, "3.0 TiB"),
    ],
)
def test_sizes_are_binary_units(count, text):
    assert size(count) == text


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (21.4, "0:21"), (61, "1:01"), (3723, "1:02:03")])
def test_durations_read_as_a_clock(seconds, text):
    assert duration(seconds) == text


def snap(objects: int, total: int, done: int, total_bytes: int, run: str = "R1") -> Snapshot:
    return Snapshot(run, objects, total, done, total_bytes)


def test_the_line_shows_done_and_total_objects_and_bytes_rate_and_time_left():
    line = render(snap(1234, 10_000, 12 * MiB, 96 * MiB), elapsed=3.0)

    assert line == "1,234/10,000 objects  12.0 MiB/96.0 MiB  4.0 MiB/s 411 obj/s  ETA 0:21"


def test_time_left_is_by_bytes_when_the_plan_has_bytes_else_by_objects():
    assert eta(snap(5, 10, 90, 100), elapsed=9.0) == pytest.approx(1.0)  # 90 % of the bytes in 9 s
    assert eta(snap(5, 10, 0, 0), elapsed=10.0) == pytest.approx(10.0)  # zero-byte files: half the objects
    assert eta(snap(0, 10, 0, 100), elapsed=5.0) is None
    assert eta(snap(10, 10, 60, 100), elapsed=5.0) == 0.0  # all objects done (some skipped: no bytes)


def test_before_anything_is_done_there_is_no_rate_and_no_eta():
    assert render(snap(0, 10, 0, 100), elapsed=0.0) == "0/10 objects  0 B/100 B  -/s  ETA -:--"
    # Workers starting, or a first batch under way in another process: the rate is unknown, not zero.
    assert render(snap(0, 10, 0, 100), elapsed=20.0) == "0/10 objects  0 B/100 B  -/s  ETA -:--"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_redraws_in_place_at_most_a_few_times_a_second():
    stream, clock = io.StringIO(), Clock()
    meter = Meter(stream, clock=clock, columns=lambda: 200)

    meter(snap(0, 10, 0, 100))
    clock.now += 0.01
    meter(snap(1, 10, 10, 100))  # too soon: not drawn
    clock.now += 1 / MAX_DRAWS_PER_SECOND
    meter(snap(2, 10, 20, 100))

    draws = stream.getvalue().split("\r")[1:]
    assert len(draws) == 2
    assert all(d.endswith("\x1b[K") for d in draws), "each draw erases what the longer one before left"
    assert draws[1].startswith("2/10 objects")
    assert "\n" not in stream.getvalue()


def test_a_snapshot_that_came_too_soon_is_drawn_when_its_turn_comes_not_at_the_next_one():
    """With worker processes the next snapshot is the next batch's end: the line must not lag a batch behind."""
    stream, clock, due = io.StringIO(), Clock(), []

    def later(delay, then):
        due.append((delay, then))
        return lambda: None

    meter = Meter(stream, clock=clock, columns=lambda: 200, later=later)

    meter(snap(0, 10, 0, 100))
    clock.now += 0.05
    meter(snap(2, 10, 20, 100))  # too soon: put off
    clock.now += 0.05
    meter(snap(4, 10, 40, 100))  # still too soon: the same turn
    [(delay, then)] = due
    assert delay == pytest.approx(1 / MAX_DRAWS_PER_SECOND - 0.05)
    assert "4/10" not in stream.getvalue()
    clock.now += delay
    then()

    assert stream.getvalue().split("\r")[-1].startswith("4/10 objects")


def test_the_last_snapshot_is_always_drawn_and_the_line_ended():
    stream, clock = io.StringIO(), Clock()
    meter = Meter(stream, clock=clock, columns=lambda: 200)

    meter(snap(0, 10, 0, 100))
    clock.now += 0.01
    meter(snap(10, 10, 100, 100))  # finished: drawn however soon
    meter.close()

    assert stream.getvalue().split("\r")[-1].startswith("10/10 objects  100 B/100 B")
    assert stream.getvalue().endswith("\x1b[K\n")


def test_a_new_run_starts_its_own_line():
    stream, clock = io.StringIO(), Clock()
    meter = Meter(stream, clock=clock, columns=lambda: 200)

    meter(snap(3, 3, 30, 30, run="resumed"))
    clock.now += 0.01
    meter(snap(0, 5, 0, 50, run="tonight"))
    meter.close()

    lines = stream.getvalue().split("\n")
    assert lines[0].split("\r")[-1].startswith("3/3 objects")
    assert lines[1].split("\r")[-1].startswith("0/5 objects")


def test_the_line_is_cut_to_the_terminal_so_it_never_wraps():
    stream = io.StringIO()
    Meter(stream, clock=Clock(), columns=lambda: 30)(snap(1, 10, 1, 10))

    drawn = stream.getvalue().removeprefix("\r").removesuffix("\x1b[K")
    assert len(drawn) == 29


def test_nothing_drawn_means_nothing_to_end():
    stream = io.StringIO()
    Meter(stream).close()
    assert stream.getvalue() == ""
