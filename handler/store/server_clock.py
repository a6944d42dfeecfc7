"""S3's clock, as its answers tell it: object ages and lock expiry are judged by the server's time, not ours.

S3 stamps every object's LastModified with its own clock (the API reference's Object: "Creation date of the
object"), and every answer with a `Date` header, "the date and time that Amazon S3 responded" (S3 API reference,
Common response headers). Comparing LastModified with this machine's clock, or a lock expiry written by one
machine with another machine's clock, makes any skew a bug: a machine 10 minutes fast copies objects written a
second ago under `min_age_seconds=300`, and takes over a lock its holder renewed a minute ago. So the lock and the
plan keep their times in server time: this machine's clock plus an offset learned from the `Date` of the lock's
own answers (every read and write of the lock refreshes it).

How close: `Date` has whole seconds. An answer to a request sent at local time `sent` and received at
`received`, dated `D`, was made at a server time in [D, D+1) and at a local time in [sent, received], so the
offset lies in (D - received, D + 1 - sent). Each answer narrows the interval the earlier ones left (answers
dated at different fractions of a second pin it down to about a round trip); one that does not fit it (this
machine's clock was set) starts it afresh. A machine that agrees with S3 as far as the answers can tell (the
interval holds zero) keeps its own clock exactly; a skewed one takes the middle of the interval, within half a
second of S3's time from the first answer on (against `min_age_seconds` and TTLs of minutes). `now()` does not
go back as the interval narrows, so a run's start and end are in order. A skew of more than 15 minutes never gets
this far: S3 refuses requests signed that far from its time (RequestTimeTooSkewed, whose answer gives
MaxAllowedSkewMilliseconds 900000), and botocore does not correct for it.

An endpoint whose answers carry no `Date` (moto's in-process mock leaves it out of most answers) leaves the clock
at the last offset it learned, or at this machine's clock, with a warning once a process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

log = logging.getLogger(__name__)

_warned = False

JITTER = 2.0
"""Seconds: more than an offset can move as answers narrow it (a second of Date, and a round trip)."""


class ServerClock:
    """This machine's clock, moved by the offset to the S3 endpoint's clock learned from its answers' `Date`.

    One per lock file (so per dataset and process): each process learns its own offset, from its own answers."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._seen = False
        self._bounds: tuple[float, float] | None = None
        """(low, high): where the answers so far put the offset (None: no `Date` yet)."""
        self._last = 0.0
        self._guard = threading.Lock()

    @property
    def seen(self) -> bool:
        """Whether an answer was observed yet (with a `Date` or without one)."""
        return self._seen

    @property
    def offset(self) -> float:
        """Server time minus this machine's time, in seconds (0 until a `Date` said otherwise)."""
        return self._offset

    def now(self) -> float:
        """The server's time now, in epoch seconds: never earlier than a time this clock gave before by the
        doubt a narrowing interval removes (JITTER), but earlier by more when the clock really went back (an
        offset learned afresh after this machine's clock was set): holding on to a time 10 minutes ahead would
        make a live lock look expired."""
        with self._guard:
            raw = time.time() + self._offset
            if not raw <= self._last < raw + JITTER:
                self._last = raw
            return self._last

    def observe(self, answer: Any, sent: float) -> None:
        """Learn the offset from an answer (a botocore response, or the S3Error / ClientError of a refusal) to a
        request sent at local time `sent`."""
        received = time.time()
        self._seen = True
        date = _server_date(headers_of(answer))
        if date is None:
            _warn_once()
            return
        low, high = date - received, date + 1 - sent
        with self._guard:
            if self._bounds is not None and self._bounds[0] < high and low < self._bounds[1]:
                low, high = max(low, self._bounds[0]), min(high, self._bounds[1])
            self._bounds = (low, high)
            self._offset = 0.0 if low <= 0 < high else (low + high) / 2


def headers_of(answer: Any) -> Mapping[str, str] | None:
    """The HTTP headers (lower-case names) of a botocore answer, of a ClientError, or of the ClientError behind
    one of the store's exceptions (errors.py); None when there are none."""
    if isinstance(answer, BaseException):
        cause = getattr(answer, "cause", None) or answer.__cause__ or answer
        answer = getattr(cause, "response", None)
    if not isinstance(answer, Mapping):
        return None
    headers = (answer.get("ResponseMetadata") or {}).get("HTTPHeaders")
    return headers if isinstance(headers, Mapping) else None


def _server_date(headers: Mapping[str, str] | None) -> float | None:
    value = (headers or {}).get("date")
    if not value:
        return None
    try:
        stamp = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)).timestamp()


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "an answer of the S3 endpoint carried no Date header: lock expiry and min_age_seconds are judged by "
            "this machine's clock (plus any offset learned before); keep it in time with NTP"
        )
