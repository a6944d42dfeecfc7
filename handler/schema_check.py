"""Schema contracts: a file's header against its table's declared columns. Pure: bytes in, a `Drift` out.

A described table's columns feed its catalog table; a producer that adds, drops, renames or reorders a column
would otherwise land a file the table misreads (a CSV SerDe reads by position) without a word. So before a file
of a described CSV or JSON Lines table lands, the copier reads its first bytes (contracts.py: one ranged GET of
the listed version) and this module says whether its header is the declared one:

- CSV: the first line (Athena's text input splits records at newlines, and `skip.header.line.count` skips one
  line), split with the table's delimiter and, for a quoted table, OpenCSVSerde's quote and escape characters.
  Without a header (`header: false`) only the number of fields of the first line is compared.
- JSON Lines: the keys of the first non-blank line's object (the JSON SerDe reads by name, so order is not
  compared).
- gzip (its magic bytes, as `.gz` files have them): inflated incrementally, only as far as the first line.

Names compare case-insensitively (the catalog lowercases them) and with surrounding blanks stripped. Parquet and
files under another compression (`.bz2`, `.zst`, ...) are not checked: nothing is read and nothing recorded.
"""

from __future__ import annotations

import csv
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .columns import Table
from .config import DatasetConfig

KiB = 1024
HEADER_READ_BYTES = 64 * KiB
"""The first ranged GET of a file: a header is a line of names, far shorter."""
MAX_HEADER_BYTES = 1024 * KiB
"""Read on (in doubling ranges) up to this many bytes, inflated, for a first line that has not ended yet; a
longer first line is reported as drift (`header unreadable: ...`), never guessed at."""

CHECKED_FORMATS = ("csv", "json")
UNCHECKED_SUFFIXES = (".bz2", ".zst", ".xz", ".lz4", ".snappy", ".zip", ".deflate", ".br", ".lzo", ".z")
"""Compressions other than gzip: their bytes are not text this module can read, so such files are not checked."""
GZIP_MAGIC = b"\x1f\x8b"
_BOM = "\ufeff"


def checked_tables(dataset: DatasetConfig) -> dict[str, Table]:
    """The tables of `dataset` whose files are checked, by name: none with `check_schema: false`. What the copier
    reads headers for (contracts.py) and the stack alarms on (infra/monitoring.py)."""
    if not dataset.check_schema:
        return {}
    return {table.name: table for table in dataset.tables or () if checkable(table, "")}


def checkable(table: Table, key: str) -> bool:
    """Whether files of `table` are checked at all: described, CSV or JSON, and not under a compression other
    than gzip. False means no GET and nothing recorded."""
    return table.described and table.format in CHECKED_FORMATS and not key.lower().endswith(UNCHECKED_SUFFIXES)


@dataclass(frozen=True)
class Drift:
    """How a file's header differs from its table's declaration; `describe()` is what the ledger records."""

    added: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    """(declared, found) at the same position: a rename, or one column dropped where another was added."""
    order: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    """(found, declared) order of the names both have, when it differs."""
    duplicated: tuple[str, ...] = ()
    fields: tuple[int, int] | None = None
    """(found, declared) number of fields of a CSV without a header, when they differ."""
    unreadable: str = ""
    """Why no header could be read (then nothing else is set)."""

    def describe(self) -> str:
        """One line, e.g. `added: rating2; missing: rating` or `order differs: found a, c, b; declared a, b, c`, of
        at most MAX_DESCRIPTION characters."""
        text = self._described()
        return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."

    def _described(self) -> str:
        if self.unreadable:
            return f"header unreadable: {self.unreadable}"
        parts = []
        if self.renamed:
            parts.append("renamed: " + _listed([f"{old} -> {new}" for old, new in self.renamed]))
        if self.added:
            parts.append("added: " + _listed(self.added))
        if self.missing:
            parts.append("missing: " + _listed(self.missing))
        if self.duplicated:
            parts.append("duplicated: " + _listed(self.duplicated))
        if self.order is not None:
            found, declared = self.order
            parts.append(f"order differs: found {_listed(found)}; declared {_listed(declared)}")
        if self.fields is not None:
            parts.append(f"{self.fields[0]} fields in the first line, {self.fields[1]} columns declared")
        return "; ".join(parts)


MAX_NAMES_LISTED = 10
"""Names a description lists of each kind: it goes on a manifest line, a summary and a notification."""
MAX_DESCRIPTION = 1000
"""Characters a description keeps at most (ten 128-character names of four kinds would be five times that): a
summary lists ten drifted files, and it and the notification must stay well inside SNS's and Step Functions'
256 KiB."""


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_LISTED])
    return shown if len(names) <= MAX_NAMES_LISTED else f"{shown} and {len(names) - MAX_NAMES_LISTED} more"


class Unreadable(ValueError):
    """No header can be read from the file's first bytes; the message says why."""


def first_line(chunks: Iterable[bytes], *, skip_blank: bool = False) -> str | None:
    """The file's first line (for JSON Lines: first non-blank), decoded, from its bytes as successive ranged reads
    hand them in (pulled only as far as needed; gzip inflated on the way). None: the file is empty (or blank).
    Raises Unreadable for a first line longer than MAX_HEADER_BYTES, bad gzip, or bytes that are not UTF-8."""
    buffer = bytearray()
    inflate = None
    start = 0
    for number, raw in enumerate(chunks):
        if number == 0 and raw[:2] == GZIP_MAGIC:
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if inflate is not None:
            try:  # never inflate more than the budget: a small gzip can expand a thousandfold
                raw = inflate.decompress(raw, MAX_HEADER_BYTES + 1 - len(buffer))
            except zlib.error as err:
                raise Unreadable(f"not a readable gzip file ({err})") from err
        buffer += raw
        line, start = _line_in(buffer, start, skip_blank=skip_blank)
        if line is not None and len(line) <= MAX_HEADER_BYTES:
            return _decoded(line)
        if line is not None or len(buffer) > MAX_HEADER_BYTES:
            raise Unreadable(f"its first line is longer than {MAX_HEADER_BYTES // KiB} KiB")
        if inflate is not None and inflate.eof:
            break
    rest = bytes(buffer[start:])
    if not rest.strip():
        return None
    return _decoded(rest)  # the whole file is one line without a newline


def _line_in(buffer: bytearray, start: int, *, skip_blank: bool) -> tuple[bytes | None, int]:
    """The first complete line from `start` (and where to look next time). A newline byte is never part of a
    multi-byte UTF-8 character, so lines are found in bytes before decoding."""
    while True:
        end = buffer.find(b"\n", start)
        if end < 0:
            return None, start
        line = bytes(buffer[start:end])
        if skip_blank and not line.strip():
            start = end + 1
            continue
        return line, start


def _decoded(line: bytes) -> str:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Unreadable(f"its first line is not UTF-8 text ({err.reason} at byte {err.start})") from err
    return text.removeprefix(_BOM).rstrip("\r")


def header_names(line: str, table: Table) -> tuple[str, ...]:
    """The names (CSV fields, or JSON keys) the first line gives, as written. Raises Unreadable for a JSON line
    that is not an object."""
    if table.format == "json":
        try:
            document = json.loads(line)
        except ValueError as err:
            raise Unreadable(f"its first line is not JSON ({err})") from err
        if not isinstance(document, dict):
            raise Unreadable(f"its first line is a JSON {type(document).__name__}, not an object")
        return tuple(document)
    if not table.quoted:
        return tuple(line.split(table.delimiter))  # LazySimpleSerDe: no quoting at all
    # OpenCSVSerde as tables.py sets it up: quoteChar '"', escapeChar '\'.
    reader = csv.reader([line], delimiter=table.delimiter, quotechar='"', escapechar="\\", strict=False)
    try:
        return tuple(next(reader, []))
    except csv.Error as err:  # a field past the csv module's limit (128 KiB)
        raise Unreadable(f"its first line cannot be read as CSV ({err})") from err


def compare(declared: Sequence[str], found: Sequence[str], *, ordered: bool) -> Drift | None:
    """How `found` names differ from the `declared` ones (None: they do not), names compared case-insensitively.
    `ordered`: position matters (CSV); a name found where a missing one was declared is reported renamed."""
    want = [name.strip().lower() for name in declared]
    have = [name.strip().lower() for name in found]
    if (have == want) if ordered else (sorted(have) == sorted(want) and len(set(have)) == len(have)):
        return None
    duplicated = tuple(dict.fromkeys(name for n, name in enumerate(have) if name in have[:n]))
    added = [name for name in dict.fromkeys(have) if name not in want]
    missing = [name for name in want if name not in have]
    renamed = []
    if ordered:
        for old, new in zip(want, have, strict=False):
            if old in missing and new in added:
                renamed.append((old, new))
                missing.remove(old)
                added.remove(new)
    order = None
    if ordered:
        common_found = [name for name in dict.fromkeys(have) if name in want]
        common_declared = [name for name in want if name in have]
        if common_found != common_declared:
            order = (tuple(common_found), tuple(common_declared))
    drift = Drift(tuple(added), tuple(missing), tuple(renamed), order, duplicated)
    return drift if drift.describe() else None


def drift_of(chunks: Iterable[bytes], table: Table) -> Drift | None:
    """The drift of one file of a checkable table from its first bytes (None: its header is the declared one, or
    the file is empty). A header that cannot be read is drift too: the table could not read such a file right."""
    try:
        line = first_line(chunks, skip_blank=table.format == "json")
        if line is None:
            return None
        found = header_names(line, table)
    except Unreadable as err:
        return Drift(unreadable=str(err))
    if not "".join(found).strip():
        return Drift(unreadable="its first line is empty")  # the table would skip it and read the header as data
    declared = [column.name for column in table.columns]
    if table.format == "csv" and not table.header:
        return None if len(found) == len(declared) else Drift(fields=(len(found), len(declared)))
    return compare(declared, found, ordered=table.format == "csv")
