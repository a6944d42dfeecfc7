"""Catalog (Glue/Athena) table specs of a dataset's described tables: pure data, no AWS call.

A described table (`tables.<name>.columns` in the dataset config) is one kind of file landed in one folder,
partitioned by the night it landed (`ingest_date=YYYY-MM-DD/`). Its catalog table uses partition projection, so
Athena finds each night's partition from the folder layout alone: no crawler, no `MSCK REPAIR`, nothing to run
after a night lands. The stack turns these specs into `aws.glue.CatalogTable`s (infra/raw_tables.py); this module
holds every name and parameter, so the spec is tested without Pulumi and the stack cannot drift from the layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .columns import Column, Table, glue_table_name
from .config import DatasetConfig
from .layout import PARTITION_KEY

PROJECTION_START = "2020-01-01"
"""The first night a projected table looks for. A backfill run with `--date` before it is not seen by Athena."""
PROJECTION_RANGE = f"{PROJECTION_START},NOW+1DAYS"
"""Up to tomorrow, not NOW: Athena's NOW is UTC, and a dataset whose timezone is ahead of UTC (Asia/Tokyo at 08:00)
lands tonight's date while it is still yesterday in UTC; with NOW that partition would be invisible for hours."""
DATE_FORMAT = "yyyy-MM-dd"
"""The date as `{date}` renders it, in the Java pattern letters partition projection reads."""

TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
OPEN_CSV_SERDE = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
LAZY_SIMPLE_SERDE = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


@dataclass(frozen=True)
class GlueTableSpec:
    """Everything a catalog table of one described table needs, except the bucket's name.

    The bucket is an input because the stack knows it as its raw bucket's output; `location` and
    `parameters` take it, so the stack calls them inside an apply without creating resources there.
    """

    name: str
    """The catalog table's name: `<dataset>_<table>` (one database holds every dataset's tables)."""
    dataset: str
    table: str
    prefix: str
    """The key prefix in the raw bucket above the `ingest_date=` folders; ends with `/`."""
    columns: tuple[Column, ...]
    """In file order, names lowercased (the catalog stores them so; Athena matches them case-insensitively)."""
    input_format: str
    output_format: str
    serde_library: str
    serde_parameters: Mapping[str, str]
    table_parameters: Mapping[str, str] = field(default_factory=dict)
    """The table's parameters apart from `storage.location.template`, which needs the bucket."""
    description: str = ""
    partition_keys: tuple[Column, ...] = (Column(PARTITION_KEY, "string", "the night the file landed (YYYY-MM-DD)"),)

    def location(self, bucket: str) -> str:
        return f"s3://{bucket}/{self.prefix}"

    def parameters(self, bucket: str) -> dict[str, str]:
        """The table's parameters, with the partition projection's location template in `bucket`."""
        template = f"{self.location(bucket)}{PARTITION_KEY}=${{{PARTITION_KEY}}}/"
        return {**self.table_parameters, "storage.location.template": template}


def glue_table_specs(datasets: Iterable[DatasetConfig]) -> list[GlueTableSpec]:
    """The catalog tables of every described table of `datasets` (dataset by dataset, tables by name).

    The config check has already refused what cannot be described (a key_template without one folder per
    table above `ingest_date={date}`, two tables that would share a catalog name), so this cannot fail.
    """
    return [_spec(ds, table) for ds in datasets for table in ds.tables or () if table.described]


def _spec(dataset: DatasetConfig, table: Table) -> GlueTableSpec:
    serde_library, serde_parameters, extra = _format(table)
    return GlueTableSpec(
        name=glue_table_name(dataset.name, table.name),
        dataset=dataset.name,
        table=table.name,
        prefix=dataset.table_folder(table),
        columns=tuple(Column(c.name.lower(), c.type.lower(), c.comment) for c in table.columns),
        input_format=PARQUET_INPUT if table.format == "parquet" else TEXT_INPUT,
        output_format=PARQUET_OUTPUT if table.format == "parquet" else TEXT_OUTPUT,
        serde_library=serde_library,
        serde_parameters=serde_parameters,
        table_parameters={
            "EXTERNAL": "TRUE",
            "classification": table.format,
            **extra,
            "projection.enabled": "true",
            f"projection.{PARTITION_KEY}.type": "date",
            f"projection.{PARTITION_KEY}.format": DATE_FORMAT,
            f"projection.{PARTITION_KEY}.range": PROJECTION_RANGE,
            f"projection.{PARTITION_KEY}.interval": "1",
            f"projection.{PARTITION_KEY}.interval.unit": "DAYS",
        },
        description=(
            f"Files of dataset {dataset.name!r} matching {', '.join(table.patterns)}, landed by data-file-ingestion "
            f"under {PARTITION_KEY}= folders"
        ),
    )


def _format(table: Table) -> tuple[str, dict[str, str], dict[str, str]]:
    """The SerDe, its parameters and the extra table parameters that read `table`'s files."""
    if table.format == "json":
        return JSON_SERDE, {}, {}
    if table.format == "parquet":
        return PARQUET_SERDE, {"serialization.format": "1"}, {}
    skip = {"skip.header.line.count": "1"} if table.header else {}
    if table.quoted:
        # OpenCSVSerde reads `"American President, The (1995)"` as one field; LazySimpleSerDe would split it.
        return OPEN_CSV_SERDE, {"separatorChar": table.delimiter, "quoteChar": '"', "escapeChar": "\\"}, skip
    return LAZY_SIMPLE_SERDE, {"field.delim": table.delimiter, "serialization.format": table.delimiter}, skip
