"""Lambda entry point: one function, the event's `action` picks the step (see docs/lambda-contract.md).

Errors are raised, not returned, so Step Functions sees their class name as `Error` and its Retry and
Catch rules apply (`RunInProgress`, `LockLost`, `ConfigError`, ...).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from datetime import date as Date
from typing import Any
from zoneinfo import ZoneInfo

from .config import did_you_mean, parse_run_date
from .configfile import load_config, location_from_env
from .errors import ConfigError, NotificationFailed, environment_error
from .metrics import NAMESPACE_ENV, emit
from .notify import publish_all
from .records import RunSummary
from .runner import Engine, one_shot, one_shot_answer
from .store import Store
from .store.sdk import loaded_sdk, require_botocore
from .store.topic import sns_client
from .width import MAX_MAP_WIDTH, ONE_VCPU_MB, S3_WRITES_PER_SECOND, copy_width

logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
log = logging.getLogger(__name__)
log.info("sdk: %s", loaded_sdk())  # once per execution environment: the cold start

WIDTH_FIELDS = ("max_copy_width", "s3_writes_per_second")
"""What the state machine tells plan and seal_plan about the stack, so their answer's `copy_width` fits it: the
widest its copy Map may run (`mapConcurrency`, which the function's reserved concurrency is sized to) and the S3
write rate the copies are sized to (`s3WritesPerSecond`)."""
SIZED_ACTIONS = ("plan", "seal_plan")
"""The steps whose answer the copy Map's width is read from (`copy_width`, docs/lambda-contract.md)."""
MEMORY_ENV = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
"""Set by Lambda to the function's memory in MB, which sets its CPU share (handler/width.py)."""

ACTIONS = ("plan", "plan_shard", "seal_plan", "copy_batch", "finalize_shard", "finalize", "release")
EVENT_FIELDS: dict[str | None, frozenset[str]] = {
    None: frozenset({"action", "dataset", "date", "scheduled_time"}),
    "plan": frozenset({"action", "dataset", "date", "scheduled_time", "execution", *WIDTH_FIELDS}),
    "plan_shard": frozenset({"action", "dataset", "run_id", "shard", "execution"}),
    "seal_plan": frozenset({"action", "dataset", "run_id", "execution", *WIDTH_FIELDS}),
    "copy_batch": frozenset({"action", "dataset", "run_id", "batch", "execution"}),
    "finalize_shard": frozenset({"action", "dataset", "run_id", "shard", "execution"}),
    "finalize": frozenset({"action", "dataset", "run_id", "execution"}),
    "release": frozenset({"action", "dataset", "run_id", "execution"}),
}
"""The fields each event may carry (docs/lambda-contract.md). Anything else is refused: a misspelt optional
field (`datee`) would otherwise be ignored and the run would quietly use today's date."""


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    # The runtime's own botocore must know the conditional writes (sdk.py). Checked here rather than at import,
    # so the invocation fails with errorType SdkTooOld, which the state machine does not retry, instead of as an
    # init error; it costs a few microseconds.
    require_botocore()
    dataset_name, action = _check_event(event)
    config = load_config(location_from_env(dataset_name), lambda: _s3(1))
    dataset = config.dataset(dataset_name)
    store = _s3(dataset.concurrency)
    engine = Engine(store, dataset, execution=_execution(event, action, context))
    log.info("dataset=%s action=%s", dataset_name, action or "run")
    before = store.retry_counts()  # the client outlives the invocation (warm containers): this invocation's share
    try:
        return _handle(engine, event, action)
    except Exception as err:
        # The function's own machine (a full /tmp, too few descriptors) is named as such, not as S3's or a bug's.
        local = environment_error(err)
        if local is None or local is err:
            raise
        raise local from err
    finally:
        store.log_retries(f"dataset={dataset_name} action={action or 'run'}", since=before)


def _handle(engine: Engine, event: Mapping[str, Any], action: str | None) -> dict[str, Any]:
    dataset = engine.dataset
    if action is not None:
        # Read before the step runs, so a malformed field fails the step before it takes a lock or stores a plan.
        width = _copy_width(event, dataset.concurrency) if action in SIZED_ACTIONS else None
        answer = _STEPS[action](engine, event)
        if width is not None:
            answer["copy_width"] = width
        # plan and seal_plan commit a run that had nothing to copy; finalize commits the rest.
        if answer.get("summary"):
            _emit_metrics([RunSummary.from_json(answer["summary"])])
        return state_machine_answer(answer)

    summaries = one_shot(engine.job, _date(event, dataset.timezone))
    answer = one_shot_answer(summaries)
    _emit_metrics(summaries)
    topic = dataset.topic_arn or os.environ.get("SNS_TOPIC_ARN")
    if topic:
        try:
            publish_all(sns_client(), topic, summaries)
        except NotificationFailed as err:
            # The run is committed; raising now would make Lambda report (and retry) a run that succeeded.
            log.warning("dataset=%s run=%s committed, but %s", dataset.name, answer["run_id"], err)
            answer["notification_error"] = str(err)
    return answer


_STEPS: dict[str, Callable[[Engine, Mapping[str, Any]], dict[str, Any]]] = {
    "plan": lambda engine, event: engine.plan(_date(event, engine.dataset.timezone)),
    "plan_shard": lambda engine, event: engine.plan_shard(
        _required(event, "run_id"), _number(event, "shard", "shards-NNN.json")
    ),
    "seal_plan": lambda engine, event: engine.seal_plan(_required(event, "run_id")),
    "copy_batch": lambda engine, event: engine.copy_batch(
        _required(event, "run_id"), _number(event, "batch", "batches.json")
    ),
    "finalize_shard": lambda engine, event: engine.finalize_shard(
        _required(event, "run_id"), _number(event, "shard", "final-shards.json")
    ),
    "finalize": lambda engine, event: engine.finalize(_required(event, "run_id")),
    "release": lambda engine, event: engine.release(_release_target(event)),
}
assert set(_STEPS) == set(ACTIONS)


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


def _check_event(event: Any) -> tuple[str, str | None]:
    """The event's dataset and action, or ConfigError saying what is wrong with its shape."""
    if not isinstance(event, Mapping):
        got = "null" if event is None else type(event).__name__
        raise ConfigError(f'the event must be a JSON object like {{"dataset": "<name>"}}, got {got}')
    dataset_name = event.get("dataset")
    if not isinstance(dataset_name, str) or not dataset_name:
        raise ConfigError('the event must name a dataset: {"dataset": "<name>"}')
    action = event.get("action")
    if action is not None and action not in ACTIONS:
        raise ConfigError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)} or none (one-shot run)")
    allowed = EVENT_FIELDS[action]
    unknown = [str(key) for key in event if key not in allowed]
    if unknown:
        kind = f"a {action} event" if action else "a one-shot event"
        raise ConfigError(
            [
                f"event field {key!r}: unknown field{did_you_mean(key, allowed, f'fields {kind} takes')}"
                for key in unknown
            ]
        )
    return dataset_name, action


def _number(event: Mapping[str, Any], field: str, listed_in: str) -> int:
    """A batch or shard number, 0 or more. `true` is not batch 1 and `1.5` is not batch 1: both are refused, as
    is anything but a whole number or a string of ASCII digits (what a hand-written event may hold)."""
    value = event.get(field)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise ConfigError(
        f"the {event.get('action')} event's {field!r} must be a {field} number (0, 1, ...) from {listed_in}, "
        f"got {value!r}"
    )


def _copy_width(event: Mapping[str, Any], concurrency: int) -> int:
    """The copy Map's width for this dataset (handler/width.py), within what the event says the stack allows."""
    memory = os.environ.get(MEMORY_ENV, "")
    return copy_width(
        concurrency,
        int(memory) if memory.isdigit() and int(memory) > 0 else ONE_VCPU_MB,
        cap=_positive(event, "max_copy_width", MAX_MAP_WIDTH),
        writes_per_second=_positive(event, "s3_writes_per_second", S3_WRITES_PER_SECOND),
    )


def _positive(event: Mapping[str, Any], field: str, default: int) -> int:
    value = event.get(field)
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ConfigError(f"the {event.get('action')} event's {field!r} must be a whole number of 1 or more, got {value!r}")


@functools.lru_cache(maxsize=8)
def _s3(concurrency: int) -> Store:
    """One store per pool size per container: a warm Lambda reuses its connections across invocations."""
    return Store.sized(concurrency=concurrency)


def _date(event: Mapping[str, Any], timezone: str) -> Date | None:
    """The night the event names: its `date`, or the date of its `scheduled_time` in the dataset's time zone (the
    schedule's own time, so a retried or late execution near midnight lands under the night it was scheduled
    for). Neither means today; `""` or `false` is a mistake, not "today"."""
    value, scheduled = event.get("date"), event.get("scheduled_time")
    if value is not None and scheduled is not None:
        raise ConfigError("the event gives both 'date' and 'scheduled_time'; give one or the other")
    if scheduled is not None:
        try:
            moment = parse_scheduled_time(scheduled)
        except ValueError as err:
            raise ConfigError(f"event scheduled_time {scheduled!r}: {err}") from err
        return moment.astimezone(ZoneInfo(timezone)).date()
    if value is None:
        return None
    try:
        return parse_run_date(value)
    except ValueError as err:
        raise ConfigError(f"event date {value!r} is not YYYY-MM-DD") from err


def parse_scheduled_time(text: Any) -> datetime:
    """EventBridge Scheduler's `<aws.scheduler.scheduled-time>`: UTC, `2022-03-22T18:59:43Z`. Only that form (an
    offset-less time would be read in the machine's zone)."""
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", text):
        raise ValueError("expected the scheduler's UTC time, like 2026-11-27T20:00:00Z")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("no such time") from None


def _execution(event: Mapping[str, Any], action: str | None, context: Any) -> str | None:
    """Who the invocation works for: the Step Functions execution the event names, or for a one-shot invocation
    its Lambda request (an asynchronous invocation that Lambda retries keeps its request id)."""
    if action is not None:
        return _optional(event, "execution")
    request = getattr(context, "aws_request_id", None)
    return f"lambda-request:{request}" if isinstance(request, str) and request else None


def _release_target(event: Mapping[str, Any]) -> str | None:
    """A release names the execution whose lock to hand back, or the run (an older event); one is needed."""
    run_id = _optional(event, "run_id")
    if run_id is None and event.get("execution") is None:
        raise ConfigError("the release event needs 'execution' (or 'run_id'): whose lock to release")
    return run_id


def _optional(event: Mapping[str, Any], field: str) -> str | None:
    value = event.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"the {event.get('action')} event's {field!r} must be a non-empty string, got {value!r}")
    return value


def _required(event: Mapping[str, Any], field: str) -> str:
    value = event.get(field)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"the {event.get('action')} event needs {field!r}")
    return value
