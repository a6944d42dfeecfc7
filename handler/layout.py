"""Where a source object lands: pure rendering of target keys from the key template.

A landed key must stay inside the target prefix whatever the source key looks like, so rendering is
followed by segment normalisation: empty segments (leading or doubled `/`) are dropped, and `.`/`..`
segments make the object unsafe to land (it is skipped with that reason, never silently rewritten into
another object's place).

This module depends on nothing else in the package, so the config can check a key template by rendering
sample keys through the very function the planner uses.
"""

from __future__ import annotations

import functools
import posixpath
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date as Date
from fnmatch import fnmatchcase

LEDGER_ROOT = "_ingestion/"
"""Reserved prefix of every target bucket: the ledger lives under `_ingestion/<dataset>/`.

It starts with `_` so Hive, Athena and Spark treat it as hidden even if a table points at the bucket root.
"""

MAX_KEY_BYTES = 1024
"""S3's limit on a key's UTF-8 length."""

UNMATCHED_TABLE = "_unmatched"
"""What `{table}` renders for a file that matches no table's patterns.

Such a file still lands (a new kind of file is exactly what a nightly feed must not drop), in a folder of its
own that no table reads: it starts with `_`, so Hive, Athena and Spark treat it as hidden, and no table name can
start with `_`, so it can never be mixed into a table's folder.
"""

PARTITION_KEY = "ingest_date"
PARTITION_SEGMENT = PARTITION_KEY + "={date}"
"""The key_template folder a described table is partitioned by: one Hive-style partition per run date."""

TablePatterns = Sequence[tuple[str, Sequence[str]]]
"""A dataset's tables as the layout needs them: each name with its glob patterns."""


class UnsafeKey(ValueError):
    """The source key cannot be landed safely; the message is the reason recorded in the manifest.

    `rendered` is the target key the template produced (None when the source key itself was refused), so a
    config check can show the user what their template did.
    """

    def __init__(self, reason: str, *, rendered: str | None = None):
        super().__init__(reason)
        self.rendered = rendered


class DotSegment(UnsafeKey):
    """The rendered key has a `.` or `..` segment: S3 would store it, but tools resolving paths would not."""


class InLedger(UnsafeKey):
    """The rendered key falls under the reserved ledger prefix, where it could overwrite the ledger."""


class KeyTooLong(UnsafeKey):
    """The rendered key passes S3's 1,024-byte limit: a per-object failure the user must act on."""


class AmbiguousTable(ValueError):
    """The key matches the patterns of more than one table: a per-object failure the user must act on.

    Nothing guesses which table a file belongs to: a JSON object (and so Pulumi's stack config, which sorts
    keys) has no order to say "first match wins", and a file in the wrong table's folder breaks that table.
    """


@dataclass(frozen=True)
class KeyParts:
    """The placeholders a source key offers to the template."""

    path: str
    dir: str
    name: str
    stem: str
    ext: str


def relative_key(source_prefix: str, key: str) -> str:
    """The key relative to the source prefix (listing guarantees the prefix is there)."""
    return key[len(source_prefix) :] if key.startswith(source_prefix) else key


def key_parts(relative: str) -> KeyParts:
    """Split a relative key into placeholders; `..`/`.` segments are refused before anything renders."""
    segments = [s for s in relative.split("/") if s != ""]
    if not segments:
        raise UnsafeKey("key has no file name after the source prefix")
    bad = [s for s in segments if s in (".", "..")]
    if bad:
        raise UnsafeKey(f"key has a {bad[0]!r} segment, which could escape the target prefix")
    name = segments[-1]
    stem, ext = posixpath.splitext(name)
    if not stem:  # ".env": a dot file has no extension
        stem, ext = name, ""
    return KeyParts(path="/".join(segments), dir="/".join(segments[:-1]), name=name, stem=stem, ext=ext)


@functools.lru_cache(maxsize=64)
def placeholders(template: str) -> frozenset[str]:
    """The placeholder names a template uses (parsed once per template, not once per key)."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name is not None)


def table_of(relative: str, tables: TablePatterns) -> str:
    """The table a source key belongs to: the one whose patterns it matches, else UNMATCHED_TABLE.

    Patterns match the key relative to the source prefix exactly as `include` does (case-sensitive, `*` also
    matches `/`). A key that matches two tables raises AmbiguousTable naming both.
    """
    matched = [(name, pattern) for name, patterns in tables for pattern in patterns if fnmatchcase(relative, pattern)]
    names = list(dict.fromkeys(name for name, _ in matched))
    if len(names) > 1:
        shown = ", ".join(f"{name!r} ({next(p for n, p in matched if n == name)!r})" for name in names)
        raise AmbiguousTable(
            f"ambiguous table: the key matches the patterns of {shown}; it is not copied until the patterns are "
            "changed so that it matches one table"
        )
    return names[0] if names else UNMATCHED_TABLE


def render_target_key(
    template: str,
    target_prefix: str,
    *,
    dataset: str,
    relative: str,
    run_date: Date,
    run_id: str,
    tables: TablePatterns = (),
) -> str:
    """Render the landed key for one object; raise UnsafeKey with the reason when it cannot land, and
    AmbiguousTable when `{table}` cannot say which table it belongs to."""
    parts = key_parts(relative)
    rendered = template.format(
        dataset=dataset,
        table=table_of(relative, tables) if "table" in placeholders(template) else UNMATCHED_TABLE,
        path=parts.path,
        dir=parts.dir,
        name=parts.name,
        stem=parts.stem,
        ext=parts.ext,
        date=run_date.isoformat(),
        yyyy=f"{run_date.year:04d}",
        mm=f"{run_date.month:02d}",
        dd=f"{run_date.day:02d}",
        run_id=run_id,
    )
    segments = [s for s in rendered.split("/") if s != ""]
    key = target_prefix + "/".join(segments)
    if any(s in (".", "..") for s in segments) or not segments:
        raise DotSegment(f"key template renders {rendered!r}, which has an empty, '.' or '..' segment", rendered=key)
    if key.startswith(LEDGER_ROOT):
        raise InLedger(f"target key {key!r} would land inside the reserved ledger prefix {LEDGER_ROOT!r}", rendered=key)
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise KeyTooLong(
            f"target key would be {size} bytes, over S3's {MAX_KEY_BYTES}-byte limit; "
            "shorten the source key or the key_template",
            rendered=key,
        )
    return key


def table_folder(template: str, target_prefix: str, *, dataset: str, table: str) -> str:
    """The key prefix every file of `table` lands under, just above its `ingest_date=` partition folders.

    A catalog table needs one location whose subfolders are `ingest_date=YYYY-MM-DD`: that holds when the
    template's folders up to PARTITION_SEGMENT name only `{table}` (and perhaps `{dataset}`) and fixed text.
    Raises ValueError saying what is missing otherwise. The folders are normalised exactly as
    render_target_key normalises a whole key, so the two always agree.
    """
    segments = template.split("/")
    if PARTITION_SEGMENT not in segments:
        raise ValueError(f"it has no {PARTITION_SEGMENT!r} folder to partition the table by")
    head = "/".join(segments[: segments.index(PARTITION_SEGMENT)])
    used = placeholders(head)
    if "table" not in used:
        raise ValueError(f"{{table}} is not among the folders before {PARTITION_SEGMENT!r}")
    if used - {"table", "dataset"}:
        others = ", ".join("{" + name + "}" for name in sorted(used - {"table", "dataset"}))
        raise ValueError(
            f"the folders before {PARTITION_SEGMENT!r} hold {others}, which differ from file to file, so a table "
            "has no one location"
        )
    folders = [s for s in head.format(table=table, dataset=dataset).split("/") if s != ""]
    return target_prefix + "".join(folder + "/" for folder in folders)


def printable(text: str) -> str:
    """`text` safe to show on a terminal: control, format (bidi) and separator characters escaped, the rest kept.

    S3 keys are any UTF-8, so a listing can carry ESC sequences that recolour or clear a terminal, newlines
    that forge extra lines, or U+202E that shows `gnp.exe` as `exe.png`. Escaping them the way Python's repr
    does (`\\x1b`, `\\n`, `\\u202e`) keeps each key on one honest line while café and 映画 stay readable.
    Backslashes are kept as they are: keys with them are common, keys spelling an escape are not.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
