"""Progress of a run's copying on a terminal: done/total objects and bytes, the rate, and the time left.

`render` is pure (a snapshot and the seconds since copying began in, one line out); `Meter` redraws that line in
place on a stream at most `MAX_DRAWS_PER_SECOND`, and `wanted` is the one place that decides whether a command
shows progress at all: only on a terminal, never under -q (a log file or a pipe would fill with redraws).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

MAX_DRAWS_PER_SECOND = 4


@dataclass(frozen=True)
class Snapshot:
    """How far one run's copying got: objects done (copied, skipped or failed) and bytes copied, against what
    its plan holds."""

    run_id: str
    objects: int
    total_objects: int
    bytes: int
    total_bytes: int

    @property
    def finished(self) -> bool:
        return self.objects >= self.total_objects


RunProgress = Callable[[Snapshot], None]
"""Told each time a run's copying moves on (per batch, and every few dozen objects within one)."""


def wanted(stream_is_tty: bool, quiet: bool) -> bool:
    """Progress only for a person watching a terminal, and not when they asked for quiet."""
    return stream_is_tty and not quiet


def size(count: float) -> str:
    """Bytes in binary units, as `aws s3 cp` and rclone show them."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float) -> str:
    """H:MM:SS, or M:SS under an hour."""
    whole = max(int(round(seconds)), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def eta(snapshot: Snapshot, elapsed: float) -> float | None:
    """Seconds left at the rate so far, by bytes when the plan has any (a night of large files moves by bytes),
    else by objects; None until something is done."""
    done, total = (
        (snapshot.bytes, snapshot.total_bytes) if snapshot.total_bytes else (snapshot.objects, snapshot.total_objects)
    )
    if snapshot.finished or done >= total:
        return 0.0
    if done <= 0 or elapsed <= 0:
        return None
    return elapsed * (total - done) / done


def render(snapshot: Snapshot, elapsed: float) -> str:
    """`1,234/10,000 objects  12.0 MiB/96.0 MiB  4.0 MiB/s 411 obj/s  ETA 0:21`."""
    objects = f"{snapshot.objects:,}/{snapshot.total_objects:,} objects"
    sizes = f"{size(snapshot.bytes)}/{size(snapshot.total_bytes)}"
    if elapsed > 0 and (snapshot.objects or snapshot.bytes):
        rate = f"{size(snapshot.bytes / elapsed)}/s {snapshot.objects / elapsed:,.0f} obj/s"
    else:  # nothing done yet (worker processes starting, a first batch under way): no rate is known, not 0/s
        rate = "-/s"
    left = eta(snapshot, elapsed)
    return f"{objects}  {sizes}  {rate}  ETA {'-:--' if left is None else duration(left)}"


class Meter:
    """Draws snapshots on one line of `stream`, redrawn in place (carriage return, then erase to the end of the
    line), cut to the terminal's width so it never wraps. A new run (a resumed one, then tonight's) starts its
    own line and its own clock."""

    def __init__(
        self,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        columns: Callable[[], int] = lambda: shutil.get_terminal_size().columns,
        later: Callable[[float, Callable[[], None]], Callable[[], None]] | None = None,
    ):
        self._stream = stream
        self._clock = clock
        self._columns = columns
        self._later = later or _timer
        self._run: str | None = None
        self._started = 0.0
        self._drawn_at: float | None = None
        self._last: Snapshot | None = None
        self._behind: Callable[[], None] | None = None
        """Cancels the draw due for a snapshot that came too soon after the last one."""
        self._lock = threading.Lock()

    def __call__(self, snapshot: Snapshot) -> None:
        with self._lock:
            now = self._clock()
            if snapshot.run_id != self._run:
                self._close()
                self._run, self._started, self._drawn_at = snapshot.run_id, now, None
            self._last = snapshot
            wait = 0.0 if self._drawn_at is None else self._drawn_at + 1 / MAX_DRAWS_PER_SECOND - now
            if wait > 0 and not snapshot.finished:
                # Drawn when its turn comes, not at the next snapshot: with worker processes that is the next
                # batch's end, and the line would lag a whole batch behind.
                if self._behind is None:
                    self._behind = self._later(wait, self._catch_up)
                return
            self._draw(snapshot, now)

    def _catch_up(self) -> None:
        with self._lock:
            if self._behind is not None and self._last is not None:
                self._draw(self._last, self._clock())

    def _draw(self, snapshot: Snapshot, now: float) -> None:
        if self._behind is not None:
            self._behind()
            self._behind = None
        line = render(snapshot, now - self._started)[: max(self._columns() - 1, 20)]
        self._stream.write(f"\r{line}\x1b[K")
        self._stream.flush()
        self._drawn_at = now

    def close(self) -> None:
        """End the line (with the last snapshot drawn, so what stays on screen is where it ended)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._drawn_at is None:
            return
        if self._last is not None:
            self._draw(self._last, self._clock())
        self._stream.write("\n")
        self._stream.flush()
        self._drawn_at = None


def _timer(delay: float, then: Callable[[], None]) -> Callable[[], None]:
    """`then` in `delay` seconds on a daemon thread (an exiting CLI never waits for it); returns its cancel."""
    timer = threading.Timer(delay, then)
    timer.daemon = True
    timer.start()
    return timer.cancel
