"""Schema contracts end to end against moto: real files of a described table, each table's policy, and where the
drift shows (manifest, summary, notification, status, verify), and what the next night does."""

from __future__ import annotations

import gzip
import json
from datetime import date as Date
from typing import Any

import pytest

from handler.cli import _print, _status_rows
from handler.contracts import QUARANTINE_FOLDER
from handler.notify import build_notification
from handler.records import RunSummary
from handler.runner import Engine
from handler.store import Store
from tests.conftest import dataset_config

NIGHT = Date(2026, 12, 7)
NEXT_NIGHT = Date(2026, 12, 8)
PREFIX = "movielens/"
HEADER = "userId,movieId,rating,timestamp"
ROWS = "1,296,5.0,1147880044\n1,306,3.5,1147868817\n"
COLUMNS = [
    {"name": "userId", "type": "bigint"},
    {"name": "movieId", "type": "bigint"},
    {"name": "rating", "type": "double"},
    {"name": "timestamp", "type": "bigint"},
]
DRIFTED = {
    "ratings_added.csv": ("userId,movieId,rating,timestamp,rating2", "added: rating2"),
    "ratings_dropped.csv": ("userId,movieId,timestamp", "missing: rating"),
    "ratings_reordered.csv": (
        "userId,rating,movieId,timestamp",
        "order differs: found userid, rating, movieid, timestamp; declared userid, movieid, rating, timestamp",
    ),
    "ratings_renamed.csv": ("userId,movieId,score,timestamp", "renamed: rating -> score"),
}


class RangedGets:
    """Every ranged GetObject of a source key the client sends (the header reads; the ledger's reads are whole)."""

    def __init__(self, s3: Any, source: str):
        self.keys: list[str] = []
        self._source = source
        s3.meta.events.register("before-parameter-build.s3.GetObject", self._seen)

    def _seen(self, params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("Bucket") == self._source and "Range" in params:
            self.keys.append(params["Key"].removeprefix(PREFIX))


def tables(policy: str | None = None, **ratings: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"pattern": "ratings*.csv*", "columns": COLUMNS, **ratings}
    if policy is not None:
        spec["on_schema_drift"] = policy
    return {
        "ratings": spec,
        "events": {"pattern": "*.jsonl", "format": "json", "columns": COLUMNS},
        "movies": "movies*.csv",
    }


def put(s3: Any, bucket: str, name: str, body: str | bytes) -> None:
    s3.put_object(Bucket=bucket, Key=PREFIX + name, Body=body.encode() if isinstance(body, str) else body)


def put_ratings(s3: Any, source: str) -> None:
    put(s3, source, "ratings.csv", f"{HEADER}\n{ROWS}")
    for name, (header, _) in DRIFTED.items():
        put(s3, source, name, f"{header}\n{ROWS}")
    put(s3, source, "movies.csv", "movieId,title\n1,Toy Story\n")


def engine(s3: Any, source: str, raw: str, **fields: Any) -> Engine:
    return Engine(Store(s3), dataset_config(source, raw, tables=fields.pop("tables", tables()), **fields))


def lines_of(engine: Engine, summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ledger = engine.job.ledger
    return {
        line["source_key"].removeprefix(PREFIX): line
        for line in ledger.manifest_lines(summary["date"], summary["run_id"])
    }


def target(table: str, name: str, night: Date = NIGHT) -> str:
    return f"{PREFIX}{table}/ingest_date={night.isoformat()}/{name}"


def exists(s3: Any, bucket: str, key: str) -> bool:
    return s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) > 0


# ---- the three policies -------------------------------------------------------------------------------------


def test_land_lands_drifted_files_in_their_table_and_records_each_difference(s3, buckets):
    source, raw = buckets
    put_ratings(s3, source)
    run = engine(s3, source, raw, tables=tables("land"))

    (summary,) = run.run(NIGHT)

    assert summary["status"] == "succeeded" and summary["copied"] == 6
    lines = lines_of(run, summary)
    for name, (_, described) in DRIFTED.items():
        assert lines[name]["status"] == "copied" and lines[name]["schema_drift"] == described
        assert lines[name]["target_key"] == target("ratings", name) and exists(s3, raw, target("ratings", name))
    assert "schema_drift" not in lines["ratings.csv"] and "schema_drift" not in lines["movies.csv"]
    assert summary["schema_drift"] == 4
    assert {d["source_key"]: (d["status"], d["drift"]) for d in summary["schema_drift_files"]} == {
        PREFIX + name: ("copied", described) for name, (_, described) in DRIFTED.items()
    }


def test_quarantine_lands_drifted_files_where_no_table_reads_and_the_next_night_leaves_them(s3, buckets):
    source, raw = buckets
    put_ratings(s3, source)
    run = engine(s3, source, raw)  # quarantine is the default

    (summary,) = run.run(NIGHT)

    assert summary["status"] == "succeeded" and summary["copied"] == 6 and summary["schema_drift"] == 4
    lines = lines_of(run, summary)
    for name in DRIFTED:
        quarantined = f"{PREFIX}{QUARANTINE_FOLDER}ratings/ingest_date={NIGHT.isoformat()}/{name}"
        assert lines[name]["status"] == "copied" and lines[name]["target_key"] == quarantined
        assert exists(s3, raw, quarantined) and not exists(s3, raw, target("ratings", name))
    assert exists(s3, raw, target("ratings", "ratings.csv"))
    # Nothing quarantined is under the table's folder, which is what Athena reads.
    table_folder = f"{PREFIX}ratings/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=raw, Prefix=table_folder)["Contents"]]
    assert keys == [target("ratings", "ratings.csv")]

    (again,) = run.run(NEXT_NIGHT)

    assert again["status"] == "nothing_new" and again["copied"] == 0 and again.get("schema_drift", 0) == 0
    assert not exists(s3, raw, f"{PREFIX}{QUARANTINE_FOLDER}ratings/ingest_date={NEXT_NIGHT.isoformat()}/")


def test_fail_leaves_drifted_files_failed_with_the_difference_and_a_fixed_file_lands_the_next_night(s3, buckets):
    source, raw = buckets
    put_ratings(s3, source)
    run = engine(s3, source, raw, tables=tables("fail"))

    (summary,) = run.run(NIGHT)

    assert summary["status"] == "partial" and summary["copied"] == 2 and summary["failed"] == 4
    assert summary["schema_drift"] == 4
    reasons = {f["source_key"].removeprefix(PREFIX): f["reason"] for f in summary["failures"]}
    for name, (_, described) in DRIFTED.items():
        assert reasons[name].startswith(f"schema drift ({described}); its table's on_schema_drift is fail")
        assert not exists(s3, raw, target("ratings", name))
    assert lines_of(run, summary)["ratings_added.csv"]["schema_drift"] == "added: rating2"

    put(s3, source, "ratings_added.csv", f"{HEADER}\n{ROWS}")  # the producer fixed one file

    (again,) = run.run(NEXT_NIGHT)

    assert again["copied"] == 1 and again["failed"] == 3 and again["schema_drift"] == 3
    assert exists(s3, raw, target("ratings", "ratings_added.csv", NEXT_NIGHT))
    assert "schema_drift" not in lines_of(run, again)["ratings_added.csv"]


# ---- formats, compression, sizes ----------------------------------------------------------------------------


def test_json_lines_gzip_csv_an_empty_file_and_a_header_longer_than_the_first_range(s3, buckets):
    source, raw = buckets
    row = {"userId": 1, "movieId": 296, "rating": 5.0, "timestamp": 1147880044}
    put(s3, source, "good.jsonl", json.dumps(row) + "\n")
    put(s3, source, "drifted.jsonl", json.dumps({**row, "rating2": 4.5}) + "\n")
    put(s3, source, "ratings_zipped.csv.gz", gzip.compress(f"userId,movieId,timestamp\n{ROWS * 2000}".encode()))
    put(s3, source, "ratings_empty.csv", b"")
    wide = ",".join([*(c["name"] for c in COLUMNS), *(f"extra{n:05d}" for n in range(10_000))])  # ~110 KiB
    put(s3, source, "ratings_wide.csv", f"{wide}\n{ROWS}")
    gets = RangedGets(s3, source)
    run = engine(s3, source, raw, tables=tables("land"))

    (summary,) = run.run(NIGHT)

    lines = lines_of(run, summary)
    assert summary["status"] == "succeeded" and summary["copied"] == 5
    assert "schema_drift" not in lines["good.jsonl"]
    assert lines["drifted.jsonl"]["schema_drift"] == "added: rating2"
    assert lines["ratings_zipped.csv.gz"]["schema_drift"] == "missing: rating"
    assert "schema_drift" not in lines["ratings_empty.csv"]  # S3 answers 416: empty, nothing to compare
    assert lines["ratings_wide.csv"]["schema_drift"] == (
        "added: " + ", ".join(f"extra{n:05d}" for n in range(10)) + " and 9990 more"
    )
    # The wide header took a second, longer range; every other file one GET.
    assert sorted(gets.keys) == sorted(
        ["good.jsonl", "drifted.jsonl", "ratings_zipped.csv.gz", "ratings_empty.csv"] + ["ratings_wide.csv"] * 2
    )


def test_a_quoted_tsv_header_is_read_with_the_tables_delimiter(s3, buckets):
    source, raw = buckets
    put(s3, source, "ratings.tsv", '"userId"\t"movie\tId"\trating\ttimestamp\n1\t2\t3\t4\n')
    spec = {"pattern": "*.tsv", "columns": COLUMNS, "delimiter": "\t", "on_schema_drift": "land"}
    run = engine(s3, source, raw, tables={"ratings": spec})

    (summary,) = run.run(NIGHT)

    assert lines_of(run, summary)["ratings.tsv"]["schema_drift"] == "renamed: movieid -> movie\tid"


# ---- what is not checked costs nothing -----------------------------------------------------------------------


def test_check_schema_false_reads_no_header_and_records_nothing(s3, buckets):
    source, raw = buckets
    put_ratings(s3, source)
    gets = RangedGets(s3, source)
    run = engine(s3, source, raw, tables=tables("fail"), check_schema=False)

    (summary,) = run.run(NIGHT)

    assert gets.keys == []
    assert summary["status"] == "succeeded" and summary["copied"] == 6 and "schema_drift" not in summary
    assert all("schema_drift" not in line for line in lines_of(run, summary).values())


def test_a_table_without_columns_and_a_dataset_without_tables_make_no_get(s3, buckets):
    source, raw = buckets
    put_ratings(s3, source)
    gets = RangedGets(s3, source)

    engine(s3, source, raw).run(NIGHT)

    assert "movies.csv" not in gets.keys and len(gets.keys) == 5  # the five ratings files, once each
    gets.keys.clear()
    plain_raw = raw + "-plain"
    s3.create_bucket(Bucket=plain_raw)
    Engine(Store(s3), dataset_config(source, plain_raw)).run(NIGHT)
    assert gets.keys == []


# ---- where the drift shows -----------------------------------------------------------------------------------


def test_notification_status_and_verify_show_the_drift(s3, buckets):
    source, raw = buckets
    put_ratings(s3, source)
    run = engine(s3, source, raw)

    (summary,) = run.run(NIGHT)

    message = build_notification(RunSummary.from_json(summary)).message
    assert "Schema drift in 4 file(s); first 4:" in message
    quarantined = f"{PREFIX}{QUARANTINE_FOLDER}ratings/ingest_date={NIGHT.isoformat()}/ratings_added.csv"
    assert f"  - {PREFIX}ratings_added.csv: added: rating2 (landed at {quarantined})" in message

    status = run.status()
    assert status.last_run is not None and status.last_run.schema_drift == 4
    assert status.to_json()["last_run"]["schema_drift"] == 4
    assert dict(_status_rows(status))["last run"].endswith("schema drift 4")

    report = run.verify(NIGHT)
    assert report.status == "clean", report.problems
    assert report.to_json()["schema_drift"] == 4
    assert report.checked.copied_lines == 6
    # The quarantine folder is listed with the night's keys: what lands there unrecorded would show.
    assert f"s3://{raw}/{PREFIX}{QUARANTINE_FOLDER}ratings/ingest_date={NIGHT.isoformat()}/" in report.listing
    assert report.checked.objects_listed == 6
    stray = f"{PREFIX}{QUARANTINE_FOLDER}ratings/ingest_date={NIGHT.isoformat()}/stray.csv"
    s3.copy_object(Bucket=raw, Key=stray, CopySource={"Bucket": raw, "Key": quarantined})
    assert [p.kind for p in run.verify(NIGHT).problems] == ["not_in_manifest"]


@pytest.mark.parametrize("policy", ["land", "quarantine", "fail"])
def test_a_policy_that_met_no_drift_lands_everything_as_before(s3, buckets, policy):
    source, raw = buckets
    put(s3, source, "ratings.csv", f"{HEADER}\n{ROWS}")
    run = engine(s3, source, raw, tables=tables(policy))

    (summary,) = run.run(NIGHT)

    assert summary["status"] == "succeeded" and "schema_drift" not in summary
    assert exists(s3, raw, target("ratings", "ratings.csv"))


def test_a_quarantined_file_whose_batch_never_reported_is_found_under_quarantine_on_reconcile(s3, buckets):
    source, raw = buckets
    put_ratings(s3, source)
    run = engine(s3, source, raw)
    plan = run.plan_all(NIGHT)
    run.copy_batch(plan["run_id"], 0)
    ledger = run.job.ledger
    s3.delete_object(Bucket=raw, Key=ledger.paths.result(run_id=plan["run_id"], batch=0))  # its Lambda died

    summary = run.finalize(plan["run_id"])["summary"]

    assert summary["status"] == "succeeded" and summary["copied"] == 6 and summary["schema_drift"] == 4
    line = lines_of(run, summary)["ratings_added.csv"]
    assert line["target_key"] == f"{PREFIX}{QUARANTINE_FOLDER}ratings/ingest_date={NIGHT.isoformat()}/ratings_added.csv"
    assert line["schema_drift"].startswith("not recorded: its batch never reported")
    assert line["reason"] == "quarantined, but its batch never reported; found on reconcile"
    assert lines_of(run, summary)["ratings.csv"]["reason"] == "landed, but its batch never reported; found on reconcile"
    (again,) = run.run(NEXT_NIGHT)
    assert again["copied"] == 0  # recorded as landed: not quarantined a second time


def test_a_file_rewritten_after_the_listing_fails_at_its_header_read_and_lands_the_next_night(s3, buckets):
    source, raw = buckets
    put_ratings(s3, source)
    run = engine(s3, source, raw, tables=tables("land"))
    plan = run.plan_all(NIGHT)
    put(s3, source, "ratings_added.csv", f"{HEADER}\n{ROWS}{ROWS}")  # If-Match on the listed ETag refuses it
    s3.delete_object(Bucket=source, Key=PREFIX + "ratings_dropped.csv")

    run.copy_batch(plan["run_id"], 0)
    summary = run.finalize(plan["run_id"])["summary"]

    reasons = {f["source_key"].removeprefix(PREFIX): f["reason"] for f in summary["failures"]}
    assert reasons == {
        "ratings_added.csv": "source changed since listing (ETag differs); it lands on the next run",
        "ratings_dropped.csv": "source object is gone since listing",
    }
    (again,) = run.run(NEXT_NIGHT)
    assert again["copied"] == 1 and "schema_drift" not in again


def test_the_cli_lists_a_runs_drifted_files_one_a_line(capsys):
    drifted = {"source_key": "in/r.csv", "status": "copied", "target_key": "out/_quarantine/r.csv", "drift": "added: x"}

    _print({"status": "succeeded", "schema_drift": 1, "schema_drift_files": [drifted]}, as_json=False)

    assert capsys.readouterr().out.splitlines()[-2:] == [
        "schema_drift_files  1 listed",
        "  - in/r.csv: added: x (copied at out/_quarantine/r.csv)",
    ]
