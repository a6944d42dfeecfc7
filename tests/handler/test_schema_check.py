"""schema_check: a file's first bytes against its table's declared columns, with no S3 in sight."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import pytest

from handler.columns import Column, Table
from handler.schema_check import (
    HEADER_READ_BYTES,
    MAX_HEADER_BYTES,
    Drift,
    checkable,
    compare,
    drift_of,
    first_line,
)

COLUMNS = tuple(Column(name, "string") for name in ("userId", "movieId", "rating", "timestamp"))
RATINGS = Table("ratings", ("ratings*.csv",), COLUMNS)
ROWS = "1,296,5.0,1147880044\n1,306,3.5,1147868817\n"


def chunked(data: bytes, size: int = HEADER_READ_BYTES) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def drift(text: str | bytes, table: Table = RATINGS) -> str | None:
    data = text.encode() if isinstance(text, str) else text
    found = drift_of(chunked(data), table)
    return None if found is None else found.describe()


def test_the_declared_header_is_no_drift_whatever_its_case_blanks_bom_or_line_ending() -> None:
    assert drift("userId,movieId,rating,timestamp\n" + ROWS) is None
    assert drift("\ufeffUSERID, movieid ,Rating,TimeStamp\r\n" + ROWS) is None


@pytest.mark.parametrize(
    ("header", "described"),
    [
        ("userId,movieId,rating,timestamp,rating2", "added: rating2"),
        ("userId,movieId,timestamp", "missing: rating"),
        (
            "userId,rating,movieId,timestamp",
            "order differs: found userid, rating, movieid, timestamp; declared userid, movieid, rating, timestamp",
        ),
        ("userId,movieId,score,timestamp", "renamed: rating -> score"),
        ("userId,movieId,timestamp,score", "added: score; missing: rating"),
        ("userId,movieId,rating,rating,timestamp", "duplicated: rating"),
    ],
)
def test_a_drifted_csv_header_is_described_precisely(header: str, described: str) -> None:
    assert drift(header + "\n" + ROWS) == described


def test_a_quoted_header_is_split_with_the_tables_delimiter_and_quotes() -> None:
    tsv = Table("ratings", ("*.tsv",), (Column("title", "string"), Column("genres", "string")), delimiter="\t")

    assert drift('"title"\t"genres"\n"Heat, 1995"\tAction\n', tsv) is None
    # the comma is inside the field, not a delimiter; a quoted tab is one field
    assert drift('"title, long"\tgenres\n', tsv) == "renamed: title -> title, long"
    assert drift('title\t"gen\\"res"\n', tsv) == 'renamed: genres -> gen"res'


def test_an_unquoted_table_takes_quotes_as_ordinary_characters() -> None:
    table = Table("t", ("*.csv",), (Column("a", "string"), Column("b", "string")), delimiter="|", quoted=False)

    assert drift("a|b\n", table) is None
    assert drift('"a"|b\n', table) == 'renamed: a -> "a"'


def test_a_csv_without_a_header_compares_only_its_number_of_fields() -> None:
    table = Table("t", ("*.csv",), COLUMNS, header=False)

    assert drift(ROWS, table) is None
    assert drift("1,296,5.0\n", table) == "3 fields in the first line, 4 columns declared"


def test_json_lines_compare_the_keys_of_the_first_object_in_any_order() -> None:
    table = Table("ratings", ("*.jsonl",), COLUMNS, format="json")
    row = {"userId": 1, "movieId": 296, "rating": 5.0, "timestamp": 1147880044}

    assert drift("\n" + json.dumps(row) + "\n", table) is None
    assert drift(json.dumps(dict(reversed(list(row.items())))) + "\n", table) is None
    assert drift(json.dumps({**row, "rating2": 1}) + "\n", table) == "added: rating2"
    assert drift(json.dumps({k: v for k, v in row.items() if k != "rating"}), table) == "missing: rating"
    assert drift("[1, 2]\n", table) == "header unreadable: its first line is a JSON list, not an object"
    assert drift("{not json\n", table).startswith("header unreadable: its first line is not JSON")


def test_a_gzipped_file_is_inflated_only_as_far_as_its_first_line() -> None:
    body = gzip.compress(("userId,movieId,rating2,timestamp\n" + ROWS * 50_000).encode())
    pulled = []

    def chunks() -> Iterator[bytes]:
        for chunk in chunked(body, 4096):
            pulled.append(chunk)
            yield chunk

    found = drift_of(chunks(), RATINGS)

    assert found is not None and found.describe() == "renamed: rating -> rating2"
    assert len(pulled) == 1  # the header was in the first 4 KiB: nothing more was asked for


def test_a_damaged_gzip_is_unreadable_not_a_crash() -> None:
    assert drift(b"\x1f\x8b" + b"\x00" * 40) is not None
    assert drift(b"\x1f\x8b" + b"\x00" * 40).startswith("header unreadable: not a readable gzip file")


def test_an_empty_file_has_no_header_and_no_drift_but_an_empty_first_line_is_drift() -> None:
    jsonl = Table("ratings", ("*.jsonl",), COLUMNS, format="json")

    assert drift(b"") is None
    assert drift_of(iter(()), RATINGS) is None
    assert drift(b"\n \n", jsonl) is None  # only blank lines: no object to compare
    # A CSV whose first line is blank: the table would skip it as the header and read the header as data.
    assert drift("\nuserId,movieId,rating,timestamp\n") == "header unreadable: its first line is empty"


def test_a_file_that_is_only_its_header_without_a_newline_is_read_whole() -> None:
    assert drift("userId,movieId,rating,timestamp") is None


def test_a_first_line_longer_than_the_first_range_is_read_on_and_one_past_the_limit_is_drift() -> None:
    long_names = [f"c{n:05d}" for n in range(12_000)]  # ~84 KiB of header: past the first 64 KiB range
    table = Table("wide", ("*.csv",), tuple(Column(name, "string") for name in long_names))
    header = ",".join(long_names) + "\n"
    assert len(header) > HEADER_READ_BYTES

    assert drift(header + "1\n", table) is None
    huge = "x" * (MAX_HEADER_BYTES + 10)
    assert drift(huge + "\n", table) == "header unreadable: its first line is longer than 1024 KiB"


def test_bytes_that_are_not_utf8_are_unreadable() -> None:
    assert drift(b"user\xffId,movieId\n") == (
        "header unreadable: its first line is not UTF-8 text (invalid start byte at byte 4)"
    )


def test_first_line_stops_pulling_once_the_line_ended() -> None:
    pulled = []

    def chunks() -> Iterator[bytes]:
        for chunk in (b"a,b", b",c\nrest", b"never read"):
            pulled.append(chunk)
            yield chunk

    assert first_line(chunks()) == "a,b,c"
    assert pulled == [b"a,b", b",c\nrest"]


def test_compare_without_order_reports_only_added_and_missing() -> None:
    assert compare(["a", "b"], ["B", "A"], ordered=False) is None
    assert compare(["a", "b"], ["b", "c"], ordered=False) == Drift(added=("c",), missing=("a",))


def test_parquet_other_compressions_and_undescribed_tables_are_not_checked() -> None:
    assert checkable(RATINGS, "ratings.csv") and checkable(RATINGS, "ratings.csv.gz")
    assert not checkable(RATINGS, "ratings.csv.bz2") and not checkable(RATINGS, "ratings.csv.ZST")
    assert not checkable(Table("p", ("*.parquet",), COLUMNS, format="parquet"), "x.parquet")
    assert not checkable(Table("plain", ("*.csv",)), "x.csv")
