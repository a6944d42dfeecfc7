"""Every kind of event handler/openlineage.py builds, validated against the official OpenLineage JSON schemas
(tests/openlineage_spec, from the OpenLineage repository) and our own facet's schema (docs/openlineage): the
RunEvent, and each facet against the schema its `_schemaURL` names, with formats checked."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

import pytest

from handler.openlineage import (
    FACET_HOME,
    LEGACY_RUN_FACET,
    RUN_FACET,
    RUN_FACET_SCHEMA,
    Sent,
    end_event,
    parent_facet,
    start_event,
)
from handler.records import OpenRun, PlanCounts, RunStatus, RunSummary
from tests.conftest import dataset_config
from tests.openlineage_schemas import OWN, SPEC, event_problems, facets_of, known, registry

EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:ingest-dev-state-machine:run-20261127"
SCHEDULED = "2026-11-27T20:00:00.000Z"
RATINGS = {
    "pattern": ["ratings*.csv"],
    "columns": [
        {"name": "userId", "type": "bigint"},
        {"name": "rating", "type": "double", "comment": "0.5 to 5 stars"},
    ],
}


def described() -> Any:
    return dataset_config("src", "raw", tables={"ratings": RATINGS, "links": ["links*.csv"]})


def open_run(scheduled: str | None = None) -> OpenRun:
    counts = PlanCounts(listed=3, planned=3, planned_bytes=30)
    return OpenRun(
        "movielens",
        "20261127T200001000Z-abc123",
        "2026-11-27",
        "2026-11-27T20:00:01.000Z",
        1,
        counts,
        scheduled_time=scheduled,
    )


def summary(status: RunStatus = RunStatus.SUCCEEDED, failed: int = 0) -> RunSummary:
    return RunSummary.ended(
        described(),
        date="2026-11-27",
        status=status,
        started_at="2026-11-27T20:00:01.000Z",
        finished_at="2026-11-27T20:03:00.000Z",
        run_id="20261127T200001000Z-abc123",
        resumed=False,
        copied=3 - failed,
        failed=failed,
        bytes=30,
        manifest="s3://raw/_ingestion/movielens/manifest/date=2026-11-27/20261127T200001000Z-abc123-*.jsonl",
    )


CASES = {
    "start, CLI": lambda: start_event(dataset_config("src", "raw"), open_run()),
    "start, execution, scheduled, described tables": lambda: start_event(described(), open_run(SCHEDULED), EXECUTION),
    "complete, CLI": lambda: end_event(summary()),
    "complete, execution, scheduled, described tables": lambda: end_event(
        summary(), described(), open_run(SCHEDULED), EXECUTION
    ),
    "complete, nothing new": lambda: end_event(replace(summary(), status=RunStatus.NOTHING_NEW, manifest=None)),
    "fail, partial": lambda: end_event(summary(RunStatus.PARTIAL, failed=1), described(), open_run(), EXECUTION),
    "fail, nothing landed": lambda: end_event(summary(RunStatus.FAILED, failed=3), None, open_run(SCHEDULED)),
    "one-shot Lambda run": lambda: start_event(described(), open_run(SCHEDULED), "lambda-request:0f1e2d"),
}


@pytest.mark.parametrize("case", CASES)
def test_every_event_we_build_is_valid_against_the_official_schemas(case: str) -> None:
    event = json.loads(json.dumps(CASES[case]()))  # as stored and sent
    assert event_problems(event) == []
    assert all(known(facet["_schemaURL"]) for _, facet in facets_of(event))


def test_a_run_under_an_execution_has_it_as_parent_with_a_stable_uuid() -> None:
    start = start_event(described(), open_run(SCHEDULED), EXECUTION)
    end = end_event(summary(), described(), open_run(SCHEDULED), EXECUTION)
    parent = start["run"]["facets"]["parent"]
    assert parent == end["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == str(uuid.uuid5(uuid.NAMESPACE_URL, EXECUTION))
    assert parent["job"] == {
        "namespace": "data-file-ingestion",
        "name": "arn:aws:states:eu-west-1:123456789012:stateMachine:ingest-dev-state-machine",
    }
    assert start["run"]["facets"]["nominalTime"]["nominalStartTime"] == SCHEDULED
    assert end["run"]["facets"]["nominalTime"]["nominalStartTime"] == SCHEDULED


@pytest.mark.parametrize("execution", [None, "lambda-request:0f1e2d", "arn:aws:lambda:eu-west-1:123456789012:x"])
def test_a_run_outside_a_state_machine_has_no_parent(execution: str | None) -> None:
    assert parent_facet(execution) is None
    assert "parent" not in start_event(described(), open_run(), execution)["run"]["facets"]
    assert "nominalTime" not in start_event(described(), open_run(), execution)["run"]["facets"]


def test_each_described_table_is_an_output_with_its_declared_columns_and_the_target_stays_first() -> None:
    event = end_event(summary(), described(), open_run())
    target, ratings = event["outputs"]
    assert (target["namespace"], target["name"]) == ("s3://raw", "movielens")
    assert "outputStatistics" in target["outputFacets"]
    assert (ratings["namespace"], ratings["name"]) == ("s3://raw", "movielens/ratings")
    fields = ratings["facets"]["schema"]["fields"]
    assert fields == [
        {"name": "userId", "type": "bigint", "ordinal_position": 1},
        {"name": "rating", "type": "double", "description": "0.5 to 5 stars", "ordinal_position": 2},
    ]


def test_the_custom_facet_follows_the_naming_rule_and_its_schema_is_shipped_at_its_url() -> None:
    event = start_event(described(), open_run())
    assert RUN_FACET in event["run"]["facets"] and LEGACY_RUN_FACET not in event["run"]["facets"]
    prefix, _, name = RUN_FACET.partition("_")
    assert prefix[0].islower() and name[0].islower() and name.isalpha(), "{prefix}_{name}, both camelCase"
    url, _, pointer = RUN_FACET_SCHEMA.partition("#")
    shipped = OWN / url.removeprefix(FACET_HOME + "/")
    document = json.loads(shipped.read_text())
    assert document["$id"] == url
    assert pointer == "/$defs/" + shipped.stem and RUN_FACET in document["properties"]


def test_the_validator_does_catch_a_facet_whose_own_fields_are_wrong() -> None:
    event = start_event(described(), open_run(SCHEDULED), EXECUTION)
    del event["run"]["facets"]["nominalTime"]["nominalStartTime"]
    event["run"]["facets"]["parent"]["run"]["runId"] = "not-a-uuid"
    event["run"]["facets"]["mystery"] = {"_producer": "https://x", "_schemaURL": "https://example.com/x.json"}
    problems = "\n".join(event_problems(event))
    assert "'nominalStartTime' is a required property" in problems
    assert "'not-a-uuid' is not a 'uuid'" in problems
    assert "none of the schemas the tests hold" in problems


def test_events_stored_before_the_rename_are_still_read() -> None:
    old = start_event(described(), open_run())
    old["run"]["facets"] = {LEGACY_RUN_FACET: old["run"]["facets"][RUN_FACET]}
    assert Sent.of("movielens", 2, [old, start_event(described(), open_run())]).runs == ("20261127T200001000Z-abc123",)


def test_the_vendored_schemas_say_where_they_come_from() -> None:
    notice = (SPEC / "NOTICE").read_text()
    assert "8f02abfb7a252783b95df79f443edb13959bf52c" in notice and "Apache License" in (SPEC / "LICENSE").read_text()
    assert "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json" in set(registry())
