"""The process config: one schema for the runtime and the Pulumi stack config.

A config is validated as a whole before anything is copied, and every problem is reported at once with
the dataset and field it belongs to, so a typo in a nightly config fails loudly at deploy time instead of
half-way through a run.

Every dataset field is one row of `DATASET_FIELDS`: its name, type, default, range and doc are written
there and nowhere else. The `DatasetConfig` defaults, the parser's checks, `with_overrides` and the README's
field table (`markdown_table`) are all read from it, so they cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date as Date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError, UnknownDataset
from .layout import (
    LEDGER_ROOT,
    PARTITION_KEY,
    PARTITION_SEGMENT,
    AmbiguousTable,
    DotSegment,
    InLedger,
    KeyTooLong,
    TablePatterns,
    UnsafeKey,
    placeholders,
    render_target_key,
    table_folder,
)
from .schedules import EXAMPLE as DEFAULT_SCHEDULE
from .schedules import schedule_problem

__all__ = ["LEDGER_ROOT"]  # defined beside the key rendering that guards it; read from here by the rest

DEFAULT_KEY_TEMPLATE = "{dir}/ingest_date={date}/{name}"
DEFAULT_TABLE_KEY_TEMPLATE = "{table}/ingest_date={date}/{path}"
"""The default of a dataset with `tables`: a folder per table, a Hive partition per night, the source path below.

`{path}` rather than `{name}` below the partition keeps two files of one name in different source folders
apart (the template check requires it); for a source without folders the two are the same."""

TEMPLATE_SAMPLE_KEYS: tuple[str, ...] = (
    "a.csv",
    "dir/sub/file.tar.gz",
    ".env",
    "README",
    "données/été 2024 ✓/映画.csv",
    "ab/c.csv",
    "a/bc.csv",
    "/".join(f"level-{n:02d}" for n in range(12)) + "/" + "x" * 40 + ".parquet",
)
"""Ordinary, distinct source keys (relative to the source prefix) that every key template must land.

The syntax check cannot see what a template does to real keys (`{dir}/../{date}/{name}` is well formed);
rendering these through `layout.render_target_key`, the planner's own function, can. `ab/c.csv` and
`a/bc.csv` catch placeholders glued together (`{dir}{name}`); the last is a long-ish (156-byte) key."""
TEMPLATE_SAMPLE_DATE = Date(2026, 11, 27)
TEMPLATE_SAMPLE_RUN_ID = "20261127T200000000Z-3f9a1c"

PLACEHOLDERS = frozenset(
    {"dataset", "table", "path", "dir", "name", "stem", "ext", "date", "yyyy", "mm", "dd", "run_id"}
)

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB
DAY = 24 * 3600

_DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# S3 bucket naming rules (general purpose buckets); dots allowed but not adjacent.
_BUCKET_NAME = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


# ---- settings tables -----------------------------------------------------------------------------------------


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""The default of a setting that has none: a document must give it."""


@dataclass(frozen=True)
class Setting:
    """One row of a settings table: the one place a setting's name, type, default, range and doc are written.

    The process config's `DATASET_FIELDS` and the stack config's table in `infra/stack_config.py` are made of
    these, so the dataclass defaults, the checks and the documentation tables all read the same row.
    """

    name: str
    """As a document spells it: `concurrency`, `source.bucket`, `lambdaMemoryMb`."""
    type: type
    """The value's JSON type: int, float, str, bool, list or dict."""
    default: Any
    """REQUIRED when a document must give it; None when leaving it out means "none"."""
    doc: str
    low: int | float | None = None
    high: int | float | None = None
    unit: str = ""
    """"bytes" or "seconds": how the documentation writes its numbers (256 MiB, 7 days)."""
    attribute: str = ""
    """Dotted path of the value on the config object, when it is not the name (`function.memory_mb`)."""
    check: Callable[[Any], list[str]] | None = None
    """What a value of the right type and range must also be; returns the problems (empty: none)."""
    choices: tuple[Any, ...] = ()
    """The only values allowed, when there is such a list."""
    decode: Callable[[Any], Any] | None = None
    """How a reader of text (the Pulumi CLI's strings) turns a value of the right type into the stored one."""
    held: Callable[[Any], Any] | None = None
    """How the config object holds a checked value, when not as the document gives it (`tables`: Table objects)."""
    written: Callable[[Any], Any] | None = None
    """How a held value is written back into a document: the inverse of `held`."""

    @property
    def path(self) -> str:
        return self.attribute or self.name

    def read(self, obj: Any) -> Any:
        """This setting's value on a config object."""
        return functools.reduce(getattr, self.path.split("."), obj)

    def problems(self, value: Any) -> list[str]:
        """Why `value` cannot be this setting's value (empty: it can); the caller prefixes where it is.

        None is "not set" for a setting whose default is None, and a missing required value is reported by
        whoever read the document (it knows whether the key was absent), so neither is a problem here.
        """
        if value is None and (self.default is None or self.default is REQUIRED):
            return []
        if self.type is bool:
            return [] if isinstance(value, bool) else ["must be true or false"]
        if self.low is not None and self.high is not None:
            problem = _number_problem(value, self.low, self.high, whole=self.type is int)
            if problem:
                return [problem]
        found = self.check(value) if self.check else []
        if not found and self.choices and value not in self.choices:
            found = [f"{value!r} is not one of {', '.join(str(c) for c in self.choices)}"]
        return found

    def stored(self, value: Any) -> Any:
        """The value as the config object holds it: JSON lists become tuples, so the object stays frozen."""
        if self.held is not None:
            return self.held(value)
        return tuple(value) if self.type is list else value

    def document(self, value: Any) -> Any:
        """A held value as a document writes it (the inverse of `stored`)."""
        if self.written is not None:
            return self.written(value)
        return list(value) if isinstance(value, tuple) else value

    def default_text(self) -> str:
        return _shown(self.default, self.unit)

    def range_text(self) -> str:
        if self.choices:
            return ", ".join(_shown(c, self.unit) for c in self.choices)
        if self.low is None or self.high is None:
            return ""
        return f"{_shown(self.low, self.unit)} to {_shown(self.high, self.unit)}"


def markdown_table(
    settings: Iterable[Setting], headers: Sequence[str] = ("field", "default", "range", "meaning")
) -> str:
    """A settings table as the docs show it; tests hold the README and docs/deploy.md to exactly this text."""
    rows = [list(headers), ["---"] * len(headers)]
    rows += [[f"`{s.name}`", s.default_text(), s.range_text(), s.doc] for s in settings]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def _number_problem(value: Any, low: float, high: float, *, whole: bool) -> str | None:
    # bool is an int to Python, but `true` for a number is a mistake; NaN would pass every comparison.
    if isinstance(value, bool) or not isinstance(value, int if whole else int | float) or value != value:
        kind = "a whole number" if whole else "a number"
        return f"must be {kind} between {_number(low)} and {_number(high)}, got {value!r}"
    if not low <= value <= high:
        return f"must be between {_number(low)} and {_number(high)}, got {_number(value)}"
    return None


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _shown(value: Any, unit: str = "") -> str:
    """A value as the documentation writes it: JSON in code style, sizes and durations in their units."""
    if value is REQUIRED:
        return "required"
    if value is None:
        return "none"
    if isinstance(value, bool | list | tuple) or value == "":
        return f"`{json.dumps(list(value) if isinstance(value, tuple) else value)}`"
    if isinstance(value, str):
        return f"`{value}`"
    if unit == "bytes":
        for size, name in ((TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
            if value >= size and value % size == 0:
                return f"{value // size} {name}"
    if unit == "seconds" and value >= DAY and value % DAY == 0:
        return f"{value // DAY} day{'s' if value > DAY else ''}"
    return _number(value)


# ---- single values -------------------------------------------------------------------------------------------


def bucket_name_problem(bucket: str) -> str | None:
    """Why `bucket` is not an S3 bucket name, or None.

    The runtime and the stack both check names before anything talks to S3, so a URI or an ARN pasted where
    a name belongs is caught with a hint instead of failing later as an opaque S3 error.
    """
    if _BUCKET_NAME.match(bucket):
        return None
    return (
        f"{bucket!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, '.' or '-'); "
        "give the name, not an ARN or s3:// URI"
    )


def did_you_mean(name: str, known: Iterable[str], listing: str = "allowed") -> str:
    """The tail of an "unknown name" message: the closest known name, or else all of them under `listing`.

    A misspelt optional field would otherwise fall back to its default without a word; naming the likely
    intended one makes the fix obvious.
    """
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; {listing}: {', '.join(names)}"


def template_problems(template: str) -> list[str]:
    """Why a key template cannot work (empty list: it can)."""
    problems = []
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as err:
        return [f"{template!r} is malformed ({err}); write literal braces as '{{{{' and '}}}}'"]
    used: set[str] = set()
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            problems.append(
                f"unknown placeholder {{{name}}}; known: " + ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            )
        elif spec or conversion:
            problems.append(f"placeholder {{{name}}} takes no format spec or conversion")
        used.add(name)
    if "date" not in used and not {"yyyy", "mm", "dd"} <= used:
        problems.append("must contain {date} (or {yyyy}, {mm} and {dd}) so each night lands in its own partition")
    distinct = "path" in used or ("dir" in used and ("name" in used or {"stem", "ext"} <= used))
    if not distinct:
        problems.append(
            "must keep distinct source files distinct: use {path}, or {dir} with {name} (or {stem} and {ext})"
        )
    return problems


_UNSAFE_WHY = {
    DotSegment: "a '.' or '..' segment, which could leave target.prefix",
    InLedger: f"inside the reserved ledger prefix {LEDGER_ROOT!r}",
    KeyTooLong: "over S3's 1,024-byte key limit",
}


def landing_problems(dataset: str, template: str, target_prefix: str, tables: TablePatterns = ()) -> list[str]:
    """Why `template` under `target_prefix` would refuse or merge ordinary files (empty list: it would not).

    A template that passes the syntax check can still skip every object as unsafe, every night, with exit 0;
    rendering TEMPLATE_SAMPLE_KEYS the way the planner will turns that into a config error before any run.
    Each message starts with the field name; the caller says which dataset.
    """
    landed: dict[str, str] = {}
    collisions: list[tuple[str, str, str]] = []
    for sample in TEMPLATE_SAMPLE_KEYS:
        try:
            key = render_target_key(
                template,
                target_prefix,
                dataset=dataset,
                relative=sample,
                run_date=TEMPLATE_SAMPLE_DATE,
                run_id=TEMPLATE_SAMPLE_RUN_ID,
                tables=tables,
            )
        except AmbiguousTable as err:
            return [f"tables: an ordinary key such as {sample!r} would fail: {err}"]
        except UnsafeKey as err:
            why = next((text for kind, text in _UNSAFE_WHY.items() if isinstance(err, kind)), str(err))
            return [
                f"key_template: {template!r} cannot land ordinary files (each would be skipped or fail): for the "
                f"source key {_shortened(sample)} it renders {_shortened(err.rendered or '')}, {why}; write it "
                f"with plain folder names and placeholders, outside {LEDGER_ROOT!r}, e.g. the default "
                f"{DEFAULT_KEY_TEMPLATE!r}"
            ]
        except (KeyError, IndexError, ValueError, AttributeError):
            return []  # malformed: template_problems says why
        if key in landed:
            collisions.append((landed[key], sample, key))
        landed.setdefault(key, sample)
    if not collisions or template_problems(template):
        return []  # a template without a file name part is refused once, by the syntax check
    first, second, key = collisions[0]
    return [
        f"key_template: {template!r} lands different files on one key: {first!r} and {second!r} both render "
        f"{key!r}; separate {{dir}} from the file name with '/' (e.g. {{dir}}/{{date}}/{{name}}) or use {{path}}"
    ]


def _shortened(key: str, keep: int = 100) -> str:
    """A key quoted for a message, its middle cut when long: the message stays readable, the shape visible."""
    if len(key) <= keep:
        return repr(key)
    return f"{key[: keep // 2]!r}...{key[-keep // 2 :]!r} ({len(key.encode('utf-8'))} bytes)"


def parse_run_date(text: Any) -> Date:
    """A run's date from text; only YYYY-MM-DD, since Python 3.11 would also read `20261127` or `2026-W48-5`."""
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"{text!r} is not YYYY-MM-DD")
    try:
        return Date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not YYYY-MM-DD (no such day)") from None


def _valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _key_template_problems(template: Any) -> list[str]:
    if not isinstance(template, str) or not template.strip():
        return ["must be a non-empty string"]
    return template_problems(template)


def _patterns_problems(patterns: Any) -> list[str]:
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        return ['must be a list of non-empty glob patterns, e.g. ["*.csv"]']
    return []


def _include_problems(patterns: Any) -> list[str]:
    if patterns == []:
        return ["an empty list would include nothing; omit it to include everything"]
    return _patterns_problems(patterns)


def _timezone_problems(name: Any) -> list[str]:
    if isinstance(name, str) and _valid_timezone(name):
        return []
    return [f"{name!r} is not an IANA time zone name (e.g. 'UTC', 'America/Chicago')"]


def _topic_arn_problems(arn: Any) -> list[str]:
    if isinstance(arn, str) and arn.startswith("arn:"):
        return []
    return ["must be an SNS topic ARN (arn:aws:sns:...) or omitted"]


_KEY_ID = r"(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
_KMS_KEY_ARN = re.compile(rf"^arn:aws[a-z-]*:kms:[a-z]{{2}}(?:-[a-z]+)+-\d+:\d{{12}}:key/{_KEY_ID}$")
_KMS_KEY_SHAPE = "arn:<partition>:kms:<region>:<12-digit account>:key/<key id>"
# Why a key ARN and nothing shorter (AWS KMS developer guide, "Specifying KMS keys in IAM policy statements"):
# an IAM policy names a key only by its key ARN, never by a key id, an alias name or an alias ARN.
_WHY_KEY_ARN = "an IAM policy can allow a key (above all one of another account) only by its key ARN"


def kms_key_arn_problems(arn: Any) -> list[str]:
    """Why `arn` cannot name the KMS key a source (or its inventory reports) is encrypted with (empty: it can).

    The stack puts the value in the Resource of the function role's kms:Decrypt statement, where only a key ARN
    matches the key: an alias or a bare key id would deploy a statement that allows nothing, and every object
    would fail with AccessDenied at night. Each wrong form is named, with the form that works.
    """
    if isinstance(arn, str) and _KMS_KEY_ARN.match(arn):
        return []
    if not isinstance(arn, str):
        return [f"must be a KMS key ARN ({_KMS_KEY_SHAPE}), got {arn!r}"]
    if arn.startswith("alias/") or re.match(r"^arn:[^:]*:kms:[^:]*:[^:]*:alias/", arn):
        what = "an alias, not a key ARN"
    elif re.fullmatch(_KEY_ID, arn):
        what = "a key id, not a key ARN"
    else:
        what = "not a KMS key ARN"
    return [
        f"{arn!r} is {what}: give the key's full ARN, {_KMS_KEY_SHAPE} (`aws kms describe-key --key-id <alias or "
        f"id> --query KeyMetadata.Arn`, run in the key's account), because {_WHY_KEY_ARN}"
    ]


def _schedule_problems(expression: Any) -> list[str]:
    problem = schedule_problem(expression)
    return [problem] if problem else []


# ---- tables: one folder (and catalog table) per kind of file --------------------------------------------------

TABLE_FORMATS = ("csv", "json", "parquet")
HIVE_TYPES = ("string", "boolean", "tinyint", "smallint", "int", "bigint", "float", "double", "date", "timestamp")
QUOTED_CSV_TYPES = ("string", "boolean", "int", "bigint", "double")
"""The only types OpenCSVSerde (quoted CSV) parses; others come back wrong or fail, so they are refused."""
_PARAMETRISED_TYPE = re.compile(r"^(decimal\(\d{1,2}(,\s*\d{1,2})?\)|varchar\(\d{1,5}\)|char\(\d{1,3}\)|decimal)$")
_NESTED_TYPE = re.compile(r"^(array|map|struct)<.+>$")
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TABLE_FIELDS = ("pattern", "format", "columns", "header", "delimiter", "quoted")
_CSV_ONLY = ("header", "delimiter", "quoted")
_COLUMN_FIELDS = ("name", "type", "comment")


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
        return document


def glue_table_name(dataset: str, table: str) -> str:
    """The catalog name of a dataset's table: one database holds every dataset's tables, so the dataset is in it."""
    return f"{dataset}_{table}".replace("-", "_")


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
    options = {key: spec[key] for key in ("format", "header", "delimiter", "quoted") if key in spec}
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


def _tables_problems(value: Any) -> list[str]:
    return read_tables(value)[1]


def _held_tables(value: Any) -> tuple[Table, ...]:
    return read_tables(value)[0]


def _written_tables(tables: tuple[Table, ...]) -> dict[str, Any]:
    return {table.name: table.to_document() for table in tables}


def table_layout_problems(
    dataset: str, template: str, target_prefix: str, tables: tuple[Table, ...] | None, *, tables_given: bool
) -> list[str]:
    """Why a dataset's key_template and tables do not fit together (empty: they do); each starts with its field.

    `{table}` needs tables to say what it renders; tables need `{table}`, or every table would land in one
    folder; a described table needs its folder to be one location with `ingest_date=` partitions under it.
    """
    uses_table = "table" in placeholders(template)
    if uses_table and not tables_given:
        return [
            f"key_template: {template!r} uses {{table}}, which needs the dataset's tables (table name -> glob "
            'pattern(s), e.g. {"ratings": "ratings*.csv"}); add tables or remove {table}'
        ]
    if tables_given and not uses_table:
        return [
            f"tables: key_template {template!r} has no {{table}}, so every table would land in one folder; add "
            f"{{table}} (the default with tables is {DEFAULT_TABLE_KEY_TEMPLATE!r}) or remove tables"
        ]
    problems = []
    for table in tables or ():
        if not table.described:
            continue
        try:
            table_folder(template, target_prefix, dataset=dataset, table=table.name)
        except ValueError as err:
            problems.append(
                f"tables.{table.name}.columns: the table is described, but key_template {template!r} gives it no one "
                f"location to create its catalog table at: {err}. Write its folders as fixed text and {{table}} "
                f"followed by {PARTITION_SEGMENT!r}, e.g. {DEFAULT_TABLE_KEY_TEMPLATE!r}"
            )
    return problems


# ---- the dataset fields --------------------------------------------------------------------------------------

DATASET_FIELDS: tuple[Setting, ...] = (
    Setting("source.bucket", str, REQUIRED, "where the files are: the source bucket's name."),
    Setting(
        "source.prefix",
        str,
        "",
        "the key prefix the files are under. A prefix is a folder: `movielens` means `movielens/`.",
    ),
    Setting(
        "source.create",
        bool,
        False,
        "Pulumi only: the stack creates this bucket (otherwise it must exist).",
        attribute="create_source",
    ),
    Setting(
        "source.kms_key_arn",
        str,
        None,
        "the KMS key the source objects are encrypted with (SSE-KMS), when it is a customer managed key other than "
        "the stack's `kmsKeyArn`, above all one of another account: the stack allows the function's role "
        "`kms:Decrypt` on it, only through S3 and only for this source's objects, and the key's owner must allow "
        "the role in the key policy too (docs/deploy.md, *Add a dataset*). Its full key ARN, not an alias or key id.",
        attribute="source_kms_key_arn",
        check=kms_key_arn_problems,
    ),
    Setting(
        "target.bucket",
        str,
        REQUIRED,
        "where files land. Must not overlap the source (same bucket with one prefix inside the other), or landed "
        "files would be ingested again. In a Pulumi stack it may be left out: it is the stack's `rawBucket`.",
    ),
    Setting(
        "target.prefix",
        str,
        "",
        "the key prefix files land under, a folder like `source.prefix`. `_ingestion/` is reserved.",
    ),
    Setting(
        "key_template",
        str,
        DEFAULT_KEY_TEMPLATE,
        f"the landed key, under `target.prefix` (see below). With `tables` the default is "
        f"`{DEFAULT_TABLE_KEY_TEMPLATE}`.",
        check=_key_template_problems,
    ),
    Setting(
        "tables",
        dict,
        None,
        "one folder (and Athena table) per kind of file: table name -> glob pattern(s) on the key relative to the "
        "source prefix (matched as `include` matches), or a description the stack creates the table from (see "
        "*Tables*). A file that matches no table lands under `_unmatched/`; one that matches two fails, naming them.",
        check=_tables_problems,
        held=_held_tables,
        written=_written_tables,
    ),
    Setting(
        "include",
        list,
        ("*",),
        "glob patterns on the key relative to the source prefix; an object must match one. Case-sensitive; `*` "
        "also matches `/` (as in `aws s3 cp --include`).",
        check=_include_problems,
    ),
    Setting(
        "exclude",
        list,
        (),
        "glob patterns like `include`; an object that matches one is left out.",
        check=_patterns_problems,
    ),
    Setting(
        "timezone",
        str,
        "UTC",
        "IANA zone that decides which date a run belongs to (a run at 20:00 in `America/Chicago` is that day).",
        check=_timezone_problems,
    ),
    Setting("concurrency", int, 32, "parallel copies; the S3 connection pool is sized to it.", 1, 1024),
    Setting(
        "source_metadata",
        str,
        "carry",
        "what a landed object keeps of its source besides our lineage metadata. `carry`: the source's "
        "Content-Type, Content-Encoding, Content-Disposition, Content-Language, Cache-Control and user metadata, "
        "read with a HEAD of each object. `lineage`: none of them and no HEAD before the copy (one request an "
        "object instead of two for a plain source, whose copy's ETag verifies it: about a fifth less time on a "
        "night of small files; an SSE-KMS or other source whose ETag is no MD5 is read after its copy, to "
        "compare checksums); the Content-Type comes from the key's extension. Either way the copy is guarded by "
        "the listed ETag and verified (README: what is verified how).",
        choices=("carry", "lineage"),
    ),
    Setting(
        "lock_ttl_seconds",
        int,
        900,
        "a dead run's lock is taken over after this long, by S3's clock; a live run renews it every third of it.",
        1,
        7 * DAY,
        unit="seconds",
    ),
    Setting(
        "min_age_seconds",
        int,
        0,
        "objects modified more recently are left for the next run (a producer may still be writing its set); ages are "
        "S3's LastModified against S3's time, not this machine's.",
        0,
        365 * DAY,
        unit="seconds",
    ),
    Setting(
        "multipart_threshold_bytes",
        int,
        256 * MiB,
        "objects this size or larger are copied as parallel multipart copies.",
        5 * MiB,
        5 * GiB,
        unit="bytes",
    ),
    Setting(
        "multipart_chunk_bytes",
        int,
        64 * MiB,
        "the part size of those multipart copies.",
        5 * MiB,
        5 * GiB,
        unit="bytes",
    ),
    Setting(
        "batch_max_objects",
        int,
        1000,
        "how plans are cut into batches: at most this many objects a batch. Each batch is one Lambda invocation, "
        "sized to finish well inside 15 minutes.",
        1,
        100_000,
    ),
    Setting(
        "batch_max_bytes",
        int,
        100 * GiB,
        "how plans are cut into batches: at most this many bytes a batch.",
        1,
        5 * TiB,
        unit="bytes",
    ),
    Setting(
        "shard_max_keys",
        int,
        500_000,
        "how a large dataset is cut: a shard holds at most this many keys of the state, and one plan invocation "
        "lists at most this many keys before handing the rest of its range to another. Bounds each plan and "
        "finalize invocation's time, memory and `/tmp` (about 600 bytes a key) whatever the dataset's size.",
        1_000,
        5_000_000,
    ),
    Setting(
        "inventory.bucket",
        str,
        None,
        "plan from the source bucket's S3 Inventory report instead of listing it (docs/inventory.md): the bucket "
        "the CSV reports are delivered to. No bucket: the source is listed.",
        attribute="inventory_bucket",
        check=lambda bucket: [p] if (p := bucket_name_problem(bucket)) else [],
    ),
    Setting(
        "inventory.prefix",
        str,
        None,
        "where that inventory's reports are: `<destination prefix>/<source bucket>/<inventory id>/`; each run plans "
        "from the newest delivered report.",
        attribute="inventory_prefix",
    ),
    Setting(
        "inventory.sorted",
        bool,
        False,
        "read the report as sorted by key (AWS does not promise it): a shard reads only the report files that "
        "can hold its keys; a key out of order stops the plan, naming the file. Off: every shard reads the whole "
        "report.",
        attribute="inventory_sorted",
    ),
    Setting(
        "inventory.kms_key_arn",
        str,
        None,
        "the KMS key the inventory reports are encrypted with, when the inventory configuration encrypts them with "
        "a customer managed key (SSE-KMS): allowed to the function's role like `source.kms_key_arn`, for the "
        "reports' prefix only (docs/inventory.md). Its full key ARN.",
        attribute="inventory_kms_key_arn",
        check=kms_key_arn_problems,
    ),
    Setting(
        "topic_arn",
        str,
        None,
        "SNS topic for run notifications (also `--topic-arn` or `SNS_TOPIC_ARN`). No topic: no message, no error.",
        check=_topic_arn_problems,
    ),
    Setting(
        "schedule",
        str,
        DEFAULT_SCHEDULE,
        "Pulumi only: EventBridge Scheduler expression (`cron(...)`, `rate(...)` or `at(...)`, checked as AWS checks "
        "them: `handler/schedules.py`), in the dataset's `timezone`.",
        check=_schedule_problems,
    ),
)
"""Every field of a dataset config, in the order the README lists them and the parser reports problems."""

_FIELD = {s.name: s for s in DATASET_FIELDS}
# Fields held directly by DatasetConfig; the rest are the bucket and prefix of its two Locations.
_PLAIN_FIELDS = {s.path: s for s in DATASET_FIELDS if "." not in s.path}
_INVENTORY = "inventory"
_DATASET_FIELDS = frozenset(s.name.partition(".")[0] for s in DATASET_FIELDS)
_LOCATION_FIELDS = {
    which: frozenset(s.name.partition(".")[2] for s in DATASET_FIELDS if s.name.startswith(which + "."))
    for which in ("source", "target")
}


def _default(name: str) -> Any:
    return _FIELD[name].default


@dataclass(frozen=True)
class Location:
    """A bucket and a key prefix; the prefix is empty or ends with `/`."""

    bucket: str
    prefix: str = ""

    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset: where its files are, where they land, and how the run behaves (defaults: DATASET_FIELDS)."""

    name: str
    source: Location
    target: Location
    key_template: str = _default("key_template")
    tables: tuple[Table, ...] | None = _default("tables")
    include: tuple[str, ...] = _default("include")
    exclude: tuple[str, ...] = _default("exclude")
    timezone: str = _default("timezone")
    concurrency: int = _default("concurrency")
    source_metadata: str = _default("source_metadata")
    lock_ttl_seconds: int = _default("lock_ttl_seconds")
    min_age_seconds: int = _default("min_age_seconds")
    multipart_threshold_bytes: int = _default("multipart_threshold_bytes")
    multipart_chunk_bytes: int = _default("multipart_chunk_bytes")
    batch_max_objects: int = _default("batch_max_objects")
    batch_max_bytes: int = _default("batch_max_bytes")
    shard_max_keys: int = _default("shard_max_keys")
    inventory_bucket: str | None = _default("inventory.bucket")
    inventory_prefix: str | None = _default("inventory.prefix")
    inventory_sorted: bool = _default("inventory.sorted")
    inventory_kms_key_arn: str | None = _default("inventory.kms_key_arn")
    topic_arn: str | None = _default("topic_arn")
    schedule: str = _default("schedule")
    create_source: bool = _default("source.create")
    source_kms_key_arn: str | None = _default("source.kms_key_arn")

    @property
    def inventory(self) -> Location | None:
        """Where the source's inventory reports are, when the dataset plans from them."""
        if self.inventory_bucket is None:
            return None
        return Location(self.inventory_bucket, normalise_prefix(self.inventory_prefix or "") or "")

    @property
    def table_patterns(self) -> TablePatterns:
        """Each table's name and patterns, as the key layout matches them."""
        return tuple((table.name, table.patterns) for table in self.tables or ())

    def table_folder(self, table: Table) -> str:
        """The key prefix (in the target bucket) that `table`'s files land under, above its partition folders."""
        return table_folder(self.key_template, self.target.prefix, dataset=self.name, table=table.name)

    @property
    def ledger_prefix(self) -> str:
        """Where this dataset's ledger lives in the target bucket."""
        return f"{LEDGER_ROOT}{self.name}/"

    def to_dict(self) -> dict[str, Any]:
        """The normalised config with defaults filled in: what the stack writes for the Lambda to read.

        A field left unset (no topic) is left out, so the document reads back to an equal dataset.
        """
        document: dict[str, Any] = {}
        for setting in DATASET_FIELDS:
            value = setting.read(self)
            if setting.default is None and not value:
                continue
            if setting.name.startswith("inventory.") and self.inventory_bucket is None:
                continue
            parent, _, leaf = setting.name.rpartition(".")
            (document.setdefault(parent, {}) if parent else document)[leaf] = setting.document(value)
        return document


@dataclass(frozen=True)
class ProcessConfig:
    """All datasets of one config document."""

    datasets: Mapping[str, DatasetConfig]

    def dataset(self, name: str) -> DatasetConfig:
        try:
            return self.datasets[name]
        except KeyError:
            known = ", ".join(sorted(self.datasets)) or "none"
            raise UnknownDataset(
                f"dataset {name!r} is not in the config (known datasets: {known}); "
                "check the name or add it under 'datasets'"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return {"datasets": {name: ds.to_dict() for name, ds in self.datasets.items()}}


def parse_config(data: Any) -> ProcessConfig:
    """Validate a whole config document; raise ConfigError listing every problem found."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise ConfigError("the config must be a JSON object with a 'datasets' object")
    for key in data:
        if key != "datasets":
            problems.append(f"unknown top-level field {key!r} (only 'datasets' is allowed)")
    raw_datasets = data.get("datasets")
    if not isinstance(raw_datasets, Mapping) or not raw_datasets:
        problems.append("'datasets' must be a non-empty object of dataset name -> dataset config")
        raise ConfigError(problems)
    datasets: dict[str, DatasetConfig] = {}
    for name, raw in raw_datasets.items():
        ds = _parse_dataset(str(name), raw, problems)
        if ds is not None:
            datasets[ds.name] = ds
    problems.extend(_catalog_name_problems(datasets.values()))
    if problems:
        raise ConfigError(problems)
    return ProcessConfig(datasets=datasets)


def _catalog_name_problems(datasets: Iterable[DatasetConfig]) -> list[str]:
    """Described tables of all datasets share one catalog database: two that would get one name are refused."""
    owners: dict[str, str] = {}
    problems = []
    for ds in datasets:
        for table in ds.tables or ():
            if not table.described:
                continue
            name = glue_table_name(ds.name, table.name)
            owner = f"datasets.{ds.name}.tables.{table.name}"
            if name in owners:
                problems.append(
                    f"{owner}: its catalog table would be named {name!r}, as {owners[name]}'s is; rename one of them"
                )
            owners.setdefault(name, owner)
    return problems


def parse_config_text(text: str, origin: str = "config") -> ProcessConfig:
    """Parse JSON text; a syntax error names the origin, line and column.

    Two things plain `json.loads` lets through are refused here, naming the origin: a key given twice in
    one object (json keeps the last without a word, so a dataset pasted twice silently loses its first
    definition), and nesting so deep that the decoder runs out of stack (a RecursionError, not a message).
    """
    try:
        data = json.loads(text, object_pairs_hook=_JSONObject.of)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{origin} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from err
    except RecursionError as err:
        raise ConfigError(
            f"{origin} nests arrays or objects too deeply to be a config (one is 5 levels deep at most); "
            "check that it is the process config"
        ) from err
    duplicates = [
        f"{origin}: {path} is given twice (JSON keeps only the last); remove or rename one of them"
        for path in _duplicate_paths(data)
    ]
    try:
        config = parse_config(data)
    except ConfigError as err:
        raise ConfigError(duplicates + err.problems) from err
    if duplicates:
        raise ConfigError(duplicates)
    return config


class _JSONObject(dict):  # type: ignore[type-arg]
    """A decoded JSON object that remembers which of its keys were given more than once."""

    duplicates: tuple[str, ...] = ()

    @classmethod
    def of(cls, pairs: list[tuple[str, Any]]) -> _JSONObject:
        obj = cls()
        duplicates = []
        for key, value in pairs:
            if key in obj and key not in duplicates:
                duplicates.append(key)
            obj[key] = value
        obj.duplicates = tuple(duplicates)
        return obj


def _duplicate_paths(data: Any) -> Iterator[str]:
    """Dotted paths (`datasets.sales.source.bucket`, `include[0]`) of every key given twice, in document order.

    Walked with an explicit stack: the document may be as deep as the decoder allows, deeper than recursion here.
    """
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, node = stack.pop()
        children: list[tuple[str, Any]] = []
        if isinstance(node, _JSONObject):
            for key in node.duplicates:
                yield f"{path}.{key}" if path else key
            children = [(f"{path}.{key}" if path else key, value) for key, value in node.items()]
        elif isinstance(node, list):
            children = [(f"{path}[{n}]", value) for n, value in enumerate(node)]
        stack.extend(reversed(children))


def _parse_dataset(name: str, raw: Any, problems: list[str]) -> DatasetConfig | None:
    where = f"datasets.{name}"
    start = len(problems)
    if not _DATASET_NAME.match(name):
        problems.append(
            f"{where}: dataset name must be 1-63 lowercase letters, digits, '-' or '_', starting with a letter "
            "or digit (it is used in S3 keys and resource names)"
        )
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be an object")
        return None
    for key in raw:
        if key not in _DATASET_FIELDS:
            problems.append(f"{where}.{key}: unknown field{did_you_mean(key, _DATASET_FIELDS)}")

    source = _parse_location(where, "source", raw.get("source"), problems)
    target = _parse_location(where, "target", raw.get("target"), problems)
    values: dict[str, Any] = {}
    for setting in _PLAIN_FIELDS.values():
        parent, _, leaf = setting.name.rpartition(".")
        given = raw.get(parent) if parent else raw
        if not isinstance(given, Mapping) or leaf not in given:
            continue
        _take(setting, given[leaf], f"{where}.", problems, values)

    problems.extend(f"{where}.{p}" for p in _inventory_problems(raw.get(_INVENTORY)))
    if source and target:
        problems.extend(f"{where}: {p}" for p in _overlap_problems(name, source, target))
    tables_given = raw.get("tables") is not None
    template = raw.get("key_template", DEFAULT_TABLE_KEY_TEMPLATE if tables_given else DEFAULT_KEY_TEMPLATE)
    if tables_given and "key_template" not in raw:
        values["key_template"] = template
    if target and isinstance(template, str) and template.strip():
        problems.extend(
            f"{where}.{p}"
            for p in _layout_problems(name, template, target.prefix, values.get("tables"), tables_given=tables_given)
        )

    if len(problems) > start or source is None or target is None:
        return None
    return DatasetConfig(name=name, source=source, target=target, **values)


def _layout_problems(
    dataset: str, template: str, target_prefix: str, tables: tuple[Table, ...] | None, *, tables_given: bool
) -> list[str]:
    """How `template` fits its tables, then what it does to ordinary keys: one check for a document and overrides."""
    try:
        placeholders(template)
    except ValueError:
        return []  # malformed: template_problems says why
    problems = table_layout_problems(dataset, template, target_prefix, tables, tables_given=tables_given)
    patterns = tuple((table.name, table.patterns) for table in tables or ())
    return problems or landing_problems(dataset, template, target_prefix, patterns)


def _inventory_problems(raw: Any) -> list[str]:
    """The inventory section is all or nothing: a prefix or `sorted` without a bucket would silently list."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return [f'{_INVENTORY}: must be an object: {{"bucket": ..., "prefix": ...}}']
    allowed = sorted(s.name.partition(".")[2] for s in DATASET_FIELDS if s.name.startswith(_INVENTORY + "."))
    problems = [f"{_INVENTORY}.{key}: unknown field{did_you_mean(key, allowed)}" for key in raw if key not in allowed]
    if not raw.get("bucket"):
        problems.append(f"{_INVENTORY}.bucket: missing; give the bucket the inventory reports are delivered to")
    if not isinstance(raw.get("prefix"), str) or not raw["prefix"].strip("/"):
        problems.append(
            f"{_INVENTORY}.prefix: missing; give the reports' prefix, `<destination prefix>/<source bucket>/"
            "<inventory id>/` (docs/inventory.md)"
        )
    return problems


def _parse_location(where: str, which: str, raw: Any, problems: list[str]) -> Location | None:
    if raw is None:
        problems.append(f'{where}.{which}: missing; give {{"bucket": ..., "prefix": ...}}')
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"{where}.{which}: must be an object with 'bucket' and optional 'prefix'")
        return None
    ok = True
    allowed = _LOCATION_FIELDS[which]
    for key in raw:
        if key not in allowed:
            problems.append(f"{where}.{which}.{key}: unknown field{did_you_mean(key, allowed)}")
            ok = False
    bucket = raw.get("bucket")
    if not isinstance(bucket, str) or not bucket:
        problems.append(f"{where}.{which}.bucket: missing or empty; give the bucket name")
        ok = False
    elif problem := bucket_name_problem(bucket):
        problems.append(f"{where}.{which}.bucket: {problem}")
        ok = False
    prefix = raw.get("prefix", _default(f"{which}.prefix"))
    if not isinstance(prefix, str):
        problems.append(f"{where}.{which}.prefix: must be a string")
        ok = False
    else:
        prefix = normalise_prefix(prefix)
        if prefix is None:
            problems.append(
                f"{where}.{which}.prefix: {raw.get('prefix')!r} has an empty, '.' or '..' segment; "
                "write it as 'folder/sub/'"
            )
            ok = False
        elif which == "target" and prefix.startswith(LEDGER_ROOT):
            problems.append(f"{where}.target.prefix: {LEDGER_ROOT!r} is reserved for the ledger; choose another")
            ok = False
    return Location(bucket=bucket, prefix=prefix) if ok else None


def normalise_prefix(prefix: str) -> str | None:
    """`a/b` and `/a/b/` mean `a/b/`; a prefix with `.`/`..`/empty inner segments is refused (None)."""
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    segments = stripped.split("/")
    if any(s in ("", ".", "..") for s in segments):
        return None
    return stripped + "/"


def _overlap_problems(name: str, source: Location, target: Location) -> list[str]:
    if source.bucket != target.bucket:
        return []
    problems = []
    if source.prefix.startswith(target.prefix) or target.prefix.startswith(source.prefix):
        problems.append(
            f"target s3://{target.bucket}/{target.prefix} overlaps source s3://{source.bucket}/{source.prefix}: "
            "landed files would be ingested again on the next run; use another bucket or disjoint prefixes"
        )
    if source.prefix.startswith(LEDGER_ROOT):
        problems.append(f"source.prefix: {LEDGER_ROOT!r} is the ledger of the target bucket; choose another")
    return problems


def with_overrides(dataset: DatasetConfig, **fields: Any) -> DatasetConfig:
    """`dataset` with some fields replaced, each checked exactly as the same field in a config document is.

    The CLI's options (`--concurrency`, `--topic-arn`) override the config; replacing fields directly would
    skip the checks the config gets, and a concurrency of 5000 would size a 5000-connection pool. Fields are
    named as DatasetConfig names them (`create_source` for `source.create`) and take the values a document
    would hold (a list of patterns as a list or a tuple). Every problem is reported at once in one
    ConfigError, each naming its field as the config does: `concurrency: must be between 1 and 1024, got 5000`.
    A name that is not an overridable field (`source`, `target`, a typo) is a programming error: TypeError.
    """
    unknown = [name for name in fields if name not in _PLAIN_FIELDS]
    if unknown:
        raise TypeError(
            f"with_overrides: {', '.join(unknown)} cannot be overridden; fields that can: {', '.join(_PLAIN_FIELDS)}"
        )
    problems: list[str] = []
    values: dict[str, Any] = {}
    for attribute, value in fields.items():
        _take(_PLAIN_FIELDS[attribute], list(value) if isinstance(value, tuple) else value, "", problems, values)
    if not problems and ("key_template" in values or "tables" in values):
        tables = values.get("tables", dataset.tables)
        template = values.get("key_template", dataset.key_template)
        problems.extend(
            _layout_problems(dataset.name, template, dataset.target.prefix, tables, tables_given=tables is not None)
        )
    if problems:
        raise ConfigError(problems)
    return dataclasses.replace(dataset, **values)


def _take(setting: Setting, value: Any, where: str, problems: list[str], values: dict[str, Any]) -> None:
    """Check one given value: keep it as the config object holds it, or record why it cannot be."""
    found = setting.problems(value)
    # A problem about a part of the value starts with its path (`.ratings.pattern: ...`): one dotted path.
    problems.extend(f"{where}{setting.name}{'' if p.startswith(('.', '[')) else ': '}{p}" for p in found)
    if not found:
        values[setting.path] = setting.stored(value)
