"""Lambda entry point: one function, the event's `action` picks the step (handler/contract.py,
docs/lambda-contract.md).

Errors are raised, not returned, so Step Functions sees their class name as `Error` and its Retry and
Catch rules apply (`RunInProgress`, `LockLost`, `ConfigError`, ...).
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from .configfile import load_config, location_from_env
from .contract import StepRequest, read_event, state_machine_answer
from .errors import environment_error
from .metrics import emit_committed
from .notify import announce
from .partitions import catalog_for
from .records import OneShotAnswer, RunSummary
from .steps import Job
from .steps.table import run_step
from .store import Store
from .store.glue import glue_client
from .store.sdk import loaded_sdk, require_botocore
from .store.topic import sns_client
from .width import copy_width, function_memory_mb

logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
log = logging.getLogger(__name__)
log.info("sdk: %s", loaded_sdk())  # once per execution environment: the cold start


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    # The runtime's own botocore must know the conditional writes (sdk.py). Checked here rather than at import,
    # so the invocation fails with errorType SdkTooOld, which the state machine does not retry, instead of as an
    # init error; it costs a few microseconds.
    require_botocore()
    request = read_event(event, getattr(context, "aws_request_id", None))
    location = location_from_env(request.dataset)
    dataset = load_config(location, lambda: _s3(1)).dataset(request.dataset)
    store = _s3(dataset.concurrency)
    what = f"dataset={dataset.name} action={request.step.action or 'run'}"
    log.info(what)
    before = store.retry_counts()  # the client outlives the invocation (warm containers): this invocation's share
    try:
        catalog = catalog_for(dataset, _glue)
        return _answer(Job.of(store, dataset, execution=request.execution, catalog=catalog), request)
    except Exception as err:
        # The function's own machine (a full /tmp, too few descriptors) is named as such, not as S3's or a bug's.
        local = environment_error(err)
        if local is None or local is err:
            raise
        raise local from err
    finally:
        store.log_retries(what, since=before)


def _answer(job: Job, request: StepRequest) -> dict[str, Any]:
    """Run the step, then what the function adds: EMF metrics of the runs it committed (plan and seal_plan commit
    a run that had nothing to copy, finalize the rest), the copy Map's width, and a one-shot run's notification
    (the state machine publishes its own)."""
    record = run_step(job, request)
    if isinstance(record, OneShotAnswer):
        emit_committed(record.summaries)

        def warn(reason: str) -> None:
            # The run is committed; raising now would make Lambda report (and retry) a run that succeeded.
            log.warning("dataset=%s run=%s committed, but %s", job.dataset.name, record.summaries[-1].run_id, reason)

        return {**record.to_json(), **announce(list(record.summaries), job.dataset.topic_arn, sns_client, warn)}
    answer = record.to_json()
    if request.step.sized:
        answer["copy_width"] = copy_width(
            job.dataset.concurrency,
            function_memory_mb(),
            cap=request.max_copy_width,
            writes_per_second=request.s3_writes_per_second,
        )
    if answer.get("summary"):
        emit_committed([RunSummary.from_json(answer["summary"])])
    return state_machine_answer(answer)


@functools.lru_cache(maxsize=8)
def _s3(concurrency: int) -> Store:
    """One store per pool size per container: a warm Lambda reuses its connections across invocations."""
    return Store.sized(concurrency=concurrency)


@functools.lru_cache(maxsize=1)
def _glue() -> Any:
    """One Glue client per container, made at the first commit that registers partitions."""
    return glue_client()
