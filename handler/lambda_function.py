"""Lambda entry point: one function, the event's `action` picks the step (see docs/lambda-contract.md).

Errors are raised, not returned, so Step Functions sees their class name as `Error` and its Retry and
Catch rules apply (`RunInProgress`, `LockLost`, `ConfigError`, ...).
"""

from __future__ import annotations

import functools
import logging
import os
from datetime import date as Date
from typing import Any

from .clients import s3_client, sns_client
from .configfile import load_config, location_from_env
from .errors import ConfigError
from .notify import publish_all
from .runner import Engine, one_shot, one_shot_answer

logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
log = logging.getLogger(__name__)

ACTIONS = ("plan", "copy_batch", "finalize")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    dataset_name = event.get("dataset")
    if not isinstance(dataset_name, str) or not dataset_name:
        raise ConfigError('the event must name a dataset: {"dataset": "<name>"}')
    action = event.get("action")
    if action is not None and action not in ACTIONS:
        raise ConfigError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)} or none (one-shot run)")

    config = load_config(location_from_env(dataset_name), lambda: _s3(1))
    dataset = config.dataset(dataset_name)
    engine = Engine(_s3(dataset.concurrency), dataset)
    log.info("dataset=%s action=%s", dataset_name, action or "run")

    if action == "plan":
        return engine.plan(_date(event))
    if action == "copy_batch":
        try:
            batch = int(event["batch"])
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError("the copy_batch event needs 'batch', a batch number from batches.json") from err
        return engine.copy_batch(_required(event, "run_id"), batch)
    if action == "finalize":
        return engine.finalize(_required(event, "run_id"))

    summaries = one_shot(engine.job, _date(event))
    topic = dataset.topic_arn or os.environ.get("SNS_TOPIC_ARN")
    if topic:
        publish_all(sns_client(), topic, summaries)
    return one_shot_answer(summaries)


@functools.lru_cache(maxsize=8)
def _s3(concurrency: int) -> Any:
    """One client per pool size per container: a warm Lambda reuses its connections across invocations."""
    return s3_client(concurrency=concurrency)


def _date(event: dict[str, Any]) -> Date | None:
    value = event.get("date")
    if not value:
        return None
    try:
        return Date.fromisoformat(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"event date {value!r} is not YYYY-MM-DD") from err


def _required(event: dict[str, Any], field: str) -> str:
    value = event.get(field)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"the {event.get('action')} event needs {field!r}")
    return value
