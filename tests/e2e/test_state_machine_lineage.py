"""A night's OpenLineage events delivered by the state machine's `send_lineage` step, in moto's Step Functions
interpreter with the real handler as the Lambda (tests/sfn_harness.py): to a stand-in OpenLineage backend on
loopback (tests/lineage_backend.py), with an API key read from Secrets Manager, and to Amazon DataZone (which moto
lacks: a botocore Stubber'd client at the edge). A backend that is down or refuses leaves the night SUCCEEDED with
the warning in the execution's output."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from handler.lineage_destination import ENV
from handler.store import lineage as lineage_edge
from tests.conftest import REGION
from tests.lineage_backend import LineageBackend
from tests.openlineage_schemas import event_problems
from tests.sfn_harness import (  # noqa: F401 (fixtures)
    DATASET,
    Dataset,
    LambdaRuntime,
    Notifications,
    StateMachine,
    dataset_fixture,
    lambda_runtime_fixture,
    notifications_fixture,
    output_of,
    retry_waits_fixture,
    state_machine_fixture,
)

SCHEDULED = "2026-11-27T20:00:00Z"
DEFINITION_OPTIONS = {"send_lineage": True}
"""The state machine of a stack with a lineage destination (read by the harness's `state_machine` fixture)."""


@pytest.fixture(autouse=True)
def fresh_key_cache() -> Iterator[None]:
    lineage_edge._keys.clear()
    yield
    lineage_edge._keys.clear()


def destination(monkeypatch: pytest.MonkeyPatch, **document: str) -> None:
    monkeypatch.setenv(ENV, json.dumps(document))


def test_a_scheduled_night_delivers_its_start_and_complete_events_valid_against_the_spec(
    dataset: Dataset,
    state_machine: StateMachine,
    lambda_runtime: LambdaRuntime,
    lineage_backend: LineageBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="lineage/marquez", SecretString=json.dumps({"apiKey": "k-123"})
    )
    destination(monkeypatch, url=lineage_backend.url, apiKeySecret=secret["ARN"])
    dataset.add_objects(12)

    execution = state_machine.run({"dataset": DATASET, "scheduled_time": SCHEDULED})

    assert execution["status"] == "SUCCEEDED", execution
    assert lambda_runtime.actions()[-1] == "send_lineage"
    assert output_of(execution)["lineage"] == {"sent": 2, "warning": None}
    start, complete = lineage_backend.events
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert event_problems(start) == [] and event_problems(complete) == []
    assert lineage_backend.authorization == ["Bearer k-123", "Bearer k-123"]
    for event in (start, complete):
        facets = event["run"]["facets"]
        assert facets["parent"]["run"]["runId"] == str(uuid.uuid5(uuid.NAMESPACE_URL, execution["executionArn"]))
        assert facets["parent"]["job"]["name"] == state_machine.arn
        assert facets["nominalTime"]["nominalStartTime"] == "2026-11-27T20:00:00.000Z"
    assert complete["run"]["facets"]["dataFileIngestion_run"]["status"] == "succeeded"
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["fileCount"] == 12


def free_port_url() -> str:
    """A loopback URL nothing listens on: a backend that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("backend", ["down", "refusing"])
def test_a_night_whose_backend_is_down_or_refuses_still_succeeds_and_reports_the_warning(
    dataset: Dataset,
    state_machine: StateMachine,
    lambda_runtime: LambdaRuntime,
    notifications: Notifications,
    lineage_backend: LineageBackend,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
) -> None:
    lineage_backend.status = 503
    destination(monkeypatch, url=free_port_url() if backend == "down" else lineage_backend.url)
    dataset.add_objects(3)

    execution = state_machine.run({"dataset": DATASET, "date": "2026-11-27"})

    assert execution["status"] == "SUCCEEDED", execution
    warning = output_of(execution)["lineage"]["warning"]
    assert "lineage events not delivered" in warning and "send-lineage" in warning
    assert ("could not reach" if backend == "down" else "answered 503") in warning
    [message] = notifications.receive()
    assert message["attributes"]["status"] == "succeeded", "the notification went out before the delivery"


def test_a_step_that_breaks_outright_is_caught_and_the_night_goes_on(
    dataset: Dataset, state_machine: StateMachine, lambda_runtime: LambdaRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = lambda_runtime.handler

    def broken(event: dict[str, Any], context: Any) -> Any:
        if event.get("action") == "send_lineage":
            raise RuntimeError("a bug in the delivery")
        return real(event, context)

    lambda_runtime.handler = broken
    destination(monkeypatch, url="https://lineage.example.com")
    dataset.add_objects(2)

    execution = state_machine.run({"dataset": DATASET, "date": "2026-11-27"})

    assert execution["status"] == "SUCCEEDED", execution
    assert output_of(execution)["lineage_error"]["Error"] == "RuntimeError"


def test_a_night_delivers_to_datazone_with_a_client_token_per_run_and_event_type(
    dataset: Dataset, state_machine: StateMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    datazone = boto3.client("datazone", region_name=REGION)
    stubber = Stubber(datazone)
    posted: list[dict[str, Any]] = []
    original = datazone.post_lineage_event

    def post(**request: Any) -> Any:
        posted.append(request)
        return original(**request)

    for _ in range(2):
        stubber.add_response("post_lineage_event", {"id": "e", "domainId": "dzd_abc123"})
    monkeypatch.setattr(datazone, "post_lineage_event", post)
    monkeypatch.setattr(lineage_edge, "aws_client", lambda service, session=None: datazone)
    destination(monkeypatch, datazoneDomain="dzd_abc123")
    dataset.add_objects(2)

    with stubber:
        execution = state_machine.run({"dataset": DATASET, "date": "2026-11-27"})

    assert execution["status"] == "SUCCEEDED", execution
    assert output_of(execution)["lineage"] == {"sent": 2, "warning": None}
    events = [json.loads(request["event"]) for request in posted]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert all(event_problems(e) == [] for e in events)
    assert [r["clientToken"] for r in posted] == [f"{e['run']['runId']}-{e['eventType']}" for e in events]
    assert {r["domainIdentifier"] for r in posted} == {"dzd_abc123"}
    stubber.assert_no_pending_responses()
