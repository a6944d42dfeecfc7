"""The ledger as tables: the columns Athena and Glue see, derived from the records the runtime writes.

One field list serves both: a manifest line is `ManifestLine` stamped with `RunRef`, a run is `RunSummary`, and
the columns here are read off those dataclasses, so a field added to a record is a column the next `pulumi up`.

Each line also carries its `dataset` and run `date`, and sits under `_ingestion/<dataset>/.../date=<date>/`.
Hive DDL cannot declare a name both as a column and as a partition key, so the two are partition keys only
(their values in a line always equal its folder's) and are left out of the columns; the JSON SerDe ignores keys
it has no column for. Partition projection names every partition from the stack's dataset names and the
calendar, so a query works right after `pulumi up` with no crawler and no `MSCK REPAIR`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .layout import LEDGER_ROOT
from .ledger_keys import LedgerPaths, Template
from .records import ManifestLine, RunRef, RunSummary

PARTITION_KEYS = ("dataset", "date")
"""A line's own fields that are its folder, too: partition keys, never columns."""

FIRST_DATE = "2020-01-01"
"""Projection's earliest date; a range reaching before any run costs nothing but empty listings."""

LATEST_DATE = "NOW+1DAYS"
"""A run's date is in its dataset's time zone, up to a day ahead of UTC."""

JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
SERDE_PARAMETERS = {"ignore.malformed.json": "FALSE", "case.insensitive": "TRUE"}
"""The JSON SerDe's parameters, on the tables and on every partition registered (handler/partitions.py).
Timestamps stay strings (ISO 8601 with Z): from_iso8601_timestamp() reads them in Athena."""

_SCALARS: dict[type, str] = {str: "string", int: "bigint", float: "double"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class LedgerTable:
    """One Glue table over one kind of ledger document, in every dataset of a bucket."""

    name: str
    description: str
    columns: tuple[Column, ...]
    folder: str
    """The folder of one partition under a dataset's ledger root, with `${date}` for the date."""

    def location(self, bucket: str) -> str:
        return f"s3://{bucket}/{LEDGER_ROOT}"

    def location_template(self, bucket: str) -> str:
        return f"s3://{bucket}/{LEDGER_ROOT}${{dataset}}/{self.folder}"

    def partition_keys(self) -> tuple[Column, ...]:
        return tuple(Column(name, "string") for name in PARTITION_KEYS)

    def parameters(self, bucket: str, datasets: Sequence[str]) -> dict[str, str]:
        """Table parameters: JSON classification and partition projection over the stack's datasets."""
        if not datasets:
            raise ValueError(f"table {self.name}: partition projection needs at least one dataset name")
        return {
            "classification": "json",
            "EXTERNAL": "TRUE",
            "projection.enabled": "true",
            "projection.dataset.type": "enum",
            "projection.dataset.values": ",".join(datasets),
            "projection.date.type": "date",
            "projection.date.format": "yyyy-MM-dd",
            "projection.date.range": f"{FIRST_DATE},{LATEST_DATE}",
            "projection.date.interval": "1",
            "projection.date.interval.unit": "DAYS",
            "storage.location.template": self.location_template(bucket),
        }


def columns_of(*records: type, leave_out: Sequence[str] = PARTITION_KEYS) -> tuple[Column, ...]:
    """The Hive columns of the records' fields, in order, each name once (a later record's repeat is dropped)."""
    seen: set[str] = set(leave_out)
    columns = []
    for record in records:
        hints = typing.get_type_hints(record)
        for f in dataclasses.fields(record):
            if f.name in seen:
                continue
            seen.add(f.name)
            columns.append(Column(f.name, hive_type(hints[f.name])))
    return tuple(columns)


def hive_type(annotation: Any) -> str:
    """A field's annotation as a Hive type; optional fields are their type (a JSON null reads as NULL)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        present = [a for a in args if a is not type(None)]
        if len(present) != 1:
            raise TypeError(f"no Hive type for the union {annotation!r}")
        return hive_type(present[0])
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"array<{hive_type(args[0])}>"
    if origin in (list, Sequence):
        return f"array<{hive_type(args[0])}>"
    if origin in (dict, Mapping):
        return f"map<{hive_type(args[0])},{hive_type(args[1])}>"
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return "string"
        if dataclasses.is_dataclass(annotation):
            fields = ",".join(f"{c.name}:{c.type}" for c in columns_of(annotation, leave_out=()))
            return f"struct<{fields}>"
        if annotation is bool:
            return "boolean"
        for python, hive in _SCALARS.items():
            if issubclass(annotation, python):
                return hive
    raise TypeError(f"no Hive type for {annotation!r}")


def _folder(key: Template) -> str:
    """A partition's folder relative to a dataset's ledger root, as the ledger itself spells it."""
    return key.render("", date="${date}")


MANIFEST = LedgerTable(
    name="manifest",
    description="One row per object a run copied, skipped or failed (the ledger's manifest parts).",
    columns=columns_of(ManifestLine, RunRef),
    folder=_folder(LedgerPaths.manifest_folder),
)

RUNS = LedgerTable(
    name="runs",
    description="One row per committed run: status, counts, bytes, start and end (the ledger's run summaries).",
    # `error` is only set on a run that broke before its commit, which is never written here.
    columns=columns_of(RunSummary, leave_out=(*PARTITION_KEYS, "error")),
    folder=_folder(LedgerPaths.summary_folder),
)

LEDGER_TABLES = (MANIFEST, RUNS)
