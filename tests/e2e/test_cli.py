"""`python -m handler` as a user runs it: a child process talking HTTP to moto's S3 and SNS server.

Assertions are on what a user can see: objects and their bytes and metadata in the buckets, the JSON or
text on stdout, messages on stderr and the exit code (0 ok or nothing new, 1 failures, 2 usage or config,
3 run in progress).
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from handler.config import parse_config
from tests.awkward_keys import AWKWARD_KEYS
from tests.conftest import write_config
from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    DATASET,
    Stage,
    client,
    moto_server_fixture,
    one_json,
    stage_fixture,
)

SUMMARY_FIELDS = {"run_id", "dataset", "date", "status", "planned", "copied", "skipped", "failed", "bytes"}


def landed_at(date: str, *relative: str) -> set[str]:
    """Where flat source files `movielens/<name>` land with the default key template."""
    return {f"movielens/ingest_date={date}/{name}" for name in relative}


def test_run_json_prints_one_summary_and_lands_the_source_bytes(stage: Stage) -> None:
    files = {"ratings.csv": b"userId,movieId,rating\n1,1,4.0\n", "movies.csv": b"movieId,title\n1,Toy Story\n"}
    etags = {name: stage.put(f"movielens/{name}", body) for name, body in files.items()}
    before = datetime.now(UTC).date().isoformat()

    proc = stage.run(stage.config(), "--json")

    assert proc.returncode == 0, proc.stderr
    summary = one_json(proc)
    assert SUMMARY_FIELDS <= summary.keys()
    assert summary["dataset"] == DATASET
    assert summary["date"] in {before, datetime.now(UTC).date().isoformat()}  # today in the dataset's zone (UTC)
    assert (summary["status"], summary["planned"], summary["copied"], summary["failed"]) == ("succeeded", 2, 2, 0)
    assert summary["bytes"] == sum(len(body) for body in files.values())
    date = summary["date"]
    assert set(stage.landed()) == landed_at(date, *files)
    for name, body in files.items():
        key = f"movielens/ingest_date={date}/{name}"
        assert stage.body(stage.raw, key) == body
        lineage = stage.lineage(key)
        assert lineage["ingest-source-key"] == f"movielens/{name}"
        assert lineage["ingest-source-etag"] == etags[name]
        assert lineage["ingest-source-bucket"] == stage.source
        assert (lineage["ingest-date"], lineage["ingest-run-id"]) == (date, summary["run_id"])


def test_only_new_and_changed_objects_land_again_under_the_new_date(stage: Stage) -> None:
    for name in ("a.csv", "b.csv", "c.csv"):
        stage.put(f"movielens/{name}", f"first {name}".encode())
    config = stage.config()

    first = stage.run(config, "--json", "--date", "2026-01-02")
    assert first.returncode == 0, first.stderr
    assert one_json(first)["copied"] == 3
    after_first = set(stage.landed())
    assert after_first == landed_at("2026-01-02", "a.csv", "b.csv", "c.csv")

    again = stage.run(config, "--json", "--date", "2026-01-02")
    assert again.returncode == 0, again.stderr
    summary = one_json(again)
    assert (summary["status"], summary["copied"], summary["unchanged"]) == ("nothing_new", 0, 3)
    assert set(stage.landed()) == after_first

    stage.put("movielens/b.csv", b"second b.csv")
    stage.put("movielens/d.csv", b"first d.csv")
    later = stage.run(config, "--json", "--date", "2026-01-03")

    assert later.returncode == 0, later.stderr
    assert one_json(later)["copied"] == 2
    new = set(stage.landed()) - after_first
    assert new == landed_at("2026-01-03", "b.csv", "d.csv")
    assert stage.body(stage.raw, "movielens/ingest_date=2026-01-03/b.csv") == b"second b.csv"
    assert stage.body(stage.raw, "movielens/ingest_date=2026-01-02/b.csv") == b"first b.csv"


def test_dry_run_prints_the_plan_and_writes_nothing(stage: Stage) -> None:
    stage.put("movielens/ratings.csv", b"r")
    stage.put("movielens/sub/tags.csv", b"t")
    stage.put("movielens/old.csv", b"o", StorageClass="GLACIER")
    config = stage.config()

    text = stage.run(config, "--dry-run", "--date", "2026-01-02")

    assert text.returncode == 0, text.stderr
    out = text.stdout.splitlines()
    src, raw = f"s3://{stage.source}", f"s3://{stage.raw}"
    assert f"COPY  {src}/movielens/ratings.csv -> {raw}/movielens/ingest_date=2026-01-02/ratings.csv" in out
    assert f"COPY  {src}/movielens/sub/tags.csv -> {raw}/movielens/sub/ingest_date=2026-01-02/tags.csv" in out
    assert any(line.startswith(f"SKIP  {src}/movielens/old.csv: archived in GLACIER") for line in out), out
    assert stage.everything() == {}, "a dry run must write nothing, not even the ledger or the lock"

    assert stage.run(config, "--date", "2026-01-02").returncode == 0
    stage.put("movielens/ratings.csv", b"r2")
    before = stage.everything()

    as_json = stage.run(config, "--dry-run", "--json", "--date", "2026-01-03")

    assert as_json.returncode == 0, as_json.stderr
    *objects, summary = [json.loads(line) for line in as_json.stdout.splitlines()]  # JSON Lines, summary last
    assert (summary["status"], summary["planned"], summary["run_id"]) == ("dry_run", 1, None)
    assert objects[0] == {
        "action": "copy",
        "source_key": "movielens/ratings.csv",
        "target_key": "movielens/ingest_date=2026-01-03/ratings.csv",
        "size": 2,
    }
    assert objects[1:] == [
        {"action": "skip", "source_key": "movielens/old.csv", "reason": objects[1]["reason"]}
    ]  # the human line's SKIP, with its reason
    assert objects[1]["reason"].startswith("archived in GLACIER")
    assert "COPY" not in as_json.stderr
    assert stage.everything() == before


def _misspelt_field(text: str) -> str:
    document = json.loads(text)
    document["datasets"][DATASET]["concurency"] = 4
    return json.dumps(document)


def _escaping_template(text: str) -> str:
    document = json.loads(text)
    document["datasets"][DATASET]["key_template"] = "{dir}/../{date}/{name}"
    return json.dumps(document)


def _dataset_twice(text: str) -> str:
    one = json.dumps(json.loads(text)["datasets"][DATASET])
    return '{"datasets": {"movielens": ' + one + ', "movielens": ' + one + "}}"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            lambda _: '{"datasets": {"movielens": ', ["is not valid JSON", "line 1 column"], id="invalid-json"
        ),
        pytest.param(
            _misspelt_field, ["datasets.movielens.concurency: unknown field", "concurrency"], id="unknown-field"
        ),
        pytest.param(
            _escaping_template,
            ["datasets.movielens.key_template: '{dir}/../{date}/{name}' cannot land ordinary files", "'movielens/../"],
            id="escaping-template",
        ),
        pytest.param(_dataset_twice, ["datasets.movielens is given twice"], id="dataset-twice"),
        pytest.param(lambda _: "[" * 100_000 + "]" * 100_000, ["nests arrays or objects too deeply"], id="deep"),
    ],
)
def test_bad_config_exits_2_naming_the_problem_and_copies_nothing(
    stage: Stage, content: Callable[[str], str], expected: list[str]
) -> None:
    stage.put("movielens/ratings.csv", b"r")
    config = stage.config()
    config.write_text(content(config.read_text()))

    proc = stage.run(config, "--json")

    assert proc.returncode == 2
    for fragment in expected:
        assert fragment in proc.stderr
    answer = one_json(proc)
    assert (answer["dataset"], answer["status"], answer["exit_code"]) == (DATASET, "invalid", 2)
    assert all(fragment in answer["error"] for fragment in expected)
    assert "Traceback" not in proc.stderr
    assert stage.everything() == {}


def test_config_is_read_from_s3_and_a_missing_one_exits_2(stage: Stage) -> None:
    stage.put("movielens/ratings.csv", b"r")
    config_text = stage.config().read_text()
    stage.s3.put_object(Bucket=stage.source, Key="config/movielens.json", Body=config_text.encode())

    missing = stage.run(f"s3://{stage.source}/config/nope.json")
    assert missing.returncode == 2
    assert f"cannot read config s3://{stage.source}/config/nope.json" in missing.stderr
    assert stage.everything() == {}

    proc = stage.run(f"s3://{stage.source}/config/movielens.json", "--json", "--date", "2026-01-02")
    assert proc.returncode == 0, proc.stderr
    assert set(stage.landed()) == landed_at("2026-01-02", "ratings.csv")


def test_unknown_dataset_exits_2_naming_the_known_ones(stage: Stage, tmp_path: Path) -> None:
    two = {"source": {"bucket": stage.source}, "target": {"bucket": stage.raw}}
    config = tmp_path / "two.json"
    config.write_text(json.dumps(parse_config({"datasets": {"movielens": two, "tags": two}}).to_dict()))

    proc = stage.cli(*stage.argv("run", config, dataset="tvshows"))

    assert proc.returncode == 2
    assert "'tvshows' is not in the config" in proc.stderr
    assert "known datasets: movielens, tags" in proc.stderr
    assert stage.everything() == {}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["run", "--config", "c.json"], "the following arguments are required: --dataset", id="no-dataset"),
        pytest.param(["run", "--config", "c.json", "--dataset", "m", "--date", "2026-13-01"], "not a date", id="date"),
        pytest.param(["run", "--config", "c.json", "--dataset", "m", "--concurrency", "0"], "positive", id="conc"),
        pytest.param(["history", "--dataset", "m"], "the following arguments are required: --config", id="no-cfg"),
    ],
)
def test_bad_usage_exits_2_with_argparse_message(stage: Stage, args: list[str], expected: str) -> None:
    proc = stage.cli(*args)

    assert proc.returncode == 2
    assert expected in proc.stderr
    assert proc.stdout == ""


def test_a_key_too_long_for_s3_fails_alone_and_the_run_exits_1(stage: Stage) -> None:
    # 500 two-byte characters: the source key is 1,014 bytes (allowed) but only 514 characters, and the
    # landed key adds "ingest_date=2026-01-02/", taking it past 1,024 bytes: the limit is counted in bytes.
    long_key = "movielens/" + "é" * 500 + ".csv"
    assert len(long_key.encode()) <= 1024
    stage.put(long_key, b"too long to land")
    stage.put("movielens/ratings.csv", b"ok")
    stage.put("movielens/movies.csv", b"ok too")

    proc = stage.run(stage.config(), "--json", "--date", "2026-01-02")

    assert proc.returncode == 1
    summary = one_json(proc)
    assert (summary["status"], summary["copied"], summary["failed"]) == ("partial", 2, 1)
    [failure] = summary["failures"]
    assert failure["source_key"] == long_key
    assert "1024-byte limit" in failure["reason"]
    assert set(stage.landed()) == landed_at("2026-01-02", "ratings.csv", "movies.csv")
    [line] = [line for line in stage.manifest_lines() if line["status"] == "failed"]
    assert (line["source_key"], line["target_key"]) == (long_key, None)


def test_a_run_that_cannot_start_exits_1_with_a_json_failure(stage: Stage) -> None:
    stage.put("movielens/ratings.csv", b"r")
    config = write_config(stage.workdir / "gone.json", stage.source, "raw-bucket-that-was-never-made", DATASET)

    proc = stage.run(config, "--json", "--date", "2026-01-02")

    assert proc.returncode == 1
    summary = one_json(proc)
    assert (summary["status"], summary["date"], summary["copied"]) == ("failed", "2026-01-02", 0)
    assert "NoSuchBucket" in summary["error"]
    assert "error: run failed" in proc.stderr


def test_more_than_a_thousand_keys_all_land(stage: Stage) -> None:
    objects = stage.seed(1100)

    proc = stage.run(stage.config(), "--json", "--date", "2026-01-02", "--concurrency", "8")

    assert proc.returncode == 0, proc.stderr
    summary = one_json(proc)
    assert (summary["planned"], summary["copied"], summary["failed"]) == (1100, 1100, 0)
    source = stage.etags(stage.source)
    landed = {key: etag for key, etag in stage.etags(stage.raw).items() if not key.startswith("_ingestion/")}
    expected = {key.replace("movielens/", "movielens/ingest_date=2026-01-02/", 1): key for key in objects}
    assert set(landed) == set(expected)
    assert all(landed[target] == source[key] for target, key in expected.items())
    assert len(stage.state()) == 1100


def test_a_run_of_many_shards_and_batches_is_spread_over_worker_processes_and_lands_once(stage: Stage) -> None:
    objects = {}
    for folder in ("p0", "p1", "p2"):
        objects.update(stage.seed(400, prefix=f"movielens/{folder}/part-"))
    config = stage.config(shard_max_keys=1_000, batch_max_objects=150)

    proc = stage.run(config, "--json", "--date", "2026-01-02", "--workers", "2")

    assert proc.returncode == 0, proc.stderr
    summary = one_json(proc)
    assert (summary["planned"], summary["copied"], summary["failed"]) == (1200, 1200, 0)
    assert len(summary["manifest_parts"]) == 3, "one shard per folder, each planned and finalized by a worker"
    landed = {key: etag for key, etag in stage.etags(stage.raw).items() if not key.startswith("_ingestion/")}
    source = stage.etags(stage.source)
    expected = {key.replace("/part-", "/ingest_date=2026-01-02/part-", 1): key for key in objects}
    assert {target: landed.get(target) for target in expected} == {t: source[k] for t, k in expected.items()}
    assert len(landed) == 1200
    lines = stage.manifest_lines()
    assert sorted(line["source_key"] for line in lines) == sorted(objects), "one manifest line per object"
    assert len(stage.state()) == 1200

    again = stage.run(config, "--json", "--date", "2026-01-03", "--workers", "2")

    assert (one_json(again)["status"], one_json(again)["unchanged"]) == ("nothing_new", 1200)


# moto's server routes a path with a newline in it to nowhere (a 404); the in-process copier tests take that name.
KEYS = [f"movielens/{name}" for name in AWKWARD_KEYS if "\n" not in name]


def test_awkward_keys_land_byte_exact_over_http(stage: Stage) -> None:
    bodies = {key: b"\x00\xff" + key.encode() + bytes(range(256)) for key in KEYS}
    for key, body in bodies.items():
        stage.put(key, body)

    proc = stage.run(stage.config(), "--json", "--date", "2026-01-02")

    assert proc.returncode == 0, proc.stderr
    assert one_json(proc)["copied"] == len(KEYS)
    expected = {}
    for key in KEYS:
        folder, _, name = key.rpartition("/")
        expected[f"{folder}/ingest_date=2026-01-02/{name}"] = key
    assert set(stage.landed()) == set(expected)
    for target, key in expected.items():
        assert stage.body(stage.raw, target) == bodies[key], key
        assert stage.lineage(target)["ingest-source-key"] == key
    manifest = {line["source_key"]: line["target_key"] for line in stage.manifest_lines()}
    assert manifest == {key: target for target, key in expected.items()}


def test_history_lists_runs_newest_first(stage: Stage) -> None:
    config = stage.config()
    empty = stage.cli(*stage.argv("history", config))
    assert (empty.returncode, empty.stdout.strip()) == (0, "no runs recorded for movielens")

    stage.put("movielens/a.csv", b"a")
    first = one_json(stage.run(config, "--json", "--date", "2026-01-03"))
    stage.put("movielens/b.csv", b"b")
    second = one_json(stage.run(config, "--json", "--date", "2026-01-02"))  # a backfill: newer run, older date

    text = stage.cli(*stage.argv("history", config))
    as_json = stage.cli(*stage.argv("history", config, "--json"))
    limited = stage.cli(*stage.argv("history", config, "--json", "--limit", "1"))

    assert text.returncode == as_json.returncode == limited.returncode == 0
    rows = [line.split() for line in text.stdout.splitlines()]
    assert [row[:3] for row in rows] == [
        [second["run_id"], "2026-01-02", "succeeded"],
        [first["run_id"], "2026-01-03", "succeeded"],
    ]
    runs = one_json(as_json)["runs"]
    assert [(r["run_id"], r["date"], r["copied"]) for r in runs] == [
        (second["run_id"], "2026-01-02", 1),
        (first["run_id"], "2026-01-03", 1),
    ]
    assert [r["run_id"] for r in one_json(limited)["runs"]] == [second["run_id"]]


def test_notification_reaches_a_subscribed_queue_with_dataset_and_status(stage: Stage) -> None:
    sns, sqs = client(stage.url, "sns"), client(stage.url, "sqs")
    topic = sns.create_topic(Name="ingestion-runs")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="ingestion-runs")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    stage.put("movielens/ratings.csv", b"r")

    proc = stage.run(
        stage.config(), "--json", "--date", "2026-01-02", "--topic-arn", topic, env={"AWS_ENDPOINT_URL": stage.url}
    )

    assert proc.returncode == 0, proc.stderr
    run_id = one_json(proc)["run_id"]
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2)["Messages"]
    [envelope] = [json.loads(m["Body"]) for m in messages]
    assert envelope["TopicArn"] == topic
    assert envelope["Subject"] == "[ingestion] movielens 2026-01-02: succeeded"
    assert envelope["MessageAttributes"]["dataset"] == {"Type": "String", "Value": DATASET}
    assert envelope["MessageAttributes"]["status"] == {"Type": "String", "Value": "succeeded"}
    assert run_id in envelope["Message"]


def test_without_a_topic_the_run_needs_no_sns(stage: Stage) -> None:
    stage.put("movielens/ratings.csv", b"r")

    proc = stage.run(stage.config(), "--date", "2026-01-02")

    assert proc.returncode == 0
    assert proc.stderr == ""
    assert "succeeded" in proc.stdout
    assert set(stage.landed()) == landed_at("2026-01-02", "ratings.csv")


# ---- what a new user meets: every failure is one line, an exit code and one JSON object ----------------------------


def assert_refused(proc: subprocess.CompletedProcess[str], status: str, code: int) -> tuple[dict, str]:
    """No traceback, one `error:` line, the exit code, and one JSON answer saying the same: (answer, line)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == code, proc.stderr
    answer = one_json(proc)
    assert (answer["dataset"], answer["status"], answer["exit_code"]) == (DATASET, status, code)
    assert answer["error"] and answer["error"] in line
    return answer, line


def test_a_dry_run_over_a_missing_source_bucket_exits_1_naming_it(stage: Stage) -> None:
    config = write_config(stage.workdir / "gone.json", "source-bucket-that-was-never-made", stage.raw, DATASET)

    proc = stage.run(config, "--dry-run", "--json")

    answer, line = assert_refused(proc, "failed", 1)
    assert "NoSuchBucket" in answer["error"]
    assert "'source-bucket-that-was-never-made'" in line
    assert stage.everything() == {}


def test_history_of_a_missing_raw_bucket_exits_1_naming_it(stage: Stage) -> None:
    config = write_config(stage.workdir / "gone.json", stage.source, "raw-bucket-that-was-never-made", DATASET)

    proc = stage.cli(*stage.argv("history", config, "--json"))

    _, line = assert_refused(proc, "failed", 1)
    assert "history failed: NoSuchBucket" in line
    assert "the target bucket 'raw-bucket-that-was-never-made'" in line


def test_an_s3_config_behind_a_dead_endpoint_exits_1_naming_the_endpoint(stage: Stage) -> None:
    with socket.socket() as sock:  # a port nobody listens on: connecting is refused at once
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    argv = ["run", "--config", f"s3://{stage.source}/config/movielens.json", "--dataset", DATASET, "--json"]

    # One attempt instead of ten with backoff: the answer is the same, half a minute sooner.
    proc = stage.cli(*argv, "--endpoint-url", dead, env={"AWS_MAX_ATTEMPTS": "1"})

    _, line = assert_refused(proc, "failed", 1)
    assert f"cannot read config s3://{stage.source}/config/movielens.json" in line
    assert dead in line and "--endpoint-url" in line


def test_an_aws_profile_that_does_not_exist_exits_2_naming_it(stage: Stage) -> None:
    proc = stage.run(stage.config(), "--json", env={"AWS_PROFILE": "no-such-profile"})

    _, line = assert_refused(proc, "invalid", 2)
    assert "no usable AWS credentials" in line
    assert "no-such-profile" in line
    assert stage.everything() == {}


def test_no_credentials_at_all_exits_2_saying_what_to_set(stage: Stage) -> None:
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}

    proc = stage.run(stage.config(), "--json", env=env)

    _, line = assert_refused(proc, "invalid", 2)
    assert "Unable to locate credentials" in line
    assert "AWS_ACCESS_KEY_ID" in line
    assert stage.everything() == {}


def test_a_topic_that_does_not_exist_warns_and_the_committed_run_keeps_exit_0(stage: Stage) -> None:
    stage.put("movielens/ratings.csv", b"r")
    topic = "arn:aws:sns:us-east-1:123456789012:never-created"

    proc = stage.run(
        stage.config(), "--json", "--date", "2026-01-02", "--topic-arn", topic, env={"AWS_ENDPOINT_URL": stage.url}
    )

    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = one_json(proc)
    assert (summary["status"], summary["copied"]) == ("succeeded", 1)
    assert topic in summary["notification_error"]
    [warning] = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert "the notification was not sent" in warning and topic in warning
    assert set(stage.landed()) == landed_at("2026-01-02", "ratings.csv")
    assert [r["run_id"] for r in one_json(stage.cli(*stage.argv("history", stage.config(), "--json")))["runs"]] == [
        summary["run_id"]
    ]


def test_usage_error_under_json_is_one_invalid_answer(stage: Stage) -> None:
    proc = stage.cli("run", "--config", "c.json", "--dataset", "movielens", "--date", "2026-13-01", "--json")

    assert_refused(proc, "invalid", 2)
    assert "usage: python -m handler run" in proc.stderr
