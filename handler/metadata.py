"""Lineage metadata on every landed object, so the object itself answers "from where, and when?".

S3 user metadata must be ASCII and at most 2 KB in total. Source keys can be any UTF-8, so the
`ingest-source-key` value is the key percent-encoded as UTF-8 (RFC 3986, `/` kept): decode it with
`urllib.parse.unquote`. Names are compared case-insensitively because some S3-compatible servers
return them title-cased.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from dataclasses import asdict, dataclass
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

MAX_METADATA_BYTES = 2048


class MetadataTooLarge(ValueError):
    """User metadata plus lineage exceeds S3's 2 KB limit."""


def encode_value(value: str) -> str:
    """ASCII-safe form of any string: percent-encoded UTF-8, reversible with `unquote`."""
    return quote(value, safe="/")


def lineage(
    *,
    source_bucket: str,
    source_key: str,
    source_etag: str,
    dataset: str,
    date: str,
    timestamp: str,
    run_id: str,
) -> dict[str, str]:
    return {
        SOURCE_BUCKET: source_bucket,
        SOURCE_KEY: encode_value(source_key),
        SOURCE_ETAG: source_etag,
        DATASET: dataset,
        DATE: date,
        TIMESTAMP: timestamp,
        RUN_ID: run_id,
    }


def normalise(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Lower-case names, so `Ingest-Source-Key` and `ingest-source-key` are one."""
    return {str(k).lower(): v for k, v in (metadata or {}).items()}


def merged(user: Mapping[str, str] | None, lineage_values: Mapping[str, str]) -> dict[str, str]:
    """Source user metadata kept as-is, lineage added; a source's own `ingest-*` names are replaced by ours."""
    result = {k: v for k, v in normalise(user).items() if not k.startswith(PREFIX)}
    result.update(lineage_values)
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in result.items())
    if size > MAX_METADATA_BYTES:
        raise MetadataTooLarge(
            f"user metadata plus lineage would be {size} bytes, over S3's {MAX_METADATA_BYTES}-byte limit"
        )
    return result


def landed_from(metadata: Mapping[str, str] | None) -> tuple[str, str, str] | None:
    """(source bucket, source key, source ETag) recorded on a landed object, or None if it has no lineage."""
    meta = normalise(metadata)
    if SOURCE_KEY not in meta or SOURCE_ETAG not in meta:
        return None
    return meta.get(SOURCE_BUCKET, ""), unquote(meta[SOURCE_KEY]), meta[SOURCE_ETAG]


@dataclass(frozen=True)
class Lineage:
    """Everything a landed object says about where it came from, decoded (the source key unquoted)."""

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
        return cls(
            source_bucket=meta.get(SOURCE_BUCKET, ""),
            source_key=unquote(meta[SOURCE_KEY]),
            source_etag=meta[SOURCE_ETAG],
            dataset=meta.get(DATASET, ""),
            date=meta.get(DATE, ""),
            run_id=meta.get(RUN_ID, ""),
            ingested_at=meta.get(TIMESTAMP, ""),
        )

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
