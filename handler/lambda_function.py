"""Lambda entry point: one function, the event's `action` picks the step (handler/contract.py,
docs/lambda-contract.md).

Errors are raised, not returned, so Step Functions sees their class name as `Error` and its Retry and
Catch rules apply (`RunInProgress`, `LockLost`, `ConfigError`, ...).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from .clients import s3_client, sns_client
from .configfile import load_config, location_from_env
from .contract import RUN, StepRequest, read_event
from .errors import environment_error
from .metrics import NAMESPACE_ENV, emit
from .notify import announce
from .records import RunSummary
from .retries import log_report, report
from .runner import one_shot, one_shot_answer
from .sdk import loaded_sdk, require_botocore
from .steps import Job
from .steps.table import run_step
from .width import ONE_VCPU_MB, copy_width

logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
log = logging.getLogger(__name__)
log.info("sdk: %s", loaded_sdk())  # once per execution environment: the cold start


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    # The runtime's own botocore must know the conditional writes (sdk.py). Checked here rather than at import,
    # so the invocation fails with errorType SdkTooOld, which the state machine does not retry, instead of as an
    # init error; it costs a few microseconds.
    require_botocore()
    request = read_event(event, getattr(context, "aws_request_id", None))
    dataset = load_config(location_from_env(request.dataset), lambda: _s3(1)).dataset(request.dataset)
    s3 = _s3(dataset.concurrency)
    job = Job.of(s3, dataset, execution=request.execution)
    what = f"dataset={dataset.name} action={request.step.action or 'run'}"
    log.info(what)
    before = report(s3)  # the client outlives the invocation (warm containers): this invocation's share
    try:
        return _one_shot(job, request) if request.step is RUN else _step(job, request)
    except Exception as err:
        # The function's own machine (a full /tmp, too few descriptors) is named as such, not as S3's or a bug's.
        local = environment_error(err)
        if local is None or local is err:
            raise
        raise local from err
    finally:
        log_report(s3, what, since=before)


def _step(job: Job, request: StepRequest) -> dict[str, Any]:
    """One step of the state machine; plan and seal_plan commit a run that had nothing to copy, finalize the rest."""
    answer = run_step(job, request).to_json()
    if request.step.sized:
        answer["copy_width"] = _copy_width(request, job.dataset.concurrency)
    if answer.get("summary"):
        _emit_metrics([RunSummary.from_json(answer["summary"])])
    return state_machine_answer(answer)


def _one_shot(job: Job, request: StepRequest) -> dict[str, Any]:
    """Every step in this invocation (a schedule without the state machine), then the one notification."""
    summaries = one_shot(job, request.night(job.dataset.timezone))
    _emit_metrics(summaries)

    def warn(reason: str) -> None:
        # The run is committed; raising now would make Lambda report (and retry) a run that succeeded.
        log.warning("dataset=%s run=%s committed, but %s", job.dataset.name, summaries[-1].run_id, reason)

    return {**one_shot_answer(summaries), **announce(summaries, job.dataset.topic_arn, sns_client, warn)}


def _copy_width(request: StepRequest, concurrency: int) -> int:
    """The copy Map's width for this dataset (handler/width.py), within what the event says the stack allows."""
    memory = os.environ.get(MEMORY_ENV, "")
    return copy_width(
        concurrency,
        int(memory) if memory.isdigit() and int(memory) > 0 else ONE_VCPU_MB,
        cap=request.max_copy_width,
        writes_per_second=request.s3_writes_per_second,
    )


MEMORY_ENV = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
"""Set by Lambda to the function's memory in MB, which sets its CPU share (handler/width.py)."""


BRIEF_SUMMARY_DROPS = ("manifest_parts", "failures")
"""What a step's answer leaves out of a committed run's summary: the lists that grow with the run (a manifest part a
shard, ten failures whose reasons may name several 1 KiB keys). Step Functions fails a task whose result passes
256 KiB with States.DataLimitExceeded, which no Catch takes; the ledger's summary keeps both, and the notification
beside the summary lists the failures."""


def state_machine_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """A step's answer as the state machine receives it: a committed run's summary without its growing lists."""
    summary = answer.get("summary")
    if not summary:
        return answer
    return dict(answer, summary={k: v for k, v in summary.items() if k not in BRIEF_SUMMARY_DROPS})


def _emit_metrics(summaries: list[RunSummary]) -> None:
    """EMF lines for committed runs, when the stack named a namespace (a local run has none to write to)."""
    namespace = os.environ.get(NAMESPACE_ENV)
    if namespace:
        emit(summaries, namespace, datetime.now(UTC), _stdout)


def _stdout(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


@functools.lru_cache(maxsize=8)
def _s3(concurrency: int) -> Any:
    """One client per pool size per container: a warm Lambda reuses its connections across invocations."""
    return s3_client(concurrency=concurrency)
