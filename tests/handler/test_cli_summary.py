"""A run's summary as a person reads it, in-process: a run that completes an interrupted one says so first, one
line a run, and no value reads as Python's (`False`, `None`); --json keeps the record as it was."""

from __future__ import annotations

from datetime import date as Date
from pathlib import Path
from typing import Any

import pytest

from handler.cli import EXIT_FAILED, main
from handler.records import RunSummary
from handler.runner import Engine
from handler.store import Store
from tests.conftest import dataset_config, expire_lock, ledger_in, one_json, write_config

INTERRUPTED, TONIGHT = "2026-11-27", "2026-11-29"


def interrupted_run(s3: Any, source: str, raw: str) -> str:
    """A run killed after its first batch of 2 (of 6), whose lock has expired since; the source moved on: one
    file of its plan changed before it was copied, one file is new. Returns its run id."""
    for n in range(6):
        s3.put_object(Bucket=source, Key=f"movielens/f{n}.csv", Body=f"file {n}".encode())
    engine = Engine(Store(s3), dataset_config(source, raw, batch_max_objects=2))
    crashed = engine.plan_all(Date.fromisoformat(INTERRUPTED))
    engine.copy_batch(crashed["run_id"], 0)
    s3.put_object(Bucket=source, Key="movielens/f5.csv", Body=b"file 5, second version")
    s3.put_object(Bucket=source, Key="movielens/new.csv", Body=b"new")
    expire_lock(ledger_in(s3, raw))
    return str(crashed["run_id"])


def complete(tmp_path: Path, source: str, raw: str, *extra: str) -> int:
    config = write_config(tmp_path / "config.json", source, raw, batch_max_objects=2)
    argv = ["run", "--config", str(config), "--dataset", "movielens", "--workers", "1", "--date", TONIGHT, *extra]
    return main(argv)


def test_the_completing_run_opens_with_the_interrupted_run_then_tonights_in_words(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crashed = interrupted_run(s3, *buckets)

    code = complete(tmp_path, *buckets)

    lines = capsys.readouterr().out.splitlines()
    assert code == EXIT_FAILED  # f5 failed in the completed run: its exit code counts
    first, failure, then, *fields = lines
    assert first.startswith(
        f"completed interrupted run {crashed} for {INTERRUPTED}: partly failed, copied 5 (30 bytes), skipped 0, "
        "failed 1, in "
    )
    assert failure.startswith("  - movielens/f5.csv: source changed since listing")
    rows = dict(line.split(None, 1) for line in fields)
    assert then == f"then run {rows['run_id']} for {TONIGHT}: succeeded, copied 2 (25 bytes), skipped 5, failed 0, " + (
        f"in {float(rows['duration_seconds']):.1f} s"
    )
    assert (rows["date"], rows["status"], rows["copied"]) == (TONIGHT, "succeeded", "2")
    assert (rows["resumed"], rows["skipped_by_reason"]) == ("no", "unchanged 5")
    assert "resumed_runs" not in rows
    assert not {"False", "True", "None"} & {value for row in rows.values() for value in row.split()}


def test_the_completing_runs_json_keeps_the_resumed_run_whole(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crashed = interrupted_run(s3, *buckets)

    code = complete(tmp_path, *buckets, "--json")

    answer = one_json(capsys.readouterr().out)
    assert code == EXIT_FAILED
    [resumed] = answer["resumed_runs"]
    assert (resumed["run_id"], resumed["date"], resumed["resumed"], resumed["copied"]) == (
        crashed,
        INTERRUPTED,
        True,
        5,
    )
    assert RunSummary.from_json(resumed).to_json() == resumed
    assert (answer["date"], answer["resumed"], answer["copied"]) == (TONIGHT, False, 2)
    tonight = {key: value for key, value in answer.items() if key != "resumed_runs"}
    assert RunSummary.from_json(tonight).to_json() == tonight  # the summary's own fields, as JSON types
