"""Ctrl-C and SIGTERM in the CLI: each raises `Interrupted` in the main thread, so every step unwinds through
its clean-up (the lock released, the workers' running batches recorded), and how many have arrived is kept, so
that a second one means "stop now" wherever the first one was caught (even one Python swallowed: raised in a
weakref callback, it is printed as "Exception ignored" and lost).

A clean-up that must finish for nothing to be lost (releasing the lock, so that the next run completes this one
at once rather than after the lock's TTL) runs `held`: a signal arriving meanwhile waits until it is done, and
only another one after that cuts it short.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import Interrupted

_received: list[int] = []
_held: list[tuple[list[int], bool]] = []
"""The signals each `held` block (innermost last) has put off, and whether it puts off every one."""


def stop_on_signals() -> None:
    """Raise Interrupted in the main thread on SIGINT and SIGTERM, counting from none."""
    _received.clear()
    _held.clear()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _interrupt)


def _interrupt(signum: int, frame: Any) -> None:
    _received.append(signum)
    if _held:
        put_off, every = _held[-1]
        if every or not put_off:
            put_off.append(signum)
            return
    raise Interrupted(signum)


def again() -> bool:
    """Whether the user asked to stop more than once: the second Ctrl-C stops the workers at once."""
    return len(_received) > 1


@contextmanager
def held(*, every: bool = False) -> Iterator[None]:
    """Put off the first signal that arrives until the block is done, then raise it; a second one is not put
    off (the block may be stuck: an endpoint that no longer answers), unless `every` (a block that cannot
    block, such as starting processes: cut short, a child would read half its start-up data)."""
    put_off: list[int] = []
    _held.append((put_off, every))
    try:
        yield
    finally:
        _held.pop()
    if put_off:
        raise Interrupted(put_off[0])
