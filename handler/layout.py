"""Where a source object lands: pure rendering of target keys from the key template.

A landed key must stay inside the target prefix whatever the source key looks like, so rendering is
followed by segment normalisation: empty segments (leading or doubled `/`) are dropped, and `.`/`..`
segments make the object unsafe to land (it is skipped with that reason, never silently rewritten into
another object's place).

This module depends on nothing else in the package, so the config can check a key template by rendering
sample keys through the very function the planner uses.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import date as Date

LEDGER_ROOT = "_ingestion/"
"""Reserved prefix of every target bucket: the ledger lives under `_ingestion/<dataset>/`.

It starts with `_` so Hive, Athena and Spark treat it as hidden even if a table points at the bucket root.
"""

MAX_KEY_BYTES = 1024
"""S3's limit on a key's UTF-8 length."""


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


def render_target_key(
    template: str,
    target_prefix: str,
    *,
    dataset: str,
    relative: str,
    run_date: Date,
    run_id: str,
) -> str:
    """Render the landed key for one object; raise UnsafeKey with the reason when it cannot land."""
    parts = key_parts(relative)
    rendered = template.format(
        dataset=dataset,
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
