"""The ledger on moto: its layout, state file and work files are written where they belong and read back exactly."""

from __future__ import annotations

import gzip
import json
import sqlite3
from typing import Any

import pytest

from handler.errors import LockLost
from handler.ledger import BATCH, BATCH_INDEX, FINAL_SHARDS, STATE_INDEX, Ledger
from handler.ledger_keys import LedgerPaths
from handler.lock import Lock
from handler.records import BatchItem, ManifestLine, ObjectStatus, OpenRun, PlanCounts
from handler.shards import StateIndex, batch_number, split_sizes
from handler.state import count as state_count
from handler.state import landed_entry, record_landed
from handler.store import Store, jsonl_bytes
from tests.conftest import dataset_config, expire_lock, list_keys


@pytest.fixture
def ledger(s3: Any, buckets: tuple[str, str]) -> Ledger:
    source, raw = buckets
    return Ledger(Store(s3), dataset_config(source, raw))


@pytest.fixture
def paths(ledger: Ledger) -> LedgerPaths:
    return ledger.paths


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
    assert paths.state_index == "_ingestion/movielens/state/index.json"
    assert (
        paths.state_part(run_id=run_id, shard=7, piece=1)
        == f"_ingestion/movielens/state/parts/{run_id}/00007-001.jsonl.gz"
    )
    assert paths.legacy_state == "_ingestion/movielens/state/current.jsonl.gz"
    assert paths.run_shard(run_id=run_id, shard=7) == f"_ingestion/movielens/work/{run_id}/shards/00007.json"
    assert paths.plan_notes(run_id=run_id, shard=7) == f"_ingestion/movielens/work/{run_id}/notes/00007.jsonl"
    assert paths.batch_index(run_id=run_id) == f"_ingestion/movielens/work/{run_id}/batches.json"
    assert paths.batch(run_id=run_id, batch=3) == f"_ingestion/movielens/work/{run_id}/batches/000003.json"
    assert paths.result(run_id=run_id, batch=12) == f"_ingestion/movielens/work/{run_id}/results/000012.jsonl"
    assert paths.manifest_part(date="2026-11-27", run_id=run_id, shard=3) == (
        f"_ingestion/movielens/manifest/date=2026-11-27/{run_id}-00003.jsonl"
    )
    assert (
        paths.manifest_glob(date="2026-11-27", run_id=run_id)
        == f"_ingestion/movielens/manifest/date=2026-11-27/{run_id}-*.jsonl"
    )
    assert (
        paths.summary(date="2026-11-27", run_id=run_id) == f"_ingestion/movielens/summary/date=2026-11-27/{run_id}.json"
    )
    assert (
        paths.marker(date="2026-11-27", run_id=run_id) == f"_ingestion/movielens/complete/date=2026-11-27/{run_id}.json"
    )
    assert paths.uri(paths.lock) == f"s3://{buckets[1]}/_ingestion/movielens/lock.json"


def test_batch_and_result_numbers_sort_as_text_in_batch_order(paths):
    keys = [paths.batch(run_id="r", batch=n) for n in (0, 2, 10, 100, 999_999)]

    assert sorted(keys) == keys


RUN = OpenRun("movielens", "run-1", "2026-11-27", "2026-11-27T20:00:00.000Z", 0, PlanCounts())


def save_state(ledger: Ledger, db: sqlite3.Connection, lock: Lock, *, shard_max_keys: int = 500_000) -> StateIndex:
    """What a one-shard finalize and its commit write: the parts, then the index naming them."""
    run = ledger.hold(lock)
    run.observe_shard(RUN, 0)
    run.observe(ledger.paths.state_index)
    before = ledger.state_index()
    pieces = run.save_pieces(db, 0, None, split_sizes(state_count(db), shard_max_keys))
    index = StateIndex.of(pieces, RUN.run_id, before)
    run.write(STATE_INDEX, index)
    return index


def test_state_written_then_loaded_reads_back_every_row(s3, ledger, paths, db):
    record_landed(
        db,
        [line("movielens/a.csv", "e1"), line("movielens/ünïcødé 数据.csv", "e2"), line("movielens/b c+d%.csv", "e3")],
        "run-1",
        "2026-11-27",
    )

    save_state(ledger, db, ledger.lock.acquire("run-1"))
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


def test_a_state_part_is_gzipped_json_lines_sorted_by_key(s3, ledger, paths, db):
    record_landed(db, [line("movielens/b.csv", "e2"), line("movielens/a.csv", "e1")], "run-1", "2026-11-27")

    index = save_state(ledger, db, ledger.lock.acquire("run-1"))

    assert [(p.start_after, p.part, p.keys) for p in index.parts] == [
        (None, paths.state_part(run_id="run-1", shard=0, piece=0), 2)
    ]
    stored = s3.get_object(Bucket=paths.bucket, Key=paths.state_part(run_id="run-1", shard=0, piece=0))
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
    stored_index = json.loads(s3.get_object(Bucket=paths.bucket, Key=paths.state_index)["Body"].read())
    assert stored_index == {
        "format": 2,
        "run_id": "run-1",
        "parts": [{"start_after": None, "part": paths.state_part(run_id="run-1", shard=0, piece=0), "keys": 2}],
        "replaced": [],
    }


def test_same_state_written_twice_is_byte_identical(s3, ledger, paths, db):
    record_landed(db, [line("movielens/a.csv", "e1")], "run-1", "2026-11-27")
    lock = ledger.lock.acquire("run-1")

    save_state(ledger, db, lock)
    first = s3.head_object(Bucket=paths.bucket, Key=paths.state_part(run_id="run-1", shard=0, piece=0))["ETag"]
    save_state(ledger, db, lock)

    assert s3.head_object(Bucket=paths.bucket, Key=paths.state_part(run_id="run-1", shard=0, piece=0))["ETag"] == first


def test_missing_state_loads_as_empty(ledger):
    fresh = sqlite3.connect(":memory:")

    assert ledger.load_state(fresh) == 0
    assert fresh.execute("SELECT COUNT(*) FROM landed").fetchone() == (0,)
    assert ledger.state_index() == StateIndex.empty()


def test_large_state_round_trips_through_chunked_loading_and_splits_into_ranges(s3, ledger, paths, db):
    record_landed(db, (line(f"movielens/p/{n:06d}.csv", f"e{n}") for n in range(12_345)), "run-1", "2026-11-27")

    index = save_state(ledger, db, ledger.lock.acquire("run-1"), shard_max_keys=5_000)
    again = sqlite3.connect(":memory:")

    assert ledger.load_state(again) == 12_345
    assert landed_etag(again, "movielens/p/012344.csv") == "e12344"
    assert [p.keys for p in index.parts] == [2469, 2469, 2469, 2469, 2469]
    assert [p.start_after for p in index.parts] == [None] + [
        f"movielens/p/{n * 2469 - 1:06d}.csv" for n in (1, 2, 3, 4)
    ]
    for part, end in index.ranges():  # every part holds exactly its range
        shard = sqlite3.connect(":memory:")
        assert ledger.load_parts(shard, [part.part], part.start_after, end) == part.keys
        assert ledger.load_parts(sqlite3.connect(":memory:"), [part.part], None, None) == part.keys


def test_a_single_file_state_of_an_older_version_reads_as_one_part_of_unknown_size(s3, ledger, paths):
    rows = [{"key": "movielens/a.csv", "etag": "e1", "size": 1, "target": "t/a.csv", "run_id": "r", "date": "d"}]
    s3.put_object(Bucket=paths.bucket, Key=paths.legacy_state, Body=gzip.compress(jsonl_bytes(rows)))

    index = ledger.state_index()

    assert [(p.start_after, p.part, p.keys) for p in index.parts] == [(None, paths.legacy_state, -1)]
    assert list(ledger.iter_state()) == rows


def test_a_write_of_a_state_part_another_runs_finalize_rewrote_since_it_looked_is_refused(
    s3, ledger, paths, db, monkeypatch
):
    """Paused between its fence and its write: meanwhile another run took the lock over (it resumed this run) and
    its finalize wrote the part. The conditional write is refused, and the lock's other token says it was not a
    sibling attempt of this step."""
    record_landed(db, [line("movielens/a.csv", "e1")], "run-1", "2026-11-27")
    lock = ledger.lock.acquire("run-1")
    run = ledger.hold(lock)
    run.observe_shard(RUN, 0)
    expire_lock(ledger)
    ledger.lock.acquire("run-2").rebind("run-1")
    s3.put_object(
        Bucket=paths.bucket, Key=paths.state_part(run_id="run-1", shard=0, piece=0), Body=b"another finalize's part"
    )
    monkeypatch.setattr(lock, "fence", lambda: None)  # its fence passed before the takeover

    with pytest.raises(LockLost):
        run.save_pieces(db, 0, None, [1])

    assert s3.get_object(Bucket=paths.bucket, Key=paths.state_part(run_id="run-1", shard=0, piece=0))[
        "Body"
    ].read() == (b"another finalize's part")


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
    run = ledger.hold(ledger.lock.acquire("run-1"))
    run.observe_result(0)

    run.save_result(0, lines)

    assert ledger.result("run-1", 0) == lines
    stored = s3.get_object(Bucket=ledger.bucket, Key=ledger.paths.result(run_id="run-1", batch=0))
    assert stored["ContentType"] == "application/x-ndjson"
    assert stored["Body"].read() == jsonl_bytes(line.to_json() for line in lines)


def test_jsonl_of_nothing_is_empty_and_reads_back_as_no_lines(s3, ledger):
    run = ledger.hold(ledger.lock.acquire("run-1"))
    run.observe_result(0)

    run.save_result(0, [])

    assert jsonl_bytes([]) == b""
    assert ledger.result("run-1", 0) == []


def test_a_batch_that_never_reported_reads_as_none(s3, ledger):
    assert ledger.result("run-1", 0) is None
    assert list(ledger.plan_notes("run-1", 0)) == []
    assert list_keys(s3, ledger.bucket) == []


def test_a_shards_plan_reads_back_batch_by_batch_under_its_own_numbers(s3, ledger):
    batches = [[BatchItem("movielens/a.csv", "e1", 1, "t/a.csv")], [BatchItem("movielens/ü.csv", "e2", 2, "t/ü.csv")]]
    notes = [line("movielens/x.csv", "e3", "skipped", reason="archived in GLACIER")]

    run = ledger.hold(ledger.lock.acquire("run-1"))
    count = run.store_shard_plan(3, notes, iter(batches))
    run.store_sealed_lists([batch_number(3, n) for n in range(count)], 4)

    assert count == 2
    assert [list(run.read(BATCH, batch=batch_number(3, n)).items) for n in range(2)] == batches
    assert ledger.read(BATCH, run_id="run-1", batch=batch_number(3, 2)) is None
    assert run.read(BATCH, batch=0) is None, "shard 0's batches are its own"
    assert list(ledger.plan_notes("run-1", 3)) == notes
    assert list(ledger.plan_notes("run-1", 2)) == []
    index = run.location(BATCH_INDEX)
    assert index == {"bucket": ledger.bucket, "key": ledger.paths.batch_index(run_id="run-1")}
    stored = json.loads(s3.get_object(Bucket=index["bucket"], Key=index["key"])["Body"].read())
    assert stored == [{"dataset": "movielens", "run_id": "run-1", "batch": 30_000_000 + n} for n in range(2)]
    assert ledger.batch_numbers("run-1") == [30_000_000, 30_000_001]
    finals = ledger.location(FINAL_SHARDS, run_id="run-1")
    stored = json.loads(s3.get_object(Bucket=finals["bucket"], Key=finals["key"])["Body"].read())
    assert stored == [{"dataset": "movielens", "run_id": "run-1", "shard": n} for n in range(4)]


def test_a_result_is_refused_from_a_run_that_lost_its_lock(s3, ledger):
    stale = ledger.lock.acquire("run-1")
    s3.delete_object(Bucket=ledger.bucket, Key=ledger.paths.lock)
    ledger.lock.acquire("run-2")

    with pytest.raises(LockLost):
        ledger.hold(stale).save_result(0, [line("movielens/a.csv", "e1")])

    assert ledger.result("run-1", 0) is None


def test_first_attempt_at_a_batch_is_true_once(ledger):
    run = ledger.hold(ledger.lock.acquire("run-1"))
    assert run.first_attempt(0) is True
    assert run.first_attempt(0) is False
    assert run.first_attempt(1) is True


def test_reported_batches_are_read_back_by_number(s3, ledger):
    run = ledger.hold(ledger.lock.acquire("run-1"))
    for number in (batch_number(1, 0), 2, 0):
        run.observe_result(number)
        run.save_result(number, [line("movielens/a.csv", "e1")])

    assert ledger.reported_batches("run-1") == [0, 2, batch_number(1, 0)]
    assert ledger.reported_batches("run-2") == []
    assert ledger.finalized_shards("run-1") == ledger.planned_shards("run-1") == []


def test_a_runs_date_and_a_dates_runs_are_found_from_the_summaries(s3, ledger, paths):
    for date, run_id in (("2026-11-27", "20261127T200000000Z-a"), ("2026-11-27", "20261128T010000000Z-b")):
        summary = {"dataset": "movielens", "run_id": run_id, "date": date, "status": "succeeded", "started_at": "x"}
        summary |= {"finished_at": "x", "duration_seconds": 1.0, "resumed": False, "source": "s", "target": "t"}
        s3.put_object(
            Bucket=ledger.bucket, Key=paths.summary(date=date, run_id=run_id), Body=json.dumps(summary).encode()
        )

    assert ledger.run_date("20261128T010000000Z-b") == "2026-11-27"
    assert ledger.run_date("no-such-run") is None
    assert [run.run_id for run in ledger.runs_on("2026-11-27")] == ["20261127T200000000Z-a", "20261128T010000000Z-b"]
    assert ledger.runs_on("2026-11-28") == []
    assert paths.summary_run(paths.summary(date="2026-11-27", run_id="r")) == ("2026-11-27", "r")
    assert paths.summary_run(paths.summaries + "stray.json") is None
