"""Registered partitions: which a committed night adds, and that Glue/Spark-style readers find them after a run.

moto's Glue needs the tables, so each test creates them from the specs the stack deploys (tests/glue_catalog.py);
it enforces no 100-partition limit, so `CountingGlue` holds every call to it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import date as Date
from typing import Any

import boto3
import pytest

from handler.cli import main
from handler.config import DatasetConfig
from handler.ledger_tables import JSON_SERDE, SERDE_PARAMETERS
from handler.partitions import (
    Catalog,
    Partition,
    batches,
    catalog_for,
    landed_tables,
    night_partitions,
    register,
)
from handler.runner import Engine
from handler.steps.finalize import finalize
from handler.store import Store
from handler.tables import LAZY_SIMPLE_SERDE, OPEN_CSV_SERDE, TEXT_INPUT
from tests.conftest import REGION, dataset_config, write_config
from tests.glue_catalog import DATABASE, CountingGlue, Refusing, create_catalog, partitions_of
from tests.handler.test_tables import RATINGS

NIGHT = Date(2026, 11, 27)
LINKS = {"pattern": ["links*.csv"], "quoted": False, "columns": [{"name": "movieId", "type": "bigint"}]}
TABLES = {"ratings": RATINGS, "links": LINKS, "movies": "movies*.csv"}
"""Two described tables (quoted and unquoted CSV) and one undescribed: it lands, but has no catalog table."""
RATINGS_CSV = "userId,movieId,rating,timestamp\n1,10,4.5,1700000000\n2,10,3.0,1700000001\n"


BODIES = {"ratings": RATINGS_CSV, "links": "movieId\n1\n"}
"""A file of each described table with its table's header: a drifted one is quarantined outside every table (README
*Schema contracts*), and gets no partition."""


def put_files(s3: Any, bucket: str, keys: list[str]) -> None:
    """`keys` as files of their tables (`ratings2.csv` is a ratings file), each with its table's header."""
    for key in keys:
        table = next((name for name in BODIES if key.startswith(f"movielens/{name}")), None)
        s3.put_object(Bucket=bucket, Key=key, Body=(BODIES[table] if table else key).encode())


def movielens(raw: str = "raw-bucket", source: str = "src-bucket", **fields: Any) -> DatasetConfig:
    return dataset_config(source, raw, tables=TABLES, **fields)


# ---- which partitions (pure) -----------------------------------------------------------------------------------


def test_a_night_registers_the_tables_its_copies_landed_in_and_the_ledgers_runs_and_manifest() -> None:
    ds = movielens()
    keys = [
        "movielens/ratings/ingest_date=2026-11-27/ratings.csv",
        "movielens/movies/ingest_date=2026-11-27/movies.csv",  # undescribed: no catalog table
        "movielens/_unmatched/ingest_date=2026-11-27/README.txt",
    ]
    tables = landed_tables(ds, "2026-11-27", keys)

    partitions = night_partitions(ds, "2026-11-27", tables=tables, manifest=True)

    assert tables == {"movielens_ratings"}
    assert [(p.table, p.values, p.location) for p in partitions] == [
        ("movielens_ratings", ("2026-11-27",), "s3://raw-bucket/movielens/ratings/ingest_date=2026-11-27/"),
        ("manifest", ("movielens", "2026-11-27"), "s3://raw-bucket/_ingestion/movielens/manifest/date=2026-11-27/"),
        ("runs", ("movielens", "2026-11-27"), "s3://raw-bucket/_ingestion/movielens/summary/date=2026-11-27/"),
    ]


def test_a_key_of_another_night_or_a_table_whose_name_starts_alike_is_not_this_nights() -> None:
    ds = dataset_config("src", "raw", tables={"rat": {**RATINGS, "pattern": ["rat*.txt"]}, "ratings": RATINGS})

    assert landed_tables(ds, "2026-11-27", ["movielens/ratings/ingest_date=2026-11-26/r.csv"]) == frozenset()
    assert landed_tables(ds, "2026-11-27", ["movielens/ratings/ingest_date=2026-11-27/r.csv"]) == {"movielens_ratings"}


def test_a_night_without_manifest_lines_registers_only_its_run() -> None:
    partitions = night_partitions(movielens(), "2026-11-27", tables=(), manifest=False)

    assert [p.table for p in partitions] == ["runs"]


def test_each_partition_carries_its_tables_columns_formats_and_serde_with_its_parameters() -> None:
    ds = movielens()
    links, ratings, manifest, _ = night_partitions(
        ds, "2026-11-27", tables={"movielens_ratings", "movielens_links"}, manifest=True
    )

    assert ratings.table == "movielens_ratings" and links.table == "movielens_links"
    sd = ratings.to_input()["StorageDescriptor"]
    assert sd["Columns"] == [
        {"Name": "userid", "Type": "bigint"},
        {"Name": "movieid", "Type": "bigint"},
        {"Name": "rating", "Type": "double"},
        {"Name": "timestamp", "Type": "bigint", "Comment": "seconds since 1970"},
    ]
    assert (sd["InputFormat"], sd["SerdeInfo"]["SerializationLibrary"]) == (TEXT_INPUT, OPEN_CSV_SERDE)
    assert sd["SerdeInfo"]["Parameters"] == {"separatorChar": ",", "quoteChar": '"', "escapeChar": "\\"}
    # How to read the files travels with the partition; projection's parameters stay on the table.
    assert ratings.to_input()["Parameters"] == {"classification": "csv", "skip.header.line.count": "1"}
    assert links.to_input()["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == LAZY_SIMPLE_SERDE
    assert manifest.to_input()["StorageDescriptor"]["SerdeInfo"] == {
        "SerializationLibrary": JSON_SERDE,
        "Parameters": SERDE_PARAMETERS,
    }
    assert manifest.to_input()["Values"] == ["movielens", "2026-11-27"]


def partition(table: str, n: int) -> Partition:
    return Partition(table, (f"2026-{n:05d}",), f"s3://b/{table}/{n}/", (("c", "string", ""),), "i", "o", "s")


def test_batches_hold_one_table_at_most_a_hundred_partitions_each_once() -> None:
    stream = [partition("a", n) for n in range(250)] + [partition("b", 1), partition("a", 3), partition("b", 1)]

    sent = list(batches(stream))

    assert [(table, len(batch)) for table, batch in sent] == [("a", 100), ("a", 100), ("a", 50), ("b", 1)]


def test_no_database_means_no_registration_and_a_command_lines_database_comes_first(monkeypatch) -> None:
    ds = movielens()
    assert catalog_for(ds, object) is None
    monkeypatch.setenv("GLUE_DATABASE", "from_env")
    assert catalog_for(ds, object).database == "from_env"
    assert catalog_for(movielens(glue_database="own"), object).database == "own"
    assert catalog_for(movielens(glue_database="own"), object, "given").database == "given"


# ---- registering in moto's Glue --------------------------------------------------------------------------------


@pytest.fixture
def glue(aws: None) -> CountingGlue:
    return CountingGlue(boto3.client("glue", region_name=REGION))


def landed_night(s3: Any, buckets: tuple[str, str], glue: Any, run_date: Date = NIGHT, **fields: Any) -> Engine:
    """A run of MovieLens files (two described kinds, one undescribed) with the catalog created from the specs."""
    source, raw = buckets
    ds = movielens(raw, source, **fields)
    put_files(s3, source, ["movielens/movies.csv", "movielens/links.csv", "movielens/ratings.csv"])
    create_catalog(glue, [ds])
    engine = Engine(Store(s3), ds, catalog=Catalog(DATABASE, lambda: glue))
    engine.run(run_date)
    return engine


def test_partitions_appear_right_after_a_run_with_their_folder_and_their_tables_serde(s3, buckets, glue) -> None:
    _, raw = buckets
    landed_night(s3, buckets, glue)

    (ratings,) = partitions_of(glue, "movielens_ratings")
    (links,) = partitions_of(glue, "movielens_links")
    (manifest,) = partitions_of(glue, "manifest")
    (runs,) = partitions_of(glue, "runs")
    assert ratings["Values"] == ["2026-11-27"]
    assert ratings["StorageDescriptor"]["Location"] == f"s3://{raw}/movielens/ratings/ingest_date=2026-11-27/"
    assert ratings["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == OPEN_CSV_SERDE
    assert links["StorageDescriptor"]["SerdeInfo"]["Parameters"]["field.delim"] == ","
    assert manifest["Values"] == ["movielens", "2026-11-27"]
    assert manifest["StorageDescriptor"]["Location"] == f"s3://{raw}/_ingestion/movielens/manifest/date=2026-11-27/"
    assert runs["StorageDescriptor"]["Location"] == f"s3://{raw}/_ingestion/movielens/summary/date=2026-11-27/"
    # One call per table: the cost of a night is a call per table it touched (at most 100 partitions each).
    assert sorted(glue.calls) == [("manifest", 1), ("movielens_links", 1), ("movielens_ratings", 1), ("runs", 1)]


def test_a_glue_or_spark_style_reader_finds_every_row_through_the_registered_partitions(s3, buckets, glue) -> None:
    landed_night(s3, buckets, glue)

    rows = []
    for found in partitions_of(glue, "movielens_ratings"):
        sd = found["StorageDescriptor"]
        bucket, _, prefix = sd["Location"].removeprefix("s3://").partition("/")
        skip = int(found["Parameters"]["skip.header.line.count"])
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
            reader = csv.reader(io.StringIO(body), delimiter=sd["SerdeInfo"]["Parameters"]["separatorChar"])
            rows += [
                dict(zip([c["Name"] for c in sd["Columns"]], row, strict=True)) | {"ingest_date": found["Values"][0]}
                for row in list(reader)[skip:]
            ]

    assert rows == [
        {"userid": "1", "movieid": "10", "rating": "4.5", "timestamp": "1700000000", "ingest_date": "2026-11-27"},
        {"userid": "2", "movieid": "10", "rating": "3.0", "timestamp": "1700000001", "ingest_date": "2026-11-27"},
    ]


def test_the_manifest_partition_reads_back_the_nights_lines(s3, buckets, glue) -> None:
    landed_night(s3, buckets, glue)

    (found,) = partitions_of(glue, "manifest")
    bucket, _, prefix = found["StorageDescriptor"]["Location"].removeprefix("s3://").partition("/")
    lines = [
        json.loads(line)
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        for line in s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode().splitlines()
    ]
    assert sorted(line["source_key"] for line in lines) == [
        "movielens/links.csv",
        "movielens/movies.csv",
        "movielens/ratings.csv",
    ]


def test_a_second_finalize_and_a_rerun_of_the_night_add_nothing_and_do_not_fail(s3, buckets, glue) -> None:
    engine = landed_night(s3, buckets, glue)
    before = {t: partitions_of(glue, t) for t in ("movielens_ratings", "movielens_links", "manifest", "runs")}
    run_id = engine.ledger.last_run().run_id

    again = finalize(engine.job, run_id)  # a retried finalize of the committed run: registers from its manifest
    calls = len(glue.calls)
    [rerun] = engine.run(NIGHT)  # nothing new: its commit registers the night's ledger partitions again

    assert again.partitions_error is None and again.summary.run_id == run_id
    assert rerun["status"] == "nothing_new"
    assert {t: partitions_of(glue, t) for t in before} == before
    # The retried finalize sent all four again (each answered AlreadyExists), the re-run its run's.
    assert sorted(glue.calls[4:calls]) == sorted(glue.calls[:4])
    assert glue.calls[calls:] == [("runs", 1)]  # no manifest line: unchanged objects are only counted


def test_a_backfill_with_a_past_date_registers_that_nights_partitions(s3, buckets, glue) -> None:
    landed_night(s3, buckets, glue, run_date=Date(2024, 2, 29))

    (found,) = partitions_of(glue, "movielens_ratings")
    assert found["Values"] == ["2024-02-29"]
    assert found["StorageDescriptor"]["Location"].endswith("/movielens/ratings/ingest_date=2024-02-29/")
    assert [p["Values"] for p in partitions_of(glue, "runs")] == [["movielens", "2024-02-29"]]


def test_more_than_a_hundred_partitions_go_out_a_hundred_a_call(glue) -> None:
    create_catalog(glue, [movielens()])
    nights = [f"2026-{month:02d}-{day:02d}" for month in range(1, 9) for day in range(1, 29)]  # 224 nights
    stream = (p for night in nights for p in night_partitions(movielens(), night, tables=(), manifest=True))

    done = register(Catalog(DATABASE, lambda: glue), stream)
    again = register(
        Catalog(DATABASE, lambda: glue),
        (p for n in nights for p in night_partitions(movielens(), n, tables=(), manifest=False)),
    )

    assert all(entries <= 100 for _, entries in glue.calls)
    assert [entries for table, entries in glue.calls if table == "runs"][:3] == [100, 100, 24]
    assert (done.created, done.existing, again.created, again.existing) == (448, 0, 0, 224)
    assert len(partitions_of(glue, "runs")) == len(partitions_of(glue, "manifest")) == 224


@pytest.mark.parametrize("code", ["AccessDeniedException", "ThrottlingException", "EntityNotFoundException"])
def test_a_glue_failure_leaves_the_night_committed_and_says_how_to_repair(s3, buckets, code, caplog) -> None:
    source, raw = buckets
    ds = movielens(raw, source)
    put_files(s3, source, ["movielens/ratings.csv"])
    refusing = Refusing(code)
    engine = Engine(Store(s3), ds, catalog=Catalog(DATABASE, lambda: refusing))

    with caplog.at_level(logging.WARNING):
        [answer] = engine.run(NIGHT)
    finalized = finalize(engine.job, answer["run_id"])  # the finalize step's own answer, as the state machine sees it

    assert answer["status"] == "succeeded" and engine.ledger.last_run().run_id == answer["run_id"]
    assert engine.ledger.open_run() is None
    assert code in finalized.partitions_error
    assert "ingest partitions --config <config> --dataset movielens --date 2026-11-27" in finalized.partitions_error
    assert finalized.to_json()["partitions_error"] == finalized.partitions_error
    # The notification people read says so too, with the repair command.
    assert "not registered in Glue" in finalized.notification.message
    assert "ingest partitions --config <config>" in finalized.notification.message
    assert any("not registered" in r.message and "ingest partitions" in r.message for r in caplog.records)


def test_a_table_the_catalog_lacks_is_a_warning_not_a_failed_run(s3, buckets, aws) -> None:
    source, raw = buckets
    ds = movielens(raw, source)
    put_files(s3, source, ["movielens/ratings.csv"])
    glue = boto3.client("glue", region_name=REGION)
    glue.create_database(DatabaseInput={"Name": DATABASE})  # no table: moto answers EntityNotFoundException
    engine = Engine(Store(s3), ds, catalog=Catalog(DATABASE, lambda: glue))

    [answer] = engine.run(NIGHT)
    again = finalize(engine.job, answer["run_id"])

    assert answer["status"] == "succeeded"
    assert "EntityNotFoundException" in again.partitions_error


def test_a_run_without_a_database_touches_no_catalog(s3, buckets) -> None:
    source, raw = buckets
    put_files(s3, source, ["movielens/ratings.csv"])
    refusing = Refusing()
    ds = movielens(raw, source)  # the demo's case: no database configured, none in the environment
    engine = Engine(Store(s3), ds, catalog=catalog_for(ds, lambda: refusing))

    assert engine.run(NIGHT)[0]["status"] == "succeeded"
    assert refusing.calls == 0 and engine.job.catalog is None


# ---- repair: `ingest partitions` --------------------------------------------------------------------------------


def test_the_repair_command_registers_nights_landed_before_registration_and_can_run_again(
    s3, buckets, glue, tmp_path, capsys, monkeypatch
) -> None:
    source, raw = buckets
    ds = movielens(raw, source)
    put_files(s3, source, ["movielens/ratings.csv", "movielens/links.csv"])
    Engine(Store(s3), ds).run(Date(2026, 11, 26))  # before registration existed: no catalog
    put_files(s3, source, ["movielens/ratings2.csv"])
    Engine(Store(s3), ds).run(NIGHT)
    Engine(Store(s3), ds).run(Date(2026, 11, 28))  # nothing new: a run partition only
    create_catalog(glue, [ds])
    monkeypatch.setattr("handler.cli.glue_client", lambda: glue)
    config = write_config(tmp_path / "config.json", source, raw, tables=TABLES)
    command = ["partitions", "--config", str(config), "--dataset", "movielens", "--glue-database", DATABASE, "--json"]

    assert main([*command, "--since", "2026-11-27"]) == 0
    since = json.loads(capsys.readouterr().out)
    assert main(command) == 0
    everything = json.loads(capsys.readouterr().out)

    assert since == {
        "dataset": "movielens",
        "database": DATABASE,
        "nights": 2,
        "first": "2026-11-27",
        "last": "2026-11-28",
        "partitions": 4,  # the 27th: ratings, manifest, runs; the 28th: runs
        "created": 4,
        "existing": 0,
        "calls": 3,
    }
    assert (everything["nights"], everything["created"], everything["existing"]) == (3, 4, 4)
    assert [p["Values"] for p in partitions_of(glue, "movielens_ratings")] in (
        [["2026-11-26"], ["2026-11-27"]],
        [["2026-11-27"], ["2026-11-26"]],
    )
    assert [p["Values"] for p in partitions_of(glue, "movielens_links")] == [["2026-11-26"]]
    assert len(partitions_of(glue, "runs")) == 3 and len(partitions_of(glue, "manifest")) == 2


def test_the_repair_command_for_one_night_and_without_a_database(s3, buckets, glue, tmp_path, capsys, monkeypatch):
    source, raw = buckets
    ds = movielens(raw, source)
    put_files(s3, source, ["movielens/ratings.csv"])
    Engine(Store(s3), ds).run(NIGHT)
    create_catalog(glue, [ds])
    monkeypatch.setattr("handler.cli.glue_client", lambda: glue)
    config = write_config(tmp_path / "config.json", source, raw, tables=TABLES)
    command = ["partitions", "--config", str(config), "--dataset", "movielens", "--json"]

    assert main(command) == 2
    refused = json.loads(capsys.readouterr().out)
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    assert main([*command, "--date", "2026-11-27"]) == 0
    answer = json.loads(capsys.readouterr().out)

    assert refused["status"] == "invalid" and "--glue-database" in refused["error"]
    assert (answer["nights"], answer["created"]) == (1, 3)
