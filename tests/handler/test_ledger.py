"""The ledger on moto: its layout, state file and work files are written where they belong and read back exactly."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from handler.errors import LockLost
from handler.ledger import Ledger, LedgerPaths
from handler.records import BatchItem, ManifestLine, ObjectStatus
from handler.s3io import jsonl_bytes
from handler.state import create_table, landed_entry, record_landed
from tests.conftest import dataset_config, list_keys


@pytest.fixture
def ledger(s3: Any, buckets: tuple[str, str]) -> Ledger:
    source, raw = buckets
    return Ledger(s3, dataset_config(source, raw))


@pytest.fixture
def paths(ledger: Ledger) -> LedgerPaths:
    return ledger.paths


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    create_table(connection)
    yield connection
    connection.close()


def line(key: str, etag: str, status: str = "copied", reason: str = "") -> ManifestLine:
    target = f"movielens/ingest_date=2026-11-27/{key.rsplit('/', 1)[-1]}"
    return ManifestLine(key, etag, len(key), target, ObjectStatus(status), reason, "2026-11-27T20:00:00.000Z")


def landed_etag(db: sqlite3.Connection, key: str) -> str | None:
    entry = landed_entry(db, key)
    return entry[0] if entry else None


def test_every_ledger_path_is_under_the_datasets_reserved_prefix(paths, buckets):
    run_id = "20261127T200000000Z-3f9a1c"

    assert paths.bucket == buckets[1]
    assert paths.lock == "_ingestion/movielens/lock.json"
    assert paths.open_run == "_ingestion/movielens/open-run.json"
    assert paths.last_run == "_ingestion/movielens/last-run.json"
    assert paths.state == "_ingestion/movielens/state/current.jsonl.gz"
    assert paths.batch_index(run_id) == f"_ingestion/movielens/work/{run_id}/batches.json"
    assert paths.batch(run_id, 3) == f"_ingestion/movielens/work/{run_id}/batches/000003.json"
    assert paths.result(run_id, 12) == f"_ingestion/movielens/work/{run_id}/results/000012.jsonl"
    assert paths.manifest("2026-11-27", run_id) == f"_ingestion/movielens/manifest/date=2026-11-27/{run_id}.jsonl"
    assert paths.summary("2026-11-27", run_id) == f"_ingestion/movielens/summary/date=2026-11-27/{run_id}.json"
    assert paths.marker("2026-11-27", run_id) == f"_ingestion/movielens/complete/date=2026-11-27/{run_id}.json"
    assert paths.uri(paths.lock) == f"s3://{buckets[1]}/_ingestion/movielens/lock.json"


def test_batch_and_result_numbers_sort_as_text_in_batch_order(paths):
    keys = [paths.batch("r", n) for n in (0, 2, 10, 100, 999_999)]

    assert sorted(keys) == keys


def test_state_written_then_loaded_reads_back_every_row(s3, ledger, paths, db):
    record_landed(
        db,
        [line("movielens/a.csv", "e1"), line("movielens/ünïcødé 数据.csv", "e2"), line("movielens/b c+d%.csv", "e3")],
        "run-1",
        "2026-11-27",
    )

    ledger.save_state(db)
    again = sqlite3.connect(":memory:")
    count = ledger.load_state(again)

    assert count == 3
    assert landed_etag(again, "movielens/ünïcødé 数据.csv") == "e2"
    assert landed_etag(again, "movielens/b c+d%.csv") == "e3"
    assert landed_etag(again, "movielens/missing.csv") is None
    assert (
        again.execute("SELECT * FROM landed ORDER BY key").fetchall()
        == db.execute("SELECT * FROM landed ORDER BY key").fetchall()
    )


def test_state_object_is_gzipped_json_lines_sorted_by_key(s3, ledger, paths, db):
    record_landed(db, [line("movielens/b.csv", "e2"), line("movielens/a.csv", "e1")], "run-1", "2026-11-27")

    ledger.save_state(db)

    stored = s3.get_object(Bucket=paths.bucket, Key=paths.state)
    assert stored["ContentType"] == "application/gzip"
    rows = [json.loads(text) for text in gzip.decompress(stored["Body"].read()).decode().splitlines()]
    assert rows == [
        {
            "key": "movielens/a.csv",
            "etag": "e1",
            "size": 15,
            "target": "movielens/ingest_date=2026-11-27/a.csv",
            "run_id": "run-1",
            "date": "2026-11-27",
            "ingested_at": "2026-11-27T20:00:00.000Z",
        },
        {
            "key": "movielens/b.csv",
            "etag": "e2",
            "size": 15,
            "target": "movielens/ingest_date=2026-11-27/b.csv",
            "run_id": "run-1",
            "date": "2026-11-27",
            "ingested_at": "2026-11-27T20:00:00.000Z",
        },
    ]


def test_same_state_written_twice_is_byte_identical(s3, ledger, paths, db):
    record_landed(db, [line("movielens/a.csv", "e1")], "run-1", "2026-11-27")

    ledger.save_state(db)
    first = s3.head_object(Bucket=paths.bucket, Key=paths.state)["ETag"]
    ledger.save_state(db)

    assert s3.head_object(Bucket=paths.bucket, Key=paths.state)["ETag"] == first


def test_missing_state_loads_as_empty(ledger):
    fresh = sqlite3.connect(":memory:")

    assert ledger.load_state(fresh) == 0
    assert fresh.execute("SELECT COUNT(*) FROM landed").fetchone() == (0,)


def test_large_state_round_trips_through_chunked_loading(s3, ledger, paths, db):
    record_landed(db, (line(f"movielens/p/{n:06d}.csv", f"e{n}") for n in range(12_345)), "run-1", "2026-11-27")

    ledger.save_state(db)
    again = sqlite3.connect(":memory:")

    assert ledger.load_state(again) == 12_345
    assert landed_etag(again, "movielens/p/012344.csv") == "e12344"


def test_only_copied_lines_are_recorded_as_landed(db):
    record_landed(
        db,
        [
            line("movielens/a.csv", "e1", "copied"),
            line("movielens/b.csv", "e2", "skipped"),
            line("movielens/c.csv", "e3", "failed"),
        ],
        "run-1",
        "2026-11-27",
    )

    assert [row[0] for row in db.execute("SELECT key FROM landed")] == ["movielens/a.csv"]


def test_a_newer_landing_replaces_the_older_one(db):
    record_landed(db, [line("movielens/a.csv", "old")], "run-1", "2026-11-27")

    record_landed(db, [line("movielens/a.csv", "new")], "run-2", "2026-11-28")

    assert db.execute("SELECT etag, run_id, date FROM landed").fetchall() == [("new", "run-2", "2026-11-28")]


def test_batch_results_round_trip_through_s3_with_non_ascii_intact(s3, ledger):
    lines = [line("movielens/ünïcødé.csv", "e1"), line("movielens/line\nbreak.csv", "e2", "failed", reason="gone")]
    lock = ledger.lock.acquire("run-1")

    ledger.save_result("run-1", 0, lines, lock)

    assert ledger.result("run-1", 0) == lines
    stored = s3.get_object(Bucket=ledger.bucket, Key=ledger.paths.result("run-1", 0))
    assert stored["ContentType"] == "application/x-ndjson"
    assert stored["Body"].read() == jsonl_bytes(line.to_json() for line in lines)


def test_jsonl_of_nothing_is_empty_and_reads_back_as_no_lines(s3, ledger):
    lock = ledger.lock.acquire("run-1")

    ledger.save_result("run-1", 0, [], lock)

    assert jsonl_bytes([]) == b""
    assert ledger.result("run-1", 0) == []


def test_a_batch_that_never_reported_reads_as_none(s3, ledger):
    assert ledger.result("run-1", 0) is None
    assert list(ledger.plan_notes("run-1")) == []
    assert list_keys(s3, ledger.bucket) == []


def test_a_stored_plan_reads_back_batch_by_batch_with_its_index(s3, ledger):
    batches = [[BatchItem("movielens/a.csv", "e1", 1, "t/a.csv")], [BatchItem("movielens/ü.csv", "e2", 2, "t/ü.csv")]]
    notes = [line("movielens/x.csv", "e3", "skipped", reason="archived in GLACIER")]

    count = ledger.store_plan("run-1", notes, iter(batches))

    assert count == 2
    assert [ledger.batch("run-1", n) for n in range(2)] == batches
    assert ledger.batch("run-1", 2) is None
    assert list(ledger.plan_notes("run-1")) == notes
    index = ledger.batch_index("run-1")
    assert index == {"bucket": ledger.bucket, "key": ledger.paths.batch_index("run-1")}
    stored = json.loads(s3.get_object(Bucket=index["bucket"], Key=index["key"])["Body"].read())
    assert stored == [{"dataset": "movielens", "run_id": "run-1", "batch": n} for n in range(2)]


def test_a_result_is_refused_from_a_run_that_lost_its_lock(s3, ledger):
    stale = ledger.lock.acquire("run-1")
    s3.delete_object(Bucket=ledger.bucket, Key=ledger.paths.lock)
    ledger.lock.acquire("run-2")

    with pytest.raises(LockLost):
        ledger.save_result("run-1", 0, [line("movielens/a.csv", "e1")], stale)

    assert ledger.result("run-1", 0) is None


def test_first_attempt_at_a_batch_is_true_once(ledger):
    assert ledger.first_attempt("run-1", 0) is True
    assert ledger.first_attempt("run-1", 0) is False
    assert ledger.first_attempt("run-1", 1) is True
