"""Key templates: the placeholders a `key_template` may use, and the checks that it lands every file of a night.

A template is checked in two ways before any run. Its syntax (`template_problems`): known placeholders, a
date, a file name part. What it does to real keys (`landing_problems`): TEMPLATE_SAMPLE_KEYS are rendered
through `layout.render_target_key`, the planner's own function, so a template that would skip or merge
ordinary files every night, with exit 0, is a config error instead. With tables, the template must also give
each table a folder of its own (`table_layout_problems`).
"""

from __future__ import annotations

import string
from datetime import date as Date
from typing import Any

from .columns import Table, table_patterns
from .layout import (
    LEDGER_ROOT,
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
from .table_overlap import overlap_problems

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


def key_template_problems(template: Any) -> list[str]:
    """The `key_template` field's check: a document may hold anything there, and blank text is no template."""
    if not isinstance(template, str) or not template.strip():
        return ["must be a non-empty string"]
    return template_problems(template)


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


def layout_problems(
    dataset: str, template: str, target_prefix: str, tables: tuple[Table, ...] | None, *, tables_given: bool
) -> list[str]:
    """How `template` fits its tables, then what it does to ordinary keys: one check for a document and overrides."""
    # Tables that claim one key fail it whatever the template (schema contracts match tables too).
    overlaps = overlap_problems(table_patterns(tables))
    try:
        placeholders(template)
    except ValueError:
        return overlaps  # malformed: template_problems says why
    problems = table_layout_problems(dataset, template, target_prefix, tables, tables_given=tables_given)
    problems = problems or landing_problems(dataset, template, target_prefix, table_patterns(tables))
    if any(problem.startswith("tables: ") for problem in problems):
        return problems  # an ordinary sample key already showed the tables overlap
    return problems + overlaps
