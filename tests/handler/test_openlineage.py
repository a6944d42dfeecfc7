"""OpenLineage run events: what a real run leaves in its ledger, checked against the spec's required shape, and
their delivery to an HTTP backend (a local server standing in for Marquez)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from handler.errors import LineageDeliveryFailed
from handler.openlineage import COMPLETE, FAIL, START, deliver, run_uuid
from handler.runner import Engine
from handler.store import Store
from tests.conftest import dataset_config, ledger_in
from tests.lineage_backend import LineageBackend

EVENT_TYPES = {"START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"}


def spec_problems(event: dict[str, Any]) -> list[str]:
    """What the OpenLineage 2-0-2 RunEvent schema requires, and every facet's `_producer`/`_schemaURL`."""
    problems = []
    for name in ("eventTime", "producer", "schemaURL", "run", "job"):
        if name not in event:
            problems.append(f"missing {name}")
    if event.get("eventType") not in EVENT_TYPES:
        problems.append(f"eventType {event.get('eventType')!r}")
    try:
        uuid.UUID(event["run"]["runId"])
    except (KeyError, ValueError):
        problems.append("run.runId must be a UUID")
    if not event["job"].get("namespace") or not event["job"].get("name"):
        problems.append("job needs namespace and name")
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        if not dataset.get("namespace") or not dataset.get("name"):
            problems.append(f"dataset {dataset} needs namespace and name")
    facets = [*event["run"].get("facets", {}).values(), *event["job"].get("facets", {}).values()]
    for dataset in event.get("outputs", []):
        facets += dataset.get("outputFacets", {}).values()
    for facet in facets:
        if not facet.get("_producer", "").startswith("https://") or "_schemaURL" not in facet:
            problems.append(f"facet without _producer/_schemaURL: {facet}")
    return problems


def events_of(s3: Any, raw: str, summary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    paths = ledger_in(s3, raw).paths
    read = [
        json.loads(
            s3.get_object(
                Bucket=raw, Key=paths.lineage_event(date=summary["date"], run_id=summary["run_id"], event=event)
            )["Body"].read()
        )
        for event in ("start", "end")
    ]
    return read[0], read[1]


def test_a_run_leaves_a_start_and_a_complete_event_with_its_output_statistics(s3, buckets):
    source, raw = buckets
    for name in ("a.csv", "b.csv"):
        s3.put_object(Bucket=source, Key=f"movielens/{name}", Body=name.encode() * 10)
    (summary,) = Engine(Store(s3), dataset_config(source, raw)).run()

    start, end = events_of(s3, raw, summary)

    assert spec_problems(start) == [] and spec_problems(end) == []
    assert (start["eventType"], end["eventType"]) == (START, COMPLETE)
    assert start["run"]["runId"] == end["run"]["runId"] == run_uuid("movielens", summary["run_id"])
    assert (start["eventTime"], end["eventTime"]) == (summary["started_at"], summary["finished_at"])
    assert start["job"] == end["job"] and end["job"]["name"] == "movielens"
    assert end["inputs"] == [{"namespace": f"s3://{source}", "name": "movielens"}]
    output = end["outputs"][0]
    assert (output["namespace"], output["name"]) == (f"s3://{raw}", "movielens")
    statistics = output["outputFacets"]["outputStatistics"]
    assert (statistics["size"], statistics["fileCount"]) == (summary["bytes"], 2) == (100, 2)
    assert end["run"]["facets"]["dataFileIngestion_run"]["runId"] == summary["run_id"]
    assert end["run"]["facets"]["dataFileIngestion_run"]["manifest"] == summary["manifest"]


def test_a_run_with_failed_objects_ends_in_fail_and_says_why(s3, buckets):
    source, raw = buckets
    for name in ("a.csv", "b.csv"):
        s3.put_object(Bucket=source, Key=f"movielens/{name}", Body=name.encode())
    engine = Engine(Store(s3), dataset_config(source, raw))
    plan = engine.plan_all()
    s3.delete_object(Bucket=source, Key="movielens/b.csv")
    engine.copy_batch(plan["run_id"], 0)
    summary = engine.finalize(plan["run_id"])["summary"]

    _, end = events_of(s3, raw, summary)

    assert summary["status"] == "partial"
    assert end["eventType"] == FAIL and spec_problems(end) == []
    assert "1 object(s) failed" in end["run"]["facets"]["errorMessage"]["message"]
    assert end["outputs"][0]["outputFacets"]["outputStatistics"]["fileCount"] == 1


def test_a_bucket_wide_dataset_is_named_slash():
    from handler.openlineage import _s3_dataset

    assert _s3_dataset("s3://raw/") == {"namespace": "s3://raw", "name": "/"}
    assert _s3_dataset("s3://raw/a/b/") == {"namespace": "s3://raw", "name": "a/b"}


# ---- delivery --------------------------------------------------------------------------------------------


EVENTS = [{"eventType": "START", "n": 1}, {"eventType": "COMPLETE", "n": 2}]


def test_events_are_posted_as_json_to_the_lineage_endpoint_with_the_api_key(lineage_backend: LineageBackend):
    assert deliver(EVENTS, lineage_backend.url + "/", api_key="s3cr3t") == 2

    assert [post.path for post in lineage_backend.posts] == ["/api/v1/lineage"] * 2
    assert [post.event for post in lineage_backend.posts] == EVENTS
    headers = lineage_backend.posts[0].headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer s3cr3t"


def test_credentials_in_the_url_are_sent_as_basic_auth(lineage_backend: LineageBackend):
    deliver(EVENTS[:1], lineage_backend.url.replace("http://", "http://marquez:p%40ss@"))

    assert lineage_backend.posts[0].headers["Authorization"] == "Basic " + base64.b64encode(b"marquez:p@ss").decode()


def test_a_backend_that_refuses_is_an_error_naming_the_answer_and_not_the_secrets(lineage_backend: LineageBackend):
    lineage_backend.status = 500
    base = lineage_backend.url
    for url, key in ((base.replace("http://", "http://user:hunter2@"), None), (base, "s3cr3t")):
        with pytest.raises(LineageDeliveryFailed, match="answered 500 to a START event") as caught:
            deliver(EVENTS, url, endpoint="custom/lineage", api_key=key)
        assert "hunter2" not in str(caught.value) and "s3cr3t" not in str(caught.value)
    assert lineage_backend.posts[0].path == "/custom/lineage"


def test_an_unreachable_backend_is_an_error_not_a_hang():
    closed = "http://127.0.0.1:9"  # discard port: nothing listens
    with pytest.raises(LineageDeliveryFailed, match="could not reach http://127.0.0.1:9/api/v1/lineage"):
        deliver(EVENTS, closed, timeout=2)
