"""S3 Inventory as a listing source: reports built as S3 writes them (gzipped CSV data files, a manifest.json in
AWS's documented form, manifest.checksum, the hive/ folder), streamed into SourceObjects by key range."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import pytest

from handler.errors import ConfigError
from handler.inventory import (
    FIRST_KEY_BYTES,
    InventoryError,
    InventoryUnsorted,
    files_for_range,
    first_key,
    iter_inventory,
    latest_manifest,
    read_manifest,
)
from handler.selection import SourceObject
from handler.store import Store
from tests.conftest import new_bucket

SOURCE = "example-source-bucket"
CONFIG = "daily-csv"
CURRENT = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass"
ALL_VERSIONS = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass"
WHEN = "2024-03-06T21:32:00.000Z"
WHEN_DT = datetime(2024, 3, 6, 21, 32, tzinfo=UTC)
FOLDER = "2024-03-07T01-00Z"


@pytest.fixture
def dest(s3: Any) -> str:
    return new_bucket(s3, "inventory")


def prefix_of(destination_prefix: str = "inventory") -> str:
    return f"{destination_prefix}/{SOURCE}/{CONFIG}/"


def csv_line(*fields: str) -> str:
    """One row as S3 writes it: every field double-quoted, a quote inside doubled."""
    return ",".join('"' + f.replace('"', '""') + '"' for f in fields) + "\n"


def current(key: str, etag: str = "e1", size: str = "10", modified: str = WHEN, storage: str = "STANDARD") -> str:
    """A current-versions row; the key URL-encoded the way S3 Inventory encodes it (form encoding: space is +)."""
    return csv_line(SOURCE, quote_plus(key, safe="/"), size, modified, etag, storage)


def version(key: str, latest: bool, delete_marker: bool = False, etag: str = "e1") -> str:
    flag = {True: "true", False: "false"}
    size, modified, etag = ("", WHEN, "") if delete_marker else ("10", WHEN, etag)
    fields = (SOURCE, quote_plus(key, safe="/"), uuid.uuid4().hex, flag[latest], flag[delete_marker])
    return csv_line(*fields, size, modified, etag, "STANDARD")


def write_report(
    s3: Any,
    dest: str,
    data_files: list[list[str] | bytes],
    *,
    schema: str = CURRENT,
    folder: str = FOLDER,
    prefix: str | None = None,
    checksum: bool = True,
    overrides: dict[str, Any] | None = None,
) -> tuple[str, list[str]]:
    """Write data files (rows gzipped, or raw bytes as given), a manifest.json exactly in AWS's documented form,
    its manifest.checksum and the hive symlink; return the manifest key and the data file keys. `overrides`
    replaces manifest fields (None: leave the field out)."""
    prefix = prefix if prefix is not None else prefix_of()
    entries, keys = [], []
    for content in data_files:
        body = content if isinstance(content, bytes) else gzip.compress("".join(content).encode("utf-8"))
        key = f"{prefix}data/{uuid.uuid4()}.csv.gz"
        s3.put_object(Bucket=dest, Key=key, Body=body)
        entries.append({"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()})
        keys.append(key)
    manifest = {
        "sourceBucket": SOURCE,
        "destinationBucket": f"arn:aws:s3:::{dest}",
        "version": "2016-11-30",
        "creationTimestamp": "1709773200000",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": entries,
        **(overrides or {}),
    }
    manifest = {k: v for k, v in manifest.items() if v is not None}
    raw = json.dumps(manifest, indent=4).encode()
    s3.put_object(Bucket=dest, Key=f"{prefix}{folder}/manifest.json", Body=raw)
    if checksum:
        s3.put_object(Bucket=dest, Key=f"{prefix}{folder}/manifest.checksum", Body=hashlib.md5(raw).hexdigest())
    hive = f"{prefix}hive/dt={folder[:10]}-{folder[11:13]}-{folder[14:16]}/symlink.txt"
    s3.put_object(Bucket=dest, Key=hive, Body="\n".join(f"s3://{dest}/{k}" for k in keys).encode())
    return f"{prefix}{folder}/manifest.json", keys


def obj(key: str, etag: str = "e1", size: int = 10, storage: str = "STANDARD") -> SourceObject:
    return SourceObject(key, etag, size, WHEN_DT, storage)


def keys_of(objects: Any) -> list[str]:
    return [o.key for o in objects]


HOSTILE_KEYS = [
    "data/plain.csv",
    "data/with space.csv",
    "data/a+b.csv",
    "data/100%.csv",
    "data/%41 literally.csv",
    "data/映画/café.csv",
    "data/deep/er/path/x.csv",
    'data/comma,and"quote.csv',
]


# ---- manifest ---------------------------------------------------------------------------------------------------


def test_manifest_is_read_as_aws_writes_it(s3: Any, dest: str) -> None:
    key, data = write_report(s3, dest, [[current("data/a.csv")], [current("data/b.csv")]])
    manifest = read_manifest(Store(s3), dest, key, source_bucket=SOURCE)
    assert manifest.uri == f"s3://{dest}/{key}"
    assert (manifest.source_bucket, manifest.destination_bucket, manifest.bucket) == (SOURCE, dest, dest)
    assert manifest.file_format == "CSV"
    assert manifest.columns == ("Bucket", "Key", "Size", "LastModifiedDate", "ETag", "StorageClass")
    assert [k for k, _ in manifest.files] == data
    assert all(size > 0 for _, size in manifest.files)
    assert manifest.creation_timestamp == datetime(2024, 3, 7, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "missing", ["sourceBucket", "destinationBucket", "creationTimestamp", "fileFormat", "fileSchema", "files"]
)
def test_each_missing_manifest_field_is_named_with_the_uri(s3: Any, dest: str, missing: str) -> None:
    key, _ = write_report(s3, dest, [[current("data/a.csv")]], overrides={missing: None})
    with pytest.raises(ConfigError) as err:
        read_manifest(Store(s3), dest, key)
    assert err.value.problems == [f"inventory manifest s3://{dest}/{key}: {missing}: missing"]


def test_a_schema_without_size_and_etag_says_which_and_how_to_enable_them(s3: Any, dest: str) -> None:
    key, _ = write_report(s3, dest, [[csv_line(SOURCE, "k", WHEN)]], schema="Bucket, Key, LastModifiedDate")
    with pytest.raises(ConfigError) as err:
        read_manifest(Store(s3), dest, key)
    (problem,) = err.value.problems
    assert problem.startswith(f"inventory manifest s3://{dest}/{key}: fileSchema lacks Size, ETag:")
    assert "optional fields" in problem and "OptionalFields" in problem


@pytest.mark.parametrize("file_format", ["Parquet", "ORC"])
def test_parquet_and_orc_are_refused_with_the_fix(s3: Any, dest: str, file_format: str) -> None:
    schema = "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); }"
    key, _ = write_report(s3, dest, [b"PAR1"], overrides={"fileFormat": file_format, "fileSchema": schema})
    with pytest.raises(ConfigError) as err:
        read_manifest(Store(s3), dest, key)
    (problem,) = err.value.problems  # the format, not also a confusing schema complaint
    assert f"s3://{dest}/{key}" in problem
    assert f"fileFormat is {file_format!r}: only CSV is supported" in problem
    assert "configure the inventory as CSV" in problem


def test_every_problem_of_a_manifest_is_reported_at_once(s3: Any, dest: str) -> None:
    key, _ = write_report(
        s3,
        dest,
        [],
        schema="Bucket, Key, Size",
        overrides={"creationTimestamp": "yesterday", "files": [{"key": "inv/x.csv.gz", "size": "12"}, {"size": 3}]},
    )
    with pytest.raises(ConfigError) as err:
        read_manifest(Store(s3), dest, key, source_bucket="another-bucket")
    problems = [p.removeprefix(f"inventory manifest s3://{dest}/{key}: ") for p in err.value.problems]
    assert problems[0].startswith("fileSchema lacks LastModifiedDate, ETag:")
    assert problems[1:4] == [
        "files[0].size: not a byte count ('12')",
        "files[1].key: missing",
        "creationTimestamp: not epoch milliseconds ('yesterday')",
    ]
    assert problems[4].startswith(f"sourceBucket: the report lists bucket {SOURCE!r}, not the dataset's source")


def test_a_missing_or_broken_manifest_is_a_config_error_naming_it(s3: Any, dest: str) -> None:
    with pytest.raises(ConfigError, match=f"s3://{dest}/nope/manifest.json: does not exist"):
        read_manifest(Store(s3), dest, "nope/manifest.json")
    s3.put_object(Bucket=dest, Key="bad/manifest.json", Body=b"{not json")
    with pytest.raises(ConfigError, match=f"s3://{dest}/bad/manifest.json: not valid JSON"):
        read_manifest(Store(s3), dest, "bad/manifest.json")
    s3.put_object(Bucket=dest, Key="list/manifest.json", Body=b"[]")
    with pytest.raises(ConfigError, match=f"s3://{dest}/list/manifest.json: not a JSON object"):
        read_manifest(Store(s3), dest, "list/manifest.json")


# ---- latest_manifest --------------------------------------------------------------------------------------------


def test_latest_manifest_is_the_newest_delivered_report_from_a_delimiter_listing(s3: Any, dest: str) -> None:
    for folder in ("2024-03-05T01-00Z", "2024-03-07T01-00Z", "2024-03-06T01-00Z", "2023-12-31T23-59Z"):
        write_report(s3, dest, [[current(f"data/{folder}.csv")]], folder=folder)
    write_report(s3, dest, [[current("data/new.csv")]], folder="2024-03-08T01-00Z", checksum=False)  # in delivery
    listings: list[dict[str, Any]] = []
    s3.meta.events.register("provide-client-params.s3.ListObjectsV2", lambda params, **_: listings.append(params))

    assert latest_manifest(Store(s3), dest, prefix_of()) == f"{prefix_of()}2024-03-07T01-00Z/manifest.json"
    assert latest_manifest(Store(s3), dest, prefix_of().rstrip("/")) == f"{prefix_of()}2024-03-07T01-00Z/manifest.json"
    assert listings and all(p.get("Delimiter") == "/" for p in listings)


def test_no_report_is_a_config_error_saying_what_is_there(s3: Any, dest: str) -> None:
    write_report(s3, dest, [[current("data/a.csv")]])
    with pytest.raises(ConfigError) as err:
        latest_manifest(Store(s3), dest, "inventory/")  # the destination prefix alone: one level too high
    (problem,) = err.value.problems
    assert problem.startswith(f"inventory s3://{dest}/inventory/: no report folder (YYYY-MM-DDTHH-MMZ/)")
    assert f"found: {SOURCE}/" in problem and "<destination-prefix>/<source-bucket>/<config-id>/" in problem

    other = f"inventory/{SOURCE}/other/"
    write_report(s3, dest, [[current("data/a.csv")]], prefix=other, checksum=False)
    with pytest.raises(ConfigError, match="1 report folder.*none delivered yet"):
        latest_manifest(Store(s3), dest, other)


# ---- streaming --------------------------------------------------------------------------------------------------


def test_rows_become_source_objects_with_keys_decoded(s3: Any, dest: str) -> None:
    rows = [current(k, etag=f"etag{n}", size=str(n)) for n, k in enumerate(HOSTILE_KEYS)]
    rows.append(current("data/quoted-etag.csv", etag='"abc-2"', storage="GLACIER"))
    rows.append(csv_line(SOURCE, "data/encoded%2Fslash+%2B.csv", "5", "2024-03-06T22:32:00.000+01:00", "e", ""))
    key, _ = write_report(s3, dest, [rows[:4], rows[4:]])
    stream = iter_inventory(Store(s3), read_manifest(Store(s3), dest, key), prefix="data/")
    objects = list(stream)
    assert objects == [
        *(obj(k, f"etag{n}", n) for n, k in enumerate(HOSTILE_KEYS)),
        obj("data/quoted-etag.csv", "abc-2", storage="GLACIER"),
        SourceObject("data/encoded/slash +.csv", "e", 5, WHEN_DT, "STANDARD"),
    ]
    assert objects[-1].last_modified.tzinfo is UTC
    assert (stream.stats.files_read, stream.stats.rows, stream.stats.yielded, stream.stats.malformed) == (2, 10, 10, 0)


def test_a_report_without_storage_class_defaults_to_standard(s3: Any, dest: str) -> None:
    schema = "Bucket, Key, Size, LastModifiedDate, ETag"
    key, _ = write_report(s3, dest, [[csv_line(SOURCE, "a.csv", "1", WHEN, "e")]], schema=schema)
    assert list(iter_inventory(Store(s3), read_manifest(Store(s3), dest, key), prefix="")) == [obj("a.csv", "e", 1)]


def test_prefix_and_skip_prefix_filter_keys(s3: Any, dest: str) -> None:
    keys = ["data/a.csv", "data/_ingestion/x.json", "data2/b.csv", "other/c.csv", "data"]
    key, _ = write_report(s3, dest, [[current(k) for k in keys]])
    stream = iter_inventory(
        Store(s3), read_manifest(Store(s3), dest, key), prefix="data/", skip_prefix="data/_ingestion/"
    )
    assert keys_of(stream) == ["data/a.csv"]


SORTED_FILES = [["d/a", "d/b", "d/c"], ["d/d", "d/e", "d/f"], ["d/g", "d/h", "d/i"]]


@pytest.mark.parametrize(
    ("start_after", "end_at", "expected"),
    [
        (None, None, "abcdefghi"),
        ("d/c", "d/f", "def"),  # exactly one file: bounds on its neighbours' last and its own last key
        ("d/b", "d/d", "cd"),  # across a file boundary
        (None, "d/c", "abc"),
        ("d/f", None, "ghi"),
        ("d/c", "d/c", ""),
        ("d/cz", "d/d", "d"),  # bounds that are not keys
    ],
)
def test_a_range_yields_exactly_its_keys_across_file_boundaries(
    s3: Any, dest: str, start_after: str | None, end_at: str | None, expected: str
) -> None:
    key, _ = write_report(s3, dest, [[current(k) for k in names] for names in SORTED_FILES])
    manifest = read_manifest(Store(s3), dest, key)
    for assume_sorted in (False, True):
        stream = iter_inventory(
            Store(s3), manifest, prefix="d/", start_after=start_after, end_at=end_at, assume_sorted=assume_sorted
        )
        assert keys_of(stream) == [f"d/{c}" for c in expected]


def test_delete_markers_and_noncurrent_versions_are_skipped(s3: Any, dest: str) -> None:
    rows = [
        version("d/live.csv", latest=False, etag="old"),
        version("d/live.csv", latest=True, etag="new"),
        version("d/deleted.csv", latest=False),
        version("d/deleted.csv", latest=True, delete_marker=True),
        version("d/only.csv", latest=True, etag="only"),
    ]
    key, _ = write_report(s3, dest, [rows], schema=ALL_VERSIONS)
    stream = iter_inventory(Store(s3), read_manifest(Store(s3), dest, key), prefix="d/")
    assert [(o.key, o.etag) for o in stream] == [("d/live.csv", "new"), ("d/only.csv", "only")]
    assert (stream.stats.delete_markers, stream.stats.noncurrent, stream.stats.malformed) == (1, 2, 0)


def test_malformed_rows_are_counted_with_file_and_line_and_the_stream_goes_on(s3: Any, dest: str) -> None:
    rows = [
        current("d/good1.csv"),
        csv_line(SOURCE, "d/short.csv", "10"),  # line 2: wrong column count
        current("d/bad-size.csv", size="ten"),  # 3
        current("d/bad-date.csv", modified="06/03/2024"),  # 4
        current("d/naive-date.csv", modified="2024-03-06T21:32:00"),  # 5
        current("d/no-etag.csv", etag=""),  # 6
        csv_line(SOURCE, "d/%FF%FE.csv", "1", WHEN, "e", "STANDARD"),  # 7: not UTF-8
        csv_line(SOURCE, "d/" + "x" * 140_000, "1", WHEN, "e", "STANDARD"),  # 8: past the csv field limit
        current("d/good2.csv"),
        current("other/bad-size.csv", size="ten"),  # outside the prefix: another shard's business
    ]
    key, data = write_report(s3, dest, [rows])
    stream = iter_inventory(Store(s3), read_manifest(Store(s3), dest, key), prefix="d/")
    assert keys_of(stream) == ["d/good1.csv", "d/good2.csv"]
    stats = stream.stats
    assert stats.malformed == 7
    uri = f"s3://{dest}/{data[0]}"
    assert [p.split(": ", 1)[0] for p in stats.problems] == [f"{uri}:{line}" for line in range(2, 9)]
    assert "3 columns, the manifest's fileSchema has 6" in stats.problems[0]
    assert "size 'ten' is not a byte count" in stats.problems[1]
    assert "is not an ISO 8601 time" in stats.problems[2]
    assert "has no time zone" in stats.problems[3]
    assert "empty ETag" in stats.problems[4]
    assert "is not URL-encoded UTF-8" in stats.problems[5]
    assert "not CSV (field larger than field limit" in stats.problems[6]


def test_only_the_first_problems_are_kept_but_all_are_counted(s3: Any, dest: str) -> None:
    key, _ = write_report(s3, dest, [[current(f"d/{n}", size="x") for n in range(25)]])
    stream = iter_inventory(Store(s3), read_manifest(Store(s3), dest, key), prefix="d/")
    assert list(stream) == []
    assert (stream.stats.malformed, len(stream.stats.problems)) == (25, 10)


def test_a_header_row_is_skipped_silently(s3: Any, dest: str) -> None:
    rows = [csv_line("Bucket", "Key", "Size", "LastModifiedDate", "ETag", "StorageClass"), current("a")]
    key, _ = write_report(s3, dest, [rows])
    stream = iter_inventory(Store(s3), read_manifest(Store(s3), dest, key), prefix="")
    assert keys_of(stream) == ["a"] and stream.stats.malformed == 0


def test_a_missing_data_file_or_a_broken_gzip_stops_the_stream(s3: Any, dest: str) -> None:
    key, data = write_report(s3, dest, [[current("a")], [current("b")]])
    manifest = read_manifest(Store(s3), dest, key)
    s3.delete_object(Bucket=dest, Key=data[1])
    stream = iter_inventory(Store(s3), manifest, prefix="")
    assert next(stream).key == "a"
    with pytest.raises(InventoryError, match=f"s3://{dest}/{data[1]}, listed in {manifest.uri}, does not exist"):
        next(stream)

    truncated = gzip.compress("".join(current(f"k{n}", etag=uuid.uuid4().hex) for n in range(500)).encode())
    key, data = write_report(s3, dest, [truncated[: len(truncated) // 2]], folder="2024-03-08T01-00Z")
    with pytest.raises(InventoryError, match=f"s3://{dest}/{data[0]}: not a readable gzip file"):
        list(iter_inventory(Store(s3), read_manifest(Store(s3), dest, key), prefix=""))


def test_a_multi_member_gzip_file_is_read_whole(s3: Any, dest: str) -> None:
    body = gzip.compress(current("a").encode()) + gzip.compress(current("b").encode())
    key, data = write_report(s3, dest, [body])
    assert keys_of(iter_inventory(Store(s3), read_manifest(Store(s3), dest, key), prefix="")) == ["a", "b"]
    assert first_key(Store(s3), dest, data[0], CURRENT.split(", ")) == "a"


def test_a_stream_closed_early_yields_nothing_more(s3: Any, dest: str) -> None:
    key, _ = write_report(s3, dest, [[current("a"), current("b")], [current("c")]])
    stream = iter_inventory(Store(s3), read_manifest(Store(s3), dest, key), prefix="")
    assert next(stream).key == "a"
    stream.close()
    assert list(stream) == []


def test_a_files_subset_is_read_in_manifest_order(s3: Any, dest: str) -> None:
    key, data = write_report(s3, dest, [[current(k) for k in names] for names in SORTED_FILES])
    manifest = read_manifest(Store(s3), dest, key)
    assert keys_of(iter_inventory(Store(s3), manifest, prefix="", files=[data[2], data[0]])) == [
        "d/a", "d/b", "d/c", "d/g", "d/h", "d/i",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="not data files of"):
        iter_inventory(Store(s3), manifest, prefix="", files=["inventory/elsewhere.csv.gz"])


# ---- order ------------------------------------------------------------------------------------------------------


def test_an_unsorted_file_is_recorded_and_every_row_still_read(s3: Any, dest: str) -> None:
    key, data = write_report(s3, dest, [[current("d/a"), current("d/c")], [current("d/e"), current("d/b")]])
    stream = iter_inventory(Store(s3), read_manifest(Store(s3), dest, key), prefix="d/")
    assert keys_of(stream) == ["d/a", "d/c", "d/e", "d/b"]
    assert stream.stats.unsorted_files == [data[1]]
    assert stream.stats.report_sorted() is False


def test_an_unsorted_file_raises_when_the_caller_assumed_sorted(s3: Any, dest: str) -> None:
    key, data = write_report(s3, dest, [[current("d/a"), current("d/c"), current("d/b")]])
    with pytest.raises(InventoryUnsorted) as err:
        list(iter_inventory(Store(s3), read_manifest(Store(s3), dest, key), prefix="d/", assume_sorted=True))
    assert (err.value.uri, err.value.line, err.value.previous, err.value.key) == (
        f"s3://{dest}/{data[0]}", 3, "d/c", "d/b",
    )  # fmt: skip


def test_overlapping_files_make_the_report_unsorted(s3: Any, dest: str) -> None:
    key, _ = write_report(s3, dest, [[current("d/a"), current("d/m")], [current("d/c"), current("d/z")]])
    stream = iter_inventory(Store(s3), read_manifest(Store(s3), dest, key), prefix="")
    list(stream)
    assert stream.stats.unsorted_files == [] and stream.stats.report_sorted() is False


def test_a_sorted_disjoint_report_says_so_even_when_a_key_straddles_two_files(s3: Any, dest: str) -> None:
    files = [
        [version("d/a", False), version("d/b", False)],
        [version("d/b", True), version("d/c", True)],
        [version("d/d", True)],
    ]
    key, data = write_report(s3, dest, files, schema=ALL_VERSIONS)
    stream = iter_inventory(Store(s3), read_manifest(Store(s3), dest, key), prefix="")
    assert keys_of(stream) == ["d/b", "d/c", "d/d"]
    assert stream.stats.report_sorted() is True
    assert stream.stats.bounds == {data[0]: ("d/a", "d/b"), data[1]: ("d/b", "d/c"), data[2]: ("d/d", "d/d")}


def test_assume_sorted_stops_reading_a_file_past_the_range(s3: Any, dest: str) -> None:
    names = [f"d/{n:05d}" for n in range(3000)]
    key, data = write_report(s3, dest, [[current(k, etag=uuid.uuid4().hex) for k in names]])
    manifest = read_manifest(Store(s3), dest, key)
    stream = iter_inventory(Store(s3), manifest, prefix="d/", end_at="d/00002", assume_sorted=True)
    assert keys_of(stream) == ["d/00000", "d/00001", "d/00002"]
    assert stream.stats.rows == 4 and data[0] not in stream.stats.bounds  # one row past the end, then stop
    past_prefix = iter_inventory(Store(s3), manifest, prefix="c/", assume_sorted=True)
    assert list(past_prefix) == [] and past_prefix.stats.rows == 1


# ---- first_key and files_for_range -------------------------------------------------------------------------


def record_gets(s3: Any) -> list[dict[str, Any]]:
    """Every GetObject as sent (its Range and If-Match headers) and the bytes that came back."""
    gets: list[dict[str, Any]] = []

    def sent(request: Any, **_: Any) -> None:
        gets.append({"range": request.headers.get("Range"), "if_match": request.headers.get("If-Match")})

    def received(parsed: dict[str, Any], **_: Any) -> None:
        gets[-1]["bytes"] = parsed.get("ContentLength")

    s3.meta.events.register("before-sign.s3.GetObject", sent)
    s3.meta.events.register("after-call.s3.GetObject", lambda parsed, **kw: received(parsed))
    return gets


def test_first_key_reads_one_range_of_a_large_file(s3: Any, dest: str) -> None:
    rows = [current(f"d/{n:06d} é+%", etag=uuid.uuid4().hex) for n in range(20_000)]
    key, data = write_report(s3, dest, [[csv_line(SOURCE, "d/short"), *rows]])  # a malformed first row
    (file_key, file_size) = read_manifest(Store(s3), dest, key).files[0]
    assert file_size > 4 * FIRST_KEY_BYTES
    gets = record_gets(s3)
    assert first_key(Store(s3), dest, file_key, CURRENT.split(", ")) == "d/000000 é+%"
    assert gets == [{"range": f"bytes=0-{FIRST_KEY_BYTES - 1}", "if_match": None, "bytes": FIRST_KEY_BYTES}]


def test_first_key_reads_further_ranges_pinned_to_the_etag_when_a_row_is_longer(s3: Any, dest: str) -> None:
    key, data = write_report(s3, dest, [[current("d/" + uuid.uuid4().hex * 20), current("d/z")]])
    etag = s3.head_object(Bucket=dest, Key=data[0])["ETag"]
    gets = record_gets(s3)
    assert first_key(Store(s3), dest, data[0], CURRENT.split(", "), chunk_bytes=64).startswith("d/")
    assert [g["range"] for g in gets] == [f"bytes={64 * n}-{64 * n + 63}" for n in range(len(gets))]
    assert len(gets) > 1 and gets[0]["if_match"] is None and {g["if_match"] for g in gets[1:]} == {etag}


def test_first_key_of_an_empty_file_is_none(s3: Any, dest: str) -> None:
    key, data = write_report(s3, dest, [[], b""])
    assert [first_key(Store(s3), dest, k, CURRENT.split(", ")) for k in data] == [None, None]


def test_files_for_range_picks_the_files_that_can_hold_a_range() -> None:
    firsts = [("f3", "d/g"), ("f1", "d/a"), ("empty", None), ("f2", "d/d")]
    assert files_for_range(firsts, None, None) == ["f3", "f1", "f2"]
    assert files_for_range(firsts, "d/c", "d/f") == ["f1", "f2"]  # f1 may end anywhere up to d/d
    assert files_for_range(firsts, "d/d", "d/f") == ["f2"]
    assert files_for_range(firsts, "d/d", "d/g") == ["f3", "f2"]
    assert files_for_range(firsts, "d/g", None) == ["f3"]
    assert files_for_range(firsts, None, "d/0") == []
    assert files_for_range([("a", "k"), ("b", "k"), ("c", "m")], "j", "k") == ["a", "b"]  # a key's versions


def test_files_for_range_uses_the_prefix_too() -> None:
    firsts = [("f1", "a/1"), ("f2", "b/1"), ("f3", "b/5"), ("f4", "c/1")]
    assert files_for_range(firsts, None, None, prefix="b/") == ["f1", "f2", "f3"]  # f1 may run into b/
    assert files_for_range([("f0", "a/1"), ("f1", "a/5"), ("f2", "b/1")], None, None, prefix="b/") == ["f1", "f2"]
    assert files_for_range(firsts, None, None, prefix="z/") == ["f4"]


def test_a_shard_reads_only_the_files_its_range_needs(s3: Any, dest: str) -> None:
    """The planner's path: first keys from one ranged GET per file, the subset, then a sorted read of it."""
    key, data = write_report(s3, dest, [[current(k) for k in names] for names in SORTED_FILES])
    manifest = read_manifest(Store(s3), dest, key)
    firsts = [(k, first_key(Store(s3), dest, k, manifest.columns)) for k, _ in manifest.files]
    assert [f for _, f in firsts] == ["d/a", "d/d", "d/g"]
    # A file's last key is unknown: the first file (d/a, next file from d/d) may hold d/c0, so (d/c, d/e] needs it.
    assert files_for_range(firsts, "d/c", "d/e", prefix="d/") == data[:2]
    subset = files_for_range(firsts, "d/d", "d/f", prefix="d/")
    assert subset == [data[1]]
    stream = iter_inventory(
        Store(s3), manifest, prefix="d/", start_after="d/d", end_at="d/f", files=subset, assume_sorted=True
    )
    assert keys_of(stream) == ["d/e", "d/f"] and stream.stats.files_read == 1
