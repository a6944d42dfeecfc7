"""What a person reads of an answer: words for Python's values, and a run that completed an interrupted one first
told as two runs (the CLI's side of it: tests/handler/test_cli_summary.py)."""

from __future__ import annotations

from typing import Any

import pytest

from handler.readable import completed_first, shown
from handler.records import RunSummary


def run(**fields: Any) -> RunSummary:
    return RunSummary.from_json(
        {
            "dataset": "sales",
            "run_id": "20240307T200000Z-ab12",
            "date": "2024-03-07",
            "status": "succeeded",
            "started_at": "2024-03-07T20:00:00.000Z",
            "finished_at": "2024-03-07T20:00:26.300Z",
            "duration_seconds": 26.3,
            "resumed": False,
            "source": "s3://src-bucket/in/",
            "target": "s3://raw-bucket/out/",
            **fields,
        }
    )


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (False, "no"),
        (True, "yes"),
        (None, "-"),
        ([], "-"),
        ({}, "-"),
        (["s3://b/p-00000.jsonl", "s3://b/p-00001.jsonl"], "s3://b/p-00000.jsonl, s3://b/p-00001.jsonl"),
        ({"unchanged": 6, "archived": 1}, "unchanged 6, archived 1"),
        (0, "0"),
        (1.25, "1.25"),
        ("nothing_new", "nothing_new"),
        ([{"table": "ratings"}], '[{"table": "ratings"}]'),
        ({"映画": ["a"]}, '{"映画": ["a"]}'),
    ],
)
def test_values_read_as_words_and_only_nested_ones_as_json(value: Any, words: str) -> None:
    assert shown(value) == words


def test_a_single_run_needs_no_opening_lines() -> None:
    assert completed_first([run()]) == []


def test_each_completed_run_opens_the_answer_with_its_failures_under_it_then_the_nights_run() -> None:
    resumed = run(
        run_id="20240306T200000Z-0001",
        date="2024-03-06",
        status="partial",
        resumed=True,
        copied=25999,
        failed=1,
        bytes=7340032,
        failures=[{"source_key": "in/\x1b[2Jbad.csv", "reason": "AccessDenied: no"}],
    )
    tonight = run(status="nothing_new", skipped=26000, duration_seconds=1.1)

    assert completed_first([resumed, tonight]) == [
        "completed interrupted run 20240306T200000Z-0001 for 2024-03-06: partly failed, copied 25999 (7340032 "
        "bytes), skipped 0, failed 1, in 26.3 s",
        "  - in/\\x1b[2Jbad.csv: AccessDenied: no",
        "then run 20240307T200000Z-ab12 for 2024-03-07: nothing new, copied 0 (0 bytes), skipped 26000, failed 0, "
        "in 1.1 s",
    ]
