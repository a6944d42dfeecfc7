"""A machine whose clock is FAULT_CLOCK_OFFSET seconds off: put this folder on a child's PYTHONPATH.

Python imports `sitecustomize` at start-up, before the program: `time.time`, `time.time_ns` and
`datetime.datetime.now` / `utcnow` / `today` then read the real clock plus the offset (monotonic clocks are left
alone, as a skewed wall clock leaves them). Standalone on purpose: it runs before any package is importable, and
in the child of whichever checkout FAULT_RUNTIME names. The fault campaign uses it for a second runner whose
clock differs from the live runner's (tests/faults/test_campaign.py).
"""

import datetime as _datetime
import os as _os
import time as _time

_OFFSET = float(_os.environ.get("FAULT_CLOCK_OFFSET") or 0)

if _OFFSET:
    _real_time, _real_time_ns = _time.time, _time.time_ns
    _time.time = lambda: _real_time() + _OFFSET
    _time.time_ns = lambda: _real_time_ns() + int(_OFFSET * 1e9)

    class _SkewedDatetime(_datetime.datetime):
        @classmethod
        def now(cls, tz=None):  # noqa: ANN001, ANN206 - the signature of datetime.now
            return super().now(tz) + _datetime.timedelta(seconds=_OFFSET)

        @classmethod
        def utcnow(cls):  # noqa: ANN206
            return super().utcnow() + _datetime.timedelta(seconds=_OFFSET)

        @classmethod
        def today(cls):  # noqa: ANN206
            return cls.now()

    _SkewedDatetime.__name__ = _SkewedDatetime.__qualname__ = "datetime"
    _SkewedDatetime.__module__ = "datetime"
    _datetime.datetime = _SkewedDatetime
