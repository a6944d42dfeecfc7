"""SNS, where the end-of-run message goes: the client, and its errors as the package's own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import NotificationFailed
from .clients import max_attempts


def sns_client(session: Any = None, *, endpoint_url: str | None = None) -> Any:
    """An SNS client retried as the S3 client is (AWS_MAX_ATTEMPTS)."""
    session = session or boto3.session.Session()
    kwargs = {"endpoint_url": endpoint_url} if endpoint_url else {}
    config = Config(retries={"mode": "standard", "total_max_attempts": max_attempts()})
    return session.client("sns", config=config, **kwargs)


def publish(sns: Any, topic_arn: str, subject: str, message: str, attributes: Mapping[str, Any]) -> str | None:
    """Publish one message and return its id. Publishing happens after the run committed, so its failure must
    not read as the run's: botocore's errors become NotificationFailed, naming the topic."""
    try:
        response = sns.publish(TopicArn=topic_arn, Subject=subject, Message=message, MessageAttributes=dict(attributes))
    except (ClientError, BotoCoreError) as err:
        raise NotificationFailed(f"could not publish to {topic_arn}: {type(err).__name__}: {err}") from err
    return response.get("MessageId")
