"""A stack's Glue catalog in moto, made from the same specs the stack deploys, and a Glue client that counts.

moto's BatchCreatePartition needs the table to exist, and it enforces neither the 100-partition limit of a call
nor anything of IAM: `CountingGlue` records every call, so a test can hold each to AWS's limit, and `Refusing`
answers as AWS does when a call is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from handler.config import DatasetConfig
from handler.ledger_tables import JSON_SERDE, LEDGER_TABLES, SERDE_PARAMETERS, TEXT_INPUT, TEXT_OUTPUT
from handler.store.glue import MAX_PARTITIONS_PER_CALL
from handler.tables import glue_table_specs

DATABASE = "data_file_ingestion_test"


def create_catalog(glue: Any, datasets: Iterable[DatasetConfig], database: str = DATABASE) -> None:
    """The database, the ledger's tables and every described table, as infra/catalog.py and raw_tables.py
    create them (columns, formats, SerDe, partition keys, projection parameters)."""
    datasets = list(datasets)
    glue.create_database(DatabaseInput={"Name": database})
    bucket = datasets[0].target.bucket
    for table in LEDGER_TABLES:
        glue.create_table(
            DatabaseName=database,
            TableInput={
                "Name": table.name,
                "TableType": "EXTERNAL_TABLE",
                "Parameters": table.parameters(bucket, [ds.name for ds in datasets]),
                "PartitionKeys": [{"Name": c.name, "Type": c.type} for c in table.partition_keys()],
                "StorageDescriptor": {
                    "Columns": [{"Name": c.name, "Type": c.type} for c in table.columns],
                    "Location": table.location(bucket),
                    "InputFormat": TEXT_INPUT,
                    "OutputFormat": TEXT_OUTPUT,
                    "SerdeInfo": {"SerializationLibrary": JSON_SERDE, "Parameters": dict(SERDE_PARAMETERS)},
                },
            },
        )
    for spec in glue_table_specs(datasets):
        glue.create_table(
            DatabaseName=database,
            TableInput={
                "Name": spec.name,
                "TableType": "EXTERNAL_TABLE",
                "Parameters": spec.parameters(spec_bucket(datasets, spec.dataset)),
                "PartitionKeys": [{"Name": c.name, "Type": c.type} for c in spec.partition_keys],
                "StorageDescriptor": {
                    "Columns": [{"Name": c.name, "Type": c.type} for c in spec.columns],
                    "Location": spec.location(spec_bucket(datasets, spec.dataset)),
                    "InputFormat": spec.input_format,
                    "OutputFormat": spec.output_format,
                    "SerdeInfo": {
                        "SerializationLibrary": spec.serde_library,
                        "Parameters": dict(spec.serde_parameters),
                    },
                },
            },
        )


def spec_bucket(datasets: list[DatasetConfig], name: str) -> str:
    return next(ds.target.bucket for ds in datasets if ds.name == name)


def partitions_of(glue: Any, table: str, database: str = DATABASE) -> list[dict[str, Any]]:
    """Every partition of a table, as an engine reading the catalog lists them (GetPartitions, all pages)."""
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=table)
    return [p for page in pages for p in page["Partitions"]]


class CountingGlue:
    """The moto client, with every BatchCreatePartition recorded (table, entries) and held to AWS's 100."""

    def __init__(self, glue: Any):
        self._glue = glue
        self.calls: list[tuple[str, int]] = []

    def batch_create_partition(self, **request: Any) -> Any:
        entries = len(request["PartitionInputList"])
        self.calls.append((request["TableName"], entries))
        assert entries <= MAX_PARTITIONS_PER_CALL, f"{entries} partitions in one call: AWS refuses more than 100"
        return self._glue.batch_create_partition(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._glue, name)


class Refusing:
    """A Glue client whose every BatchCreatePartition is refused with `code`, as AWS answers (ClientError)."""

    def __init__(self, code: str = "AccessDeniedException"):
        self.code = code
        self.calls = 0

    def batch_create_partition(self, **request: Any) -> Any:
        self.calls += 1
        error = {"Error": {"Code": self.code, "Message": f"not allowed: {request['TableName']}"}}
        raise ClientError(error, "BatchCreatePartition")
