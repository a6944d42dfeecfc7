"""The current state: one row per source key as last landed, in an on-disk SQLite table.

The state is what makes incremental planning cheap: a run reads one compressed object (35 to 60 bytes a
key) instead of every manifest of a long history. Loaded into SQLite in the temp dir (Lambda's /tmp), it
keeps memory flat for millions of keys. This module only knows the table and the file's encoding; the
ledger decides where the file lives and when it is written.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from .records import ManifestLine, ObjectStatus
from .shards import in_range

COLUMNS = ("key", "etag", "size", "target", "run_id", "date", "ingested_at")
_INSERT = "INSERT OR REPLACE INTO landed VALUES (?,?,?,?,?,?,?)"
_CHUNK = 5000


@contextmanager
def scratch_db() -> Iterator[sqlite3.Connection]:
    """An on-disk SQLite file in the temp dir, gone when the step ends: memory stays flat for millions of keys."""
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        db = sqlite3.connect(os.path.join(tmp, "plan.sqlite"))
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        try:
            yield db
        finally:
            db.close()


def create_table(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS landed (key TEXT PRIMARY KEY, etag TEXT, size INTEGER, target TEXT, "
        "run_id TEXT, date TEXT, ingested_at TEXT) WITHOUT ROWID"
    )


def read_into(
    db: sqlite3.Connection, gzipped: IO[bytes], *, start_after: str | None = None, end_at: str | None = None
) -> int:
    """Stream a state file (gzipped JSON Lines) into the `landed` table, only the keys of a shard's range
    (`start_after < key <= end_at`) when given; returns the number of keys read in."""
    create_table(db)
    count = 0
    with gzip.GzipFile(fileobj=gzipped) as raw, db:
        rows = (_row(json.loads(line)) for line in io.TextIOWrapper(raw, encoding="utf-8") if line.strip())
        if start_after is not None or end_at is not None:
            rows = (row for row in rows if in_range(row[0], start_after, end_at))
        for chunk in chunks(rows, _CHUNK):
            db.executemany(_INSERT, chunk)
            count += len(chunk)
    return count


def iter_lines(gzipped: IO[bytes]) -> Iterator[dict[str, Any]]:
    """A state part's rows as dicts, streamed."""
    with gzip.GzipFile(fileobj=gzipped) as raw:
        for line in io.TextIOWrapper(raw, encoding="utf-8"):
            if line.strip():
                yield json.loads(line)


def count(db: sqlite3.Connection) -> int:
    return db.execute("SELECT COUNT(*) FROM landed").fetchone()[0]


def sorted_rows(db: sqlite3.Connection) -> Iterator[tuple[Any, ...]]:
    return iter(db.execute("SELECT * FROM landed ORDER BY key"))


def write_rows(rows: Iterable[tuple[Any, ...]], out: IO[bytes]) -> str | None:
    """Rows (sorted by key), gzipped into `out` (a temp file: never all in memory); returns the last key."""
    last = None
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        for row in rows:
            gz.write((json.dumps(dict(zip(COLUMNS, row, strict=True)), ensure_ascii=False) + "\n").encode())
            last = row[0]
    return last


def write_to(db: sqlite3.Connection, out: IO[bytes]) -> None:
    """The whole table, sorted by key, gzipped into `out`."""
    write_rows(sorted_rows(db), out)


def landed_entry(db: sqlite3.Connection, key: str) -> tuple[str, str] | None:
    """(ETag, target key) the source key last landed with, or None."""
    row = db.execute("SELECT etag, target FROM landed WHERE key = ?", (key,)).fetchone()
    return (row[0], row[1]) if row else None


# Well under SQLite's bound on parameters in one statement (999 before SQLite 3.32).
LOOKUP_CHUNK = 900


def landed_entries(db: sqlite3.Connection, keys: list[str]) -> dict[str, tuple[str, str]]:
    """{key: (ETag, target key)} of those of `keys` (at most LOOKUP_CHUNK) that have landed, in one SELECT."""
    if not keys:
        return {}
    marks = ",".join("?" * len(keys))
    rows = db.execute(f"SELECT key, etag, target FROM landed WHERE key IN ({marks})", keys)  # noqa: S608 - only marks
    return {key: (etag, target) for key, etag, target in rows}


def record_landed(db: sqlite3.Connection, lines: Iterable[ManifestLine], run_id: str, date: str) -> None:
    """The copied lines become the keys' current versions, in one transaction."""
    with db:
        db.executemany(
            _INSERT,
            (
                (line.source_key, line.source_etag, line.size, line.target_key, run_id, date, line.ingested_at)
                for line in lines
                if line.status == ObjectStatus.COPIED
            ),
        )


def _row(entry: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(entry.get(column) for column in COLUMNS)


def chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Rows in lists of `size` (the last shorter): one statement per list, never every row in memory."""
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
