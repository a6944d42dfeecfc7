"""The Glue catalog under the mocks: one database per stack and the ledger's tables, checked against what a real
run writes (moto), so a column the runtime does not write, or a field no column reads, fails here."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from handler.ledger_tables import JSON_SERDE, LEDGER_TABLES
from handler.runner import Engine
from handler.store import Store
from infra.stack_config import StackConfigError, parse_stack_config
from tests.conftest import dataset_config, list_keys
from tests.infra.harness import Deployment, dev_stack_config, stack_values

Run = Callable[[dict[str, str]], Deployment]
DATABASE = "aws:glue/catalogDatabase:CatalogDatabase"
TABLE = "aws:glue/catalogTable:CatalogTable"


def tables(deployment: Deployment) -> dict[str, dict[str, Any]]:
    """The ledger's tables (the raw tables beside them are tests/infra/test_raw_tables.py's)."""
    ledger = {t.name for t in LEDGER_TABLES}
    return {t.inputs["name"]: t.inputs for t in deployment.of_type(TABLE) if t.inputs["name"] in ledger}


def test_the_stack_gets_one_database_named_for_project_and_stack(run_program: Run) -> None:
    deployment = run_program(dev_stack_config())
    (database,) = deployment.of_type(DATABASE)
    assert database.inputs["name"] == "data_file_ingestion_test"
    assert deployment.exports["glueDatabaseName"] == "data_file_ingestion_test"
    assert {t["databaseName"] for t in tables(deployment).values()} == {"data_file_ingestion_test"}


def test_the_database_name_follows_the_stack_config_key(run_program: Run) -> None:
    deployment = run_program({**dev_stack_config(), "data-file-ingestion:glueDatabase": "lake_raw"})
    assert deployment.of_type(DATABASE)[0].inputs["name"] == "lake_raw"


@pytest.mark.parametrize("name", ["Lake", "lake-raw", "", "x" * 256])
def test_a_database_name_athena_would_need_quoted_is_refused(name: str) -> None:
    with pytest.raises(StackConfigError, match="glueDatabase"):
        parse_stack_config({**stack_values(dev_stack_config()), "glueDatabase": name})


def test_manifest_and_runs_project_every_dataset_and_date_of_the_raw_buckets_ledger(run_program: Run) -> None:
    deployment = run_program(dev_stack_config())
    found = tables(deployment)
    assert sorted(found) == ["manifest", "runs"]
    raw = deployment.exports["rawBucketName"]
    for table in LEDGER_TABLES:
        inputs = found[table.name]
        params = inputs["parameters"]
        assert inputs["tableType"] == "EXTERNAL_TABLE"
        assert params["projection.enabled"] == "true"
        assert params["projection.dataset.type"] == "enum"
        assert params["projection.dataset.values"] == "movielens"
        assert params["projection.date.type"] == "date"
        folder = "manifest" if table.name == "manifest" else "summary"
        assert params["storage.location.template"] == f"s3://{raw}/_ingestion/${{dataset}}/{folder}/date=${{date}}/"
        assert [k["name"] for k in inputs["partitionKeys"]] == ["dataset", "date"]
        storage = inputs["storageDescriptor"]
        assert storage["serDeInfo"]["serializationLibrary"] == JSON_SERDE
        assert storage["location"] == f"s3://{raw}/_ingestion/"
        names = [c["name"] for c in storage["columns"]]
        assert len(names) == len(set(names))
        assert not set(names) & {"dataset", "date"}, "Hive DDL cannot declare a name twice"


DRIFT_ONLY = {"schema_drift", "schema_drift_files"}
"""Written only by a file whose header drifted from its table's columns, and by a run that met one."""


def test_the_deployed_columns_are_exactly_the_fields_a_real_run_writes(run_program: Run, s3, buckets) -> None:
    source, raw = buckets
    for name in ("a.csv", "b.csv"):
        s3.put_object(Bucket=source, Key=f"movielens/{name}", Body=name.encode())
    s3.put_object(Bucket=source, Key="movielens/old.csv", Body=b"cold", StorageClass="GLACIER")
    # A described table and a drifted file of it: the fields only such a file's line and its run write.
    s3.put_object(Bucket=source, Key="movielens/ratings.csv", Body=b"userId,score\n1,2\n")
    columns = [{"name": "userId", "type": "bigint"}, {"name": "rating", "type": "double"}]
    described = {"ratings": {"pattern": "ratings.csv", "columns": columns, "on_schema_drift": "land"}}
    Engine(Store(s3), dataset_config(source, raw, tables=described)).run()
    written: dict[str, list[tuple[str, dict[str, Any]]]] = {"manifest": [], "runs": []}
    for key in list_keys(s3, raw, "_ingestion/movielens/"):
        kind = {"manifest": "manifest", "summary": "runs"}.get(key.split("/")[2])
        if kind:
            body = s3.get_object(Bucket=raw, Key=key)["Body"].read().decode()
            written[kind] += [(key, json.loads(line)) for line in body.splitlines() if line]

    deployment = run_program(dev_stack_config())

    for name, inputs in tables(deployment).items():
        columns = {c["name"] for c in inputs["storageDescriptor"]["columns"]}
        keys = {k["name"] for k in inputs["partitionKeys"]}
        template = inputs["parameters"]["storage.location.template"]
        assert written[name], name
        seen: set[str] = set()
        for key, document in written[name]:
            absent = (columns | keys) - set(document)
            assert set(document) <= columns | keys and absent <= DRIFT_ONLY, (
                f"{name}: {key}: {sorted(set(document) ^ (columns | keys))}"
            )
            seen |= set(document)
        assert seen == columns | keys, f"{name}: no line wrote {sorted((columns | keys) - seen)}"
        for key, document in written[name]:
            folder = template
            for partition in keys:
                folder = folder.replace("${" + partition + "}", document[partition])
            assert key.startswith(folder.split("/", 3)[3]), f"{key} is not where {name} projects it"
