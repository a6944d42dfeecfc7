"""The state machine definition run end to end in moto's Step Functions interpreter.

moto executes Amazon States Language when its user config asks for it, and routes `lambda:invoke` tasks
to `LambdaBackend.invoke`, which without Docker cannot run code. The `lambda_runtime` fixture replaces
that method with a call into Python, so the definition and the runtime are tested together in one process.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaBackend
from moto.core.config import default_user_config
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

from infra.workflow_definition import build_definition

REGION = "eu-west-1"
ACCOUNT = "123456789012"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ingest"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ingest-state-machine"

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object a handler may read."""

    function_name: str = "ingest"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = FUNCTION_ARN
    memory_limit_in_mb: int = 1024
    timeout_ms: int = 900_000

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


@dataclass
class LambdaRuntime:
    """Where the patched Lambda service sends invocations; tests set `handler` and read `calls`."""

    handler: Handler | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and an explicit region, then every AWS call of the test goes to moto."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    # Must be set before the state machine is created: without it moto only returns a canned history.
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    with mock_aws():
        yield


@pytest.fixture
def lambda_runtime(aws: None, monkeypatch: pytest.MonkeyPatch) -> LambdaRuntime:
    """Route every Lambda invocation to `runtime.handler`, reporting exceptions the way Lambda does.

    Invocations are serialised: on AWS each concurrent invocation has its own sandbox, so module-level
    state of the handler (cached clients, config) is never shared between two running invocations. Run
    in threads of one process it would be, which tests something that cannot happen in production.
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
            assert runtime.handler is not None, "the test did not set lambda_runtime.handler"
            try:
                result = runtime.handler(event, LambdaContext())
            except Exception as err:  # every exception becomes a Lambda function error, as on AWS
                response_headers["x-amz-function-error"] = "Unhandled"
                result = {
                    "errorType": type(err).__name__,
                    "errorMessage": str(err),
                    "stackTrace": traceback.format_tb(err.__traceback__),
                }
        return json.dumps(result).encode("utf-8")

    monkeypatch.setattr(LambdaBackend, "invoke", invoke)
    return runtime


@pytest.fixture
def retry_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the interpreter's Retry asked for, in order; recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(retrier_decl, "time", types.SimpleNamespace(sleep=waits.append))
    return waits


@dataclass
class Notifications:
    """An SQS queue subscribed to the run topic: what subscribers of the topic would receive."""

    topic_arn: str
    queue_url: str

    def receive(self) -> list[dict[str, Any]]:
        """Every message delivered so far, as `{"subject", "message", "attributes"}`, oldest first."""
        sqs = boto3.client("sqs", region_name=REGION)
        received = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return received
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


@pytest.fixture
def notifications(aws: None) -> Notifications:
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name=f"ingest-runs-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"ingest-runs-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return Notifications(topic_arn=topic_arn, queue_url=queue_url)


@dataclass
class StateMachine:
    arn: str

    def run(self, execution_input: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """Start an execution and wait for it to end; returns describe_execution's answer."""
        sfn = boto3.client("stepfunctions", region_name=REGION)
        # moto names an unnamed execution `None`, so a second unnamed one would already exist.
        execution_arn = sfn.start_execution(
            stateMachineArn=self.arn, name=f"run-{uuid.uuid4().hex}", input=json.dumps(execution_input)
        )["executionArn"]
        deadline = time.monotonic() + timeout
        while True:
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            if time.monotonic() > deadline:
                raise AssertionError(f"execution still RUNNING after {timeout}s: {execution_arn}")
            time.sleep(0.05)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        return sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]


@pytest.fixture
def state_machine(
    lambda_runtime: LambdaRuntime, notifications: Notifications, retry_waits: list[float]
) -> StateMachine:
    """The production definition, pointed at the patched Lambda function and the subscribed topic."""
    definition = build_definition(
        function_arn=FUNCTION_ARN,
        topic_arn=notifications.topic_arn,
        map_concurrency=4,
        tolerated_failure_percentage=0,
    )
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(
        name=f"ingest-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn=ROLE_ARN,
        type="STANDARD",
    )["stateMachineArn"]
    return StateMachine(arn=arn)


DATASET = "movielens"


class FakeRuntime:
    """A stand-in that honours docs/lambda-contract.md just enough to drive the state machine.

    It copies `source/<key>` to `landed/<key>` and treats a landed key as already ingested. It is not the
    runtime: it exists to test what the real handler cannot be made to do on purpose (crash, or find the
    lock held).
    """

    def __init__(self, source: str, target: str, batch_size: int = 3):
        self.s3 = boto3.client("s3", region_name=REGION)
        self.source, self.target, self.batch_size = source, target, batch_size
        self.fail_with: dict[str, Exception] = {}

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        action = event["action"]
        if action in self.fail_with:
            raise self.fail_with[action]
        return getattr(self, action)(event)

    def _keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def _work(self, event: dict[str, Any]) -> str:
        return f"_ingestion/{event['dataset']}/work/{event['run_id']}/"

    def _notification(self, dataset: str, status: str, message: str) -> dict[str, Any]:
        attributes = {"dataset": dataset, "status": status}
        return {
            "subject": f"{dataset}: {status}",
            "message": message,
            "attributes": {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        }

    def plan(self, event: dict[str, Any]) -> dict[str, Any]:
        landed = {key.removeprefix("landed/") for key in self._keys(self.target, "landed/")}
        new = [key for key in self._keys(self.source) if key not in landed]
        run = {"dataset": event["dataset"], "run_id": uuid.uuid4().hex, "date": event.get("date", "today")}
        batches = [new[i : i + self.batch_size] for i in range(0, len(new), self.batch_size)]
        work = self._work(run)
        for number, keys in enumerate(batches):
            self.s3.put_object(Bucket=self.target, Key=f"{work}batch-{number}.json", Body=json.dumps(keys))
        items = [{**run, "batch": number} for number in range(len(batches))]
        self.s3.put_object(Bucket=self.target, Key=f"{work}batches.json", Body=json.dumps(items))
        nothing = self._notification(run["dataset"], "nothing_new", "nothing new") if not batches else None
        return {
            **run,
            "resumed": False,
            "batch_count": len(batches),
            "planned": len(new),
            "bytes": 0,
            "batches": {"bucket": self.target, "key": f"{work}batches.json"},
            "summary": {"status": "nothing_new"} if not batches else None,
            "notification": nothing,
        }

    def copy_batch(self, event: dict[str, Any]) -> dict[str, Any]:
        body = self.s3.get_object(Bucket=self.target, Key=f"{self._work(event)}batch-{event['batch']}.json")["Body"]
        keys = json.loads(body.read())
        for key in keys:
            self.s3.copy_object(CopySource={"Bucket": self.source, "Key": key}, Bucket=self.target, Key=f"landed/{key}")
        return {"batch": event["batch"], "copied": len(keys), "skipped": 0, "failed": 0, "bytes": 0}

    def finalize(self, event: dict[str, Any]) -> dict[str, Any]:
        landed = len(self._keys(self.target, "landed/"))
        notification = self._notification(event["dataset"], "succeeded", f"{landed} objects landed")
        return {
            "summary": {"status": "succeeded", "landed": landed},
            "notification": notification,
            "replan": False,
        }


@pytest.fixture
def fake_runtime(lambda_runtime: LambdaRuntime) -> FakeRuntime:
    """The Lambda function runs FakeRuntime instead of the real handler."""
    s3 = boto3.client("s3", region_name=REGION)
    source, target = f"src-{uuid.uuid4().hex[:8]}", f"raw-{uuid.uuid4().hex[:8]}"
    for bucket in (source, target):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    for number in range(10):
        s3.put_object(Bucket=source, Key=f"ratings/part-{number:02}.csv", Body=b"user,movie,rating\n")
    runtime = FakeRuntime(source, target)
    lambda_runtime.handler = runtime
    return runtime


def test_fake_runtime_every_batch_lands_and_the_run_is_announced(
    fake_runtime: FakeRuntime,
    lambda_runtime: LambdaRuntime,
    state_machine: StateMachine,
    notifications: Notifications,
) -> None:
    execution = state_machine.run({"dataset": DATASET})

    assert execution["status"] == "SUCCEEDED", state_machine.history(execution["executionArn"])
    actions = [call["action"] for call in lambda_runtime.calls]
    assert actions[0] == "plan" and actions[-1] == "finalize"
    assert sorted(call["batch"] for call in lambda_runtime.calls if call["action"] == "copy_batch") == [
        0,
        1,
        2,
        3,
    ]
    assert len(fake_runtime._keys(fake_runtime.target, "landed/")) == 10
    assert lambda_runtime.calls[0] == {"action": "plan", "dataset": DATASET}
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "succeeded"}


def test_fake_runtime_date_is_passed_to_plan_only_when_given(
    fake_runtime: FakeRuntime, lambda_runtime: LambdaRuntime, state_machine: StateMachine
) -> None:
    execution = state_machine.run({"dataset": DATASET, "date": "2026-11-27"})

    assert execution["status"] == "SUCCEEDED"
    assert lambda_runtime.calls[0] == {"action": "plan", "dataset": DATASET, "date": "2026-11-27"}


def test_fake_runtime_nothing_new_only_publishes_the_plan_notification(
    fake_runtime: FakeRuntime,
    lambda_runtime: LambdaRuntime,
    state_machine: StateMachine,
    notifications: Notifications,
) -> None:
    assert state_machine.run({"dataset": DATASET})["status"] == "SUCCEEDED"
    notifications.receive()
    lambda_runtime.calls.clear()

    execution = state_machine.run({"dataset": DATASET})

    assert execution["status"] == "SUCCEEDED"
    assert [call["action"] for call in lambda_runtime.calls] == ["plan"]
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "nothing_new"}


def test_crashed_lambda_is_retried_then_produces_a_failure_message(
    fake_runtime: FakeRuntime,
    lambda_runtime: LambdaRuntime,
    state_machine: StateMachine,
    notifications: Notifications,
    retry_waits: list[float],
) -> None:
    fake_runtime.fail_with["finalize"] = ZeroDivisionError("division by zero")

    execution = state_machine.run({"dataset": DATASET})

    assert execution["status"] == "FAILED"
    assert [call["action"] for call in lambda_runtime.calls].count("finalize") == 3
    assert retry_waits == [10, 30]
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "failed"}
    assert "ZeroDivisionError" in message["message"] and "division by zero" in message["message"]


def test_run_in_progress_is_announced_as_skipped_and_succeeds(
    fake_runtime: FakeRuntime,
    lambda_runtime: LambdaRuntime,
    state_machine: StateMachine,
    notifications: Notifications,
) -> None:
    from handler.errors import RunInProgress

    fake_runtime.fail_with["plan"] = RunInProgress("movielens is locked by run 20261127T200000Z-3f9a1c")

    execution = state_machine.run({"dataset": DATASET})

    assert execution["status"] == "SUCCEEDED"
    assert len(lambda_runtime.calls) == 1, "RunInProgress must not be retried"
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "skipped"}
    assert "another run is in progress" in message["message"]


def test_missing_dataset_fails_without_calling_the_lambda(
    fake_runtime: FakeRuntime, lambda_runtime: LambdaRuntime, state_machine: StateMachine
) -> None:
    execution = state_machine.run({"datset": DATASET})

    assert execution["status"] == "FAILED"
    assert lambda_runtime.calls == []


def test_lock_lost_in_a_batch_is_not_retried(
    fake_runtime: FakeRuntime, lambda_runtime: LambdaRuntime, state_machine: StateMachine, retry_waits: list[float]
) -> None:
    from handler.errors import LockLost

    fake_runtime.fail_with["copy_batch"] = LockLost("movielens lock taken over by run 20261128T200000Z-aaaaaa")

    state_machine.run({"dataset": DATASET})

    # moto 5.2.5 ignores ToleratedFailurePercentage and lets a Distributed Map succeed whatever its children
    # did, so only the retry policy is checked here, not that the Map fails as it does on AWS.
    assert retry_waits == []
    assert sorted(call["batch"] for call in lambda_runtime.calls if call["action"] == "copy_batch") == [0, 1, 2, 3]
