"""Glue tables over the raw bucket: one per described table of each dataset, partition-projected by ingest_date.

Every name and parameter comes from `handler.tables.glue_table_specs`, the same specs the handler's tests hold
against the key layout, so a table always points where its files land. Projection means no crawler and no
partition to add after a night: Athena finds `ingest_date=YYYY-MM-DD/` from the location template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from handler.columns import Column
from handler.config import DatasetConfig
from handler.tables import GlueTableSpec, glue_table_specs
from infra.component import Component


@dataclass
class RawTablesArgs:
    """The Glue database to create the tables in, the raw bucket they read, and the validated datasets."""

    database_name: pulumi.Input[str]
    raw_bucket: pulumi.Input[str]
    datasets: Sequence[DatasetConfig]


class RawTables(Component):
    """A catalog table per described table (`tables.<name>.columns`); undescribed tables get none."""

    tables: dict[str, aws.glue.CatalogTable]
    """By catalog name (`movielens_ratings`)."""
    specs: list[GlueTableSpec]

    def __init__(self, name: str, args: RawTablesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("catalog:RawTables", name, opts)
        self.specs = glue_table_specs(args.datasets)
        bucket = pulumi.Output.from_input(args.raw_bucket)
        self.tables = {spec.name: self._create_table(name, spec, args.database_name, bucket) for spec in self.specs}
        self.register_outputs({"table_names": sorted(self.tables)})

    def _create_table(
        self, name: str, spec: GlueTableSpec, database_name: pulumi.Input[str], bucket: pulumi.Output[str]
    ) -> aws.glue.CatalogTable:
        # Named by the catalog name, not by position: adding a table must not replace the others.
        return aws.glue.CatalogTable(
            f"{name}-{spec.name}",
            name=spec.name,
            database_name=database_name,
            description=spec.description,
            table_type="EXTERNAL_TABLE",
            parameters=bucket.apply(spec.parameters),
            partition_keys=[
                aws.glue.CatalogTablePartitionKeyArgs(name=key.name, type=key.type, comment=key.comment or None)
                for key in spec.partition_keys
            ],
            storage_descriptor=aws.glue.CatalogTableStorageDescriptorArgs(
                location=bucket.apply(spec.location),
                input_format=spec.input_format,
                output_format=spec.output_format,
                ser_de_info=aws.glue.CatalogTableStorageDescriptorSerDeInfoArgs(
                    serialization_library=spec.serde_library, parameters=dict(spec.serde_parameters)
                ),
                columns=[_column(column) for column in spec.columns],
            ),
            opts=self.child,
        )


def _column(column: Column) -> aws.glue.CatalogTableStorageDescriptorColumnArgs:
    return aws.glue.CatalogTableStorageDescriptorColumnArgs(
        name=column.name, type=column.type, comment=column.comment or None
    )
