"""Thin S3 edges: JSON objects with conditional writes, streaming listings, and error-code translation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from .selection import SourceObject, clean_etag

NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
PRECONDITION = frozenset({"412", "PreconditionFailed", "ConditionalRequestConflict", "409"})


def error_code(err: Exception) -> str:
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", "")) or str(
            err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        )
    return type(err).__name__


def error_reason(err: Exception) -> str:
    """A one-line reason for the manifest: the S3 error code and message, never credentials or headers."""
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '') or 'no message'} ({err.operation_name})"
    return f"{type(err).__name__}: {err}"


def is_not_found(err: Exception) -> bool:
    return error_code(err) in NOT_FOUND


def is_precondition_failed(err: Exception) -> bool:
    return error_code(err) in PRECONDITION


def get_json(s3: Any, bucket: str, key: str) -> tuple[Any, str | None]:
    """(document, ETag) or (None, None) when absent."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if is_not_found(err):
            return None, None
        raise
    return json.loads(response["Body"].read()), response["ETag"]


def put_json(
    s3: Any,
    bucket: str,
    key: str,
    document: Any,
    *,
    if_none_match: bool = False,
    if_match: str | None = None,
) -> str:
    """Write a JSON document; with a condition, a lost race raises ClientError (see is_precondition_failed)."""
    kwargs: dict[str, Any] = {}
    if if_none_match:
        kwargs["IfNoneMatch"] = "*"
    if if_match:
        kwargs["IfMatch"] = if_match
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        ContentType="application/json",
        **kwargs,
    )
    return response["ETag"]


def put_bytes(s3: Any, bucket: str, key: str, body: bytes, content_type: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def iter_source_objects(s3: Any, bucket: str, prefix: str, *, skip_prefix: str | None = None) -> Iterator[SourceObject]:
    """Every object under the prefix, page by page (1,000 a page), without holding the listing in memory."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
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
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            yield item["Key"]


def delete_prefix(s3: Any, bucket: str, prefix: str) -> None:
    """Delete every object under a ledger work prefix, 1,000 keys a request."""
    chunk: list[dict[str, str]] = []
    for key in iter_keys(s3, bucket, prefix):
        chunk.append({"Key": key})
        if len(chunk) == 1000:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            chunk = []
    if chunk:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
