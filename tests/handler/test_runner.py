"""The engine end to end on moto: what lands, what the ledger says about it, and how interrupted runs end."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import date as Date
from typing import Any

import pytest

from handler import metadata as meta
from handler.config import parse_config
from handler.errors import ConfigError, LockLost, NoLineage, RunInProgress, RunNotFound
from handler.runner import Engine
from handler.store import Store
from handler.store.errors import NoSuchBucket
from tests.conftest import Crash, crash_once, dataset_config, expire_lock, landed_keys, ledger_in, list_keys

NOV_27 = Date(2026, 11, 27)
NOV_28 = Date(2026, 11, 28)
NOV_29 = Date(2026, 11, 29)
MANIFEST_FIELDS = {
    "source_key",
    "source_etag",
    "size",
    "target_key",
    "status",
    "reason",
    "ingested_at",
    "run_id",
    "dataset",
    "date",
}


def put(s3: Any, bucket: str, key: str, body: bytes | str = b"x", **kwargs: Any) -> str:
    body = body.encode() if isinstance(body, str) else body
    return s3.put_object(Bucket=bucket, Key=key, Body=body, **kwargs)["ETag"].strip('"')


def read_json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def key_of(uri: str) -> str:
    return uri.split("/", 3)[3]


def manifest(s3: Any, raw: str, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every line of the run's manifest, from the parts its summary names."""
    lines = []
    for uri in summary["manifest_parts"]:
        body = s3.get_object(Bucket=raw, Key=key_of(uri))["Body"].read().decode()
        lines += [json.loads(line) for line in body.splitlines() if line]
    return lines


def by_key(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["source_key"]: line for line in lines}


def state(s3: Any, raw: str) -> list[dict[str, Any]]:
    """Every row of the current state, through the index to its parts."""
    return list(ledger_in(s3, raw).iter_state())


def lineage_in_bucket(s3: Any, raw: str) -> list[tuple[str, str, str]]:
    """(target key, source key, source ETag) of every landed object, read from its own metadata."""
    found = []
    for key in landed_keys(s3, raw):
        landed = meta.landed_from(s3.head_object(Bucket=raw, Key=key)["Metadata"])
        assert landed is not None, key
        found.append((key, landed[1], landed[2]))
    return found


def copied_in_manifests(s3: Any, raw: str) -> list[tuple[str, str, str]]:
    """(target key, source key, source ETag) of every `copied` line of every manifest."""
    found = []
    for key in list_keys(s3, raw, ledger_in(s3, raw).paths.manifests):
        for line in s3.get_object(Bucket=raw, Key=key)["Body"].read().decode().splitlines():
            entry = json.loads(line)
            if entry["status"] == "copied":
                found.append((entry["target_key"], entry["source_key"], entry["source_etag"]))
    return found


def snapshot(s3: Any, *buckets: str) -> dict[str, list[tuple[str, str]]]:
    return {
        b: [
            (o["Key"], o["ETag"])
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b)
            for o in page.get("Contents", [])
        ]
        for b in buckets
    }


# ---- volume and batching --------------------------------------------------------------------------------


def test_more_than_a_thousand_objects_all_land_in_batches_cut_by_batch_max_objects(s3, buckets):
    source, raw = buckets
    keys = [f"movielens/part-{n:05d}.csv" for n in range(1205)]
    for key in keys:
        put(s3, source, key, key)
    engine = Engine(Store(s3), dataset_config(source, raw, batch_max_objects=500, concurrency=16))

    plan = engine.plan_all(NOV_27)

    assert plan["batch_count"] == 3
    assert plan["planned"] == 1205
    index = read_json(s3, raw, plan["batches"]["key"])
    assert index == [{"dataset": "movielens", "run_id": plan["run_id"], "batch": n} for n in range(3)]
    sizes = [
        len(read_json(s3, raw, ledger_in(s3, raw).paths.batch(run_id=plan["run_id"], batch=n))["items"])
        for n in range(3)
    ]
    assert sizes == [500, 500, 205]

    results = [engine.copy_batch(plan["run_id"], n) for n in range(3)]
    summary = engine.finalize(plan["run_id"])["summary"]

    assert [r["copied"] for r in results] == [500, 500, 205]
    assert summary["status"] == "succeeded"
    assert summary["copied"] == 1205
    assert sorted(landed_keys(s3, raw)) == sorted(
        f"movielens/ingest_date=2026-11-27/{k.rsplit('/', 1)[1]}" for k in keys
    )
    assert len(state(s3, raw)) == 1205
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.work(run_id=plan["run_id"])) == []


def test_batches_are_also_cut_by_batch_max_bytes(s3, buckets):
    source, raw = buckets
    for n in range(5):
        put(s3, source, f"movielens/{n}.bin", b"x" * 40)
    engine = Engine(Store(s3), dataset_config(source, raw, batch_max_bytes=100))

    plan = engine.plan_all(NOV_27)

    assert plan["batch_count"] == 3  # 40+40, 40+40, 40


# ---- incremental runs -----------------------------------------------------------------------------------


def test_second_run_lands_nothing_new(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    put(s3, source, "movielens/b.csv", "b")
    engine = Engine(Store(s3), dataset_config(source, raw))
    (first,) = engine.run(NOV_27)
    landed = snapshot(s3, raw)[raw]

    (second,) = engine.run(NOV_28)

    assert first["status"] == "succeeded"
    assert second["status"] == "nothing_new"
    assert second["copied"] == 0
    assert second["unchanged"] == 2
    assert second["marker"] is None
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.markers + "date=2026-11-28/") == []
    assert sorted(landed_keys(s3, raw)) == [
        "movielens/ingest_date=2026-11-27/a.csv",
        "movielens/ingest_date=2026-11-27/b.csv",
    ]
    assert [k for k, _ in snapshot(s3, raw)[raw] if not k.startswith("_ingestion/")] == [
        k for k, _ in landed if not k.startswith("_ingestion/")
    ]


def test_changed_object_lands_again_under_new_date(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/ratings.csv", "v1")
    put(s3, source, "movielens/movies.csv", "movies")
    engine = Engine(Store(s3), dataset_config(source, raw))
    engine.run(NOV_27)
    new_etag = put(s3, source, "movielens/ratings.csv", "v2, longer")

    (summary,) = engine.run(NOV_28)

    assert summary["copied"] == 1
    assert summary["unchanged"] == 1
    assert s3.get_object(Bucket=raw, Key="movielens/ingest_date=2026-11-28/ratings.csv")["Body"].read() == b"v2, longer"
    assert s3.get_object(Bucket=raw, Key="movielens/ingest_date=2026-11-27/ratings.csv")["Body"].read() == b"v1"
    assert "movielens/ingest_date=2026-11-28/movies.csv" not in landed_keys(s3, raw)
    rows = {row["key"]: row for row in state(s3, raw)}
    assert rows["movielens/ratings.csv"]["etag"] == new_etag
    assert rows["movielens/ratings.csv"]["date"] == "2026-11-28"
    assert rows["movielens/movies.csv"]["date"] == "2026-11-27"


def test_changed_object_on_the_same_date_waits_for_the_next_date(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "v1")
    engine = Engine(Store(s3), dataset_config(source, raw))
    engine.run(NOV_27)
    put(s3, source, "movielens/a.csv", "v2")

    (same_day,) = engine.run(NOV_27)
    (next_day,) = engine.run(NOV_28)

    line = by_key(manifest(s3, raw, same_day))["movielens/a.csv"]
    assert line["status"] == "skipped"
    assert line["reason"].startswith("target occupied")
    assert same_day["status"] == "nothing_new"
    assert s3.get_object(Bucket=raw, Key="movielens/ingest_date=2026-11-27/a.csv")["Body"].read() == b"v1"
    assert next_day["copied"] == 1
    assert s3.get_object(Bucket=raw, Key="movielens/ingest_date=2026-11-28/a.csv")["Body"].read() == b"v2"


def test_runs_on_versioned_buckets_as_deployed(s3, buckets):
    """The stack versions both buckets: a released lock leaves a delete marker the next If-None-Match passes."""
    source, raw = buckets
    for bucket in buckets:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put(s3, source, "movielens/a.csv", "v1")
    engine = Engine(Store(s3), dataset_config(source, raw))
    engine.run(NOV_27)
    put(s3, source, "movielens/a.csv", "v2")

    statuses = [s["status"] for day in (NOV_28, NOV_29) for s in engine.run(day)]

    assert statuses == ["succeeded", "nothing_new"]
    assert sorted(landed_keys(s3, raw)) == [
        "movielens/ingest_date=2026-11-27/a.csv",
        "movielens/ingest_date=2026-11-28/a.csv",
    ]
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.lock) == []


def test_object_deleted_from_source_stays_landed(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    engine.run(NOV_27)
    s3.delete_object(Bucket=source, Key="movielens/a.csv")

    (summary,) = engine.run(NOV_28)

    assert summary["status"] == "nothing_new"
    assert landed_keys(s3, raw) == ["movielens/ingest_date=2026-11-27/a.csv"]
    assert [row["key"] for row in state(s3, raw)] == ["movielens/a.csv"]


def test_a_new_layout_relands_nothing_and_lands_changed_files_in_their_table_folder(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/ratings.csv", "v1")
    put(s3, source, "movielens/movies.csv", "movies")
    Engine(Store(s3), dataset_config(source, raw)).run(NOV_27)
    before = snapshot(s3, raw)[raw]
    tabled = Engine(Store(s3), dataset_config(source, raw, tables={"ratings": "ratings*.csv", "movies": "movies*.csv"}))

    (unchanged,) = tabled.run(NOV_28)
    put(s3, source, "movielens/ratings.csv", "v2")
    (changed,) = tabled.run(NOV_29)

    assert (unchanged["status"], unchanged["copied"], unchanged["unchanged"]) == ("nothing_new", 0, 2)
    assert [k for k in landed_keys(s3, raw) if k not in dict(before)] == [
        "movielens/ratings/ingest_date=2026-11-29/ratings.csv"
    ]
    assert changed["copied"] == 1
    rows = {row["key"]: row["target"] for row in state(s3, raw)}
    assert rows == {
        "movielens/ratings.csv": "movielens/ratings/ingest_date=2026-11-29/ratings.csv",
        "movielens/movies.csv": "movielens/ingest_date=2026-11-27/movies.csv",
    }


# ---- the ledger ---------------------------------------------------------------------------------------------


def test_manifest_has_one_line_per_object_with_the_documented_fields(s3, buckets):
    source, raw = buckets
    etag = put(s3, source, "movielens/ratings.csv", "1,31,2.5\n")
    put(s3, source, "movielens/old.csv", "cold", StorageClass="GLACIER")
    engine = Engine(Store(s3), dataset_config(source, raw))

    (summary,) = engine.run(NOV_27)

    lines = manifest(s3, raw, summary)
    assert len(lines) == 2
    assert all(MANIFEST_FIELDS <= set(line) for line in lines)
    copied = by_key(lines)["movielens/ratings.csv"]
    assert copied["source_etag"] == etag
    assert copied["size"] == 9
    assert copied["target_key"] == "movielens/ingest_date=2026-11-27/ratings.csv"
    assert copied["status"] == "copied"
    assert copied["reason"] == ""
    assert copied["run_id"] == summary["run_id"]
    assert copied["dataset"] == "movielens"
    assert copied["date"] == "2026-11-27"
    landed = s3.head_object(Bucket=raw, Key=copied["target_key"])["Metadata"]
    assert copied["ingested_at"] == landed["ingest-timestamp"]
    assert summary["manifest"] == (
        f"s3://{raw}/_ingestion/movielens/manifest/date=2026-11-27/{summary['run_id']}-*.jsonl"
    ), "one glob over the run's parts"
    assert summary["manifest_parts"] == [
        f"s3://{raw}/_ingestion/movielens/manifest/date=2026-11-27/{summary['run_id']}-00000.jsonl"
    ], "a small dataset is one shard: one part"


def test_summary_records_status_counts_bytes_and_times(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "aaaa")
    put(s3, source, "movielens/b.csv", "bb")
    put(s3, source, "movielens/skip.tmp", "t")
    engine = Engine(Store(s3), dataset_config(source, raw, exclude=["*.tmp"]))

    (summary,) = engine.run(NOV_27)

    stored = read_json(s3, raw, ledger_in(s3, raw).paths.summary(date="2026-11-27", run_id=summary["run_id"]))
    assert stored == summary
    assert read_json(s3, raw, ledger_in(s3, raw).paths.last_run) == summary
    assert summary["status"] == "succeeded"
    assert (summary["listed"], summary["excluded"], summary["planned"]) == (3, 1, 2)
    assert (summary["copied"], summary["skipped"], summary["failed"]) == (2, 0, 0)
    assert summary["bytes"] == 6
    assert summary["resumed"] is False
    assert summary["started_at"] <= summary["finished_at"]
    assert summary["started_at"].endswith("Z")
    assert summary["source"] == f"s3://{source}/movielens/"
    assert summary["target"] == f"s3://{raw}/movielens/"


def test_completion_marker_names_run_date_and_manifest(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))

    (summary,) = engine.run(NOV_27)

    marker_key = ledger_in(s3, raw).paths.marker(date="2026-11-27", run_id=summary["run_id"])
    assert summary["marker"] == f"s3://{raw}/{marker_key}"
    marker = read_json(s3, raw, marker_key)
    assert marker["run_id"] == summary["run_id"]
    assert marker["date"] == "2026-11-27"
    assert marker["dataset"] == "movielens"
    assert marker["manifest"] == summary["manifest"]
    assert marker["copied"] == 1
    assert marker["summary"] == f"s3://{raw}/_ingestion/movielens/summary/date=2026-11-27/{summary['run_id']}.json"


def test_no_completion_marker_when_nothing_landed(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/old.csv", "cold", StorageClass="GLACIER")
    engine = Engine(Store(s3), dataset_config(source, raw))

    (summary,) = engine.run(NOV_27)

    assert summary["status"] == "nothing_new"
    assert summary["marker"] is None
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.markers) == []
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.summaries) != []


def test_state_lists_every_landed_key(s3, buckets):
    source, raw = buckets
    for name in ("a.csv", "b.csv", "sub/c.csv"):
        put(s3, source, f"movielens/{name}", name)
    engine = Engine(Store(s3), dataset_config(source, raw))
    engine.run(NOV_27)
    put(s3, source, "movielens/d.csv", "d")

    (summary,) = engine.run(NOV_28)

    rows = state(s3, raw)
    assert [row["key"] for row in rows] == [
        "movielens/a.csv",
        "movielens/b.csv",
        "movielens/d.csv",
        "movielens/sub/c.csv",
    ]
    assert {row["target"] for row in rows} == set(landed_keys(s3, raw))
    d = next(row for row in rows if row["key"] == "movielens/d.csv")
    assert (d["run_id"], d["date"]) == (summary["run_id"], "2026-11-28")


def test_lock_and_work_files_are_gone_after_a_run(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")

    Engine(Store(s3), dataset_config(source, raw)).run(NOV_27)

    ledger = list_keys(s3, raw, "_ingestion/")
    assert not any(k.endswith(("lock.json", "open-run.json")) or "/work/" in k or "/probe/" in k for k in ledger)


# ---- what is and is not source data -------------------------------------------------------------------------


def test_ledger_in_a_bucket_shared_with_the_source_is_never_source_data(s3, buckets):
    _, shared = buckets
    ds = parse_config(
        {
            "datasets": {
                "movielens": {
                    "source": {"bucket": shared, "prefix": "incoming/"},
                    "target": {"bucket": shared, "prefix": "raw/"},
                }
            }
        }
    ).dataset("movielens")
    put(s3, shared, "incoming/a.csv", "a")
    put(s3, shared, "_ingestion/movielens/notes.csv", "not data")
    engine = Engine(Store(s3), ds)

    (first,) = engine.run(NOV_27)
    (second,) = engine.run(NOV_28)

    assert first["listed"] == 1
    assert first["copied"] == 1
    assert second["status"] == "nothing_new"
    assert second["listed"] == 1
    assert [k for k in landed_keys(s3, shared) if not k.startswith("incoming/")] == ["raw/ingest_date=2026-11-27/a.csv"]


@pytest.mark.parametrize(
    ("source_prefix", "target_prefix"),
    [("", "raw/"), ("data/", ""), ("data/", "data/raw/"), ("_ingestion/x/", "raw/")],
)
def test_same_bucket_config_whose_source_can_see_the_target_or_ledger_is_refused(
    s3, buckets, source_prefix, target_prefix
):
    _, shared = buckets
    document = {
        "datasets": {
            "movielens": {
                "source": {"bucket": shared, "prefix": source_prefix},
                "target": {"bucket": shared, "prefix": target_prefix},
            }
        }
    }

    with pytest.raises(ConfigError):
        parse_config(document)


def test_folder_markers_are_skipped_and_only_counted(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/", b"")
    put(s3, source, "movielens/sub/", b"")
    put(s3, source, "movielens/sub/a.csv", "a")

    (summary,) = Engine(Store(s3), dataset_config(source, raw)).run(NOV_27)

    assert landed_keys(s3, raw) == ["movielens/sub/ingest_date=2026-11-27/a.csv"]
    assert summary["skipped_by_reason"] == {"folder marker": 2}
    assert summary["skipped"] == 2
    assert [line["source_key"] for line in manifest(s3, raw, summary)] == ["movielens/sub/a.csv"]


def test_archived_object_is_skipped_with_its_reason_in_the_manifest(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/cold.csv", "cold", StorageClass="GLACIER")
    put(s3, source, "movielens/deep.csv", "deep", StorageClass="DEEP_ARCHIVE")
    put(s3, source, "movielens/warm.csv", "warm", StorageClass="STANDARD_IA")

    (summary,) = Engine(Store(s3), dataset_config(source, raw)).run(NOV_27)

    lines = by_key(manifest(s3, raw, summary))
    assert lines["movielens/cold.csv"]["status"] == "skipped"
    assert lines["movielens/cold.csv"]["reason"].startswith("archived in GLACIER")
    assert lines["movielens/deep.csv"]["reason"].startswith("archived in DEEP_ARCHIVE")
    assert lines["movielens/warm.csv"]["status"] == "copied"
    assert summary["skipped_by_reason"] == {"archived": 2}
    assert landed_keys(s3, raw) == ["movielens/ingest_date=2026-11-27/warm.csv"]


def test_min_age_defers_fresh_objects(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/fresh.csv", "still being written")

    (summary,) = Engine(Store(s3), dataset_config(source, raw, min_age_seconds=3600)).run(NOV_27)

    line = by_key(manifest(s3, raw, summary))["movielens/fresh.csv"]
    assert line["status"] == "skipped"
    assert "min_age_seconds=3600" in line["reason"]
    assert summary["skipped_by_reason"] == {"too recent": 1}
    assert summary["status"] == "nothing_new"
    assert landed_keys(s3, raw) == []
    assert state(s3, raw) == []


def test_include_and_exclude_filters_pick_the_source_files(s3, buckets):
    source, raw = buckets
    for name in ("a.csv", "b.json", "tmp/c.csv", "sub/d.csv", "sub/e.CSV"):
        put(s3, source, f"movielens/{name}", name)
    ds = dataset_config(source, raw, include=["*.csv", "*.json"], exclude=["tmp/*"])

    (summary,) = Engine(Store(s3), ds).run(NOV_27)

    assert sorted(landed_keys(s3, raw)) == [
        "movielens/ingest_date=2026-11-27/a.csv",
        "movielens/ingest_date=2026-11-27/b.json",
        "movielens/sub/ingest_date=2026-11-27/d.csv",
    ]
    assert (summary["listed"], summary["excluded"], summary["copied"]) == (5, 2, 3)
    assert {line["source_key"] for line in manifest(s3, raw, summary)} == {
        "movielens/a.csv",
        "movielens/b.json",
        "movielens/sub/d.csv",
    }


def test_colliding_objects_both_fail_before_any_copy_while_others_land(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/x/b.csv", "one")
    put(s3, source, "movielens/x//b.csv", "two")
    put(s3, source, "movielens/ok.csv", "ok")
    copies: list[str] = []
    s3.meta.events.register("before-parameter-build.s3.CopyObject", lambda params, **kw: copies.append(params["Key"]))

    (summary,) = Engine(Store(s3), dataset_config(source, raw)).run(NOV_27)

    assert summary["status"] == "partial"
    assert copies == ["movielens/ingest_date=2026-11-27/ok.csv"]
    assert landed_keys(s3, raw) == ["movielens/ingest_date=2026-11-27/ok.csv"]
    lines = by_key(manifest(s3, raw, summary))
    for key in ("movielens/x/b.csv", "movielens/x//b.csv"):
        assert lines[key]["status"] == "failed"
        assert lines[key]["reason"].startswith("collision: 2 source objects")
    assert {f["source_key"] for f in summary["failures"]} == {"movielens/x/b.csv", "movielens/x//b.csv"}


# ---- interrupted runs ---------------------------------------------------------------------------------------


def test_crashed_run_is_completed_under_its_own_date_before_new_work(s3, buckets):
    source, raw = buckets
    for n in range(6):
        put(s3, source, f"movielens/f{n}.csv", f"file {n}")
    engine = Engine(Store(s3), dataset_config(source, raw, batch_max_objects=2))
    crashed = engine.plan_all(NOV_27)
    engine.copy_batch(crashed["run_id"], 0)
    # The process dies here. Meanwhile the source moves on: one file changes, one is new.
    put(s3, source, "movielens/f0.csv", "file 0, second version")  # landed by batch 0 already
    put(s3, source, "movielens/f5.csv", "file 5, second version")  # in batch 2, not yet copied
    put(s3, source, "movielens/new.csv", "new")
    with pytest.raises(RunInProgress):
        engine.run(NOV_29)
    expire_lock(ledger_in(s3, raw))

    resumed, fresh = engine.run(NOV_29)

    assert (resumed["run_id"], resumed["date"], resumed["resumed"]) == (crashed["run_id"], "2026-11-27", True)
    assert resumed["copied"] == 5
    assert [f["source_key"] for f in resumed["failures"]] == ["movielens/f5.csv"]
    assert "changed since listing" in resumed["failures"][0]["reason"]
    assert (fresh["date"], fresh["resumed"], fresh["copied"]) == ("2026-11-29", False, 3)
    assert sorted(landed_keys(s3, raw)) == sorted(
        [f"movielens/ingest_date=2026-11-27/f{n}.csv" for n in range(5)]
        + [f"movielens/ingest_date=2026-11-29/{name}" for name in ("f0.csv", "f5.csv", "new.csv")]
    )
    in_bucket = lineage_in_bucket(s3, raw)
    versions = Counter((source_key, etag) for _, source_key, etag in in_bucket)
    assert max(versions.values()) == 1
    current = {o["Key"]: o["ETag"].strip('"') for o in s3.list_objects_v2(Bucket=source)["Contents"]}
    assert set(current.items()) <= set(versions)
    assert sorted(copied_in_manifests(s3, raw)) == sorted(in_bucket)
    assert engine.run(NOV_29)[0]["status"] == "nothing_new"


def test_crash_right_after_planning_is_completed_by_the_next_run(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    crashed = engine.plan_all(NOV_27)
    expire_lock(ledger_in(s3, raw))

    summaries = engine.run(NOV_28)

    assert [(s["run_id"], s["date"], s["resumed"], s["copied"]) for s in summaries] == [
        (crashed["run_id"], "2026-11-27", True, 1),
        (summaries[1]["run_id"], "2026-11-28", False, 0),
    ]
    assert landed_keys(s3, raw) == ["movielens/ingest_date=2026-11-27/a.csv"]


def test_plan_of_a_crashed_run_returns_that_run_with_its_batches(s3, buckets):
    source, raw = buckets
    for n in range(3):
        put(s3, source, f"movielens/{n}.csv", str(n))
    engine = Engine(Store(s3), dataset_config(source, raw, batch_max_objects=2))
    crashed = engine.plan_all(NOV_27)
    expire_lock(ledger_in(s3, raw))

    again = engine.plan_all(NOV_28)

    assert again["resumed"] is True
    assert {k: again[k] for k in ("run_id", "date", "batch_count", "planned", "batches")} == {
        k: crashed[k] for k in ("run_id", "date", "batch_count", "planned", "batches")
    }
    assert read_json(s3, raw, ledger_in(s3, raw).paths.lock)["run_id"] == crashed["run_id"]


def test_crash_while_finalizing_an_empty_run_is_finalized_by_the_next_plan(s3, buckets):
    """A plan with no batches is finalized in the plan step; if that dies, the next plan must finish it.

    The contract says a plan result with batch_count 0 is already finalized: the state machine only publishes
    its notification and never calls finalize, so an unfinalized one would be left open for good.
    """
    source, raw = buckets
    engine = Engine(Store(s3), dataset_config(source, raw))
    crash_once(s3, "PutObject", "/summary/")
    with pytest.raises(Crash):
        engine.plan_all(NOV_27)
    expire_lock(ledger_in(s3, raw))

    again = engine.plan_all(NOV_28)

    assert again["resumed"] is True
    assert again["replan"] is True, "tonight's work is still to be planned"
    assert again["batch_count"] == 0
    assert again["date"] == "2026-11-27"
    assert again["summary"]["status"] == "nothing_new"
    assert again["summary"]["resumed"] is True
    assert again["notification"]["attributes"]["status"]["StringValue"] == "nothing_new"
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.lock) == []
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.open_run) == []


def test_finalize_reconciles_batches_that_never_reported(s3, buckets):
    source, raw = buckets
    for n in range(6):
        put(s3, source, f"movielens/f{n}.csv", f"file {n}")
    engine = Engine(Store(s3), dataset_config(source, raw, batch_max_objects=2))
    plan = engine.plan_all(NOV_27)
    engine.copy_batch(plan["run_id"], 0)
    crash_once(s3, "PutObject", f"work/{plan['run_id']}/results/000001")
    with pytest.raises(Crash):
        engine.copy_batch(plan["run_id"], 1)  # copies f2 and f3, dies before reporting
    # batch 2 (f4, f5) never ran

    summary = engine.finalize(plan["run_id"])["summary"]

    lines = by_key(manifest(s3, raw, summary))
    assert [lines[f"movielens/f{n}.csv"]["status"] for n in range(6)] == ["copied"] * 4 + ["failed"] * 2
    assert "found on reconcile" in lines["movielens/f2.csv"]["reason"]
    assert lines["movielens/f2.csv"]["ingested_at"] is not None
    # a recovered line is verified like a fresh copy's: moto's MD5 ETags agree, and its checksum is recorded
    assert {lines[f"movielens/f{n}.csv"]["verified"] for n in (2, 3)} == {"etag"}
    assert all(lines[f"movielens/f{n}.csv"]["checksum"] for n in (2, 3))
    assert "did not complete" in lines["movielens/f4.csv"]["reason"]
    assert summary["status"] == "partial"
    assert (summary["copied"], summary["failed"]) == (4, 2)
    assert sorted(copied_in_manifests(s3, raw)) == sorted(lineage_in_bucket(s3, raw))
    assert {row["key"] for row in state(s3, raw)} == {f"movielens/f{n}.csv" for n in range(4)}

    (next_run,) = engine.run(NOV_28)

    assert next_run["copied"] == 2
    assert sorted(landed_keys(s3, raw)) == sorted(
        [f"movielens/ingest_date=2026-11-27/f{n}.csv" for n in range(4)]
        + ["movielens/ingest_date=2026-11-28/f4.csv", "movielens/ingest_date=2026-11-28/f5.csv"]
    )
    versions = Counter((key, etag) for _, key, etag in lineage_in_bucket(s3, raw))
    assert len(versions) == 6
    assert set(versions.values()) == {1}


def test_finalize_called_twice_returns_the_same_result(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    plan = engine.plan_all(NOV_27)
    engine.copy_batch(plan["run_id"], 0)

    first = engine.finalize(plan["run_id"])
    ledger = snapshot(s3, raw)
    second = engine.finalize(plan["run_id"])

    assert second == first
    assert snapshot(s3, raw) == ledger


def test_finalize_of_a_resumed_run_called_twice_still_asks_for_a_replan(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    crashed = engine.plan_all(NOV_27)
    expire_lock(ledger_in(s3, raw))
    resumed = engine.plan_all(NOV_28)
    engine.copy_batch(resumed["run_id"], 0)

    first = engine.finalize(crashed["run_id"])
    second = engine.finalize(crashed["run_id"])

    assert first["replan"] is True
    assert second == first


def test_copy_batch_with_a_wrong_run_id_raises_lock_lost(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    plan = engine.plan_all(NOV_27)

    with pytest.raises(LockLost):
        engine.copy_batch("20261127T000000000Z-000000", 0)

    assert landed_keys(s3, raw) == []
    assert engine.copy_batch(plan["run_id"], 0)["copied"] == 1


def test_copy_batch_after_finalize_raises_lock_lost_and_copies_nothing(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    plan = engine.plan_all(NOV_27)
    engine.finalize(plan["run_id"])

    with pytest.raises(LockLost):
        engine.copy_batch(plan["run_id"], 0)

    assert landed_keys(s3, raw) == []


def test_copy_batch_of_a_batch_the_plan_does_not_have_raises_run_not_found(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    plan = engine.plan_all(NOV_27)

    with pytest.raises(RunNotFound):
        engine.copy_batch(plan["run_id"], 7)


def test_finalize_of_an_unknown_run_raises_run_not_found(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    engine.plan_all(NOV_27)

    with pytest.raises(RunNotFound):
        engine.finalize("20261127T000000000Z-000000")


def test_copy_batch_after_another_run_took_the_lock_over_raises_lock_lost(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    plan = engine.plan_all(NOV_27)
    expire_lock(ledger_in(s3, raw))
    engine.acquire()  # another run takes over the expired lock

    with pytest.raises(LockLost):
        engine.copy_batch(plan["run_id"], 0)

    assert landed_keys(s3, raw) == []


def test_a_batch_longer_than_the_lock_ttl_keeps_its_lock(s3, buckets):
    source, raw = buckets
    for n in range(6):
        put(s3, source, f"movielens/f{n}.csv", str(n))
    engine = Engine(Store(s3), dataset_config(source, raw, lock_ttl_seconds=1, concurrency=1))
    plan = engine.plan_all(NOV_27)
    rivals: list[str] = []

    def slow_copy(**kwargs: Any) -> None:
        time.sleep(0.3)  # six copies: 1.8 s, past the 1 s TTL
        try:
            Engine(Store(s3), engine.dataset).acquire()
        except RunInProgress as err:
            rivals.append(type(err).__name__)

    s3.meta.events.register("before-call.s3.CopyObject", slow_copy)

    result = engine.copy_batch(plan["run_id"], 0)

    assert result["copied"] == 6
    assert rivals == ["RunInProgress"] * 6
    assert read_json(s3, raw, ledger_in(s3, raw).paths.lock)["run_id"] == plan["run_id"]
    assert engine.finalize(plan["run_id"])["summary"]["copied"] == 6


def test_plan_while_a_run_holds_the_lock_raises_run_in_progress(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    plan = engine.plan_all(NOV_27)

    with pytest.raises(RunInProgress) as raised:
        engine.plan_all(NOV_27)

    assert plan["run_id"] in str(raised.value)


def test_plan_that_fails_before_its_plan_is_stored_releases_the_lock(s3, buckets):
    _, raw = buckets
    engine = Engine(Store(s3), dataset_config("no-such-source-bucket", raw))

    with pytest.raises(NoSuchBucket) as raised:
        engine.plan_all(NOV_27)

    assert raised.value.code == "NoSuchBucket"
    assert raised.value.__cause__.response["Error"]["Code"] == "NoSuchBucket"
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.lock) == []
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.open_run) == []


def test_a_plan_that_died_before_it_was_stored_leaves_no_work_files_after_the_next_run(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    crash_once(s3, "PutObject", "/open-run.json")
    with pytest.raises(Crash):
        engine.plan_all(NOV_27)
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.all_work) != []

    [summary] = engine.run(NOV_28)

    assert (summary["date"], summary["copied"]) == ("2026-11-28", 1)
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.all_work) == []


def test_a_batch_whose_lock_was_taken_over_mid_copy_reports_nothing(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    lock = engine.acquire()
    plan = engine.plan_all(NOV_27, lock=lock)
    expire_lock(ledger_in(s3, raw))
    engine.acquire()  # another run takes over while this one is paused

    with pytest.raises(LockLost):
        engine.copy_batch(plan["run_id"], 0, lock=lock)

    assert list_keys(s3, raw, ledger_in(s3, raw).paths.results(run_id=plan["run_id"])) == []


def test_a_crash_while_finalizing_is_finished_by_calling_finalize_again(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    plan = engine.plan_all(NOV_27)
    engine.copy_batch(plan["run_id"], 0)
    crash_once(s3, "PutObject", "/summary/")
    with pytest.raises(Crash):
        engine.finalize(plan["run_id"])

    summary = engine.finalize(plan["run_id"])["summary"]

    assert summary["copied"] == 1
    assert [line["status"] for line in manifest(s3, raw, summary)] == ["copied"]
    assert [row["key"] for row in state(s3, raw)] == ["movielens/a.csv"]
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.lock) == []
    assert engine.run(NOV_28)[0]["status"] == "nothing_new"


def test_a_finalize_that_died_after_committing_releases_its_lock_when_called_again(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    plan = engine.plan_all(NOV_27)
    engine.copy_batch(plan["run_id"], 0)
    crash_once(s3, "GetObject", "/lock.json")  # dies at the release, after open-run.json is gone
    with pytest.raises(Crash):
        engine.finalize(plan["run_id"])
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.lock) == [ledger_in(s3, raw).paths.lock]

    again = engine.finalize(plan["run_id"])

    assert again["summary"]["copied"] == 1
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.lock) == []
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.all_work) == []
    assert engine.run(NOV_28)[0]["status"] == "nothing_new"


def test_another_pipelines_ledger_in_a_source_bucket_is_never_source_data(s3, buckets):
    source, raw = buckets
    put(s3, source, "_ingestion/upstream/lock.json", "{}")
    put(s3, source, "_ingestion/upstream/manifest/date=2026-11-27/r.jsonl", "{}")
    put(s3, source, "orders/a.csv", "a")
    config = {"source": {"bucket": source, "prefix": ""}, "target": {"bucket": raw, "prefix": "movielens/"}}
    engine = Engine(Store(s3), parse_config({"datasets": {"movielens": config}}).dataset("movielens"))

    [summary] = engine.run(NOV_27)

    assert (summary["listed"], summary["copied"]) == (1, 1)
    assert landed_keys(s3, raw) == ["movielens/orders/ingest_date=2026-11-27/a.csv"]


def count_calls(s3: Any, operation: str, bucket: str) -> list[str]:
    """Keys of every `operation` the client sends to `bucket` from now on."""
    keys: list[str] = []

    def record(params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("Bucket") == bucket:
            keys.append(params.get("Key", ""))

    s3.meta.events.register(f"before-parameter-build.s3.{operation}", record)
    return keys


def test_a_first_attempt_copies_with_two_requests_and_a_retried_batch_looks_for_its_copies_first(s3, buckets):
    source, raw = buckets
    for name in ("a", "b", "c"):
        put(s3, source, f"movielens/{name}.csv", name)
    engine = Engine(Store(s3), dataset_config(source, raw))
    plan = engine.plan_all(NOV_27)
    heads = count_calls(s3, "HeadObject", raw)
    copies = count_calls(s3, "CopyObject", raw)

    engine.copy_batch(plan["run_id"], 0)
    first_heads, first_copies = len([k for k in heads if k.startswith("movielens/")]), len(copies)
    retried = engine.copy_batch(plan["run_id"], 0)

    assert (first_heads, first_copies) == (0, 3), "single-part copies are verified by CopyObject's own ETag"
    assert len([k for k in heads if k.startswith("movielens/")]) == 3, "the retry looks before it copies"
    assert len(copies) == 3, "and copies nothing twice"
    assert (retried["copied"], retried["failed"]) == (3, 0)
    summary = engine.finalize(plan["run_id"])["summary"]
    assert len(landed_keys(s3, raw)) == summary["copied"] == 3


# ---- dry run and history ------------------------------------------------------------------------------------


def test_dry_run_writes_nothing_and_returns_counts(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "aaa")
    put(s3, source, "movielens/b.csv", "bb")
    put(s3, source, "movielens/c.tmp", "c")
    put(s3, source, "movielens/cold.csv", "cold", StorageClass="GLACIER")
    engine = Engine(Store(s3), dataset_config(source, raw, exclude=["*.tmp"]))
    before = snapshot(s3, source, raw)
    printed: list[str] = []

    result = engine.dry_run(NOV_27, out=printed.append)

    assert snapshot(s3, source, raw) == before
    assert (result.status, result.date, result.completes_first) == ("dry_run", "2026-11-27", None)
    counts = result.counts
    assert (counts.listed, counts.excluded, counts.planned, counts.planned_bytes) == (4, 1, 2, 5)
    assert counts.skipped_by_reason == {"archived": 1}
    assert result.to_json() == {
        "dataset": "movielens",
        "run_id": None,
        "date": "2026-11-27",
        "status": "dry_run",
        **counts.to_json(),
    }
    assert sum(line.startswith("COPY") for line in printed) == 2
    assert any("ingest_date=2026-11-27/a.csv" in line for line in printed)


def test_dry_run_after_a_run_sees_only_the_changes(s3, buckets):
    source, raw = buckets
    put(s3, source, "movielens/a.csv", "a")
    put(s3, source, "movielens/b.csv", "b")
    engine = Engine(Store(s3), dataset_config(source, raw))
    engine.run(NOV_27)
    put(s3, source, "movielens/b.csv", "b2")
    before = snapshot(s3, source, raw)

    result = engine.dry_run(NOV_28, out=lambda line: None)

    assert snapshot(s3, source, raw) == before
    assert result.counts.planned == 1
    assert result.counts.skipped_by_reason == {"unchanged": 1}


def test_history_returns_runs_newest_first(s3, buckets):
    source, raw = buckets
    engine = Engine(Store(s3), dataset_config(source, raw))
    run_ids = []
    for day, name in ((NOV_27, "a.csv"), (NOV_28, "b.csv"), (NOV_29, "c.csv")):
        put(s3, source, f"movielens/{name}", name)
        run_ids.append(engine.run(day)[0]["run_id"])
        time.sleep(0.01)

    history = engine.history()

    assert [h.run_id for h in history] == run_ids[::-1]
    assert [h.date for h in history] == ["2026-11-29", "2026-11-28", "2026-11-27"]
    assert [h.run_id for h in engine.history(limit=2)] == run_ids[:0:-1]


def test_history_of_a_dataset_without_runs_is_empty(s3, buckets):
    source, raw = buckets

    assert Engine(Store(s3), dataset_config(source, raw)).history() == []


def test_lineage_of_a_landed_key_names_its_source_and_manifest_line_and_refuses_other_datasets(s3, buckets):
    source, raw = buckets
    etag = put(s3, source, "movielens/a.csv", "a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    [summary] = engine.run(NOV_27)
    key = "movielens/ingest_date=2026-11-27/a.csv"

    answer = engine.lineage(key)

    assert (answer.lineage.source_key, answer.lineage.source_etag, answer.lineage.run_id) == (
        "movielens/a.csv",
        etag,
        summary["run_id"],
    )
    assert answer.manifest_line is not None and answer.manifest_line["target_key"] == key
    assert answer.problems == ()
    written = answer.to_json()
    assert (written["uri"], written["source_key"], written["run_id"], written["problems"]) == (
        f"s3://{raw}/{key}",
        "movielens/a.csv",
        summary["run_id"],
        [],
    )
    assert engine.lineage(f"s3://{raw}/{key}") == answer
    other = Engine(Store(s3), dataset_config(source, raw, name="ratings"))
    with pytest.raises(NoLineage, match="was landed by dataset 'movielens', not by 'ratings'"):
        other.lineage(key)
    s3.create_bucket(Bucket=f"{raw}-copy")
    s3.copy_object(Bucket=f"{raw}-copy", Key=key, CopySource={"Bucket": raw, "Key": key})
    with pytest.raises(NoLineage, match="outside dataset 'movielens'.s target bucket"):
        engine.lineage(f"s3://{raw}-copy/{key}")
