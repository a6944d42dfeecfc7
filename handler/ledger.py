"""The record of what arrived, from where, and when: layout of `_ingestion/<dataset>/` and its I/O.

    _ingestion/<dataset>/
      lock.json                                   the run lock (see lock.py)
      open-run.json                               the run being worked on; present only until finalize
      last-run.json                               summary of the newest finalized run
      state/current.jsonl.gz                      compact current state: one line per source key last landed
      manifest/date=YYYY-MM-DD/<run_id>.jsonl     one line per object the run copied, skipped or failed
      summary/date=YYYY-MM-DD/<run_id>.json       one line per run: status, counts, bytes, start, end
      complete/date=YYYY-MM-DD/<run_id>.json      completion marker for downstream jobs (runs that landed files)
      work/<run_id>/...                           batches and per-batch results, deleted at finalize

The state is what makes incremental planning cheap: a run reads one compressed object (about 60 bytes a
key) instead of every manifest of a long history. It is loaded into an on-disk SQLite table, so memory
stays flat for millions of keys.
"""

from __future__ import annotations

import gzip
import io
import json
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from botocore.exceptions import ClientError

from .config import DatasetConfig
from .s3io import is_not_found


class LedgerPaths:
    """Keys of one dataset's ledger in its target bucket."""

    def __init__(self, dataset: DatasetConfig):
        self.bucket = dataset.target.bucket
        self.root = dataset.ledger_prefix

    @property
    def lock(self) -> str:
        return self.root + "lock.json"

    @property
    def probe(self) -> str:
        return self.root + "probe/"

    @property
    def open_run(self) -> str:
        return self.root + "open-run.json"

    @property
    def last_run(self) -> str:
        return self.root + "last-run.json"

    @property
    def state(self) -> str:
        return self.root + "state/current.jsonl.gz"

    @property
    def summaries(self) -> str:
        return self.root + "summary/"

    def work(self, run_id: str) -> str:
        return f"{self.root}work/{run_id}/"

    def batch_index(self, run_id: str) -> str:
        return self.work(run_id) + "batches.json"

    def batch(self, run_id: str, number: int) -> str:
        return f"{self.work(run_id)}batches/{number:06d}.json"

    def batch_started(self, run_id: str, number: int) -> str:
        return f"{self.work(run_id)}started/{number:06d}"

    def result(self, run_id: str, number: int) -> str:
        return f"{self.work(run_id)}results/{number:06d}.jsonl"

    def plan_notes(self, run_id: str) -> str:
        return self.work(run_id) + "plan.jsonl"

    def manifest(self, date: str, run_id: str) -> str:
        return f"{self.root}manifest/date={date}/{run_id}.jsonl"

    def summary(self, date: str, run_id: str) -> str:
        return f"{self.root}summary/date={date}/{run_id}.json"

    def marker(self, date: str, run_id: str) -> str:
        return f"{self.root}complete/date={date}/{run_id}.json"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def jsonl_bytes(lines: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")


def read_jsonl(s3: Any, bucket: str, key: str) -> Iterator[dict[str, Any]] | None:
    """Stream the lines of a JSONL object, or None when it does not exist."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as err:
        if is_not_found(err):
            return None
        raise
    return (json.loads(line) for line in io.TextIOWrapper(body, encoding="utf-8") if line.strip())


def upload_spooled(s3: Any, bucket: str, key: str, fileobj: IO[bytes], content_type: str, **extra: str) -> None:
    """Upload a temp file with the managed transfer (multipart when large) from its start."""
    fileobj.seek(0)
    s3.upload_fileobj(fileobj, bucket, key, ExtraArgs={"ContentType": content_type, **extra})


# ---- current state --------------------------------------------------------------------------------------

STATE_COLUMNS = ("key", "etag", "size", "target", "run_id", "date", "ingested_at")


def state_table(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS landed (key TEXT PRIMARY KEY, etag TEXT, size INTEGER, target TEXT, "
        "run_id TEXT, date TEXT, ingested_at TEXT) WITHOUT ROWID"
    )


def load_state(s3: Any, paths: LedgerPaths, db: sqlite3.Connection) -> int:
    """Stream the current state into the `landed` table; returns the number of keys."""
    state_table(db)
    try:
        body = s3.get_object(Bucket=paths.bucket, Key=paths.state)["Body"]
    except ClientError as err:
        if is_not_found(err):
            return 0
        raise
    count = 0
    with gzip.GzipFile(fileobj=body) as raw, db:
        rows = (_state_row(json.loads(line)) for line in io.TextIOWrapper(raw, encoding="utf-8") if line.strip())
        for chunk in _chunks(rows, 5000):
            db.executemany("INSERT OR REPLACE INTO landed VALUES (?,?,?,?,?,?,?)", chunk)
            count += len(chunk)
    return count


def landed_entry(db: sqlite3.Connection, key: str) -> tuple[str, str] | None:
    """(ETag, target key) the source key last landed with, or None."""
    row = db.execute("SELECT etag, target FROM landed WHERE key = ?", (key,)).fetchone()
    return (row[0], row[1]) if row else None


def landed_etag(db: sqlite3.Connection, key: str) -> str | None:
    entry = landed_entry(db, key)
    return entry[0] if entry else None


def record_landed(db: sqlite3.Connection, lines: Iterable[dict[str, Any]], run_id: str, date: str) -> None:
    with db:
        db.executemany(
            "INSERT OR REPLACE INTO landed VALUES (?,?,?,?,?,?,?)",
            (
                (
                    line["source_key"],
                    line["source_etag"],
                    line["size"],
                    line["target_key"],
                    run_id,
                    date,
                    line["ingested_at"],
                )
                for line in lines
                if line["status"] == "copied"
            ),
        )


def write_state(s3: Any, paths: LedgerPaths, db: sqlite3.Connection) -> None:
    """Write the whole state, sorted by key, through a temp file (never all in memory)."""
    with tempfile.TemporaryFile() as tmp:
        with gzip.GzipFile(fileobj=tmp, mode="wb", mtime=0) as gz:
            for row in db.execute("SELECT * FROM landed ORDER BY key"):
                gz.write((json.dumps(dict(zip(STATE_COLUMNS, row, strict=True)), ensure_ascii=False) + "\n").encode())
        upload_spooled(s3, paths.bucket, paths.state, tmp, "application/gzip")


def _state_row(entry: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(entry.get(column) for column in STATE_COLUMNS)


def _chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
