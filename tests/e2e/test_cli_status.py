"""`ingest status` and `ingest history` while a run is under way: the runs are driven by the Engine's own steps in
this process (stopped where a Lambda would stop), the CLI asks in a child process over HTTP, as a user would."""

from __future__ import annotations

from datetime import date as Date
from typing import Any

import pytest

from handler.runner import Engine
from handler.store import Store
from tests.conftest import dataset_config, expire_lock
from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    DATASET,
    Stage,
    moto_server_fixture,
    one_json,
    stage_fixture,
)

NIGHT = Date(2026, 1, 2)
FILES = {f"movielens/part-{n}.csv": f"id\n{n}\n".encode() for n in range(5)}  # 5 bytes each
BATCH = 2


@pytest.fixture
def engine(stage: Stage) -> Engine:
    for key, body in FILES.items():
        stage.put(key, body)
    return Engine(Store(stage.s3), dataset_config(stage.source, stage.raw, batch_max_objects=BATCH))


def ask(stage: Stage, command: str, *args: str) -> Any:
    return stage.cli(*stage.argv(command, stage.config(batch_max_objects=BATCH), *args))


def status(stage: Stage) -> dict[str, Any]:
    proc = ask(stage, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return one_json(proc)


def test_an_idle_dataset_has_a_free_lock_no_run_and_then_its_last_run(stage: Stage, engine: Engine) -> None:
    before = ask(stage, "status")
    assert before.returncode == 0, before.stderr
    assert before.stdout.splitlines() == [
        f"dataset   {DATASET}",
        "lock      free (no run holds it)",
        "run       none in progress",
        "last run  none recorded",
    ]

    [summary] = engine.run(NIGHT)
    answer = status(stage)

    assert (answer["lock"], answer["run"]) == (None, None)
    assert answer["last_run"]["run_id"] == summary["run_id"]
    assert (answer["last_run"]["status"], answer["last_run"]["copied"]) == ("succeeded", 5)
    text = ask(stage, "status").stdout
    assert f"last run  {summary['run_id']}  2026-01-02  succeeded  copied 5" in text
    assert text.rstrip().endswith(f"last landed {summary['last_landed_at']}")


def test_a_run_stopped_after_its_plan_shows_its_lock_stage_and_batches(stage: Stage, engine: Engine) -> None:
    planned = engine.plan_all(NIGHT)  # the lock is taken and kept, as between a state machine's steps
    run_id = planned["run_id"]
    batches = engine.ledger.batch_numbers(run_id)
    assert len(batches) == 3

    answer = status(stage)

    lock, run = answer["lock"], answer["run"]
    assert (lock["run_id"], lock["expired"]) == (run_id, False)
    assert 0 < lock["expires_in_seconds"] <= engine.dataset.lock_ttl_seconds
    assert (run["run_id"], run["date"], run["stage"], run["live"]) == (run_id, "2026-01-02", "copying", True)
    assert (run["batches_done"], run["batches"], run["objects_done"], run["planned"]) == (0, 3, 0, 5)
    assert run["planned_bytes"] == 25

    engine.copy_batch(run_id, batches[0])
    answer = status(stage)
    text = ask(stage, "status")

    run = answer["run"]
    assert (run["batches_done"], run["copied"], run["bytes"]) == (1, 2, 10)
    assert f"run       {run_id}  2026-01-02  started {run['started_at']}  copying: 1 of 3 batches, 2 of 5 objects" in (
        text.stdout
    )
    assert f"lock      run {run_id} (" in text.stdout and "unless renewed" in text.stdout

    for number in batches[1:]:
        engine.copy_batch(run_id, number)
    assert status(stage)["run"]["stage"] == "finalizing"

    assert engine.release(run_id)["released"]
    answer = status(stage)
    assert answer["lock"] is None
    assert (answer["run"]["live"], answer["run"]["objects_done"]) == (False, 5)
    assert "the next run completes it" in answer["run"]["progress"]


def test_a_run_being_planned_shows_its_shards(stage: Stage, engine: Engine) -> None:
    planning = engine.plan(NIGHT)
    assert planning["stage"] == "planning"

    run = status(stage)["run"]

    assert (run["run_id"], run["stage"], run["shards_done"], run["shards"]) == (
        planning["run_id"],
        "planning",
        0,
        planning["shard_count"],
    )
    assert run["live"] is True


def test_an_expired_lock_is_shown_as_expired(stage: Stage, engine: Engine) -> None:
    holder = engine.ledger.lock.acquire("20260102T200000000Z-dead00", owner="laptop:123")
    expire_lock(engine.ledger)

    answer = status(stage)
    text = ask(stage, "status").stdout

    assert (answer["lock"]["run_id"], answer["lock"]["owner"], answer["lock"]["expired"]) == (
        holder.run_id,
        "laptop:123",
        True,
    )
    assert answer["lock"]["expires_in_seconds"] < 0
    assert f"lock      run {holder.run_id} (laptop:123), expired" in text
    assert "the next run takes it over" in text


def test_history_lists_the_run_in_progress_first(stage: Stage, engine: Engine) -> None:
    [first] = engine.run(NIGHT)
    stage.put("movielens/part-9.csv", b"id\n9\n")
    planned = engine.plan_all(Date(2026, 1, 3))

    as_json = ask(stage, "history", "--json")
    text = ask(stage, "history")
    limited = ask(stage, "history", "--json", "--limit", "1")

    runs = one_json(as_json)["runs"]
    assert [(r["run_id"], r["status"]) for r in runs] == [
        (planned["run_id"], "in_progress"),
        (first["run_id"], "succeeded"),
    ]
    assert (runs[0]["stage"], runs[0]["planned"], runs[0]["copied"]) == ("copying", 1, 0)
    rows = [line.split() for line in text.stdout.splitlines()]
    assert [row[:3] for row in rows] == [
        [planned["run_id"], "2026-01-03", "in_progress"],
        [first["run_id"], "2026-01-02", "succeeded"],
    ]
    assert "copying: 0 of 1 batches" in text.stdout.splitlines()[0]
    assert [r["run_id"] for r in one_json(limited)["runs"]] == [planned["run_id"]]

    engine.copy_batch(planned["run_id"], engine.ledger.batch_numbers(planned["run_id"])[0])
    engine.finalize(planned["run_id"])
    after = one_json(ask(stage, "history", "--json"))["runs"]
    assert [r["status"] for r in after] == ["succeeded", "succeeded"]
