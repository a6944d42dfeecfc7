"""The Lambda entry point driven the way docs/lambda-contract.md says the state machine drives it."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import date as Date
from pathlib import Path
from typing import Any

import boto3
import pytest

from handler.errors import ConfigError, LockLost, RunInProgress, UnknownDataset
from handler.lambda_function import handler
from handler.runner import run_date_for
from tests.conftest import REGION, dataset_config, landed_keys, list_keys, unique_bucket, write_config

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
}


@dataclass
class LambdaContext:
    function_name: str = "ingest"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:ingest"
    memory_limit_in_mb: int = 1024

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@dataclass
class Deployment:
    """What the stack sets up for the function: buckets, one config object per dataset, the environment."""

    s3: Any
    source: str
    raw: str
    config_bucket: str
    monkeypatch: pytest.MonkeyPatch

    def configure(self, name: str = "movielens", **overrides: Any) -> None:
        ds = dataset_config(self.source, self.raw, name, **overrides)
        self.s3.put_object(
            Bucket=self.config_bucket,
            Key=f"config/{name}.json",
            Body=json.dumps({"datasets": {name: ds.to_dict()}}).encode(),
            ContentType="application/json",
        )


@pytest.fixture
def deployment(s3: Any, buckets: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Deployment:
    config_bucket = unique_bucket("config")
    s3.create_bucket(Bucket=config_bucket)
    monkeypatch.setenv("CONFIG_BUCKET", config_bucket)
    monkeypatch.setenv("CONFIG_KEY", "config/{dataset}.json")
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


def expire_lock(s3: Any, raw: str) -> None:
    key = "_ingestion/movielens/lock.json"
    document = dict(json.loads(s3.get_object(Bucket=raw, Key=key)["Body"].read()), expires_at=time.time() - 1)
    s3.put_object(Bucket=raw, Key=key, Body=json.dumps(document).encode())


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
    expire_lock(s3, deployment.raw)

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
    expire_lock(s3, deployment.raw)
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
