"""The state machine definition run in moto's Step Functions interpreter, with the real handler as its Lambda.

moto executes Amazon States Language when its user config asks for it, and sends `lambda:invoke` tasks to
`LambdaBackend.invoke`, which cannot run code without Docker. The `lambda_runtime` fixture replaces that
method with a call into the real handler in this process, so the definition, the Lambda contract and the
runtime are tested together against moto's S3 and SNS. Faults the runtime cannot be asked to produce (a
crash, a lock taken over mid-run) are injected by wrapping the real handler, never by replacing it.

Used by tests/e2e/test_state_machine.py (import the fixtures into a test module to use them) and by the Step
Functions fault campaign (tests/faults/sfn_campaign.py).
"""

from __future__ import annotations

import functools
import json
import threading
import time
import traceback
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto.awslambda.models import LambdaBackend
from moto.core.config import default_user_config
from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
    DistributedIterationComponent,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
    distributed_item_processor_worker,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.map_run_record import (
    MapRunRecord,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

from handler import lambda_function
from handler.ledger import Ledger
from handler.ledger_keys import LedgerPaths
from handler.store import Store
from infra.workflow_definition import build_definition
from tests.conftest import (
    REGION,
    dataset_config,
    expire_lock,
    lambda_config_bucket,
    new_bucket,
    put_lambda_config,
    unique_bucket,
)
from tests.lambda_context import ACCOUNT, FUNCTION_ARN, LambdaContext

DistributedItemProcessorWorker = distributed_item_processor_worker.DistributedItemProcessorWorker

ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ingest-state-machine"
DATASET = "movielens"

Handler = Callable[[dict[str, Any], Any], Any]


# ---- the Lambda service ---------------------------------------------------------------------------------


@dataclass
class LambdaRuntime:
    """Where the patched Lambda service sends invocations; tests may wrap `handler` and read `calls`."""

    handler: Handler = lambda_function.handler
    calls: list[dict[str, Any]] = field(default_factory=list)

    def actions(self) -> list[str]:
        return [call.get("action", "run") for call in self.calls]


def function_error(err: BaseException) -> dict[str, Any]:
    """The payload Lambda answers for an exception that escaped the handler (with `x-amz-function-error`)."""
    return {
        "errorType": type(err).__name__,
        "errorMessage": str(err),
        "stackTrace": traceback.format_tb(err.__traceback__),
    }


@pytest.fixture(name="lambda_runtime")
def lambda_runtime_fixture(aws: None, monkeypatch: pytest.MonkeyPatch) -> LambdaRuntime:
    """Route every Lambda invocation to `runtime.handler`, reporting exceptions the way Lambda does.

    Invocations are serialised: on AWS each concurrent invocation has its own sandbox, so the handler's
    module-level state is never shared by two running invocations. Threads of one process would share
    it, which tests something that cannot happen in production.
    """
    runtime = LambdaRuntime()
    lock = threading.Lock()

    def invoke(
        self: LambdaBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> bytes:
        event = json.loads(body or "{}")
        with lock:
            runtime.calls.append(event)
            try:
                result = runtime.handler(event, LambdaContext())
            except Exception as err:  # every exception becomes a Lambda function error, as on AWS
                response_headers["x-amz-function-error"] = "Unhandled"
                result = function_error(err)
        return json.dumps(result).encode("utf-8")

    monkeypatch.setattr(LambdaBackend, "invoke", invoke)
    return runtime


@pytest.fixture(name="retry_waits")
def retry_waits_fixture(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the interpreter's Retry asked for, in order; recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(retrier_decl, "time", types.SimpleNamespace(sleep=waits.append))
    return waits


# ---- notifications --------------------------------------------------------------------------------------


@dataclass
class Notifications:
    """An SQS queue subscribed to the run topic: what subscribers of the topic receive."""

    topic_arn: str
    queue_url: str

    def receive(self) -> list[dict[str, Any]]:
        """Every message delivered since the last call, as `{"subject", "message", "attributes"}`."""
        sqs = boto3.client("sqs", region_name=REGION)
        received = []
        while batch := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                envelope = json.loads(message["Body"])
                received.append(
                    {
                        "subject": envelope.get("Subject"),
                        "message": envelope["Message"],
                        "attributes": {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()},
                    }
                )
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return received


def subscribed_topic() -> Notifications:
    """A fresh SNS topic with an SQS queue subscribed to it (inside moto)."""
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name=unique_bucket("ingest-runs"))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=unique_bucket("ingest-runs"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return Notifications(topic_arn=topic_arn, queue_url=queue_url)


@pytest.fixture(name="notifications")
def notifications_fixture(aws: None) -> Notifications:
    return subscribed_topic()


# ---- the state machine ----------------------------------------------------------------------------------


@dataclass
class StateMachine:
    arn: str

    def start(self, execution_input: dict[str, Any]) -> str:
        """Start an execution; returns its ARN."""
        sfn = boto3.client("stepfunctions", region_name=REGION)
        # moto names an unnamed execution `None`, so a second unnamed one would already exist.
        return sfn.start_execution(
            stateMachineArn=self.arn, name=f"run-{uuid.uuid4().hex}", input=json.dumps(execution_input)
        )["executionArn"]

    def wait(self, execution_arn: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for an execution to end; returns describe_execution's answer."""
        sfn = boto3.client("stepfunctions", region_name=REGION)
        deadline = time.monotonic() + timeout
        while (described := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
            if time.monotonic() > deadline:
                raise AssertionError(f"execution still RUNNING after {timeout}s: {execution_arn}")
            time.sleep(0.05)
        return described

    def run(self, execution_input: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """Start an execution and wait for it to end; returns describe_execution's answer."""
        return self.wait(self.start(execution_input), timeout)


def create_state_machine(monkeypatch: pytest.MonkeyPatch, definition: dict[str, Any]) -> StateMachine:
    """A STANDARD state machine in moto that really executes `definition`."""
    # Must be set before the state machine is created: without it moto only returns a canned history.
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(
        name=unique_bucket("ingest"), definition=json.dumps(definition), roleArn=ROLE_ARN, type="STANDARD"
    )["stateMachineArn"]
    return StateMachine(arn=arn)


@pytest.fixture(name="state_machine")
def state_machine_fixture(
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    lambda_runtime: LambdaRuntime,
    notifications: Notifications,
    retry_waits: list[float],
    dataset: Dataset,
    request: pytest.FixtureRequest,
) -> StateMachine:
    """The production definition, pointed at the patched Lambda function and the subscribed topic; a test module's
    `DEFINITION_OPTIONS` are further arguments of `build_definition` (a stack setting that changes it)."""
    definition = build_definition(
        function_arn=FUNCTION_ARN,
        topic_arn=notifications.topic_arn,
        map_concurrency=4,
        tolerated_failure_percentage=0,
        results_bucket=dataset.raw,
        **getattr(request.module, "DEFINITION_OPTIONS", {}),
    )
    return create_state_machine(monkeypatch, definition)


def output_of(execution: dict[str, Any]) -> dict[str, Any]:
    return json.loads(execution["output"])


# ---- the dataset ----------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """A movielens dataset configured the way the stack configures the Lambda: a config object in S3."""

    source: str
    raw: str
    s3: Any

    @property
    def ledger(self) -> LedgerPaths:
        return LedgerPaths(dataset_config(self.source, self.raw))

    def add_objects(self, count: int, start: int = 0) -> list[str]:
        keys = [f"movielens/ratings/part-{number:05}.csv" for number in range(start, start + count)]
        for key in keys:
            self.s3.put_object(Bucket=self.source, Key=key, Body=f"user,movie,rating\n{key},1,5\n".encode())
        return keys

    def expire_lock(self) -> None:
        """Age the dataset's lock past its expiry, as when the Lambda holding it died."""
        expire_lock(Ledger(Store(self.s3), dataset_config(self.source, self.raw)))

    def expected_key(self, source_key: str, date: str) -> str:
        # The default key template `{dir}/ingest_date={date}/{name}` under the target prefix `movielens/`.
        directory, _, name = source_key.removeprefix("movielens/").rpartition("/")
        return f"movielens/{directory}/ingest_date={date}/{name}"


def configure_lambda(
    monkeypatch: pytest.MonkeyPatch, s3: Any, source: str, raw: str, topic_arn: str, **fields: Any
) -> str:
    """The config object the handler reads through CONFIG_BUCKET/CONFIG_KEY, in a bucket of its own; returns
    that bucket. `fields` are the dataset's raw config fields besides its buckets and prefixes."""
    config_bucket = lambda_config_bucket(s3, monkeypatch)
    put_lambda_config(s3, config_bucket, source, raw, DATASET, **fields)
    monkeypatch.setenv("SNS_TOPIC_ARN", topic_arn)
    return config_bucket


@pytest.fixture(name="dataset")
def dataset_fixture(aws: None, monkeypatch: pytest.MonkeyPatch, notifications: Notifications) -> Dataset:
    """Source and raw buckets, and the config object the handler reads through CONFIG_BUCKET/CONFIG_KEY."""
    s3 = boto3.client("s3", region_name=REGION)
    source, raw = new_bucket(s3, "source"), new_bucket(s3, "raw")
    # Several Map batches from a few thousand objects.
    configure_lambda(monkeypatch, s3, source, raw, notifications.topic_arn, batch_max_objects=400, concurrency=8)
    return Dataset(source=source, raw=raw, s3=s3)


# ---- where moto differs from AWS in ways a concurrent state machine depends on ------------------------------


def _tolerance_exceeded(record: MapRunRecord, total: int | None) -> bool:
    """AWS: a Map Run fails when its failed (or timed-out) children exceed the tolerated count or percentage."""
    failed = record.item_counter.failed.get() + record.item_counter.timed_out.get()
    if not failed:
        return False
    total = total or record.item_counter.total.get() or 1
    # moto fills an undeclared threshold with 0, so a count and a percentage both at 0 are AWS's default (no
    # failure tolerated); a declared threshold is exceeded only when every threshold is (see the docstring below).
    return failed > record.tolerated_failure_count and failed * 100.0 / total > record.tolerated_failure_percentage


def honour_tolerated_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's Distributed Map fail as AWS's does when its children fail past the tolerated threshold.

    AWS: when the failed (or timed-out) children of a Map Run exceed `ToleratedFailurePercentage` (or
    `ToleratedFailureCount`; neither given means none is tolerated), the Map Run fails, no further child is
    started, and the Map state fails with `States.ExceedToleratedFailureThreshold`, which its Retry and Catch see.
    moto 5.2.5 ignores both settings ("currently have no effect"): a failed child fails silently and the Map
    succeeds. This patch counts what moto already counts (the Map Run's item counters) and fails the Map as AWS
    does. moto reports an undeclared threshold as 0, so a definition that declares both a count and a percentage
    would be judged by both at once here (AWS fails on either); the state machine declares only the percentage.
    """
    original_map_run = DistributedIterationComponent._map_run
    original_eval_job = DistributedItemProcessorWorker._eval_job

    @functools.wraps(original_map_run)
    def map_run(self: DistributedIterationComponent, env: Any, eval_input: Any) -> None:
        record: MapRunRecord = eval_input.map_run_record
        items = env.stack[-1] if env.stack else None
        record.harness_total = len(items) if isinstance(items, list) else None  # type: ignore[attr-defined]
        original_map_run(self, env, eval_input)
        if getattr(record, "harness_exceeded", False) or _tolerance_exceeded(record, record.harness_total):  # type: ignore[attr-defined]
            env.stack.pop()  # the children's outputs: the Map has none when it fails
            counts = record.item_counter
            cause = (
                f"The specified tolerated failure threshold was exceeded: {counts.failed.get()} failed and "
                f"{counts.timed_out.get()} timed out of {record.harness_total} items "  # type: ignore[attr-defined]
                f"(ToleratedFailurePercentage {record.tolerated_failure_percentage}, "
                f"ToleratedFailureCount {record.tolerated_failure_count})"
            )
            error = StatesErrorNameType.StatesExceedToleratedFailureThreshold.to_name()
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold),
                    event_type=HistoryEventType.MapRunFailed,
                    event_details=EventDetails(
                        mapRunFailedEventDetails=MapRunFailedEventDetails(error=error, cause=cause)
                    ),
                )
            )

    @functools.wraps(original_eval_job)
    def eval_job(self: DistributedItemProcessorWorker, env: Any, job: Any) -> None:
        record: MapRunRecord = self._map_run_record
        if getattr(record, "harness_exceeded", False):
            # The Map Run has failed: AWS starts no further child.
            record.item_counter.aborted.count()
            job.job_output = None
            return
        original_eval_job(self, env, job)
        if _tolerance_exceeded(record, getattr(record, "harness_total", None)):
            record.harness_exceeded = True  # type: ignore[attr-defined]

    monkeypatch.setattr(DistributedIterationComponent, "_map_run", map_run)
    monkeypatch.setattr(DistributedItemProcessorWorker, "_eval_job", eval_job)
