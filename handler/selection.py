"""What to do with one listed object: pure decisions, no I/O, so every rule is testable on its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fnmatch import fnmatchcase

COPY = "copy"
SKIP = "skip"
EXCLUDE = "exclude"
FAIL = "fail"

ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
"""Storage classes whose objects need a restore before they can be read (GLACIER_IR is instant: copied)."""


class SkipKind(StrEnum):
    """Why an object is skipped, as the summary's `skipped_by_reason` counts it (never parsed from text)."""

    UNCHANGED = "unchanged"
    FOLDER_MARKER = "folder marker"
    ARCHIVED = "archived"
    TOO_RECENT = "too recent"
    UNSAFE_KEY = "unsafe key"
    TARGET_OCCUPIED = "target occupied"


UNCHANGED = SkipKind.UNCHANGED
FOLDER_MARKER = SkipKind.FOLDER_MARKER
ROUTINE_SKIPS = frozenset({UNCHANGED, FOLDER_MARKER})
"""Skips that are only counted, never written to the manifest line by line."""


@dataclass(frozen=True)
class SourceObject:
    """One listed source object. `etag` is stored without the quotes S3 puts around it."""

    key: str
    etag: str
    size: int
    last_modified: datetime
    storage_class: str = "STANDARD"


@dataclass(frozen=True)
class Decision:
    """An action, and for a skip its kind; `reason` is the message a person reads in the manifest."""

    action: str
    reason: str = ""
    kind: str = ""


def clean_etag(etag: str) -> str:
    return etag.strip().strip('"')


def is_selected(relative: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """Glob filters on the relative key, case-sensitive; `*` also matches `/` (as in `aws s3 --include`)."""
    if not any(fnmatchcase(relative, pattern) for pattern in include):
        return False
    return not any(fnmatchcase(relative, pattern) for pattern in exclude)


def decide(
    obj: SourceObject,
    relative: str,
    *,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    landed_etag: str | None,
    min_age_seconds: int,
    now: datetime,
) -> Decision:
    """Decide one object's fate; the order matters: cheap, certain reasons first.

    `now` is S3's time (the run's start by the lock's clock, server_clock.py), as `obj.last_modified` is: an age
    read off this machine's clock would move by its skew."""
    if obj.key.endswith("/"):
        return Decision(SKIP, FOLDER_MARKER, FOLDER_MARKER)
    if not is_selected(relative, include, exclude):
        return Decision(EXCLUDE, "excluded by include/exclude filters")
    if landed_etag is not None and landed_etag == obj.etag:
        return Decision(SKIP, UNCHANGED, UNCHANGED)
    if obj.storage_class in ARCHIVED_CLASSES:
        return Decision(
            SKIP,
            f"archived in {obj.storage_class}: restore it (or copy it to a readable class) to ingest it",
            SkipKind.ARCHIVED,
        )
    if min_age_seconds:
        age = (now - obj.last_modified).total_seconds()
        if age < min_age_seconds:
            return Decision(
                SKIP,
                f"modified {max(age, 0):.0f}s ago, younger than min_age_seconds={min_age_seconds}; "
                "left for the next run",
                SkipKind.TOO_RECENT,
            )
    return Decision(COPY)
