"""A run's schema contracts: which planned objects are checked, the ranged GET that reads their header, and what
their table's policy makes of a drifted one (README "Schema contracts").

Made once per copy step from the dataset (`Contracts.of`: None when nothing is checked, so the copier's path for
a dataset without described tables, or with `check_schema: false`, is the one it always was). An object of a
table without columns, or of a parquet one, is never read. The decision of what differs is schema_check.py's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .columns import SCHEMA_DRIFT_POLICIES, Table
from .config import DatasetConfig
from .inventory import content_total
from .layout import MAX_KEY_BYTES, AmbiguousTable, KeyTooLong, TablePatterns, relative_key, table_of
from .records import BatchItem
from .schema_check import HEADER_READ_BYTES, MAX_HEADER_BYTES, checkable, checked_tables, drift_of
from .store import S3Error, Store

QUARANTINE_FOLDER = "_quarantine/"
"""Where `on_schema_drift: quarantine` lands a file: `<target.prefix>_quarantine/<its key under the prefix>`.
Every table's folder is `{table}` below the target prefix, and no table name starts with `_`, so no table (and no
Hive-style reader, which skips `_` folders) reads it; it stays under the prefix the function may write."""

LAND, QUARANTINE, FAIL = SCHEMA_DRIFT_POLICIES


@dataclass(frozen=True)
class Verdict:
    """A checked object whose header differs: the difference, its table's policy, and where it lands then."""

    drift: str
    policy: str
    target: str


@dataclass(frozen=True)
class Contracts:
    """The described tables of one dataset whose files are checked, and where its files land."""

    source_prefix: str
    target_prefix: str
    patterns: TablePatterns
    tables: dict[str, Table]
    """By name: only the tables whose files are checked."""

    @classmethod
    def of(cls, dataset: DatasetConfig) -> Contracts | None:
        """The dataset's contracts; None when no file of it is checked (`check_schema: false`, or no described
        csv or json table)."""
        tables = checked_tables(dataset)
        if not tables:
            return None
        return cls(dataset.source.prefix, dataset.target.prefix, dataset.table_patterns, tables)

    def table_for(self, key: str) -> Table | None:
        """The checked table a source key belongs to (None: it is not checked), as the plan matched it."""
        try:
            table = self.tables.get(table_of(relative_key(self.source_prefix, key), self.patterns))
        except AmbiguousTable:
            return None  # the plan failed it already
        return table if table is not None and checkable(table, key) else None

    def verdict(self, store: Store, source_bucket: str, item: BatchItem) -> Verdict | None:
        """Read the listed version's header (S3 errors raise: PreconditionFailed when it changed since the listing)
        and judge it: None when its table is not checked or the header is the declared one."""
        table = self.table_for(item.key)
        if table is None:
            return None
        drift = drift_of(header_chunks(store, source_bucket, item.key, item.etag), table)
        if drift is None:
            return None
        policy = table.on_schema_drift
        target = self.quarantine_key(item.target) if policy == QUARANTINE else item.target
        return Verdict(drift.describe(), policy, target)

    def quarantine_key(self, target: str) -> str:
        """Where a quarantined object lands. Raises KeyTooLong when the folder pushes it past S3's limit."""
        key = self.target_prefix + QUARANTINE_FOLDER + target.removeprefix(self.target_prefix)
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise KeyTooLong(f"its quarantine key would be over S3's {MAX_KEY_BYTES}-byte limit", rendered=key)
        return key


def header_chunks(store: Store, bucket: str, key: str, etag: str) -> Iterator[bytes]:
    """The object's bytes from its start, one ranged GET at a time (64 KiB, then twice as much each time, to
    MAX_HEADER_BYTES), each pinned to the listed ETag, pulled only as far as the reader needs. Nothing for an
    empty object: S3 answers a range of it 416 InvalidRange."""
    offset, length = 0, HEADER_READ_BYTES
    while offset < MAX_HEADER_BYTES:
        try:
            data, response = store.read_range(bucket, key, offset, length, if_match=f'"{etag}"')
        except S3Error as err:
            if err.code == "InvalidRange":
                return
            raise
        yield data
        offset += len(data)
        if len(data) < length or offset >= content_total(response) or not response.get("ContentRange"):
            return  # the whole object, or a server that ignored the range: a next range would repeat its start
        length *= 2
