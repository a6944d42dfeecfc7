"""A dry run as s5cmd's and rclone's: under --json each object is a JSON line as it is found, then the summary
last; and it exits 1 when its plan already knows objects would fail (README, "Commands")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from handler.cli import EXIT_FAILED, EXIT_OK, main
from tests.conftest import write_config

DATE = "2026-01-02"
TOO_LONG = "movielens/" + "x" * 1000 + ".csv"
"""A key S3 holds whose landed key would pass S3's 1,024 bytes: the plan fails it."""


@pytest.fixture
def config(tmp_path: Path, s3: Any, buckets: tuple[str, str]) -> Path:
    source, _ = buckets
    for key in ("movielens/a.csv", "movielens/sub/b.csv"):
        s3.put_object(Bucket=source, Key=key, Body=b"x")
    return write_config(tmp_path / "config.json", *buckets)


def dry_run(config: Path, *extra: str) -> list[str]:
    return ["run", "--config", str(config), "--dataset", "movielens", "--dry-run", "--date", DATE, *extra]


def test_json_lists_each_object_a_line_then_the_summary(
    config: Path, s3: Any, buckets: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    source, raw = buckets
    s3.put_object(Bucket=source, Key=TOO_LONG, Body=b"x")

    code = main(dry_run(config, "--json"))

    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    *objects, summary = lines
    assert code == EXIT_FAILED
    assert (summary["status"], summary["planned"], summary["failed_at_plan"]) == ("dry_run", 2, 1)
    assert "action" not in summary
    assert objects[:2] == [
        {
            "action": "copy",
            "source_key": "movielens/a.csv",
            "target_key": f"movielens/ingest_date={DATE}/a.csv",
            "size": 1,
        },
        {
            "action": "copy",
            "source_key": "movielens/sub/b.csv",
            "target_key": f"movielens/sub/ingest_date={DATE}/b.csv",
            "size": 1,
        },
    ]
    assert objects[2]["action"] == "fail" and objects[2]["source_key"] == TOO_LONG
    assert "over S3's 1024-byte limit" in objects[2]["reason"]
    assert "COPY" not in err and "Traceback" not in err


def test_the_person_sees_the_same_objects_and_the_same_exit_code(
    config: Path, s3: Any, buckets: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    source, raw = buckets
    s3.put_object(Bucket=source, Key=TOO_LONG, Body=b"x")

    code = main(dry_run(config))

    out = capsys.readouterr().out.splitlines()
    assert code == EXIT_FAILED
    assert out[0] == f"COPY  s3://{source}/movielens/a.csv -> s3://{raw}/movielens/ingest_date={DATE}/a.csv"
    assert out[2].startswith(f"FAIL  s3://{source}/{TOO_LONG}: target key would be ")
    assert any(line.split() == ["failed_at_plan", "1"] for line in out), out


def test_a_dry_run_that_knows_of_no_failure_exits_0(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(dry_run(config, "--json")) == EXIT_OK

    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line).get("action") for line in lines] == ["copy", "copy", None]
