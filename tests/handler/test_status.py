"""What status says, pure: the lock as a person reads it, and where a run in progress is."""

from __future__ import annotations

import pytest

from handler.records import OpenRun, PlanCounts, Planning, Stage, Tally
from handler.status import DatasetStatus, LockView, RunningRun, stage_of

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
DOCUMENT = {"run_id": "R1", "token": "t", "owner": "host:42", "acquired_at": NOW - 60, "expires_at": NOW + 840}


def test_a_held_lock_names_its_run_owner_and_time_left():
    lock = LockView.of(DOCUMENT, NOW)

    assert lock.to_json() == {
        "run_id": "R1",
        "owner": "host:42",
        "acquired_at": "2027-01-15T07:59:00.000Z",
        "expires_at": "2027-01-15T08:14:00.000Z",
        "expires_in_seconds": 840.0,
        "expired": False,
    }
    assert lock.line() == "run R1 (host:42), expires in 840s at 2027-01-15T08:14:00.000Z unless renewed"
    assert LockView.from_json(lock.to_json()) == lock


def test_a_lock_past_its_expiry_is_expired_and_says_the_next_run_takes_it():
    lock = LockView.of(DOCUMENT, NOW + 900)

    assert lock.expired and lock.expires_in_seconds == -60.0
    assert "expired 60s ago" in lock.line() and "the next run takes it over" in lock.line()


@pytest.mark.parametrize(
    ("done", "total", "finalized", "stage"),
    [
        (0, 3, 0, Stage.COPYING),
        (2, 3, 0, Stage.COPYING),
        (3, 3, 0, Stage.FINALIZING),
        (1, 3, 1, Stage.FINALIZING),
        (0, 0, 0, Stage.FINALIZING),
    ],
)
def test_an_open_run_is_copying_until_every_batch_reported_or_a_shard_finalized(done, total, finalized, stage):
    assert stage_of(done, total, finalized) == stage


OPEN = OpenRun("movielens", "R1", "2026-01-02", "2026-01-02T20:00:00.000Z", 3, PlanCounts(planned=5, planned_bytes=50))


def test_an_open_run_reports_batches_and_what_its_reported_batches_did():
    run = RunningRun.sealed(OPEN, 1, 0, Tally(copied=2, bytes=20), live=True)

    answer = run.to_json()
    assert (answer["status"], answer["stage"], answer["live"]) == ("in_progress", "copying", True)
    assert (answer["batches_done"], answer["batches"], answer["objects_done"], answer["planned"]) == (1, 3, 2, 5)
    assert (answer["bytes"], answer["planned_bytes"]) == (20, 50)
    assert answer["progress"] == "copying: 1 of 3 batches, 2 of 5 objects, 20 of 50 bytes"


def test_a_run_without_a_live_lock_is_said_to_be_completed_by_the_next_run():
    run = RunningRun.sealed(OPEN, 3, 1, Tally(copied=5, bytes=50), live=False)

    assert run.stage == Stage.FINALIZING
    assert run.progress() == (
        "finalizing: 1 of 1 shards written, 5 objects (interrupted: no live lock; the next run completes it)"
    )


def test_a_run_being_planned_counts_its_planned_shards():
    planning = Planning("movielens", "R2", "2026-01-02", "2026-01-02T20:00:00.000Z", shard_count=4)

    run = RunningRun.planning(planning, 1, live=True)

    assert (run.stage, run.shards_done, run.shards) == (Stage.PLANNING, 1, 4)
    assert run.progress() == "planning: 1 of 4 shards planned"
    assert "plans afresh" in RunningRun.planning(planning, 1, live=False).progress()


def test_a_dataset_status_answers_each_part_in_its_own_json_form_and_none_for_what_is_not_there():
    lock = LockView.of(DOCUMENT, NOW)
    run = RunningRun.sealed(OPEN, 1, 0, Tally(copied=2, bytes=20), live=True)

    assert DatasetStatus("movielens", lock, run, None).to_json() == {
        "dataset": "movielens",
        "lock": lock.to_json(),
        "run": run.to_json(),
        "last_run": None,
    }
    assert DatasetStatus("movielens", None, None, None).to_json() == {
        "dataset": "movielens",
        "lock": None,
        "run": None,
        "last_run": None,
    }
