"""A machine whose clock is 10 minutes off S3's: `min_age_seconds` and the lock still go by S3's time.

S3 (here moto's server, in this process, on the real clock) stamps LastModified and every answer's `Date` with
its own clock. The runs are `python -m handler` children whose wall clock is moved by SKEW seconds: `time.time()`
and `datetime.now()` (and so the requests' signing time too: S3 allows 15 minutes, moto does not check). A child
10 minutes ahead of the server is the same as a server 10 minutes behind the machine, and the other way round,
so each test runs with the machine ahead and behind.

On the runtime before issue 22 each of these fails: ages and expiries were read off the machine's own clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from handler.records import parse_utc
from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    CLI_TIMEOUT,
    DATASET,
    Stage,
    moto_server_fixture,
    one_json,
    reap,
    stage_fixture,
)

SKEW = 600
"""Ten minutes: past two thirds of a 300 s TTL (where a live lock looked expired) and well past min_age."""
MIN_AGE = 300
LIVE_TTL = 300
SHORT_TTL = 10
"""Seconds: long enough for a runner to start and find the lock live, on a busy machine too; short to wait out."""
EXIT_OK, EXIT_IN_PROGRESS = 0, 3

# Moves this process's wall clock by argv[1] seconds (removed from argv), before anything reads it.
SKEW_CLOCK = """
import datetime, sys, time
skew = float(sys.argv.pop(1))
real_time, real_datetime = time.time, datetime.datetime
time.time = lambda: real_time() + skew


class SkewedDatetime(real_datetime):
    @classmethod
    def now(cls, tz=None):
        return real_datetime.fromtimestamp(time.time(), tz)

    @classmethod
    def utcnow(cls):
        return real_datetime.fromtimestamp(time.time(), datetime.UTC).replace(tzinfo=None)


datetime.datetime = SkewedDatetime
"""

# `python -m handler` on a machine whose clock is argv[1] seconds off.
SKEWED_CLI = (
    SKEW_CLOCK
    + """
import runpy
sys.argv[0] = "handler"
runpy.run_module("handler", run_name="__main__", alter_sys=True)
"""
)

# A lock holder on a machine whose clock is argv[1] seconds off: takes the dataset's lock, prints its token, then
# renews it once if told so on stdin (and says whether it could), or just exits (a holder that died).
HOLDER = (
    SKEW_CLOCK
    + """
import json
import boto3
from handler.config import parse_config
from handler.errors import LockLost
from handler.ledger import Ledger
from handler.store import Store
url, source, raw, ttl = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
config = {
    "source": {"bucket": source, "prefix": "movielens/"},
    "target": {"bucket": raw, "prefix": "movielens/"},
    "lock_ttl_seconds": ttl,
}
dataset = parse_config({"datasets": {"movielens": config}}).dataset("movielens")
ledger = Ledger(Store(boto3.client("s3", endpoint_url=url)), dataset)
lock = ledger.lock.acquire("holder-run", owner="holder")
print(json.dumps({"token": lock.token}), flush=True)
if sys.stdin.readline().strip() == "renew":
    try:
        lock.renew()
        print("renewed", flush=True)
    except LockLost as err:
        print(f"lost: {err}", flush=True)
"""
)


def skewed_run(stage: Stage, skew: float, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ingest run` (or another command, via args) from a machine whose clock is `skew` seconds off."""
    argv = stage.argv(args[0], config, *args[1:]) if args else stage.argv("run", config, "--json")
    return stage.cli(*argv, program=(sys.executable, "-c", SKEWED_CLI, str(skew)))


def start_holder(stage: Stage, skew: float, ttl: int) -> tuple[subprocess.Popen[str], str]:
    """A process that holds the dataset's lock, on a clock `skew` seconds off; returns it and its lock token."""
    holder = (sys.executable, "-c", HOLDER, str(skew))
    proc = stage.start(stage.url, stage.source, stage.raw, str(ttl), program=holder, stdin=subprocess.PIPE)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"the holder could not take the lock:\n{err}")
    return proc, json.loads(line)["token"]


def lock_document(stage: Stage) -> dict[str, Any] | None:
    try:
        return json.loads(stage.body(stage.raw, stage.ledger.lock))
    except stage.s3.exceptions.NoSuchKey:
        return None


def age_object(stage: Stage, key: str, seconds: float) -> None:
    """Make the server say `key` was last modified `seconds` earlier than it was (moto's backend, in this process):
    an object written that long before the run, without waiting for it."""
    stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(stage.source, key)
    assert stored is not None
    stored.last_modified -= timedelta(seconds=seconds)


@pytest.mark.parametrize("skew", [SKEW, -SKEW], ids=["machine-10min-ahead", "machine-10min-behind"])
def test_min_age_is_judged_by_the_servers_clock(stage: Stage, skew: int) -> None:
    """min_age_seconds=300: an object written 302 s before the run lands, one written a second before it waits.
    (302, not 301: LastModified and Date have whole seconds, so an age is known to about a second.)"""
    old_key, young_key = "movielens/old.csv", "movielens/young.csv"
    stage.put(old_key, b"id\n1\n")
    age_object(stage, old_key, MIN_AGE + 2)
    stage.put(young_key, b"id\n2\n")

    proc = skewed_run(stage, skew, stage.config(min_age_seconds=MIN_AGE))

    assert proc.returncode == EXIT_OK, proc.stderr
    summary = one_json(proc)
    assert 0 <= summary["duration_seconds"] < 60, "started and finished by one clock"
    named = datetime.strptime(summary["run_id"][:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    assert abs((named - parse_utc(summary["started_at"])).total_seconds()) < 2, "run ids sort by S3's time"
    landed = stage.landed()
    assert [key.rsplit("/", 1)[1] for key in landed] == ["old.csv"], landed
    [young] = [line for line in stage.manifest_lines() if line["source_key"] == young_key]
    assert young["status"] == "skipped"
    assert f"younger than min_age_seconds={MIN_AGE}" in young["reason"]


@pytest.mark.parametrize(
    ("holder_skew", "runner_skew"),
    [(0, SKEW), (-SKEW, 0)],
    ids=["runner-10min-ahead", "holder-10min-behind"],
)
def test_a_live_lock_is_not_taken_over_across_skewed_clocks(stage: Stage, holder_skew: int, runner_skew: int) -> None:
    """A holder took the lock (TTL 300 s) a moment ago; a runner whose clock is 10 minutes ahead of the holder's
    finds it live by S3's time: it exits "in progress" having copied nothing, and the holder keeps its lock."""
    stage.put("movielens/a.csv", b"id\n1\n")
    holder, token = start_holder(stage, holder_skew, LIVE_TTL)
    try:
        proc = skewed_run(stage, runner_skew, stage.config(lock_ttl_seconds=LIVE_TTL))

        assert proc.returncode == EXIT_IN_PROGRESS, proc.stdout + proc.stderr
        assert one_json(proc)["status"] == "in_progress"
        assert "expires in" in one_json(proc)["error"]
        assert stage.landed() == []
        assert (lock_document(stage) or {}).get("token") == token, "the runner took the holder's lock"
        out, err = holder.communicate("renew\n", timeout=CLI_TIMEOUT)
        assert "renewed" in out, out + err
    finally:
        reap([holder])


@pytest.mark.parametrize(
    ("holder_skew", "runner_skew"),
    [(0, -SKEW), (SKEW, 0)],
    ids=["runner-10min-behind", "holder-10min-ahead"],
)
def test_a_dead_holders_lock_is_taken_over_after_its_ttl_by_the_servers_clock(
    stage: Stage, holder_skew: int, runner_skew: int
) -> None:
    """A holder that stopped renewing (it exited without releasing): before its TTL has passed on S3's clock the
    runner finds the lock live; after it, the runner takes it over and completes its run, though by the runner's
    own clock (10 minutes behind the holder's) the lock still had ten minutes to run."""
    stage.put("movielens/a.csv", b"id\n1\n")
    config = stage.config(lock_ttl_seconds=SHORT_TTL)
    started = time.monotonic()
    holder, _ = start_holder(stage, holder_skew, SHORT_TTL)
    holder.communicate("", timeout=CLI_TIMEOUT)  # stops without renewing or releasing
    stopped = time.monotonic()

    early = skewed_run(stage, runner_skew, config)
    assert early.returncode == EXIT_IN_PROGRESS, early.stdout + early.stderr
    assert time.monotonic() - started < SHORT_TTL - 1, "too slow a machine to see the lock while it was live"

    time.sleep(max(0.0, stopped + SHORT_TTL + 1.5 - time.monotonic()))  # the TTL, and the Date's second
    late = skewed_run(stage, runner_skew, config)

    assert late.returncode == EXIT_OK, late.stdout + late.stderr
    assert [key.rsplit("/", 1)[1] for key in stage.landed()] == ["a.csv"]
    assert lock_document(stage) is None, "the run that took over released the lock when done"


def test_status_shows_the_expiry_by_the_servers_clock(stage: Stage) -> None:
    """`ingest status` from a machine 10 minutes ahead of the holder's: the lock expires in about its TTL."""
    holder, _ = start_holder(stage, -SKEW, LIVE_TTL)
    try:
        proc = skewed_run(stage, SKEW, stage.config(lock_ttl_seconds=LIVE_TTL), "status", "--json")

        assert proc.returncode == EXIT_OK, proc.stderr
        lock = one_json(proc)["lock"]
        assert lock["run_id"] == "holder-run"
        assert lock["expired"] is False
        assert LIVE_TTL - 30 < lock["expires_in_seconds"] <= LIVE_TTL + 1
    finally:
        reap([holder])
