"""S3 Inventory as a listing source: plan from a daily report instead of listing 100 million keys.

ListObjectsV2 returns 1,000 keys a request, so listing a huge dataset takes hours. S3 Inventory writes the
same facts (key, size, ETag, last modified, storage class) as a few gzipped CSV files once a day; reading
them is a handful of streamed GETs. A shard (`start_after < key <= end_at`, as in `Store.iter_source_objects`)
streams only the rows in its range, and, when the report is key-sorted, only the files that can hold them.

What AWS documents, and where (the user guide pages are also in github.com/awsdocs/amazon-s3-userguide):

- Location ("Locating your inventory list", docs.aws.amazon.com/AmazonS3/latest/userguide/
  storage-inventory-location.html): each report writes
  `<destination-prefix>/<source-bucket>/<config-id>/YYYY-MM-DDTHH-MMZ/manifest.json` and `manifest.checksum`
  (the MD5 of manifest.json), and `<...>/<config-id>/hive/dt=YYYY-MM-DD-HH-MM/symlink.txt` for Hive/Athena.
  The data files go to `<...>/<config-id>/data/<name>.csv.gz`. The dated folder is the time the report
  began scanning the bucket (e.g. `2016-11-06T21-32Z`), so its name sorts chronologically.
- manifest.json (same page): `sourceBucket`, `destinationBucket` (the bucket's ARN),
  `version` ("2016-11-30"), `creationTimestamp` (epoch milliseconds as a string, "1514944800000"),
  `fileFormat` ("CSV", "ORC" or "Parquet"), `fileSchema` (for CSV, the column names comma-separated:
  "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, ..."),
  and `files`: a list of `{"key", "size", "MD5checksum"}`, the data files in the destination bucket.
- Completion ("Inventory completion", storage-inventory.html): the creation of `manifest.checksum` is what
  signals that a report has been delivered, so `latest_manifest` takes the newest folder that has one.
- Contents ("Cataloging and analyzing your data with S3 Inventory", docs.aws.amazon.com/AmazonS3/latest/
  userguide/storage-inventory.html): CSV files are compressed with GZIP (ORC with ZLIB, Parquet with Snappy).
  "When using the CSV file format, the key name is URL-encoded and must be decoded before you can use it."
  Version ID and IsLatest are absent from a current-versions-only report; the delete-marker field is added
  when the report includes all versions. Size, LastModifiedDate, ETag and StorageClass are optional fields
  that must be selected (API InventoryConfiguration, docs.aws.amazon.com/AmazonS3/latest/API/
  API_InventoryConfiguration.html: `IncludedObjectVersions` All | Current; `OptionalFields` Size |
  LastModifiedDate | StorageClass | ETag | IsMultipartUploaded | ...). The list is eventually consistent:
  it "might not include recently added or deleted objects". The first report can take up to 48 hours.
- CSV layout: no header row and columns in `fileSchema` order. AWS does not say "no header" in words; the
  manifest carries the schema, and AWS's Athena template for CSV inventories (storage-inventory-athena-
  query.html: OpenCSVSerde, columns bucket, key, ..., `size string`, `last_modified_date string`) skips no
  header line. A row equal to the column names is skipped anyway, in case.
- How the key is URL-encoded: AWS does not say. Cloud Custodian found spaces encoded as `+`
  (github.com/cloud-custodian/cloud-custodian issue #1997, fixed by PR #1998 with `unquote_plus`), i.e. form
  encoding, in which a literal `+` is `%2B`. So keys are decoded with `urllib.parse.unquote_plus` (UTF-8):
  right for `+`-spaces, and equally right if spaces ever come as `%20`.
- LastModifiedDate in CSV: AWS documents no format (its Athena template reads it as a string). This module
  expects ISO 8601 with a zone, like S3's other timestamps (`2016-11-06T21:32:00.000Z`); not checked against
  a live report here. A value that does not parse, or has no zone, is a malformed row (below), so another
  format is loud, never a silent wrong date. Likewise IsLatest / IsDeleteMarker are read as `true`/`false`
  (booleans in the Athena template).
- Sort order: AWS documents none. ListObjectsV2 is documented to return keys in UTF-8 binary order; the
  inventory pages (storage-inventory, -location, -athena-query) say nothing about the order of rows in a
  file or of keys across `files`. Nothing here relies on order for correctness unless the caller says so
  (`assume_sorted`, `files_for_range`), and the stream checks every row's order as it goes.
- A destination prefix ending in `/` makes S3 write data files under `prefix//...` while the manifest lists
  `prefix/...` (rachelevans.org/blog/the-aws-s3-inventory-service-dont-end-the-destination-prefix-with-slash):
  a listed file that does not exist is reported, naming that cause.

Choices made here:

- Only CSV. ORC and Parquet need pyarrow or similar, which the Lambda zip (stdlib + boto3) does not carry.
- The data files are read from the bucket the manifest was read from (the destination bucket S3 wrote it to;
  still right for a copied or replicated report), not from the manifest's `destinationBucket` ARN.
- Malformed rows (wrong column count, a key that is not URL-encoded UTF-8, a bad size, date or empty ETag)
  yield nothing and are counted in `InventoryStream.stats`, with the first few (file and line) kept for the
  planner to report. Only rows in the shard's range are checked beyond their key, so shards reading one file
  do not each report the others' rows. A file that is missing, or not gzip, stops the stream with
  `InventoryError`: its rows cannot be skipped without missing keys.
- Rows are yielded in file order, files in manifest order. Delete markers and non-latest versions are skipped
  when the report has those columns.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from .errors import ConfigError, CorruptDocument, IngestError
from .selection import SourceObject, clean_etag
from .store import S3Error, Store

log = logging.getLogger(__name__)

SUPPORTED_FORMAT = "CSV"
REQUIRED_COLUMNS = ("Key", "Size", "LastModifiedDate", "ETag")
"""What a SourceObject needs. Key is always in a report; the other three are optional fields to select."""

MANIFEST_FIELDS = ("sourceBucket", "destinationBucket", "creationTimestamp", "fileFormat", "fileSchema", "files")
REPORT_FOLDER = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z/")
"""A report's dated folder, `YYYY-MM-DDTHH-MMZ/`: fixed width, so string order is time order."""

FIRST_KEY_BYTES = 64 * 1024
"""One ranged GET of a data file's start: a row is a few hundred bytes, a key at most ~3 KB URL-encoded."""
FIRST_KEY_LIMIT = 1024 * 1024
"""How far `first_key` reads before giving up on finding a well-formed row."""
MAX_PROBLEMS = 10
"""Malformed rows kept with their file and line (all are counted)."""


class InventoryError(IngestError):
    """The inventory report cannot be read as a whole (a listed file is missing, or is not gzip): planning from
    it would silently miss keys, so the caller must fall back to listing or wait for the next report."""


class InventoryUnsorted(InventoryError):
    """A row's key is lower than the row before it in the same file, while the caller assumed a key-sorted
    report (`assume_sorted`): a file subset chosen by `files_for_range` may have missed keys; read every file."""

    def __init__(self, uri: str, line: int, previous: str, key: str):
        super().__init__(f"{uri}:{line}: key {key!r} comes after {previous!r}: the report is not key-sorted")
        self.uri, self.line, self.previous, self.key = uri, line, previous, key


@dataclass(frozen=True)
class InventoryManifest:
    """A report's manifest.json, checked: CSV, with the columns a SourceObject needs."""

    uri: str
    """s3:// URI of the manifest.json, for messages."""
    bucket: str
    """Where the manifest, and so its data files, were read from."""
    source_bucket: str
    destination_bucket: str
    """Bucket name from the manifest's `destinationBucket` ARN."""
    file_format: str
    columns: tuple[str, ...]
    files: tuple[tuple[str, int], ...]
    """(key, size) of each data file, in manifest order."""
    creation_timestamp: datetime
    """When the report began scanning the source bucket (UTC): objects written later are not in it."""


@dataclass
class InventoryStats:
    """What a stream saw, for the planner's summary; filled while streaming."""

    files_read: int = 0
    rows: int = 0
    """Rows with a decodable key, in or out of range."""
    yielded: int = 0
    delete_markers: int = 0
    noncurrent: int = 0
    malformed: int = 0
    problems: list[str] = field(default_factory=list)
    """The first MAX_PROBLEMS malformed rows, as `s3://bucket/file:line: what`."""
    unsorted_files: list[str] = field(default_factory=list)
    """Data files with a row whose key is lower than the row before it."""
    bounds: dict[str, tuple[str, str]] = field(default_factory=dict)
    """(first, last) key of each file read to its end."""

    def report_sorted(self) -> bool | None:
        """Whether the files read to their end were each key-sorted and their key ranges did not overlap (a key
        may end one file and start the next: versions). None when no file was read to its end. Only a read of
        every file answers for the whole report; this is how a caller learns whether `files_for_range` holds."""
        if self.unsorted_files:
            return False
        if not self.bounds:
            return None
        spans = sorted(self.bounds.values())
        return all(before[1] <= after[0] for before, after in zip(spans, spans[1:], strict=False))

    def malformed_row(self, uri: str, line: int, reason: str) -> None:
        self.malformed += 1
        if len(self.problems) < MAX_PROBLEMS:
            problem = f"{uri}:{line}: {reason}"
            self.problems.append(problem)
            log.warning("inventory row skipped: %s", problem)


# ---- manifest ---------------------------------------------------------------------------------------------------


def read_manifest(store: Store, bucket: str, key: str, *, source_bucket: str | None = None) -> InventoryManifest:
    """Read and check a manifest.json; every problem is a ConfigError naming the manifest's URI, all at once,
    so a wrong inventory configuration is fixed in one go. `source_bucket`, when given, must be the bucket
    the report lists (a prefix pointing at another bucket's inventory would plan the wrong keys)."""
    uri = f"s3://{bucket}/{key}"
    document, _ = get_json_or_config_error(store, bucket, key, uri)
    if not isinstance(document, dict):
        raise ConfigError(f"inventory manifest {uri}: not a JSON object")
    problems = [f"{name}: missing" for name in MANIFEST_FIELDS if document.get(name) in (None, "")]
    if problems:
        raise ConfigError([f"inventory manifest {uri}: {p}" for p in problems])
    file_format = str(document["fileFormat"])
    columns = parse_schema(document["fileSchema"])
    files, file_problems = parse_files(document["files"])
    created, created_problem = parse_timestamp(document["creationTimestamp"])
    problems = [
        *(format_problems(file_format) or schema_problems(columns)),
        *file_problems,
        *([created_problem] if created_problem else []),
    ]
    if source_bucket is not None and document["sourceBucket"] != source_bucket:
        problems.append(
            f"sourceBucket: the report lists bucket {document['sourceBucket']!r}, not the dataset's source "
            f"{source_bucket!r}: use the prefix of {source_bucket!r}'s inventory"
        )
    if problems:
        raise ConfigError([f"inventory manifest {uri}: {p}" for p in problems])
    assert created is not None
    return InventoryManifest(
        uri=uri,
        bucket=bucket,
        source_bucket=str(document["sourceBucket"]),
        destination_bucket=str(document["destinationBucket"]).rsplit(":", 1)[-1],
        file_format=file_format,
        columns=columns,
        files=files,
        creation_timestamp=created,
    )


def get_json_or_config_error(store: Store, bucket: str, key: str, uri: str) -> tuple[Any, str | None]:
    try:
        document, etag = store.get_json(bucket, key)
    except CorruptDocument as err:
        raise ConfigError(f"inventory manifest {uri}: not valid JSON ({err.reason})") from err
    if etag is None:
        raise ConfigError(f"inventory manifest {uri}: does not exist")
    return document, etag


def parse_schema(schema: Any) -> tuple[str, ...]:
    """`"Bucket, Key, Size"` -> ("Bucket", "Key", "Size"): AWS separates with comma and space."""
    return tuple(name.strip() for name in str(schema).split(",") if name.strip())


def format_problems(file_format: str) -> list[str]:
    if file_format.upper() == SUPPORTED_FORMAT:
        return []
    return [
        f"fileFormat is {file_format!r}: only CSV is supported (ORC and Parquet need libraries the Lambda zip "
        "does not carry); configure the inventory as CSV"
    ]


def schema_problems(columns: tuple[str, ...]) -> list[str]:
    """Say which needed columns are missing and how to add them, or that fileSchema is not a CSV schema."""
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if not missing:
        return []
    if "Key" in missing:
        return [f"fileSchema {', '.join(columns)[:200]!r} has no Key column: not a CSV inventory schema"]
    return [
        f"fileSchema lacks {', '.join(missing)}: planning needs {', '.join(REQUIRED_COLUMNS[1:])} (and "
        "StorageClass, to skip archived objects); add them to the inventory configuration's optional fields "
        "(console: Additional metadata fields; API: OptionalFields) and use the next report"
    ]


def parse_files(files: Any) -> tuple[tuple[tuple[str, int], ...], list[str]]:
    if not isinstance(files, list):
        return (), ["files: not a list"]
    parsed: list[tuple[str, int]] = []
    problems: list[str] = []
    for number, entry in enumerate(files):
        key = entry.get("key") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        if not isinstance(key, str) or not key:
            problems.append(f"files[{number}].key: missing")
        elif isinstance(size, bool) or not isinstance(size, int) or size < 0:
            problems.append(f"files[{number}].size: not a byte count ({size!r})")
        else:
            parsed.append((key, size))
    return tuple(parsed), problems


def parse_timestamp(value: Any) -> tuple[datetime | None, str | None]:
    """creationTimestamp is epoch milliseconds, as a string in AWS's example."""
    try:
        return datetime.fromtimestamp(int(str(value)) / 1000, UTC), None
    except (ValueError, OverflowError, OSError):
        return None, f"creationTimestamp: not epoch milliseconds ({str(value)[:40]!r})"


def latest_manifest(store: Store, bucket: str, prefix: str) -> str:
    """The key of the newest delivered manifest.json under an inventory's `<destination-prefix>/<source-bucket>/
    <config-id>/` prefix. A delimiter listing returns one entry per report folder (plus data/ and hive/), not
    one per data file; the newest dated folder with a manifest.checksum wins (the checksum is written last)."""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    folders = list_folders(store, bucket, prefix)
    reports = sorted((f for f in folders if REPORT_FOLDER.fullmatch(f[len(prefix) :])), reverse=True)
    for folder in reports:
        if store.head_or_none(bucket, folder + "manifest.checksum") is not None:
            return folder + "manifest.json"
        log.info("inventory report %s has no manifest.checksum yet (still being delivered); trying older", folder)
    raise ConfigError(f"inventory s3://{bucket}/{prefix}: {no_report_reason(prefix, folders, reports)}")


def no_report_reason(prefix: str, folders: list[str], reports: list[str]) -> str:
    if reports:
        return f"{len(reports)} report folder(s), none delivered yet (no manifest.checksum)"
    found = ", ".join(f[len(prefix) :] for f in folders[:5]) or "nothing"
    return (
        f"no report folder (YYYY-MM-DDTHH-MMZ/) under it (found: {found}); give the inventory's "
        "<destination-prefix>/<source-bucket>/<config-id>/ prefix; a new inventory's first report takes up to "
        "48 hours"
    )


def list_folders(store: Store, bucket: str, prefix: str) -> list[str]:
    """Every common prefix right under `prefix` (one a report per day: a few pages in years)."""
    return store.list_folders(bucket, prefix, max_pages=None)[0]


# ---- rows -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """Where each field a SourceObject needs sits in a row; optional ones are None when not in the report."""

    count: int
    key: int
    size: int
    last_modified: int
    etag: int
    storage_class: int | None
    is_latest: int | None
    is_delete_marker: int | None
    names: tuple[str, ...]

    @classmethod
    def of(cls, columns: Sequence[str]) -> Columns:
        index = {name: number for number, name in enumerate(columns)}
        return cls(
            count=len(columns),
            key=index["Key"],
            size=index.get("Size", -1),
            last_modified=index.get("LastModifiedDate", -1),
            etag=index.get("ETag", -1),
            storage_class=index.get("StorageClass"),
            is_latest=index.get("IsLatest"),
            is_delete_marker=index.get("IsDeleteMarker"),
            names=tuple(columns),
        )


def decode_key(raw: str) -> str | None:
    """A CSV inventory key, URL-encoded with `+` for space, as S3 spells it; None if it is not valid UTF-8 (a
    U+FFFD in the raw field is a byte the file's UTF-8 decoding replaced: keys are encoded, so never legit)."""
    if "\ufffd" in raw:
        return None
    try:
        return unquote_plus(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return None


def parse_row(row: list[str], key: str, columns: Columns) -> SourceObject | str:
    """The row as a SourceObject, or the reason it is malformed."""
    size = row[columns.size]
    if not (size.isascii() and size.isdigit()):
        return f"size {size[:40]!r} is not a byte count"
    try:
        modified = datetime.fromisoformat(row[columns.last_modified])
    except ValueError:
        return f"LastModifiedDate {row[columns.last_modified][:40]!r} is not an ISO 8601 time"
    if modified.tzinfo is None:
        return f"LastModifiedDate {row[columns.last_modified][:40]!r} has no time zone"
    etag = clean_etag(row[columns.etag])
    if not etag:
        return "empty ETag"
    storage_class = row[columns.storage_class] if columns.storage_class is not None else ""
    return SourceObject(key, etag, int(size), modified.astimezone(UTC), storage_class or "STANDARD")


def is_true(row: list[str], index: int | None) -> bool | None:
    return None if index is None else row[index].strip().lower() == "true"


@dataclass(frozen=True)
class KeyRange:
    """The keys a shard wants: under `prefix`, `start_after < key <= end_at`, not under `skip_prefix`."""

    prefix: str = ""
    start_after: str | None = None
    end_at: str | None = None
    skip_prefix: str | None = None

    def accepts(self, key: str) -> bool:
        if not key.startswith(self.prefix) or (self.skip_prefix and key.startswith(self.skip_prefix)):
            return False
        return (self.start_after is None or key > self.start_after) and (self.end_at is None or key <= self.end_at)

    def passed(self, key: str) -> bool:
        """True when, in a key-sorted file, no later row can be in range: past end_at or past the prefix block."""
        return (self.end_at is not None and key > self.end_at) or past_prefix(key, self.prefix)


def past_prefix(key: str, prefix: str) -> bool:
    """Whether `key` sorts after every key that starts with `prefix`."""
    return key > prefix and not key.startswith(prefix)


# ---- stream -----------------------------------------------------------------------------------------------------


def iter_inventory(
    store: Store,
    manifest: InventoryManifest,
    *,
    prefix: str,
    start_after: str | None = None,
    end_at: str | None = None,
    skip_prefix: str | None = None,
    files: Iterable[str] | None = None,
    assume_sorted: bool = False,
) -> InventoryStream:
    """Stream the report's objects in a shard's range, in file order, one row in memory at a time.

    `files` limits the read to some data files (from `files_for_range`); by default every file is read.
    `assume_sorted` is the caller's decision that the report is key-sorted (AWS does not promise it): each file
    is then read only until its rows pass the range, and a row out of order raises InventoryUnsorted so the
    caller can start again over every file. Without it every row is read and order is only recorded in `stats`.
    """
    wanted = select_files(manifest, files)
    return InventoryStream(store, manifest, KeyRange(prefix, start_after, end_at, skip_prefix), wanted, assume_sorted)


def select_files(manifest: InventoryManifest, files: Iterable[str] | None) -> list[str]:
    listed = [key for key, _ in manifest.files]
    if files is None:
        return listed
    chosen = set(files)
    unknown = chosen.difference(listed)
    if unknown:
        raise ValueError(f"not data files of {manifest.uri}: {sorted(unknown)[:3]}")
    return [key for key in listed if key in chosen]


class InventoryStream(Iterator[SourceObject]):
    """The objects of a report, with `stats` (malformed rows, order, skips) filled in as they are read."""

    def __init__(
        self, store: Store, manifest: InventoryManifest, keys: KeyRange, files: list[str], assume_sorted: bool
    ):
        self.store, self.manifest, self.keys, self.files = store, manifest, keys, files
        self.assume_sorted = assume_sorted
        self.columns = Columns.of(manifest.columns)
        self.stats = InventoryStats()
        self._first_last: dict[str, tuple[str, str]] = {}
        """(first, latest) key seen in each file, for order checks and `stats.bounds`."""
        self._objects = self._stream()

    def __next__(self) -> SourceObject:
        return next(self._objects)

    def close(self) -> None:
        """Stop early: closes the data file being read."""
        self._objects.close()

    def _stream(self) -> Iterator[SourceObject]:
        for key in self.files:
            yield from self._file(key)

    def _file(self, key: str) -> Iterator[SourceObject]:
        uri = f"s3://{self.manifest.bucket}/{key}"
        body, _ = self.store.open_versioned(self.manifest.bucket, key)
        if body is None:
            raise InventoryError(
                f"{uri}, listed in {self.manifest.uri}, does not exist: the report was deleted (a lifecycle rule?) "
                "or its destination prefix ends with '/' (S3 then writes files under 'prefix//'); use a newer report"
            )
        self.stats.files_read += 1
        line = 0
        try:
            with (
                body,
                gzip.GzipFile(fileobj=body) as unzipped,
                io.TextIOWrapper(unzipped, encoding="utf-8", errors="replace", newline="") as text,
            ):
                for line, row in csv_rows(text, uri, self.stats):
                    source_key = self._key(row, uri, line)
                    if source_key is None:
                        continue
                    self._order(source_key, uri, key, line)
                    if self.assume_sorted and self.keys.passed(source_key):
                        log.debug("inventory file %s: rows passed the shard's range; the rest is not read", uri)
                        return
                    obj = self._object(row, source_key, uri, line)
                    if obj is not None:
                        yield obj
        except (OSError, EOFError, zlib.error) as err:
            raise InventoryError(f"{uri}: not a readable gzip file after line {line} ({err})") from err
        if key in self._first_last:
            self.stats.bounds[key] = self._first_last[key]

    def _key(self, row: list[str], uri: str, line: int) -> str | None:
        """The row's decoded key, or None for a header or a malformed row (counted)."""
        if row == list(self.columns.names):
            return None  # a header row: AWS writes none, but one would be harmless
        if len(row) != self.columns.count:
            reason = f"{len(row)} columns, the manifest's fileSchema has {self.columns.count}"
            self.stats.malformed_row(uri, line, reason)
            return None
        key = decode_key(row[self.columns.key])
        if key is None:
            self.stats.malformed_row(uri, line, f"key {row[self.columns.key][:60]!r} is not URL-encoded UTF-8")
            return None
        self.stats.rows += 1
        return key

    def _object(self, row: list[str], key: str, uri: str, line: int) -> SourceObject | None:
        """The SourceObject of a row in the shard's range that a listing would show, else None. Only these rows
        are checked beyond their key, so shards sharing a file do not each report the others' bad rows."""
        if not self.keys.accepts(key) or not self._current(row):
            return None
        obj = parse_row(row, key, self.columns)
        if isinstance(obj, str):
            self.stats.malformed_row(uri, line, obj)
            return None
        self.stats.yielded += 1
        return obj

    def _order(self, key: str, uri: str, file_key: str, line: int) -> None:
        first, previous = self._first_last.get(file_key, (key, key))
        if key < previous:
            if self.assume_sorted:
                raise InventoryUnsorted(uri, line, previous, key)
            if file_key not in self.stats.unsorted_files:
                self.stats.unsorted_files.append(file_key)
        self._first_last[file_key] = (first, key)

    def _current(self, row: list[str]) -> bool:
        """Skip what a listing of current objects would not show: delete markers and older versions."""
        if is_true(row, self.columns.is_delete_marker):
            self.stats.delete_markers += 1
            return False
        if is_true(row, self.columns.is_latest) is False:
            self.stats.noncurrent += 1
            return False
        return True

    def __iter__(self) -> InventoryStream:
        return self


def csv_rows(text: io.TextIOBase, uri: str, stats: InventoryStats) -> Iterator[tuple[int, list[str]]]:
    """(line number, row) of a CSV stream; a line the csv module rejects (a NUL, a field past its size limit)
    is counted as malformed and the reading goes on from the next line."""
    reader = csv.reader(text)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            stats.malformed_row(uri, reader.line_num, f"not CSV ({err})")
            continue
        if row:
            yield reader.line_num, row


# ---- shards: which files can hold a range -------------------------------------------------------------------


def first_key(
    store: Store, bucket: str, key: str, columns: Sequence[str], *, chunk_bytes: int = FIRST_KEY_BYTES
) -> str | None:
    """The decoded key of a data file's first well-formed row, from ranged GETs of its start (64 KiB: one request
    in practice) inflated incrementally: a shard's planner learns where each file starts without reading it.
    None when the file has no rows. Raises InventoryError if no row is found in the first FIRST_KEY_LIMIT bytes."""
    layout = Columns.of(columns)
    for line in first_lines(store, bucket, key, chunk_bytes):
        row = next(csv.reader([line]), None)
        if row is None or len(row) != layout.count or row == list(layout.names):
            continue
        decoded = decode_key(row[layout.key])
        if decoded is not None:
            return decoded
    return None


def first_lines(store: Store, bucket: str, key: str, chunk_bytes: int) -> Iterator[str]:
    """Text lines from the start of a gzipped object, reading only as many byte ranges as the lines need."""
    inflate = Gunzip()
    pending = b""
    for chunk in ranged_chunks(store, bucket, key, chunk_bytes, FIRST_KEY_LIMIT):
        pending += inflate.feed(chunk, f"s3://{bucket}/{key}")
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace")
    if pending:
        yield pending.decode("utf-8", errors="replace")


class Gunzip:
    """Incremental gunzip of a possibly multi-member stream (each member restarts the decompressor)."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes, uri: str) -> bytes:
        out = b""
        try:
            while data:
                out += self._inflate.decompress(data)
                data = self._inflate.unused_data if self._inflate.eof else b""
                if self._inflate.eof:
                    self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        except zlib.error as err:
            raise InventoryError(f"{uri}: not a gzip file ({err})") from err
        return out


def ranged_chunks(store: Store, bucket: str, key: str, chunk_bytes: int, limit: int) -> Iterator[bytes]:
    """Successive `Range: bytes=a-b` reads of an object, each pinned to the first one's ETag, up to `limit`
    bytes. Nothing for an empty object (S3 answers 416 to a range of it)."""
    offset, etag = 0, None
    while offset < limit:
        try:
            data, response = store.read_range(bucket, key, offset, chunk_bytes, if_match=etag)
        except S3Error as err:
            if err.code == "InvalidRange":
                return
            raise
        etag = response["ETag"]
        total = content_total(response)
        yield data
        offset += len(data)
        if not data or offset >= total:
            return
    raise InventoryError(f"s3://{bucket}/{key}: no complete CSV row in its first {limit} bytes")


def content_total(response: dict[str, Any]) -> int:
    """The object's size from `Content-Range: bytes a-b/total`; a server that ignored the range sent it all."""
    content_range = response.get("ContentRange") or ""
    if "/" in content_range:
        return int(content_range.rsplit("/", 1)[1])
    return int(response.get("ContentLength", 0))


def files_for_range(
    firsts: Sequence[tuple[str, str | None]],
    start_after: str | None,
    end_at: str | None,
    *,
    prefix: str = "",
) -> list[str]:
    """The data files that can hold keys in `start_after < key <= end_at` under `prefix`, IF the report is
    key-sorted and its files are disjoint (AWS does not promise either: the caller decides, and reads with
    `assume_sorted` so a broken assumption raises). Pure: `firsts` is (file key, first key or None for an empty
    file), e.g. from `first_key`. Sorted by first key, a file holds keys from its first key up to the next file's
    first key, inclusive (a key's versions may straddle two files). Returned in the order given."""
    starts = sorted((first, name) for name, first in firsts if first is not None)
    chosen: set[str] = set()
    for number, (first, name) in enumerate(starts):
        upper = starts[number + 1][0] if number + 1 < len(starts) else None
        if (end_at is not None and first > end_at) or past_prefix(first, prefix):
            continue
        if upper is not None and ((start_after is not None and upper <= start_after) or upper < prefix):
            continue
        chosen.add(name)
    return [name for name, _ in firsts if name in chosen]
