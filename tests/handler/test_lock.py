"""The dataset lock on moto, whose PutObject honours If-None-Match and If-Match like S3."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from typing import Any

import pytest
from botocore.exceptions import ClientError

from handler.errors import ConditionalWritesUnsupported, LockLost, RunInProgress
from handler.ledger import Ledger
from handler.lock import LockFile
from handler.runner import Engine
from handler.store import Store
from tests.conftest import dataset_config, expire_lock, list_keys, lock_document


@pytest.fixture
def bucket(buckets: tuple[str, str]) -> str:
    return buckets[1]


@pytest.fixture
def ledger(s3: Any, buckets: tuple[str, str]) -> Ledger:
    return Ledger(Store(s3), dataset_config(*buckets))


def lock_file(ledger: Ledger, ttl: int) -> LockFile:
    """The dataset's lock with another TTL (the ledger's own uses the config's)."""
    return dataclasses.replace(ledger.lock, ttl=ttl)


def ignore_if_none_match(client: Any) -> None:
    """Make the client behave like a server that ignores If-None-Match: the header is never sent."""

    def drop(params: dict[str, Any], **kwargs: Any) -> None:
        params.pop("IfNoneMatch", None)

    client.meta.events.register("before-parameter-build.s3.PutObject", drop)


def test_acquire_writes_a_lock_naming_run_owner_and_expiry(s3, bucket, ledger):
    before = time.time()

    handle = lock_file(ledger, 60).acquire("run-1", owner="host-a:42")

    document = lock_document(ledger)
    assert document["run_id"] == "run-1"
    assert document["owner"] == "host-a:42"
    assert document["token"] == handle.token
    assert before + 60 <= document["expires_at"] <= time.time() + 60
    assert handle.etag == s3.head_object(Bucket=bucket, Key=ledger.paths.lock)["ETag"]


def test_second_acquire_raises_run_in_progress_naming_the_holder(s3, bucket, ledger):
    lock_file(ledger, 60).acquire("run-1", owner="host-a:42")

    with pytest.raises(RunInProgress) as raised:
        lock_file(ledger, 60).acquire("run-2", owner="host-b:7")

    assert "run-1" in str(raised.value)
    assert "host-a:42" in str(raised.value)
    assert lock_document(ledger)["run_id"] == "run-1"


def test_expired_lock_is_taken_over(s3, bucket, ledger):
    lock_file(ledger, 60).acquire("run-1", owner="host-a:42")
    expire_lock(ledger)

    handle = lock_file(ledger, 60).acquire("run-2", owner="host-b:7")

    document = lock_document(ledger)
    assert document["run_id"] == "run-2"
    assert document["token"] == handle.token
    assert document["expires_at"] > time.time()


def test_lock_expires_on_its_own_after_its_ttl(s3, bucket, ledger):
    lock_file(ledger, 1).acquire("run-1")
    time.sleep(1.2)

    handle = lock_file(ledger, 60).acquire("run-2")

    assert handle.run_id == "run-2"


def test_renew_after_takeover_raises_lock_lost(s3, bucket, ledger):
    first = lock_file(ledger, 60).acquire("run-1")
    expire_lock(ledger)
    lock_file(ledger, 60).acquire("run-2")

    with pytest.raises(LockLost) as raised:
        first.renew()

    assert "run-2" in str(raised.value)
    assert lock_document(ledger)["run_id"] == "run-2"


def test_renew_pushes_expiry_forward_and_keeps_the_token(s3, bucket, ledger):
    handle = lock_file(ledger, 30).acquire("run-1")
    expires = lock_document(ledger)["expires_at"]
    time.sleep(0.05)

    handle.renew()

    document = lock_document(ledger)
    assert document["expires_at"] > expires
    assert document["token"] == handle.token
    assert handle.etag == s3.head_object(Bucket=bucket, Key=ledger.paths.lock)["ETag"]


def test_renew_with_a_stale_etag_rechecks_and_succeeds(s3, bucket, ledger):
    """Two workers of one run renew at once: the loser of the If-Match race re-reads and renews."""
    handle = lock_file(ledger, 30).acquire("run-1")
    other_worker = lock_file(ledger, 30).adopt("run-1")

    handle.renew()
    other_worker.renew()

    assert lock_document(ledger)["token"] == handle.token


def test_heartbeat_keeps_a_lock_alive_beyond_its_ttl(s3, bucket, ledger):
    handle = lock_file(ledger, 1).acquire("run-1")

    with handle.heartbeat() as heartbeat:
        time.sleep(1.6)
        with pytest.raises(RunInProgress):
            lock_file(ledger, 1).acquire("run-2")
        heartbeat.check()

    assert lock_document(ledger)["run_id"] == "run-1"
    assert lock_document(ledger)["expires_at"] > time.time()


def test_heartbeat_reports_a_takeover_at_the_next_check(s3, bucket, ledger):
    handle = lock_file(ledger, 1).acquire("run-1")

    with handle.heartbeat() as heartbeat:
        expire_lock(ledger)
        lock_file(ledger, 60).acquire("run-2")
        deadline = time.time() + 3
        while heartbeat.lost is None and time.time() < deadline:
            time.sleep(0.05)
        with pytest.raises(LockLost):
            heartbeat.check()

    assert lock_document(ledger)["run_id"] == "run-2"


def test_probe_passes_on_a_server_with_conditional_writes_and_cleans_up(s3, bucket, ledger):
    ledger.lock.probe()

    assert list_keys(s3, bucket) == []


def test_probe_refuses_a_server_that_ignores_if_none_match(s3, bucket, ledger):
    ignore_if_none_match(s3)

    with pytest.raises(ConditionalWritesUnsupported):
        ledger.lock.probe()

    assert list_keys(s3, bucket) == []


def test_probe_whose_object_is_deleted_between_its_writes_probes_again_and_passes(s3, bucket, ledger):
    """Another run's plan clearing probe leftovers (or a hand-run delete) can remove the probe object between
    its two writes; the second write then succeeds on an honest server, which must not be refused for it.
    Seen in CI: two runs started together, one refused as 'ignored If-None-Match'."""
    puts: list[str] = []

    def delete_after_first_write(params: dict[str, Any], **kwargs: Any) -> None:
        puts.append(params["Key"])
        if len(puts) == 2:  # the first probe's second write: its object vanishes just before
            s3.delete_object(Bucket=bucket, Key=params["Key"])

    s3.meta.events.register("before-parameter-build.s3.PutObject", delete_after_first_write)

    ledger.lock.probe()

    assert len(puts) == 4 and puts[0] == puts[1] and puts[2] == puts[3] and puts[0] != puts[2]
    assert list_keys(s3, bucket) == []


def test_plan_clean_up_keeps_a_fresh_probe_object_and_clears_an_old_leftover(s3, bucket, ledger, monkeypatch):
    key = f"{ledger.paths.probe}leftover"
    s3.put_object(Bucket=bucket, Key=key, Body=b"{}")

    ledger.clear_unstored_plans(keep="no-such-run")
    assert list_keys(s3, bucket) == [key]

    monkeypatch.setattr("handler.ledger.PROBE_LEFTOVER_AGE_SECONDS", -60)  # as if an hour had passed
    ledger.clear_unstored_plans(keep="no-such-run")
    assert list_keys(s3, bucket) == []


def test_engine_on_a_server_without_conditional_writes_copies_nothing(s3, buckets):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"a")
    ignore_if_none_match(s3)

    with pytest.raises(ConditionalWritesUnsupported):
        Engine(Store(s3), dataset_config(source, raw)).run()

    assert list_keys(s3, raw) == []


def test_engine_allowed_to_run_unprotected_skips_the_probe(s3, buckets):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"a")
    ignore_if_none_match(s3)

    (summary,) = Engine(Store(s3), dataset_config(source, raw), allow_unprotected=True).run()

    assert summary["status"] == "succeeded"
    assert summary["copied"] == 1


def test_release_deletes_our_own_lock(s3, bucket, ledger):
    handle = lock_file(ledger, 60).acquire("run-1")

    handle.release()

    assert list_keys(s3, bucket) == []
    assert lock_file(ledger, 60).acquire("run-2").run_id == "run-2"


def test_release_leaves_a_lock_another_run_took_over(s3, bucket, ledger):
    first = lock_file(ledger, 60).acquire("run-1")
    expire_lock(ledger)
    second = lock_file(ledger, 60).acquire("run-2")

    first.release()

    assert lock_document(ledger)["token"] == second.token


def test_release_of_an_already_released_lock_is_harmless(s3, bucket, ledger):
    handle = lock_file(ledger, 60).acquire("run-1")
    handle.release()

    handle.release()

    assert list_keys(s3, bucket) == []


def test_adopt_by_another_run_raises_lock_lost(s3, bucket, ledger):
    lock_file(ledger, 60).acquire("run-1")

    with pytest.raises(LockLost):
        lock_file(ledger, 60).adopt("run-2")


def test_adopt_without_any_lock_raises_lock_lost(s3, bucket, ledger):
    with pytest.raises(LockLost):
        lock_file(ledger, 60).adopt("run-1")


def test_a_fence_on_a_fresh_lock_reads_it_and_leaves_its_renewal_to_the_heartbeat(s3, bucket, ledger):
    handle = lock_file(ledger, 60).acquire("run-1")
    etag = s3.head_object(Bucket=bucket, Key=ledger.paths.lock)["ETag"]

    handle.fence()

    assert s3.head_object(Bucket=bucket, Key=ledger.paths.lock)["ETag"] == etag, "not rewritten"


def test_a_fence_on_a_lock_a_third_through_its_ttl_renews_it(s3, bucket, ledger):
    handle = lock_file(ledger, 60).acquire("run-1")
    expires = lock_document(ledger)["expires_at"]
    handle.expires_at -= 21  # as if 21 of its 60 seconds had passed since it was written

    handle.fence()

    assert lock_document(ledger)["expires_at"] > expires
    assert handle.fresh(time.time())


def test_a_fence_on_a_fresh_lock_still_sees_a_takeover(s3, bucket, ledger):
    first = lock_file(ledger, 60).acquire("run-1")
    first.release()
    lock_file(ledger, 60).acquire("run-2")

    assert first.fresh(time.time()), "by its own clock the lock has most of its TTL to run"
    with pytest.raises(LockLost, match="run-2"):
        first.fence()


def test_adopting_a_fresh_lock_does_not_rewrite_it(s3, bucket, ledger):
    lock_file(ledger, 60).acquire("run-1")
    etag = s3.head_object(Bucket=bucket, Key=ledger.paths.lock)["ETag"]

    lock_file(ledger, 60).adopt("run-1")

    assert s3.head_object(Bucket=bucket, Key=ledger.paths.lock)["ETag"] == etag


def test_adopted_lock_shares_the_token_and_renews(s3, bucket, ledger):
    handle = lock_file(ledger, 60).acquire("run-1")

    joined = lock_file(ledger, 60).adopt("run-1")

    assert joined.token == handle.token
    joined.release()
    assert list_keys(s3, bucket) == []


def test_rebind_moves_the_lock_to_the_resumed_run(s3, bucket, ledger):
    handle = lock_file(ledger, 60).acquire("run-new")

    handle.rebind("run-old")

    assert handle.run_id == "run-old"
    assert lock_document(ledger)["run_id"] == "run-old"
    assert lock_file(ledger, 60).adopt("run-old").token == handle.token


def test_a_plain_put_over_a_held_lock_is_refused_by_s3(s3, bucket, ledger):
    """The guarantee the lock rests on: a second If-None-Match write loses with PreconditionFailed."""
    lock_file(ledger, 60).acquire("run-1")

    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=bucket, Key=ledger.paths.lock, Body=b"{}", IfNoneMatch="*")

    assert raised.value.response["Error"]["Code"] == "PreconditionFailed"


def test_a_woken_process_learns_it_lost_its_lock_at_its_very_next_check(s3, bucket, ledger):
    """A process paused past its TTL wakes with a heartbeat that has not beaten since: the first check renews
    synchronously and raises, before the next object is copied (the beat would come up to a third of the
    TTL later)."""
    handle = lock_file(ledger, 600).acquire("run-1")
    with handle.heartbeat() as heartbeat:
        expire_lock(ledger)
        lock_file(ledger, 600).acquire("run-2")
        handle.confirmed_at -= 400  # as if this process had been stopped for 400 s
        with pytest.raises(LockLost):
            heartbeat.check()

    assert lock_document(ledger)["run_id"] == "run-2"


def test_a_lock_taking_put_whose_answer_was_lost_is_recognised_as_ours(s3, bucket, ledger):
    """Defect 2 (issue 7): the PUT was applied, botocore retried and got 412 from our own lock."""
    applied: list[str] = []

    def apply_then_refuse(params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("Key") == ledger.paths.lock and not applied:
            applied.append("first")
            s3.put_object(**{k: v for k, v in params.items()})  # reaches S3 ...
            raise ClientError(  # ... and the retry meets it
                {
                    "Error": {"Code": "PreconditionFailed", "Message": "At least one of the pre-conditions"},
                    "ResponseMetadata": {"HTTPStatusCode": 412},
                },
                "PutObject",
            )

    s3.meta.events.register("before-parameter-build.s3.PutObject", apply_then_refuse)

    handle = lock_file(ledger, 600).acquire("run-1")

    assert applied
    assert lock_document(ledger)["token"] == handle.token
    handle.release()
    assert list_keys(s3, bucket, ledger.paths.lock) == []


def test_a_heartbeat_ends_only_after_its_renewal_in_flight_so_a_release_is_final(s3, bucket, ledger, monkeypatch):
    """A renewal slower than any fixed wait (SlowDown retries) must not land after the step released the lock:
    on a server that ignores If-Match it would put the lock back."""
    handle = lock_file(ledger, 1).acquire("run-1")
    renewal = {"started": False, "finished": False}
    renew = type(handle).renew

    def slow_renew(self: Any) -> None:
        renewal["started"] = True
        time.sleep(5.5)  # longer than the join timeout the heartbeat used to have
        renew(self)
        renewal["finished"] = True

    monkeypatch.setattr(type(handle), "renew", slow_renew)
    with handle.heartbeat():
        while not renewal["started"]:
            time.sleep(0.05)

    assert renewal["finished"], "the heartbeat returned while its renewal was still on its way"
    monkeypatch.undo()
    handle.release()
    assert list_keys(s3, bucket, ledger.paths.lock) == []


def answer_lock_reads_with_404(client: Any, ledger: Ledger, times: int) -> list[str]:
    """The next `times` GETs of lock.json ask for a key that is not there, as rclone serve s3 answers a read
    while two workers rewrite the lock in place. Returns the keys every GET asked for."""
    asked: list[str] = []

    def misdirect(params: dict[str, Any], **kwargs: Any) -> None:
        asked.append(params["Key"])
        if params["Key"] == ledger.paths.lock and asked.count(ledger.paths.lock) <= times:
            params["Key"] = ledger.paths.lock + ".absent-for-a-moment"

    client.meta.events.register("before-parameter-build.s3.GetObject", misdirect)
    return asked


def test_a_lock_that_reads_absent_for_a_moment_is_still_renewed_and_adopted(s3, bucket, ledger, monkeypatch):
    """Seen at 1M keys on rclone: 'run ... lost its lock (now None)' stopped a healthy run."""
    monkeypatch.setattr("handler.lock.time.sleep", lambda seconds: None)
    handle = lock_file(ledger, 60).acquire("run-1")
    answer_lock_reads_with_404(s3, ledger, times=2)

    handle.renew()
    lock_file(ledger, 60).adopt("run-1")

    assert lock_document(ledger)["token"] == handle.token


def test_a_lock_really_gone_is_lost_after_its_absence_is_read_again(s3, bucket, ledger, monkeypatch):
    monkeypatch.setattr("handler.lock.time.sleep", lambda seconds: None)
    handle = lock_file(ledger, 60).acquire("run-1")
    s3.delete_object(Bucket=bucket, Key=ledger.paths.lock)
    asked = answer_lock_reads_with_404(s3, ledger, times=0)

    with pytest.raises(LockLost, match="run-1 lost its lock"):
        handle.renew()

    assert asked.count(ledger.paths.lock) == 4, "one read and three confirmations"


# ---- executions: at-least-once delivery of the state machine's steps ------------------------------------------

EXECUTION_A = "arn:aws:states:us-east-1:123456789012:execution:ingest:night-a"
EXECUTION_B = "arn:aws:states:us-east-1:123456789012:execution:ingest:night-b"


def test_acquire_for_an_execution_records_it_in_the_lock(s3, bucket, ledger):
    handle = lock_file(ledger, 60).acquire("run-1", execution=EXECUTION_A)

    assert lock_document(ledger)["execution"] == EXECUTION_A
    assert (handle.execution, handle.taken_back) == (EXECUTION_A, False)
    assert handle.acquired_at == lock_document(ledger)["acquired_at"]


def test_an_execution_takes_back_the_lock_it_holds_with_its_run_and_token_and_a_later_expiry(s3, bucket, ledger):
    first = lock_file(ledger, 60).acquire("run-1", execution=EXECUTION_A)
    expires = lock_document(ledger)["expires_at"]
    time.sleep(0.05)

    again = lock_file(ledger, 60).acquire("run-2", execution=EXECUTION_A)

    assert (again.run_id, again.token, again.taken_back) == ("run-1", first.token, True)
    assert again.acquired_at == first.acquired_at, "the run's start stays the first attempt's"
    document = lock_document(ledger)
    assert (document["run_id"], document["token"], document["execution"]) == ("run-1", first.token, EXECUTION_A)
    assert document["expires_at"] > expires
    assert again.etag == s3.head_object(Bucket=bucket, Key=ledger.paths.lock)["ETag"]


def test_an_execution_takes_back_its_lock_of_a_run_it_resumed(s3, bucket, ledger):
    first = lock_file(ledger, 60).acquire("run-new", execution=EXECUTION_A)
    first.rebind("run-old")

    again = lock_file(ledger, 60).acquire("run-newer", execution=EXECUTION_A)

    assert (again.run_id, again.token) == ("run-old", first.token)


def test_another_executions_live_lock_raises_run_in_progress_naming_that_execution(s3, bucket, ledger):
    lock_file(ledger, 60).acquire("run-1", owner="lambda-a", execution=EXECUTION_A)

    with pytest.raises(RunInProgress) as raised:
        lock_file(ledger, 60).acquire("run-2", execution=EXECUTION_B)

    assert f"run run-1 (execution {EXECUTION_A}, held by lambda-a)" in str(raised.value)
    assert (lock_document(ledger)["run_id"], lock_document(ledger)["execution"]) == ("run-1", EXECUTION_A)


def test_an_acquire_without_an_execution_never_takes_a_lock_back(s3, bucket, ledger):
    """The CLI has no execution: two local runs are two runs, whatever the lock says, and an execution never takes
    back a lock a local run holds."""
    lock_file(ledger, 60).acquire("run-cli", owner="laptop:1")

    with pytest.raises(RunInProgress, match="run run-cli \\(held by laptop:1\\)"):
        lock_file(ledger, 60).acquire("run-cli-2")
    with pytest.raises(RunInProgress):
        lock_file(ledger, 60).acquire("run-2", execution=EXECUTION_A)

    assert lock_document(ledger)["run_id"] == "run-cli"
    assert "execution" not in lock_document(ledger)


def test_a_local_run_meets_an_executions_lock_as_run_in_progress(s3, bucket, ledger):
    lock_file(ledger, 60).acquire("run-1", execution=EXECUTION_A)

    with pytest.raises(RunInProgress, match=EXECUTION_A):
        lock_file(ledger, 60).acquire("run-2")


def test_an_expired_lock_of_another_execution_is_taken_over_not_taken_back(s3, bucket, ledger):
    first = lock_file(ledger, 60).acquire("run-1", execution=EXECUTION_A)
    expire_lock(ledger)

    handle = lock_file(ledger, 60).acquire("run-2", execution=EXECUTION_B)

    assert (handle.run_id, handle.taken_back) == ("run-2", False)
    assert handle.token != first.token
    assert (lock_document(ledger)["run_id"], lock_document(ledger)["execution"]) == ("run-2", EXECUTION_B)


def test_adopt_by_the_runs_own_execution_joins_its_lock(s3, bucket, ledger):
    handle = lock_file(ledger, 60).acquire("run-1", execution=EXECUTION_A)

    joined = lock_file(ledger, 60).adopt("run-1", EXECUTION_A)

    assert (joined.token, joined.execution) == (handle.token, EXECUTION_A)


def test_adopt_by_an_execution_whose_run_another_execution_resumed_raises_lock_lost(s3, bucket, ledger):
    lock_file(ledger, 60).acquire("run-1", execution=EXECUTION_A)
    expire_lock(ledger)
    resumer = lock_file(ledger, 60).acquire("run-2", execution=EXECUTION_B)
    resumer.rebind("run-1")  # B finds run-1 open and completes it

    with pytest.raises(LockLost) as raised:
        lock_file(ledger, 60).adopt("run-1", EXECUTION_A)

    assert f"run run-1 of execution {EXECUTION_A} lost this dataset's lock to execution {EXECUTION_B}" in str(
        raised.value
    )
    assert lock_document(ledger)["token"] == resumer.token
    assert lock_file(ledger, 60).adopt("run-1", EXECUTION_B).token == resumer.token
    assert lock_file(ledger, 60).adopt("run-1").token == resumer.token, "without an execution: the run's lock"


def test_release_execution_deletes_the_lock_that_execution_holds_whatever_its_run(s3, bucket, ledger):
    handle = lock_file(ledger, 60).acquire("run-new", execution=EXECUTION_A)
    handle.rebind("run-old")

    held = ledger.lock.release_execution(EXECUTION_A)

    assert held == "run-old"
    assert list_keys(s3, bucket) == []
    assert ledger.lock.release_execution(EXECUTION_A) is None, "released already"


def test_release_execution_leaves_another_executions_lock_and_a_local_runs_lock(s3, bucket, ledger):
    other = lock_file(ledger, 60).acquire("run-b", execution=EXECUTION_B)

    assert ledger.lock.release_execution(EXECUTION_A) is None
    assert lock_document(ledger)["token"] == other.token

    other.release()
    local = lock_file(ledger, 60).acquire("run-cli")

    assert ledger.lock.release_execution(EXECUTION_A) is None
    assert lock_document(ledger)["token"] == local.token


# ---- S3's clock, not the machine's ----------------------------------------------------------------------------

REAL_TIME = time.time
"""This machine's clock before a test moves it: S3's clock in the tests below (every answer is dated by it)."""


@pytest.fixture
def dated(s3: Any) -> None:
    """Every answer carries a Date by S3's clock (moto in process leaves it out of most), so a test can move this
    machine's clock (time.time) away from S3's and leave S3's where it is."""

    def stamp(parsed: dict[str, Any], **kwargs: Any) -> None:
        headers = parsed.setdefault("ResponseMetadata", {}).setdefault("HTTPHeaders", {})
        headers["date"] = formatdate(REAL_TIME(), usegmt=True)

    s3.meta.events.register("after-call.s3", stamp)


@contextmanager
def machine_clock_off_by(seconds: float) -> Iterator[None]:
    """This machine's clock (time.time) `seconds` off S3's while the block runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time", lambda: REAL_TIME() + seconds)
        yield


def test_a_runner_ten_minutes_ahead_does_not_take_over_a_live_lock(s3, buckets, dated):
    """The holder took the lock (TTL 300 s) a moment ago on a machine in time with S3; a second machine whose
    clock is 10 minutes fast sees it live by S3's time and is refused; the holder keeps it."""
    holder = Ledger(Store(s3), dataset_config(*buckets, lock_ttl_seconds=300)).lock.acquire("run-1", owner="holder")

    with machine_clock_off_by(600), pytest.raises(RunInProgress, match=r"expires in (29\d|30[01])s"):
        Ledger(Store(s3), dataset_config(*buckets, lock_ttl_seconds=300)).lock.acquire("run-2", owner="fast")

    holder.renew()
    assert lock_document(Ledger(Store(s3), dataset_config(*buckets)))["token"] == holder.token


def test_a_holder_ten_minutes_behind_writes_an_expiry_others_read_right(s3, buckets, dated):
    """A holder whose clock is 10 minutes slow writes its lock's times in S3's time: a machine in time with S3
    finds the lock live, with about its TTL to run."""
    with machine_clock_off_by(-600):
        holder = Ledger(Store(s3), dataset_config(*buckets, lock_ttl_seconds=300)).lock.acquire("run-1", owner="slow")

    document = lock_document(Ledger(Store(s3), dataset_config(*buckets)))
    assert abs(document["expires_at"] - (time.time() + 300)) < 2
    with pytest.raises(RunInProgress):
        Ledger(Store(s3), dataset_config(*buckets, lock_ttl_seconds=300)).lock.acquire("run-2")
    assert lock_document(Ledger(Store(s3), dataset_config(*buckets)))["token"] == holder.token


def test_a_dead_holders_lock_is_taken_over_after_its_ttl_by_s3s_clock_by_a_machine_behind(s3, buckets, dated):
    """A holder that stopped renewing (TTL 3 s); a machine 10 minutes slow is refused while the lock is live and
    takes it over once its TTL has passed on S3's clock (by its own clock, the lock had ten minutes to run)."""
    Ledger(Store(s3), dataset_config(*buckets, lock_ttl_seconds=3)).lock.acquire("run-1", owner="dead")
    taken = REAL_TIME()
    runner = Ledger(Store(s3), dataset_config(*buckets, lock_ttl_seconds=3)).lock

    with machine_clock_off_by(-600), pytest.raises(RunInProgress):
        runner.acquire("run-2", owner="slow")
    assert REAL_TIME() - taken < 3, "too slow a machine to see the lock while it was live"
    time.sleep(max(0.0, taken + 3 + 1.2 - REAL_TIME()))  # the TTL, and the Date's second

    with machine_clock_off_by(-600):
        handle = runner.acquire("run-2", owner="slow")
    assert lock_document(Ledger(Store(s3), dataset_config(*buckets)))["token"] == handle.token
