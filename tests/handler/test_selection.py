"""What happens to one listed object: every rule on its own, and the order the rules apply in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from handler.selection import (
    COPY,
    EXCLUDE,
    FAIL,
    FOLDER_MARKER,
    SKIP,
    UNCHANGED,
    Decision,
    SkipKind,
    SourceObject,
    clean_etag,
    decide,
    is_selected,
)

NOW = datetime(2024, 3, 7, 20, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=1)


def obj(
    key: str = "in/a.csv",
    etag: str = "e1",
    size: int = 10,
    storage_class: str = "STANDARD",
    last_modified: datetime = OLD,
) -> SourceObject:
    return SourceObject(key=key, etag=etag, size=size, last_modified=last_modified, storage_class=storage_class)


def decide_one(
    source: SourceObject,
    relative: str | None = None,
    *,
    include: tuple[str, ...] = ("*",),
    exclude: tuple[str, ...] = (),
    landed_etag: str | None = None,
    min_age_seconds: int = 0,
    now: datetime = NOW,
) -> Decision:
    return decide(
        source,
        source.key.removeprefix("in/") if relative is None else relative,
        include=include,
        exclude=exclude,
        landed_etag=landed_etag,
        min_age_seconds=min_age_seconds,
        now=now,
    )


def test_new_object_is_copied() -> None:
    assert decide_one(obj()) == Decision(COPY, "")


@pytest.mark.parametrize("key", ["in/", "in/sub/", "in/données/", "in/a//"])
def test_folder_marker_is_skipped(key: str) -> None:
    assert decide_one(obj(key, size=0)) == Decision(SKIP, FOLDER_MARKER, FOLDER_MARKER)


@pytest.mark.parametrize("key", ["in/sub/", "in/", "in/données/", "in/a//"])
def test_a_key_ending_in_slash_that_holds_bytes_fails_with_what_to_do(key: str) -> None:
    """Its bytes would vanish if it were counted as a folder marker: it fails every run, naming the fix."""
    decision = decide_one(obj(key, size=5))

    assert decision.action == FAIL
    assert decision.reason.startswith("key ends in '/' but holds 5 bytes: ")
    assert "write it under a file name (without the trailing '/')" in decision.reason
    assert "exclude" in decision.reason


def test_a_key_ending_in_slash_that_holds_bytes_can_be_excluded() -> None:
    """The way out for a producer nobody can change: an exclude pattern, as for any other object."""
    assert decide_one(obj("in/sub/", size=5), "sub/", exclude=("*/",)).action == EXCLUDE
    assert decide_one(obj("in/sub/", size=5), "sub/", include=("*.csv",)).action == EXCLUDE


@pytest.mark.parametrize("key", ["in/empty.csv", "in/_SUCCESS", "in/sub/.keep"])
def test_zero_byte_file_is_a_file_and_is_copied(key: str) -> None:
    assert decide_one(obj(key, size=0)).action == COPY


# ---- filters -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "include", "exclude", "selected"),
    [
        ("a/b/c.csv", ("*.csv",), (), True),  # `*` crosses `/`
        ("c.csv", ("*.csv",), (), True),
        ("a/b/c.json", ("*.csv",), (), False),
        ("c.CSV", ("*.csv",), (), False),  # case-sensitive
        ("c.csv", ("*.CSV",), (), False),
        ("Reports/x.csv", ("reports/*",), (), False),
        ("reports/2024/x.csv", ("reports/*",), (), True),
        ("tmp/a.csv", ("*.csv",), ("tmp/*",), False),  # exclude wins
        ("a/tmp/a.csv", ("*.csv",), ("tmp/*",), True),  # patterns anchor at the start
        ("a/tmp/a.csv", ("*.csv",), ("*/tmp/*",), False),
        ("a.csv", ("a.csv",), ("a.csv",), False),
        ("a1.csv", ("a?.csv",), (), True),
        ("a/.csv", ("a?.csv",), (), True),  # `?` also matches `/`
        ("b.csv", ("[ab].csv",), (), True),
        ("c.csv", ("[!ab].csv",), (), True),
        ("a.csv", ("[!ab].csv",), (), False),
        ("x.csv", ("*.json", "*.csv"), (), True),  # any include
        ("x.csv", ("*",), ("*.tmp", "*.csv"), False),  # any exclude
        ("données/été.csv", ("données/*",), (), True),
        ("what?.csv", ("what[?].csv",), (), True),
    ],
)
def test_filters_are_case_sensitive_globs_where_star_crosses_slash_and_exclude_wins(
    relative: str, include: tuple[str, ...], exclude: tuple[str, ...], selected: bool
) -> None:
    assert is_selected(relative, include, exclude) is selected
    expected = Decision(COPY, "") if selected else Decision(EXCLUDE, "excluded by include/exclude filters")
    assert decide_one(obj("in/" + relative), relative, include=include, exclude=exclude) == expected


def test_filters_see_the_key_relative_to_the_source_prefix() -> None:
    decision = decide_one(obj("in/a.csv"), "a.csv", include=("in/*",))

    assert decision.action == EXCLUDE


# ---- incremental -------------------------------------------------------------------------------------------------


def test_unchanged_object_is_skipped_by_its_etag() -> None:
    assert decide_one(obj(etag="abc"), landed_etag="abc") == Decision(SKIP, UNCHANGED, UNCHANGED)


@pytest.mark.parametrize("landed", ["abd", "ABC", "abc-2", ""])
def test_changed_etag_is_copied_again(landed: str) -> None:
    assert decide_one(obj(etag="abc"), landed_etag=landed) == Decision(COPY, "")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ('"abc"', "abc"),
        ("abc", "abc"),
        (' "abc-3" ', "abc-3"),
        ('"d41d8cd98f00b204e9800998ecf8427e"', "d41d8cd98f00b204e9800998ecf8427e"),
    ],
)
def test_clean_etag_drops_the_quotes_s3_adds(raw: str, clean: str) -> None:
    assert clean_etag(raw) == clean


# ---- storage classes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("storage_class", ["GLACIER", "DEEP_ARCHIVE"])
def test_archived_object_is_skipped_with_a_restore_hint(storage_class: str) -> None:
    decision = decide_one(obj(storage_class=storage_class))

    assert decision.action == SKIP
    assert decision.reason == (f"archived in {storage_class}: restore it (or copy it to a readable class) to ingest it")
    assert decision.kind == SkipKind.ARCHIVED


@pytest.mark.parametrize(
    "storage_class",
    ["STANDARD", "GLACIER_IR", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "REDUCED_REDUNDANCY"],
)
def test_readable_storage_classes_are_copied(storage_class: str) -> None:
    assert decide_one(obj(storage_class=storage_class)) == Decision(COPY, "")


# ---- age -----------------------------------------------------------------------------------------------------------


def test_object_exactly_min_age_old_is_copied() -> None:
    source = obj(last_modified=NOW - timedelta(seconds=60))

    assert decide_one(source, min_age_seconds=60) == Decision(COPY, "")


def test_object_one_second_younger_than_min_age_is_left_for_the_next_run() -> None:
    source = obj(last_modified=NOW - timedelta(seconds=59))

    decision = decide_one(source, min_age_seconds=60)

    assert decision == Decision(
        SKIP, "modified 59s ago, younger than min_age_seconds=60; left for the next run", SkipKind.TOO_RECENT
    )


def test_object_modified_in_the_future_counts_as_zero_seconds_old() -> None:
    source = obj(last_modified=NOW + timedelta(minutes=5))

    assert decide_one(source, min_age_seconds=1).reason.startswith("modified 0s ago, younger than min_age_seconds=1")
    assert decide_one(source, min_age_seconds=0).action == COPY


# ---- order of rules ----------------------------------------------------------------------------------------------


def test_folder_marker_wins_over_filters() -> None:
    assert decide_one(obj("in/tmp/", size=0), "tmp/", exclude=("tmp/*",)) == Decision(
        SKIP, FOLDER_MARKER, FOLDER_MARKER
    )


def test_excluded_archived_object_is_excluded_not_skipped() -> None:
    assert decide_one(obj(storage_class="GLACIER"), exclude=("*.csv",)).action == EXCLUDE


def test_unchanged_archived_object_is_routine_unchanged() -> None:
    assert decide_one(obj(etag="x", storage_class="DEEP_ARCHIVE"), landed_etag="x") == Decision(
        SKIP, UNCHANGED, UNCHANGED
    )


def test_archived_reason_wins_over_age() -> None:
    source = obj(storage_class="GLACIER", last_modified=NOW)

    assert decide_one(source, min_age_seconds=3600).reason.startswith("archived in GLACIER")
