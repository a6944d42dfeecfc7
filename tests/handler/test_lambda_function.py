"""The Lambda entry point driven the way docs/lambda-contract.md says the state machine drives it."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import date as Date
from pathlib import Path
from typing import Any

import boto3
import pytest

from handler.errors import ConfigError, LockLost, RunInProgress, UnknownDataset
from handler.lambda_function import handler
from handler.ledger import Ledger
from handler.runner import run_date_for
from handler.store import Store
from tests.conftest import (
    REGION,
    dataset_config,
    expire_lock,
    lambda_config_bucket,
    landed_keys,
    ledger_in,
    list_keys,
    put_lambda_config,
    write_config,
)
from tests.lambda_context import LambdaContext

PLAN_FIELDS = {
    "dataset",
    "run_id",
    "date",
    "resumed",
    "batch_count",
    "planned",
    "bytes",
    "batches",
    "summary",
    "notification",
    "replan",
    "stage",
    "shard_count",
    "shards",
    "final_shards",
    "copy_width",
}


@dataclass
class Deployment:
    """What the stack sets up for the function: buckets, one config object per dataset, the environment."""

    s3: Any
    source: str
    raw: str
    config_bucket: str
    monkeypatch: pytest.MonkeyPatch

    def configure(self, name: str = "movielens", **overrides: Any) -> None:
        put_lambda_config(self.s3, self.config_bucket, self.source, self.raw, name, **overrides)


@pytest.fixture
def deployment(s3: Any, buckets: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Deployment:
    config_bucket = lambda_config_bucket(s3, monkeypatch)
    deployment = Deployment(s3, buckets[0], buckets[1], config_bucket, monkeypatch)
    deployment.configure()
    return deployment


@pytest.fixture
def subscriber(aws: None) -> Any:
    """An SNS topic with an SQS queue subscribed, so published notifications can be read back."""
    return Subscriber.create("ingest-runs")


@dataclass
class Subscriber:
    topic_arn: str
    queue_url: str

    @classmethod
    def create(cls, name: str) -> Subscriber:
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic_arn = sns.create_topic(Name=name)["TopicArn"]
        queue_url = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        return cls(topic_arn, queue_url)

    def messages(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        received = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [json.loads(m["Body"]) for m in received.get("Messages", [])]


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    """Call the handler as Lambda does: JSON in, JSON out (a result that does not serialise fails here)."""
    result = handler(json.loads(json.dumps(event)), LambdaContext())
    return json.loads(json.dumps(result))


def items_at(s3: Any, location: dict[str, str]) -> list[dict[str, Any]]:
    """The JSON list a Distributed Map's ItemReader would read."""
    return json.loads(s3.get_object(Bucket=location["bucket"], Key=location["key"])["Body"].read())


def plan_through(event: dict[str, Any]) -> dict[str, Any]:
    """What the state machine does up to its copy Map: plan, then each round's shards and the seal."""
    s3 = boto3.client("s3", region_name=REGION)
    answer = invoke(event)
    while answer["stage"] == "planning":
        for item in items_at(s3, answer["shards"]):
            invoke({**item, "action": "plan_shard"})
        answer = invoke({"action": "seal_plan", "dataset": answer["dataset"], "run_id": answer["run_id"]})
    return answer


def put_files(s3: Any, bucket: str, count: int) -> None:
    for n in range(count):
        s3.put_object(Bucket=bucket, Key=f"movielens/f{n}.csv", Body=f"file {n}".encode())


# ---- the step events ----------------------------------------------------------------------------------------


def test_plan_copy_batch_and_finalize_follow_the_contract(deployment):
    s3 = deployment.s3
    deployment.configure(batch_max_objects=2)
    put_files(s3, deployment.source, 5)

    started = invoke({"action": "plan", "dataset": "movielens", "date": "2026-11-27"})

    assert set(started) == PLAN_FIELDS
    assert (started["stage"], started["shard_count"], started["batches"]) == ("planning", 1, None)
    assert started["shards"] == {
        "bucket": deployment.raw,
        "key": f"_ingestion/movielens/work/{started['run_id']}/shards-000.json",
    }
    shards = items_at(s3, started["shards"])
    assert shards == [{"dataset": "movielens", "run_id": started["run_id"], "shard": 0}]
    planned = invoke({**shards[0], "action": "plan_shard"})
    assert (planned["shard"], planned["batches"], planned["rest"]) == (0, 3, False)
    plan = invoke({"action": "seal_plan", "dataset": "movielens", "run_id": started["run_id"]})

    assert set(plan) == PLAN_FIELDS
    assert plan["dataset"] == "movielens"
    assert plan["date"] == "2026-11-27"
    assert plan["resumed"] is False
    assert plan["stage"] == "copying"
    assert (plan["batch_count"], plan["planned"], plan["bytes"]) == (3, 5, 30)
    assert plan["summary"] is None
    assert plan["notification"] is None
    assert plan["batches"] == {
        "bucket": deployment.raw,
        "key": f"_ingestion/movielens/work/{plan['run_id']}/batches.json",
    }
    items = json.loads(s3.get_object(**{k.title(): v for k, v in plan["batches"].items()})["Body"].read())
    assert items == [{"dataset": "movielens", "run_id": plan["run_id"], "batch": n} for n in range(3)]

    results = [invoke({**item, "action": "copy_batch"}) for item in items]

    assert results == [
        {"batch": 0, "copied": 2, "skipped": 0, "failed": 0, "bytes": 12},
        {"batch": 1, "copied": 2, "skipped": 0, "failed": 0, "bytes": 12},
        {"batch": 2, "copied": 1, "skipped": 0, "failed": 0, "bytes": 6},
    ]

    finals = items_at(s3, plan["final_shards"])
    assert finals == [{"dataset": "movielens", "run_id": plan["run_id"], "shard": 0}]
    shard = invoke({**finals[0], "action": "finalize_shard"})
    assert (shard["shard"], shard["tally"]["copied"], shard["manifest_part"]) == (
        0,
        5,
        f"s3://{deployment.raw}/_ingestion/movielens/manifest/date=2026-11-27/{plan['run_id']}-00000.jsonl",
    )
    finished = invoke({"action": "finalize", "dataset": "movielens", "run_id": plan["run_id"]})

    assert set(finished) == {"summary", "notification", "replan"}
    assert finished["replan"] is False
    summary = finished["summary"]
    assert (summary["run_id"], summary["date"], summary["status"], summary["copied"]) == (
        plan["run_id"],
        "2026-11-27",
        "succeeded",
        5,
    )
    notification = finished["notification"]
    assert set(notification) == {"subject", "message", "attributes"}
    assert notification["attributes"] == {
        "dataset": {"DataType": "String", "StringValue": "movielens"},
        "status": {"DataType": "String", "StringValue": "succeeded"},
    }
    assert notification["subject"].isascii()
    assert len(notification["subject"]) <= 100
    assert plan["run_id"] in notification["message"]
    assert len(landed_keys(s3, deployment.raw)) == 5
    assert list_keys(s3, deployment.raw, "_ingestion/movielens/work/") == []
    assert list_keys(s3, deployment.raw, "_ingestion/movielens/lock.json") == []


def test_copy_batch_retried_after_success_copies_nothing_twice(deployment):
    s3 = deployment.s3
    put_files(s3, deployment.source, 2)
    plan = plan_through({"action": "plan", "dataset": "movielens", "date": "2026-11-27"})
    event = {"action": "copy_batch", "dataset": "movielens", "run_id": plan["run_id"], "batch": 0}
    first = invoke(event)
    landed = {k: s3.head_object(Bucket=deployment.raw, Key=k)["LastModified"] for k in landed_keys(s3, deployment.raw)}

    again = invoke(event)

    assert again == first
    assert {k: s3.head_object(Bucket=deployment.raw, Key=k)["LastModified"] for k in landed} == landed
    summary = invoke({"action": "finalize", "dataset": "movielens", "run_id": plan["run_id"]})["summary"]
    assert summary["copied"] == 2


def test_plan_with_nothing_to_copy_returns_the_finalized_run(deployment):
    plan = plan_through({"action": "plan", "dataset": "movielens", "date": "2026-11-27"})

    assert set(plan) == PLAN_FIELDS
    assert plan["batch_count"] == 0
    assert plan["replan"] is False, "nothing was interrupted"
    assert plan["summary"]["status"] == "nothing_new"
    assert plan["notification"]["attributes"]["status"] == {"DataType": "String", "StringValue": "nothing_new"}
    assert list_keys(deployment.s3, deployment.raw, "_ingestion/movielens/lock.json") == []
    assert list_keys(deployment.s3, deployment.raw, "_ingestion/movielens/open-run.json") == []


def test_plan_without_a_date_uses_today_in_the_datasets_time_zone(deployment):
    deployment.configure(timezone="Pacific/Kiritimati")

    plan = plan_through({"action": "plan", "dataset": "movielens"})

    expected = run_date_for(dataset_config(deployment.source, deployment.raw, timezone="Pacific/Kiritimati"))
    assert plan["date"] == expected.isoformat()


def test_plan_after_an_interrupted_run_returns_that_run_and_finalize_asks_for_a_replan(deployment):
    s3 = deployment.s3
    put_files(s3, deployment.source, 1)
    crashed = plan_through({"action": "plan", "dataset": "movielens", "date": "2026-11-27"})
    expire_lock(ledger_in(s3, deployment.raw))

    resumed = plan_through({"action": "plan", "dataset": "movielens", "date": "2026-11-28"})
    invoke({"action": "copy_batch", "dataset": "movielens", "run_id": resumed["run_id"], "batch": 0})
    finished = invoke({"action": "finalize", "dataset": "movielens", "run_id": resumed["run_id"]})
    replanned = plan_through({"action": "plan", "dataset": "movielens", "date": "2026-11-28"})

    assert (resumed["run_id"], resumed["date"], resumed["resumed"]) == (crashed["run_id"], "2026-11-27", True)
    assert finished["replan"] is True
    assert finished["summary"]["resumed"] is True
    assert "interrupted earlier" in finished["notification"]["message"]
    assert (replanned["resumed"], replanned["date"], replanned["batch_count"]) == (False, "2026-11-28", 0)
    assert landed_keys(s3, deployment.raw) == ["movielens/ingest_date=2026-11-27/f0.csv"]


def test_second_concurrent_plan_raises_run_in_progress(deployment):
    put_files(deployment.s3, deployment.source, 1)
    first = plan_through({"action": "plan", "dataset": "movielens"})

    with pytest.raises(RunInProgress) as raised:
        plan_through({"action": "plan", "dataset": "movielens"})

    assert first["run_id"] in str(raised.value)


def test_copy_batch_of_a_finalized_run_raises_lock_lost(deployment):
    put_files(deployment.s3, deployment.source, 1)
    plan = plan_through({"action": "plan", "dataset": "movielens"})
    invoke({"action": "finalize", "dataset": "movielens", "run_id": plan["run_id"]})

    with pytest.raises(LockLost):
        invoke({"action": "copy_batch", "dataset": "movielens", "run_id": plan["run_id"], "batch": 0})


def test_release_hands_back_the_lock_of_a_failed_run_which_the_next_plan_then_completes(deployment):
    put_files(deployment.s3, deployment.source, 3)
    plan = plan_through({"action": "plan", "dataset": "movielens"})

    released = invoke({"action": "release", "dataset": "movielens", "run_id": plan["run_id"]})
    again = invoke({"action": "release", "dataset": "movielens", "run_id": plan["run_id"]})
    resumed = plan_through({"action": "plan", "dataset": "movielens"})

    assert (released["released"], again["released"]) == (True, False)
    assert (resumed["run_id"], resumed["resumed"]) == (plan["run_id"], True)


def test_release_leaves_a_lock_another_run_holds(deployment):
    put_files(deployment.s3, deployment.source, 1)
    plan = plan_through({"action": "plan", "dataset": "movielens"})

    answer = invoke({"action": "release", "dataset": "movielens", "run_id": "20261127T210000Z-other0"})

    assert answer["released"] is False
    with pytest.raises(RunInProgress):
        plan_through({"action": "plan", "dataset": "movielens"})
    assert plan["run_id"]


# ---- one-shot ---------------------------------------------------------------------------------------------


def test_one_shot_event_lands_everything_and_publishes_the_notification(deployment, subscriber):
    deployment.monkeypatch.setenv("SNS_TOPIC_ARN", subscriber.topic_arn)
    deployment.configure(batch_max_objects=2)
    put_files(deployment.s3, deployment.source, 3)

    summary = invoke({"dataset": "movielens", "date": "2026-11-27"})

    assert summary["status"] == "succeeded"
    assert summary["copied"] == 3
    assert sorted(landed_keys(deployment.s3, deployment.raw)) == [
        f"movielens/ingest_date=2026-11-27/f{n}.csv" for n in range(3)
    ]
    (message,) = subscriber.messages()
    assert message["TopicArn"] == subscriber.topic_arn
    assert message["Subject"] == "[ingestion] movielens 2026-11-27: succeeded"
    assert summary["run_id"] in message["Message"]
    assert message["MessageAttributes"] == {
        "dataset": {"Type": "String", "Value": "movielens"},
        "status": {"Type": "String", "Value": "succeeded"},
    }


def test_one_shot_publishes_to_the_datasets_own_topic_over_the_environments(deployment, subscriber):
    own = Subscriber.create("movielens-runs")
    deployment.monkeypatch.setenv("SNS_TOPIC_ARN", subscriber.topic_arn)
    deployment.configure(topic_arn=own.topic_arn)
    put_files(deployment.s3, deployment.source, 1)

    invoke({"dataset": "movielens"})

    assert len(own.messages()) == 1
    assert subscriber.messages() == []


def test_one_shot_without_a_topic_runs_without_error(deployment):
    put_files(deployment.s3, deployment.source, 2)

    summary = invoke({"dataset": "movielens"})

    assert summary["copied"] == 2


def test_one_shot_after_an_interrupted_run_reports_and_notifies_both_runs(deployment, subscriber):
    s3 = deployment.s3
    deployment.monkeypatch.setenv("SNS_TOPIC_ARN", subscriber.topic_arn)
    put_files(s3, deployment.source, 1)
    crashed = plan_through({"action": "plan", "dataset": "movielens", "date": "2026-11-27"})
    expire_lock(ledger_in(s3, deployment.raw))
    s3.put_object(Bucket=deployment.source, Key="movielens/late.csv", Body=b"late")

    result = invoke({"dataset": "movielens", "date": "2026-11-28"})

    assert (result["date"], result["copied"], result["resumed"]) == ("2026-11-28", 1, False)
    assert [(r["run_id"], r["date"], r["copied"]) for r in result["resumed_runs"]] == [
        (crashed["run_id"], "2026-11-27", 1)
    ]
    subjects = sorted(m["Subject"] for m in subscriber.messages())
    assert subjects == [
        "[ingestion] movielens 2026-11-27: succeeded",
        "[ingestion] movielens 2026-11-28: succeeded",
    ]


def test_config_can_come_from_a_local_file(deployment, tmp_path: Path):
    deployment.monkeypatch.delenv("CONFIG_BUCKET")
    deployment.monkeypatch.setenv(
        "CONFIG_PATH", str(write_config(tmp_path / "config.json", deployment.source, deployment.raw))
    )
    put_files(deployment.s3, deployment.source, 1)

    assert invoke({"dataset": "movielens"})["copied"] == 1


# ---- refused events ---------------------------------------------------------------------------------------


def test_unknown_dataset_in_a_shared_config_object_raises_unknown_dataset(deployment):
    deployment.monkeypatch.setenv("CONFIG_KEY", "config/movielens.json")

    with pytest.raises(UnknownDataset) as raised:
        invoke({"action": "plan", "dataset": "imdb"})

    assert "movielens" in str(raised.value)


def test_dataset_without_a_config_object_raises_a_config_error_naming_the_object(deployment):
    with pytest.raises(ConfigError) as raised:
        invoke({"action": "plan", "dataset": "imdb"})

    assert f"s3://{deployment.config_bucket}/config/imdb.json" in str(raised.value)
    assert landed_keys(deployment.s3, deployment.raw) == []


@pytest.mark.parametrize(
    "event",
    [
        {"action": "copy", "dataset": "movielens"},
        {"action": "PLAN", "dataset": "movielens"},
        {"action": "plan"},
        {"action": "plan", "dataset": ""},
        {"action": "plan", "dataset": "movielens", "date": "27/11/2026"},
        {"action": "copy_batch", "dataset": "movielens", "batch": 0},
        {"action": "copy_batch", "dataset": "movielens", "run_id": "20261127T200000000Z-3f9a1c"},
        {"action": "copy_batch", "dataset": "movielens", "run_id": "20261127T200000000Z-3f9a1c", "batch": "first"},
        {"action": "finalize", "dataset": "movielens"},
        # Checked before the step takes the lock: the copy Map's width must be a whole number of 1 or more.
        {"action": "plan", "dataset": "movielens", "max_copy_width": 0},
        {"action": "plan", "dataset": "movielens", "max_copy_width": "100"},
        {"action": "plan", "dataset": "movielens", "s3_writes_per_second": True},
        {"action": "plan", "dataset": "movielens", "s3_writes_per_second": 3500.5},
    ],
)
def test_malformed_event_raises_config_error_and_touches_nothing(deployment, event):
    put_files(deployment.s3, deployment.source, 1)

    with pytest.raises(ConfigError):
        invoke(event)

    assert list_keys(deployment.s3, deployment.raw) == []


def test_dates_in_events_are_iso_dates(deployment):
    plan = plan_through({"action": "plan", "dataset": "movielens", "date": "2026-02-28"})

    assert Date.fromisoformat(plan["date"]) == Date(2026, 2, 28)


@pytest.mark.parametrize("event", [[], ["movielens"], "movielens", None, 7, True])
def test_an_event_that_is_not_an_object_raises_config_error_naming_what_it_got(deployment, event):
    with pytest.raises(ConfigError) as raised:
        handler(event, LambdaContext())

    assert "the event must be a JSON object" in str(raised.value)
    assert f"got {type(event).__name__}" in str(raised.value) or "got null" in str(raised.value)


@pytest.mark.parametrize("batch", [True, False, 1.0, 0.5, -1, "-1", "1a", "", " 1", "\u0661", None, [0], {"n": 0}])
def test_a_batch_that_is_not_a_batch_number_raises_config_error_and_copies_nothing(deployment, batch):
    put_files(deployment.s3, deployment.source, 2)
    plan = plan_through({"action": "plan", "dataset": "movielens", "date": "2026-11-27"})
    before = landed_keys(deployment.s3, deployment.raw)

    with pytest.raises(ConfigError) as raised:
        invoke({"action": "copy_batch", "dataset": "movielens", "run_id": plan["run_id"], "batch": batch})

    assert "'batch' must be a batch number" in str(raised.value)
    assert landed_keys(deployment.s3, deployment.raw) == before == []


def test_a_batch_number_written_as_digits_is_that_batch(deployment):
    put_files(deployment.s3, deployment.source, 1)
    plan = plan_through({"action": "plan", "dataset": "movielens", "date": "2026-11-27"})

    result = invoke({"action": "copy_batch", "dataset": "movielens", "run_id": plan["run_id"], "batch": "0"})

    assert (result["batch"], result["copied"]) == (0, 1)


@pytest.mark.parametrize(
    ("event", "unknown", "hint"),
    [
        ({"action": "plan", "dataset": "movielens", "datee": "2026-01-02"}, "datee", "did you mean 'date'?"),
        ({"dataset": "movielens", "datee": "2026-01-02"}, "datee", "did you mean 'date'?"),
        ({"action": "finalize", "dataset": "movielens", "runid": "x"}, "runid", "did you mean 'run_id'?"),
        ({"action": "copy_batch", "dataset": "movielens", "run_id": "x", "batch": 0, "bacth": 1}, "bacth", "batch"),
        ({"action": "plan", "dataset": "movielens", "zzz": 1}, "zzz", "fields a plan event takes: action,"),
        (
            {"action": "copy_batch", "dataset": "movielens", "run_id": "x", "batch": 0, "executon": "arn"},
            "executon",
            "did you mean 'execution'?",
        ),
        ({"action": "release", "dataset": "movielens", "execution_id": "arn"}, "execution_id", "'execution'?"),
        ({"action": "plan", "dataset": "movielens", "scheduled-time": "x"}, "scheduled-time", "'scheduled_time'?"),
        ({"dataset": "movielens", "scheduledtime": "x"}, "scheduledtime", "did you mean 'scheduled_time'?"),
    ],
)
def test_an_unknown_event_field_raises_config_error_with_a_did_you_mean(deployment, event, unknown, hint):
    put_files(deployment.s3, deployment.source, 1)

    with pytest.raises(ConfigError) as raised:
        invoke(event)

    assert f"{unknown!r}: unknown field" in str(raised.value)
    assert hint in str(raised.value)
    assert list_keys(deployment.s3, deployment.raw) == []


@pytest.mark.parametrize("date", ["", 20261127, False, True, "20261127", "2026-W48-5", "2026-11-27T00:00"])
def test_a_date_that_is_not_yyyy_mm_dd_raises_config_error(deployment, date):
    put_files(deployment.s3, deployment.source, 1)

    with pytest.raises(ConfigError, match="is not YYYY-MM-DD"):
        invoke({"action": "plan", "dataset": "movielens", "date": date})

    assert list_keys(deployment.s3, deployment.raw) == []


def test_a_null_date_means_today_as_a_missing_one_does(deployment):
    plan = invoke({"action": "plan", "dataset": "movielens", "date": None})

    assert plan["date"] == run_date_for(dataset_config(deployment.source, deployment.raw)).isoformat()


def test_a_one_shot_run_whose_topic_is_gone_still_answers_its_committed_summary(deployment):
    missing = f"arn:aws:sns:{REGION}:123456789012:deleted-topic"
    deployment.configure(topic_arn=missing)
    put_files(deployment.s3, deployment.source, 2)

    summary = invoke({"dataset": "movielens", "date": "2026-11-27"})

    assert (summary["status"], summary["copied"]) == ("succeeded", 2)
    assert missing in summary["notification_error"]
    assert len(landed_keys(deployment.s3, deployment.raw)) == 2


# ---- metrics (EMF lines on stdout) ----------------------------------------------------------------------------


def emf_lines(out: str) -> list[dict[str, Any]]:
    return [doc for doc in map(json.loads, filter(None, out.splitlines())) if "_aws" in doc]


def test_a_one_shot_run_prints_one_emf_line_with_its_counts(deployment, capsys, monkeypatch):
    monkeypatch.setenv("METRICS_NAMESPACE", "data-file-ingestion/test")
    put_files(deployment.s3, deployment.source, 3)

    invoke({"dataset": "movielens"})

    (line,) = emf_lines(capsys.readouterr().out)
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "data-file-ingestion/test"
    assert (line["Dataset"], line["ObjectsCopied"], line["ObjectsFailed"], line["RunSucceeded"]) == (
        "movielens",
        3,
        0,
        1.0,
    )


def test_the_state_machines_steps_print_metrics_once_at_the_commit(deployment, capsys, monkeypatch):
    monkeypatch.setenv("METRICS_NAMESPACE", "ns")
    put_files(deployment.s3, deployment.source, 2)
    plan = plan_through({"action": "plan", "dataset": "movielens"})
    for item in items_at(deployment.s3, plan["batches"]):
        invoke({**item, "action": "copy_batch"})
    assert emf_lines(capsys.readouterr().out) == [], "nothing is committed before finalize"

    invoke({"action": "finalize", "dataset": "movielens", "run_id": plan["run_id"]})

    (line,) = emf_lines(capsys.readouterr().out)
    assert (line["RunId"], line["ObjectsCopied"]) == (plan["run_id"], 2)


def test_a_plan_that_finds_nothing_new_commits_and_reports_it(deployment, capsys, monkeypatch):
    monkeypatch.setenv("METRICS_NAMESPACE", "ns")
    put_files(deployment.s3, deployment.source, 1)
    invoke({"dataset": "movielens"})
    capsys.readouterr()

    answer = plan_through({"action": "plan", "dataset": "movielens"})

    assert answer["stage"] == "finalized"
    (line,) = emf_lines(capsys.readouterr().out)
    assert (line["Status"], line["ObjectsCopied"], line["RunSucceeded"]) == ("nothing_new", 0, 1.0)
    assert line["NewestDataAgeSeconds"] >= 0


def test_without_a_namespace_nothing_is_printed(deployment, capsys, monkeypatch):
    monkeypatch.delenv("METRICS_NAMESPACE", raising=False)
    put_files(deployment.s3, deployment.source, 1)

    invoke({"dataset": "movielens"})

    assert emf_lines(capsys.readouterr().out) == []


# ---- executions and the scheduled night (at-least-once delivery) ---------------------------------------------------

EXECUTION = f"arn:aws:states:{REGION}:123456789012:execution:ingest:night-27"
OTHER_EXECUTION = f"arn:aws:states:{REGION}:123456789012:execution:ingest:night-28"
LOCK = "_ingestion/movielens/lock.json"


def lock_held(deployment: Deployment) -> dict[str, Any]:
    return json.loads(deployment.s3.get_object(Bucket=deployment.raw, Key=LOCK)["Body"].read())


def run_as(execution: str, event: dict[str, Any]) -> dict[str, Any]:
    """The state machine's steps up to the copy Map, every event carrying the execution's id, as the definition
    passes it (Map items included)."""
    s3 = boto3.client("s3", region_name=REGION)
    answer = invoke({**event, "execution": execution})
    while answer["stage"] == "planning":
        for item in items_at(s3, answer["shards"]):
            invoke({**item, "action": "plan_shard", "execution": execution})
        answer = invoke(
            {"action": "seal_plan", "dataset": "movielens", "run_id": answer["run_id"], "execution": execution}
        )
    return answer


def copy_and_finalize(s3: Any, execution: str, plan: dict[str, Any]) -> dict[str, Any]:
    for item in items_at(s3, plan["batches"]):
        invoke({**item, "action": "copy_batch", "execution": execution})
    for item in items_at(s3, plan["final_shards"]):
        invoke({**item, "action": "finalize_shard", "execution": execution})
    return invoke({"action": "finalize", "dataset": "movielens", "run_id": plan["run_id"], "execution": execution})


def test_every_step_of_an_execution_joins_the_lock_its_plan_took_for_that_execution(deployment):
    s3 = deployment.s3
    put_files(s3, deployment.source, 3)

    plan = run_as(EXECUTION, {"action": "plan", "dataset": "movielens", "date": "2026-11-27"})
    holder = lock_held(deployment)
    finished = copy_and_finalize(s3, EXECUTION, plan)

    assert (holder["run_id"], holder["execution"]) == (plan["run_id"], EXECUTION)
    assert (finished["summary"]["run_id"], finished["summary"]["copied"]) == (plan["run_id"], 3)
    assert list_keys(s3, deployment.raw, LOCK) == []


def test_a_plan_retried_by_its_execution_after_its_answer_was_lost_answers_the_same_run(deployment):
    put_files(deployment.s3, deployment.source, 3)
    event = {"action": "plan", "dataset": "movielens", "date": "2026-11-27", "execution": EXECUTION}
    first = invoke(event)

    again = invoke(event)

    assert again == first
    assert lock_held(deployment)["run_id"] == first["run_id"]
    finished = copy_and_finalize(deployment.s3, EXECUTION, run_as(EXECUTION, {**event, "action": "plan"}))
    assert (finished["summary"]["run_id"], finished["summary"]["copied"]) == (first["run_id"], 3)
    assert len(landed_keys(deployment.s3, deployment.raw)) == 3


def test_a_plan_of_another_execution_raises_run_in_progress_naming_the_execution_that_holds_the_dataset(deployment):
    put_files(deployment.s3, deployment.source, 1)
    plan = run_as(EXECUTION, {"action": "plan", "dataset": "movielens", "date": "2026-11-27"})

    with pytest.raises(RunInProgress) as raised:
        invoke({"action": "plan", "dataset": "movielens", "execution": OTHER_EXECUTION})

    assert f"run {plan['run_id']} (execution {EXECUTION}," in str(raised.value)
    assert lock_held(deployment)["execution"] == EXECUTION


def test_a_step_of_an_execution_whose_run_another_execution_resumed_raises_lock_lost(deployment):
    put_files(deployment.s3, deployment.source, 1)
    plan = run_as(EXECUTION, {"action": "plan", "dataset": "movielens", "date": "2026-11-27"})
    expire_lock(ledger_in(deployment.s3, deployment.raw))
    resumed = run_as(OTHER_EXECUTION, {"action": "plan", "dataset": "movielens", "date": "2026-11-28"})
    assert (resumed["run_id"], resumed["resumed"]) == (plan["run_id"], True)

    with pytest.raises(LockLost, match=OTHER_EXECUTION):
        invoke(
            {
                "action": "copy_batch",
                "dataset": "movielens",
                "run_id": plan["run_id"],
                "batch": 0,
                "execution": EXECUTION,
            }
        )

    assert landed_keys(deployment.s3, deployment.raw) == []


def test_release_hands_back_whatever_lock_the_execution_holds_and_no_other(deployment):
    put_files(deployment.s3, deployment.source, 1)
    plan = run_as(EXECUTION, {"action": "plan", "dataset": "movielens", "date": "2026-11-27"})

    others = invoke({"action": "release", "dataset": "movielens", "execution": OTHER_EXECUTION})
    held = lock_held(deployment)
    released = invoke({"action": "release", "dataset": "movielens", "execution": EXECUTION})

    assert others == {"dataset": "movielens", "run_id": None, "released": False}
    assert held["execution"] == EXECUTION, "another execution's release left it alone"
    assert released == {"dataset": "movielens", "run_id": plan["run_id"], "released": True}
    assert list_keys(deployment.s3, deployment.raw, LOCK) == []


@pytest.mark.parametrize(
    "event",
    [
        {"action": "release", "dataset": "movielens"},
        {"action": "release", "dataset": "movielens", "run_id": None, "execution": None},
    ],
)
def test_a_release_naming_neither_execution_nor_run_raises_config_error_and_leaves_the_lock(deployment, event):
    put_files(deployment.s3, deployment.source, 1)
    run_as(EXECUTION, {"action": "plan", "dataset": "movielens", "date": "2026-11-27"})
    held = lock_held(deployment)

    with pytest.raises(ConfigError, match="the release event needs 'execution' \\(or 'run_id'\\)"):
        invoke(event)

    assert lock_held(deployment) == held


@pytest.mark.parametrize("execution", ["", 7, True, ["arn"]])
def test_an_execution_that_is_not_a_non_empty_string_raises_config_error(deployment, execution):
    put_files(deployment.s3, deployment.source, 1)

    with pytest.raises(ConfigError, match="'execution' must be a non-empty string"):
        invoke({"action": "plan", "dataset": "movielens", "execution": execution})

    assert list_keys(deployment.s3, deployment.raw) == []


@pytest.mark.parametrize(
    ("timezone", "scheduled_time", "night"),
    [
        ("America/Chicago", "2026-11-28T01:30:00Z", "2026-11-27"),  # 19:30 on the 27th in Chicago
        ("UTC", "2026-11-28T01:30:00Z", "2026-11-28"),
        ("Pacific/Kiritimati", "2026-11-27T20:00:00.250Z", "2026-11-28"),  # already the 28th at UTC+14
    ],
)
def test_a_scheduled_time_plans_the_night_of_its_date_in_the_datasets_time_zone(
    deployment, timezone, scheduled_time, night
):
    deployment.configure(timezone=timezone)
    put_files(deployment.s3, deployment.source, 1)

    plan = invoke({"action": "plan", "dataset": "movielens", "scheduled_time": scheduled_time, "execution": EXECUTION})

    assert plan["date"] == night


def test_a_one_shot_event_with_a_scheduled_time_lands_under_its_night_in_the_datasets_time_zone(deployment):
    deployment.configure(timezone="America/Chicago")
    put_files(deployment.s3, deployment.source, 2)

    summary = invoke({"dataset": "movielens", "scheduled_time": "2026-11-28T01:30:00Z"})

    assert (summary["date"], summary["copied"]) == ("2026-11-27", 2)
    assert sorted(landed_keys(deployment.s3, deployment.raw)) == [
        f"movielens/ingest_date=2026-11-27/f{n}.csv" for n in range(2)
    ]


@pytest.mark.parametrize(
    "event",
    [
        {"action": "plan", "dataset": "movielens", "date": "2026-11-27", "scheduled_time": "2026-11-28T01:30:00Z"},
        {"dataset": "movielens", "date": "2026-11-27", "scheduled_time": "2026-11-28T01:30:00Z"},
    ],
)
def test_an_event_with_both_a_date_and_a_scheduled_time_raises_config_error(deployment, event):
    put_files(deployment.s3, deployment.source, 1)

    with pytest.raises(ConfigError, match="both 'date' and 'scheduled_time'"):
        invoke(event)

    assert list_keys(deployment.s3, deployment.raw) == []


@pytest.mark.parametrize(
    "scheduled_time",
    [
        "2026-11-27 20:00",
        "2026-11-27T20:00:00",  # no zone: it would be read in the machine's
        "2026-11-27T20:00:00+00:00",
        "2026-11-27T20:00Z",
        "2026-02-30T20:00:00Z",
        "",
        1795896000,
        False,
    ],
)
def test_a_scheduled_time_not_in_the_schedulers_form_raises_config_error_naming_the_field(deployment, scheduled_time):
    put_files(deployment.s3, deployment.source, 1)

    for event in (
        {"action": "plan", "dataset": "movielens", "scheduled_time": scheduled_time},
        {"dataset": "movielens", "scheduled_time": scheduled_time},
    ):
        with pytest.raises(ConfigError) as raised:
            invoke(event)
        assert f"event scheduled_time {scheduled_time!r}:" in str(raised.value)

    assert list_keys(deployment.s3, deployment.raw) == []


def test_a_one_shot_invocation_that_lambda_retries_takes_back_the_lock_its_first_attempt_left(deployment):
    """An asynchronous invocation that died part-way is retried by Lambda with the same request id: the lock its
    first attempt took (its execution `lambda-request:<id>`) is taken back, not met as another run."""
    put_files(deployment.s3, deployment.source, 2)
    ledger = Ledger(Store(deployment.s3), dataset_config(deployment.source, deployment.raw))
    left = ledger.lock.acquire("20261127T200000000Z-abc123", execution="lambda-request:req-1")

    with pytest.raises(RunInProgress, match="execution lambda-request:req-1"):
        handler({"dataset": "movielens", "date": "2026-11-27"}, LambdaContext(aws_request_id="req-2"))
    summary = handler({"dataset": "movielens", "date": "2026-11-27"}, LambdaContext(aws_request_id="req-1"))

    assert (summary["run_id"], summary["status"], summary["copied"]) == (left.run_id, "succeeded", 2)
    assert list_keys(deployment.s3, deployment.raw, LOCK) == []


def test_a_finalize_answer_leaves_the_summarys_growing_lists_to_the_ledger(deployment):
    """Step Functions fails a task whose result passes 256 KiB: the answer's summary has no manifest parts and no
    failures; the ledger's summary keeps both."""
    s3 = deployment.s3
    s3.put_object(Bucket=deployment.source, Key="movielens/x/b.csv", Body=b"one")
    s3.put_object(Bucket=deployment.source, Key="movielens/x//b.csv", Body=b"two")  # the two collide: both fail
    s3.put_object(Bucket=deployment.source, Key="movielens/ok.csv", Body=b"ok")
    plan = run_as(EXECUTION, {"action": "plan", "dataset": "movielens", "date": "2026-11-27"})

    finished = copy_and_finalize(s3, EXECUTION, plan)

    answered = finished["summary"]
    stored = json.loads(s3.get_object(Bucket=deployment.raw, Key="_ingestion/movielens/last-run.json")["Body"].read())
    assert "manifest_parts" not in answered and "failures" not in answered
    assert (answered["status"], answered["copied"], answered["failed"]) == ("partial", 1, 2)
    assert stored["manifest_parts"] == [
        f"s3://{deployment.raw}/_ingestion/movielens/manifest/date=2026-11-27/{plan['run_id']}-00000.jsonl"
    ]
    assert sorted(f["source_key"] for f in stored["failures"]) == ["movielens/x//b.csv", "movielens/x/b.csv"]
    assert {k: v for k, v in stored.items() if k not in ("manifest_parts", "failures")} == answered
    assert "movielens/x/b.csv" in finished["notification"]["message"], "the notification still names the failures"


def test_a_seal_that_commits_a_run_with_nothing_new_answers_without_the_summarys_growing_lists(deployment):
    put_files(deployment.s3, deployment.source, 1)
    invoke({"dataset": "movielens", "date": "2026-11-27"})

    plan = run_as(EXECUTION, {"action": "plan", "dataset": "movielens", "date": "2026-11-28"})

    assert (plan["stage"], plan["summary"]["status"]) == ("finalized", "nothing_new")
    assert "manifest_parts" not in plan["summary"] and "failures" not in plan["summary"]


def test_a_full_tmp_is_named_with_the_directory_and_what_to_do(deployment, monkeypatch):
    """SQLite's scratch database says "database or disk is full" when /tmp fills; the invocation's error says
    which directory and what to do (raise the function's ephemeral storage), with its errorType to match."""
    import sqlite3

    from handler.contract import PLAN
    from handler.errors import ScratchSpaceFull
    from handler.steps.table import RUNS

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setitem(RUNS, PLAN, full)
    with pytest.raises(ScratchSpaceFull) as caught:
        invoke({"action": "plan", "dataset": "movielens", "date": "2026-11-27"})
    assert tempfile.gettempdir() in str(caught.value)
    assert "ephemeral storage" in str(caught.value)


# ---- the copy Map's width ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("concurrency", "memory", "sizing", "width"),
    [
        # One vCPU: 310 copies a second an invocation, 11 of them offer 3,410 of S3's 3,500.
        (32, None, {"max_copy_width": 100, "s3_writes_per_second": 3500}, 11),
        (32, "1769", {"max_copy_width": 100, "s3_writes_per_second": 3500}, 11),
        # Half a vCPU copies half as fast: twice as many invocations offer the same rate.
        (32, "885", {"max_copy_width": 100, "s3_writes_per_second": 3500}, 22),
        # Four copies in flight at 60 ms: 67 a second, 52 invocations.
        (4, None, {"max_copy_width": 100, "s3_writes_per_second": 3500}, 52),
        # Never wider than the stack's mapConcurrency, which the reservation is sized to.
        (1, None, {"max_copy_width": 100, "s3_writes_per_second": 3500}, 100),
        (32, None, {"max_copy_width": 8, "s3_writes_per_second": 3500}, 8),
        # A stack sized to partitioned prefixes (s3WritesPerSecond) goes wider.
        (32, None, {"max_copy_width": 100, "s3_writes_per_second": 14000}, 45),
        # Without the state machine's fields (a hand-made event): S3's rate, the Distributed Map's own limit.
        (32, None, {}, 11),
    ],
)
def test_plan_and_seal_plan_answer_the_copy_maps_width_from_the_datasets_concurrency(
    deployment, concurrency, memory, sizing, width
):
    deployment.configure(concurrency=concurrency)
    if memory is not None:
        deployment.monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory)
    put_files(deployment.s3, deployment.source, 3)

    started = invoke({"action": "plan", "dataset": "movielens", "date": "2026-11-27", **sizing})
    for item in items_at(deployment.s3, started["shards"]):
        invoke({**item, "action": "plan_shard"})
    sealed = invoke({"action": "seal_plan", "dataset": "movielens", "run_id": started["run_id"], **sizing})

    assert (started["stage"], sealed["stage"]) == ("planning", "copying")
    assert (started["copy_width"], sealed["copy_width"]) == (width, width)
