"""`ingest verify` as a user runs it, over HTTP against moto: clean after a normal night, and each kind of damage
to the bucket or the ledger found, named by its key, with exit 1; bad questions exit 2."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import date as Date
from typing import Any

import pytest

from handler.runner import Engine
from handler.store import Store
from tests.conftest import dataset_config
from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    DATASET,
    Stage,
    moto_server_fixture,
    one_json,
    stage_fixture,
)

NIGHT = "2026-01-02"
FILES = {
    "movielens/ratings.csv": b"userId,movieId,rating\n1,1,4.0\n",
    "movielens/tags/tags.csv": b"userId,movieId,tag\n1,1,funny\n",
    "movielens/données/été.csv": b"a,b\n1,2\n",
}


def landed_key(source_key: str, date: str = NIGHT) -> str:
    folder, _, name = source_key.rpartition("/")
    return f"{folder}/ingest_date={date}/{name}"


@pytest.fixture
def night(stage: Stage) -> dict[str, Any]:
    """One committed night of FILES; its summary."""
    for key, body in FILES.items():
        stage.put(key, body)
    proc = stage.run(stage.config(), "--json", "--date", NIGHT)
    assert proc.returncode == 0, proc.stderr
    return one_json(proc)


def verify(stage: Stage, *args: str) -> Any:
    return stage.cli(*stage.argv("verify", stage.config(), *args))


def problems_of(stage: Stage, *args: str) -> tuple[int, dict[str, Any]]:
    proc = verify(stage, "--json", *args)
    return proc.returncode, one_json(proc)


def test_a_normal_night_verifies_clean(stage: Stage, night: dict[str, Any]) -> None:
    text = verify(stage)  # no --date: the last run's night
    code, answer = problems_of(stage, "--date", NIGHT)
    by_run = verify(stage, "--run", night["run_id"])

    assert text.returncode == 0, text.stdout + text.stderr
    [summary] = text.stdout.splitlines()
    assert summary.startswith(f"verify {DATASET} {NIGHT} (1 run): clean: 3 copied lines, 3 objects checked")
    assert code == 0
    assert (answer["status"], answer["problem_count"], answer["problems"]) == ("clean", 0, [])
    assert (answer["runs"], answer["copied_lines"], answer["objects_checked"]) == ([night["run_id"]], 3, 3)
    assert answer["state_checked"] == 3
    assert by_run.returncode == 0, by_run.stdout


def test_an_older_night_stays_clean_after_a_later_night_landed_its_keys_again(stage: Stage, night: Any) -> None:
    stage.put("movielens/ratings.csv", b"userId,movieId,rating\n1,1,5.0\n")
    later = stage.run(stage.config(), "--json", "--date", "2026-01-03")
    assert one_json(later)["copied"] == 1

    for date in (NIGHT, "2026-01-03"):
        code, answer = problems_of(stage, "--date", date)
        assert (code, answer["status"]) == (0, "clean"), answer["problems"]


def delete_object(stage: Stage, key: str) -> None:
    stage.s3.delete_object(Bucket=stage.raw, Key=key)


def overwrite_with_other_bytes(stage: Stage, key: str) -> None:
    """Other bytes of another size, the lineage metadata kept: only the size gives it away."""
    metadata = stage.s3.head_object(Bucket=stage.raw, Key=key)["Metadata"]
    stage.s3.put_object(Bucket=stage.raw, Key=key, Body=b"something else entirely", Metadata=metadata)


def strip_lineage(stage: Stage, key: str) -> None:
    source = {"Bucket": stage.raw, "Key": key}
    stage.s3.copy_object(Bucket=stage.raw, Key=key, CopySource=source, MetadataDirective="REPLACE", Metadata={})


def rewrite_lineage(stage: Stage, key: str) -> None:
    metadata = dict(stage.s3.head_object(Bucket=stage.raw, Key=key)["Metadata"], **{"ingest-source-etag": "0" * 32})
    source = {"Bucket": stage.raw, "Key": key}
    stage.s3.copy_object(Bucket=stage.raw, Key=key, CopySource=source, MetadataDirective="REPLACE", Metadata=metadata)


def land_an_extra_object(stage: Stage, key: str) -> str:
    """An object beside the night's, with lineage saying this dataset landed it that night: no manifest has it."""
    extra = landed_key("movielens/extra.csv")
    metadata = dict(stage.s3.head_object(Bucket=stage.raw, Key=key)["Metadata"])
    metadata["ingest-source-key"] = "movielens/extra.csv"
    stage.s3.put_object(Bucket=stage.raw, Key=extra, Body=b"x", Metadata=metadata)
    return extra


def state_part(stage: Stage) -> str:
    [part] = [p["part"] for p in json.loads(stage.body(stage.raw, stage.ledger.state_index))["parts"] if p["part"]]
    return part


def corrupt_the_state(stage: Stage, key: str) -> None:
    """The state row of the object's source key names another ETag."""
    part = state_part(stage)
    rows = [json.loads(line) for line in gzip.decompress(stage.body(stage.raw, part)).splitlines()]
    for row in rows:
        if row["target"] == key:
            row["etag"] = "f" * 32
    body = gzip.compress(b"".join(json.dumps(row).encode() + b"\n" for row in rows))
    stage.s3.put_object(Bucket=stage.raw, Key=part, Body=body)


def drop_from_the_state(stage: Stage, key: str) -> None:
    part = state_part(stage)
    rows = [json.loads(line) for line in gzip.decompress(stage.body(stage.raw, part)).splitlines()]
    body = gzip.compress(b"".join(json.dumps(row).encode() + b"\n" for row in rows if row["target"] != key))
    stage.s3.put_object(Bucket=stage.raw, Key=part, Body=body)


def garble_the_state(stage: Stage, key: str) -> str:
    part = state_part(stage)
    stage.s3.put_object(Bucket=stage.raw, Key=part, Body=b"not gzip at all")
    return part


Damage = Callable[[Stage, str], Any]


@pytest.mark.parametrize(
    ("damage", "kinds", "says"),
    [
        (delete_object, {"missing"}, "not in the bucket"),
        (overwrite_with_other_bytes, {"size_differs"}, "23 bytes in the bucket, 30 in the manifest"),
        (strip_lineage, {"no_lineage"}, "no lineage metadata"),
        (rewrite_lineage, {"lineage_differs"}, "source ETag '00000000000000000000000000000000'"),
        (land_an_extra_object, {"not_in_manifest"}, "no copied manifest line of that date records it"),
        (corrupt_the_state, {"state_disagrees"}, "with ETag ffffffffffffffffffffffffffffffff"),
        (drop_from_the_state, {"state_disagrees"}, "the state has no row for source key movielens/ratings.csv"),
        (garble_the_state, {"state_disagrees"}, "the state part is unreadable"),
    ],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_each_kind_of_damage_is_found_named_by_its_key(
    stage: Stage, night: Any, damage: Damage, kinds: set[str], says: str
) -> None:
    key = landed_key("movielens/ratings.csv")
    named = damage(stage, key) or key

    code, answer = problems_of(stage, "--date", NIGHT)
    text = verify(stage, "--date", NIGHT)

    assert code == 1
    assert answer["status"] == "problems"
    assert set(answer["problems_by_kind"]) == kinds
    [problem] = answer["problems"]
    assert problem["key"] == named
    assert says in problem["detail"]
    assert text.returncode == 1
    *lines, summary = text.stdout.splitlines()
    assert lines == [f"{problem['kind'].replace('_', ' ')}: {named}: {problem['detail']}"]
    assert summary.startswith(f"verify {DATASET} {NIGHT} (1 run): 1 problems (1 {problem['kind'].replace('_', ' ')})")


def test_a_lost_manifest_part_shows_in_the_summary_count_and_as_unrecorded_objects(stage: Stage, night: Any) -> None:
    [part] = night["manifest_parts"]
    stage.s3.delete_object(Bucket=stage.raw, Key=part.split("/", 3)[3])

    code, answer = problems_of(stage)

    assert code == 1
    assert answer["problems_by_kind"] == {"manifest_disagrees": 1, "not_in_manifest": 3}
    manifest = next(p for p in answer["problems"] if p["kind"] == "manifest_disagrees")
    assert manifest["key"] == night["manifest"]
    assert "summary says 3 copied; its manifest has 0 copied lines" in manifest["detail"]
    assert {p["key"] for p in answer["problems"] if p["kind"] == "not_in_manifest"} == {landed_key(k) for k in FILES}


def test_several_problems_are_listed_one_a_line_and_other_datasets_objects_are_left_alone(
    stage: Stage, night: Any
) -> None:
    delete_object(stage, landed_key("movielens/ratings.csv"))
    strip_lineage(stage, landed_key("movielens/données/été.csv"))
    stage.s3.put_object(Bucket=stage.raw, Key=landed_key("movielens/by-hand.csv"), Body=b"put there by a person")

    text = verify(stage)

    assert text.returncode == 1
    *lines, summary = text.stdout.splitlines()
    assert lines == [
        f"no lineage: {landed_key('movielens/données/été.csv')}: the object has no lineage metadata "
        "(replaced or rewritten since)",
        f"missing: {landed_key('movielens/ratings.csv')}: copied by run {night['run_id']} from movielens/ratings.csv, "
        "not in the bucket",
    ]
    assert "2 problems (1 missing, 1 no lineage)" in summary
    assert "1 objects there are not this dataset's (ignored)" in summary


def test_a_night_with_a_run_in_progress_checks_the_committed_runs_and_leaves_the_open_one(
    stage: Stage, night: Any
) -> None:
    stage.put("movielens/new.csv", b"new")
    engine = Engine(Store(stage.s3), dataset_config(stage.source, stage.raw))
    planned = engine.plan_all(Date.fromisoformat(NIGHT))
    [batch] = engine.ledger.batch_numbers(planned["run_id"])
    engine.copy_batch(planned["run_id"], batch)  # landed, not committed: in no manifest yet

    code, answer = problems_of(stage)
    open_one = verify(stage, "--json", "--run", planned["run_id"])

    assert (code, answer["status"], answer["in_progress"], answer["in_progress_objects"]) == (
        0,
        "clean",
        planned["run_id"],
        1,
    )
    assert open_one.returncode == 2
    assert "still in progress" in one_json(open_one)["error"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--run", "20200101T000000000Z-000000"], "has no committed run 20200101T000000000Z-000000"),
        (["--date", "2026-02-30"], "'2026-02-30' is not a date"),
        (["--date", NIGHT, "--run", "x"], "not allowed with argument"),
    ],
)
def test_a_question_that_cannot_be_answered_exits_2(stage: Stage, night: Any, args: list[str], says: str) -> None:
    proc = verify(stage, "--json", *args)

    assert proc.returncode == 2
    answer = one_json(proc)
    assert (answer["status"], answer["exit_code"]) == ("invalid", 2)
    assert says in answer["error"]


def test_a_dataset_without_runs_needs_a_date(stage: Stage) -> None:
    proc = verify(stage)
    dated = verify(stage, "--date", NIGHT)

    assert proc.returncode == 2
    assert "pass --date" in proc.stderr
    assert dated.returncode == 0, dated.stdout + dated.stderr
    assert "(0 runs): clean" in dated.stdout


def test_a_dataset_with_tables_lists_only_its_tables_folders_of_the_night(stage: Stage) -> None:
    tables = {"ratings": "ratings*.csv", "tags": ["tags*.csv"]}
    config = stage.config(tables=tables)
    for key in ("movielens/ratings.csv", "movielens/tags.csv", "movielens/notes.txt"):
        stage.put(key, b"x,y\n1,2\n")
    assert stage.run(config, "--date", NIGHT).returncode == 0
    landed = sorted(stage.landed())
    assert landed == [
        f"movielens/_unmatched/ingest_date={NIGHT}/notes.txt",
        f"movielens/ratings/ingest_date={NIGHT}/ratings.csv",
        f"movielens/tags/ingest_date={NIGHT}/tags.csv",
    ]
    stage.s3.put_object(Bucket=stage.raw, Key="movielens/ratings/ingest_date=2026-01-03/later.csv", Body=b"not tonight")

    clean = stage.cli(*stage.argv("verify", config, "--json"))
    extra = f"movielens/tags/ingest_date={NIGHT}/extra.csv"
    metadata = dict(stage.s3.head_object(Bucket=stage.raw, Key=landed[2])["Metadata"])
    stage.s3.put_object(Bucket=stage.raw, Key=extra, Body=b"x", Metadata=metadata)
    found = stage.cli(*stage.argv("verify", config, "--json"))

    answer = one_json(clean)
    assert (clean.returncode, answer["status"], answer["objects_listed"]) == (0, "clean", 3)
    assert answer["listing"] == [
        f"s3://{stage.raw}/movielens/{table}/ingest_date={NIGHT}/" for table in ("_unmatched", "ratings", "tags")
    ]
    assert found.returncode == 1
    [problem] = one_json(found)["problems"]
    assert (problem["kind"], problem["key"]) == ("not_in_manifest", extra)


# ---- --checksums ----------------------------------------------------------------------------------------------


def overwrite_with_same_size_bytes(stage: Stage, key: str) -> None:
    """Other bytes of the same size, lineage metadata kept: size and lineage cannot tell, the checksum can."""
    head = stage.s3.head_object(Bucket=stage.raw, Key=key)
    body = b"x" * head["ContentLength"]
    stage.s3.put_object(Bucket=stage.raw, Key=key, Body=body, Metadata=head["Metadata"])


def test_checksums_are_compared_with_what_each_line_recorded_and_a_clean_night_says_how_many(
    stage: Stage, night: Any
) -> None:
    text = verify(stage, "--checksums")
    code, answer = problems_of(stage, "--checksums")

    assert text.returncode == 0, text.stdout + text.stderr
    assert text.stdout.splitlines()[-1].endswith(", 3 checksums compared")
    assert (code, answer["status"], answer["checksums_checked"], answer["checksums_unrecorded"]) == (0, "clean", 3, 0)


def test_other_bytes_of_the_same_size_are_found_only_by_their_checksum(stage: Stage, night: Any) -> None:
    key = landed_key("movielens/ratings.csv")
    overwrite_with_same_size_bytes(stage, key)

    plain_code, plain = problems_of(stage)
    code, answer = problems_of(stage, "--checksums")
    text = verify(stage, "--checksums")

    assert (plain_code, plain["status"]) == (0, "clean")  # README "Limits": size and lineage cannot tell
    assert code == 1 and answer["problems_by_kind"] == {"checksum_differs": 1}
    [problem] = answer["problems"]
    assert problem["key"] == key
    assert (
        "in the bucket" in problem["detail"]
        and "in the manifest: other bytes than those that landed" in (problem["detail"])
    )
    assert text.returncode == 1
    assert text.stdout.splitlines()[0] == f"checksum differs: {key}: {problem['detail']}"
