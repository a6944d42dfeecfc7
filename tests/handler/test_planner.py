"""Planning a run from a listing and the ledger state: counts, collisions, safe keys, order, and batches."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from handler.planner import build_plan, cut_batches, iter_copies, iter_notes
from handler.records import BatchItem, ManifestLine, ObjectStatus, PlanCounts
from handler.selection import SourceObject
from handler.state import LOOKUP_CHUNK, record_landed
from tests.conftest import dataset_config

RUN_DATE = date(2024, 3, 7)
RUN_ID = "20240307T200000Z-ab12"
NOW = datetime(2024, 3, 7, 20, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=2)
PREFIX = "movielens/"  # source and target prefix of conftest's dataset_config


def src(relative: str, etag: str = "e1", size: int = 10, **fields: Any) -> SourceObject:
    return SourceObject(
        key=PREFIX + relative, etag=etag, size=size, last_modified=fields.pop("last_modified", OLD), **fields
    )


def landed(db: sqlite3.Connection, relative: str, etag: str, size: int = 10) -> None:
    """Record in the ledger state that a previous run landed this source object."""
    line = ManifestLine(
        PREFIX + relative, etag, size, f"{PREFIX}old/{relative}", ObjectStatus.COPIED, "", "2024-03-06T20:00:05Z"
    )
    record_landed(db, [line], "20240306T200000Z-0000", "2024-03-06")


def plan(db: sqlite3.Connection, objects: list[SourceObject], **overrides: Any) -> PlanCounts:
    dataset = dataset_config("source-bucket", "raw-bucket", **overrides)
    return build_plan(objects, dataset, db, run_date=RUN_DATE, run_id=RUN_ID, now=NOW)


def target(relative_dir: str, name: str) -> str:
    folder = f"{relative_dir}/" if relative_dir else ""
    return f"{PREFIX}{folder}ingest_date=2024-03-07/{name}"


def test_state_lookups_by_page_decide_each_key_by_its_own_entry_across_page_boundaries(db):
    # Keys around the boundaries of the pages looked up together: landed unchanged (skip), landed with another
    # ETag (copy), never landed (copy).
    total = 2 * LOOKUP_CHUNK + 7
    names = [f"k{i:05d}.csv" for i in range(total)]
    for i, name in enumerate(names):
        if i % 3 == 0:
            landed(db, name, f"e{i}")
        elif i % 3 == 1:
            landed(db, name, "older")

    counts = plan(db, [src(name, f"e{i}") for i, name in enumerate(names)])

    copied = [item.key for item in iter_copies(db)]
    assert copied == [PREFIX + name for i, name in enumerate(names) if i % 3 != 0]
    assert (counts.listed, counts.planned, counts.skipped) == (total, len(copied), total - len(copied))


# ---- counts ----------------------------------------------------------------------------------------------------


def test_every_kind_of_object_is_counted_once(db: sqlite3.Connection) -> None:
    landed(db, "same.csv", "e-same")
    landed(db, "changed.csv", "e-old")
    objects = [
        src("new.csv", size=100),
        src("empty.csv", size=0),
        src("changed.csv", "e-new", size=7),
        src("same.csv", "e-same"),
        src("sub/", size=0),
        src("scratch.tmp"),
        src("frozen.csv", storage_class="GLACIER"),
        src("deep.csv", storage_class="DEEP_ARCHIVE"),
        src("instant.csv", storage_class="GLACIER_IR", size=3),
        src("fresh.csv", last_modified=NOW - timedelta(seconds=30)),
        src("a/../escape.csv"),
        src("long/" + "k" * 1100 + ".csv"),
        src("x//y.csv"),
        src("x/y.csv"),
    ]

    counts = plan(db, objects, exclude=["*.tmp"], min_age_seconds=60)

    assert counts.to_json() == {
        "listed": 14,
        "excluded": 1,
        "planned": 4,
        "planned_bytes": 110,
        "skipped": 6,
        "failed_at_plan": 3,
        "skipped_by_reason": {"unchanged": 1, "folder marker": 1, "archived": 2, "too recent": 1, "unsafe key": 1},
    }
    assert [copy.key for copy in iter_copies(db)] == [
        PREFIX + "changed.csv",
        PREFIX + "empty.csv",
        PREFIX + "instant.csv",
        PREFIX + "new.csv",
    ]


def test_empty_listing_plans_nothing(db: sqlite3.Connection) -> None:
    counts = plan(db, [])

    assert counts.to_json() == {
        "listed": 0,
        "excluded": 0,
        "planned": 0,
        "planned_bytes": 0,
        "skipped": 0,
        "failed_at_plan": 0,
        "skipped_by_reason": {},
    }
    assert list(iter_copies(db)) == []
    assert list(iter_notes(db)) == []


def test_unchanged_object_is_skipped_and_changed_one_planned_again(db: sqlite3.Connection) -> None:
    landed(db, "a.csv", "e1")
    landed(db, "b.csv", "e1")

    counts = plan(db, [src("a.csv", "e1"), src("b.csv", "e2")])

    assert (counts.planned, counts.skipped, counts.skipped_by_reason["unchanged"]) == (1, 1, 1)
    assert list(iter_copies(db)) == [BatchItem(PREFIX + "b.csv", "e2", 10, target("", "b.csv"))]
    assert list(iter_notes(db)) == []  # unchanged is routine: counted, not noted


def test_ledger_entry_of_another_key_does_not_make_an_object_unchanged(db: sqlite3.Connection) -> None:
    landed(db, "a.csv", "e1")

    counts = plan(db, [src("A.csv", "e1"), src("sub/a.csv", "e1")])

    assert counts.planned == 2


# ---- target keys ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("a.csv", target("", "a.csv")),
        ("2024/jan/a.csv", target("2024/jan", "a.csv")),
        ("/lead.csv", target("", "lead.csv")),
        ("données/été 2024.csv", target("données", "été 2024.csv")),
        ("q/what?.csv", target("q", "what?.csv")),
        ("p/a%2Fb.csv", target("p", "a%2Fb.csv")),
        ("e/😀.json", target("e", "😀.json")),
    ],
)
def test_planned_copy_targets_the_rendered_key(db: sqlite3.Connection, relative: str, expected: str) -> None:
    plan(db, [src(relative, size=4)])

    assert list(iter_copies(db)) == [BatchItem(PREFIX + relative, "e1", 4, expected)]


def test_key_template_of_the_dataset_is_used(db: sqlite3.Connection) -> None:
    plan(db, [src("a/b.csv")], key_template="{dataset}/{yyyy}/{mm}/{dd}/{run_id}/{path}")

    [copy] = iter_copies(db)
    assert copy.target == f"{PREFIX}movielens/2024/03/07/{RUN_ID}/a/b.csv"


# ---- collisions --------------------------------------------------------------------------------------------------


def test_two_sources_landing_on_one_target_both_fail_before_any_copy(db: sqlite3.Connection) -> None:
    counts = plan(db, [src("x//y.csv", "e1"), src("x/y.csv", "e2"), src("x/z.csv")])

    shared = target("x", "y.csv")
    assert (counts.planned, counts.failed_at_plan) == (1, 2)
    assert [copy.key for copy in iter_copies(db)] == [PREFIX + "x/z.csv"]
    notes = list(iter_notes(db))
    assert [(n.source_key, n.status, n.target_key) for n in notes] == [
        (PREFIX + "x//y.csv", "failed", shared),
        (PREFIX + "x/y.csv", "failed", shared),
    ]
    for note in notes:
        reason = note.reason
        assert reason.startswith("collision: 2 source objects (")
        assert repr(PREFIX + "x//y.csv") in reason and repr(PREFIX + "x/y.csv") in reason
        assert f"would land on {shared!r}; none of them is copied" in reason


def test_three_way_collision_names_the_count(db: sqlite3.Connection) -> None:
    counts = plan(db, [src("/x/y.csv"), src("x//y.csv"), src("x/y.csv")])

    assert (counts.planned, counts.failed_at_plan) == (0, 3)
    assert {n.reason.split(" (")[0] for n in iter_notes(db)} == {"collision: 3 source objects"}


def test_template_that_drops_the_folder_makes_same_names_collide(db: sqlite3.Connection) -> None:
    # The config refuses such templates; the planner must still catch what gets through.
    dataset = dataclasses.replace(dataset_config("source-bucket", "raw-bucket"), key_template="{date}/{name}")

    counts = build_plan([src("a/data.csv"), src("b/data.csv")], dataset, db, run_date=RUN_DATE, run_id=RUN_ID, now=NOW)

    assert (counts.planned, counts.failed_at_plan) == (0, 2)


def test_a_same_date_rerun_never_plans_over_a_target_another_key_landed(db: sqlite3.Connection) -> None:
    """Defect 8 (issue 7): `x//y.csv` arrives after `x/y.csv` landed today; both render to one key. The state
    knows the key is taken, so the newcomer is skipped to a later date on any server, even one that ignores
    the copy's If-None-Match; the earlier landing is untouched."""
    today = ManifestLine(PREFIX + "x/y.csv", "e-first", 10, target("x", "y.csv"), ObjectStatus.COPIED, "", "t")
    record_landed(db, [today], "20240307T100000Z-0000", RUN_DATE.isoformat())

    counts = plan(db, [src("x/y.csv", "e-first"), src("x//y.csv", "e-newcomer")])

    assert counts.planned == 0
    assert counts.skipped_by_reason["target occupied"] == 1
    (note,) = list(iter_notes(db))
    assert (note.source_key, note.status) == (PREFIX + "x//y.csv", ObjectStatus.SKIPPED)
    assert note.reason.startswith(f"target occupied: {target('x', 'y.csv')!r} already holds 'movielens/x/y.csv'")


def test_a_target_landed_on_another_date_does_not_block_today(db: sqlite3.Connection) -> None:
    landed(db, "x/y.csv", "e-first")  # landed on 2024-03-06 under its own key

    counts = plan(db, [src("x//y.csv", "e-newcomer")])

    assert counts.planned == 1
    assert [item.target for item in iter_copies(db)] == [target("x", "y.csv")]


def test_collision_with_an_unchanged_object_is_not_a_collision(db: sqlite3.Connection) -> None:
    landed(db, "x/y.csv", "e1")

    counts = plan(db, [src("x/y.csv", "e1"), src("x//y.csv", "e2")])

    assert (counts.planned, counts.failed_at_plan, counts.skipped) == (1, 0, 1)


# ---- unsafe and too long ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("relative", "segment"), [("a/../b.csv", ".."), ("./a.csv", "."), ("../../etc/passwd", "..")])
def test_unsafe_key_is_skipped_with_the_reason(db: sqlite3.Connection, relative: str, segment: str) -> None:
    counts = plan(db, [src(relative)])

    assert (counts.planned, counts.skipped, counts.failed_at_plan) == (0, 1, 0)
    assert counts.skipped_by_reason == {"unsafe key": 1}
    [note] = iter_notes(db)
    assert note.to_json() == {
        "source_key": PREFIX + relative,
        "source_etag": "e1",
        "size": 10,
        "target_key": None,
        "status": "skipped",
        "reason": f"unsafe key: key has a {segment!r} segment, which could escape the target prefix",
        "ingested_at": None,
        "checksum": None,
        "source_checksum": None,
        "verified": None,
    }


def test_too_long_target_key_fails_with_the_reason(db: sqlite3.Connection) -> None:
    relative = "é" * 500 + ".csv"  # 1,004 bytes; the target prefix and date partition push it over

    counts = plan(db, [src(relative)])

    assert (counts.planned, counts.failed_at_plan) == (0, 1)
    [note] = iter_notes(db)
    assert note.status == "failed" and note.target_key is None
    assert note.reason.startswith("target key would be ")
    assert "over S3's 1024-byte limit" in note.reason


def test_notes_hold_skips_and_failures_but_not_routine_or_excluded_objects(db: sqlite3.Connection) -> None:
    landed(db, "same.csv", "e1")
    objects = [
        src("same.csv", "e1"),
        src("sub/", size=0),
        src("skip.tmp"),
        src("cold.csv", "e2", size=9, storage_class="GLACIER"),
        src("hot.csv", last_modified=NOW - timedelta(seconds=10)),
        src("ok.csv"),
    ]

    plan(db, objects, exclude=["*.tmp"], min_age_seconds=60)

    assert [note.to_json() for note in iter_notes(db)] == [
        {
            "source_key": PREFIX + "cold.csv",
            "source_etag": "e2",
            "size": 9,
            "target_key": None,
            "status": "skipped",
            "reason": "archived in GLACIER: restore it (or copy it to a readable class) to ingest it",
            "ingested_at": None,
            "checksum": None,
            "source_checksum": None,
            "verified": None,
        },
        {
            "source_key": PREFIX + "hot.csv",
            "source_etag": "e1",
            "size": 10,
            "target_key": None,
            "status": "skipped",
            "reason": "modified 10s ago, younger than min_age_seconds=60; left for the next run",
            "ingested_at": None,
            "checksum": None,
            "source_checksum": None,
            "verified": None,
        },
    ]


# ---- order ---------------------------------------------------------------------------------------------------------


def test_copies_come_out_in_key_order_whatever_the_listing_order(db: sqlite3.Connection) -> None:
    relatives = ["b.csv", "a.csv", "B.csv", "é.csv", "z/a.csv", "😀.csv", "！.csv", "a b.csv", "a-b.csv", "0.csv"]
    relatives += [f"n/{i}.csv" for i in range(50)]
    shuffled = relatives[:]
    random.Random(3).shuffle(shuffled)

    plan(db, [src(r) for r in shuffled])

    keys = [copy.key for copy in iter_copies(db)]
    # S3 lists in UTF-8 byte order; for str that is code point order.
    assert keys == sorted(PREFIX + r for r in relatives)
    assert keys == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_the_same_key_listed_twice_is_planned_once(db: sqlite3.Connection) -> None:
    counts = plan(db, [src("a.csv", "e1"), src("a.csv", "e2")])

    assert (counts.listed, counts.planned) == (2, 1)
    assert [c.key for c in iter_copies(db)] == [PREFIX + "a.csv"]


# ---- batches ---------------------------------------------------------------------------------------------------------


def items(*sizes: int) -> list[BatchItem]:
    return [BatchItem(f"k{n:03d}", "e", size, f"t{n:03d}") for n, size in enumerate(sizes)]


def sizes_of(batches: list[list[BatchItem]]) -> list[list[int]]:
    return [[item.size for item in batch] for batch in batches]


def test_batches_are_cut_by_count() -> None:
    batches = list(cut_batches(items(*[1] * 7), max_objects=3, max_bytes=1000))

    assert sizes_of(batches) == [[1, 1, 1], [1, 1, 1], [1]]


def test_batches_are_cut_by_bytes() -> None:
    batches = list(cut_batches(items(4, 4, 4, 4, 4), max_objects=100, max_bytes=10))

    assert sizes_of(batches) == [[4, 4], [4, 4], [4]]


def test_batch_may_fill_its_bytes_exactly() -> None:
    batches = list(cut_batches(items(5, 5, 5), max_objects=100, max_bytes=10))

    assert sizes_of(batches) == [[5, 5], [5]]


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ((1, 100, 1), [[1], [100], [1]]),
        ((100, 1, 1), [[100], [1, 1]]),
        ((1, 1, 100), [[1, 1], [100]]),
        ((100, 100), [[100], [100]]),
        ((100,), [[100]]),
    ],
)
def test_object_larger_than_a_batch_goes_alone(sizes: tuple[int, ...], expected: list[list[int]]) -> None:
    assert sizes_of(list(cut_batches(items(*sizes), max_objects=100, max_bytes=10))) == expected


def test_zero_byte_objects_are_cut_by_count() -> None:
    assert sizes_of(list(cut_batches(items(0, 0, 0, 0, 0), max_objects=2, max_bytes=1))) == [[0, 0], [0, 0], [0]]


def test_no_items_gives_no_batches() -> None:
    assert list(cut_batches([], max_objects=10, max_bytes=10)) == []


@pytest.mark.parametrize("seed", range(20))
def test_batches_keep_every_item_in_order_none_empty_none_over_limits_and_none_cut_early(seed: int) -> None:
    rng = random.Random(seed)
    max_objects, max_bytes = rng.randint(1, 8), rng.randint(1, 200)
    given = items(*(rng.choice([0, 1, rng.randint(1, 100), rng.randint(100, 500)]) for _ in range(rng.randint(0, 80))))

    batches = list(cut_batches(iter(given), max_objects=max_objects, max_bytes=max_bytes))

    assert [item for batch in batches for item in batch] == given
    for number, batch in enumerate(batches):
        total = sum(item.size for item in batch)
        assert batch, "empty batch"
        assert len(batch) <= max_objects
        assert total <= max_bytes or len(batch) == 1
        if number + 1 < len(batches):
            following = batches[number + 1][0].size
            assert len(batch) == max_objects or total + following > max_bytes


def test_planned_copies_cut_into_batches_hold_every_copy(db: sqlite3.Connection) -> None:
    plan(db, [src(f"f{n:02d}.csv", size=n) for n in range(30)])

    batches = list(cut_batches(iter_copies(db), max_objects=7, max_bytes=100))

    assert sum(len(batch) for batch in batches) == 30
    assert all(sum(item.size for item in batch) <= 100 or len(batch) == 1 for batch in batches)
    assert [item.key for batch in batches for item in batch] == [f"{PREFIX}f{n:02d}.csv" for n in range(30)]


# ---- tables --------------------------------------------------------------------------------------------------


def test_each_table_is_planned_into_its_folder_and_an_unmatched_file_still_lands(db: sqlite3.Connection) -> None:
    tables = {"ratings": "ratings*.csv", "movies": "movies.csv"}

    counts = plan(
        db, [src("ratings.csv"), src("ratings_late.csv"), src("movies.csv"), src("README.txt")], tables=tables
    )

    assert (counts.planned, counts.failed_at_plan, counts.skipped) == (4, 0, 0)
    assert {copy.key: copy.target for copy in iter_copies(db)} == {
        PREFIX + "ratings.csv": f"{PREFIX}ratings/ingest_date=2024-03-07/ratings.csv",
        PREFIX + "ratings_late.csv": f"{PREFIX}ratings/ingest_date=2024-03-07/ratings_late.csv",
        PREFIX + "movies.csv": f"{PREFIX}movies/ingest_date=2024-03-07/movies.csv",
        PREFIX + "README.txt": f"{PREFIX}_unmatched/ingest_date=2024-03-07/README.txt",
    }


def test_a_file_matching_two_tables_fails_with_the_reason_and_the_rest_are_planned(db: sqlite3.Connection) -> None:
    counts = plan(
        db, [src("ratings.csv"), src("ratings-movies.csv")], tables={"ratings": "ratings*", "movies": "*movies*"}
    )

    assert (counts.planned, counts.failed_at_plan) == (1, 1)
    assert [copy.key for copy in iter_copies(db)] == [PREFIX + "ratings.csv"]
    (note,) = iter_notes(db)
    assert (note.source_key, note.status, note.target_key) == (PREFIX + "ratings-movies.csv", "failed", None)
    assert note.reason.startswith("ambiguous table: the key matches the patterns of 'movies' ('*movies*'), 'ratings'")


def test_adding_tables_to_a_landed_dataset_lands_only_new_and_changed_files_in_table_folders(
    db: sqlite3.Connection,
) -> None:
    # "Already landed" is the state's source key and ETag, never the target: a new layout re-lands nothing.
    landed(db, "ratings.csv", "e-ratings")
    landed(db, "movies.csv", "e-movies")

    counts = plan(
        db,
        [src("ratings.csv", "e-ratings"), src("movies.csv", "e-movies-v2"), src("tags.csv", "e-tags")],
        tables={"ratings": "ratings*.csv", "movies": "movies*.csv", "tags": "tags*.csv"},
    )

    assert (counts.planned, counts.skipped_by_reason) == (2, {"unchanged": 1})
    assert {copy.key: copy.target for copy in iter_copies(db)} == {
        PREFIX + "movies.csv": f"{PREFIX}movies/ingest_date=2024-03-07/movies.csv",
        PREFIX + "tags.csv": f"{PREFIX}tags/ingest_date=2024-03-07/tags.csv",
    }
