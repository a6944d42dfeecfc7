"""RawTables under the Pulumi mocks: a partition-projected Glue table where each described table's files land."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from handler.config import DatasetConfig, parse_config
from handler.layout import render_target_key
from infra.raw_tables import RawTables, RawTablesArgs
from infra.stack_config import parse_stack_config
from tests.infra.harness import Deployment, RecordingMocks, dev_stack_config, placeholders, stack_values

TABLE = "aws:glue/catalogTable:CatalogTable"
DATABASE = "acme_ingestion_dev"

Build = Callable[[Sequence[DatasetConfig], str], Deployment]


@pytest.fixture
def build(mocks: RecordingMocks) -> Build:
    """RawTables over a raw bucket and a Glue database that are resources themselves, as in the stack."""

    def run(datasets: Sequence[DatasetConfig], raw_bucket: str) -> Deployment:
        @pulumi.runtime.test
        def program() -> None:
            bucket = aws.s3.Bucket("raw", bucket=raw_bucket)
            database = aws.glue.CatalogDatabase("catalog", name=DATABASE)
            RawTables(
                "raw-tables", RawTablesArgs(database_name=database.name, raw_bucket=bucket.bucket, datasets=datasets)
            )

        program()
        return Deployment(resources=list(mocks.resources), urns=mocks.urns())

    return run


def dev_datasets() -> tuple[list[DatasetConfig], str]:
    config = parse_stack_config(stack_values(dev_stack_config()), placeholders=placeholders)
    return list(config.datasets.datasets.values()), config.raw_bucket


def tables(deployment: Deployment) -> dict[str, dict[str, Any]]:
    return {r.inputs["name"]: r.inputs for r in deployment.of_type(TABLE)}


def test_the_dev_stack_gets_a_table_per_movielens_kind_in_the_stack_database(build: Build) -> None:
    datasets, raw = dev_datasets()

    found = tables(build(datasets, raw))

    assert sorted(found) == ["movielens_links", "movielens_movies", "movielens_ratings", "movielens_tags"]
    for inputs in found.values():
        assert inputs["databaseName"] == DATABASE
        assert inputs["tableType"] == "EXTERNAL_TABLE"
        assert inputs["parameters"]["EXTERNAL"] == "TRUE"


def test_each_table_points_where_the_planner_lands_its_files(build: Build) -> None:
    datasets, raw = dev_datasets()
    (movielens,) = datasets

    found = tables(build(datasets, raw))

    for table in movielens.tables or ():
        inputs = found[f"movielens_{table.name}"]
        landed = render_target_key(
            movielens.key_template,
            movielens.target.prefix,
            dataset=movielens.name,
            relative=f"{table.name}.csv",
            run_date=date(2026, 11, 27),
            run_id="20261127T200000000Z-3f9a1c",
            tables=movielens.table_patterns,
        )
        location = inputs["storageDescriptor"]["location"]
        template = inputs["parameters"]["storage.location.template"]
        assert location == f"s3://{raw}/movielens/{table.name}/"
        assert template == location + "ingest_date=${ingest_date}/"
        assert f"s3://{raw}/{landed}".startswith(template.replace("${ingest_date}", "2026-11-27"))


def test_partitions_are_projected_by_ingest_date_so_no_crawler_is_needed(build: Build) -> None:
    datasets, raw = dev_datasets()

    for inputs in tables(build(datasets, raw)).values():
        assert [(k["name"], k["type"]) for k in inputs["partitionKeys"]] == [("ingest_date", "string")]
        parameters = inputs["parameters"]
        assert parameters["projection.enabled"] == "true"
        assert parameters["projection.ingest_date.type"] == "date"
        assert parameters["projection.ingest_date.format"] == "yyyy-MM-dd"
        assert parameters["projection.ingest_date.range"] == "2020-01-01,NOW+1DAYS"
        assert (parameters["projection.ingest_date.interval"], parameters["projection.ingest_date.interval.unit"]) == (
            "1",
            "DAYS",
        )


def test_columns_follow_the_files_and_each_csv_table_skips_its_header_with_the_right_serde(build: Build) -> None:
    datasets, raw = dev_datasets()

    found = tables(build(datasets, raw))

    ratings = found["movielens_ratings"]["storageDescriptor"]
    assert [(c["name"], c["type"]) for c in ratings["columns"]] == [
        ("userid", "bigint"),
        ("movieid", "bigint"),
        ("rating", "double"),
        ("timestamp", "bigint"),
    ]
    assert ratings["serDeInfo"]["serializationLibrary"] == "org.apache.hadoop.hive.serde2.OpenCSVSerde"
    assert ratings["serDeInfo"]["parameters"] == {"separatorChar": ",", "quoteChar": '"', "escapeChar": "\\"}
    links = found["movielens_links"]["storageDescriptor"]
    assert links["serDeInfo"]["serializationLibrary"] == "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
    assert links["serDeInfo"]["parameters"]["field.delim"] == ","
    for inputs in found.values():
        assert inputs["parameters"]["skip.header.line.count"] == "1"
        assert inputs["storageDescriptor"]["inputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"


def test_undescribed_tables_and_datasets_without_tables_get_no_catalog_table(build: Build) -> None:
    raw_config = {
        "source": {"bucket": "partner-export"},
        "target": {"bucket": "acme-raw", "prefix": "orders/"},
        "tables": {
            "orders": "orders-*.csv",
            "lines": {"pattern": "lines-*.parquet", "format": "parquet", "columns": [{"name": "id", "type": "string"}]},
        },
    }
    plain = {"source": {"bucket": "web-drop"}, "target": {"bucket": "acme-raw", "prefix": "clicks/"}}
    datasets = parse_config({"datasets": {"orders": raw_config, "clicks": plain}}).datasets.values()

    deployment = build(list(datasets), "acme-raw")

    found = tables(deployment)
    assert list(found) == ["orders_lines"]
    assert found["orders_lines"]["storageDescriptor"]["location"] == "s3://acme-raw/orders/lines/"
    assert found["orders_lines"]["storageDescriptor"]["serDeInfo"]["serializationLibrary"] == (
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    )


def test_tables_are_children_of_the_component_named_by_catalog_name(build: Build) -> None:
    datasets, raw = dev_datasets()

    deployment = build(datasets, raw)

    urns = [u for u in deployment.urns if f"${TABLE}::" in u]
    assert len(urns) == 4
    assert all("data-file-ingestion:catalog:RawTables$" in u for u in urns)
    assert sorted(r.name for r in deployment.of_type(TABLE)) == [
        f"raw-tables-movielens_{name}" for name in ("links", "movies", "ratings", "tags")
    ]
