"""Drive `python -m handler` as a subprocess against moto's server over HTTP, and read back what it did.

The server runs in the test process (one per module, reset before each test); the CLI runs in a child
process that only knows the endpoint, so every byte crosses HTTP the way it would against S3.

Test modules import `moto_server_fixture` and `stage_fixture`; the fixtures are named `moto_server` and
`stage`, so the import does not clash with the test functions' parameters.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
import requests
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

from handler.ledger_keys import LedgerPaths
from tests.conftest import REPO, dataset_config, landed_keys, list_keys, write_config
from tests.conftest import one_json as one_json  # the e2e tests take it from here with the fixtures
from tests.moto_patches import serialise_key_writes

REGION = "us-east-1"
DATASET = "movielens"
CLI_TIMEOUT = 120
CLI = (sys.executable, "-m", "handler")
"""What `ingest` runs; a test that runs the CLI another way (under a wrapper, on a skewed clock) names its own."""
"""Generous on purpose: it only bounds a hung child, no test asserts how fast a run is."""


@pytest.fixture(scope="module", name="moto_server")
def moto_server_fixture() -> Iterator[str]:
    """One moto server per module on a free port; yields its base URL."""
    access_log = logging.getLogger("werkzeug")  # one line per request otherwise
    level = access_log.level
    access_log.setLevel(logging.ERROR)
    with pytest.MonkeyPatch.context() as monkeypatch:
        serialise_key_writes(monkeypatch)  # S3's conditional writes are atomic, moto's are not
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()
            access_log.setLevel(level)


def client(url: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The CLI's environment: fake credentials, an explicit region, nothing inherited that could reach AWS."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in ("SNS_TOPIC_ARN", "CONFIG_PATH", "CONFIG_BUCKET", "CONFIG_KEY")
    }
    return {
        **inherited,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


@dataclass
class Stage:
    """A fresh source and raw bucket on the moto server, a config directory, and the CLI pointed at them."""

    url: str
    s3: Any
    source: str
    raw: str
    workdir: Path

    @property
    def ledger(self) -> LedgerPaths:
        """Where the CLI's ledger objects are: the runtime's own paths, never spelt out here."""
        return LedgerPaths(dataset_config(self.source, self.raw, DATASET))

    # ---- setting up -----------------------------------------------------------------------------------

    def config(self, name: str = "config.json", **overrides: Any) -> Path:
        """A valid config for dataset `movielens` over this stage's buckets; overrides are raw config fields."""
        return write_config(self.workdir / name, self.source, self.raw, DATASET, **overrides)

    def put(self, key: str, body: bytes, **extra: Any) -> str:
        """Put one source object over HTTP; returns its ETag without quotes."""
        return self.s3.put_object(Bucket=self.source, Key=key, Body=body, **extra)["ETag"].strip('"')

    def seed(self, count: int, *, prefix: str = "movielens/part-") -> dict[str, bytes]:
        """Many small source objects, written straight into the server's backend (seeding is not under test)."""
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        objects = {f"{prefix}{i:05d}.csv": f"id,value\n{i},{uuid.uuid4().hex}\n".encode() for i in range(count)}
        for key, body in objects.items():
            backend.put_object(self.source, key, body)
        return objects

    # ---- running the CLI ------------------------------------------------------------------------------

    def argv(self, command: str, config: Path | str, *args: str, dataset: str = DATASET) -> list[str]:
        return [command, "--config", str(config), "--dataset", dataset, "--endpoint-url", self.url, *args]

    def cli(
        self,
        *argv: str,
        env: Mapping[str, str] | None = None,
        timeout: float = CLI_TIMEOUT,
        program: Sequence[str] = CLI,
        **popen: Any,
    ) -> subprocess.CompletedProcess[str]:
        """`python -m handler <argv>` from the repo root in the CLI's environment (child_env); waits for it."""
        return subprocess.run(
            [*program, *argv],
            cwd=REPO,
            env=child_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **popen,
        )

    def run(self, config: Path | str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.cli(*self.argv("run", config, *args), **kwargs)

    def start(
        self, *argv: str, env: Mapping[str, str] | None = None, program: Sequence[str] = CLI, **popen: Any
    ) -> subprocess.Popen[str]:
        """As `cli`, without waiting: for killing it, racing it or talking to it. Its output is piped unless
        `popen` says otherwise."""
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
        return subprocess.Popen([*program, *argv], cwd=REPO, env=child_env(env), text=True, **pipes)

    def spawn(self, config: Path | str, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `run` without waiting: for killing it or racing it."""
        return self.start(*self.argv("run", config, *args), env=env)

    # ---- reading back ---------------------------------------------------------------------------------

    def landed(self) -> list[str]:
        """Keys in the raw bucket outside the ledger."""
        return landed_keys(self.s3, self.raw)

    def etags(self, bucket: str) -> dict[str, str]:
        """Every key of a bucket with its ETag (unquoted), from a listing."""
        paginator = self.s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=bucket)
        return {o["Key"]: o["ETag"].strip('"') for page in pages for o in page.get("Contents", [])}

    def everything(self) -> dict[str, str]:
        """Every key of the raw bucket (ledger included) with its ETag: to prove nothing was written."""
        return self.etags(self.raw)

    def body(self, bucket: str, key: str) -> bytes:
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def lineage(self, key: str) -> dict[str, str]:
        """The landed object's lineage metadata, with the source key decoded."""
        meta = {k.lower(): v for k, v in self.s3.head_object(Bucket=self.raw, Key=key)["Metadata"].items()}
        return dict(meta, **{"ingest-source-key": unquote(meta["ingest-source-key"])})

    def manifest_lines(self) -> list[dict[str, Any]]:
        """Every line of every manifest in the ledger."""
        lines = []
        for key in list_keys(self.s3, self.raw, self.ledger.manifests):
            text = self.body(self.raw, key).decode("utf-8")
            lines.extend(json.loads(line) for line in text.splitlines() if line.strip())
        return lines

    def state(self) -> list[dict[str, Any]]:
        """The ledger's current state: one line per source key last landed."""
        rows = []
        for part in json.loads(self.body(self.raw, self.ledger.state_index))["parts"]:
            if part["part"]:
                raw = gzip.decompress(self.body(self.raw, part["part"])).decode("utf-8")
                rows += [json.loads(line) for line in raw.splitlines() if line.strip()]
        return rows

    def wait_for_object(self, key: str, proc: subprocess.Popen[str], timeout: float = 90) -> None:
        """Poll the raw bucket (one cheap HEAD, not a listing that would slow the run) until `key` landed;
        fail if the run ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.s3.head_object(Bucket=self.raw, Key=key)
                return
            except self.s3.exceptions.ClientError as err:
                if err.response["Error"]["Code"] not in ("404", "NoSuchKey"):
                    raise
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(f"run ended (exit {proc.returncode}) before {key} landed:\n{err}")
            time.sleep(0.05)
        pytest.fail(f"{key} did not land within {timeout}s")

    def landed_versions(self) -> dict[str, tuple[str, str]]:
        """Landed keys with ETag and LastModified: a recopy of the same bytes still changes the latter."""
        paginator = self.s3.get_paginator("list_objects_v2")
        return {
            o["Key"]: (o["ETag"], o["LastModified"].isoformat())
            for page in paginator.paginate(Bucket=self.raw)
            for o in page.get("Contents", [])
            if not o["Key"].startswith("_ingestion/")
        }

    def settled_landed(self, quiet: float = 0.2, timeout: float = 15) -> dict[str, tuple[str, str]]:
        """`landed_versions` once the bucket stops changing: a killed client's last request may still be in the
        server."""
        deadline = time.monotonic() + timeout
        before = self.landed_versions()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            after = self.landed_versions()
            if after == before:
                return after
            before = after
        pytest.fail(f"the raw bucket kept changing for {timeout}s after the run had ended")


@pytest.fixture(name="stage")
def stage_fixture(moto_server: str, tmp_path: Path) -> Stage:
    """Reset the server, then a fresh pair of uniquely named buckets."""
    return new_stage(moto_server, tmp_path)


def new_stage(moto_server: str, workdir: Path) -> Stage:
    """What `stage` gives, for a fixture of a wider scope (a module's tests that only read what it landed)."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=30).raise_for_status()
    s3 = client(moto_server, "s3")
    suffix = uuid.uuid4().hex[:10]
    source, raw = f"source-{suffix}", f"raw-{suffix}"
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=raw)
    return Stage(url=moto_server, s3=s3, source=source, raw=raw, workdir=workdir)


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL: no finally blocks, no lock release, exactly like a machine that lost power."""
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def reap(procs: Iterable[subprocess.Popen[str]]) -> None:
    """Kill whatever a failed test left running."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
