"""The Step Functions fault campaign: the deployed definition in moto's interpreter, the real handler as its
Lambda, and the Lambda service's own faults injected at chosen steps (issue 21).

On AWS every Task of the state machine is delivered at least once, possibly twice at the same time: Lambda may
run an invocation whose answer is then lost, kill it part-way (a timeout, out of memory), throttle it, or run it
beside Step Functions' retry of it (../shared/notes/aws-lambda-step-functions.md). A trial runs one night
through the definition with such faults at one step, then runs the next execution with the faults gone, and
judges from what a reader can see (the buckets, the ledger files, the topic's messages, the executions' status)
whether the night was told truthfully and landed exactly once.

How a fault is made (everything else is the real handler against moto's S3):

- `lost`: the handler runs to its end; the Task then sees `Lambda.ServiceException` or
  `Lambda.SdkClientException`, the error the patched `LambdaBackend.invoke` raises as the Lambda API's answer.
  moto's interpreter calls Lambda through a boto3 client with `total_max_attempts: 1`, so the error reaches the
  Task as it is (never retried by botocore first) and is named `Lambda.<Error Code>`, as on AWS.
- `death`: the handler is killed after its k-th S3 write request (PutObject, CopyObject, DeleteObject,
  DeleteObjects, CompleteMultipartUpload), before that request is sent or after its answer came back
  (seeded), and the Task sees a function error `Lambda.Unknown` or `Sandbox.Timedout`. A death is a kill, not a
  freeze: from that moment no request of the dead invocation reaches S3, from any of its threads (its copy
  workers, its lock heartbeat), as when Lambda ends a sandbox that timed out. The kill is `Killed`, a
  BaseException raised from the invocation's botocore event hooks, so the handler's `except Exception` cannot
  swallow it, and every request of the dead invocation raises it again. A handler that makes fewer than k writes
  dies after its last one, before it answers (the latest a timeout can fall).
- `duplicate`: the handler runs twice at the same time on the same event, each in its own "sandbox" (its own
  S3 clients), the second a few milliseconds after the first; the Task gets the answer of a seeded one of the
  two, and the other runs on beside the following states until it ends (as the first attempt of a retried Task
  does on AWS). The trial waits for every invocation to end before it judges anything.
- `throttle`: `Lambda.TooManyRequestsException`, without running the handler, n times in a row for one step
  (n below the definition's retry budget for it, read from the definition).

Every invocation runs in a thread of its own with S3 clients of its own (taken from a pool, so a warm sandbox's
clients are reused as on AWS; a dead sandbox's are thrown away), and invocations run concurrently, as the Maps'
MaxConcurrency lets them. moto is patched where it differs from AWS in a way the trial depends on:

- its conditional PutObject (and copy, delete) checks and stores in two steps; S3's are atomic, so key writes are
  serialised (as tests/e2e/cli_fixtures.py does for its server). The same wrapper records every write that
  replaced a landed object with a different one (`overwritten:`).
- it ignores `ToleratedFailurePercentage` (a failed Map child fails silently): `honour_tolerated_failure` in
  tests/sfn_harness.py makes the Map fail with `States.ExceedToleratedFailureThreshold` as AWS does.

Environment: the same FAULT_TRIALS and FAULT_SEED as tests/faults/campaign.py.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaBackend
from moto.s3.models import s3_backends

from handler import lambda_function
from handler.store import Store
from infra.workflow_definition import RESERVED_ERROR_NAMES, build_definition
from tests.conftest import REGION, unique_bucket
from tests.faults.campaign import FULL, versions_in
from tests.faults.verifier import LEDGER_ROOT, overwritten, snapshot, verify
from tests.moto_patches import serialise_key_writes
from tests.sfn_harness import (
    ACCOUNT,
    DATASET,
    FUNCTION_ARN,
    LambdaContext,
    Notifications,
    StateMachine,
    configure_lambda,
    create_state_machine,
    function_error,
    honour_tolerated_failure,
    subscribed_topic,
)

NIGHT = "2026-05-11"
TEST_FILE = "tests/faults/test_sfn_campaign.py"
ACTIONS = ("plan", "plan_shard", "seal_plan", "copy_batch", "finalize_shard", "finalize", "release")
KINDS = ("lost", "death", "duplicate", "throttle")
WRITES = frozenset({"PutObject", "CopyObject", "DeleteObject", "DeleteObjects", "CompleteMultipartUpload"})
LOST_ERRORS = ("ServiceException", "SdkClientException")
DEATH_ERRORS = ("Lambda.Unknown", "Sandbox.Timedout")
FOLDERS = ("ml-a", "ml-b", "ml-c/sub", "ml-d")
SCRATCH = "zz-scratch"
SCRATCH_OBJECTS = 1001
"""A first run is cut into shards at the source's folders when the source holds more than a listing page (handler
/steps/plan.py `_discover`): a folder of scratch files the dataset excludes (`exclude: zz-scratch/*`) makes it so,
and each trial's Maps have five shards (the four folders and the scratch) and several batches."""
EXECUTION_TIMEOUT = 180.0
"""Only bounds a hung execution (a finding); no trial is judged by its speed."""
KILL_GRACE = 30.0
"""How long a killed handler may take to unwind (each of its requests raises at once) before it is left."""

WRITE_BOUND = {
    "plan": 12,
    "plan_shard": 5,
    "seal_plan": 5,
    "copy_batch": 10,
    "finalize_shard": 4,
    "finalize": 9,
    "release": 2,
}
"""k of a death is drawn from 1..this: about the number of S3 writes the action makes in a trial (measured on the
runtime of 2026-12-07; more writes than this are still made, fewer mean a death after the last one)."""


class Killed(BaseException):  # noqa: N818 - it is not an error of the handler's: the sandbox is gone
    """The Lambda sandbox running this invocation was ended (a timeout or an out-of-memory kill)."""


# ---- the faults -------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One fault, bound to the invocation it hits."""

    kind: str
    action: str
    error: str = ""
    """lost: the Lambda API error code; death: the errorType the Task sees."""
    kill_at: int = 0
    """death: the S3 write request the handler dies at (1-based)."""
    applied: bool = False
    """death: whether that request reached S3 (and was answered) before the death."""
    answer: int = 0
    """duplicate: which of the two runs the Task gets (0: the first started)."""
    stagger: float = 0.0
    """duplicate: how long after the first the second starts."""
    times: int = 1
    """throttle: how many invocations in a row are throttled."""
    nth: int = 1
    """throttle: which of those this invocation is."""

    def describe(self) -> str:
        if self.kind == "lost":
            return f"lost answer (Lambda.{self.error}) after the handler ran"
        if self.kind == "death":
            where = "after its answer came back" if self.applied else "before it was sent"
            return f"death ({self.error}) at S3 write #{self.kill_at}, {where}"
        if self.kind == "duplicate":
            return (
                f"duplicate: two runs {self.stagger * 1000:.0f} ms apart, the Task gets run #{self.answer + 1}'s answer"
            )
        if self.kind == "throttle":
            return f"throttled (Lambda.TooManyRequestsException), {self.nth} of {self.times} in a row"
        if self.kind == "poison":
            return f"poisoned: answers {self.error} without running, every attempt"
        return self.kind


def draw_fault(rng: random.Random, kind: str, action: str, budgets: dict[str, int]) -> Fault:
    """A seeded fault of `kind` for `action`; `budgets` maps an error name to the Task's retry budget for it."""
    if kind == "lost":
        return Fault(kind, action, error=rng.choice(LOST_ERRORS))
    if kind == "death":
        return Fault(
            kind,
            action,
            error=rng.choice(DEATH_ERRORS),
            kill_at=rng.randint(1, WRITE_BOUND[action]),
            applied=rng.random() < 0.5,
        )
    if kind == "duplicate":
        return Fault(kind, action, answer=rng.randint(0, 1), stagger=rng.uniform(0.0, 0.03))
    if kind == "throttle":
        budget = budgets.get("Lambda.TooManyRequestsException", 0)
        return Fault(kind, action, times=rng.randint(1, max(1, budget - 1)))
    raise ValueError(f"unknown fault kind {kind!r}")


def lambda_tasks(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Task state that invokes each action, found in the definition itself (Map children included)."""
    found: dict[str, dict[str, Any]] = {}

    def walk(states: dict[str, Any], item_action: str | None) -> None:
        requests = {
            s.get("ResultPath"): s["Parameters"]["action"]
            for s in states.values()
            if s.get("Type") == "Pass" and isinstance(s.get("Parameters"), dict) and "action" in s["Parameters"]
        }
        for state in states.values():
            if state.get("Type") == "Map":
                selector = state.get("ItemSelector") or {}
                processor = state.get("ItemProcessor") or state.get("Iterator") or {}
                walk(processor.get("States", {}), selector.get("action"))
            elif state.get("Type") == "Task" and "lambda:invoke" in str(state.get("Resource")):
                parameters = state.get("Parameters") or {}
                payload = parameters.get("Payload")
                if isinstance(payload, dict) and "action" in payload:
                    found[payload["action"]] = state
                elif parameters.get("Payload.$") == "$" and item_action:
                    found[item_action] = state
                elif parameters.get("Payload.$") in requests:
                    found[requests[parameters["Payload.$"]]] = state

    walk(definition["States"], None)
    return found


def retry_budget(task: dict[str, Any] | None, error: str) -> int:
    """How many retries the Task's first matching retrier allows for `error` (0: none matches)."""
    for retrier in (task or {}).get("Retry", []):
        names = retrier.get("ErrorEquals", [])
        if error in names or "States.ALL" in names or ("States.TaskFailed" in names and error != "States.Timeout"):
            return int(retrier.get("MaxAttempts", 3))
    return 0


# ---- the Lambda service -----------------------------------------------------------------------------------


_current = threading.local()
"""The HandlerRun the current thread works for (set in the thread that calls the handler)."""


@dataclass
class Slot:
    """A pooled store's binding to the invocation using it."""

    store: Store
    concurrency: int
    run: HandlerRun | None = None


class ClientPool:
    """S3 clients made by the runtime's own factory, one set per sandbox: a run takes clients that no running
    invocation holds, and gives them back when it ends, unless it died (a dead sandbox's clients are thrown away,
    and any request still made on them raises Killed)."""

    def __init__(self) -> None:
        self._session = boto3.session.Session()
        self._free: dict[int, list[Slot]] = {}
        self._guard = threading.Lock()

    def take(self, run: HandlerRun, concurrency: int) -> Any:
        with self._guard:
            free = self._free.setdefault(concurrency, [])
            slot = free.pop() if free else self._make(concurrency)
            slot.run = run
        run.slots.append(slot)
        return slot.store

    def give_back(self, run: HandlerRun) -> None:
        if run.dead:
            return
        with self._guard:
            for slot in run.slots:
                slot.run = None
                self._free.setdefault(slot.concurrency, []).append(slot)

    def _make(self, concurrency: int) -> Slot:
        store = Store.sized(self._session, concurrency=concurrency)
        client = store.client
        slot = Slot(store, concurrency)

        def before_call(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            if slot.run is not None:
                slot.run.before_call(model.name, params, context)

        def after_call(model: Any, context: dict[str, Any], http_response: Any = None, **_: Any) -> None:
            if slot.run is not None:
                slot.run.after_call(model.name, context)

        client.meta.events.register("before-call.s3", before_call)
        client.meta.events.register("after-call.s3", after_call)
        return slot


class HandlerRun:
    """One run of the handler on one event, in a thread of its own, with clients of its own."""

    def __init__(self, lam: FaultyLambda, event: dict[str, Any], label: str, kill: Fault | None = None):
        self.lam, self.event, self.label, self.kill = lam, event, label, kill
        self.slots: list[Slot] = []
        self.writes = 0
        self.dead = False
        self.died_at: float | None = None
        self.death = ""
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._guard = threading.Lock()
        self.thread = threading.Thread(target=self._main, name=f"lambda {label}", daemon=True)

    def start(self) -> HandlerRun:
        self.thread.start()
        return self

    def _main(self) -> None:
        _current.run = self
        try:
            self.result = self.lam.handler(self.event, LambdaContext())
        except BaseException as err:  # noqa: BLE001 - Killed included: it is how a death ends the handler
            self.error = err
        finally:
            _current.run = None
            if self.kill is not None and not self.dead:
                ended = f"it raised {type(self.error).__name__}" if self.error is not None else "it returned"
                self.die(f"after all its {self.writes} S3 writes ({ended}), before its answer went out")
            self.lam.pool.give_back(self)
            self.done.set()

    def die(self, where: str) -> None:
        with self._guard:
            if not self.dead:
                self.dead, self.died_at, self.death = True, time.monotonic(), where

    def before_call(self, operation: str, params: dict[str, Any], context: dict[str, Any]) -> None:
        with self._guard:
            if self.dead:
                raise Killed(f"{self.label} is dead ({self.death}): {operation} not sent")
            if operation not in WRITES:
                return
            self.writes += 1
            context["sfn_campaign_write"] = number = self.writes
            kill = self.kill
        if kill is not None and number == kill.kill_at and not kill.applied:
            self.die(f"before its S3 write #{number} ({operation} {params.get('Key', '')}) was sent")
            raise Killed(f"{self.label} died before {operation}")

    def after_call(self, operation: str, context: dict[str, Any]) -> None:
        kill = self.kill
        number = context.get("sfn_campaign_write")
        if kill is not None and kill.applied and number == kill.kill_at:
            self.die(f"after its S3 write #{number} ({operation}) was answered")
        if self.dead:
            raise Killed(f"{self.label} is dead ({self.death}): the answer to {operation} is never read")

    def wait(self) -> str:
        """Wait for the handler to end; "" or what went wrong with the waiting."""
        while not self.done.wait(0.05):
            if self.died_at is not None and time.monotonic() - self.died_at > KILL_GRACE:
                return f"harness: {self.label} did not stop within {KILL_GRACE:.0f}s of its death ({self.death})"
        return ""

    def outcome(self) -> str:
        if self.dead:
            return f"died {self.death}"
        if self.error is not None:
            return f"raised {type(self.error).__name__}: {str(self.error)[:200]}"
        answer = self.result if isinstance(self.result, dict) else {}
        shown = {k: getattr(answer[k], "value", answer[k]) for k in ("stage", "run_id", "released") if k in answer}
        return f"returned {shown}"


@dataclass
class Invocation:
    """One call of the Lambda API by a Task, as the report shows it."""

    number: int
    phase: str
    action: str
    unit: Any
    attempt: int
    fault: Fault | None = None
    runs: list[HandlerRun] = field(default_factory=list)
    answer: str = ""

    def line(self) -> str:
        unit = f"[{self.unit}]" if self.unit is not None else ""
        fault = f" FAULT {self.fault.describe()};" if self.fault else ""
        runs = "; ".join(f"{run.label} {run.outcome()}" for run in self.runs)
        arrow = " -> " if runs else " "
        return f"#{self.number} {self.action}{unit} attempt {self.attempt}:{fault} {runs}{arrow}{self.answer}"


class FaultPlan:
    """Which invocations get which fault: the `index`-th invocation of `action` gets `fault`; a throttle goes on
    for `fault.times` invocations of that same step (its retries); a poison hits every attempt of the step."""

    def __init__(self) -> None:
        self.targets: list[tuple[str, int, Fault]] = []
        self.random: tuple[random.Random, float, list[str], dict[str, dict[str, int]], int] | None = None
        self.armed = True

    def at(self, action: str, index: int, fault: Fault) -> FaultPlan:
        self.targets.append((action, index, fault))
        return self

    def at_random(
        self, rng: random.Random, rate: float, kinds: list[str], budgets: dict[str, dict[str, int]], limit: int
    ) -> FaultPlan:
        self.random = (rng, rate, kinds, budgets, limit)
        return self


class FaultyLambda:
    """The patched Lambda service: every invocation served by the real handler, with faults from a FaultPlan."""

    def __init__(self, plan: FaultPlan, handler: Any = None) -> None:
        self.plan = plan
        self.handler = handler or lambda_function.handler
        self.pool = ClientPool()
        self.invocations: list[Invocation] = []
        self.phase = ""
        """The execution being run (for the report)."""
        self.runs: list[HandlerRun] = []
        self.problems: list[str] = []
        self.injected: list[str] = []
        self._guard = threading.Lock()
        self._seen: dict[str, int] = {}
        self._attempts: dict[tuple[str, Any, Any], int] = {}
        self._pending: dict[tuple[str, Any, Any], Fault] = {}
        self._poisoned: dict[tuple[str, Any], Fault] = {}
        self._drawn = 0

    # -- deciding -----------------------------------------------------------------------------------------------

    def _arrive(self, event: dict[str, Any]) -> Invocation:
        action = str(event.get("action", "run"))
        unit = event.get("batch", event.get("shard"))
        step = (action, unit, event.get("execution"))
        with self._guard:
            index = self._seen.get(action, 0)
            self._seen[action] = index + 1
            attempt = self._attempts.get(step, 0) + 1
            self._attempts[step] = attempt
            invocation = Invocation(len(self.invocations) + 1, self.phase, action, unit, attempt)
            self.invocations.append(invocation)
            invocation.fault = self._fault_for(action, unit, step, index) if self.plan.armed else None
            if invocation.fault is not None:
                self.injected.append(
                    f"{action}{f'[{unit}]' if unit is not None else ''}: {invocation.fault.describe()}"
                )
        return invocation

    def _fault_for(self, action: str, unit: Any, step: tuple[str, Any, Any], index: int) -> Fault | None:
        if (poison := self._poisoned.get((action, unit))) is not None:
            return poison
        if (pending := self._pending.get(step)) is not None:
            pending.nth += 1
            if pending.nth >= pending.times:
                del self._pending[step]
            return Fault("throttle", action, times=pending.times, nth=pending.nth)
        for target in list(self.plan.targets):
            wanted, at, fault = target
            if wanted == action and at == index:
                self.plan.targets.remove(target)
                return self._bind(fault, action, unit, step)
        if self.plan.random is not None:
            rng, rate, kinds, budgets, limit = self.plan.random
            if self._drawn < limit and rng.random() < rate:
                self._drawn += 1
                kind = rng.choice(kinds)
                return self._bind(draw_fault(rng, kind, action, budgets.get(action, {})), action, unit, step)
        return None

    def _bind(self, fault: Fault, action: str, unit: Any, step: tuple[str, Any, Any]) -> Fault:
        if fault.kind == "poison":
            self._poisoned[(action, unit)] = fault
        if fault.kind == "throttle" and fault.times > 1:
            self._pending[step] = Fault("throttle", action, times=fault.times, nth=1)
        return fault

    # -- serving ------------------------------------------------------------------------------------------------

    def invoke(self, event: dict[str, Any], response_headers: dict[str, Any]) -> bytes:
        invocation = self._arrive(event)
        fault = invocation.fault
        label = f"#{invocation.number} {invocation.action}"
        if fault is not None and fault.kind == "throttle":
            invocation.answer = "Lambda.TooManyRequestsException (not run)"
            raise LambdaClientError("TooManyRequestsException", "Rate Exceeded. (injected by the fault campaign)")
        if fault is not None and fault.kind == "poison":
            invocation.answer = f"function error {fault.error} (not run)"
            response_headers["x-amz-function-error"] = "Unhandled"
            return _payload({"errorType": fault.error, "errorMessage": "injected: this step keeps failing"})
        if fault is not None and fault.kind == "duplicate":
            first = self._start(json.loads(json.dumps(event)), f"{label} run 1")
            time.sleep(fault.stagger)
            second = self._start(json.loads(json.dumps(event)), f"{label} run 2")
            invocation.runs = [first, second]
            chosen = invocation.runs[fault.answer]
        else:
            chosen = self._start(event, label, fault if fault is not None and fault.kind == "death" else None)
            invocation.runs = [chosen]
        if problem := chosen.wait():
            self.problems.append(problem)
        if fault is not None and fault.kind == "lost":
            invocation.answer = f"Lambda.{fault.error} (the answer was lost)"
            raise LambdaClientError(fault.error, "injected by the fault campaign: the answer was lost")
        if chosen.dead:
            error = fault.error if fault is not None and fault.kind == "death" else "Lambda.Unknown"
            invocation.answer = f"function error {error}"
            response_headers["x-amz-function-error"] = "Unhandled"
            return _payload({"errorType": error, "errorMessage": f"{chosen.label} was killed {chosen.death}"})
        if chosen.error is not None:
            invocation.answer = f"function error {type(chosen.error).__name__}: {str(chosen.error)[:160]}"
            response_headers["x-amz-function-error"] = "Unhandled"
            return _payload(function_error(chosen.error))
        invocation.answer = "answered"
        return _payload(chosen.result)

    def _start(self, event: dict[str, Any], label: str, kill: Fault | None = None) -> HandlerRun:
        run = HandlerRun(self, event, label, kill)
        with self._guard:
            self.runs.append(run)
        return run.start()

    def settle(self, timeout: float = 300.0) -> None:
        """Wait for every handler run to end, those still running beside later states included."""
        deadline = time.monotonic() + timeout
        for run in list(self.runs):
            while not run.done.wait(0.05):
                if run.died_at is not None and time.monotonic() - run.died_at > KILL_GRACE:
                    break
                if time.monotonic() > deadline:
                    self.problems.append(f"liveness: {run.label} still running after {timeout:.0f}s")
                    break

    def s3_for_current_run(self, concurrency: int) -> Store:
        """`handler.lambda_function._s3` while the campaign runs: the calling invocation's own stores."""
        run = getattr(_current, "run", None)
        if run is None:
            raise AssertionError("harness: the handler asked for an S3 client outside an invocation's thread")
        return self.pool.take(run, concurrency)


def _payload(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


@contextmanager
def faulty_lambda(monkeypatch: pytest.MonkeyPatch, plan: FaultPlan, handler: Any = None) -> Iterator[FaultyLambda]:
    """Patch moto's Lambda service (and the handler's client factory) to serve invocations through FaultyLambda."""
    lam = FaultyLambda(plan, handler)

    def invoke(
        self: LambdaBackend, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        return lam.invoke(json.loads(body or "{}"), response_headers)

    monkeypatch.setattr(LambdaBackend, "invoke", invoke)
    monkeypatch.setattr(lambda_function, "_s3", lam.s3_for_current_run)
    previous_hook = threading.excepthook

    def excepthook(args: Any) -> None:
        if args.exc_type is not None and issubclass(args.exc_type, Killed):
            return  # a dead invocation's thread (its heartbeat, say) ending with it
        previous_hook(args)

    monkeypatch.setattr(threading, "excepthook", excepthook)
    try:
        yield lam
    finally:
        lam.settle()


# ---- a trial ------------------------------------------------------------------------------------------------


@dataclass
class Execution:
    label: str
    described: dict[str, Any]
    notifications: list[dict[str, Any]]
    committed: list[str]
    """The runs whose summary appeared in the ledger while this execution ran (its own invocations' doing)."""

    @property
    def status(self) -> str:
        return str(self.described.get("status"))

    @property
    def output(self) -> dict[str, Any]:
        try:
            return json.loads(self.described.get("output") or "{}")
        except json.JSONDecodeError:
            return {}

    def statuses(self) -> list[str]:
        return [str(n["attributes"].get("status")) for n in self.notifications]

    def summary(self) -> str:
        error = self.described.get("error")
        cause = str(self.described.get("cause") or "")[:300]
        told = ", ".join(self.statuses()) or "none"
        runs = ", ".join(self.committed) or "none"
        return (
            f"{self.label}: {self.status}"
            + (f" ({error}: {cause})" if error else "")
            + f"; committed runs: {runs}; notifications: {told}"
        )


@dataclass
class Setting:
    """One row of the campaign: a fault kind at one action, or a mix."""

    name: str
    kind: str
    action: str | None = None
    absorbable: bool = True
    """Step Functions' retries must absorb this fault: the first execution itself must succeed."""
    quick: bool = False
    doc: str = ""


class SfnTrial:
    """One seeded night through the state machine, and its verdict."""

    def __init__(self, setting: Setting, seed: int, monkeypatch: pytest.MonkeyPatch):
        self.setting, self.seed, self.monkeypatch = setting, seed, monkeypatch
        self.rng = random.Random(seed)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.source, self.raw = unique_bucket("source"), unique_bucket("raw")
        for bucket in (self.source, self.raw):
            self.s3.create_bucket(Bucket=bucket)
        self.notifications: Notifications = subscribed_topic()
        self.executions: list[Execution] = []
        self.problems: list[str] = []
        self.fields: dict[str, Any] = {}
        self.map_concurrency = 1
        self.definition: dict[str, Any] = {}
        self.machine: StateMachine | None = None
        self.lam: FaultyLambda | None = None
        self.overwrites = serialise_key_writes(monkeypatch, watched={self.raw})
        honour_tolerated_failure(monkeypatch)
        print(f"sfn fault trial {setting.name}: seed {seed}")

    # -- the night ------------------------------------------------------------------------------------------------

    def seed_source(self) -> dict[str, str]:
        """20-60 small objects (24 in quick mode, a few empty) in a few folders, each folder used, beside the
        excluded scratch folder; returns the objects the night must land, key -> ETag."""
        count = self.rng.randint(20, 60) if FULL else 24
        for n in range(count):
            folder = FOLDERS[n] if n < len(FOLDERS) else self.rng.choice(FOLDERS)
            key = f"movielens/{folder}/part-{n:03d}.csv"
            size = 0 if self.rng.random() < 0.05 else self.rng.randint(1, 2000)
            self.s3.put_object(Bucket=self.source, Key=key, Body=f"{key}\n".encode() + self.rng.randbytes(size))
        backend = s3_backends[ACCOUNT]["global"]  # straight into moto: a thousand PUTs through boto3 take seconds
        for n in range(SCRATCH_OBJECTS):
            backend.put_object(self.source, f"movielens/{SCRATCH}/tmp-{n:04d}", b"scratch")
        return {k: v for k, v in self.source_versions().items() if f"/{SCRATCH}/" not in k}

    def source_versions(self) -> dict[str, str]:
        return versions_in(self.s3, self.source)

    def configure(self) -> None:
        """Seeded sizes: several batches a shard, one to four Map children at a time, one to four copy threads."""
        self.fields = {
            "batch_max_objects": self.rng.choice([3, 5, 8]),
            "concurrency": self.rng.choice([1, 2, 4]),
            "exclude": [f"{SCRATCH}/*"],
        }
        self.map_concurrency = self.rng.choice([1, 2, 4])
        configure_lambda(self.monkeypatch, self.s3, self.source, self.raw, self.notifications.topic_arn, **self.fields)
        self.definition = build_definition(
            function_arn=FUNCTION_ARN,
            topic_arn=self.notifications.topic_arn,
            map_concurrency=self.map_concurrency,
            tolerated_failure_percentage=0,
            results_bucket=self.raw,
        )
        self.machine = create_state_machine(self.monkeypatch, self.definition)

    def budgets(self) -> dict[str, dict[str, int]]:
        """Per action, the definition's retry budget for each Lambda error the campaign injects."""
        tasks = lambda_tasks(self.definition)
        errors = [f"Lambda.{e}" for e in LOST_ERRORS] + list(DEATH_ERRORS) + ["Lambda.TooManyRequestsException"]
        return {action: {e: retry_budget(tasks.get(action), e) for e in errors} for action in ACTIONS}

    def execute(self, label: str) -> Execution:
        assert self.machine is not None and self.lam is not None
        sfn = boto3.client("stepfunctions", region_name=REGION)
        self.lam.phase = label
        summaries = self._summaries()
        arn = self.machine.start({"dataset": DATASET, "date": NIGHT})
        try:
            described = self.machine.wait(arn, timeout=EXECUTION_TIMEOUT)
        except AssertionError:
            self.problems.append(f"liveness: {label} still RUNNING after {EXECUTION_TIMEOUT:.0f}s; stopped")
            sfn.stop_execution(executionArn=arn)
            described = sfn.describe_execution(executionArn=arn)
        self.lam.settle()
        committed = sorted(key.rsplit("/", 1)[-1].removesuffix(".json") for key in self._summaries() - summaries)
        execution = Execution(label, described, self.notifications.receive(), committed)
        self.executions.append(execution)
        return execution

    # -- the verdict ------------------------------------------------------------------------------------------------

    def judge_execution(self, execution: Execution, expected: dict[str, str], *, must_succeed: bool) -> list[str]:
        """Is the execution's status the truth? SUCCEEDED: its run committed and everything due landed; FAILED:
        it names an error and said so on the topic; never skipped (no other execution ever runs beside it)."""
        problems = []
        error = execution.described.get("error")
        if "skipped" in execution.statuses() or error == "RunInProgress":
            problems.append(
                f"refused: {execution.label} was refused as if another run were in progress ({execution.summary()})"
            )
        if execution.status == "SUCCEEDED":
            told = [n for n in execution.notifications if n["attributes"].get("status") in ("succeeded", "nothing_new")]
            if problems:
                pass  # refused: it has no run of its own; what it left unlanded is listed below
            elif not execution.committed:
                problems.append(f"status: {execution.label} SUCCEEDED but committed no run ({execution.summary()})")
            for run_id in execution.committed:
                if not any(run_id in n["message"] for n in told):
                    problems.append(
                        f"status: {execution.label} committed run {run_id} but no success notification names it"
                    )
            problems += [
                f"{v.split(':', 1)[0]}: after {execution.label} SUCCEEDED:{v.split(':', 1)[1]}"
                for v in verify(self.s3, self.source, self.raw, DATASET, expected=expected, settled=True)
            ]
        elif execution.status == "FAILED":
            cause = str(execution.described.get("cause") or "")
            failed = [n for n in execution.notifications if n["attributes"].get("status") == "failed"]
            if error == "States.Runtime" and "MUST NOT begin with the prefix 'States.'" in cause:
                problems.append(
                    f"status: {execution.label} FAILED as States.Runtime, not as its step's error: its Fail state's "
                    f"ErrorPath gave a name the States Language reserves for itself ({cause[:160]}); moto refuses "
                    "it, after LocalStack and the spec"
                )
            elif not error:
                problems.append(f"status: {execution.label} FAILED without naming an error ({execution.summary()})")
            elif failed and not any(name in n["message"] for n in failed for name in _names_of(str(error))):
                problems.append(f"status: {execution.label}'s failure notification does not name its error {error}")
            if not failed:
                problems.append(
                    f"status: {execution.label} FAILED without a failure notification ({execution.summary()})"
                )
            if must_succeed:
                problems.append(
                    f"status: {execution.label} FAILED on a fault Step Functions' retries should absorb "
                    f"({execution.summary()}); steps that failed: {self._failed_steps(execution.label)}"
                )
        else:
            problems.append(f"status: {execution.label} ended {execution.status} ({execution.summary()})")
        return problems

    def _failed_steps(self, label: str) -> str:
        """The Tasks of an execution that got a function error of the handler's own (not an injected one)."""
        assert self.lam is not None
        failed = [
            f"{i.action}{f'[{i.unit}]' if i.unit is not None else ''} attempt {i.attempt}: {i.answer[15:]}"
            for i in self.lam.invocations
            if i.phase == label
            and i.answer.startswith("function error")
            and (i.fault is None or i.fault.kind == "duplicate")
        ]
        return "; ".join(failed[:3]) + (f"; and {len(failed) - 3} more" if len(failed) > 3 else "") or "none"

    def _summaries(self) -> set[str]:
        """The run summaries in the ledger (`summary/date=D/<run_id>.json`): one per committed run."""
        prefix = f"{LEDGER_ROOT}{DATASET}/summary/"
        paginator = self.s3.get_paginator("list_objects_v2")
        return {
            o["Key"] for page in paginator.paginate(Bucket=self.raw, Prefix=prefix) for o in page.get("Contents", [])
        }

    def night(self, make_plan: Callable[[], FaultPlan], handler: Any = None) -> list[str]:
        """The trial: a faulty first execution, then the next one with the faults gone. Returns the violations.
        The faults are drawn once the dataset and the definition are (the throttle budget is read from it)."""
        expected = self.seed_source()
        self.configure()
        plan = make_plan()
        with faulty_lambda(self.monkeypatch, plan, handler) as lam:
            self.lam = lam
            first = self.execute("execution 1 (faults on)")
            violations = self.judge_execution(first, expected, must_succeed=self.setting.absorbable)
            plan.armed = False
            before = snapshot(self.s3, self.raw)
            second = self.execute("execution 2 (faults off)")
            violations += self.judge_execution(second, expected, must_succeed=True)
            violations += overwritten(before, snapshot(self.s3, self.raw))
        violations += self.overwrites
        violations += lam.problems
        if self.setting.kind != "none" and not lam.injected:
            violations.append(f"setup: no fault was injected (setting {self.setting.name})")
        violations = list(self.problems) + violations
        return list(dict.fromkeys(violations))

    def report(self, violations: list[str]) -> str:
        current = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
        selector = current.split("::")[-1] if current else self.setting.name
        lam = self.lam
        lines = [
            f"setting {self.setting.name}, seed {self.seed}: {len(violations)} violation(s)",
            f"replay: FAULT_SEED={self.seed} .venv/bin/python -m pytest {TEST_FILE} -k '{selector}'",
            *(f"  - {v}" for v in condensed(violations)),
            f"night: {len(self.source_versions())} objects, config {self.fields}, "
            f"map concurrency {self.map_concurrency}",
            "executions: " + " | ".join(e.summary() for e in self.executions),
            "faults injected: " + ("; ".join(lam.injected) if lam and lam.injected else "none"),
        ]
        if lam is not None:
            phase = None
            for invocation in lam.invocations[:120]:
                if invocation.phase != phase:
                    phase = invocation.phase
                    lines.append(f"invocations of {phase}:")
                lines.append(f"  {invocation.line()}")
        for execution in self.executions:
            for message in execution.notifications:
                lines.append(
                    f"{execution.label} notified {message['attributes'].get('status')}: {message['message'][:400]}"
                )
        return "\n".join(lines)


def condensed(violations: list[str], per_kind: int = 5) -> list[str]:
    """At most `per_kind` violations of each kind (`lost:`, ...), then how many more: a refused night loses every
    object, and the first few say as much as all of them."""
    shown: list[str] = []
    counts: dict[str, int] = {}
    for violation in violations:
        kind = violation.split(":", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
        if counts[kind] <= per_kind:
            shown.append(violation)
    shown += [f"... and {n - per_kind} more {kind}" for kind, n in counts.items() if n > per_kind]
    return shown


# ---- the settings ---------------------------------------------------------------------------------------------


def _settings() -> dict[str, Setting]:
    settings = {"none": Setting("none", "none", quick=True, doc="no fault: the harness itself (must pass today)")}
    quick = {("lost", "plan"), ("death", "copy_batch"), ("duplicate", "seal_plan"), ("throttle", "finalize_shard")}
    for kind in KINDS:
        for action in ACTIONS:
            if action == "release":
                continue
            name = f"{kind}-{action}"
            settings[name] = Setting(name, kind, action, quick=(kind, action) in quick)
    for kind in KINDS:
        name = f"{kind}-release"
        settings[name] = Setting(
            name,
            kind,
            "release",
            absorbable=False,
            doc="a batch fails for good first (the first execution must fail, truthfully), then release is faulted",
        )
    settings["mixed"] = Setting(
        "mixed", "mixed", absorbable=False, doc="faults of every kind at random invocations (about one in eight)"
    )
    return settings


SETTINGS = _settings()
MIXED_RATE, MIXED_LIMIT = 0.12, 4
"""The mixed setting: besides one fault at a seeded step, each invocation draws a fault at this rate, at most this
many (a throttle's retries, and the forced one, not counted)."""
MAP_ACTIONS = {"plan_shard": 4, "copy_batch": 3, "finalize_shard": 4}
"""A Map action's fault hits one of its first this-many invocations (seeded): the Maps have at least that many
children in every trial (four folders and the scratch: five shards; at least 20 objects in batches of at most 8)."""


def fault_plan(trial: SfnTrial, setting: Setting) -> FaultPlan:
    """The setting's faults, drawn from the trial's seed (after the dataset and the config, so the draw is stable)."""
    rng, plan = trial.rng, FaultPlan()
    budgets = trial.budgets()
    if setting.kind == "none":
        return plan
    if setting.kind == "mixed":
        forced_action = rng.choice([a for a in ACTIONS if a != "release"])
        plan.at(forced_action, 0, draw_fault(rng, rng.choice(KINDS), forced_action, budgets[forced_action]))
        return plan.at_random(rng, MIXED_RATE, list(KINDS), budgets, limit=MIXED_LIMIT)
    action = setting.action
    assert action is not None
    if action == "release":
        plan.at("copy_batch", 0, Fault("poison", "copy_batch", error="S3Error"))
        return plan.at("release", 0, draw_fault(rng, setting.kind, "release", budgets["release"]))
    index = rng.randrange(MAP_ACTIONS.get(action, 1))
    return plan.at(action, index, draw_fault(rng, setting.kind, action, budgets[action]))


def run_setting(name: str, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """One trial of one setting; fails the test with the full report on any violation."""
    setting = SETTINGS[name]
    trial = SfnTrial(setting, seed, monkeypatch)
    violations = trial.night(lambda: fault_plan(trial, setting))
    if violations:
        pytest.fail(trial.report(violations), pytrace=False)
    print(trial.report(violations))  # shown with -s or -rA: what a passing trial did


def _names_of(error: str) -> list[str]:
    """The step errors an execution's error stands for: itself, or the `States.` error a Fail state may not raise
    and the definition renames (RESERVED_ERROR_NAMES; `StepFailed` stands for any of them)."""
    renamed = [reserved.removesuffix("*") for reserved, name in RESERVED_ERROR_NAMES.items() if name == error]
    return renamed or [error]
