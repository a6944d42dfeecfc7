"""The CLI's local pool: steps of many units run in spawned worker processes, each with its own S3 client and the
run's lock adopted from the ledger; a step of one unit, or `count` 1, stays in this process."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import threading
import time
from datetime import date as Date

import pytest

from handler.contract import COPY_BATCH
from handler.errors import WorkerKilled
from handler.pool import ClientSettings, LocalPool, ProcessPool
from handler.runner import Engine, one_shot
from handler.store import Store
from tests.conftest import dataset_config, landed_keys
from tests.e2e.cli_fixtures import moto_server_fixture, stage_fixture  # noqa: F401 (fixtures)
from tests.faults.proxy import ERROR_500, FaultProxy, Rule
from tests.faults.verifier import verify

NIGHT = Date(2026, 11, 27)


@pytest.fixture(name="engine")
def engine_fixture(stage, monkeypatch):
    # The workers make their own clients from the environment, as the CLI's do.
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    dataset = dataset_config(stage.source, stage.raw, shard_max_keys=1_000, batch_max_objects=100, concurrency=4)
    return Engine(Store.sized(concurrency=4, endpoint_url=stage.url), dataset)


def pool(engine: Engine, url: str, count: int) -> LocalPool:
    return LocalPool(engine.job, ClientSettings(concurrency=4, endpoint_url=url), count, allow_unprotected=False)


def test_a_run_of_many_batches_is_copied_by_worker_processes_and_lands_once(stage, engine):
    objects = stage.seed(450)
    with pool(engine, stage.url, 2) as workers:
        [summary] = one_shot(engine.job, NIGHT, workers=workers)
        children = multiprocessing.active_children()
    assert len(children) == 2, "five batches: the pool was started"
    assert (summary.copied, summary.failed) == (450, 0)
    assert len(landed_keys(stage.s3, stage.raw)) == len(objects)
    assert verify(stage.s3, stage.source, stage.raw, "movielens", settled=True) == []
    assert multiprocessing.active_children() == [], "closing the pool ends its processes"


def test_a_run_of_one_batch_or_one_worker_never_starts_a_process(stage, engine):
    stage.seed(80)
    with pool(engine, stage.url, 2) as workers:
        [summary] = one_shot(engine.job, NIGHT, workers=workers)
        assert multiprocessing.active_children() == [], "one shard, one batch: nothing to spread"
    assert summary.copied == 80
    stage.seed(300, prefix="movielens/more-")
    with pool(engine, stage.url, 1) as workers:
        [later] = one_shot(engine.job, Date(2026, 11, 28), workers=workers)
        assert multiprocessing.active_children() == []
    assert (later.copied, later.unchanged) == (300, 80)
    assert verify(stage.s3, stage.source, stage.raw, "movielens", settled=True) == []


def test_a_batch_that_fails_in_a_worker_fails_the_run_and_the_next_run_completes_it(stage, engine, monkeypatch):
    objects = stage.seed(450)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with FaultProxy(stage.url, seed=1) as proxy:
        # Batch 2 cannot store its result: that step fails in whichever worker runs it.
        proxy.add_rule(Rule(ERROR_500, operation="PutObject", key="/results/000002", times=None))
        through = Engine(Store.sized(concurrency=4, endpoint_url=proxy.url), engine.dataset)
        with pool(through, proxy.url, 2) as workers, pytest.raises(Exception, match="InternalError|500"):
            one_shot(through.job, NIGHT, workers=workers)
    [open_run] = engine.history()  # the run stopped before it was finalized: only it, in progress, no summary
    assert (open_run.status, open_run.stage, open_run.live) == ("in_progress", "copying", False)

    with pool(engine, stage.url, 2) as workers:
        resumed, tonight = one_shot(engine.job, Date(2026, 11, 28), workers=workers)

    assert (resumed.date, resumed.copied, resumed.failed) == ("2026-11-27", 450, 0)
    assert (tonight.copied, tonight.unchanged) == (0, 450)
    assert len(landed_keys(stage.s3, stage.raw)) == len(objects)
    assert verify(stage.s3, stage.source, stage.raw, "movielens", settled=True) == []


def test_a_worker_killed_by_a_signal_fails_the_run_naming_it_and_the_next_run_completes_it(stage, engine):
    """SIGKILL, as the out-of-memory killer sends it: the executor only says "terminated abruptly"; the pool
    reads the worker's exit code and names the signal (it used to reach the user as BrokenProcessPool, "a bug")."""
    objects = stage.seed(900)
    small = Engine(engine.job.store, dataclasses.replace(engine.dataset, batch_max_objects=20))

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = [p for p in multiprocessing.active_children() if "SpawnProcess" in p.name]
            if len(workers) == 2 and stage.s3.list_objects_v2(Bucket=stage.raw, Prefix="movielens/").get("KeyCount"):
                os.kill(workers[0].pid, signal.SIGKILL)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_worker)
    with pool(small, stage.url, 2) as workers:
        killer.start()
        with pytest.raises(WorkerKilled) as info:
            one_shot(small.job, NIGHT, workers=workers)
    killer.join()
    assert (info.value.signum, info.value.exitcode) == (signal.SIGKILL, None)
    assert "killed by SIGKILL (signal 9) during copy_batch" in str(info.value)
    [open_run] = engine.history()
    assert (open_run.status, open_run.stage, open_run.live) == ("in_progress", "copying", False)

    with pool(small, stage.url, 2) as workers:
        resumed, tonight = one_shot(small.job, Date(2026, 11, 28), workers=workers)

    assert (resumed.date, resumed.copied + resumed.skipped, resumed.failed) == ("2026-11-27", 900, 0)
    assert (tonight.copied, tonight.unchanged) == (0, 900)
    assert len(landed_keys(stage.s3, stage.raw)) == len(objects)
    assert verify(stage.s3, stage.source, stage.raw, "movielens", settled=True) == []


class _Ended:
    def __init__(self, exitcode: int | None):
        self.exitcode = exitcode


class _BrokenExecutor:
    _processes: dict[int, _Ended] = {}

    def shutdown(self, **_: object) -> None:
        pass


@pytest.mark.parametrize(
    ("exitcodes", "signum", "exitcode"),
    [
        ((-9, -15), signal.SIGKILL, None),  # the killed one, and the one the executor then terminated
        ((-15, -11), signal.SIGSEGV, None),
        ((-15, 70), None, 70),  # a worker that exited (its parent-watch's 70) is not hidden behind SIGTERM
        ((-15, -15), signal.SIGTERM, None),
        ((0, None), None, None),
    ],
)
def test_the_worker_that_broke_the_pool_is_told_from_the_ones_the_executor_terminated(exitcodes, signum, exitcode):
    broken = ProcessPool.__new__(ProcessPool)
    broken._pool = _BrokenExecutor()  # type: ignore[assignment]

    killed = broken._killed(COPY_BATCH, {n: _Ended(code) for n, code in enumerate(exitcodes)})

    assert (killed.signum, killed.exitcode) == (signum, exitcode)
