"""The ledger's layout and its state file on moto: what is written where, and that it reads back exactly."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from handler.ledger import (
    LedgerPaths,
    jsonl_bytes,
    landed_etag,
    load_state,
    read_jsonl,
    record_landed,
    state_table,
    write_state,
)
from tests.conftest import dataset_config, list_keys


@pytest.fixture
def paths(buckets: tuple[str, str]) -> LedgerPaths:
    source, raw = buckets
    return LedgerPaths(dataset_config(source, raw))


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    state_table(connection)
    yield connection
    connection.close()


def line(key: str, etag: str, status: str = "copied", **extra: Any) -> dict[str, Any]:
    return {
        "source_key": key,
        "source_etag": etag,
        "size": len(key),
        "target_key": f"movielens/ingest_date=2026-11-27/{key.rsplit('/', 1)[-1]}",
        "status": status,
        "reason": "",
        "ingested_at": "2026-11-27T20:00:00.000Z",
        **extra,
    }


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


def test_state_written_then_loaded_reads_back_every_row(s3, paths, db):
    record_landed(
        db,
        [line("movielens/a.csv", "e1"), line("movielens/ünïcødé 数据.csv", "e2"), line("movielens/b c+d%.csv", "e3")],
        "run-1",
        "2026-11-27",
    )

    write_state(s3, paths, db)
    again = sqlite3.connect(":memory:")
    count = load_state(s3, paths, again)

    assert count == 3
    assert landed_etag(again, "movielens/ünïcødé 数据.csv") == "e2"
    assert landed_etag(again, "movielens/b c+d%.csv") == "e3"
    assert landed_etag(again, "movielens/missing.csv") is None
    assert (
        again.execute("SELECT * FROM landed ORDER BY key").fetchall()
        == db.execute("SELECT * FROM landed ORDER BY key").fetchall()
    )


def test_state_object_is_gzipped_json_lines_sorted_by_key(s3, paths, db):
    record_landed(db, [line("movielens/b.csv", "e2"), line("movielens/a.csv", "e1")], "run-1", "2026-11-27")

    write_state(s3, paths, db)

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


def test_same_state_written_twice_is_byte_identical(s3, paths, db):
    record_landed(db, [line("movielens/a.csv", "e1")], "run-1", "2026-11-27")

    write_state(s3, paths, db)
    first = s3.head_object(Bucket=paths.bucket, Key=paths.state)["ETag"]
    write_state(s3, paths, db)

    assert s3.head_object(Bucket=paths.bucket, Key=paths.state)["ETag"] == first


def test_missing_state_loads_as_empty(s3, paths):
    fresh = sqlite3.connect(":memory:")

    assert load_state(s3, paths, fresh) == 0
    assert fresh.execute("SELECT COUNT(*) FROM landed").fetchone() == (0,)


def test_large_state_round_trips_through_chunked_loading(s3, paths, db):
    record_landed(db, (line(f"movielens/p/{n:06d}.csv", f"e{n}") for n in range(12_345)), "run-1", "2026-11-27")

    write_state(s3, paths, db)
    again = sqlite3.connect(":memory:")

    assert load_state(s3, paths, again) == 12_345
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


def test_jsonl_round_trips_through_s3_with_non_ascii_intact(s3, paths):
    lines = [line("movielens/ünïcødé.csv", "e1"), line("movielens/line\nbreak.csv", "e2", "failed", reason="gone")]
    s3.put_object(Bucket=paths.bucket, Key="_ingestion/movielens/x.jsonl", Body=jsonl_bytes(lines))

    read = read_jsonl(s3, paths.bucket, "_ingestion/movielens/x.jsonl")

    assert read is not None
    assert list(read) == lines


def test_jsonl_of_nothing_is_empty_and_reads_back_as_no_lines(s3, paths):
    s3.put_object(Bucket=paths.bucket, Key="_ingestion/movielens/empty.jsonl", Body=jsonl_bytes([]))

    read = read_jsonl(s3, paths.bucket, "_ingestion/movielens/empty.jsonl")

    assert jsonl_bytes([]) == b""
    assert read is not None
    assert list(read) == []


def test_reading_a_missing_jsonl_object_gives_none(s3, paths):
    assert read_jsonl(s3, paths.bucket, "_ingestion/movielens/absent.jsonl") is None
    assert list_keys(s3, paths.bucket) == []
