"""`ingest lineage s3://raw/key`: where a landed object came from, read from the object itself, and the manifest line
that records it; a missing object, one without lineage and a bad URI each get a clear answer."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    DATASET,
    Stage,
    moto_server_fixture,
    one_json,
    stage_fixture,
)

NIGHT = "2026-01-02"
SOURCE_KEY = "movielens/données/été 2024?.csv"
LANDED = "movielens/données/ingest_date=2026-01-02/été 2024?.csv"


@pytest.fixture
def night(stage: Stage) -> dict[str, Any]:
    etag = stage.put(SOURCE_KEY, b"a,b\n1,2\n")
    stage.put("movielens/other.csv", b"other")
    proc = stage.run(stage.config(), "--json", "--date", NIGHT)
    assert proc.returncode == 0, proc.stderr
    return {**one_json(proc), "source_etag": etag}


def lineage(stage: Stage, uri: str, *args: str) -> Any:
    return stage.cli("lineage", uri, "--endpoint-url", stage.url, *args)


def test_a_landed_object_names_its_source_run_and_manifest_line(stage: Stage, night: dict[str, Any]) -> None:
    uri = f"s3://{stage.raw}/{LANDED}"

    proc = lineage(stage, uri, "--json")
    text = lineage(stage, uri)

    assert proc.returncode == 0, proc.stderr
    answer = one_json(proc)
    assert (answer["uri"], answer["size"], answer["dataset"]) == (uri, 8, DATASET)
    assert (answer["source_bucket"], answer["source_key"], answer["source_etag"]) == (
        stage.source,
        SOURCE_KEY,
        night["source_etag"],
    )
    assert answer["source"] == f"s3://{stage.source}/{SOURCE_KEY}"
    assert (answer["run_id"], answer["date"], answer["run_in_progress"]) == (night["run_id"], NIGHT, False)
    assert answer["manifest_part"] in night["manifest_parts"]
    line = answer["manifest_line"]
    assert (line["target_key"], line["source_key"], line["status"], line["size"]) == (LANDED, SOURCE_KEY, "copied", 8)
    assert line["ingested_at"] == answer["ingested_at"]
    assert answer["problems"] == []

    assert text.returncode == 0, text.stderr
    rows = dict(line.split(None, 1) for line in text.stdout.splitlines())
    assert rows["source"] == f"s3://{stage.source}/{SOURCE_KEY}  ETag {night['source_etag']}"
    assert rows["run"].startswith(f"{night['run_id']}  date {NIGHT}  landed ")
    assert rows["manifest"] == answer["manifest_part"]


def test_an_object_its_manifest_does_not_record_is_shown_with_the_problem(stage: Stage, night: Any) -> None:
    [part] = night["manifest_parts"]
    stage.s3.delete_object(Bucket=stage.raw, Key=part.split("/", 3)[3])

    proc = lineage(stage, f"s3://{stage.raw}/{LANDED}", "--json")

    assert proc.returncode == 1
    answer = one_json(proc)
    assert (answer["source_key"], answer["manifest_line"]) == (SOURCE_KEY, None)
    [problem] = answer["problems"]
    assert problem["kind"] == "not_in_manifest"
    assert f"run {night['run_id']}'s manifest of {NIGHT} has no line for it" in problem["detail"]


@pytest.mark.parametrize(
    ("key", "body", "says"),
    [
        ("movielens/ingest_date=2026-01-02/nothing-here.csv", None, "does not exist"),
        ("movielens/ingest_date=2026-01-02/by-hand.csv", b"put there by a person", "has no lineage metadata"),
    ],
)
def test_an_object_that_is_not_ours_is_a_clear_failure(
    stage: Stage, night: Any, key: str, body: bytes | None, says: str
) -> None:
    if body is not None:
        stage.s3.put_object(Bucket=stage.raw, Key=key, Body=body)

    proc = lineage(stage, f"s3://{stage.raw}/{key}", "--json")

    assert proc.returncode == 1
    answer = one_json(proc)
    assert (answer["status"], answer["exit_code"]) == ("failed", 1)
    assert f"s3://{stage.raw}/{key} {says}" in answer["error"]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("uri", ["raw/key.csv", "s3://bucket-only", "s3:///key"])
def test_a_uri_that_names_no_object_is_a_usage_error(stage: Stage, uri: str) -> None:
    proc = lineage(stage, uri, "--json")

    assert proc.returncode == 2
    assert "give it as s3://bucket/key" in one_json(proc)["error"]


def test_a_bucket_that_does_not_exist_names_it(stage: Stage) -> None:
    proc = lineage(stage, "s3://no-such-bucket-here/k.csv")

    assert proc.returncode == 1
    assert "no-such-bucket-here" in proc.stderr
    assert "check the bucket name" in proc.stderr
