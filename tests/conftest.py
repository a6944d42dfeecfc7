"""Shared fixtures: fake credentials before any client exists, moto in-process and over HTTP."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from handler.config import DatasetConfig, parse_config
from handler.lambda_function import _s3 as _lambda_clients
from handler.ledger import Ledger
from handler.store import Store
from tests.lineage_backend import LineageBackend, lineage_backend
from tests.moto_patches import honour_copy_conditions

REGION = "us-east-1"
REPO = Path(__file__).resolve().parent.parent
_bucket_numbers = itertools.count()


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real account: fake keys, an explicit region, no profile or endpoint leakage."""
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_SNS",
        "SNS_TOPIC_ARN",
        "GLUE_DATABASE",
        "CONFIG_BUCKET",
        "CONFIG_KEY",
        "CONFIG_PATH",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    # The Lambda keeps its S3 clients per container; each test is a fresh container.
    _lambda_clients.cache_clear()
    # moto ignores the copy conditions S3 honours; the runtime relies on them (tests/moto_patches.py).
    honour_copy_conditions(monkeypatch)


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    return boto3.client("s3", region_name=REGION)


@pytest.fixture(name="lineage_backend")
def lineage_backend_fixture() -> Iterator[LineageBackend]:
    """An OpenLineage backend on loopback that keeps what it is sent (tests/lineage_backend.py)."""
    with lineage_backend() as backend:
        yield backend


@pytest.fixture
def store(s3: Any) -> Store:
    """The moto client as the runtime takes it: a Store (on botocore's road, which moto's mock answers)."""
    return Store(s3)


def unique_bucket(stem: str) -> str:
    return f"{stem}-{os.getpid()}-{next(_bucket_numbers)}"


def new_bucket(s3: Any, stem: str) -> str:
    """An empty bucket of the test's own (names are unique across xdist's processes)."""
    bucket = unique_bucket(stem)
    s3.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def buckets(s3: Any) -> tuple[str, str]:
    """A fresh (source, raw) pair of buckets."""
    return new_bucket(s3, "source"), new_bucket(s3, "raw")


def dataset_config(source: str, raw: str, name: str = "movielens", **overrides: Any) -> DatasetConfig:
    """A validated dataset over the given buckets; overrides are raw config fields."""
    raw_config = {
        "source": {"bucket": source, "prefix": "movielens/"},
        "target": {"bucket": raw, "prefix": "movielens/"},
        **overrides,
    }
    return parse_config({"datasets": {name: raw_config}}).dataset(name)


def config_document(source: str, raw: str, name: str = "movielens", **overrides: Any) -> str:
    """A config file's text holding that one dataset, every field written out."""
    ds = dataset_config(source, raw, name, **overrides)
    return json.dumps({"datasets": {name: ds.to_dict()}})


def write_config(path: Path, source: str, raw: str, name: str = "movielens", **overrides: Any) -> Path:
    path.write_text(config_document(source, raw, name, **overrides))
    return path


LAMBDA_CONFIG_KEY = "config/{dataset}.json"


def lambda_config_bucket(s3: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bucket for the function's per-dataset config objects, named in its environment as the stack names it."""
    bucket = new_bucket(s3, "config")
    monkeypatch.setenv("CONFIG_BUCKET", bucket)
    monkeypatch.setenv("CONFIG_KEY", LAMBDA_CONFIG_KEY)
    return bucket


def put_lambda_config(
    s3: Any, config_bucket: str, source: str, raw: str, name: str = "movielens", **overrides: Any
) -> None:
    """The config object the function reads for dataset `name` (see lambda_config_bucket)."""
    s3.put_object(
        Bucket=config_bucket,
        Key=LAMBDA_CONFIG_KEY.format(dataset=name),
        Body=config_document(source, raw, name, **overrides).encode(),
        ContentType="application/json",
    )


def put_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    """Objects whose bodies are their own keys: each distinct, each telling where it came from."""
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())


def list_keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    paginator = s3.get_paginator("list_objects_v2")
    return [o["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]


def landed_keys(s3: Any, bucket: str) -> list[str]:
    """Keys in the raw bucket outside the ledger."""
    return [k for k in list_keys(s3, bucket) if not k.startswith("_ingestion/")]


def ledger_in(s3: Any, raw: str, name: str = "movielens") -> Ledger:
    """A dataset's ledger in a raw bucket (it depends on nothing else): tests find ledger objects by its paths."""
    return Ledger(Store(s3), dataset_config("ledger-test-source", raw, name))


def lock_document(ledger: Ledger) -> dict[str, Any]:
    document, _ = ledger.lock.read()
    assert document is not None, "the dataset holds no lock"
    return document


def expire_lock(ledger: Ledger) -> None:
    """Age the dataset lock past its expiry, as if its holder died long ago (cheaper than sleeping out a TTL)."""
    lock = ledger.lock
    document = dict(lock_document(ledger), expires_at=time.time() - 1)
    lock.store.client.put_object(Bucket=lock.bucket, Key=lock.key, Body=json.dumps(document).encode())


def one_json(output: subprocess.CompletedProcess[str] | str) -> dict[str, Any]:
    """A CLI's stdout (of a finished process, or as text) must be exactly one JSON object: its answer."""
    stdout, stderr = (output, "") if isinstance(output, str) else (output.stdout, output.stderr)
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got {stdout!r}; stderr: {stderr}"
    document = json.loads(lines[0])
    assert isinstance(document, dict)
    return document


class Crash(Exception):
    """Stands for the process dying (a Lambda timeout) at one chosen S3 call."""


def crash_once(s3: Any, operation: str, key_part: str) -> None:
    """The next `operation` on a key containing `key_part` dies before it reaches S3."""
    armed = [True]

    def maybe_crash(params: dict[str, Any], **kwargs: Any) -> None:
        if armed[0] and key_part in params.get("Key", ""):
            armed[0] = False
            raise Crash(f"died before {operation} {params['Key']}")

    s3.meta.events.register(f"before-parameter-build.s3.{operation}", maybe_crash)
