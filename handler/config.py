"""The process config: the dataset fields, the dataset type, and the parser that checks a document as a whole.

A config is validated as a whole before anything is copied, and every problem is reported at once with
the dataset and field it belongs to, so a typo in a nightly config fails loudly at deploy time instead of
half-way through a run.

Every dataset field is one row of `DATASET_FIELDS` (a settings.Setting): its name, type, default, range and
doc are written there and nowhere else. The `DatasetConfig` defaults, the parser's checks, `with_overrides`
and the README's field table (`settings.markdown_table`) are all read from it, so they cannot drift apart.
The rules a field's value must follow are in the modules named for them: naming.py (datasets, buckets, time
zones, ARNs), templates.py (key templates), columns.py (tables) and schedules.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date as Date
from typing import Any

from .columns import Table, glue_table_name, read_tables, table_patterns
from .errors import ConfigError, UnknownDataset
from .layout import LEDGER_ROOT, TablePatterns, table_folder
from .naming import (
    bucket_name_problem,
    bucket_problems,
    dataset_name_problem,
    did_you_mean,
    glue_database_problems,
    kms_key_arn_problems,
    timezone_problems,
    topic_arn_problems,
)
from .schedules import EXAMPLE as DEFAULT_SCHEDULE
from .schedules import schedule_problem
from .settings import DAY, REQUIRED, GiB, MiB, Setting, TiB
from .templates import DEFAULT_KEY_TEMPLATE, DEFAULT_TABLE_KEY_TEMPLATE, key_template_problems, layout_problems

# ---- the dataset fields --------------------------------------------------------------------------------------


def _patterns_problems(patterns: Any) -> list[str]:
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        return ['must be a list of non-empty glob patterns, e.g. ["*.csv"]']
    return []


def _include_problems(patterns: Any) -> list[str]:
    if patterns == []:
        return ["an empty list would include nothing; omit it to include everything"]
    return _patterns_problems(patterns)


def _schedule_problems(expression: Any) -> list[str]:
    problem = schedule_problem(expression)
    return [problem] if problem else []


def _tables_problems(value: Any) -> list[str]:
    return read_tables(value)[1]


def _held_tables(value: Any) -> tuple[Table, ...]:
    return read_tables(value)[0]


def _written_tables(tables: tuple[Table, ...]) -> dict[str, Any]:
    return {table.name: table.to_document() for table in tables}


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
        check=key_template_problems,
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
        check=timezone_problems,
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
        check=bucket_problems,
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
        check=topic_arn_problems,
    ),
    Setting(
        "schedule",
        str,
        DEFAULT_SCHEDULE,
        "Pulumi only: EventBridge Scheduler expression (`cron(...)`, `rate(...)` or `at(...)`, checked as AWS checks "
        "them: `handler/schedules.py`), in the dataset's `timezone`.",
        check=_schedule_problems,
    ),
    Setting(
        "glue_database",
        str,
        None,
        "the Glue database whose tables (this dataset's described tables, the ledger's `manifest` and `runs`) get "
        "each committed night's partitions registered, for Spark, EMR and Redshift Spectrum (Athena projects them "
        "anyway): also `--glue-database` or `GLUE_DATABASE`, which a stack's function has. No database: none are "
        "registered (README: *Partitions for every engine*).",
        check=glue_database_problems,
    ),
    Setting(
        "check_schema",
        bool,
        True,
        "check each file of a described csv or json table against its declared columns before it lands: one "
        "ranged GET of its first 64 KiB (README *Schema contracts*); what a drifted file does is its table's "
        "`on_schema_drift`. Off: no GET, nothing checked.",
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


# ---- the dataset type ----------------------------------------------------------------------------------------


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
    glue_database: str | None = _default("glue_database")
    check_schema: bool = _default("check_schema")

    @property
    def inventory(self) -> Location | None:
        """Where the source's inventory reports are, when the dataset plans from them."""
        if self.inventory_bucket is None:
            return None
        return Location(self.inventory_bucket, normalise_prefix(self.inventory_prefix or "") or "")

    @property
    def table_patterns(self) -> TablePatterns:
        """Each table's name and patterns, as the key layout matches them."""
        return table_patterns(self.tables)

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


# ---- parsing -------------------------------------------------------------------------------------------------


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
    if problem := dataset_name_problem(name):
        problems.append(f"{where}: {problem}")
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
            for p in layout_problems(name, template, target.prefix, values.get("tables"), tables_given=tables_given)
        )

    if len(problems) > start or source is None or target is None:
        return None
    return DatasetConfig(name=name, source=source, target=target, **values)


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
            layout_problems(dataset.name, template, dataset.target.prefix, tables, tables_given=tables is not None)
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


def parse_run_date(text: Any) -> Date:
    """A run's date from text; only YYYY-MM-DD, since Python 3.11 would also read `20261127` or `2026-W48-5`."""
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"{text!r} is not YYYY-MM-DD")
    try:
        return Date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not YYYY-MM-DD (no such day)") from None
