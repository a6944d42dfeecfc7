"""The ledger's tables against what a real run writes: every key of a line is a column or a partition key, each
value fits its column's type, and each line sits where the table's location template says it does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from handler.ledger_tables import LEDGER_TABLES, MANIFEST, PARTITION_KEYS, RUNS, Column, columns_of, hive_type
from handler.runner import Engine
from handler.store import Store
from tests.conftest import dataset_config, ledger_in, list_keys

_PYTHON = {"string": str, "bigint": int, "double": (int, float), "boolean": bool}


def fits(value: Any, hive: str) -> bool:
    """Whether a JSON value reads as a Hive value of this type (NULL fits every type)."""
    if value is None:
        return True
    if hive.startswith("array<"):
        inner = hive[len("array<") : -1]
        return isinstance(value, list) and all(fits(v, inner) for v in value)
    if hive.startswith("map<"):
        key, _, inner = hive[len("map<") : -1].partition(",")
        return isinstance(value, dict) and all(fits(k, key) and fits(v, inner) for k, v in value.items())
    if hive.startswith("struct<"):
        fields = dict(f.split(":", 1) for f in hive[len("struct<") : -1].split(","))
        return (
            isinstance(value, dict) and set(value) == set(fields) and all(fits(value[k], t) for k, t in fields.items())
        )
    if hive == "bigint" and isinstance(value, bool):
        return False
    return isinstance(value, _PYTHON[hive])


@pytest.fixture
def committed(s3: Any, buckets: tuple[str, str]) -> tuple[str, list[str]]:
    """A partial run (two copied, one gone from the source, one archived) then a resumed-nothing run."""
    source, raw = buckets
    for name in ("a.csv", "b.csv", "c.csv"):
        s3.put_object(Bucket=source, Key=f"movielens/{name}", Body=name.encode())
    s3.put_object(Bucket=source, Key="movielens/old.csv", Body=b"cold", StorageClass="GLACIER")
    engine = Engine(Store(s3), dataset_config(source, raw))
    plan = engine.plan_all()
    s3.delete_object(Bucket=source, Key="movielens/b.csv")
    engine.copy_batch(plan["run_id"], 0)
    engine.finalize(plan["run_id"])
    engine.run()
    return raw, list_keys(s3, raw, "_ingestion/")


def documents(s3: Any, raw: str, keys: list[str], folder: str) -> list[tuple[str, dict[str, Any]]]:
    marker = "/" + folder.split("/", 1)[0] + "/"
    found = []
    for key in keys:
        if marker in key:
            body = s3.get_object(Bucket=raw, Key=key)["Body"].read().decode()
            found += [(key, json.loads(line)) for line in body.splitlines() if line]
    return found


@pytest.mark.parametrize("table", LEDGER_TABLES, ids=lambda t: t.name)
def test_every_field_a_run_writes_is_a_column_or_a_partition_key_of_its_type(s3, committed, table):
    raw, keys = committed
    found = documents(s3, raw, keys, table.folder)
    assert found, f"the run wrote no {table.name} documents"
    columns = {c.name: c.type for c in table.columns}
    assert not set(columns) & set(PARTITION_KEYS), "a name declared twice: Hive DDL refuses that"

    for key, document in found:
        assert set(document) - set(PARTITION_KEYS) <= set(columns), f"{key}: fields with no column"
        assert set(PARTITION_KEYS) <= set(document)
        for name, value in document.items():
            if name in columns:
                assert fits(value, columns[name]), f"{key}: {name}={value!r} is not a {columns[name]}"


@pytest.mark.parametrize("table", LEDGER_TABLES, ids=lambda t: t.name)
def test_each_document_sits_in_the_folder_its_partition_values_project_to(s3, committed, table):
    raw, keys = committed
    for key, document in documents(s3, raw, keys, table.folder):
        folder = table.location_template(raw)
        for name in PARTITION_KEYS:
            folder = folder.replace("${" + name + "}", document[name])
        assert f"s3://{raw}/{key}".startswith(folder), key
        assert key.rsplit("/", 1)[0] + "/" == folder.removeprefix(f"s3://{raw}/")


def test_the_runs_table_holds_failures_counts_and_when_data_last_landed(s3, committed):
    raw, keys = committed
    runs = [document for _, document in documents(s3, raw, keys, RUNS.folder)]
    statuses = sorted(run["status"] for run in runs)
    assert statuses == ["nothing_new", "partial"]
    partial = next(run for run in runs if run["status"] == "partial")
    assert partial["copied"] == 2 and partial["failed"] == 1
    assert [f["source_key"] for f in partial["failures"]] == ["movielens/b.csv"]
    later = next(run for run in runs if run["status"] == "nothing_new")
    assert partial["last_landed_at"] == partial["finished_at"]
    assert later["last_landed_at"] == partial["finished_at"], "a run that landed nothing keeps the last landing"


def test_a_summary_written_before_last_landed_at_existed_still_answers_it(s3, buckets):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"a")
    engine = Engine(Store(s3), dataset_config(source, raw))
    (first,) = engine.run()
    ledger = ledger_in(s3, raw)
    old = {k: v for k, v in first.items() if k != "last_landed_at"}
    s3.put_object(Bucket=raw, Key=ledger.paths.last_run, Body=json.dumps(old).encode())

    (second,) = engine.run()

    assert second["status"] == "nothing_new"
    assert second["last_landed_at"] == first["finished_at"]


def test_table_parameters_project_every_dataset_and_date_without_a_crawler():
    parameters = MANIFEST.parameters("raw-bucket", ["orders", "movielens"])

    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.dataset.values"] == "orders,movielens"
    assert parameters["projection.date.format"] == "yyyy-MM-dd"
    assert parameters["storage.location.template"] == "s3://raw-bucket/_ingestion/${dataset}/manifest/date=${date}/"
    with pytest.raises(ValueError, match="manifest"):
        MANIFEST.parameters("raw-bucket", [])


@dataclass
class Inner:
    name: str
    n: int


@dataclass
class Record:
    text: str
    count: int
    ratio: float
    flag: bool
    maybe: str | None
    tags: tuple[str, ...]
    counts: dict[str, int]
    inner: tuple[Inner, ...]


def test_hive_types_follow_the_annotations():
    assert columns_of(Record, leave_out=()) == (
        Column("text", "string"),
        Column("count", "bigint"),
        Column("ratio", "double"),
        Column("flag", "boolean"),
        Column("maybe", "string"),
        Column("tags", "array<string>"),
        Column("counts", "map<string,bigint>"),
        Column("inner", "array<struct<name:string,n:bigint>>"),
    )
    with pytest.raises(TypeError, match="union"):
        hive_type(int | str)
