"""Lineage metadata on every landed object, so the object itself answers "from where, and when?".

S3 user metadata is sent as ASCII HTTP headers and may total at most 2 KB, counted as the UTF-8 bytes of every
name and value (S3 User Guide, "Working with object metadata", user-defined metadata). Source keys can be any
UTF-8 up to 1,024 bytes, so the `ingest-source-key` value is the key in one of two ASCII forms:

- percent-encoded UTF-8 (RFC 3986, `/` kept), decoded by `urllib.parse.unquote`: an ASCII key reads as itself,
  `données/été.csv` as `donn%C3%A9es/%C3%A9t%C3%A9.csv`. Every non-ASCII byte takes three characters, so a
  non-ASCII key of about 610 bytes or more would pass the limit on its own.
- for such a key only, an RFC 2047 encoded word, `=?UTF-8?B?<base64 of the UTF-8>?=`: four characters for three
  bytes, whatever the script, so even a 1,024-byte key of 3-byte characters takes 1,380 and fits beside the
  longest lineage (1,713 bytes in all). It is the form S3 itself returns non-ASCII metadata values in, and the
  form S3-compatible servers that store Unicode metadata (Cloudflare R2) decode on the way in and give back on
  the way out.

The first form stays the rule, so every key that could land before is written as before and a reader that
decodes with `unquote` keeps working for them; the second appears only on objects that could not land at all.
`decode_value` reads both (a percent-encoded value never holds `=` or `?`, so the two cannot be confused).
Names are compared case-insensitively because some S3-compatible servers return them title-cased.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from email.errors import HeaderParseError
from email.header import decode_header
from functools import cache
from typing import Any
from urllib.parse import quote, unquote

PREFIX = "ingest-"
SOURCE_BUCKET = "ingest-source-bucket"
SOURCE_KEY = "ingest-source-key"
SOURCE_ETAG = "ingest-source-etag"
DATASET = "ingest-dataset"
DATE = "ingest-date"
TIMESTAMP = "ingest-timestamp"
RUN_ID = "ingest-run-id"

_NAMES = {
    "source_bucket": SOURCE_BUCKET,
    "source_key": SOURCE_KEY,
    "source_etag": SOURCE_ETAG,
    "dataset": DATASET,
    "date": DATE,
    "run_id": RUN_ID,
    "ingested_at": TIMESTAMP,
}
"""`Lineage`'s fields by the metadata names that carry them: one table, read by `Lineage.of` and written by
`Lineage.metadata`, so the two stay each other's inverse."""

MAX_METADATA_BYTES = 2048

_WORD_START, _WORD_END = "=?UTF-8?B?", "?="


class MetadataTooLarge(ValueError):
    """User metadata plus lineage exceeds S3's 2 KB limit."""


def encode_value(value: str) -> str:
    """ASCII-safe form of any string: percent-encoded UTF-8, reversible with `unquote` (and `decode_value`)."""
    return quote(value, safe="/")


def encoded_word(value: str) -> str:
    """The compact ASCII form of any string, for a key whose percent-encoding would not fit: an RFC 2047 encoded
    word of its UTF-8 in base64, at most `encoded_size_bound` characters."""
    return _WORD_START + base64.b64encode(value.encode("utf-8")).decode("ascii") + _WORD_END


def decode_value(value: str) -> str:
    """The string `encode_value` or `encoded_word` encoded: an RFC 2047 encoded word (ours, or one a server
    re-encoded in another charset or in Q encoding) decoded, anything else percent-decoded."""
    if "=?" not in value:
        return unquote(value)
    try:
        parts = decode_header(value)
        return "".join(p.decode(charset or "ascii") if isinstance(p, bytes) else p for p, charset in parts)
    except (ValueError, LookupError, HeaderParseError):  # not a well-formed word after all: take it as it is written
        return unquote(value)


def encoded_size_bound(utf8_bytes: int) -> int:
    """The characters `encoded_word` takes for any string of `utf8_bytes` UTF-8 bytes."""
    return len(_WORD_START) + 4 * -(-utf8_bytes // 3) + len(_WORD_END)


def _size(values: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(str(v).encode()) for k, v in values.items())


def normalise(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Lower-case names, so `Ingest-Source-Key` and `ingest-source-key` are one."""
    return {str(k).lower(): v for k, v in (metadata or {}).items()}


def merged(user: Mapping[str, str] | None, lineage_values: Mapping[str, str]) -> dict[str, str]:
    """Source user metadata kept as-is, lineage added; a source's own `ingest-*` names are replaced by ours.

    A source key whose percent-encoding would put the whole over S3's limit is written as an encoded word
    instead (the module's docstring says why); MetadataTooLarge when even that does not fit, saying what would.
    """
    result = {k: v for k, v in normalise(user).items() if not k.startswith(PREFIX)}
    result.update(lineage_values)
    size = _size(result)
    if size > MAX_METADATA_BYTES and SOURCE_KEY in result:
        word = encoded_word(decode_value(result[SOURCE_KEY]))
        if len(word) < len(result[SOURCE_KEY]):
            result[SOURCE_KEY] = word
            size = _size(result)
    if size > MAX_METADATA_BYTES:
        own = {name: result[name] for name in lineage_values}
        raise MetadataTooLarge(_too_large(size, len(result) - len(own), own))
    return result


def _too_large(size: int, carried: int, lineage_values: Mapping[str, str]) -> str:
    """Why an object's metadata does not fit, and what would make it fit: a source key too long to carry (what
    length would), or the source's own metadata (stop carrying it)."""
    own = _size(lineage_values)
    names = f"{carried} name" + ("" if carried == 1 else "s")
    over = f"would be {size} bytes, over S3's {MAX_METADATA_BYTES}-byte limit on user metadata"
    if own > MAX_METADATA_BYTES or not carried:
        encoded = lineage_values.get(SOURCE_KEY, "")
        key_bytes = len(decode_value(encoded).encode("utf-8"))
        room = MAX_METADATA_BYTES - (own - len(encoded.encode()))
        fits = max(3 * ((room - len(_WORD_START) - len(_WORD_END)) // 4), 0)
        return (
            f"lineage metadata {over}: the source key is {key_bytes} bytes of UTF-8, {len(encoded)} once encoded "
            f"as ASCII; a source key of up to {fits} bytes fits beside this lineage, so rename the file shorter"
        )
    return (
        f"user metadata plus lineage {over}: the source's own user metadata ({names}, {size - own} bytes) "
        f"does not fit beside the lineage ({own} bytes); trim the source's metadata, or set source_metadata: "
        "lineage for this dataset to land it without"
    )


def landed_from(metadata: Mapping[str, str] | None) -> tuple[str, str, str] | None:
    """(source bucket, source key, source ETag) recorded on a landed object, or None if it has no lineage."""
    meta = normalise(metadata)
    if SOURCE_KEY not in meta or SOURCE_ETAG not in meta:
        return None
    return meta.get(SOURCE_BUCKET, ""), decode_value(meta[SOURCE_KEY]), meta[SOURCE_ETAG]


@dataclass(frozen=True)
class Lineage:
    """Everything a landed object says about where it came from, decoded (the source key by `decode_value`)."""

    source_bucket: str
    source_key: str
    source_etag: str
    dataset: str
    date: str
    run_id: str
    ingested_at: str

    @classmethod
    def of(cls, metadata: Mapping[str, str] | None) -> Lineage | None:
        """The lineage an object's user metadata carries, or None when it has none (not landed by us, or its
        metadata was replaced since)."""
        meta = normalise(metadata)
        if SOURCE_KEY not in meta or SOURCE_ETAG not in meta:
            return None
        values = {name: meta.get(header, "") for name, header in _NAMES.items()}
        return cls(**{**values, "source_key": decode_value(values["source_key"])})

    def metadata(self) -> dict[str, str]:
        """The user metadata a landed object carries (`of` reads it back): the source key percent-encoded, so any
        UTF-8 key travels as an ASCII header (`merged` picks the compact form where that would not fit)."""
        values = {**asdict(self), "source_key": encode_value(self.source_key)}
        return {_NAMES[name]: value for name, value in values.items()}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@cache
def _types() -> mimetypes.MimeTypes:
    """Python's own table only (no /etc/mime.types): the same key gets the same type on every machine and in
    Lambda. Made at first use: building it reads the system's tables too (15 ms), which a `carry` run never needs."""
    return mimetypes.MimeTypes()


_COMPRESSED = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "br": "application/x-brotli",
    "compress": "application/x-compress",
}


def content_type_for(key: str) -> str:
    """The Content-Type a landed object gets when its source's is not read (`source_metadata: lineage`): from
    the key's extension, as `aws s3 cp` and s5cmd type an upload. A compressed file is typed as what its bytes
    are (`x.csv.gz` is application/gzip), and an unknown extension gets S3's own default."""
    guessed, encoding = _types().guess_type(key.rsplit("/", 1)[-1], strict=False)
    if encoding is not None:
        return _COMPRESSED.get(encoding, "binary/octet-stream")
    return guessed or "binary/octet-stream"
