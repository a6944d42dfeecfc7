"""Every step under at-least-once delivery, on moto in-process (docs/lambda-contract.md).

Lambda may run a step again after its first attempt died or lost its answer, and may deliver one invocation twice
so that two attempts of the same step run at once. Each attempt here is an Engine of the same execution with a
client of its own (the backend is shared), as two Lambda invocations of one step are. Where two attempts race,
botocore event hooks on their clients place them: both reach the same write (a barrier), or one waits at a chosen
request until the other is done. Whatever the delivery, the ledger ends with one account of the run and every
object lands once (the raw bucket is versioned, so a second landing would show as a second version).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from datetime import date as Date
from typing import Any, TypeVar

import boto3
import pytest

from handler.config import DatasetConfig
from handler.errors import LockLost, RunInProgress
from handler.ledger import PLANNING, SHARD_OUTCOME
from handler.records import utc_stamp
from handler.runner import Engine
from handler.store import Store
from handler.store.errors import NoSuchBucket
from tests.conftest import REGION, Crash, crash_once, dataset_config, expire_lock, ledger_in, list_keys, lock_document
from tests.moto_patches import serialise_key_writes

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:ingest:night-27"
OTHER = "arn:aws:states:us-east-1:123456789012:execution:ingest:night-28"
NOV_27 = Date(2026, 11, 27)
NOV_28 = Date(2026, 11, 28)
FILES = 5
WAIT = 30
"""Seconds an attempt held at a request waits for its sibling before the test fails (it never should)."""

T = TypeVar("T")


@pytest.fixture(autouse=True)
def atomic_key_puts(monkeypatch: pytest.MonkeyPatch) -> None:
    """S3's conditional PutObject is atomic; moto's checks the condition and then stores, in two steps, so two
    attempts racing for one key could both pass the check: the races here are about the runtime, not moto."""
    serialise_key_writes(monkeypatch)


@pytest.fixture
def dataset(s3: Any, buckets: tuple[str, str]) -> DatasetConfig:
    """Five files in three batches; the raw bucket versioned, so every landing of a key is counted."""
    source, raw = buckets
    s3.put_bucket_versioning(Bucket=raw, VersioningConfiguration={"Status": "Enabled"})
    for n in range(FILES):
        s3.put_object(Bucket=source, Key=f"movielens/f{n}.csv", Body=f"file {n}".encode())
    return dataset_config(source, raw, batch_max_objects=2)


def attempt(dataset: DatasetConfig, execution: str | None = EXECUTION) -> Engine:
    """One Lambda invocation of a step: an engine of the execution, with a client of its own."""
    return Engine(Store(boto3.client("s3", region_name=REGION)), dataset, execution=execution)


def items_at(engine: Engine, location: dict[str, str]) -> list[dict[str, Any]]:
    """The JSON list a Distributed Map's ItemReader reads."""
    body = engine.job.store.client.get_object(Bucket=location["bucket"], Key=location["key"])["Body"].read()
    return json.loads(body)


def complete(engine: Engine, answer: dict[str, Any]) -> dict[str, Any]:
    """What the state machine does after a plan answer, one step at a time: plan every round's shards and seal,
    copy every batch, finalize every shard, then finalize. Returns the committed summary."""
    while answer["stage"] == "planning":
        for item in items_at(engine, answer["shards"]):
            engine.plan_shard(item["run_id"], item["shard"])
        answer = engine.seal_plan(answer["run_id"])
    if answer["stage"] == "finalized":
        return answer["summary"]
    for item in items_at(engine, answer["batches"]):
        engine.copy_batch(item["run_id"], item["batch"])
    for item in items_at(engine, answer["final_shards"]):
        engine.finalize_shard(item["run_id"], item["shard"])
    return engine.finalize(answer["run_id"])["summary"]


def landings(s3: Any, raw: str) -> Counter[str]:
    """How many times each key outside the ledger was written (versions of it)."""
    return Counter({k: n for k, n in versions(s3, raw, "").items() if not k.startswith("_ingestion/")})


def landed_once(s3: Any, dataset: DatasetConfig, date: str = "2026-11-27") -> None:
    assert landings(s3, dataset.target.bucket) == Counter(
        {f"movielens/ingest_date={date}/f{n}.csv": 1 for n in range(FILES)}
    )


def versions(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    """How many versions each key under `prefix` has (the raw bucket is versioned): a rewrite adds one."""
    found: Counter[str] = Counter()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            found[version["Key"]] += 1
    return dict(found)


def read_json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def stamp(epoch: float) -> str:
    return utc_stamp(datetime.fromtimestamp(epoch, UTC))


def _key_of(params: dict[str, Any]) -> str:
    return params.get("Key") or params.get("Prefix") or ""


def meet(engines: list[Engine], operation: str, key_part: str) -> None:
    """Each engine's first `operation` on a key containing `key_part` waits until every engine has reached its
    own: so every attempt has read what it reads before any of them writes there."""
    barrier = threading.Barrier(len(engines), timeout=WAIT)
    for engine in engines:
        armed = [True]

        def wait(params: dict[str, Any], armed: list[bool] = armed, **kwargs: Any) -> None:
            if armed[0] and key_part in _key_of(params):
                armed[0] = False
                barrier.wait()

        engine.job.store.client.meta.events.register(f"before-parameter-build.s3.{operation}", wait)


def hold(
    engine: Engine, operation: str, key_part: str, until: threading.Event, reached: threading.Event | None = None
) -> None:
    """The engine's first `operation` on a key containing `key_part` waits for `until` (saying first, through
    `reached`, that it got there)."""
    armed = [True]

    def wait(params: dict[str, Any], **kwargs: Any) -> None:
        if armed[0] and key_part in _key_of(params):
            armed[0] = False
            if reached is not None:
                reached.set()
            assert until.wait(WAIT), f"held at {operation} {_key_of(params)}: the other attempt never let it go"

    engine.job.store.client.meta.events.register(f"before-parameter-build.s3.{operation}", wait)


def pause(engine: Engine, operation: str, key_part: str, seconds: float) -> None:
    """The engine's first `operation` on a key containing `key_part` starts `seconds` later."""
    armed = [True]

    def wait(params: dict[str, Any], **kwargs: Any) -> None:
        if armed[0] and key_part in _key_of(params):
            armed[0] = False
            time.sleep(seconds)

    engine.job.store.client.meta.events.register(f"before-parameter-build.s3.{operation}", wait)


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run the calls in threads of their own at the same time; their answers, or the first one's error."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result(timeout=WAIT * 2) for future in futures]


def then_set(event: threading.Event, call: Callable[[], T]) -> Callable[[], T]:
    """`call`, then `event` set however it ended."""

    def run() -> T:
        try:
            return call()
        finally:
            event.set()

    return run


def sealed(dataset: DatasetConfig) -> tuple[Engine, dict[str, Any]]:
    """A run of EXECUTION planned and sealed, nothing copied yet."""
    engine = attempt(dataset)
    plan = engine.plan(NOV_27)
    for item in items_at(engine, plan["shards"]):
        engine.plan_shard(item["run_id"], item["shard"])
    return engine, engine.seal_plan(plan["run_id"])


def copied(dataset: DatasetConfig) -> tuple[Engine, dict[str, Any]]:
    """A run of EXECUTION sealed and every batch copied; no shard finalized yet."""
    engine, plan = sealed(dataset)
    for item in items_at(engine, plan["batches"]):
        engine.copy_batch(item["run_id"], item["batch"])
    return engine, plan


# ---- a plan retried by its own execution ---------------------------------------------------------------------


@pytest.mark.parametrize("died_at", ["/shards/00000.json", "/planning.json"])
def test_a_plan_retried_after_dying_before_its_planning_was_stored_takes_its_lock_back_and_plans_the_same_run(
    s3, dataset, died_at
):
    first = attempt(dataset)
    crash_once(first.job.store.client, "PutObject", died_at)
    with pytest.raises(Crash):
        first.plan(NOV_27)
    lock = lock_document(ledger_in(s3, dataset.target.bucket))
    assert lock["execution"] == EXECUTION, "the failed plan left its lock for its retry"

    retry = attempt(dataset).plan(NOV_27)

    run_id = lock["run_id"]
    assert (retry["run_id"], retry["stage"], retry["date"]) == (run_id, "planning", "2026-11-27")
    assert items_at(first, retry["shards"]) == [{"dataset": "movielens", "run_id": run_id, "shard": 0}]
    planning = ledger_in(s3, dataset.target.bucket).read(PLANNING, run_id=run_id)
    assert planning is not None and planning.started_at == stamp(lock["acquired_at"]), "started when first locked"
    assert lock_document(ledger_in(s3, dataset.target.bucket))["token"] == lock["token"]

    summary = complete(attempt(dataset), retry)

    assert (summary["run_id"], summary["status"], summary["copied"]) == (run_id, "succeeded", FILES)
    assert summary["started_at"] == stamp(lock["acquired_at"])
    landed_once(s3, dataset)
    assert list_keys(s3, dataset.target.bucket, ledger_in(s3, dataset.target.bucket).paths.lock) == []


def test_a_plan_whose_answer_was_lost_answers_the_same_run_again_and_the_run_completes(s3, dataset):
    first = attempt(dataset).plan(NOV_27)
    ledger = ledger_in(s3, dataset.target.bucket)
    token = lock_document(ledger)["token"]
    work = versions(s3, ledger.bucket, ledger.paths.all_work)

    again = attempt(dataset).plan(NOV_27)

    assert again == first
    assert lock_document(ledger)["token"] == token
    assert versions(s3, ledger.bucket, ledger.paths.all_work) == work, "nothing planned anew"
    summary = complete(attempt(dataset), again)
    assert (summary["run_id"], summary["copied"]) == (first["run_id"], FILES)
    landed_once(s3, dataset)


def test_a_plan_of_another_execution_meets_run_in_progress_naming_the_holders_execution(s3, dataset):
    plan = attempt(dataset).plan(NOV_27)

    with pytest.raises(RunInProgress) as raised:
        attempt(dataset, OTHER).plan(NOV_28)
    with pytest.raises(RunInProgress):
        Engine(Store(s3), dataset).run(NOV_28)  # a local run has no execution: it takes nothing back either

    assert f"run {plan['run_id']} (execution {EXECUTION}," in str(raised.value)
    assert complete(attempt(dataset), plan)["copied"] == FILES
    landed_once(s3, dataset)


def test_a_plan_that_fails_leaves_its_lock_to_the_state_machines_release(s3, buckets):
    """On the Lambda path the plan does not release its own lock: a sibling attempt could be at work under it.
    Its retry takes the lock back (and fails the same way, not as RunInProgress); `release` hands it back."""
    _, raw = buckets
    dataset = dataset_config("no-such-source-bucket", raw)

    with pytest.raises(NoSuchBucket):
        attempt(dataset).plan(NOV_27)
    held = lock_document(ledger_in(s3, raw))
    with pytest.raises(NoSuchBucket):
        attempt(dataset).plan(NOV_27)

    assert lock_document(ledger_in(s3, raw))["token"] == held["token"]
    assert attempt(dataset).release() == {"dataset": "movielens", "run_id": held["run_id"], "released": True}
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.lock) == []


def test_a_duplicate_plan_that_read_no_planning_before_its_sibling_stored_one_clears_none_of_its_work(s3, dataset):
    """The duplicate took the lock first and was held before its clean-up of unstored plans; meanwhile its sibling
    (taking the lock back) planned the run and planned its shard. The clean-up keeps the run's own work folder,
    so the sibling's shard plan survives and the plan seals."""
    duplicate, sibling = attempt(dataset), attempt(dataset)
    at_cleanup, go = threading.Event(), threading.Event()
    hold(duplicate, "ListObjectsV2", "/work/", until=go, reached=at_cleanup)

    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(duplicate.plan, NOV_27)
        assert at_cleanup.wait(WAIT)
        first = sibling.plan(NOV_27)
        sibling.plan_shard(first["run_id"], 0)
        go.set()
        second = held.result(WAIT)

    assert second == first
    plan = sibling.seal_plan(first["run_id"])
    assert (plan["stage"], plan["planned"]) == ("copying", FILES)
    assert complete(sibling, plan)["copied"] == FILES
    landed_once(s3, dataset)


# ---- one step delivered twice, both attempts at once ----------------------------------------------------------


def test_a_plan_delivered_twice_at_once_plans_one_run_the_same_way(s3, dataset):
    one, two = attempt(dataset), attempt(dataset)
    meet([one, two], "PutObject", "/planning.json")

    first, second = at_once(lambda: one.plan(NOV_27), lambda: two.plan(NOV_27))

    assert first == second
    assert complete(one, first)["copied"] == FILES
    landed_once(s3, dataset)


def test_a_shard_planned_twice_at_once_plans_it_once(s3, dataset):
    engine = attempt(dataset)
    plan = engine.plan(NOV_27)
    one, two = attempt(dataset), attempt(dataset)
    meet([one, two], "PutObject", "/planned/")

    first, second = at_once(lambda: one.plan_shard(plan["run_id"], 0), lambda: two.plan_shard(plan["run_id"], 0))

    assert first == second
    assert (first["batches"], first["rest"]) == (3, False)
    assert complete(engine, engine.seal_plan(plan["run_id"]))["copied"] == FILES
    landed_once(s3, dataset)


def test_a_seal_delivered_twice_at_once_opens_the_run_once_and_keeps_the_lock(s3, dataset):
    engine = attempt(dataset)
    plan = engine.plan(NOV_27)
    engine.plan_shard(plan["run_id"], 0)
    ledger = ledger_in(s3, dataset.target.bucket)
    token = lock_document(ledger)["token"]
    one, two = attempt(dataset), attempt(dataset)
    meet([one, two], "PutObject", "/open-run.json")

    first, second = at_once(lambda: one.seal_plan(plan["run_id"]), lambda: two.seal_plan(plan["run_id"]))

    assert first == second
    assert (first["stage"], first["batch_count"]) == ("copying", 3)
    assert lock_document(ledger)["token"] == token, "neither attempt released the lock under the other"
    assert versions(s3, ledger.bucket, ledger.paths.open_run) == {ledger.paths.open_run: 1}, (
        "the run was opened once; the second seal kept its sibling's"
    )
    assert complete(engine, first)["copied"] == FILES
    landed_once(s3, dataset)


def test_a_batch_copied_twice_at_once_lands_once_and_reports_once(s3, dataset):
    engine, plan = sealed(dataset)
    ledger = ledger_in(s3, dataset.target.bucket)
    token = lock_document(ledger)["token"]
    one, two = attempt(dataset), attempt(dataset)
    meet([one, two], "PutObject", "/results/")

    first, second = at_once(lambda: one.copy_batch(plan["run_id"], 0), lambda: two.copy_batch(plan["run_id"], 0))

    assert first == second == {"batch": 0, "copied": 2, "skipped": 0, "failed": 0, "bytes": 12}
    assert lock_document(ledger)["token"] == token
    result = ledger.paths.result(run_id=plan["run_id"], batch=0)
    assert versions(s3, ledger.bucket, result) == {result: 1}, "one result: the second attempt kept its sibling's"
    assert [line.status for line in ledger.result(plan["run_id"], 0)] == ["copied", "copied"]
    for item in items_at(engine, plan["batches"])[1:]:
        engine.copy_batch(item["run_id"], item["batch"])
    engine.finalize_shard(plan["run_id"], 0)
    summary = engine.finalize(plan["run_id"])["summary"]
    assert (summary["status"], summary["copied"], summary["failed"]) == ("succeeded", FILES, 0)
    landed_once(s3, dataset)


def test_a_shard_finalized_twice_whose_sibling_writes_first_keeps_one_outcome_and_the_lock(s3, dataset):
    """Both attempts read the shard's keys before either wrote; one writes its state part, manifest part and outcome,
    then the other writes: every one of its writes is refused and it keeps its sibling's.

    Not a free race after a barrier: the managed upload's conditions are kept per process, keyed by object
    (store/writes.py), so two attempts in one process writing one key at the same moment could drop
    each other's condition. Two Lambda invocations are two processes; here the second is held before its uploads."""
    engine, plan = copied(dataset)
    ledger = ledger_in(s3, dataset.target.bucket)
    token = lock_document(ledger)["token"]
    first_writer, second = attempt(dataset), attempt(dataset)
    second_waits, first_done = threading.Event(), threading.Event()
    hold(first_writer, "GetObject", "/notes/", until=second_waits)  # each has read what its writes replace
    hold(second, "GetObject", "/notes/", until=first_done, reached=second_waits)

    one, two = at_once(
        then_set(first_done, lambda: first_writer.finalize_shard(plan["run_id"], 0)),
        lambda: second.finalize_shard(plan["run_id"], 0),
    )

    assert one == two
    assert (one["tally"]["copied"], one["tally"]["failed"]) == (FILES, 0)
    stored = ledger.read(SHARD_OUTCOME, run_id=plan["run_id"], shard=0)
    assert stored is not None and stored.to_json() == one
    assert lock_document(ledger)["token"] == token, "neither attempt released the lock under the other"
    written = [
        ledger.paths.shard_outcome(run_id=plan["run_id"], shard=0),
        ledger.paths.manifest_part(date="2026-11-27", run_id=plan["run_id"], shard=0),
    ]
    written += list_keys(s3, ledger.bucket, ledger.paths.state_parts(run_id=plan["run_id"], shard=0))
    for key in written:
        assert versions(s3, ledger.bucket, key) == {key: 1}, "written once: the second attempt kept its sibling's"
    assert len(list(ledger.manifest_lines("2026-11-27", plan["run_id"]))) == FILES
    summary = engine.finalize(plan["run_id"])["summary"]
    assert (summary["copied"], summary["manifest_parts"]) == (FILES, [one["manifest_part"]])
    assert len(list(ledger.iter_state())) == FILES
    landed_once(s3, dataset)


def test_a_shard_finalized_again_after_it_was_done_answers_its_stored_outcome_and_writes_nothing(s3, dataset):
    engine, plan = copied(dataset)
    ledger = ledger_in(s3, dataset.target.bucket)
    first = engine.finalize_shard(plan["run_id"], 0)
    before = versions(s3, ledger.bucket, ledger.paths.root)

    again = attempt(dataset).finalize_shard(plan["run_id"], 0)

    assert again == first
    after = versions(s3, ledger.bucket, ledger.paths.root)
    assert {k: v for k, v in after.items() if k != ledger.paths.lock} == {
        k: v for k, v in before.items() if k != ledger.paths.lock
    }, "nothing rewritten"


def test_a_finalize_delivered_twice_whose_sibling_commits_first_answers_with_that_commit(s3, dataset):
    """Both attempts read the run open and computed their commit before either wrote; one commits and releases the
    lock, then the other goes on: its write is refused, it finds the lock gone and the run committed, and answers
    with the commit."""
    engine, plan = copied(dataset)
    engine.finalize_shard(plan["run_id"], 0)
    ledger = ledger_in(s3, dataset.target.bucket)
    winner, late = attempt(dataset), attempt(dataset)
    late_waits, winner_done = threading.Event(), threading.Event()
    hold(winner, "PutObject", "/state/index.json", until=late_waits)
    hold(late, "PutObject", "/state/index.json", until=winner_done, reached=late_waits)

    first, second = at_once(
        then_set(winner_done, lambda: winner.finalize(plan["run_id"])), lambda: late.finalize(plan["run_id"])
    )

    assert second == first
    summary = first["summary"]
    assert (summary["run_id"], summary["status"], summary["copied"]) == (plan["run_id"], "succeeded", FILES)
    assert read_json(s3, ledger.bucket, ledger.paths.summary(date="2026-11-27", run_id=plan["run_id"])) == summary
    assert read_json(s3, ledger.bucket, ledger.paths.last_run) == summary
    assert list_keys(s3, ledger.bucket, ledger.paths.summaries) == [
        ledger.paths.summary(date="2026-11-27", run_id=plan["run_id"])
    ]
    for key in (ledger.paths.lock, ledger.paths.open_run, ledger.paths.all_work):
        assert list_keys(s3, ledger.bucket, key) == [], key
    landed_once(s3, dataset)
    assert attempt(dataset).finalize(plan["run_id"]) == first, "and a third attempt, later, answers the same"


def test_a_finalize_delivered_twice_whose_sibling_commits_before_it_reads_the_shard_outcomes_answers_the_commit(
    s3, dataset
):
    """One attempt read the run open and joined its lock; its sibling then commits the run completely (its work
    files cleared, the lock released) before the first reads the shards' outcomes. It finds no outcome and no open
    run: the run is committed, and it answers with the commit."""
    engine, plan = copied(dataset)
    engine.finalize_shard(plan["run_id"], 0)
    ledger = ledger_in(s3, dataset.target.bucket)
    winner, late = attempt(dataset), attempt(dataset)
    late_waits, winner_done = threading.Event(), threading.Event()
    hold(winner, "PutObject", "/state/index.json", until=late_waits)
    hold(late, "GetObject", "/final/", until=winner_done, reached=late_waits)

    first, second = at_once(
        then_set(winner_done, lambda: winner.finalize(plan["run_id"])), lambda: late.finalize(plan["run_id"])
    )

    assert second == first
    assert read_json(s3, ledger.bucket, ledger.paths.last_run) == first["summary"]
    assert list_keys(s3, ledger.bucket, ledger.paths.lock) == []
    landed_once(s3, dataset)


def test_a_finalize_delivered_twice_and_interleaved_write_by_write_leaves_one_consistent_account(s3, dataset):
    """Both attempts compute their summary, each with its own finish time (the second a moment later). The first
    writes the index, the summary, the end event and the marker, and is held before last-run.json; the second then
    commits completely (its summary write refused, the first's kept) and releases the lock; the first goes on,
    finds its lock gone and answers with the commit. The run's summary and last-run.json must be one account."""
    engine, plan = copied(dataset)
    engine.finalize_shard(plan["run_id"], 0)
    ledger = ledger_in(s3, dataset.target.bucket)
    early, late = attempt(dataset), attempt(dataset)
    early_writes, early_at_last_run, late_done, never_held = (threading.Event() for _ in range(4))
    never_held.set()
    hold(early, "PutObject", "/state/index.json", until=never_held, reached=early_writes)  # its summary is made
    hold(early, "PutObject", "/last-run.json", until=late_done, reached=early_at_last_run)
    hold(late, "GetObject", "/final/", until=early_writes)  # before its shard outcomes: its summary comes later
    pause(late, "GetObject", "/final/", seconds=0.01)
    hold(late, "PutObject", "/state/index.json", until=early_at_last_run)

    first, second = at_once(
        lambda: early.finalize(plan["run_id"]), then_set(late_done, lambda: late.finalize(plan["run_id"]))
    )

    summary = read_json(s3, ledger.bucket, ledger.paths.summary(date="2026-11-27", run_id=plan["run_id"]))
    assert first["summary"] == second["summary"]
    assert read_json(s3, ledger.bucket, ledger.paths.last_run) == summary, "last-run.json is the run's summary"
    assert first["summary"] == summary, "the answer is the committed summary"
    landed_once(s3, dataset)


def test_a_finalize_retried_after_a_later_run_committed_answers_its_own_commit(s3, dataset):
    """The newest run is no longer this one: its commit is found among the summaries."""
    engine, plan = copied(dataset)
    first = engine.finalize(plan["run_id"])
    s3.put_object(Bucket=dataset.source.bucket, Key="movielens/new.csv", Body=b"new")
    later = complete(engine, engine.plan(NOV_28))
    assert (later["date"], later["copied"]) == ("2026-11-28", 1)

    again = attempt(dataset).finalize(plan["run_id"])

    assert again == first


# ---- a run another execution resumed ---------------------------------------------------------------------------


def test_a_step_of_a_run_another_execution_resumed_raises_lock_lost_and_copies_nothing(s3, dataset):
    first, plan = sealed(dataset)
    run_id = plan["run_id"]
    ledger = ledger_in(s3, dataset.target.bucket)
    expire_lock(ledger)  # the first execution stalled past its lock; the next night's execution resumes its run
    resumer = attempt(dataset, OTHER)
    resumed = resumer.plan(NOV_28)
    assert (resumed["run_id"], resumed["resumed"], resumed["date"]) == (run_id, True, "2026-11-27")

    for step in (
        lambda: first.copy_batch(run_id, 0),
        lambda: first.finalize_shard(run_id, 0),
        lambda: first.seal_plan(run_id),
        lambda: first.finalize(run_id),
    ):
        with pytest.raises(LockLost, match=f"lost this dataset's lock to execution {OTHER}"):
            step()

    assert landings(s3, dataset.target.bucket) == Counter()
    assert first.release() == {"dataset": "movielens", "run_id": None, "released": False}
    assert lock_document(ledger)["execution"] == OTHER
    summary = complete(resumer, resumed)
    assert (summary["run_id"], summary["resumed"], summary["copied"]) == (run_id, True, FILES)
    landed_once(s3, dataset)


def test_release_of_an_execution_hands_back_its_lock_whatever_run_it_covers(s3, dataset):
    """The execution's plan resumed an interrupted run (its lock now covers that run); a release that names no run,
    or another one, hands back the lock all the same. The run stays open for the next execution."""
    _, interrupted = sealed(dataset)
    ledger = ledger_in(s3, dataset.target.bucket)
    expire_lock(ledger)
    engine = attempt(dataset, OTHER)
    assert engine.plan(NOV_28)["run_id"] == interrupted["run_id"]

    answer = engine.release("20261128T200000000Z-abcdef")

    assert answer == {"dataset": "movielens", "run_id": interrupted["run_id"], "released": True}
    assert list_keys(s3, ledger.bucket, ledger.paths.lock) == []
    assert ledger.open_run().run_id == interrupted["run_id"]
    assert engine.release() == {"dataset": "movielens", "run_id": None, "released": False}


# ---- seal_plan failures leave the lock ----------------------------------------------------------------------


def test_a_seal_that_fails_before_sealing_leaves_the_lock_and_its_retry_seals(s3, dataset):
    engine = attempt(dataset)
    plan = engine.plan(NOV_27)
    engine.plan_shard(plan["run_id"], 0)
    ledger = ledger_in(s3, dataset.target.bucket)
    token = lock_document(ledger)["token"]
    failing = attempt(dataset)
    crash_once(failing.job.store.client, "PutObject", "/batches.json")

    with pytest.raises(Crash):
        failing.seal_plan(plan["run_id"])

    assert lock_document(ledger)["token"] == token
    assert ledger.open_run() is None
    retried = attempt(dataset).seal_plan(plan["run_id"])
    assert (retried["run_id"], retried["stage"]) == (plan["run_id"], "copying")
    assert complete(engine, retried)["copied"] == FILES
    landed_once(s3, dataset)


def test_a_seal_that_fails_after_sealing_leaves_the_lock_and_its_retry_answers_the_sealed_plan(s3, dataset):
    engine = attempt(dataset)
    plan = engine.plan(NOV_27)
    engine.plan_shard(plan["run_id"], 0)
    ledger = ledger_in(s3, dataset.target.bucket)
    token = lock_document(ledger)["token"]
    failing = attempt(dataset)
    crash_once(failing.job.store.client, "PutObject", "-start.json")

    with pytest.raises(Crash):
        failing.seal_plan(plan["run_id"])

    assert lock_document(ledger)["token"] == token
    assert ledger.open_run().run_id == plan["run_id"]
    retried = attempt(dataset).seal_plan(plan["run_id"])
    assert (retried["run_id"], retried["stage"], retried["batch_count"]) == (plan["run_id"], "copying", 3)
    assert complete(engine, retried)["copied"] == FILES
    landed_once(s3, dataset)
    events = engine.lineage_events(run_id=plan["run_id"])
    assert [event["eventType"] for event in events] == ["START", "COMPLETE"]


def test_a_seal_of_a_run_with_nothing_new_retried_after_it_committed_answers_with_the_commit(s3, dataset):
    """A night with nothing new is committed by seal_plan itself, which releases the lock. If its answer was lost
    (or it died after the release), Step Functions runs it again: the retry must answer the commit as a retried
    finalize does, not raise LockLost (which fails the execution as 'another execution took the lock over')."""
    engine = attempt(dataset)
    complete(engine, engine.plan(NOV_27))
    plan = engine.plan(NOV_28)
    engine.plan_shard(plan["run_id"], 0)
    first = engine.seal_plan(plan["run_id"])
    assert (first["stage"], first["summary"]["status"]) == ("finalized", "nothing_new")

    again = attempt(dataset).seal_plan(plan["run_id"])

    assert again == first
