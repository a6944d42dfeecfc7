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


def folder_with_bytes(size: int) -> str:
    """Why a key ending in `/` that holds bytes is failed, every run, rather than skipped or landed.

    S3 itself stores such an object, but every reader of a raw bucket takes a `/`-ending key for a folder: the S3
    console shows it as one, rclone skips it, and Hadoop-style readers (Athena, Glue, Spark) treat it as a folder
    marker, so its bytes would be landed where nobody reads them. Landing it without the `/` would put a file where
    the folder's other files have their folder (and on top of a real `x` beside `x/`). Only the producer can say
    what file it was meant to be, so the run fails it, naming what to do, instead of dropping its bytes unseen.
    """
    return (
        f"key ends in '/' but holds {size} bytes: readers of the raw bucket (S3 console, Athena, rclone) take a "
        "key ending in '/' for a folder and never read its bytes, so it is not landed; have the producer write "
        "it under a file name (without the trailing '/'), or exclude it (e.g. exclude: '*/') if it is not data"
    )


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
    if obj.key.endswith("/") and obj.size == 0:
        return Decision(SKIP, FOLDER_MARKER, FOLDER_MARKER)
    if not is_selected(relative, include, exclude):
        return Decision(EXCLUDE, "excluded by include/exclude filters")
    if obj.key.endswith("/"):
        return Decision(FAIL, folder_with_bytes(obj.size))
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
