"""A dataset's tables: one folder (and catalog table) per kind of file, and the columns of a described one.

`tables` is the one dataset field whose value is a small document of its own (table name -> glob patterns, or
a description with format and columns), so it is read here, into `Table`s, with every problem named by its
path (`.ratings.columns[1].type: ...`). The Glue specs the stack creates from them are in handler/tables.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .layout import PARTITION_KEY, TablePatterns
from .naming import did_you_mean

TABLE_FORMATS = ("csv", "json", "parquet")
HIVE_TYPES = ("string", "boolean", "tinyint", "smallint", "int", "bigint", "float", "double", "date", "timestamp")
QUOTED_CSV_TYPES = ("string", "boolean", "int", "bigint", "double")
"""The only types OpenCSVSerde (quoted CSV) parses; others come back wrong or fail, so they are refused."""
_PARAMETRISED_TYPE = re.compile(r"^(decimal\(\d{1,2}(,\s*\d{1,2})?\)|varchar\(\d{1,5}\)|char\(\d{1,3}\)|decimal)$")
_NESTED_TYPE = re.compile(r"^(array|map|struct)<.+>$")
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TABLE_FIELDS = ("pattern", "format", "columns", "header", "delimiter", "quoted", "on_schema_drift")
_CSV_ONLY = ("header", "delimiter", "quoted")
_COLUMN_FIELDS = ("name", "type", "comment")
SCHEMA_DRIFT_POLICIES = ("land", "quarantine", "fail")
"""What a file whose header differs from the declared columns does (handler/schema_check.py, README "Schema
contracts"): `land` lands it as usual, `quarantine` lands it under `_quarantine/`, which no table reads, `fail`
leaves it in the source, failed, for the next run to try again. Every one records and reports the drift."""
DEFAULT_SCHEMA_DRIFT_POLICY = "quarantine"
"""Nothing is lost (the file lands in the raw bucket) and no table misreads it (it is outside every table's
folder), without turning the night red for what may be an intended change: the drift is still alarmed."""


@dataclass(frozen=True)
class Column:
    """One column of a described table, as written in the config (the catalog spec lowercases the name)."""

    name: str
    type: str
    comment: str = ""


@dataclass(frozen=True)
class Table:
    """One kind of file of a dataset: which keys belong to it, and, when described, how to read them.

    A table with columns is *described*: the stack can create its catalog table (handler/tables.py).
    """

    name: str
    patterns: tuple[str, ...]
    columns: tuple[Column, ...] = ()
    format: str = "csv"
    header: bool = True
    """CSV: the first line of each file names the columns and is skipped."""
    delimiter: str = ","
    quoted: bool = True
    """CSV: fields may be in double quotes (OpenCSVSerde); false: no quoting at all (LazySimpleSerDe)."""
    on_schema_drift: str = DEFAULT_SCHEMA_DRIFT_POLICY
    """What a file whose header differs from `columns` does (SCHEMA_DRIFT_POLICIES)."""

    @property
    def described(self) -> bool:
        return bool(self.columns)

    def to_document(self) -> Any:
        """The table as a config document writes it; it reads back to an equal Table."""
        if not self.described:
            return list(self.patterns)
        document: dict[str, Any] = {"pattern": list(self.patterns), "format": self.format}
        if self.format == "csv":
            document.update(header=self.header, delimiter=self.delimiter, quoted=self.quoted)
        document["columns"] = [
            {"name": c.name, "type": c.type, **({"comment": c.comment} if c.comment else {})} for c in self.columns
        ]
        if self.on_schema_drift != DEFAULT_SCHEMA_DRIFT_POLICY:
            document["on_schema_drift"] = self.on_schema_drift
        return document


def glue_table_name(dataset: str, table: str) -> str:
    """The catalog name of a dataset's table: one database holds every dataset's tables, so the dataset is in it."""
    return f"{dataset}_{table}".replace("-", "_")


def table_patterns(tables: Iterable[Table] | None) -> TablePatterns:
    """Each table's name and patterns, as the key layout matches them."""
    return tuple((table.name, table.patterns) for table in tables or ())


def read_tables(value: Any) -> tuple[tuple[Table, ...], list[str]]:
    """The tables of a `tables` value, by name, and every problem with it.

    Held by name, not in document order: an object's order means nothing (the stack writes the config
    objects with sorted keys, Pulumi sorts its config), and nothing depends on it, since a key that matches
    two tables fails instead of taking the first. Problems about one table start with its path
    (`.ratings.columns[1].type: ...`), so the field name before them reads as one dotted path; problems
    about the whole value start with the problem itself.
    """
    example = '{"ratings": "ratings*.csv"}'
    if not isinstance(value, Mapping):
        return (), [f"must be an object of table name -> glob pattern(s) or table description, e.g. {example}"]
    if not value:
        return (), ["an empty object names no table; omit tables to land every file without a table folder"]
    tables: list[Table] = []
    problems: list[str] = []
    for name, spec in value.items():
        table, found = _read_table(str(name), spec)
        problems.extend(found)
        if table is not None and not found:
            tables.append(table)
    return tuple(sorted(tables, key=lambda table: table.name)), problems


def _read_table(name: str, spec: Any) -> tuple[Table | None, list[str]]:
    where = f".{name}"
    problems: list[str] = []
    if not _TABLE_NAME.match(name):
        problems.append(
            f"{where}: a table name must be 1-64 lowercase letters, digits or '_', starting with a letter (it names "
            "the table's folder and its Athena table)"
        )
    if isinstance(spec, str | list):
        patterns, found = _table_patterns(spec)
        return (Table(name, patterns) if not found else None), problems + [f"{where}: {p}" for p in found]
    if not isinstance(spec, Mapping):
        return None, problems + [
            f'{where}: must be a glob pattern, a list of them, or an object with "pattern" (and, to describe the '
            'table, "columns")'
        ]
    problems += [
        f"{where}.{key}: unknown field{did_you_mean(str(key), _TABLE_FIELDS)}"
        for key in spec
        if key not in _TABLE_FIELDS
    ]
    if "pattern" not in spec:
        problems.append(f"{where}.pattern: missing; give the glob pattern(s) of the keys of this table")
        patterns: tuple[str, ...] = ()
    else:
        patterns, found = _table_patterns(spec["pattern"])
        problems += [f"{where}.pattern: {p}" for p in found]
    options = {key: spec[key] for key in ("format", "header", "delimiter", "quoted", "on_schema_drift") if key in spec}
    fmt = options.get("format", "csv")
    if fmt not in TABLE_FORMATS:
        problems.append(f"{where}.format: {fmt!r} is not one of {', '.join(TABLE_FORMATS)}")
    for key in ("header", "quoted"):
        if key in options and not isinstance(options[key], bool):
            problems.append(f"{where}.{key}: must be true or false")
    if "delimiter" in options and not (isinstance(options["delimiter"], str) and len(options["delimiter"]) == 1):
        problems.append(f'{where}.delimiter: must be one character, e.g. "," or "\\t"')
    if fmt != "csv":
        problems += [f"{where}.{key}: only a csv table has it" for key in _CSV_ONLY if key in options]
    problems += _drift_policy_problems(where, options.get("on_schema_drift"), fmt)
    if "columns" not in spec:
        if options:
            problems.append(
                f"{where}.columns: missing; {', '.join(sorted(options))} describe a table the stack creates, which "
                "needs its columns (or give only the pattern)"
            )
        columns: tuple[Column, ...] = ()
    else:
        quoted = fmt == "csv" and options.get("quoted", True) is True
        columns, found = _table_columns(spec["columns"], quoted_csv=quoted)
        problems += [f"{where}.columns{p}" for p in found]
    if problems:
        return None, problems
    return Table(name, patterns, columns, **options), []


def _drift_policy_problems(where: str, policy: Any, fmt: Any) -> list[str]:
    field = f"{where}.on_schema_drift"
    if policy is None:
        return []
    if policy not in SCHEMA_DRIFT_POLICIES:
        return [f"{field}: {policy!r} is not one of {', '.join(SCHEMA_DRIFT_POLICIES)}"]
    if fmt == "parquet":
        return [f"{field}: parquet files are not checked against their columns; leave it out"]
    return []


def _table_patterns(value: Any) -> tuple[tuple[str, ...], list[str]]:
    patterns = [value] if isinstance(value, str) else value
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
        return (), ['must be a glob pattern or a non-empty list of them, e.g. "ratings*.csv"']
    return tuple(patterns), []


def _table_columns(value: Any, *, quoted_csv: bool) -> tuple[tuple[Column, ...], list[str]]:
    """Columns in file order: a list, since JSON objects (and Pulumi's stack config) do not keep key order."""
    if not isinstance(value, list) or not value:
        return (), [': must be a non-empty list of {"name": ..., "type": ...} in the order of the file\'s fields']
    columns: list[Column] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(value):
        where = f"[{n}]"
        if not isinstance(raw, Mapping):
            problems.append(f'{where}: must be an object {{"name": ..., "type": ...}}')
            continue
        problems += [
            f"{where}.{key}: unknown field{did_you_mean(str(key), _COLUMN_FIELDS)}"
            for key in raw
            if key not in _COLUMN_FIELDS
        ]
        name, kind, comment = raw.get("name"), raw.get("type"), raw.get("comment", "")
        if not isinstance(name, str) or not _COLUMN_NAME.match(name):
            problems.append(f"{where}.name: must be letters, digits or '_', not starting with a digit, got {name!r}")
        elif name.lower() == PARTITION_KEY:
            problems.append(
                f"{where}.name: {name!r} is the partition column every table gets from its folders; rename it"
            )
        elif name.lower() in seen:
            problems.append(f"{where}.name: {name!r} is also column {seen[name.lower()]} (names ignore case)")
        else:
            seen[name.lower()] = n
        problems += [f"{where}.type: {p}" for p in _column_type_problems(kind, quoted_csv=quoted_csv)]
        if not isinstance(comment, str):
            problems.append(f"{where}.comment: must be a string")
        columns.append(Column(str(name), str(kind), comment if isinstance(comment, str) else ""))
    return tuple(columns), problems


def _column_type_problems(kind: Any, *, quoted_csv: bool) -> list[str]:
    if not isinstance(kind, str) or not kind:
        return [f"must be a Hive type name ({', '.join(HIVE_TYPES)}, decimal(p,s), ...), got {kind!r}"]
    lowered = kind.lower()
    if quoted_csv:
        if lowered in QUOTED_CSV_TYPES:
            return []
        return [
            f"{kind!r}: a quoted csv table (OpenCSVSerde) reads only {', '.join(QUOTED_CSV_TYPES)}; declare it string "
            "and CAST it in a query, or set quoted: false if the files never quote a field"
        ]
    if lowered in HIVE_TYPES or _PARAMETRISED_TYPE.match(lowered) or _NESTED_TYPE.match(lowered):
        return []
    return [f"{kind!r} is not a Hive type{did_you_mean(lowered, HIVE_TYPES, 'types')}"]
