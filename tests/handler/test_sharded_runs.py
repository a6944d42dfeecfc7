"""Runs cut into many shards keep exactly-once: planned in rounds, retried after a crash, migrated from the
single-file state. Judged by the fault campaign's verifier from the buckets and the ledger alone."""

from __future__ import annotations

import gzip
import json
from datetime import date as Date
from typing import Any

import pytest

from handler.ledger import Ledger
from handler.runner import Engine
from handler.store import Store, jsonl_bytes
from tests.conftest import Crash, crash_once, dataset_config, ledger_in, list_keys, put_keys
from tests.faults.verifier import verify

NOV_27, NOV_28, NOV_29 = Date(2026, 11, 27), Date(2026, 11, 28), Date(2026, 11, 29)


def index_of(ledger: Ledger) -> list[tuple[str | None, int]]:
    return [(part.start_after, part.keys) for part in ledger.state_index().parts]


def check(s3: Any, source: str, raw: str) -> None:
    assert verify(s3, source, raw, "movielens", settled=True) == []


def test_a_flat_dataset_over_the_key_budget_is_planned_in_rounds_and_lands_once(s3, buckets):
    source, raw = buckets
    keys = [f"movielens/f{n:05d}.csv" for n in range(2_100)]
    put_keys(s3, source, keys)
    engine = Engine(Store(s3), dataset_config(source, raw, shard_max_keys=1_000))

    [first] = engine.run(NOV_27)

    assert (first["copied"], first["failed"], first["listed"]) == (2_100, 0, 2_100)
    assert len(first["manifest_parts"]) == 3, "three shards: two stopped at their budget, one took the rest"
    assert index_of(ledger_in(s3, raw)) == [(None, 1_000), (keys[999], 1_000), (keys[1_999], 100)]
    check(s3, source, raw)

    [quiet] = engine.run(NOV_28)
    assert (quiet["status"], quiet["copied"], quiet["unchanged"]) == ("nothing_new", 0, 2_100)
    assert quiet["manifest_parts"] == [], "a no-op night writes no manifest part"
    s3.put_object(Bucket=source, Key=keys[1_500], Body=b"changed")
    [night] = engine.run(NOV_29)
    assert (night["copied"], night["unchanged"]) == (1, 2_099)
    check(s3, source, raw)


def test_a_first_run_is_cut_at_the_folders_it_finds_and_small_shards_merge_the_next_night(s3, buckets):
    source, raw = buckets
    keys = [f"movielens/p{p:02d}/f{n:03d}.csv" for p in range(12) for n in range(100)]
    put_keys(s3, source, keys)
    engine = Engine(Store(s3), dataset_config(source, raw, shard_max_keys=1_000))

    [first] = engine.run(NOV_27)

    assert first["copied"] == 1_200
    assert len(first["manifest_parts"]) == 12, "one shard per folder"
    assert [keys for _, keys in index_of(ledger_in(s3, raw))] == [100] * 12
    s3.put_object(Bucket=source, Key="movielens/p03/new.csv", Body=b"new")

    [night] = engine.run(NOV_28)

    assert (night["copied"], night["unchanged"]) == (1, 1_200)
    assert [keys for _, keys in index_of(ledger_in(s3, raw))] == [501, 500, 200], "neighbours up to half the budget"
    check(s3, source, raw)
    assert list_keys(s3, raw, ledger_in(s3, raw).paths.states) == sorted(
        [ledger_in(s3, raw).paths.state_index] + [p.part for p in ledger_in(s3, raw).state_index().parts if p.part]
    ), "the parts the new index replaced are gone"


@pytest.mark.parametrize("where", ["/planned/", "/state/parts/", "/final/", "/state/index.json"])
def test_a_step_that_died_mid_run_is_retried_on_its_own_and_lands_everything_once(s3, buckets, where):
    source, raw = buckets
    keys = [f"movielens/f{n:05d}.csv" for n in range(2_100)]
    put_keys(s3, source, keys)
    engine = Engine(Store(s3), dataset_config(source, raw, shard_max_keys=1_000, batch_max_objects=500))
    ledger = ledger_in(s3, raw)
    lock = engine.acquire()
    started = engine.plan(NOV_27, lock=lock)
    run_id = started["run_id"]
    crash_once(s3, "PutObject", where)

    # The state machine's steps, each retried on its own after a crash, as a Map retries one item.
    def step(call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except Crash:
            return call(*args)

    answer = started
    while answer["stage"] == "planning":
        for item in json.loads(s3.get_object(Bucket=raw, Key=answer["shards"]["key"])["Body"].read()):
            step(engine.plan_shard, run_id, item["shard"])
        answer = step(engine.seal_plan, run_id)
    for number in ledger.batch_numbers(run_id):
        step(engine.copy_batch, run_id, number)
    for shard in range(answer["shard_count"]):
        step(engine.finalize_shard, run_id, shard)
    summary = step(engine.finalize, run_id)["summary"]

    assert (summary["copied"], summary["failed"]) == (2_100, 0)
    check(s3, source, raw)
    [again] = engine.run(NOV_28)
    assert (again["copied"], again["unchanged"]) == (0, 2_100)


def test_a_finalize_that_died_after_the_index_is_finished_by_the_next_run(s3, buckets):
    source, raw = buckets
    put_keys(s3, source, [f"movielens/f{n:05d}.csv" for n in range(1_500)])
    engine = Engine(Store(s3), dataset_config(source, raw, shard_max_keys=1_000))
    crash_once(s3, "PutObject", "/summary/")
    with pytest.raises(Crash):
        engine.run(NOV_27)
    put_keys(s3, source, ["movielens/later.csv"])

    resumed, tonight = engine.run(NOV_28)

    assert (resumed["date"], resumed["copied"], resumed["resumed"]) == ("2026-11-27", 1_500, True)
    assert (tonight["date"], tonight["copied"], tonight["unchanged"]) == ("2026-11-28", 1, 1_500)
    check(s3, source, raw)


def test_a_single_file_state_of_the_previous_version_is_migrated_on_first_use(s3, buckets):
    source, raw = buckets
    keys = [f"movielens/f{n:05d}.csv" for n in range(1_200)]
    put_keys(s3, source, keys)
    engine = Engine(Store(s3), dataset_config(source, raw, shard_max_keys=1_000))
    engine.run(NOV_27)
    ledger = ledger_in(s3, raw)
    rows = list(ledger.iter_state())
    # Turn the ledger into what the previous version left: one state file, no index, no parts.
    for key in list_keys(s3, raw, ledger.paths.states):
        s3.delete_object(Bucket=raw, Key=key)
    s3.put_object(Bucket=raw, Key=ledger.paths.legacy_state, Body=gzip.compress(jsonl_bytes(rows)))
    s3.put_object(Bucket=source, Key=keys[7], Body=b"changed")

    [night] = engine.run(NOV_28)

    assert (night["copied"], night["unchanged"]) == (1, 1_199), "the old state decided what was unchanged"
    assert list_keys(s3, raw, ledger.paths.legacy_state) == [], "migrated, then deleted"
    assert [keys for _, keys in index_of(ledger)] == [1_000, 200], "the legacy part, cut by the key budget"
    check(s3, source, raw)


def test_verify_reads_a_night_over_many_state_parts_and_listing_pages_and_finds_one_bad_row(s3, buckets):
    source, raw = buckets
    keys = [f"movielens/p{p:02d}/f{n:03d}.csv" for p in range(12) for n in range(100)]
    put_keys(s3, source, keys)
    engine = Engine(Store(s3), dataset_config(source, raw, shard_max_keys=1_000))
    engine.run(NOV_27)
    s3.put_object(Bucket=source, Key="movielens/p03/new.csv", Body=b"new")
    engine.run(NOV_28)  # the twelve parts merge into three

    first, second = engine.verify(NOV_27), engine.verify()

    assert (first.status, first.checked.copied_lines, first.checked.objects_checked, first.checked.state_checked) == (
        "clean",
        1_200,
        1_200,
        1_200,
    )
    assert (second.status, second.scope.date, second.checked.copied_lines, second.checked.objects_checked) == (
        "clean",
        "2026-11-28",
        1,
        1,
    )

    ledger = ledger_in(s3, raw)
    middle = ledger.state_index().parts[1].part
    rows = [
        json.loads(line) for line in gzip.decompress(s3.get_object(Bucket=raw, Key=middle)["Body"].read()).splitlines()
    ]
    rows[7]["etag"] = "0" * 32
    s3.put_object(Bucket=raw, Key=middle, Body=gzip.compress(jsonl_bytes(rows)))
    seen: list[Any] = []

    damaged = engine.verify(NOV_27, on_problem=seen.append)

    assert damaged.status == "problems"
    [problem] = damaged.problems
    assert (problem.kind, problem.key) == ("state_disagrees", rows[7]["target"])
    assert seen == list(damaged.problems)
