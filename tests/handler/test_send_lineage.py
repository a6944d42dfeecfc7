"""The `send_lineage` step on its own: a committed run's stored events delivered with a key read from SSM or
Secrets Manager (moto), every failure a warning that never names the key, and the destination read back from the
function's environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from handler.errors import ConfigError
from handler.lineage_destination import ENV, LineageDestination
from handler.runner import Engine
from handler.steps import Job
from handler.steps.send_lineage import send_lineage
from handler.store import Store
from handler.store import lineage as edge
from tests.conftest import REGION, dataset_config
from tests.lineage_backend import LineageBackend

KEY = "k-secret-123"


@pytest.fixture(autouse=True)
def fresh_key_cache() -> Iterator[None]:
    edge._keys.clear()
    yield
    edge._keys.clear()


def committed(s3: Any, buckets: tuple[str, str]) -> tuple[Job, dict[str, Any]]:
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"a,b\n1,2\n")
    dataset = dataset_config(source, raw)
    (summary,) = Engine(Store(s3), dataset).run()
    return Job.of(Store(s3), dataset), summary


def clients(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def test_a_key_in_an_ssm_secure_string_is_read_at_delivery_and_sent_as_bearer(
    s3: Any, buckets: tuple[str, str], lineage_backend: LineageBackend
) -> None:
    boto3.client("ssm", region_name=REGION).put_parameter(Name="/lineage/key", Value=KEY, Type="SecureString")
    job, summary = committed(s3, buckets)
    destination = LineageDestination(url=lineage_backend.url, api_key_parameter="/lineage/key")

    answer = send_lineage(job, summary["run_id"], summary["date"], destination, clients)

    assert (answer.events, answer.sent, answer.warning) == (2, 2, None)
    assert lineage_backend.authorization == [f"Bearer {KEY}"] * 2
    assert [e["eventType"] for e in lineage_backend.events] == ["START", "COMPLETE"]
    # Without a date (an older state machine's event) the run's night is found from its summary.
    assert send_lineage(job, summary["run_id"], None, destination, clients).sent == 2


def test_a_secret_that_cannot_be_read_or_a_refusing_backend_is_a_warning_without_the_key(
    s3: Any, buckets: tuple[str, str], lineage_backend: LineageBackend
) -> None:
    job, summary = committed(s3, buckets)
    missing = LineageDestination(url=lineage_backend.url, api_key_secret="lineage/nope")

    answer = send_lineage(job, summary["run_id"], summary["date"], missing, clients)

    assert (
        answer.sent == 0
        and "lineage/nope" in str(answer.warning)
        and "ResourceNotFoundException" in str(answer.warning)
    )
    assert lineage_backend.events == []

    boto3.client("secretsmanager", region_name=REGION).create_secret(Name="lineage/key", SecretString=KEY)
    lineage_backend.status = 401
    refused = send_lineage(
        job,
        summary["run_id"],
        summary["date"],
        LineageDestination(lineage_backend.url, api_key_secret="lineage/key"),
        clients,
    )
    assert refused.sent == 0 and "answered 401" in str(refused.warning) and KEY not in json.dumps(refused.to_json())


def test_no_destination_or_no_events_is_a_warning_not_an_error(s3: Any, buckets: tuple[str, str]) -> None:
    job, summary = committed(s3, buckets)

    assert "no lineage destination" in str(send_lineage(job, summary["run_id"], summary["date"]).warning)
    answer = send_lineage(job, "20200101T000000000Z-000000", "2020-01-01", LineageDestination("https://x.example"))
    assert answer.events == 0 and "has no lineage events" in str(answer.warning)


def test_the_destination_comes_back_from_the_environment_and_a_broken_one_is_named() -> None:
    destination = LineageDestination(datazone_domain="dzd_abc")
    assert LineageDestination.from_env({ENV: json.dumps(destination.to_document())}) == destination
    assert LineageDestination.from_env({}) is None
    with pytest.raises(ConfigError, match=r"\$LINEAGE_DESTINATION is not JSON"):
        LineageDestination.from_env({ENV: "{"})
    with pytest.raises(ConfigError, match=r"\$LINEAGE_DESTINATION.url: .* must be https://"):
        LineageDestination.from_env({ENV: json.dumps({"url": "http://marquez.example.com"})})


def test_a_datazone_client_token_is_printable_ascii_within_128_and_one_per_run_and_type() -> None:
    event = {"run": {"runId": "0b6c8a1e-6a55-5b7e-9d0e-4f5a3c2b1a00"}, "eventType": "COMPLETE"}
    token = edge.client_token(event)
    assert token == "0b6c8a1e-6a55-5b7e-9d0e-4f5a3c2b1a00-COMPLETE"
    assert 1 <= len(token) <= 128 and all(0x21 <= ord(c) <= 0x7E for c in token)
