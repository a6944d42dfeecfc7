"""Exactly once, the hard way: `python -m handler run` killed with SIGKILL mid-copy, and two runs racing.

Each run copies one object at a time (`concurrency` 1), in key order, in batches of 10, so a run of 100
objects takes a few seconds against moto and the test can kill it at a chosen point by waiting for the
n-th object to land. Whether the kill really fell mid-copy is asserted, not assumed. What is checked
afterwards is what a downstream reader would see: every (source key, ETag) landed exactly once, under the
date of the run that planned it, and the ledger's manifests name exactly the objects in the bucket.

Conditional writes being ignored by a server cannot be tested here: moto honours them.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import list_keys
from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    CLI_TIMEOUT,
    Stage,
    kill,
    moto_server_fixture,
    one_json,
    reap,
    stage_fixture,
)

OBJECTS = 100
FIRST_DATE = "2026-01-02"
SHORT_TTL = 2
"""Seconds: long enough for the heartbeat (every third of it) to keep a live run's lock, short enough to wait out."""


def crash_config(stage: Stage, ttl: int) -> Path:
    return stage.config(concurrency=1, batch_max_objects=10, lock_ttl_seconds=ttl)


def target_of(key: str, date: str) -> str:
    return key.replace("movielens/", f"movielens/ingest_date={date}/", 1)


def nth_target(objects: dict[str, bytes], n: int) -> str:
    """Where the n-th source key (in key order, the order of the plan) lands under the first date."""
    return target_of(sorted(objects)[n], FIRST_DATE)


def run_and_kill(stage: Stage, config: Path, after: str, *args: str) -> tuple[float, dict[str, Any]]:
    """Start a run, SIGKILL it once `after` landed; returns the kill time and the settled landed objects."""
    proc = stage.spawn(config, "--json", *args)
    try:
        stage.wait_for_object(after, proc)
        killed_at = time.time()
        kill(proc)
    finally:
        reap([proc])
    return killed_at, stage.settled_landed()


def wait_out_lock(killed_at: float, ttl: int) -> None:
    """A dead run's lock expires at most `ttl` after its last renewal, which was before the kill."""
    time.sleep(max(0.0, killed_at + ttl + 0.3 - time.time()))


def first_date_for(stage: Stage) -> dict[str, tuple[str, str]]:
    """Every source object (key -> ETag) with the first run's date, the date it must land under."""
    return {key: (etag, FIRST_DATE) for key, etag in stage.etags(stage.source).items()}


def lineage_of_everything(stage: Stage) -> dict[str, dict[str, str]]:
    return {key: stage.lineage(key) for key in stage.landed()}


def assert_landed_exactly_once(stage: Stage, expected: dict[str, tuple[str, str]]) -> dict[str, dict[str, str]]:
    """`expected` maps source key -> (ETag, date it must land under); returns each landed key's lineage."""
    lineage = lineage_of_everything(stage)
    versions = Counter((meta["ingest-source-key"], meta["ingest-source-etag"]) for meta in lineage.values())
    assert all(count == 1 for count in versions.values()), [v for v, count in versions.items() if count > 1]
    assert set(versions) == {(key, etag) for key, (etag, _) in expected.items()}
    for target, meta in lineage.items():
        _, date = expected[meta["ingest-source-key"]]
        assert target == target_of(meta["ingest-source-key"], date)
        assert meta["ingest-date"] == date
    return lineage


def assert_ledger_matches_bucket(stage: Stage, lineage: dict[str, dict[str, str]], *, tidy: bool = True) -> None:
    """No manifest line without its object, no object without its line, and (`tidy`) no work files left."""
    copied = [line for line in stage.manifest_lines() if line["status"] == "copied"]
    assert Counter(line["target_key"] for line in copied) == Counter(list(lineage))
    for line in copied:
        meta = lineage[line["target_key"]]
        assert (line["source_key"], line["source_etag"]) == (meta["ingest-source-key"], meta["ingest-source-etag"])
        assert (line["run_id"], line["date"]) == (meta["ingest-run-id"], meta["ingest-date"])
    state = {row["key"]: row for row in stage.state()}
    assert {key: row["target"] for key, row in state.items()} == {
        meta["ingest-source-key"]: target for target, meta in lineage.items()
    }
    leftovers = [k for k in (stage.ledger.open_run, stage.ledger.lock) if list_keys(stage.s3, stage.raw, k)]
    assert leftovers == []
    if tidy:
        assert list_keys(stage.s3, stage.raw, stage.ledger.all_work) == []


def test_a_killed_runs_lock_blocks_the_next_run_and_a_dry_run_shows_it_completed_first(stage: Stage) -> None:
    objects = stage.seed(OBJECTS)
    config = crash_config(stage, ttl=900)
    _, before_crash = run_and_kill(stage, config, nth_target(objects, 10), "--date", FIRST_DATE)
    assert 0 < len(before_crash) < OBJECTS  # batches run side by side: not every key before the 10th is in
    stage.put("movielens/late-arrival.csv", b"arrived after the crash")
    before = stage.everything()

    blocked = stage.run(config, "--json", "--date", "2026-01-03")
    dry = stage.run(config, "--json", "--dry-run", "--date", "2026-01-03")

    assert blocked.returncode == 3
    assert "in progress" in blocked.stderr
    assert "Nothing was copied" in blocked.stderr
    assert (one_json(blocked)["status"], one_json(blocked)["exit_code"]) == ("in_progress", 3)
    assert stage.everything() == before
    # A dry run takes no lock; it must show what a run will do: finish the interrupted plan under its own
    # date, and only then plan what is new under the date asked for.
    assert dry.returncode == 0, dry.stderr
    *shown, summary = [json.loads(line) for line in dry.stdout.splitlines()]  # JSON Lines, summary last
    assert summary["planned"] == 1
    targets = [planned["target_key"] for planned in shown if planned["action"] == "copy"]
    assert {planned.get("completes_run") for planned in shown} == {summary["completes_first"]["run_id"], None}
    assert sorted(targets) == sorted(
        [target_of(key, FIRST_DATE) for key in objects] + [target_of("movielens/late-arrival.csv", "2026-01-03")]
    )


@pytest.mark.parametrize("fraction", [0.1, 0.8], ids=["early", "late"])
def test_a_run_killed_mid_copy_is_completed_under_its_own_date_before_new_work(stage: Stage, fraction: float) -> None:
    objects = stage.seed(OBJECTS)
    config = crash_config(stage, ttl=SHORT_TTL)
    killed_at, before_crash = run_and_kill(
        stage, config, nth_target(objects, int(OBJECTS * fraction)), "--date", FIRST_DATE
    )
    assert 0 < len(before_crash) < OBJECTS, "the kill must land mid-copy"
    [interrupted_run] = {stage.lineage(key)["ingest-run-id"] for key in before_crash}
    late_etag = stage.put("movielens/late-arrival.csv", b"arrived after the crash")
    wait_out_lock(killed_at, SHORT_TTL)

    proc = stage.run(config, "--json", "--date", "2026-01-03")

    assert proc.returncode == 0, proc.stderr
    assert f"run {interrupted_run} for {FIRST_DATE} was interrupted; completing it first" in proc.stderr
    result = one_json(proc)
    [resumed] = result["resumed_runs"]
    assert (resumed["run_id"], resumed["date"], resumed["resumed"]) == (interrupted_run, FIRST_DATE, True)
    assert (resumed["status"], resumed["copied"], resumed["failed"]) == ("succeeded", OBJECTS, 0)
    assert (result["date"], result["status"], result["copied"], result["resumed"]) == (
        "2026-01-03",
        "succeeded",
        1,
        False,
    )
    expected = first_date_for(stage)
    expected["movielens/late-arrival.csv"] = (late_etag, "2026-01-03")
    lineage = assert_landed_exactly_once(stage, expected)
    assert {meta["ingest-run-id"] for meta in lineage.values() if meta["ingest-date"] == FIRST_DATE} == {
        interrupted_run
    }
    after = stage.settled_landed()
    assert {key: after[key] for key in before_crash} == before_crash, "objects landed before the crash were recopied"
    assert_ledger_matches_bucket(stage, lineage)


def test_a_resuming_run_killed_in_turn_is_completed_by_the_next(stage: Stage) -> None:
    objects = stage.seed(OBJECTS)
    config = crash_config(stage, ttl=SHORT_TTL)
    killed_at, first = run_and_kill(stage, config, nth_target(objects, 15), "--date", FIRST_DATE)
    [interrupted_run] = {stage.lineage(key)["ingest-run-id"] for key in first}
    wait_out_lock(killed_at, SHORT_TTL)
    # The resuming run walks the already-landed batches first (recognising, not copying), then lands more.
    # Batches run side by side, so "25 more" is counted among the keys the first run had not landed.
    not_landed = [target_of(key, FIRST_DATE) for key in sorted(objects) if target_of(key, FIRST_DATE) not in first]
    killed_at, second = run_and_kill(stage, config, not_landed[25], "--date", "2026-01-03")
    assert len(first) < len(second) < OBJECTS
    wait_out_lock(killed_at, SHORT_TTL)

    proc = stage.run(config, "--json", "--date", "2026-01-04")

    assert proc.returncode == 0, proc.stderr
    result = one_json(proc)
    [resumed] = result["resumed_runs"]
    assert (resumed["run_id"], resumed["date"], resumed["status"]) == (interrupted_run, FIRST_DATE, "succeeded")
    assert (result["date"], result["status"], result["copied"]) == ("2026-01-04", "nothing_new", 0)
    lineage = assert_landed_exactly_once(stage, first_date_for(stage))
    assert {meta["ingest-run-id"] for meta in lineage.values()} == {interrupted_run}
    after = stage.settled_landed()
    assert {key: after[key] for key in second} == second
    assert_ledger_matches_bucket(stage, lineage)


def test_a_run_paused_past_its_lock_stops_when_it_wakes_and_nothing_lands_twice(stage: Stage) -> None:
    objects = stage.seed(OBJECTS)
    config = crash_config(stage, ttl=SHORT_TTL)
    paused = stage.spawn(config, "--json", "--date", FIRST_DATE)
    try:
        stage.wait_for_object(nth_target(objects, 10), paused)
        paused.send_signal(signal.SIGSTOP)  # a laptop lid closed, a VM frozen: alive, but not renewing
        wait_out_lock(time.time(), SHORT_TTL)

        taken_over = stage.run(config, "--json", "--date", "2026-01-03")
        paused.send_signal(signal.SIGCONT)
        woke_out, woke_err = paused.communicate(timeout=60)
    finally:
        reap([paused])

    assert taken_over.returncode == 0, taken_over.stderr
    [resumed] = one_json(taken_over)["resumed_runs"]
    assert (resumed["date"], resumed["status"]) == (FIRST_DATE, "succeeded")
    # It notices either through its heartbeat or, if its batch ended first, because its run is closed; a
    # worker process that takes its next batch finds the lock released by the run that finished its work.
    assert paused.returncode == 1, woke_err
    noticed = ("lost its lock", "is not open", "does not hold this dataset's lock")
    assert any(words in woke_err for words in noticed), woke_err
    assert one_json(woke_out)["status"] == "failed"
    stage.settled_landed()
    lineage = assert_landed_exactly_once(stage, first_date_for(stage))
    assert {meta["ingest-run-id"] for meta in lineage.values()} == {resumed["run_id"]}
    # A batch the paused run finished after waking may leave its result file in work/: garbage, not ledger.
    assert_ledger_matches_bucket(stage, lineage, tidy=False)


def test_of_two_runs_started_together_one_copies_and_the_other_exits_3(stage: Stage) -> None:
    stage.seed(OBJECTS)
    config = crash_config(stage, ttl=60)

    procs = [stage.spawn(config, "--json", "--date", FIRST_DATE) for _ in range(2)]
    try:
        outputs = [proc.communicate(timeout=CLI_TIMEOUT) for proc in procs]
    finally:
        reap(procs)

    outcomes = [(proc.returncode, out, err) for proc, (out, err) in zip(procs, outputs, strict=True)]
    assert sorted(code for code, _, _ in outcomes) == [0, 3], outcomes
    [(_, won, _)] = [o for o in outcomes if o[0] == 0]
    [(_, lost_out, lost_err)] = [o for o in outcomes if o[0] == 3]
    assert "in progress" in lost_err
    assert one_json(lost_out)["status"] == "in_progress"
    winner = one_json(won)
    assert (winner["status"], winner["copied"]) == ("succeeded", OBJECTS)
    lineage = assert_landed_exactly_once(stage, first_date_for(stage))
    assert {meta["ingest-run-id"] for meta in lineage.values()} == {winner["run_id"]}
    assert_ledger_matches_bucket(stage, lineage)
    assert [r["run_id"] for r in one_json(stage.cli(*stage.argv("history", config, "--json")))["runs"]] == [
        winner["run_id"]
    ]


def test_a_run_stopped_with_sigterm_releases_its_lock_and_the_next_run_completes_it_at_once(stage: Stage) -> None:
    """Defect 3's other exit (issue 7): a scheduler's stop or `kill` must not leave the lock for its TTL."""
    objects = stage.seed(OBJECTS)
    config = crash_config(stage, ttl=900)
    proc = stage.spawn(config, "--json", "--date", FIRST_DATE)
    stage.wait_for_object(nth_target(objects, 10), proc)

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=CLI_TIMEOUT)
    retried = stage.run(config, "--json", "--date", "2026-01-03")

    assert proc.returncode == 128 + signal.SIGTERM, err
    assert (one_json(out)["status"], one_json(out)["exit_code"]) == ("interrupted", 143)
    assert "Traceback" not in err
    assert retried.returncode == 0, retried.stderr
    [resumed] = one_json(retried)["resumed_runs"]
    assert (resumed["date"], resumed["copied"]) == (FIRST_DATE, OBJECTS)
    lineage = assert_landed_exactly_once(stage, first_date_for(stage))
    assert_ledger_matches_bucket(stage, lineage)
