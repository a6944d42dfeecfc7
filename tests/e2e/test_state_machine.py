"""The deployed state machine definition run end to end in moto's Step Functions interpreter.

moto executes Amazon States Language when its user config asks for it, and sends `lambda:invoke` tasks to
`LambdaBackend.invoke`, which cannot run code without Docker. The `lambda_runtime` fixture replaces that
method with a call into the real handler in this process, so the definition, the Lambda contract and the
runtime are tested together against moto's S3 and SNS. Faults the runtime cannot be asked to produce (a
crash, a lock taken over mid-run) are injected by wrapping the real handler, never by replacing it.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date as Date
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from moto.awslambda.models import LambdaBackend
from moto.core.config import default_user_config
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

from handler import lambda_function
from handler.ledger import Ledger, LedgerPaths
from handler.runner import Engine
from infra.workflow_definition import MAP_RESULTS_PREFIX, build_definition
from tests.conftest import REGION, dataset_config, expire_lock, landed_keys, list_keys, unique_bucket

ACCOUNT = "123456789012"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ingest"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ingest-state-machine"
DATASET = "movielens"
DATE = "2026-11-27"

Handler = Callable[[dict[str, Any], Any], Any]


# ---- harness --------------------------------------------------------------------------------------------


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object a handler may read."""

    function_name: str = "ingest"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = FUNCTION_ARN
    memory_limit_in_mb: int = 1024

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@dataclass
class LambdaRuntime:
    """Where the patched Lambda service sends invocations; tests may wrap `handler` and read `calls`."""

    handler: Handler = lambda_function.handler
    calls: list[dict[str, Any]] = field(default_factory=list)

    def actions(self) -> list[str]:
        return [call.get("action", "run") for call in self.calls]


@pytest.fixture
def lambda_runtime(aws: None, monkeypatch: pytest.MonkeyPatch) -> LambdaRuntime:
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


@pytest.fixture
def notifications(aws: None) -> Notifications:
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name=unique_bucket("ingest-runs"))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=unique_bucket("ingest-runs"))["QueueUrl"]
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
        while (described := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
            if time.monotonic() > deadline:
                raise AssertionError(f"execution still RUNNING after {timeout}s: {execution_arn}")
            time.sleep(0.05)
        return described


@pytest.fixture
def state_machine(
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    lambda_runtime: LambdaRuntime,
    notifications: Notifications,
    retry_waits: list[float],
    dataset: Dataset,
) -> StateMachine:
    """The production definition, pointed at the patched Lambda function and the subscribed topic."""
    # Must be set before the state machine is created: without it moto only returns a canned history.
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    definition = build_definition(
        function_arn=FUNCTION_ARN,
        topic_arn=notifications.topic_arn,
        map_concurrency=4,
        tolerated_failure_percentage=0,
        results_bucket=dataset.raw,
    )
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(
        name=unique_bucket("ingest"), definition=json.dumps(definition), roleArn=ROLE_ARN, type="STANDARD"
    )["stateMachineArn"]
    return StateMachine(arn=arn)


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
        expire_lock(Ledger(self.s3, dataset_config(self.source, self.raw)))

    def expected_key(self, source_key: str, date: str) -> str:
        # The default key template `{dir}/ingest_date={date}/{name}` under the target prefix `movielens/`.
        directory, _, name = source_key.removeprefix("movielens/").rpartition("/")
        return f"movielens/{directory}/ingest_date={date}/{name}"


@pytest.fixture
def dataset(aws: None, monkeypatch: pytest.MonkeyPatch, notifications: Notifications) -> Dataset:
    """Source and raw buckets, and the config object the handler reads through CONFIG_BUCKET/CONFIG_KEY."""
    s3 = boto3.client("s3", region_name=REGION)
    source, raw, config_bucket = unique_bucket("source"), unique_bucket("raw"), unique_bucket("config")
    for bucket in (source, raw, config_bucket):
        s3.create_bucket(Bucket=bucket)
    # Several Map batches from a few thousand objects.
    config = dataset_config(source, raw, batch_max_objects=400, concurrency=8)
    s3.put_object(
        Bucket=config_bucket,
        Key=f"config/{DATASET}.json",
        Body=json.dumps({"datasets": {DATASET: config.to_dict()}}).encode(),
    )
    monkeypatch.setenv("CONFIG_BUCKET", config_bucket)
    monkeypatch.setenv("CONFIG_KEY", "config/{dataset}.json")
    monkeypatch.setenv("SNS_TOPIC_ARN", notifications.topic_arn)
    return Dataset(source=source, raw=raw, s3=s3)


def output_of(execution: dict[str, Any]) -> dict[str, Any]:
    return json.loads(execution["output"])


# ---- the scenarios --------------------------------------------------------------------------------


def test_a_few_thousand_objects_land_completely_with_lineage_and_a_success_notification(
    dataset: Dataset, state_machine: StateMachine, lambda_runtime: LambdaRuntime, notifications: Notifications
) -> None:
    source_keys = dataset.add_objects(2500)

    execution = state_machine.run({"dataset": DATASET, "date": DATE})

    assert execution["status"] == "SUCCEEDED", execution
    assert lambda_runtime.calls[0] == {"action": "plan", "dataset": DATASET, "date": DATE}
    batches = sorted(call["batch"] for call in lambda_runtime.calls if call["action"] == "copy_batch")
    assert batches == list(range(7)), "2,500 objects in batches of at most 400"
    assert lambda_runtime.actions()[-1] == "finalize"

    expected = {dataset.expected_key(key, DATE): key for key in source_keys}
    assert sorted(landed_keys(dataset.s3, dataset.raw)) == sorted(expected)
    for target_key, source_key in expected.items():
        head = dataset.s3.head_object(Bucket=dataset.raw, Key=target_key)
        lineage = head["Metadata"]
        assert lineage["ingest-source-bucket"] == dataset.source
        assert unquote(lineage["ingest-source-key"]) == source_key
        assert lineage["ingest-dataset"] == DATASET and lineage["ingest-date"] == DATE

    summary = output_of(execution)["finalize"]["summary"]
    assert (summary["status"], summary["copied"], summary["failed"]) == ("succeeded", 2500, 0)
    written = [key for key in list_keys(dataset.s3, dataset.raw, MAP_RESULTS_PREFIX) if key.endswith("/manifest.json")]
    assert len(written) == 3, "each Map (plan shards, copy batches, finalize shards) wrote its results to S3"
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "succeeded"}
    assert DATASET in message["subject"] and summary["run_id"] in message["message"]


def test_a_second_execution_lands_nothing_new_and_says_so(
    dataset: Dataset, state_machine: StateMachine, lambda_runtime: LambdaRuntime, notifications: Notifications
) -> None:
    dataset.add_objects(30)
    assert state_machine.run({"dataset": DATASET, "date": DATE})["status"] == "SUCCEEDED"
    before = {
        k: dataset.s3.head_object(Bucket=dataset.raw, Key=k)["ETag"] for k in landed_keys(dataset.s3, dataset.raw)
    }
    notifications.receive()
    lambda_runtime.calls.clear()

    # No date this time: the plan request without one is the scheduler's.
    execution = state_machine.run({"dataset": DATASET})

    assert execution["status"] == "SUCCEEDED", execution
    actions = [call["action"] for call in lambda_runtime.calls]
    assert actions == ["plan", "plan_shard", "seal_plan"], "nothing to copy or finalize"
    after = {k: dataset.s3.head_object(Bucket=dataset.raw, Key=k)["ETag"] for k in landed_keys(dataset.s3, dataset.raw)}
    assert after == before
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "nothing_new"}


def test_a_missing_target_bucket_fails_the_execution_with_a_failure_message(
    dataset: Dataset, state_machine: StateMachine, lambda_runtime: LambdaRuntime, notifications: Notifications
) -> None:
    dataset.add_objects(5)
    for key in list_keys(dataset.s3, dataset.raw):
        dataset.s3.delete_object(Bucket=dataset.raw, Key=key)
    dataset.s3.delete_bucket(Bucket=dataset.raw)

    execution = state_machine.run({"dataset": DATASET, "date": DATE})

    assert execution["status"] == "FAILED"
    assert execution.get("error") == "NoSuchBucket", execution
    assert lambda_runtime.actions() == ["plan"]
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "failed"}
    assert DATASET in message["subject"]
    assert "NoSuchBucket" in message["message"], message["message"]


def test_objects_that_fail_to_land_fail_the_execution_after_the_partial_notification(
    dataset: Dataset, state_machine: StateMachine, lambda_runtime: LambdaRuntime, notifications: Notifications
) -> None:
    dataset.add_objects(3)
    # A source key whose landed key would pass S3's 1,024-byte limit fails on its own; the others land.
    long_key = "movielens/" + "d" * 500 + "/" + "f" * 490 + ".csv"
    dataset.s3.put_object(Bucket=dataset.source, Key=long_key, Body=b"x")

    execution = state_machine.run({"dataset": DATASET, "date": DATE})

    assert execution["status"] == "FAILED"
    assert execution.get("error") == "ObjectsFailed", execution
    assert len(landed_keys(dataset.s3, dataset.raw)) == 3
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "partial"}
    assert "1024-byte limit" in message["message"]


# ---- the definition's other paths, with the real runtime --------------------------------------------------


def test_another_live_run_makes_the_execution_skip_and_succeed(
    dataset: Dataset, state_machine: StateMachine, lambda_runtime: LambdaRuntime, notifications: Notifications
) -> None:
    dataset.add_objects(5)
    Ledger(dataset.s3, dataset_config(dataset.source, dataset.raw)).lock.acquire("20261127T190000Z-abcdef")

    execution = state_machine.run({"dataset": DATASET, "date": DATE})

    assert execution["status"] == "SUCCEEDED"
    assert lambda_runtime.actions() == ["plan"], "RunInProgress is not retried"
    assert landed_keys(dataset.s3, dataset.raw) == []
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "skipped"}
    assert "another run is in progress" in message["message"]


def test_an_interrupted_run_is_completed_first_then_tonights_files_are_planned_again(
    dataset: Dataset, state_machine: StateMachine, lambda_runtime: LambdaRuntime, notifications: Notifications
) -> None:
    first = dataset.add_objects(20)
    started = lambda_function.handler({"action": "plan", "dataset": DATASET, "date": "2026-11-26"}, None)
    for shard in range(started["shard_count"]):
        lambda_function.handler(
            {"action": "plan_shard", "dataset": DATASET, "run_id": started["run_id"], "shard": shard}, None
        )
    interrupted = lambda_function.handler(
        {"action": "seal_plan", "dataset": DATASET, "run_id": started["run_id"]}, None
    )
    # The interrupted run's Lambda died: its lock expires instead of being released.
    dataset.expire_lock()
    later = dataset.add_objects(10, start=20)

    execution = state_machine.run({"dataset": DATASET, "date": DATE})

    assert execution["status"] == "SUCCEEDED", execution
    assert lambda_runtime.actions().count("plan") == 2 and lambda_runtime.actions().count("finalize") == 2
    landed = set(landed_keys(dataset.s3, dataset.raw))
    assert {dataset.expected_key(key, "2026-11-26") for key in first} <= landed, "resumed under its own date"
    assert {dataset.expected_key(key, DATE) for key in later} <= landed
    messages = notifications.receive()
    assert [m["attributes"]["status"] for m in messages] == ["succeeded", "succeeded"]
    assert interrupted["run_id"] in messages[0]["message"]


def test_a_plan_whose_only_objects_collide_fails_the_execution_after_its_notification(
    dataset: Dataset, state_machine: StateMachine, lambda_runtime: LambdaRuntime, notifications: Notifications
) -> None:
    for key in ("movielens/x//y.csv", "movielens/x/y.csv"):
        dataset.s3.put_object(Bucket=dataset.source, Key=key, Body=b"y")

    execution = state_machine.run({"dataset": DATASET, "date": DATE})

    assert execution["status"] == "FAILED"
    assert execution.get("error") == "ObjectsFailed", execution
    assert lambda_runtime.actions() == ["plan", "plan_shard", "seal_plan"]
    assert landed_keys(dataset.s3, dataset.raw) == []
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "failed"}
    assert "collision" in message["message"]


def test_an_interrupted_empty_run_is_finished_by_plan_and_tonights_files_still_land(
    dataset: Dataset, state_machine: StateMachine, lambda_runtime: LambdaRuntime, notifications: Notifications
) -> None:
    engine = Engine(dataset.s3, dataset_config(dataset.source, dataset.raw))
    # An empty run whose plan step died while finalizing it: open, with nothing to copy, lock left behind.
    dataset.s3.meta.events.register("before-parameter-build.s3.PutObject", _die_at_summary)
    with pytest.raises(RuntimeError):
        engine.plan_all(Date(2026, 11, 26))
    dataset.s3.meta.events.unregister("before-parameter-build.s3.PutObject", _die_at_summary)
    dataset.expire_lock()
    tonight = dataset.add_objects(5)

    execution = state_machine.run({"dataset": DATASET, "date": DATE})

    assert execution["status"] == "SUCCEEDED", execution
    assert lambda_runtime.actions().count("plan") == 2
    assert sorted(landed_keys(dataset.s3, dataset.raw)) == sorted(dataset.expected_key(k, DATE) for k in tonight)
    statuses = [m["attributes"]["status"] for m in notifications.receive()]
    assert statuses == ["nothing_new", "succeeded"]


def _die_at_summary(params: dict[str, Any], **kwargs: Any) -> None:
    if "/summary/" in params.get("Key", ""):
        raise RuntimeError("the Lambda died while finalizing")


def test_a_crashing_finalize_is_retried_and_the_run_still_succeeds(
    dataset: Dataset,
    state_machine: StateMachine,
    lambda_runtime: LambdaRuntime,
    notifications: Notifications,
    retry_waits: list[float],
) -> None:
    dataset.add_objects(5)
    crashes = iter([MemoryError("Runtime exited with error"), ConnectionResetError("reset by peer")])

    def flaky(event: dict[str, Any], context: Any) -> Any:
        if event["action"] == "finalize" and (crash := next(crashes, None)):
            raise crash
        return lambda_function.handler(event, context)

    lambda_runtime.handler = flaky

    execution = state_machine.run({"dataset": DATASET, "date": DATE})

    assert execution["status"] == "SUCCEEDED", execution
    assert lambda_runtime.actions().count("finalize") == 3
    assert retry_waits == [10, 30]
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "succeeded"}


def test_a_lambda_that_always_crashes_still_produces_a_failure_message(
    dataset: Dataset, state_machine: StateMachine, lambda_runtime: LambdaRuntime, notifications: Notifications
) -> None:
    dataset.add_objects(5)

    def crashing(event: dict[str, Any], context: Any) -> Any:
        if event["action"] == "finalize":
            raise ZeroDivisionError("division by zero")
        return lambda_function.handler(event, context)

    lambda_runtime.handler = crashing

    execution = state_machine.run({"dataset": DATASET, "date": DATE})

    assert execution["status"] == "FAILED"
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "failed"}
    assert "ZeroDivisionError" in message["message"] and "division by zero" in message["message"]
    # The lock is handed back (issue 7): the next execution completes the open run at once.
    assert lambda_runtime.actions()[-1] == "release"
    assert list_keys(dataset.s3, dataset.raw, dataset.ledger.lock) == []
    assert list_keys(dataset.s3, dataset.raw, dataset.ledger.open_run) != []
    lambda_runtime.handler = lambda_function.handler
    assert state_machine.run({"dataset": DATASET, "date": DATE})["status"] == "SUCCEEDED"
    assert len(landed_keys(dataset.s3, dataset.raw)) == 5


def test_a_run_whose_lock_is_taken_over_stops_without_retrying_and_reports_failure(
    dataset: Dataset,
    state_machine: StateMachine,
    lambda_runtime: LambdaRuntime,
    notifications: Notifications,
    retry_waits: list[float],
) -> None:
    dataset.add_objects(5)

    def taken_over(event: dict[str, Any], context: Any) -> Any:
        if event["action"] == "copy_batch":
            doc = json.loads(dataset.s3.get_object(Bucket=dataset.raw, Key=dataset.ledger.lock)["Body"].read())
            doc.update(run_id="20261127T210000Z-other0", token="someone-else")
            dataset.s3.put_object(Bucket=dataset.raw, Key=dataset.ledger.lock, Body=json.dumps(doc).encode())
        return lambda_function.handler(event, context)

    lambda_runtime.handler = taken_over

    execution = state_machine.run({"dataset": DATASET, "date": DATE})

    assert execution["status"] == "FAILED"
    assert retry_waits == [], "LockLost is never retried"
    # moto's interpreter lets the copy Map go on past its failed child (AWS would stop at
    # ToleratedFailurePercentage 0); the finalize steps then refuse too, and the lock is released.
    assert lambda_runtime.actions() == [
        "plan",
        "plan_shard",
        "seal_plan",
        "copy_batch",
        "finalize_shard",
        "finalize",
        "release",
    ]
    assert landed_keys(dataset.s3, dataset.raw) == []
    assert (
        json.loads(dataset.s3.get_object(Bucket=dataset.raw, Key=dataset.ledger.lock)["Body"].read())["token"]
        == "someone-else"
    ), "release leaves a lock another run holds"
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "failed"}
    assert "LockLost" in message["message"]


def test_an_input_without_a_dataset_fails_before_any_lambda_runs(
    state_machine: StateMachine, lambda_runtime: LambdaRuntime
) -> None:
    execution = state_machine.run({"datset": DATASET})

    assert execution["status"] == "FAILED"
    assert lambda_runtime.calls == []
