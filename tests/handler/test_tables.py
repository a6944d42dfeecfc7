"""Catalog table specs of described tables: names, where they point, how they read each format, and projection."""

from __future__ import annotations

from datetime import date
from typing import Any

from handler.columns import Column
from handler.config import DatasetConfig, parse_config
from handler.layout import render_target_key
from handler.tables import (
    JSON_SERDE,
    LAZY_SIMPLE_SERDE,
    OPEN_CSV_SERDE,
    PARQUET_INPUT,
    PARQUET_OUTPUT,
    PARQUET_SERDE,
    TEXT_INPUT,
    TEXT_OUTPUT,
    glue_table_specs,
)

RATINGS = {
    "pattern": ["ratings*.csv"],
    "columns": [
        {"name": "userId", "type": "bigint"},
        {"name": "movieId", "type": "BIGINT"},
        {"name": "rating", "type": "double"},
        {"name": "timestamp", "type": "bigint", "comment": "seconds since 1970"},
    ],
}


def dataset(name: str = "movie-lens", **fields: Any) -> DatasetConfig:
    raw = {"source": {"bucket": "src-bucket", "prefix": "in/"}, "target": {"bucket": "raw-bucket", "prefix": "ml/"}}
    return parse_config({"datasets": {name: {**raw, **fields}}}).dataset(name)


def one_spec(**fields: Any) -> Any:
    (spec,) = glue_table_specs([dataset(**fields)])
    return spec


def test_only_described_tables_get_a_catalog_table_named_for_dataset_and_table() -> None:
    specs = glue_table_specs([dataset(tables={"movies": "movies*.csv", "ratings": RATINGS}), dataset("other")])

    assert [(s.name, s.dataset, s.table) for s in specs] == [("movie_lens_ratings", "movie-lens", "ratings")]


def test_the_columns_keep_the_file_order_lowercased_and_the_partition_is_the_ingest_date() -> None:
    spec = one_spec(tables={"ratings": RATINGS})

    assert spec.columns == (
        Column("userid", "bigint"),
        Column("movieid", "bigint"),
        Column("rating", "double"),
        Column("timestamp", "bigint", "seconds since 1970"),
    )
    assert [(c.name, c.type) for c in spec.partition_keys] == [("ingest_date", "string")]


def test_the_location_and_its_projection_template_are_where_the_table_s_files_land() -> None:
    ds = dataset(tables={"ratings": RATINGS})
    (spec,) = glue_table_specs([ds])
    landed = render_target_key(
        ds.key_template,
        ds.target.prefix,
        dataset=ds.name,
        relative="ratings_2024.csv",
        run_date=date(2026, 11, 27),
        run_id="r",
        tables=ds.table_patterns,
    )

    assert spec.prefix == "ml/ratings/"
    assert spec.location("raw-bucket") == "s3://raw-bucket/ml/ratings/"
    template = spec.parameters("raw-bucket")["storage.location.template"]
    assert template == "s3://raw-bucket/ml/ratings/ingest_date=${ingest_date}/"
    assert f"s3://raw-bucket/{landed}".startswith(template.replace("${ingest_date}", "2026-11-27"))


def test_a_template_with_the_dataset_in_the_folders_gives_that_location() -> None:
    spec = one_spec(tables={"ratings": RATINGS}, key_template="raw/{dataset}/{table}/ingest_date={date}/{path}")

    assert spec.prefix == "ml/raw/movie-lens/ratings/"


def test_projection_finds_every_night_from_2020_to_tomorrow_without_a_crawler() -> None:
    parameters = one_spec(tables={"ratings": RATINGS}).parameters("raw-bucket")

    assert {k: v for k, v in parameters.items() if k.startswith("projection.")} == {
        "projection.enabled": "true",
        "projection.ingest_date.type": "date",
        "projection.ingest_date.format": "yyyy-MM-dd",
        "projection.ingest_date.range": "2020-01-01,NOW+1DAYS",
        "projection.ingest_date.interval": "1",
        "projection.ingest_date.interval.unit": "DAYS",
    }
    assert parameters["EXTERNAL"] == "TRUE"


def test_quoted_csv_is_read_by_open_csv_skipping_the_header() -> None:
    spec = one_spec(tables={"ratings": RATINGS})

    assert (spec.input_format, spec.output_format, spec.serde_library) == (TEXT_INPUT, TEXT_OUTPUT, OPEN_CSV_SERDE)
    assert spec.serde_parameters == {"separatorChar": ",", "quoteChar": '"', "escapeChar": "\\"}
    assert spec.table_parameters["skip.header.line.count"] == "1"
    assert spec.table_parameters["classification"] == "csv"


def test_unquoted_csv_without_header_is_read_by_lazy_simple_with_its_delimiter() -> None:
    spec = one_spec(tables={"ratings": {**RATINGS, "quoted": False, "header": False, "delimiter": "\t"}})

    assert spec.serde_library == LAZY_SIMPLE_SERDE
    assert spec.serde_parameters == {"field.delim": "\t", "serialization.format": "\t"}
    assert "skip.header.line.count" not in spec.parameters("raw-bucket")


def test_json_lines_and_parquet_get_their_serdes() -> None:
    columns = [{"name": "id", "type": "string"}]
    json_spec, parquet_spec = glue_table_specs(
        [
            dataset(
                tables={
                    "events": {"pattern": "*.jsonl", "format": "json", "columns": columns},
                    "facts": {"pattern": "*.parquet", "format": "parquet", "columns": columns},
                }
            )
        ]
    )

    assert (json_spec.serde_library, json_spec.input_format, json_spec.table_parameters["classification"]) == (
        JSON_SERDE,
        TEXT_INPUT,
        "json",
    )
    assert (parquet_spec.serde_library, parquet_spec.input_format, parquet_spec.output_format) == (
        PARQUET_SERDE,
        PARQUET_INPUT,
        PARQUET_OUTPUT,
    )
    assert "skip.header.line.count" not in json_spec.table_parameters
