"""A committed run as Embedded Metric Format: each line must be one CloudWatch would turn into metrics (the
rules of the EMF specification, checked here), with the run's values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handler.metrics import DIMENSION, METRICS, emf_document, emit
from handler.records import RunStatus, RunSummary

NOW = datetime(2026, 12, 6, 20, 0, 30, tzinfo=UTC)
STANDARD_UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}  # fmt: skip


def emf_problems(document: dict[str, Any]) -> list[str]:
    """What CloudWatch would refuse in an EMF log event (the specification's "validation" rules)."""
    problems = []
    meta = document.get("_aws")
    if not isinstance(meta, dict) or not isinstance(meta.get("Timestamp"), int):
        return ["_aws.Timestamp must be an integer of milliseconds"]
    for directive in meta.get("CloudWatchMetrics", []):
        if not 1 <= len(directive.get("Namespace", "")) <= 255:
            problems.append("a namespace of 1-255 characters")
        for dimension_set in directive["Dimensions"]:
            if len(dimension_set) > 30:
                problems.append("at most 30 dimensions in a set")
            for name in dimension_set:
                if not isinstance(document.get(name), str) or not document[name]:
                    problems.append(f"dimension {name} must be a non-empty string member")
        if len(directive["Metrics"]) > 100:
            problems.append("at most 100 metrics a directive")
        for metric in directive["Metrics"]:
            value = document.get(metric["Name"])
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                problems.append(f"metric {metric['Name']} must be a number member, got {value!r}")
            if metric.get("Unit", "None") not in STANDARD_UNITS:
                problems.append(f"metric {metric['Name']}: unit {metric['Unit']!r} is not a CloudWatch unit")
    return problems


def summary(**fields: Any) -> RunSummary:
    base: dict[str, Any] = {
        "dataset": "movielens",
        "run_id": "20261206T200000000Z-abc123",
        "date": "2026-12-06",
        "status": RunStatus.SUCCEEDED,
        "started_at": "2026-12-06T20:00:00.000Z",
        "finished_at": "2026-12-06T20:00:12.500Z",
        "duration_seconds": 12.5,
        "resumed": False,
        "source": "s3://src/movielens/",
        "target": "s3://raw/movielens/",
        "copied": 4,
        "skipped": 3,
        "failed": 0,
        "bytes": 3303137,
        "last_landed_at": "2026-12-06T20:00:12.500Z",
    }
    return RunSummary(**{**base, **fields})


def test_a_succeeded_run_reports_its_counts_bytes_duration_and_freshness():
    document = emf_document(summary(), "data-file-ingestion/dev", NOW)

    assert emf_problems(document) == []
    assert document[DIMENSION] == "movielens"
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "data-file-ingestion/dev"
    assert document["_aws"]["Timestamp"] == int(NOW.timestamp() * 1000)
    values = {m["Name"]: document[m["Name"]] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert values == {
        "ObjectsCopied": 4,
        "ObjectsSkipped": 3,
        "ObjectsFailed": 0,
        "BytesCopied": 3303137,
        "RunDurationSeconds": 12.5,
        "RunSucceeded": 1.0,
        "NewestDataAgeSeconds": 17.5,
    }
    assert (document["RunId"], document["RunDate"], document["Status"]) == (
        "20261206T200000000Z-abc123",
        "2026-12-06",
        "succeeded",
    )


@pytest.mark.parametrize(
    ("status", "succeeded"),
    [(RunStatus.NOTHING_NEW, 1.0), (RunStatus.PARTIAL, 0.0), (RunStatus.FAILED, 0.0)],
)
def test_only_runs_that_did_not_fail_count_as_succeeded(status, succeeded):
    assert emf_document(summary(status=status), "ns", NOW)["RunSucceeded"] == succeeded


def test_a_dataset_that_never_landed_anything_reports_no_age_rather_than_a_made_up_one():
    document = emf_document(summary(copied=0, last_landed_at=None, status=RunStatus.NOTHING_NEW), "ns", NOW)

    assert emf_problems(document) == []
    assert "NewestDataAgeSeconds" not in document
    names = [m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    # SchemaDrift is left out too: the run met no drift.
    assert "NewestDataAgeSeconds" not in names and len(names) == len(METRICS) - 2


def test_age_grows_with_the_time_since_the_last_landing():
    old = summary(copied=0, status=RunStatus.NOTHING_NEW, last_landed_at="2026-12-04T20:00:30.000Z")
    assert emf_document(old, "ns", NOW)["NewestDataAgeSeconds"] == timedelta(days=2).total_seconds()


def test_emit_writes_one_whole_json_line_per_run():
    written: list[str] = []

    emit([summary(), summary(dataset="orders")], "ns", NOW, written.append)

    assert len(written) == 2 and all(line.endswith("\n") and line.count("\n") == 1 for line in written)
    assert [json.loads(line)[DIMENSION] for line in written] == ["movielens", "orders"]


def test_a_run_that_met_schema_drift_counts_the_drifted_files_and_one_without_leaves_the_metric_out():
    drifted = emf_document(summary(schema_drift=3), "ns", NOW)
    plain = emf_document(summary(), "ns", NOW)

    assert emf_problems(drifted) == []
    assert drifted["SchemaDrift"] == 3
    assert {"Name": "SchemaDrift", "Unit": "Count"} in drifted["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    assert "SchemaDrift" not in plain
