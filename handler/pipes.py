"""A command whose reader went away (`ingest history | head -1`) ends quietly, the way Unix tools do.

Python ignores SIGPIPE, so a write to a pipe nobody reads raises BrokenPipeError; left alone it became an
"unexpected error" line, or Python's own "Exception ignored ... BrokenPipeError" at exit. Letting SIGPIPE kill the
process instead (Go's default, so rclone's) is not an option here: a run's sockets would get it too when S3 resets a
connection. So the error is caught where the command ends, stdout is pointed at /dev/null so that Python's last
flush has nothing left to fail on (the Python docs' recipe, "Note on SIGPIPE"), and the command exits 141.

141 is 128 + SIGPIPE: the status a shell shows for `seq 100000 | head -1`'s `seq` and for rclone, the status
aws-cli v2 adopts for it, and the CLI's own 128 + signal convention (130 Ctrl-C, 143 SIGTERM). Under
`set -o pipefail` a script learns that the output was cut short, which 0 (aws-cli v1 swallowed the error) hides.
"""

from __future__ import annotations

import functools
import os
import select
import signal
import sys
from collections.abc import Callable
from typing import IO, ParamSpec

EXIT_PIPE = 128 + getattr(signal, "SIGPIPE", 13)
"""141: the reader of stdout went away before the command was done writing."""

P = ParamSpec("P")


def reader_gone(err: BaseException) -> bool:
    """Whether `err` is the broken pipe of stdout or stderr, whose reader left, rather than, say, a socket's (which
    is S3's business, answered as an error like any other)."""
    return isinstance(err, BrokenPipeError) and (_widowed(sys.stdout) or _widowed(sys.stderr))


def quiet_when_stdout_closes(command: Callable[P, int]) -> Callable[P, int]:
    """`command` (an entry point returning an exit code) with its output flushed before it returns, and a broken
    stdout answered by EXIT_PIPE and nothing on stderr."""

    @functools.wraps(command)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            try:
                return command(*args, **kwargs)
            finally:  # buffered output meets the closed pipe here, not in Python's flush at exit
                sys.stdout.flush()
        except BrokenPipeError:
            # The widowed one (both under `2>&1 | head`); stdout, as the recipe has it, where poll cannot tell.
            for stream in [s for s in (sys.stdout, sys.stderr) if _widowed(s)] or [sys.stdout]:
                _to_devnull(stream)
            return EXIT_PIPE

    return guarded


def _widowed(stream: IO[str]) -> bool:
    """A pipe whose read end is closed: poll reports it as an error on the write end (Linux, macOS)."""
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no descriptor (a test's capture)
        return False


def _to_devnull(stream: IO[str]) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no descriptor to replace: nothing will flush to a pipe at exit either
        pass
