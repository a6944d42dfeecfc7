"""The Glue database and the ledger's tables, so Athena answers "what arrived, from where, and when" right
after `pulumi up`: no crawler, no DDL, no `MSCK REPAIR` (the tables project their partitions)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from handler.ledger_tables import JSON_SERDE, LEDGER_TABLES, SERDE_PARAMETERS, TEXT_INPUT, TEXT_OUTPUT, LedgerTable
from infra.component import Component


def default_database_name(project: str, stack: str) -> str:
    """`<project>_<stack>` in the characters Athena takes unquoted (lower case, digits, underscore)."""
    return re.sub(r"[^a-z0-9_]+", "_", f"{project}_{stack}".lower()).strip("_")


@dataclass
class LedgerCatalogArgs:
    database_name: str
    raw_bucket: pulumi.Input[str]
    datasets: Sequence[str]
    """The stack's dataset names: the values the `dataset` partition key projects."""


class LedgerCatalog(Component):
    """One database per stack, with a `manifest` and a `runs` table over every dataset's ledger."""

    database: aws.glue.CatalogDatabase
    database_name: pulumi.Output[str]
    tables: dict[str, aws.glue.CatalogTable]

    def __init__(self, name: str, args: LedgerCatalogArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("catalog:LedgerCatalog", name, opts)
        self.database = aws.glue.CatalogDatabase(
            f"{name}-database",
            name=args.database_name,
            description="Data file ingestion: the ledger (manifest, runs) and the raw tables of this stack",
            opts=self.child,
        )
        self.database_name = self.database.name
        self.tables = {
            table.name: _table(f"{name}-{table.name}", table, self.database.name, args, self.child)
            for table in LEDGER_TABLES
        }
        self.register_outputs({"database_name": self.database_name})


def _table(
    logical: str, table: LedgerTable, database: pulumi.Input[str], args: LedgerCatalogArgs, opts: pulumi.ResourceOptions
) -> aws.glue.CatalogTable:
    bucket = pulumi.Output.from_input(args.raw_bucket)
    return aws.glue.CatalogTable(
        logical,
        name=table.name,
        database_name=database,
        description=table.description,
        table_type="EXTERNAL_TABLE",
        parameters=bucket.apply(lambda b: table.parameters(b, list(args.datasets))),
        partition_keys=[
            aws.glue.CatalogTablePartitionKeyArgs(name=c.name, type=c.type) for c in table.partition_keys()
        ],
        storage_descriptor=aws.glue.CatalogTableStorageDescriptorArgs(
            location=bucket.apply(table.location),
            input_format=TEXT_INPUT,
            output_format=TEXT_OUTPUT,
            ser_de_info=aws.glue.CatalogTableStorageDescriptorSerDeInfoArgs(
                serialization_library=JSON_SERDE,
                parameters=dict(SERDE_PARAMETERS),
            ),
            columns=[aws.glue.CatalogTableStorageDescriptorColumnArgs(name=c.name, type=c.type) for c in table.columns],
        ),
        opts=opts,
    )
