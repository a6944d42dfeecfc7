"""Planning from an S3 Inventory report instead of a listing: the report's objects are what a run decides over,
one report for the whole run, and exactly-once holds as with a listing. The report is written here from the
source bucket's own objects, in the form AWS delivers (tests/handler/test_inventory.py checks that form)."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from datetime import date as Date
from typing import Any
from urllib.parse import quote_plus

import pytest

from handler.errors import ConfigError
from handler.inventory import InventoryUnsorted
from handler.runner import Engine
from handler.store import Store
from tests.conftest import dataset_config, landed_keys, ledger_in, list_keys, new_bucket, put_keys
from tests.faults.verifier import verify

NOV_27, NOV_28, NOV_29 = Date(2026, 11, 27), Date(2026, 11, 28), Date(2026, 11, 29)
SCHEMA = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass"


@pytest.fixture(name="reports")
def reports_fixture(s3: Any) -> str:
    return new_bucket(s3, "inventory")


def prefix_of(source: str) -> str:
    return f"inventory/{source}/daily-csv/"


def write_report(s3: Any, source: str, dest: str, folder: str, *, files: int, shuffle: bool = False) -> list[str]:
    """A report of every object now in `source`, split into `files` data files (key-sorted, as AWS's are in
    practice, unless `shuffle`); returns the data file keys."""
    paginator = s3.get_paginator("list_objects_v2")
    objects = [o for page in paginator.paginate(Bucket=source) for o in page.get("Contents", [])]
    rows = [
        ",".join(
            f'"{v}"'
            for v in (
                source,
                quote_plus(o["Key"], safe="/"),
                o["Size"],
                o["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                o["ETag"].strip('"'),
                "STANDARD",
            )
        )
        + "\n"
        for o in objects
    ]
    if shuffle:
        random.Random(7).shuffle(rows)
    prefix, size = prefix_of(source), -(-len(rows) // files)
    entries = []
    for number in range(files):
        body = gzip.compress("".join(rows[number * size : (number + 1) * size]).encode())
        key = f"{prefix}data/{folder}-{number}.csv.gz"
        s3.put_object(Bucket=dest, Key=key, Body=body)
        entries.append({"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()})
    manifest = json.dumps(
        {
            "sourceBucket": source,
            "destinationBucket": f"arn:aws:s3:::{dest}",
            "version": "2016-11-30",
            "creationTimestamp": "1764000000000",
            "fileFormat": "CSV",
            "fileSchema": SCHEMA,
            "files": entries,
        }
    ).encode()
    s3.put_object(Bucket=dest, Key=f"{prefix}{folder}/manifest.json", Body=manifest)
    s3.put_object(Bucket=dest, Key=f"{prefix}{folder}/manifest.checksum", Body=hashlib.md5(manifest).hexdigest())
    return [entry["key"] for entry in entries]


def count_source_listings(s3: Any, source: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def seen(params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("Bucket") == source:
            calls.append(params)

    s3.meta.events.register("before-parameter-build.s3.ListObjectsV2", seen)
    return calls


def inventory_dataset(source: str, raw: str, reports: str, *, sorted: bool, **overrides: Any) -> Any:
    inventory = {"bucket": reports, "prefix": prefix_of(source), "sorted": sorted}
    return dataset_config(source, raw, inventory=inventory, shard_max_keys=1_000, **overrides)


def test_a_sorted_report_plans_every_shard_without_listing_the_source(s3, buckets, reports):
    source, raw = buckets
    keys = [f"movielens/f{n:05d}.csv" for n in range(2_500)]
    put_keys(s3, source, keys)
    write_report(s3, source, reports, "2026-11-27T01-00Z", files=3)
    listings = count_source_listings(s3, source)
    engine = Engine(Store(s3), inventory_dataset(source, raw, reports, sorted=True))

    [first] = engine.run(NOV_27)

    assert (first["copied"], first["failed"], first["listed"]) == (2_500, 0, 2_500)
    assert listings == [], "the report, not a listing, said what is in the source"
    assert len(first["manifest_parts"]) == 3, "the first run was cut at the report's files"
    assert verify(s3, source, raw, "movielens", settled=True) == []


def test_objects_the_report_does_not_have_wait_for_the_next_report(s3, buckets, reports):
    source, raw = buckets
    put_keys(s3, source, [f"movielens/f{n:04d}.csv" for n in range(300)])
    write_report(s3, source, reports, "2026-11-27T01-00Z", files=2)
    engine = Engine(Store(s3), inventory_dataset(source, raw, reports, sorted=True))
    engine.run(NOV_27)
    put_keys(s3, source, ["movielens/late.csv"])
    s3.put_object(Bucket=source, Key="movielens/f0007.csv", Body=b"rewritten")

    [same_report] = engine.run(NOV_28)
    write_report(s3, source, reports, "2026-11-28T01-00Z", files=2)
    [next_report] = engine.run(NOV_29)

    assert (same_report["status"], same_report["copied"]) == ("nothing_new", 0)
    assert (next_report["copied"], next_report["unchanged"]) == (2, 299)
    landed = landed_keys(s3, raw)
    assert "movielens/ingest_date=2026-11-29/late.csv" in landed
    assert "movielens/ingest_date=2026-11-29/f0007.csv" in landed
    assert verify(s3, source, raw, "movielens", settled=True) == []


def test_an_unsorted_report_is_read_whole_by_each_shard_and_lands_everything_once(s3, buckets, reports):
    source, raw = buckets
    keys = [f"movielens/p{p}/f{n:04d}.csv" for p in range(3) for n in range(500)]
    put_keys(s3, source, keys)
    write_report(s3, source, reports, "2026-11-27T01-00Z", files=4, shuffle=True)
    engine = Engine(Store(s3), inventory_dataset(source, raw, reports, sorted=False))

    [first] = engine.run(NOV_27)

    assert (first["copied"], first["failed"]) == (1_500, 0)
    assert len(first["manifest_parts"]) == 3, "cut at the folders a delimiter listing found"
    s3.put_object(Bucket=source, Key=keys[600], Body=b"changed")
    write_report(s3, source, reports, "2026-11-28T01-00Z", files=4, shuffle=True)
    [night] = engine.run(NOV_28)
    assert (night["copied"], night["unchanged"]) == (1, 1_499)
    assert verify(s3, source, raw, "movielens", settled=True) == []


def test_a_report_read_as_sorted_that_is_not_stops_the_plan_naming_the_file(s3, buckets, reports):
    source, raw = buckets
    put_keys(s3, source, [f"movielens/f{n:04d}.csv" for n in range(200)])
    files = write_report(s3, source, reports, "2026-11-27T01-00Z", files=1, shuffle=True)
    engine = Engine(Store(s3), inventory_dataset(source, raw, reports, sorted=True))

    with pytest.raises(InventoryUnsorted, match=files[0]):
        engine.run(NOV_27)

    assert landed_keys(s3, raw) == [], "nothing was copied from a plan that could have missed keys"
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.lock) == [], "the lock was released for the next run"


def test_a_dataset_whose_report_is_missing_fails_before_anything_is_planned(s3, buckets, reports):
    source, raw = buckets
    put_keys(s3, source, ["movielens/a.csv"])
    engine = Engine(Store(s3), inventory_dataset(source, raw, reports, sorted=False))

    with pytest.raises(ConfigError, match=f"inventory s3://{reports}/{prefix_of(source)}"):
        engine.run(NOV_27)

    assert landed_keys(s3, raw) == []
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.all_work) == []
