"""Log lines of the CLI and its worker processes: one format, keys escaped, the level from -q/-v or LOG_LEVEL."""

from __future__ import annotations

import logging
import os

from .layout import printable

FORMAT = "%(levelname)s %(name)s: %(message)s"


class PrintableFormatter(logging.Formatter):
    """Log lines reach the same terminal as the rest: whatever a message quotes (a key, an S3 error text) is
    escaped as every other human line is, so no module has to remember to."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(printable(line) for line in super().format(record).split("\n"))


PACKAGE = "handler"


def level_for(quiet: bool, environment: str | None) -> int:
    """The root level: -q errors only; else LOG_LEVEL, else warnings."""
    if quiet:
        return logging.ERROR
    named = logging.getLevelName((environment or "WARNING").upper())
    return named if isinstance(named, int) else logging.WARNING


def package_level(verbose: int) -> int | None:
    """-v: info from this package (each object a run copies, skips or fails), -vv: debug; botocore's own chatter
    stays at the root's level (LOG_LEVEL=DEBUG shows it)."""
    if not verbose:
        return None
    return logging.INFO if verbose == 1 else logging.DEBUG


def to_stderr(package: int | None = None) -> None:
    """Log to stderr in FORMAT (a worker process calls this too with its parent's level for this package, so its
    lines look like its parent's and -q / -v reach it)."""
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter(FORMAT))
    logging.basicConfig(level=level_for(False, os.environ.get("LOG_LEVEL")), handlers=[handler])
    if package is not None:
        logging.getLogger(PACKAGE).setLevel(package)
