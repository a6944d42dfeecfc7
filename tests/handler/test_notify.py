"""The end-of-run message: readable subject and body, attributes subscribers can filter on, delivered via SNS."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from handler import notify
from handler.errors import NotificationFailed
from handler.notify import MAX_FAILURES_LISTED, STATUS_WORDS
from handler.records import Notification, RunSummary
from tests.conftest import REGION

MANIFEST = "s3://raw-bucket/_ingestion/sales/manifest/date=2024-03-07/20240307T200000Z-ab12.jsonl"


def summary(**overrides: Any) -> dict[str, Any]:
    """A run summary in its JSON form, every field present (as finalize writes it)."""
    return {
        "dataset": "sales",
        "run_id": "20240307T200000Z-ab12",
        "date": "2024-03-07",
        "status": "succeeded",
        "started_at": "2024-03-07T20:00:00.000Z",
        "finished_at": "2024-03-07T20:00:12.340Z",
        "duration_seconds": 12.34,
        "resumed": False,
        "source": "s3://src-bucket/in/",
        "target": "s3://raw-bucket/out/",
        "listed": 9,
        "excluded": 0,
        "planned": 3,
        "copied": 3,
        "skipped": 1,
        "unchanged": 5,
        "failed": 0,
        "bytes": 1234,
        "skipped_by_reason": {"unchanged": 5},
        "failures": [],
        "manifest": MANIFEST,
        "manifest_parts": [MANIFEST],
        "marker": None,
        "last_landed_at": None,
        **overrides,
    }


def build_notification(data: dict[str, Any]) -> dict[str, Any]:
    """The notification for a summary read back from its JSON form, in the JSON form finalize returns."""
    return notify.build_notification(RunSummary.from_json(data)).to_json()


def publish(sns: Any, topic_arn: str | None, note: dict[str, Any]) -> str | None:
    return notify.publish(sns, topic_arn, Notification(**note))


def failure(n: int) -> dict[str, str]:
    return {"source_key": f"in/bad-{n:02d}.csv", "reason": f"AccessDenied #{n}"}


def body_lines(message: str) -> list[str]:
    """The human part of the message, before the blank line and the JSON summary."""
    return message.split("\n\n", 1)[0].split("\n")


# ---- subject -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "word"), sorted(STATUS_WORDS.items()))
def test_subject_names_dataset_date_and_status_word(status: str, word: str) -> None:
    note = build_notification(summary(status=status))

    assert note["subject"] == f"[ingestion] sales 2024-03-07: {word}"


def test_status_words_cover_every_run_status() -> None:
    assert STATUS_WORDS == {
        "succeeded": "succeeded",
        "partial": "partly failed",
        "failed": "failed",
        "nothing_new": "nothing new",
    }


def test_unknown_status_is_shown_as_is() -> None:
    assert build_notification(summary(status="dry_run"))["subject"].endswith(": dry_run")


@pytest.mark.parametrize(
    "dataset",
    ["données-été", "中文数据集", "😀" * 200, "x" * 300, "line\nbreak\ttab\x7fdel", "sales"],
)
def test_subject_is_printable_ascii_and_at_most_100_characters(dataset: str) -> None:
    subject = build_notification(summary(dataset=dataset))["subject"]

    assert subject.isascii() and subject.isprintable(), subject
    assert len(subject) < 100
    assert subject.startswith("[ingestion] ")


def test_non_ascii_in_subject_is_replaced_but_kept_in_the_body() -> None:
    note = build_notification(summary(dataset="données"))

    assert note["subject"] == "[ingestion] donn?es 2024-03-07: succeeded"
    assert "Dataset données, run 20240307T200000Z-ab12" in note["message"]


# ---- body ------------------------------------------------------------------------------------------------------


def test_body_gives_status_counts_bytes_duration_and_where_from_and_to() -> None:
    lines = body_lines(build_notification(summary())["message"])

    assert lines == [
        "Dataset sales, run 20240307T200000Z-ab12 for 2024-03-07: succeeded.",
        "Copied 3 object(s), 1234 bytes, in 12.3s; skipped 1, failed 0, unchanged 5.",
        "From s3://src-bucket/in/ to s3://raw-bucket/out/.",
        f"Manifest: {MANIFEST}",
    ]


def test_body_ends_with_the_summary_as_json_less_its_manifest_parts() -> None:
    run = summary(dataset="données", failures=[{"source_key": "in/été.csv", "reason": "x"}], failed=1)

    tail = build_notification(run)["message"].split("\n\n", 1)[1]

    # One part a shard (hundreds on a large first run) would take a message past SNS's 256 KiB; the manifest glob
    # above names them all.
    assert json.loads(tail) == {key: value for key, value in run.items() if key != "manifest_parts"}
    assert "été" in tail  # readable, not \u escapes


def test_resumed_run_says_so() -> None:
    lines = body_lines(build_notification(summary(resumed=True))["message"])

    assert "This run was interrupted earlier and has now been completed under its own date." in lines


def test_first_failures_are_listed_with_their_reasons() -> None:
    run = summary(status="partial", failed=2, failures=[failure(1), failure(2)])

    lines = body_lines(build_notification(run)["message"])

    assert lines[3:6] == [
        "First 2 failure(s) of 2:",
        "  - in/bad-01.csv: AccessDenied #1",
        "  - in/bad-02.csv: AccessDenied #2",
    ]
    assert lines[-1] == f"Manifest: {MANIFEST}"


def test_at_most_ten_failures_are_listed() -> None:
    run = summary(status="failed", copied=0, failed=250, failures=[failure(n) for n in range(15)])

    lines = body_lines(build_notification(run)["message"])

    listed = [line for line in lines if line.startswith("  - ")]
    assert MAX_FAILURES_LISTED == 10
    assert listed == [f"  - in/bad-{n:02d}.csv: AccessDenied #{n}" for n in range(10)]
    assert "First 10 failure(s) of 250:" in lines


def test_no_failures_means_no_failure_section() -> None:
    message = build_notification(summary(failures=None))["message"]

    assert "failure(s)" not in message
    assert not [line for line in body_lines(message) if line.startswith("  - ")]


def test_non_ascii_failing_key_is_listed_verbatim() -> None:
    run = summary(status="partial", failed=1, failures=[{"source_key": "in/données/😀.csv", "reason": "too long"}])

    assert "  - in/données/😀.csv: too long" in body_lines(build_notification(run)["message"])


# ---- attributes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(STATUS_WORDS))
def test_attributes_carry_dataset_and_status_in_sns_form(status: str) -> None:
    attributes = build_notification(summary(status=status))["attributes"]

    assert attributes == {
        "dataset": {"DataType": "String", "StringValue": "sales"},
        "status": {"DataType": "String", "StringValue": status},
    }


# ---- publishing ----------------------------------------------------------------------------------------------------


class NoCalls:
    """A client that fails the test if anything is asked of it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected call to {name}")


@pytest.mark.parametrize("topic", [None, ""])
def test_no_topic_means_no_message_and_no_error(topic: str | None) -> None:
    assert publish(NoCalls(), topic, build_notification(summary())) is None


@pytest.fixture
def topic_and_queue(aws: None) -> Any:
    """An SNS topic and a way to subscribe SQS queues to it: (sns, sqs, topic ARN, subscribe(name) -> queue URL)."""
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="ingest-notifications")["TopicArn"]

    def subscribe(name: str, **attributes: str) -> str:
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes)
        return url

    return sns, sqs, topic_arn, subscribe


def receive(sqs: Any, url: str) -> list[dict[str, Any]]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", [])


def test_published_message_arrives_with_subject_body_and_attributes(topic_and_queue: Any) -> None:
    sns, sqs, topic_arn, subscribe = topic_and_queue
    url = subscribe("inbox")
    note = build_notification(summary(dataset="données", status="partial", failed=1, failures=[failure(1)]))

    message_id = publish(sns, topic_arn, note)

    [received] = receive(sqs, url)
    envelope = json.loads(received["Body"])
    assert message_id and envelope["MessageId"] == message_id
    assert envelope["TopicArn"] == topic_arn
    assert envelope["Subject"] == "[ingestion] donn?es 2024-03-07: partly failed"
    assert envelope["Message"] == note["message"]
    assert envelope["MessageAttributes"] == {
        "dataset": {"Type": "String", "Value": "données"},
        "status": {"Type": "String", "Value": "partial"},
    }


def test_raw_delivery_carries_attributes_as_queue_message_attributes(topic_and_queue: Any) -> None:
    sns, sqs, topic_arn, subscribe = topic_and_queue
    url = subscribe("raw-inbox", RawMessageDelivery="true")
    note = build_notification(summary(status="nothing_new", copied=0))

    publish(sns, topic_arn, note)

    [received] = receive(sqs, url)
    assert received["Body"] == note["message"]
    assert {name: value["StringValue"] for name, value in received["MessageAttributes"].items()} == {
        "dataset": "sales",
        "status": "nothing_new",
    }


def test_subscribers_can_filter_on_status(topic_and_queue: Any) -> None:
    sns, sqs, topic_arn, subscribe = topic_and_queue
    alarms = subscribe("alarms", FilterPolicy=json.dumps({"status": ["failed", "partial"]}))

    for status in ("succeeded", "nothing_new", "failed"):
        publish(sns, topic_arn, build_notification(summary(status=status)))

    statuses = [json.loads(m["Body"])["MessageAttributes"]["status"]["Value"] for m in receive(sqs, alarms)]
    assert statuses == ["failed"]


def test_a_failed_key_with_a_newline_stays_on_one_line_of_the_message() -> None:
    failures = [{"source_key": "a\nb.csv", "reason": "source object is gone since listing"}]
    message = build_notification(summary(status="failed", failed=1, failures=failures))["message"]

    assert "  - a\\nb.csv: source object is gone since listing" in message.splitlines()


def test_a_run_that_could_not_start_says_so_and_names_no_manifest() -> None:
    message = build_notification(summary(status="failed", run_id=None, manifest=None))["message"]

    assert "run (none: the run could not start)" in message
    assert "Manifest:" not in message


def test_publishing_to_a_topic_that_does_not_exist_raises_notification_failed_naming_it(aws: None) -> None:
    sns = boto3.client("sns", region_name=REGION)
    missing = f"arn:aws:sns:{REGION}:123456789012:never-created"

    with pytest.raises(NotificationFailed) as info:
        publish(sns, missing, build_notification(summary()))

    assert str(info.value).startswith(f"could not publish to {missing}: ")


def test_publish_all_tries_every_message_before_reporting_the_ones_that_failed(topic_and_queue: Any) -> None:
    sns, sqs, topic_arn, subscribe = topic_and_queue
    url = subscribe("inbox")

    class FlakySns:
        """Refuses the first message and passes the rest on, as a throttled or briefly unreachable topic might."""

        calls = 0

        def publish(self, **kwargs: Any) -> Any:
            FlakySns.calls += 1
            if FlakySns.calls == 1:
                raise ClientError({"Error": {"Code": "Throttled", "Message": "slow down"}}, "Publish")
            return sns.publish(**kwargs)

    runs = [RunSummary.from_json(summary(run_id=run_id)) for run_id in ("run-1", "run-2")]

    with pytest.raises(NotificationFailed, match=f"could not publish to {topic_arn}: ClientError: .*Throttled"):
        notify.publish_all(FlakySns(), topic_arn, runs)

    [received] = receive(sqs, url)
    assert "run-2" in json.loads(received["Body"])["Message"]


def test_a_failure_reason_with_control_characters_stays_on_one_line() -> None:
    failures = [{"source_key": "k.csv", "reason": "collision: 'a\x1b[2J' and 'b' would land on one key"}]
    message = build_notification(summary(status="failed", failed=1, failures=failures))["message"]

    assert "\x1b" not in message
    assert "  - k.csv: collision: 'a\\x1b[2J' and 'b' would land on one key" in body_lines(message)
