"""Issue 7's defects 1 to 7, each reproduced through the fault proxy the way a new user met it, against the
real CLI and moto's server; each test failed on the main of 2026-12-01.

A pause is placed exactly: a rule's action holds one chosen request of the run in the proxy, the test then
SIGSTOPs the whole process (its lock heartbeat too) and waits out the lock's TTL, runs another night, lets the
held request through and SIGCONTs the process. So the process wakes right at that request: for a ledger
write, after the lock renewal that precedes it, the worst moment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import list_keys
from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    CLI_TIMEOUT,
    Stage,
    moto_server_fixture,
    one_json,
    stage_fixture,
)
from tests.faults.proxy import ERROR_500, LOST_AFTER, RESET_BODY, FaultProxy, Request, Rule
from tests.faults.verifier import verify

DATE, NEXT, LATER = "2026-03-01", "2026-03-02", "2026-03-03"
TTL = 3
"""Seconds: short, so a pause past it is quick to wait out."""


@pytest.fixture
def proxy(stage: Stage):
    with FaultProxy(stage.url, seed=1) as running:
        yield running


def through(stage: Stage, proxy: FaultProxy) -> Stage:
    """The same buckets, with the CLI's requests going through the proxy (reads back stay direct)."""
    return replace(stage, url=proxy.url)


def config(stage: Stage, **overrides: Any) -> Path:
    return stage.config(**{"concurrency": 2, "batch_max_objects": 5, "lock_ttl_seconds": TTL, **overrides})


def seed(stage: Stage, count: int, prefix: str = "movielens/part-") -> dict[str, str]:
    return {
        key: stage.put(key, f"{key}\n{i}\n".encode())
        for i, key in enumerate(f"{prefix}{n:03d}.csv" for n in range(count))
    }


def assert_exactly_once(stage: Stage, expected: dict[str, str]) -> None:
    assert verify(stage.s3, stage.source, stage.raw, "movielens", expected=expected, settled=True) == []


class Hold:
    """A rule action that freezes the request it matches until `release()`."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self._go = threading.Event()

    def __call__(self, request: Request) -> None:
        self.reached.set()
        self._go.wait(CLI_TIMEOUT)

    def release(self) -> None:
        self._go.set()


def pause_at(hold: Hold, proc: subprocess.Popen[str]) -> None:
    """SIGSTOP the run once it reached the held request, and wait until its lock has expired."""
    assert hold.reached.wait(60), "the run never reached the held request"
    os.kill(proc.pid, signal.SIGSTOP)
    time.sleep(TTL + 1)  # a heartbeat just before the stop moved the expiry at most one TTL on


def wake(hold: Hold, proc: subprocess.Popen[str]) -> tuple[str, str]:
    hold.release()
    os.kill(proc.pid, signal.SIGCONT)
    return proc.communicate(timeout=CLI_TIMEOUT)


def test_1_a_copy_whose_answers_were_all_lost_lands_once_and_is_claimed(stage: Stage, proxy: FaultProxy) -> None:
    """Every attempt's answer is lost (the first was applied): once botocore gives up, the copier reads the
    target back instead of recording a failure that the next night would land again under another date."""
    objects = seed(stage, 12)
    cfg = config(stage)
    for n in (0, 5, 9):
        proxy.add_rule(Rule(LOST_AFTER, operation="CopyObject", key=f"part-{n:03d}.csv", times=None))

    first = through(stage, proxy).run(cfg, "--json", "--date", DATE, env={"AWS_MAX_ATTEMPTS": "3"})
    again = stage.run(cfg, "--json", "--date", NEXT)

    assert proxy.injected, "the faults must have been injected"
    assert first.returncode == 0, first.stderr
    assert (one_json(first)["copied"], one_json(first)["failed"]) == (12, 0)
    assert (again.returncode, one_json(again)["status"], one_json(again)["copied"]) == (0, "nothing_new", 0)
    assert_exactly_once(stage, objects)


def test_2_a_lock_whose_answer_was_lost_is_still_ours(stage: Stage, proxy: FaultProxy) -> None:
    objects = seed(stage, 3)
    cfg = config(stage, lock_ttl_seconds=600)
    proxy.add_rule(Rule(LOST_AFTER, operation="PutObject", key="lock.json"))

    proc = through(stage, proxy).run(cfg, "--json", "--date", DATE)

    assert proxy.injected
    assert proc.returncode == 0, proc.stderr
    assert "in progress" not in proc.stderr
    assert list_keys(stage.s3, stage.raw, stage.ledger.lock) == []
    assert_exactly_once(stage, objects)


def test_3_a_run_that_fails_after_planning_releases_its_lock(stage: Stage, proxy: FaultProxy) -> None:
    objects = seed(stage, 8)
    cfg = config(stage, lock_ttl_seconds=600)  # the next run must not have to wait this out
    proxy.add_rule(Rule(ERROR_500, operation="PutObject", key="/manifest/", times=None))

    failed = through(stage, proxy).run(cfg, "--json", "--date", DATE, env={"AWS_MAX_ATTEMPTS": "2"})
    proxy.clear()
    retried = through(stage, proxy).run(cfg, "--json", "--date", NEXT)

    assert failed.returncode == 1
    assert one_json(failed)["status"] == "failed"
    assert retried.returncode == 0, retried.stderr
    [resumed] = one_json(retried)["resumed_runs"]
    assert (resumed["date"], resumed["copied"]) == (DATE, 8)
    assert_exactly_once(stage, objects)


def test_4_a_lost_answer_to_the_probe_neither_fails_the_run_nor_leaves_the_probe(
    stage: Stage, proxy: FaultProxy
) -> None:
    objects = seed(stage, 3)
    proxy.add_rule(Rule(LOST_AFTER, operation="PutObject", key="/probe/"))

    proc = through(stage, proxy).run(config(stage), "--json", "--date", DATE)

    assert proxy.injected
    assert proc.returncode == 0, proc.stderr
    assert list_keys(stage.s3, stage.raw, stage.ledger.probe) == []
    assert_exactly_once(stage, objects)


def test_5_a_body_cut_mid_read_is_read_again(stage: Stage, proxy: FaultProxy) -> None:
    objects = seed(stage, 10)
    cfg = config(stage)
    proxy.add_rule(Rule(RESET_BODY, operation="GetObject", key="/results/", times=2))
    first = through(stage, proxy).run(cfg, "--json", "--date", DATE)
    late = {"movielens/late.csv": stage.put("movielens/late.csv", b"late")}
    proxy.add_rule(Rule(RESET_BODY, operation="GetObject", key="state/current"))
    second = through(stage, proxy).run(cfg, "--json", "--date", NEXT)

    assert proxy.injected
    assert first.returncode == 0, first.stderr
    assert one_json(first)["copied"] == 10
    assert second.returncode == 0, second.stderr
    assert (one_json(second)["copied"], one_json(second)["unchanged"]) == (1, 10)
    assert_exactly_once(stage, {**objects, **late})


def test_6_a_planner_paused_past_its_lock_never_leaves_a_run_that_cannot_finish(
    stage: Stage, proxy: FaultProxy
) -> None:
    """Frozen right at its open-run PUT, after the renewal before it: the worst moment. (A planner paused earlier,
    while it lists or reads the state, is the campaign's `test_sigstop and plan` row.)"""
    objects = seed(stage, 6)
    cfg = config(stage)
    assert stage.run(cfg, "--json", "--date", DATE).returncode == 0
    more = seed(stage, 6, prefix="movielens/more-")
    hold = Hold()
    proxy.add_rule(Rule(None, operation="PutObject", key="open-run.json", action=hold))
    paused = through(stage, proxy).spawn(cfg, "--json", "--date", NEXT)
    pause_at(hold, paused)
    other = stage.run(cfg, "--json", "--date", NEXT)  # takes over the expired lock, lands `more`
    _, err = wake(hold, paused)
    later = stage.run(cfg, "--json", "--date", LATER)

    assert other.returncode == 0, other.stderr
    assert paused.returncode == 1, err
    assert "LockLost" in err or "lost its lock" in err or "written by another run" in err
    assert later.returncode == 0, later.stderr
    assert "has no batch" not in later.stderr
    assert (stage.run(cfg, "--json", "--date", LATER).returncode, "again") == (0, "again")
    assert_exactly_once(stage, {**objects, **more})


def test_7_a_finalizer_paused_past_its_lock_does_not_overwrite_the_newer_record(
    stage: Stage, proxy: FaultProxy
) -> None:
    objects = seed(stage, 5)
    cfg = config(stage)
    hold = Hold()
    proxy.add_rule(Rule(None, operation="PutObject", key="/manifest/", action=hold))
    paused = through(stage, proxy).spawn(cfg, "--json", "--date", DATE)
    pause_at(hold, paused)
    newer = seed(stage, 40, prefix="movielens/newer-")
    other = stage.run(cfg, "--json", "--date", NEXT)  # completes the paused run, then lands the 40
    state_before = stage.body(stage.raw, stage.ledger.state_index)
    last_before = stage.body(stage.raw, stage.ledger.last_run)
    _, err = wake(hold, paused)
    state_after = stage.body(stage.raw, stage.ledger.state_index)
    last_after = stage.body(stage.raw, stage.ledger.last_run)
    night = stage.run(cfg, "--json", "--date", LATER)

    assert other.returncode == 0, other.stderr
    assert one_json(other)["copied"] == 40
    assert paused.returncode == 1, err
    assert (state_after, last_after) == (state_before, last_before)
    assert (night.returncode, one_json(night)["copied"]) == (0, 0), night.stdout
    assert_exactly_once(stage, {**objects, **newer})
