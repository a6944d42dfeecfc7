"""The deployed state machine definition run end to end in moto's Step Functions interpreter.

moto executes Amazon States Language when its user config asks for it, and sends `lambda:invoke` tasks to
`LambdaBackend.invoke`, which cannot run code without Docker. The `lambda_runtime` fixture replaces that
method with a call into the real handler in this process, so the definition, the Lambda contract and the
runtime are tested together against moto's S3 and SNS. Faults the runtime cannot be asked to produce (a
crash, a lock taken over mid-run) are injected by wrapping the real handler, never by replacing it. The harness
(the patched Lambda service, the subscribed topic, the dataset) is tests/sfn_harness.py.
"""

from __future__ import annotations

import json
from datetime import date as Date
from typing import Any
from urllib.parse import unquote

import boto3
import pytest

from handler import lambda_function
from handler.ledger import Ledger
from handler.runner import Engine
from handler.store import Store
from infra.workflow_definition import MAP_RESULTS_PREFIX, build_definition
from tests.conftest import REGION, dataset_config, landed_keys, list_keys
from tests.sfn_harness import (  # noqa: F401 (fixtures)
    ACCOUNT,
    DATASET,
    Dataset,
    LambdaRuntime,
    Notifications,
    StateMachine,
    create_state_machine,
    dataset_fixture,
    lambda_runtime_fixture,
    notifications_fixture,
    output_of,
    retry_waits_fixture,
    state_machine_fixture,
)

DATE = "2026-11-27"


# ---- the scenarios --------------------------------------------------------------------------------


def test_a_few_thousand_objects_land_completely_with_lineage_and_a_success_notification(
    dataset: Dataset, state_machine: StateMachine, lambda_runtime: LambdaRuntime, notifications: Notifications
) -> None:
    source_keys = dataset.add_objects(2500)

    execution = state_machine.run({"dataset": DATASET, "date": DATE})

    assert execution["status"] == "SUCCEEDED", execution
    assert lambda_runtime.calls[0] == {
        "action": "plan",
        "dataset": DATASET,
        "date": DATE,
        "max_copy_width": 4,
        "s3_writes_per_second": 3500,
        "execution": execution["executionArn"],
    }
    assert {call["execution"] for call in lambda_runtime.calls} == {execution["executionArn"]}, (
        "every step, Map children included, carries the execution's id (the lock records it)"
    )
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

    assert output_of(execution)["finalize"]["status"] == "succeeded"
    # The dataset's 8 copies in flight (133 a second) would take 26 invocations to offer S3's rate; the stack allows 4.
    assert output_of(execution)["plan"]["copy_width"] == 4
    recorded = Ledger(Store(dataset.s3), dataset_config(dataset.source, dataset.raw)).last_run()
    assert recorded is not None
    summary = recorded.to_json()
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
    # An error of S3's may be an outage: plan is retried twice (each retry takes its own lock back), then the
    # execution hands back whatever lock it holds.
    assert lambda_runtime.actions() == ["plan", "plan", "plan", "release"]
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "failed"}
    assert message["subject"] == f"[ingestion] {DATASET}: failed at Plan"
    assert "failed at step Plan" in message["message"], message["message"]
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
    other = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:ingest:other-night"
    Ledger(Store(dataset.s3), dataset_config(dataset.source, dataset.raw)).lock.acquire(
        "20261127T190000Z-abcdef", execution=other
    )

    execution = state_machine.run({"dataset": DATASET, "date": DATE})

    assert execution["status"] == "SUCCEEDED"
    assert lambda_runtime.actions() == ["plan"], "RunInProgress is not retried"
    assert landed_keys(dataset.s3, dataset.raw) == []
    [message] = notifications.receive()
    assert message["attributes"] == {"dataset": DATASET, "status": "skipped"}
    assert "another run is in progress" in message["subject"]
    assert f"run 20261127T190000Z-abcdef (execution {other}" in message["message"], "names who holds the dataset"


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
    engine = Engine(Store(dataset.s3), dataset_config(dataset.source, dataset.raw))
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
            doc.update(run_id="20261127T210000Z-other0", token="someone-else", execution="another-execution")
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


def test_the_copy_map_runs_as_wide_as_the_plan_answered_and_the_other_maps_as_wide_as_the_stack(
    dataset: Dataset,
    lambda_runtime: LambdaRuntime,
    notifications: Notifications,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Sized to 300 writes a second, the dataset's copy_batch (8 in flight at 60 ms: 133 a second) gets a width of 2,
    # while planning and finalizing keep the stack's 4. Each Map run's width is what DescribeMapRun reports.
    machine = create_state_machine(
        monkeypatch,
        build_definition(
            function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ingest",
            topic_arn=notifications.topic_arn,
            map_concurrency=4,
            tolerated_failure_percentage=0,
            results_bucket=dataset.raw,
            s3_writes_per_second=300,
        ),
    )
    source_keys = dataset.add_objects(2500)

    execution = machine.run({"dataset": DATASET, "date": DATE})

    assert execution["status"] == "SUCCEEDED", execution
    assert output_of(execution)["plan"]["copy_width"] == 2
    sfn = boto3.client("stepfunctions", region_name=REGION)
    runs = [
        sfn.describe_map_run(mapRunArn=run["mapRunArn"])
        for run in sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"]
    ]
    copy_batches = sum(1 for call in lambda_runtime.calls if call["action"] == "copy_batch")
    widths = sorted((run["itemCounts"]["total"], run["maxConcurrency"]) for run in runs)
    assert copy_batches == 7
    assert widths == [(1, 4), (1, 4), (7, 2)], "plan shards and finalize shards at 4, the 7 copy batches at 2"
    assert len(landed_keys(dataset.s3, dataset.raw)) == len(source_keys)
