"""The verifier finds each kind of broken promise: a clean run passes, and each violation built by hand with
boto3 over a clean run's buckets is reported with its kind."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import date as Date
from typing import Any

import boto3
import pytest

from handler.runner import Engine
from handler.store import Store
from tests.conftest import dataset_config
from tests.e2e.cli_fixtures import REGION, Stage, client, moto_server_fixture  # noqa: F401 (fixture)
from tests.faults.verifier import kind_of, overwritten, snapshot, tally, verify

DATE = "2026-03-04"


@pytest.fixture(scope="module")
def clean_landing(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Stage, dict[str, Any]]:
    """One clean run of six objects (one under a key that needs percent-encoding in its lineage), and every
    object of both buckets as it left them: each test starts from a restored copy instead of a run of its own.

    The run is in process (the runtime's public Engine over HTTP) rather than the CLI: how the landing was made
    is not what these tests are about.
    """
    s3 = client(moto_server, "s3")
    suffix = uuid.uuid4().hex[:10]
    stage = Stage(moto_server, s3, f"vsource-{suffix}", f"vraw-{suffix}", tmp_path_factory.mktemp("verifier"))
    for bucket in (stage.source, stage.raw):
        s3.create_bucket(Bucket=bucket)
    for n in range(5):
        stage.put(f"movielens/dir/part-{n}.csv", f"id\n{n}\n".encode())
    stage.put("movielens/dir/naïve name.csv", b"id\n9\n")
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    engine = Engine(Store.sized(session, endpoint_url=moto_server), dataset_config(stage.source, stage.raw))
    [summary] = engine.run(Date.fromisoformat(DATE))
    assert (summary["status"], summary["copied"]) == ("succeeded", 6), summary
    saved = {}
    for bucket in (stage.source, stage.raw):
        for key in stage.etags(bucket):
            response = s3.get_object(Bucket=bucket, Key=key)
            saved[(bucket, key)] = (response["Body"].read(), response["Metadata"], response["ContentType"])
    return stage, saved


@pytest.fixture
def landed(clean_landing: tuple[Stage, dict[str, Any]]) -> Stage:
    """The clean landing, restored byte for byte (same ETags, same metadata) over whatever the last test did."""
    stage, saved = clean_landing
    for bucket in (stage.source, stage.raw):
        keys = list(stage.etags(bucket))
        if keys:
            stage.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    for (bucket, key), (body, metadata, content_type) in saved.items():
        stage.s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata, ContentType=content_type)
    return stage


def check(stage: Stage, **kwargs: Any) -> list[str]:
    return verify(stage.s3, stage.source, stage.raw, "movielens", **kwargs)


def kinds(violations: list[str]) -> set[str]:
    return {kind_of(v) for v in violations}


def a_landed_key(stage: Stage) -> str:
    return sorted(stage.landed())[0]


def test_a_clean_run_passes_every_check(landed: Stage) -> None:
    expected = landed.etags(landed.source)
    assert check(landed, expected=expected, settled=True, check_bytes=True) == []


def test_a_duplicate_landing_is_reported(landed: Stage) -> None:
    key = a_landed_key(landed)
    landed.s3.copy_object(Bucket=landed.raw, Key=key + ".again", CopySource={"Bucket": landed.raw, "Key": key})

    violations = check(landed)

    assert kinds(violations) == {"duplicated", "orphan"}
    assert any("landed 2 times" in v for v in violations)


def test_an_object_without_lineage_or_manifest_line_is_an_orphan(landed: Stage) -> None:
    landed.s3.put_object(Bucket=landed.raw, Key="movielens/stray.csv", Body=b"who put this here")

    violations = check(landed)

    assert kinds(violations) == {"orphan", "lineage"}
    assert all("movielens/stray.csv" in v for v in violations)


def test_a_manifest_line_without_its_object_is_a_loss(landed: Stage) -> None:
    key = a_landed_key(landed)
    landed.s3.delete_object(Bucket=landed.raw, Key=key)

    violations = check(landed)

    assert kinds(violations) == {"lost"}
    assert key in violations[0]


def test_an_expected_version_that_never_landed_is_a_loss(landed: Stage) -> None:
    expected = dict(landed.etags(landed.source), **{"movielens/dir/late.csv": "0" * 32})

    assert check(landed, expected=expected) == ["lost: 'movielens/dir/late.csv' ETag " + "0" * 32 + " never landed"]


def test_lineage_that_disagrees_with_the_manifest_is_reported(landed: Stage) -> None:
    key = a_landed_key(landed)
    metadata = landed.s3.head_object(Bucket=landed.raw, Key=key)["Metadata"]
    landed.s3.copy_object(
        Bucket=landed.raw,
        Key=key,
        CopySource={"Bucket": landed.raw, "Key": key},
        Metadata=dict(metadata, **{"ingest-run-id": "20260101T000000000Z-other"}),
        MetadataDirective="REPLACE",
    )

    violations = check(landed)

    assert kinds(violations) == {"lineage"}
    assert "run_id" in violations[0]


def test_bytes_that_are_not_the_claimed_source_version_are_reported(landed: Stage) -> None:
    key = a_landed_key(landed)
    metadata = landed.s3.head_object(Bucket=landed.raw, Key=key)["Metadata"]
    landed.s3.put_object(Bucket=landed.raw, Key=key, Body=b"something else", Metadata=metadata)

    assert kinds(check(landed)) >= {"bytes"}


def test_where_etags_are_not_md5s_bytes_are_compared_instead(landed: Stage) -> None:
    """A KMS bucket's ETags differ between a source and its exact copy, so `etags_are_md5=False` must not compare
    them; the bytes still are, so a landing of other bytes of the same size is still caught."""
    key = a_landed_key(landed)
    head = landed.s3.head_object(Bucket=landed.raw, Key=key)
    other = b"x" * head["ContentLength"]
    landed.s3.put_object(Bucket=landed.raw, Key=key, Body=other, Metadata=head["Metadata"])

    assert "bytes" not in kinds(check(landed, etags_are_md5=False))
    assert [v for v in check(landed, etags_are_md5=False, check_bytes=True) if kind_of(v) == "bytes"] == [
        f"bytes: {key!r} differs from its source {landed.lineage(key)['ingest-source-key']!r}"
    ]


def state_part(landed: Stage) -> str:
    """The key of the (one, in these small runs) state part the index names."""
    [part] = json.loads(landed.body(landed.raw, landed.ledger.state_index))["parts"]
    return part["part"]


def test_a_stale_state_is_reported(landed: Stage) -> None:
    part = state_part(landed)
    raw = gzip.decompress(landed.body(landed.raw, part)).decode()
    rows = [json.loads(line) for line in raw.splitlines()]
    rows[0]["etag"] = "f" * 32
    body = gzip.compress("".join(json.dumps(row) + "\n" for row in rows[1:] + [rows[0]]).encode())
    landed.s3.put_object(Bucket=landed.raw, Key=part, Body=body)

    violations = check(landed)

    assert kinds(violations) == {"state"}
    assert "stale" in violations[0] and rows[0]["key"] in violations[0]


def test_a_state_row_missing_is_reported(landed: Stage) -> None:
    part = state_part(landed)
    raw = gzip.decompress(landed.body(landed.raw, part)).decode()
    body = gzip.compress("\n".join(raw.splitlines()[1:]).encode())
    landed.s3.put_object(Bucket=landed.raw, Key=part, Body=body)

    violations = check(landed)

    assert kinds(violations) == {"state"}
    assert any("index says" in v for v in violations), "the part no longer holds the count the index gives"


def test_a_state_part_the_index_names_but_is_gone_is_reported(landed: Stage) -> None:
    landed.s3.delete_object(Bucket=landed.raw, Key=state_part(landed))

    violations = check(landed)

    assert kinds(violations) == {"state"}
    assert any("which is missing" in v for v in violations)


def test_a_key_outside_its_parts_range_is_reported(landed: Stage) -> None:
    index = json.loads(landed.body(landed.raw, landed.ledger.state_index))
    first = index["parts"][0]
    keys = [
        json.loads(line)["key"]
        for line in gzip.decompress(landed.body(landed.raw, first["part"])).decode().splitlines()
    ]
    index["parts"].append({"start_after": keys[0], "part": None, "keys": 0})  # claims keys after the first
    landed.s3.put_object(Bucket=landed.raw, Key=landed.ledger.state_index, Body=json.dumps(index).encode())

    assert any("outside its range" in v for v in check(landed))


def test_a_state_part_left_unnamed_after_a_clean_exit_is_unsettled(landed: Stage) -> None:
    landed.s3.put_object(Bucket=landed.raw, Key=landed.ledger.state_part(run_id="r0", shard=0, piece=0), Body=b"")

    assert check(landed) == []
    assert tally(check(landed, settled=True)) == {"unsettled": 1}


def test_leftovers_after_a_successful_run_are_unsettled_only_when_asked(landed: Stage) -> None:
    landed.s3.put_object(Bucket=landed.raw, Key=landed.ledger.lock, Body=b"{}")
    landed.s3.put_object(Bucket=landed.raw, Key=landed.ledger.batch_index(run_id="r1"), Body=b"[]")

    assert check(landed) == []
    assert tally(check(landed, settled=True)) == {"unsettled": 2}


def test_a_committed_run_without_its_summary_or_marker_is_unsettled(landed: Stage) -> None:
    [summary] = [k for k in landed.everything() if k.startswith(landed.ledger.summaries)]
    [marker] = [k for k in landed.everything() if k.startswith(landed.ledger.markers)]
    landed.s3.delete_object(Bucket=landed.raw, Key=summary)
    landed.s3.delete_object(Bucket=landed.raw, Key=marker)

    assert tally(check(landed, settled=True)) == {"unsettled": 2}


def test_a_manifest_line_in_the_wrong_file_is_a_ledger_problem(landed: Stage) -> None:
    [manifest] = [k for k in landed.everything() if k.startswith(landed.ledger.manifests)]
    moved = manifest.replace(f"date={DATE}", "date=2026-03-05")
    landed.s3.copy_object(Bucket=landed.raw, Key=moved, CopySource={"Bucket": landed.raw, "Key": manifest})
    landed.s3.delete_object(Bucket=landed.raw, Key=manifest)

    assert kinds(check(landed)) == {"ledger"}


def test_overwritten_finds_rewritten_recopied_and_deleted_landings(landed: Stage) -> None:
    before = snapshot(landed.s3, landed.raw)
    first, second, third = sorted(before)[:3]
    landed.s3.put_object(Bucket=landed.raw, Key=first, Body=b"rewritten")
    metadata = landed.s3.head_object(Bucket=landed.raw, Key=second)["Metadata"]
    landed.s3.copy_object(  # the same bytes copied again: same ETag, newer timestamp
        Bucket=landed.raw,
        Key=second,
        CopySource={"Bucket": landed.raw, "Key": second},
        Metadata=dict(metadata, **{"ingest-timestamp": "2099-01-01T00:00:00.000Z"}),
        MetadataDirective="REPLACE",
    )
    landed.s3.delete_object(Bucket=landed.raw, Key=third)

    problems = overwritten(before, snapshot(landed.s3, landed.raw))

    assert [kind_of(p) for p in problems] == ["overwritten"] * 3
    assert [next(k for k in (first, second, third) if repr(k) in p) for p in problems] == sorted([first, second, third])
    assert overwritten(before, before) == []
