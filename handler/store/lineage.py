"""The AWS services a run's lineage delivery calls: the API key's store (Secrets Manager or SSM Parameter Store) and
Amazon DataZone's PostLineageEvent. Their clients, and their errors as the package's own (`LineageDeliveryFailed`,
naming the service and the error code, never the key's value)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import LineageDeliveryFailed
from .clients import max_attempts

Clients = Callable[[str], Any]
"""service name -> its client; the caller makes them (tests hand in stubs)."""

KEY_CACHE_SECONDS = 300.0
"""How long a warm function reuses the key it read: one read per container and five minutes, so a rotated key is
picked up within five minutes without a read on every delivery."""
_keys: dict[tuple[str, str], tuple[float, str]] = {}


def aws_client(service: str, session: Any = None) -> Any:
    """A client of `service` retried as the S3 client is (AWS_MAX_ATTEMPTS)."""
    session = session or boto3.session.Session()
    return session.client(service, config=Config(retries={"mode": "standard", "total_max_attempts": max_attempts()}))


def api_key(secret: tuple[str, str], clients: Clients, *, now: Callable[[], float] = time.monotonic) -> str:
    """The API key kept in `secret` (("secretsmanager", secret id) or ("ssm", parameter name)), read when a delivery
    needs it. A secret's value is the key itself, or a JSON object holding it as `apiKey`."""
    cached = _keys.get(secret)
    if cached is not None and now() - cached[0] < KEY_CACHE_SECONDS:
        return cached[1]
    service, name = secret
    try:
        if service == "secretsmanager":
            value = clients(service).get_secret_value(SecretId=name)["SecretString"]
        else:
            value = clients(service).get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except (ClientError, BotoCoreError, KeyError) as err:
        raise LineageDeliveryFailed(
            f"could not read the lineage API key from {service} {name!r}: {_why(err)}"
        ) from None
    key = _key_of(value)
    _keys[secret] = (now(), key)
    return key


def _key_of(value: str) -> str:
    try:
        document = json.loads(value)
    except json.JSONDecodeError:
        return value.strip()
    if isinstance(document, dict) and isinstance(document.get("apiKey"), str):
        return document["apiKey"]
    return value.strip()


def client_token(event: dict[str, Any]) -> str:
    """PostLineageEvent's idempotency token of an event: its run's UUID and its type, so a repeated delivery of
    one event is the same request to DataZone (1-128 printable ASCII characters, as the API requires)."""
    return f"{event['run']['runId']}-{event['eventType']}"


def post_to_datazone(client: Any, domain: str, events: Iterable[dict[str, Any]]) -> int:
    """PostLineageEvent for each event (the body is the event's JSON); returns how many DataZone accepted."""
    sent = 0
    for event in events:
        try:
            client.post_lineage_event(
                domainIdentifier=domain, event=json.dumps(event).encode("utf-8"), clientToken=client_token(event)
            )
        except (ClientError, BotoCoreError) as err:
            raise LineageDeliveryFailed(
                f"Amazon DataZone domain {domain} refused a {event['eventType']} event: {_why(err)}"
            ) from None
        sent += 1
    return sent


def _why(err: BaseException) -> str:
    """The error's code (and message from AWS), never a request's content."""
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return type(err).__name__
