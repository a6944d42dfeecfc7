"""Verification's decisions, pure: where a night's keys are, how sorted streams pair up, and what is a problem."""

from __future__ import annotations

from datetime import date as Date

import pytest

from handler.integrity import COMPOSITE, Checksum
from handler.layout import UNMATCHED_TABLE, UnsafeKey, render_target_key
from handler.metadata import Lineage
from handler.templates import TEMPLATE_SAMPLE_KEYS, TEMPLATE_SAMPLE_RUN_ID
from handler.verify import (
    MAX_LISTED_PROBLEMS,
    Copied,
    Findings,
    Kind,
    Landed,
    NightKeys,
    OutOfOrder,
    Problem,
    Scope,
    checksum_problem,
    copied_problems,
    count_problem,
    merge_by_key,
    night_keys,
    state_problem,
    state_problems,
    unrecorded_problem,
)

NIGHT = Date(2026, 1, 2)
OTHER_NIGHT = Date(2026, 1, 3)
RUN = "20260102T200000000Z-aaaaaa"
LATER_RUN = "20260103T200000000Z-bbbbbb"
EARLIER_RUN = "20260101T200000000Z-cccccc"


def copied(target: str = "movielens/ingest_date=2026-01-02/a.csv", **changes: object) -> Copied:
    fields = {
        "target_key": target,
        "source_bucket": "src",
        "source_key": "movielens/a.csv",
        "source_etag": "e1",
        "size": 10,
        "dataset": "movielens",
        "run_id": RUN,
        "date": "2026-01-02",
    }
    return Copied(**{**fields, **changes})  # type: ignore[arg-type]


def lineage_of(line: Copied, **changes: str) -> Lineage:
    fields = {
        "source_bucket": line.source_bucket,
        "source_key": line.source_key,
        "source_etag": line.source_etag,
        "dataset": line.dataset,
        "date": line.date,
        "run_id": line.run_id,
        "ingested_at": "2026-01-02T20:00:01.000Z",
    }
    return Lineage(**{**fields, **changes})


def landed_as(line: Copied, *, size: int | None = None, **lineage: str) -> Landed:
    return Landed(line.target_key, line.size if size is None else size, lineage_of(line, **lineage))


# ---- where a night's keys are ------------------------------------------------------------------------------


TABLES = (("ratings", ("ratings*.csv",)), ("movies", ("movies.csv", "*/movies.csv")))
TABLE_NAMES = ("ratings", "movies", UNMATCHED_TABLE)


@pytest.mark.parametrize(
    ("template", "prefixes"),
    [
        ("{dir}/ingest_date={date}/{name}", ["movielens/"]),
        ("{date}/{path}", ["movielens/2026-01-02/"]),
        ("ingest_date={date}/{path}", ["movielens/ingest_date=2026-01-02/"]),
        ("{yyyy}/{mm}/{dd}/{path}", ["movielens/2026/01/02/"]),
        ("//raw//{date}/{path}", ["movielens/raw/2026-01-02/"]),
        ("{dataset}/{date}/{path}", ["movielens/movielens/2026-01-02/"]),
        ("{run_id}/{date}/{path}", ["movielens/"]),
        (
            "{table}/ingest_date={date}/{path}",
            [f"movielens/{t}/ingest_date=2026-01-02/" for t in sorted(TABLE_NAMES)],
        ),
    ],
)
def test_the_listing_runs_through_literals_and_known_placeholders_up_to_the_first_other(template, prefixes):
    night = night_keys(template, "movielens/", NIGHT, dataset="movielens", tables=TABLE_NAMES)

    assert list(night.prefixes) == prefixes


def test_without_its_tables_a_table_folder_is_listed_from_the_target_prefix():
    assert night_keys("{table}/ingest_date={date}/{path}", "movielens/", NIGHT).prefixes == ("movielens/",)


def test_prefixes_inside_another_are_listed_once_by_the_outer_one():
    night = night_keys("{table}{date}/{path}", "", NIGHT, tables=("a", "a2"))

    assert night.prefixes == ("a2026-01-02/", "a22026-01-02/")
    assert night_keys("{table}{path}", "", NIGHT, tables=("a", "ab")).prefixes == ("a",)


@pytest.mark.parametrize(
    "template",
    [
        "{dir}/ingest_date={date}/{name}",
        "{date}/{path}",
        "{yyyy}/{mm}/{dd}/{path}",
        "{dir}/{stem}-{date}{ext}",
        "{dataset}/{run_id}/{dir}/{yyyy}-{mm}/{dd}/{name}",
        "//raw//{date}/{path}",
        "{table}/ingest_date={date}/{path}",
        "{dataset}/{table}/ingest_date={date}/{dir}/{name}",
    ],
)
@pytest.mark.parametrize("target_prefix", ["", "movielens/"])
def test_every_key_the_planner_renders_for_a_night_is_that_nights_and_not_the_next(template, target_prefix):
    def night(day: Date) -> NightKeys:
        return night_keys(template, target_prefix, day, dataset="movielens", tables=TABLE_NAMES)

    tonight, tomorrow = night(NIGHT), night(OTHER_NIGHT)
    rendered = 0
    for relative in (*TEMPLATE_SAMPLE_KEYS, "ratings.csv", "sub/movies.csv"):
        try:
            key = render_target_key(
                template,
                target_prefix,
                dataset="movielens",
                relative=relative,
                run_date=NIGHT,
                run_id=TEMPLATE_SAMPLE_RUN_ID,
                tables=TABLES,
            )
        except UnsafeKey:
            continue
        rendered += 1
        assert tonight.holds(key), (template, key)
        assert not tomorrow.holds(key), (template, key)
    assert rendered >= 4


def test_keys_outside_the_target_prefix_are_not_the_nights():
    night = night_keys("{dir}/ingest_date={date}/{name}", "movielens/", NIGHT)

    assert not night.holds("other/ingest_date=2026-01-02/a.csv")
    assert night.holds("movielens/ingest_date=2026-01-02/a.csv")
    assert night.holds("movielens/a/b/ingest_date=2026-01-02/c.csv")


def test_a_placeholder_of_unknown_value_matches_anything():
    night = night_keys("{table}/ingest_date={date}/{name}", "", NIGHT)

    assert night.holds("ratings/ingest_date=2026-01-02/ratings.csv")
    assert not night.holds("ratings/ingest_date=2026-01-03/ratings.csv")


# ---- merging sorted streams --------------------------------------------------------------------------------


def test_two_sorted_streams_pair_up_key_by_key_with_every_item_of_a_key():
    listed = ["a", "b", "d"]
    recorded = [("b", 1), ("c", 2), ("c", 3), ("d", 4)]

    groups = list(merge_by_key(listed, recorded, lambda k: k, lambda pair: pair[0]))

    assert groups == [
        ("a", ["a"], []),
        ("b", ["b"], [("b", 1)]),
        ("c", [], [("c", 2), ("c", 3)]),
        ("d", ["d"], [("d", 4)]),
    ]


def test_non_ascii_keys_merge_in_the_order_s3_lists_them():
    keys = sorted(["z.csv", "é.csv", "映画.csv", "a.csv", "Z.csv"])
    assert sorted(keys, key=lambda k: k.encode("utf-8")) == keys  # S3's order is UTF-8 bytes: the same

    groups = list(merge_by_key(keys, reversed(keys[::-1]), lambda k: k, lambda k: k))

    assert [(k, len(a), len(b)) for k, a, b in groups] == [(k, 1, 1) for k in keys]


def test_a_stream_out_of_order_is_refused_naming_it():
    with pytest.raises(OutOfOrder, match="the listing is not in key order: 'a' came after 'b'"):
        list(merge_by_key(["b", "a"], [], lambda k: k, lambda k: k))


def test_an_empty_side_yields_the_other_alone():
    assert list(merge_by_key([], ["x"], str, str)) == [("x", [], ["x"])]
    assert list(merge_by_key([], [], str, str)) == []


# ---- what is a problem -------------------------------------------------------------------------------------


def test_an_object_as_its_line_says_is_no_problem():
    line = copied()

    assert copied_problems(line, landed_as(line)) == []


def test_a_copied_line_whose_object_is_gone_is_missing():
    [problem] = copied_problems(copied(), None)

    assert (problem.kind, problem.key, problem.run_id) == (Kind.MISSING, copied().target_key, RUN)
    assert "not in the bucket" in problem.detail


def test_a_different_size_is_reported_with_both_sizes():
    line = copied()

    [problem] = copied_problems(line, landed_as(line, size=11))

    assert problem.kind == Kind.SIZE_DIFFERS
    assert problem.detail == "11 bytes in the bucket, 10 in the manifest"


def test_an_object_without_lineage_is_reported_as_such():
    line = copied()

    [problem] = copied_problems(line, Landed(line.target_key, line.size, None))

    assert problem.kind == Kind.NO_LINEAGE


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("source_key", "movielens/b.csv", "source key 'movielens/b.csv'"),
        ("source_etag", "e2", "source ETag 'e2'"),
        ("source_bucket", "elsewhere", "source bucket 'elsewhere'"),
        ("dataset", "other", "dataset 'other'"),
        ("run_id", LATER_RUN, f"run '{LATER_RUN}'"),
        ("date", "2026-01-03", "date '2026-01-03'"),
    ],
)
def test_lineage_naming_anything_else_than_the_line_differs(field, value, named):
    line = copied()

    [problem] = copied_problems(line, landed_as(line, **{field: value}))

    assert problem.kind == Kind.LINEAGE_DIFFERS
    assert named in problem.detail


def test_an_overwritten_object_can_be_wrong_in_size_and_lineage_at_once():
    line = copied()

    kinds = [p.kind for p in copied_problems(line, Landed(line.target_key, 3, None))]

    assert kinds == [Kind.SIZE_DIFFERS, Kind.NO_LINEAGE]


def test_an_object_the_scope_landed_must_be_in_a_copied_line():
    landed = landed_as(copied())

    problem = unrecorded_problem(landed, Scope("movielens", "2026-01-02"))

    assert problem is not None and problem.kind == Kind.NOT_IN_MANIFEST
    assert problem.run_id == RUN and "movielens/a.csv" in problem.detail


@pytest.mark.parametrize(
    ("scope", "lineage"),
    [
        (Scope("movielens", "2026-01-02"), {"dataset": "other"}),
        (Scope("movielens", "2026-01-02"), {"date": "2026-01-03"}),
        (Scope("movielens", "2026-01-02", run_id=LATER_RUN), {}),
        (Scope("movielens", "2026-01-02", in_progress=RUN), {}),
    ],
    ids=["another dataset", "another night", "another run under --run", "the run in progress"],
)
def test_objects_outside_the_scope_are_not_its_problem(scope, lineage):
    assert unrecorded_problem(landed_as(copied(), **lineage), scope) is None


def test_an_object_without_lineage_is_nobodys_problem():
    assert unrecorded_problem(Landed("k", 1, None), Scope("movielens", "2026-01-02")) is None


def row_of(line: Copied, **changes: object) -> dict[str, object]:
    row = {
        "key": line.source_key,
        "etag": line.source_etag,
        "size": line.size,
        "target": line.target_key,
        "run_id": line.run_id,
        "date": line.date,
    }
    return {**row, **changes}


def test_the_state_agrees_when_it_holds_the_lines_version_or_a_later_landing():
    line = copied()

    assert state_problem(line, row_of(line)) is None
    assert state_problem(line, row_of(line, run_id=LATER_RUN, etag="e2", target="elsewhere")) is None


@pytest.mark.parametrize(
    ("row", "says"),
    [
        (None, "has no row for source key movielens/a.csv"),
        ({"run_id": EARLIER_RUN, "etag": "e0"}, f"as landed by the earlier run {EARLIER_RUN}"),
        ({"etag": "e9"}, "with ETag e9"),
        ({"target": "movielens/elsewhere.csv"}, "at movielens/elsewhere.csv"),
        ({"size": 99}, "(99 bytes)"),
    ],
    ids=["no row", "an earlier run's", "another etag", "another target", "another size"],
)
def test_the_state_disagrees_otherwise(row, says):
    line = copied()

    problem = state_problem(line, None if row is None else row_of(line, **row))

    assert problem is not None and problem.kind == Kind.STATE_DISAGREES
    assert says in problem.detail


def test_a_state_part_is_merged_with_the_lines_of_its_range():
    a, b, c = (copied(f"t/{name}", source_key=f"k/{name}") for name in ("a", "b", "c"))
    rows = [row_of(a), row_of(copied(source_key="k/aa")), row_of(c, etag="other")]

    problems = list(state_problems([a, b, c], rows, "part-1"))

    assert [(p.key, p.kind) for p in problems] == [("t/b", Kind.STATE_DISAGREES), ("t/c", Kind.STATE_DISAGREES)]
    assert "has no row for source key k/b" in problems[0].detail
    assert "with ETag other" in problems[1].detail


def test_a_state_part_out_of_key_order_is_refused_naming_it():
    a, b = copied(source_key="k/a"), copied(source_key="k/b")

    with pytest.raises(OutOfOrder, match="state part part-1 is not in key order"):
        list(state_problems([a, b], [row_of(b), row_of(a)], "part-1"))


def test_a_summary_that_counts_other_than_its_manifest_disagrees():
    assert count_problem("s3://raw/m-*.jsonl", RUN, 3, 3) is None

    problem = count_problem("s3://raw/m-*.jsonl", RUN, 3, 2)

    assert problem is not None and problem.kind == Kind.MANIFEST_DISAGREES
    assert problem.detail == f"run {RUN}'s summary says 3 copied; its manifest has 2 copied lines"


def test_every_problem_is_passed_on_and_counted_but_only_the_first_are_kept():
    seen: list[Problem] = []
    findings = Findings(seen.append)

    for n in range(MAX_LISTED_PROBLEMS + 5):
        findings.add(Problem(Kind.MISSING, f"k{n}", "gone"))
    findings.add(None)

    assert findings.count == len(seen) == MAX_LISTED_PROBLEMS + 5
    assert len(findings.kept) == MAX_LISTED_PROBLEMS
    assert findings.by_kind == {"missing": MAX_LISTED_PROBLEMS + 5}


def test_a_problem_reads_as_one_line_kind_first():
    assert Problem(Kind.SIZE_DIFFERS, "a/b.csv", "3 bytes").line() == "size differs: a/b.csv: 3 bytes"


# ---- checksums (--checksums) --------------------------------------------------------------------------------

LANDED_CRC = "CRC64NVME:AAAAAAAAAAE="


def landed_with(line: Copied, checksum: Checksum | None) -> Landed:
    return Landed(line.target_key, line.size, lineage_of(line), checksum)


def test_an_object_whose_checksum_is_the_recorded_one_is_no_problem():
    line = copied(checksum=LANDED_CRC, source_checksum=LANDED_CRC)

    assert checksum_problem(line, landed_with(line, Checksum.parse(LANDED_CRC))) is None


def test_a_line_from_before_checksums_has_nothing_to_compare():
    line = copied()

    assert checksum_problem(line, landed_with(line, Checksum("CRC64NVME", "AAAAAAAAAAE="))) is None


@pytest.mark.parametrize(
    ("found", "says"),
    [
        (Checksum("CRC64NVME", "AAAAAAAAAAI="), "CRC64NVME AAAAAAAAAAI= in the bucket, AAAAAAAAAAE= in the manifest"),
        (Checksum("CRC32", "AAAAAA=="), "the object has a CRC32 checksum, the manifest recorded CRC64NVME"),
        (None, "the object reports no checksum; the manifest recorded CRC64NVME:AAAAAAAAAAE="),
    ],
)
def test_an_object_whose_checksum_is_not_the_recorded_one_differs(found, says):
    line = copied(checksum=LANDED_CRC)

    problem = checksum_problem(line, landed_with(line, found))

    assert problem is not None and problem.kind == Kind.CHECKSUM_DIFFERS
    assert says in problem.detail
    assert (problem.key, problem.run_id) == (line.target_key, RUN)


def test_an_object_whose_checksum_is_not_the_sources_differs_even_if_the_line_recorded_it():
    """The landed checksum was recorded as it was; the source's, recorded beside it, is another."""
    line = copied(checksum=LANDED_CRC, source_checksum="CRC64NVME:AAAAAAAAAAM=")

    problem = checksum_problem(line, landed_with(line, Checksum.parse(LANDED_CRC)))

    assert problem is not None and "recorded for the source movielens/a.csv (ETag e1)" in problem.detail


def test_a_source_checksum_of_another_algorithm_or_composite_is_not_compared():
    for source in ("CRC32:AAAAAA==", str(Checksum("CRC64NVME", "AAAAAAAAAAM=-2", COMPOSITE))):
        line = copied(checksum=LANDED_CRC, source_checksum=source)
        assert checksum_problem(line, landed_with(line, Checksum.parse(LANDED_CRC))) is None
