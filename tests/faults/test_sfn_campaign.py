"""The Step Functions fault campaign (issue 21): the deployed definition in moto's interpreter, the real handler as
its Lambda, and Lambda's own faults (a lost answer, a death part-way, a duplicate run, throttling) at each step.

Each setting is one fault kind at one action (or a mix), parametrized over seeded trials: FAULT_TRIALS per setting
(`make faults`: 30), one trial of the quick settings in plain `make test`, FAULT_SEED to replay one. A trial runs
one execution with the fault and one without, and judges the status, the notifications, the buckets and the
ledger (tests/faults/sfn_campaign.py, docs/RELIABILITY.md "Step Functions campaign").

The first tests check the harness itself: that moto's Map, once patched, fails as AWS's does past its tolerated
failures, and that each injected fault reaches the Task as AWS names it, exactly once per attempt.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest

from handler import lambda_function
from tests.conftest import REGION, list_keys, new_bucket
from tests.faults.campaign import trial_params
from tests.faults.sfn_campaign import (
    SETTINGS,
    Fault,
    FaultPlan,
    faulty_lambda,
    lambda_tasks,
    retry_budget,
    run_setting,
)
from tests.sfn_harness import (  # noqa: F401 (fixture)
    FUNCTION_ARN,
    create_state_machine,
    honour_tolerated_failure,
    retry_waits_fixture,
)

# ---- the harness: moto's Map and the ToleratedFailurePercentage ---------------------------------------------


def tiny_map(tolerated_percentage: float) -> dict[str, Any]:
    """A Distributed Map over [1, 2, 3, 4] whose child fails on item 2; a Catch puts what the Map failed with in the
    output's `error`."""
    return {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 1,
                "ToleratedFailurePercentage": float(tolerated_percentage),
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Check",
                    "States": {
                        "Check": {
                            "Type": "Choice",
                            "Choices": [{"Variable": "$", "NumericEquals": 2, "Next": "Broken"}],
                            "Default": "Fine",
                        },
                        "Broken": {"Type": "Fail", "Error": "ItemBroken", "Cause": "item 2 always fails"},
                        "Fine": {"Type": "Succeed"},
                    },
                },
                "ResultPath": "$.results",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "MapFailed"}],
                "End": True,
            },
            # A Pass, not a Fail with ErrorPath: moto (after LocalStack, and the States Language spec) refuses a Fail
            # state's error name that begins with `States.`, and ends the execution with States.Runtime instead.
            "MapFailed": {"Type": "Pass", "End": True},
        },
    }


def run_tiny_map(monkeypatch: pytest.MonkeyPatch, tolerated_percentage: float) -> dict[str, Any]:
    machine = create_state_machine(monkeypatch, tiny_map(tolerated_percentage))
    return machine.run({"items": [1, 2, 3, 4]})


def test_moto_as_shipped_ignores_the_tolerated_failure_percentage(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why `honour_tolerated_failure` exists. If this fails, moto has learnt the setting: drop the patch."""
    assert "error" not in json.loads(run_tiny_map(monkeypatch, 0)["output"])


def test_a_map_fails_past_its_tolerated_failures_as_on_aws(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """One failed child of four is 25 %: past a 0 % or 20 % threshold the Map fails with
    States.ExceedToleratedFailureThreshold, which its Catch sees; within 25 % or 50 % it succeeds."""
    honour_tolerated_failure(monkeypatch)

    for percentage in (0, 20):
        error = json.loads(run_tiny_map(monkeypatch, percentage)["output"]).get("error")
        assert error is not None, f"the Map did not fail at {percentage} %"
        assert error["Error"] == "States.ExceedToleratedFailureThreshold", error
        assert "1 failed" in error["Cause"] and "of 4 items" in error["Cause"], error["Cause"]
    for percentage in (25, 50):
        output = json.loads(run_tiny_map(monkeypatch, percentage)["output"])
        assert "error" not in output and len(output["results"]) == 4, (percentage, output)


def test_no_child_starts_once_the_map_has_failed(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS stops starting children when the Map Run fails: items after the failed one (one at a time) never run."""
    honour_tolerated_failure(monkeypatch)
    machine = create_state_machine(monkeypatch, tiny_map(0))
    sfn = boto3.client("stepfunctions", region_name=REGION)
    execution = machine.run({"items": [1, 2, 3, 4]})
    assert "error" in json.loads(execution["output"])
    [map_run] = sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"]
    counts = sfn.describe_map_run(mapRunArn=map_run["mapRunArn"])["itemCounts"]
    assert (counts["succeeded"], counts["failed"], counts["aborted"]) == (1, 1, 2), counts


# ---- the harness: each Lambda fault as the Task sees it --------------------------------------------------------


def one_task(retried: list[str], attempts: int = 6) -> dict[str, Any]:
    """One Lambda Task retried on `retried` (waits are not slept: retry_waits), its error caught into the output."""
    return {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": FUNCTION_ARN, "Payload": {"action": "plan", "dataset": "x"}},
                "Retry": [{"ErrorEquals": retried, "IntervalSeconds": 1, "MaxAttempts": attempts}] if retried else [],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                "ResultSelector": {"answer.$": "$.Payload"},
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }


class Writer:
    """A stand-in handler that writes five objects one after another, then answers how many it wrote; a thread it
    leaves behind tries a sixth write later, as a lock heartbeat would."""

    def __init__(self, s3: Any, bucket: str):
        self.s3, self.bucket = s3, bucket
        self.started = 0
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.started += 1
            run = self.started
        client = lambda_function._s3(1).client
        for n in range(1, 6):
            client.put_object(Bucket=self.bucket, Key=f"run{run}/object{n}", Body=b"x")

        def late() -> None:
            time.sleep(0.2)
            client.put_object(Bucket=self.bucket, Key=f"run{run}/late", Body=b"x")

        threading.Thread(target=late, daemon=True).start()
        time.sleep(0.4)  # the late write happens while the handler still runs
        return {"wrote": 5}


def history_errors(execution_arn: str) -> list[str]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [e["taskFailedEventDetails"]["error"] for e in events if e["type"] == "TaskFailed"]


@pytest.fixture
def writer(aws: None, monkeypatch: pytest.MonkeyPatch, retry_waits: list[float]) -> Writer:
    s3 = boto3.client("s3", region_name=REGION)
    return Writer(s3, new_bucket(s3, "writes"))


def test_a_lost_answer_is_named_as_aws_names_it_and_the_handler_ran_once_per_attempt(
    writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = create_state_machine(monkeypatch, one_task(["Lambda.ServiceException", "Lambda.SdkClientException"]))
    plan = FaultPlan().at("plan", 0, Fault("lost", "plan", error="ServiceException"))
    plan.at("plan", 1, Fault("lost", "plan", error="SdkClientException"))
    with faulty_lambda(monkeypatch, plan, writer) as lam:
        execution = machine.run({})
    assert execution["status"] == "SUCCEEDED", execution
    assert history_errors(execution["executionArn"]) == ["Lambda.ServiceException", "Lambda.SdkClientException"]
    assert json.loads(execution["output"]) == {"answer": {"wrote": 5}}
    # botocore inside moto's interpreter did not retry on its own: three invocations, three handler runs.
    assert [i.attempt for i in lam.invocations] == [1, 2, 3] and writer.started == 3
    assert len(list_keys(writer.s3, writer.bucket)) == 18, "each run wrote all it writes: the answers were lost after"


def test_throttling_does_not_run_the_handler_and_is_retried_by_the_definition(
    writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = create_state_machine(monkeypatch, one_task(["Lambda.TooManyRequestsException"]))
    plan = FaultPlan().at("plan", 0, Fault("throttle", "plan", times=3))
    with faulty_lambda(monkeypatch, plan, writer) as lam:
        execution = machine.run({})
    assert execution["status"] == "SUCCEEDED", execution
    assert history_errors(execution["executionArn"]) == ["Lambda.TooManyRequestsException"] * 3
    assert len(lam.invocations) == 4 and writer.started == 1


@pytest.mark.parametrize("applied", [False, True], ids=["not-applied", "applied"])
def test_a_death_stops_every_write_of_the_invocation_from_its_moment_on(
    writer: Writer, monkeypatch: pytest.MonkeyPatch, applied: bool
) -> None:
    machine = create_state_machine(monkeypatch, one_task([]))
    plan = FaultPlan().at("plan", 0, Fault("death", "plan", error="Sandbox.Timedout", kill_at=3, applied=applied))
    with faulty_lambda(monkeypatch, plan, writer) as lam:
        execution = machine.run({})
    assert history_errors(execution["executionArn"]) == ["Sandbox.Timedout"]
    assert json.loads(execution["output"])["error"]["Error"] == "Sandbox.Timedout"
    written = sorted(list_keys(writer.s3, writer.bucket))
    assert written == [f"run1/object{n}" for n in range(1, 4 if applied else 3)], (
        "nothing after the death, no late write"
    )
    assert lam.runs[0].dead and not lam.problems


def test_a_death_after_the_last_write_is_still_a_death(writer: Writer, monkeypatch: pytest.MonkeyPatch) -> None:
    machine = create_state_machine(monkeypatch, one_task(["Lambda.Unknown"], attempts=1))
    plan = FaultPlan().at("plan", 0, Fault("death", "plan", error="Lambda.Unknown", kill_at=99))
    with faulty_lambda(monkeypatch, plan, writer) as lam:
        execution = machine.run({})
    assert execution["status"] == "SUCCEEDED", execution
    assert history_errors(execution["executionArn"]) == ["Lambda.Unknown"]
    assert "after all its" in lam.runs[0].death and writer.started == 2


def test_a_duplicate_runs_the_handler_twice_at_once_and_the_task_gets_one_answer(
    writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = create_state_machine(monkeypatch, one_task([]))
    plan = FaultPlan().at("plan", 0, Fault("duplicate", "plan", answer=1, stagger=0.01))
    with faulty_lambda(monkeypatch, plan, writer) as lam:
        execution = machine.run({})
    assert execution["status"] == "SUCCEEDED", execution
    first, second = lam.runs
    assert first.done.is_set() and second.done.is_set() and writer.started == 2
    assert first.thread.name != second.thread.name and {id(s) for s in first.slots}.isdisjoint(
        id(s) for s in second.slots
    ), "two sandboxes"
    assert len(list_keys(writer.s3, writer.bucket)) == 12


def test_the_retry_budgets_are_read_from_the_definition() -> None:
    from infra.workflow_definition import build_definition

    definition = build_definition(FUNCTION_ARN, "arn:aws:sns:us-east-1:123456789012:t", 2, 0, "results")
    tasks = lambda_tasks(definition)
    assert set(tasks) == {"plan", "plan_shard", "seal_plan", "copy_batch", "finalize_shard", "finalize", "release"}
    for task in tasks.values():
        assert retry_budget(task, "Lambda.TooManyRequestsException") >= 2


# ---- the campaign -------------------------------------------------------------------------------------------------


QUICK = tuple(name for name, setting in SETTINGS.items() if setting.quick)


@pytest.mark.parametrize(("setting", "seed"), trial_params("sfn", tuple(SETTINGS), quick=QUICK))
def test_step_functions_fault(
    aws: None, monkeypatch: pytest.MonkeyPatch, retry_waits: list[float], setting: str, seed: int
) -> None:
    """One trial of one setting (`-k 'test_step_functions_fault and death-copy_batch'` selects a row)."""
    run_setting(setting, seed, monkeypatch)
