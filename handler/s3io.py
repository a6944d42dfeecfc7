"""Thin S3 edges: JSON and JSON Lines objects with conditional writes, streamed listings, managed uploads.

Every function here runs inside `s3_errors()`, so callers see only the package's exceptions (s3errors.py).
Decisions stay with the callers; these functions only move bytes and report what S3 said.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from .s3errors import NotFound, PreconditionFailed, s3_errors
from .selection import SourceObject, clean_etag

DELETE_BATCH = 1000
"""DeleteObjects takes at most 1,000 keys a request."""


def jsonl_bytes(lines: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")


def get_json(s3: Any, bucket: str, key: str) -> tuple[Any, str | None]:
    """(document, ETag) or (None, None) when absent."""
    try:
        with s3_errors():
            response = s3.get_object(Bucket=bucket, Key=key)
            return json.loads(response["Body"].read()), response["ETag"]
    except NotFound:
        return None, None


def put_json(
    s3: Any,
    bucket: str,
    key: str,
    document: Any,
    *,
    if_none_match: bool = False,
    if_match: str | None = None,
) -> str:
    """Write a JSON document and return its ETag; with a condition, a lost race raises PreconditionFailed."""
    return put_bytes(
        s3,
        bucket,
        key,
        json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        "application/json",
        if_none_match=if_none_match,
        if_match=if_match,
    )


def put_bytes(
    s3: Any,
    bucket: str,
    key: str,
    body: bytes,
    content_type: str,
    *,
    if_none_match: bool = False,
    if_match: str | None = None,
) -> str:
    kwargs: dict[str, Any] = {}
    if if_none_match:
        kwargs["IfNoneMatch"] = "*"
    if if_match:
        kwargs["IfMatch"] = if_match
    with s3_errors():
        response = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, **kwargs)
    return response["ETag"]


def create_once(s3: Any, bucket: str, key: str) -> bool:
    """Write an empty object unless the key exists: True if this call created it."""
    try:
        put_bytes(s3, bucket, key, b"", "application/octet-stream", if_none_match=True)
    except PreconditionFailed:
        return False
    return True


def open_body(s3: Any, bucket: str, key: str) -> IO[bytes] | None:
    """The object's body as a stream, or None when it does not exist."""
    try:
        with s3_errors():
            return s3.get_object(Bucket=bucket, Key=key)["Body"]
    except NotFound:
        return None


def iter_lines(body: IO[bytes]) -> Iterator[dict[str, Any]]:
    """Decode a JSON Lines stream lazily (blank lines are allowed and skipped)."""
    with s3_errors():
        for line in io.TextIOWrapper(body, encoding="utf-8"):
            if line.strip():
                yield json.loads(line)


def read_jsonl(s3: Any, bucket: str, key: str) -> Iterator[dict[str, Any]] | None:
    """Stream the lines of a JSONL object, or None when it does not exist."""
    body = open_body(s3, bucket, key)
    return None if body is None else iter_lines(body)


def upload_file(s3: Any, bucket: str, key: str, fileobj: IO[bytes], content_type: str) -> None:
    """Upload a temp file with the managed transfer (multipart when large) from its start."""
    fileobj.seek(0)
    with s3_errors():
        s3.upload_fileobj(fileobj, bucket, key, ExtraArgs={"ContentType": content_type})


def head(s3: Any, bucket: str, key: str, *, if_match: str | None = None) -> dict[str, Any]:
    """HEAD an object; raises NotFound, PreconditionFailed (with if_match) and the rest as translated."""
    kwargs = {"IfMatch": if_match} if if_match else {}
    with s3_errors():
        return s3.head_object(Bucket=bucket, Key=key, **kwargs)


def head_or_none(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return head(s3, bucket, key)
    except NotFound:
        return None


def copy_object(s3: Any, **kwargs: Any) -> dict[str, Any]:
    with s3_errors():
        return s3.copy_object(**kwargs)


def wait(future: Any) -> Any:
    """The result of an s3transfer future, its failure translated like any other S3 error."""
    with s3_errors():
        return future.result()


def delete(s3: Any, bucket: str, key: str) -> None:
    """Delete a key; one that is already gone is what the caller wanted."""
    try:
        with s3_errors():
            s3.delete_object(Bucket=bucket, Key=key)
    except NotFound:
        pass


def iter_source_objects(s3: Any, bucket: str, prefix: str, *, skip_prefix: str | None = None) -> Iterator[SourceObject]:
    """Every object under the prefix, page by page (1,000 a page), without holding the listing in memory."""
    for item in _iter_contents(s3, bucket, prefix):
        key = item["Key"]
        if skip_prefix and key.startswith(skip_prefix):
            continue
        yield SourceObject(
            key=key,
            etag=clean_etag(item.get("ETag", "")),
            size=int(item.get("Size", 0)),
            last_modified=item["LastModified"],
            storage_class=item.get("StorageClass") or "STANDARD",
        )


def iter_keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for item in _iter_contents(s3, bucket, prefix):
        yield item["Key"]


def delete_prefix(s3: Any, bucket: str, prefix: str) -> None:
    """Delete every object under a prefix, DELETE_BATCH keys a request."""
    chunk: list[dict[str, str]] = []
    for key in iter_keys(s3, bucket, prefix):
        chunk.append({"Key": key})
        if len(chunk) == DELETE_BATCH:
            _delete_objects(s3, bucket, chunk)
            chunk = []
    if chunk:
        _delete_objects(s3, bucket, chunk)


def _delete_objects(s3: Any, bucket: str, objects: list[dict[str, str]]) -> None:
    with s3_errors():
        s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def _iter_contents(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    with s3_errors():
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            yield from page.get("Contents", ())
