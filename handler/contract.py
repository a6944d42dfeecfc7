"""The steps of a run as the Lambda contract names them: one table that the Lambda, the local pool and the state
machine's builder all read (docs/lambda-contract.md).

Each step is named once here, with the event fields it takes and the unit its Map hands it (a shard, a batch).
Reading an event is pure and happens before anything else, so a malformed or misspelt field fails the step
before it takes a lock or stores a plan. This module does no I/O: infra/ builds the state machine from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date as Date
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .config import parse_run_date
from .errors import ConfigError
from .naming import did_you_mean
from .width import MAX_MAP_WIDTH, S3_WRITES_PER_SECOND

_WIDTH_DEFAULTS = (("max_copy_width", MAX_MAP_WIDTH), ("s3_writes_per_second", S3_WRITES_PER_SECOND))
WIDTH_FIELDS = tuple(name for name, _ in _WIDTH_DEFAULTS)
"""What the state machine tells plan and seal_plan about the stack, so their answer's `copy_width` fits it: the
widest its copy Map may run (`mapConcurrency`, which the function's reserved concurrency is sized to) and the S3
write rate the copies are sized to (`s3WritesPerSecond`)."""


@dataclass(frozen=True)
class Step:
    """One step of the contract: its action, the fields its event may carry, and for a step that a Map runs per
    item, the field naming its unit and the list the unit numbers come from."""

    action: str | None
    """None: the one-shot run (an event without an action plans, copies and finalizes in one invocation)."""
    fields: frozenset[str]
    unit: str | None = None
    listed_in: str = ""
    sized: bool = False
    """The answer carries the copy Map's width (`copy_width`, handler/width.py)."""

    @property
    def kind(self) -> str:
        return f"a {self.action} event" if self.action else "a one-shot event"


def _step(action: str | None, *fields: str, unit: str | None = None, listed_in: str = "", sized: bool = False) -> Step:
    sizing = WIDTH_FIELDS if sized else ()
    named = ("action", "dataset", *fields, *((unit,) if unit else ()), *sizing)
    return Step(action, frozenset(named), unit, listed_in, sized)


RUN = _step(None, "date", "scheduled_time")
PLAN = _step("plan", "date", "scheduled_time", "execution", sized=True)
PLAN_SHARD = _step("plan_shard", "run_id", "execution", unit="shard", listed_in="shards-NNN.json")
SEAL_PLAN = _step("seal_plan", "run_id", "execution", sized=True)
COPY_BATCH = _step("copy_batch", "run_id", "execution", unit="batch", listed_in="batches.json")
FINALIZE_SHARD = _step("finalize_shard", "run_id", "execution", unit="shard", listed_in="final-shards.json")
FINALIZE = _step("finalize", "run_id", "execution")
RELEASE = _step("release", "run_id", "execution")
SEND_LINEAGE = _step("send_lineage", "run_id", "date", "execution")
"""After a run's commit, only in a stack with a lineage destination: deliver the run's OpenLineage events."""

STEPS: dict[str, Step] = {
    step.action: step
    for step in (PLAN, PLAN_SHARD, SEAL_PLAN, COPY_BATCH, FINALIZE_SHARD, FINALIZE, RELEASE, SEND_LINEAGE)
    if step.action
}
"""The state machine's steps by action, in the order a run takes them."""
ACTIONS = tuple(STEPS)


@dataclass(frozen=True)
class StepRequest:
    """An event read and checked: what a step is asked to do."""

    step: Step
    dataset: str
    run_id: str | None = None
    unit: int | None = None
    date: Date | None = None
    scheduled: datetime | None = None
    execution: str | None = None
    max_copy_width: int = MAX_MAP_WIDTH
    s3_writes_per_second: int = S3_WRITES_PER_SECOND

    def night(self, timezone: str) -> Date | None:
        """The night the event names: its `date`, or the date of its `scheduled_time` in the dataset's time zone
        (the schedule's own time, so a retried or late execution near midnight lands under the night it was
        scheduled for). Neither means today."""
        if self.scheduled is not None:
            return self.scheduled.astimezone(ZoneInfo(timezone)).date()
        return self.date


def read_event(event: Any, request_id: str | None = None) -> StepRequest:
    """The request an event makes, or ConfigError naming every field that is wrong. `request_id` is the Lambda
    request of a one-shot invocation: the execution it works for (an asynchronous invocation that Lambda retries
    keeps its request id)."""
    if not isinstance(event, Mapping):
        got = "null" if event is None else type(event).__name__
        raise ConfigError(f'the event must be a JSON object like {{"dataset": "<name>"}}, got {got}')
    dataset = event.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        raise ConfigError('the event must name a dataset: {"dataset": "<name>"}')
    action = event.get("action")
    if action is not None and action not in STEPS:
        raise ConfigError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)} or none (one-shot run)")
    step = STEPS[action] if action is not None else RUN
    unknown = [str(key) for key in event if key not in step.fields]
    if unknown:
        raise ConfigError(
            [
                f"event field {key!r}: unknown field{did_you_mean(key, step.fields, f'fields {step.kind} takes')}"
                for key in unknown
            ]
        )
    fields = _Fields(event, action)
    if step is RUN:
        execution = f"lambda-request:{request_id}" if isinstance(request_id, str) and request_id else None
    else:
        execution = fields.optional("execution")
    # In the order the fields were always read, so an event with two mistakes is told the same first one.
    widths = [fields.positive(name, default) for name, default in _WIDTH_DEFAULTS] if step.sized else []
    if step is RELEASE and event.get("run_id") is None and event.get("execution") is None:
        raise ConfigError("the release event needs 'execution' (or 'run_id'): whose lock to release")
    run_id = (
        fields.optional("run_id") if step is RELEASE else fields.required("run_id") if "run_id" in step.fields else None
    )
    unit = fields.number(step.unit, step.listed_in) if step.unit else None
    date, scheduled = fields.night() if "date" in step.fields else (None, None)
    return StepRequest(step, dataset, run_id, unit, date, scheduled, execution, *widths)


@dataclass(frozen=True)
class _Fields:
    """An event's fields read one by one, each refused with the field's name and what it must be."""

    event: Mapping[str, Any]
    action: str | None

    def number(self, field: str, listed_in: str) -> int:
        """A batch or shard number, 0 or more. `true` is not batch 1 and `1.5` is not batch 1: both are refused,
        as is anything but a whole number or a string of ASCII digits (what a hand-written event may hold)."""
        value = self.event.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        raise ConfigError(
            f"the {self.action} event's {field!r} must be a {field} number (0, 1, ...) from {listed_in}, got {value!r}"
        )

    def positive(self, field: str, default: int) -> int:
        value = self.event.get(field)
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise ConfigError(f"the {self.action} event's {field!r} must be a whole number of 1 or more, got {value!r}")

    def optional(self, field: str) -> str | None:
        value = self.event.get(field)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"the {self.action} event's {field!r} must be a non-empty string, got {value!r}")
        return value

    def required(self, field: str) -> str:
        value = self.event.get(field)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"the {self.action} event needs {field!r}")
        return value

    def night(self) -> tuple[Date | None, datetime | None]:
        """The event's `date` or `scheduled_time` (one or the other; `""` or `false` is a mistake, not today)."""
        value, scheduled = self.event.get("date"), self.event.get("scheduled_time")
        if value is not None and scheduled is not None:
            raise ConfigError("the event gives both 'date' and 'scheduled_time'; give one or the other")
        if scheduled is not None:
            try:
                return None, parse_scheduled_time(scheduled)
            except ValueError as err:
                raise ConfigError(f"event scheduled_time {scheduled!r}: {err}") from err
        if value is None:
            return None, None
        try:
            return parse_run_date(value), None
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


BRIEF_SUMMARY_DROPS = ("manifest_parts", "failures", "schema_drift_files")
"""What a step's answer leaves out of a committed run's summary: the lists that grow with the run (a manifest part a
shard, ten failures whose reasons may name several 1 KiB keys, ten drifted files). Step Functions fails a task whose
result passes 256 KiB with States.DataLimitExceeded, which no Catch takes; the ledger's summary keeps them, and the
notification beside the summary lists the failures and the drifted files."""


def state_machine_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """A step's answer as the state machine receives it: a committed run's summary without its growing lists."""
    summary = answer.get("summary")
    if not summary:
        return answer
    return dict(answer, summary={k: v for k, v in summary.items() if k not in BRIEF_SUMMARY_DROPS})
