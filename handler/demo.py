"""`python -m handler demo`: the whole pipeline against a local S3 and SNS (moto's server, in-process).

No AWS account is touched: the demo sets fake credentials for itself and points every client at the
local server. It is imported only by the CLI's `demo` command, so moto never enters the Lambda's path.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from .configfile import load_config
from .errors import ExtraMissing
from .notify import build_notification, publish
from .readable import shown
from .runner import Engine, one_shot
from .store import Store

DATASET = "movielens"
SOURCE_BUCKET = "demo-source"
RAW_BUCKET = "demo-raw"
CONFIG_BUCKET = "demo-config"
SOURCE_PREFIX = "movielens/"
BINARY = "binary/octet-stream"
"""What S3 types an object written without a content type (the config, the changed file)."""


def main(source_dir: str | None = None) -> int:
    moto_server = _moto_server()  # first: without the demo extra, that is all there is to say
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the local server's request log drowns the output

    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SNS"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1"
    )
    server = moto_server(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        return _demo(f"http://{host}:{port}", Path(source_dir) if source_dir else None)
    finally:
        server.stop()


def _moto_server() -> Any:
    """moto's server class: a dependency of the demo alone (the `demo` extra), so a plain `pip install .` lacks it
    and is told how to get it instead of meeting an import error."""
    try:
        from moto.server import ThreadedMotoServer
    except ModuleNotFoundError as err:
        raise ExtraMissing(
            "the demo needs moto, which this Python cannot import: install the demo extra with "
            "`pip install '.[demo]'` from the repository root, or run `make demo`, which installs everything into "
            "./.venv"
        ) from err
    return ThreadedMotoServer


def _demo(endpoint: str, source_dir: Path | None) -> int:
    session = boto3.session.Session()
    store = Store.sized(session, concurrency=16, endpoint_url=endpoint)
    sns = session.client("sns", endpoint_url=endpoint)
    sqs = session.client("sqs", endpoint_url=endpoint)
    for bucket in (SOURCE_BUCKET, RAW_BUCKET, CONFIG_BUCKET):
        store.client.create_bucket(Bucket=bucket)  # the demo's own S3: nothing the runtime does
    topic_arn = sns.create_topic(Name="ingestion-runs")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="ingestion-runs-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    files = _seed(store, source_dir)
    config = {
        "datasets": {
            DATASET: {
                "source": {"bucket": SOURCE_BUCKET, "prefix": SOURCE_PREFIX},
                "target": {"bucket": RAW_BUCKET, "prefix": "movielens/"},
                "key_template": "{dir}/ingest_date={date}/{name}",
                "include": ["*.csv", "*.txt"],
                "timezone": "UTC",
                "concurrency": 16,
                "topic_arn": topic_arn,
            }
        }
    }
    store.put_bytes(CONFIG_BUCKET, f"config/{DATASET}.json", json.dumps(config, indent=2).encode(), BINARY)
    dataset = load_config(f"s3://{CONFIG_BUCKET}/config/{DATASET}.json", lambda: store).dataset(DATASET)
    engine = Engine(store, dataset)

    print(f"Local S3 and SNS (moto) at {endpoint}")
    print(f"Seeded s3://{SOURCE_BUCKET}/{SOURCE_PREFIX} with {len(files)} file(s), {sum(files.values())} bytes")
    print(f"Config s3://{CONFIG_BUCKET}/config/{DATASET}.json\n")

    first_date = datetime.now(UTC).date()
    _title(f"Run 1 ({first_date})")
    first = _run(engine, sns, topic_arn, first_date)
    _print_tree(store, RAW_BUCKET)
    _print_summary(first)
    _print_notification(sqs, queue_url)

    changed = _change_sources(store, files)
    _title(f"Run 2 ({first_date + timedelta(days=1)}) after adding {changed[0]!r} and changing {changed[1]!r}")
    before = set(_keys(store, RAW_BUCKET))
    second = _run(engine, sns, topic_arn, first_date + timedelta(days=1))
    new = sorted(k for k in set(_keys(store, RAW_BUCKET)) - before if not k.startswith("_ingestion/"))
    print("Landed by run 2:")
    for key in new:
        print(f"  s3://{RAW_BUCKET}/{key}")
    _print_summary(second)
    _print_notification(sqs, queue_url)

    _title("History")
    for run in engine.history():
        print(f"  {run.run_id}  {run.date}  {run.status:<10} copied {run.tally.copied}")
    _title("Verify (the ledger against the bucket, both nights)")
    verified = [engine.verify(day) for day in (first_date, first_date + timedelta(days=1))]
    for day, report in zip((first_date, first_date + timedelta(days=1)), verified, strict=True):
        print(f"  {day}: {report.status}, {report.checked.objects_checked} object(s) checked")
    ok = first["status"] == "succeeded" and second["copied"] == 2 and len(new) == 2
    ok = ok and all(report.status == "clean" for report in verified)
    print("\nDemo", "succeeded: exactly the added and the changed file landed again." if ok else "FAILED")
    return 0 if ok else 1


def _run(engine: Engine, sns: Any, topic_arn: str, run_date: Any) -> dict[str, Any]:
    summary = one_shot(engine.job, run_date)[-1]
    publish(sns, topic_arn, build_notification(summary))
    return summary.to_json()


def _seed(store: Store, source_dir: Path | None) -> dict[str, int]:
    """Upload the MovieLens files: a real folder when given, else a small sample with the same columns."""
    files: dict[str, bytes] = {}
    if source_dir is not None:
        for path in sorted(source_dir.rglob("*")):
            if path.is_file():
                files[f"{source_dir.name}/{path.relative_to(source_dir).as_posix()}"] = path.read_bytes()
    else:
        files = {f"ml-latest-small/{name}": body for name, body in sample_movielens().items()}
    for relative, body in files.items():
        content_type = "text/csv" if relative.endswith(".csv") else "text/plain"
        store.put_bytes(SOURCE_BUCKET, SOURCE_PREFIX + relative, body, content_type)
    return {name: len(body) for name, body in files.items()}


def sample_movielens(seed: int = 7) -> dict[str, bytes]:
    """A few hundred rows in MovieLens' file names and columns, generated so the demo needs no download."""
    rng = random.Random(seed)
    genres = ["Action", "Adventure", "Animation", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller"]
    movies = [
        (movie_id, f"Sample Movie {movie_id} ({rng.randint(1950, 2018)})", "|".join(rng.sample(genres, 2)))
        for movie_id in range(1, 101)
    ]
    tables = {
        "movies.csv": (["movieId", "title", "genres"], movies),
        "links.csv": (
            ["movieId", "imdbId", "tmdbId"],
            [(m[0], f"{100000 + m[0]:07d}", 800 + m[0]) for m in movies],
        ),
        "ratings.csv": (
            ["userId", "movieId", "rating", "timestamp"],
            [
                (user, rng.choice(movies)[0], rng.choice([0.5, 1.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]), 964982703 + i)
                for i, user in enumerate(rng.randint(1, 50) for _ in range(500))
            ],
        ),
        "tags.csv": (
            ["userId", "movieId", "tag", "timestamp"],
            [
                (rng.randint(1, 50), rng.choice(movies)[0], rng.choice(["funny", "classic", "dark"]), 1445714994 + i)
                for i in range(60)
            ],
        ),
    }
    out = {}
    for name, (header, rows) in tables.items():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        out[name] = buffer.getvalue().encode()
    out["README.txt"] = b"Generated sample in the layout of MovieLens ml-latest-small (not real ratings).\n"
    return out


def _change_sources(store: Store, files: dict[str, int]) -> tuple[str, str]:
    """Add one file and change one, as a producer would between two nights."""
    folder = next(iter(files)).split("/", 1)[0]
    added = f"{folder}/ratings_late.csv"
    store.put_bytes(
        SOURCE_BUCKET, SOURCE_PREFIX + added, b"userId,movieId,rating,timestamp\n1,1,4.0,1700000000\n", "text/csv"
    )
    changed = next((n for n in files if n.endswith("tags.csv")), next(iter(files)))
    body = store.get_bytes(SOURCE_BUCKET, SOURCE_PREFIX + changed)
    store.put_bytes(SOURCE_BUCKET, SOURCE_PREFIX + changed, body + b"1,1,late-tag,1700000001\n", BINARY)
    return added, changed


def _keys(store: Store, bucket: str) -> list[str]:
    return list(store.iter_keys(bucket, ""))


def _print_tree(store: Store, bucket: str) -> None:
    """The raw bucket as an indented tree, folders first, with sizes."""
    sizes = {o.key: o.size for o in store.iter_source_objects(bucket, "")}
    print(f"s3://{bucket}/")
    shown: set[str] = set()
    for key in sorted(sizes):
        parts = key.split("/")
        for depth in range(len(parts) - 1):
            folder = "/".join(parts[: depth + 1])
            if folder not in shown:
                shown.add(folder)
                print(f"{'  ' * (depth + 1)}{parts[depth]}/")
        print(f"{'  ' * len(parts)}{parts[-1]}  ({sizes[key]} bytes)")


def _print_summary(summary: dict[str, Any]) -> None:
    print("\nRun summary:")
    for key in (
        "run_id",
        "date",
        "status",
        "listed",
        "planned",
        "copied",
        "skipped",
        "unchanged",
        "failed",
        "bytes",
        "manifest",
        "marker",
    ):
        print(f"  {key:<9} {shown(summary.get(key))}")


def _print_notification(sqs: Any, queue_url: str) -> None:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    for message in messages:
        envelope = json.loads(message["Body"])
        attributes = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
        print(f"\nNotification received on the topic's queue: {envelope.get('Subject')}")
        print(f"  attributes: {attributes}")
        print("  " + "\n  ".join(envelope["Message"].split("\n\n", 1)[0].splitlines()))
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _title(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)))
