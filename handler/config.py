"""The process config: one schema for the runtime and the Pulumi stack config.

A config is validated as a whole before anything is copied, and every problem is reported at once with
the dataset and field it belongs to, so a typo in a nightly config fails loudly at deploy time instead of
half-way through a run.
"""

from __future__ import annotations

import difflib
import json
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError, UnknownDataset

LEDGER_ROOT = "_ingestion/"
"""Reserved prefix of every target bucket: the ledger lives under `_ingestion/<dataset>/`.

It starts with `_` so Hive, Athena and Spark treat it as hidden even if a table points at the bucket root.
"""

DEFAULT_KEY_TEMPLATE = "{dir}/ingest_date={date}/{name}"
DEFAULT_SCHEDULE = "cron(0 20 * * ? *)"

PLACEHOLDERS = frozenset({"dataset", "path", "dir", "name", "stem", "ext", "date", "yyyy", "mm", "dd", "run_id"})

MiB = 1024 * 1024
GiB = 1024 * MiB

_DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# S3 bucket naming rules (general purpose buckets); dots allowed but not adjacent.
_BUCKET_NAME = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?,/#-]+$")
# EventBridge wants the singular unit for 1 and the plural above it: rate(1 hour), rate(2 hours).
_RATE = re.compile(r"^rate\((?:1 (?:minute|hour|day)|(?:[2-9]|[1-9][0-9]+) (?:minutes|hours|days))\)$")


@dataclass(frozen=True)
class Location:
    """A bucket and a key prefix; the prefix is empty or ends with `/`."""

    bucket: str
    prefix: str = ""

    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset: where its files are, where they land, and how the run behaves."""

    name: str
    source: Location
    target: Location
    key_template: str = DEFAULT_KEY_TEMPLATE
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    timezone: str = "UTC"
    concurrency: int = 32
    lock_ttl_seconds: int = 900
    min_age_seconds: int = 0
    multipart_threshold_bytes: int = 256 * MiB
    multipart_chunk_bytes: int = 64 * MiB
    batch_max_objects: int = 1000
    batch_max_bytes: int = 100 * GiB
    topic_arn: str | None = None
    schedule: str = DEFAULT_SCHEDULE
    create_source: bool = False

    @property
    def ledger_prefix(self) -> str:
        """Where this dataset's ledger lives in the target bucket."""
        return f"{LEDGER_ROOT}{self.name}/"

    def to_dict(self) -> dict[str, Any]:
        """The normalised config with defaults filled in: what the stack writes for the Lambda to read."""
        return {
            "source": {
                "bucket": self.source.bucket,
                "prefix": self.source.prefix,
                "create": self.create_source,
            },
            "target": {"bucket": self.target.bucket, "prefix": self.target.prefix},
            "key_template": self.key_template,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "timezone": self.timezone,
            "concurrency": self.concurrency,
            "lock_ttl_seconds": self.lock_ttl_seconds,
            "min_age_seconds": self.min_age_seconds,
            "multipart_threshold_bytes": self.multipart_threshold_bytes,
            "multipart_chunk_bytes": self.multipart_chunk_bytes,
            "batch_max_objects": self.batch_max_objects,
            "batch_max_bytes": self.batch_max_bytes,
            **({"topic_arn": self.topic_arn} if self.topic_arn else {}),
            "schedule": self.schedule,
        }


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


# name -> (type, default, (min, max) or None). Numbers are whole numbers; bool is not accepted as int.
_INT_FIELDS: dict[str, tuple[int, int, int]] = {
    "concurrency": (32, 1, 1024),
    "lock_ttl_seconds": (900, 1, 7 * 24 * 3600),
    "min_age_seconds": (0, 0, 365 * 24 * 3600),
    "multipart_threshold_bytes": (256 * MiB, 5 * MiB, 5 * GiB),
    "multipart_chunk_bytes": (64 * MiB, 5 * MiB, 5 * GiB),
    "batch_max_objects": (1000, 1, 100_000),
    "batch_max_bytes": (100 * GiB, 1, 5 * 1024 * GiB),
}
_STR_LIST_FIELDS = ("include", "exclude")
_DATASET_FIELDS = frozenset(
    {"source", "target", "key_template", "timezone", "topic_arn", "schedule"}
    | set(_INT_FIELDS)
    | set(_STR_LIST_FIELDS)
)
_SOURCE_FIELDS = frozenset({"bucket", "prefix", "create"})
_TARGET_FIELDS = frozenset({"bucket", "prefix"})


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
    if problems:
        raise ConfigError(problems)
    return ProcessConfig(datasets=datasets)


def parse_config_text(text: str, origin: str = "config") -> ProcessConfig:
    """Parse JSON text; a syntax error names the origin, line and column."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{origin} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from err
    return parse_config(data)


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

    source = _parse_location(where, "source", raw.get("source"), _SOURCE_FIELDS, problems)
    target = _parse_location(where, "target", raw.get("target"), _TARGET_FIELDS, problems)
    create_source = False
    if isinstance(raw.get("source"), Mapping) and "create" in raw["source"]:
        create_source = raw["source"]["create"]
        if not isinstance(create_source, bool):
            problems.append(f"{where}.source.create: must be true or false")
            create_source = False

    template = raw.get("key_template", DEFAULT_KEY_TEMPLATE)
    if not isinstance(template, str) or not template.strip():
        problems.append(f"{where}.key_template: must be a non-empty string")
    else:
        problems.extend(f"{where}.key_template: {p}" for p in template_problems(template))

    lists: dict[str, tuple[str, ...]] = {}
    for key in _STR_LIST_FIELDS:
        value = raw.get(key, ["*"] if key == "include" else [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            problems.append(f'{where}.{key}: must be a list of non-empty glob patterns, e.g. ["*.csv"]')
            value = []
        lists[key] = tuple(value)
    if "include" in raw and not lists["include"]:
        problems.append(f"{where}.include: an empty list would include nothing; omit it to include everything")

    timezone = raw.get("timezone", "UTC")
    if not isinstance(timezone, str) or not _valid_timezone(timezone):
        problems.append(f"{where}.timezone: {timezone!r} is not an IANA time zone name (e.g. 'UTC', 'America/Chicago')")

    ints: dict[str, int] = {}
    for key, (default, low, high) in _INT_FIELDS.items():
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}.{key}: must be a whole number between {low} and {high}, got {value!r}")
        elif not low <= value <= high:
            problems.append(f"{where}.{key}: must be between {low} and {high}, got {value}")
        ints[key] = value if isinstance(value, int) else default

    topic_arn = raw.get("topic_arn")
    if topic_arn is not None and (not isinstance(topic_arn, str) or not topic_arn.startswith("arn:")):
        problems.append(f"{where}.topic_arn: must be an SNS topic ARN (arn:aws:sns:...) or omitted")

    schedule = raw.get("schedule", DEFAULT_SCHEDULE)
    schedule_problem = schedule_expression_problem(schedule)
    if schedule_problem:
        problems.append(f"{where}.schedule: {schedule_problem}")

    if source and target:
        problems.extend(f"{where}: {p}" for p in _overlap_problems(name, source, target))

    if len(problems) > start or source is None or target is None:
        return None
    return DatasetConfig(
        name=name,
        source=source,
        target=target,
        key_template=template,
        include=lists["include"],
        exclude=lists["exclude"],
        timezone=timezone,
        topic_arn=topic_arn,
        schedule=schedule,
        create_source=create_source,
        **ints,
    )


def _parse_location(where: str, which: str, raw: Any, allowed: frozenset[str], problems: list[str]) -> Location | None:
    if raw is None:
        problems.append(f'{where}.{which}: missing; give {{"bucket": ..., "prefix": ...}}')
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"{where}.{which}: must be an object with 'bucket' and optional 'prefix'")
        return None
    ok = True
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
    prefix = raw.get("prefix", "")
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


def schedule_expression_problem(expression: Any) -> str | None:
    """EventBridge Scheduler accepts `cron(m h dom mon dow year)` and `rate(n unit)`; say why not, or None."""
    if not isinstance(expression, str):
        return f"must be a string such as {DEFAULT_SCHEDULE!r}"
    text = expression.strip()
    if _RATE.match(text):
        return None
    if text.startswith("cron(") and text.endswith(")"):
        parts = text[5:-1].split()
        if len(parts) != 6:
            return (
                f"{expression!r} has {len(parts)} fields; EventBridge cron takes 6: "
                "minutes hours day-of-month month day-of-week year, e.g. 'cron(0 20 * * ? *)'"
            )
        if not all(_CRON_FIELD.match(p) for p in parts):
            return f"{expression!r} has a field with characters cron does not allow"
        minute, hour, dom, _month, dow, _year = parts
        if (dom == "?") == (dow == "?"):
            return f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'"
        for value, low, high, what in ((minute, 0, 59, "minutes"), (hour, 0, 23, "hours")):
            for number in re.findall(r"\d+", value):
                if not low <= int(number) <= high:
                    return f"{expression!r}: {what} value {number} is outside {low}-{high}"
        return None
    return f"{expression!r} is not 'cron(...)' or 'rate(...)', e.g. {DEFAULT_SCHEDULE!r}"


def _valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


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
