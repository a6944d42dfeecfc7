"""Registered partitions: which Glue partitions a committed night adds, and registering them, so engines that read
the catalog's partitions (Glue/Spark, EMR, Redshift Spectrum) see what Athena finds by partition projection.

Athena ignores registered partitions on a projected table (its projection page: "Athena ignores any partition
metadata registered to the table"), so both live side by side: projection for Athena, registered partitions for
everything else. A partition is registered with the table's own StorageDescriptor (columns, formats, SerDe and
its parameters) and its folder as Location: a partition made through the API inherits nothing from its table.

Which partitions is a pure decision over what landed (the tables whose `ingest_date=<date>/` folder a copied key
is in) and the table specs (`tables.glue_table_specs`, `ledger_tables.LEDGER_TABLES`): the stack's tables and the
registered partitions are read off the same specs. Registering is idempotent (a partition that exists is
success), so a retried commit, a re-run of the night and the repair command (`ingest partitions`) all register
again harmlessly. A failure never undoes the night: the caller warns, and `ingest partitions` repairs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import DatasetConfig
from .layout import LEDGER_ROOT, PARTITION_KEY
from .ledger_tables import (
    JSON_SERDE,
    LEDGER_TABLES,
    MANIFEST,
    SERDE_PARAMETERS,
    TEXT_INPUT,
    TEXT_OUTPUT,
    LedgerTable,
)
from .records import RunSummary
from .store.glue import MAX_PARTITIONS_PER_CALL, create_partitions
from .tables import GlueTableSpec, glue_table_specs

GLUE_DATABASE_ENV = "GLUE_DATABASE"
"""The stack's database, which the function's environment names; a dataset's own `glue_database` comes first."""

_TABLE_ONLY = ("EXTERNAL", "storage.location.template")
"""Table parameters a partition does not carry: the table's kind and projection's (`projection.*`)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Partition:
    """One partition to register: its table, its values (in the table's partition-key order) and its input."""

    table: str
    values: tuple[str, ...]
    location: str
    columns: tuple[tuple[str, str, str], ...]
    """(name, type, comment) in file order, as the table has them."""
    input_format: str
    output_format: str
    serde_library: str
    serde_parameters: Mapping[str, str] = field(default_factory=dict)
    parameters: Mapping[str, str] = field(default_factory=dict)

    def to_input(self) -> dict[str, Any]:
        """Glue's `PartitionInput`: the table's StorageDescriptor with this partition's folder as Location."""
        return {
            "Values": list(self.values),
            "StorageDescriptor": {
                "Columns": [_column(*column) for column in self.columns],
                "Location": self.location,
                "InputFormat": self.input_format,
                "OutputFormat": self.output_format,
                "Compressed": False,
                "SerdeInfo": {"SerializationLibrary": self.serde_library, "Parameters": dict(self.serde_parameters)},
            },
            "Parameters": dict(self.parameters),
        }


def _column(name: str, kind: str, comment: str) -> dict[str, str]:
    return {"Name": name, "Type": kind, **({"Comment": comment} if comment else {})}


# ---- which partitions (pure) ---------------------------------------------------------------------------------


def table_folders(dataset: DatasetConfig, date: str) -> dict[str, str]:
    """Key prefix of each described table's partition for `date` (in the target bucket) -> its catalog name."""
    return {f"{spec.prefix}{PARTITION_KEY}={date}/": spec.name for spec in glue_table_specs([dataset])}


def landed_table(folders: Mapping[str, str], key: str) -> str | None:
    """The catalog table whose partition folder holds `key` (None: an undescribed table, `_unmatched/`)."""
    for folder, table in folders.items():
        if key.startswith(folder):
            return table
    return None


def landed_tables(dataset: DatasetConfig, date: str, copied_keys: Iterable[str]) -> frozenset[str]:
    """The described tables a night's copied keys landed in: the raw partitions it adds."""
    folders = table_folders(dataset, date)
    found: set[str] = set()
    for key in copied_keys:
        table = landed_table(folders, key)
        if table is not None:
            found.add(table)
            if len(found) == len(folders):
                break
    return frozenset(found)


def night_partitions(dataset: DatasetConfig, date: str, *, tables: Iterable[str], manifest: bool) -> list[Partition]:
    """A committed night's partitions: `date` of each described table in `tables` (those that got files), and
    (`dataset`, `date`) of the ledger's `runs` table (every commit writes a summary) and, when the night has
    manifest lines, of its `manifest` table."""
    wanted = set(tables)
    raw = [_raw(spec, dataset.target.bucket, date) for spec in glue_table_specs([dataset]) if spec.name in wanted]
    ledger = [_ledger(table, dataset, date) for table in LEDGER_TABLES if table is not MANIFEST or manifest]
    return [*raw, *ledger]


def _raw(spec: GlueTableSpec, bucket: str, date: str) -> Partition:
    return Partition(
        table=spec.name,
        values=(date,),
        location=f"{spec.location(bucket)}{PARTITION_KEY}={date}/",
        columns=tuple((c.name, c.type, c.comment) for c in spec.columns),
        input_format=spec.input_format,
        output_format=spec.output_format,
        serde_library=spec.serde_library,
        serde_parameters=spec.serde_parameters,
        # How to read the files (classification, the CSV header to skip), not how to project.
        parameters={
            k: v for k, v in spec.table_parameters.items() if k not in _TABLE_ONLY and not k.startswith("projection.")
        },
    )


def _ledger(table: LedgerTable, dataset: DatasetConfig, date: str) -> Partition:
    folder = table.folder.replace("${date}", date)
    return Partition(
        table=table.name,
        values=(dataset.name, date),
        location=f"s3://{dataset.target.bucket}/{LEDGER_ROOT}{dataset.name}/{folder}",
        columns=tuple((c.name, c.type, "") for c in table.columns),
        input_format=TEXT_INPUT,
        output_format=TEXT_OUTPUT,
        serde_library=JSON_SERDE,
        serde_parameters=SERDE_PARAMETERS,
        parameters={"classification": "json"},
    )


def batches(
    partitions: Iterable[Partition], size: int = MAX_PARTITIONS_PER_CALL
) -> Iterator[tuple[str, list[Partition]]]:
    """The partitions as BatchCreatePartition calls: one table each, at most `size` partitions, each partition
    once. Streamed: a table's batch goes out when it is full, the rest at the end."""
    pending: dict[str, list[Partition]] = {}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for partition in partitions:
        if (partition.table, partition.values) in seen:
            continue
        seen.add((partition.table, partition.values))
        batch = pending.setdefault(partition.table, [])
        batch.append(partition)
        if len(batch) == size:
            yield partition.table, pending.pop(partition.table)
    yield from pending.items()


# ---- registering ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    """Where partitions are registered: the database, and how to get a Glue client (made on first use)."""

    database: str
    client: Callable[[], Any]


def catalog_for(dataset: DatasetConfig, client: Callable[[], Any], database: str | None = None) -> Catalog | None:
    """The catalog a dataset's nights are registered in: `database` (a command line's), else the dataset's
    `glue_database`, else the environment's (a stack's function). None: registration is off."""
    name = database or dataset.glue_database or os.environ.get(GLUE_DATABASE_ENV)
    return Catalog(name, client) if name else None


@dataclass(frozen=True)
class Registered:
    """What a registration did: partitions sent, how many were new, how many existed already, in calls."""

    database: str
    partitions: int = 0
    created: int = 0
    existing: int = 0
    calls: int = 0


def register(catalog: Catalog, partitions: Iterable[Partition]) -> Registered:
    """Register `partitions` in the catalog, at most 100 a call; raises PartitionsFailed at the first refusal
    (what went before stays registered: registering again is harmless)."""
    glue = None
    created = existing = calls = 0
    for table, batch in batches(partitions):
        glue = glue or catalog.client()
        new, old = create_partitions(glue, catalog.database, table, [p.to_input() for p in batch])
        created, existing, calls = created + new, existing + old, calls + 1
    return Registered(catalog.database, created + existing, created, existing, calls)


def repair_command(dataset: str, date: str) -> str:
    return f"ingest partitions --config <config> --dataset {dataset} --date {date}"


def register_night(
    catalog: Catalog | None, dataset: DatasetConfig, summary: RunSummary, tables: Iterable[str]
) -> str | None:
    """Register a committed night's partitions; the reason it failed, else None. Never raises: the night is
    committed, and failing now would make a caller report (and a Lambda retry) a run that succeeded."""
    if catalog is None:
        return None
    try:
        partitions = night_partitions(dataset, summary.date, tables=tables, manifest=bool(summary.manifest_parts))
        done = register(catalog, partitions)
    except Exception as err:  # noqa: BLE001 - whatever broke, the committed night stands
        reason = f"{type(err).__name__}: {err}"
        log.warning(
            "dataset=%s run=%s committed, but its partitions were not registered in Glue database %s (%s); "
            "the night is recorded, Athena sees it; to register them: %s",
            dataset.name,
            summary.run_id,
            catalog.database,
            reason,
            repair_command(dataset.name, summary.date),
        )
        return f"{reason}; repair: {repair_command(dataset.name, summary.date)}"
    log.info(
        "dataset=%s run=%s partitions in %s: %d new, %d already there",
        dataset.name,
        summary.run_id,
        catalog.database,
        done.created,
        done.existing,
    )
    return None
