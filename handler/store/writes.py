"""Write-id recovery: how a conditional write whose answer was lost is recognised as ours.

A write whose answer was lost (a 500 after the write was applied, a reset before the reply) is retried by
botocore, and a retried conditional write meets its own first attempt and gets 412. So every conditional write
carries a fresh write id in its metadata, and on 412, 404 (If-Match on a key since deleted) or an error that
outlasted the retries, the key is read back: if it holds our write id, the write happened.

Managed transfers (s3transfer) forward neither If-None-Match nor If-Match to the request that creates the key,
so `destination_conditions` adds them on the way out with a botocore event handler.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .errors import Conflict, NotFound, PreconditionFailed, Transient

log = logging.getLogger(__name__)

WRITE_ID = "ingest-write-id"
"""User metadata on every conditional write: how a writer recognises its own write after a lost answer."""


def new_write_id() -> str:
    return uuid.uuid4().hex


def conditions(if_none_match: bool, if_match: str | None) -> dict[str, str]:
    """The request parameters of a write's conditions (none: an unconditional write)."""
    found = {}
    if if_none_match:
        found["IfNoneMatch"] = "*"
    if if_match:
        found["IfMatch"] = if_match
    return found


def written_by(head: dict[str, Any] | None, write_id: str) -> str | None:
    """The ETag of a key's HEAD if its current version is the write with this id, else None."""
    if head is None:
        return None
    metadata = {str(k).lower(): v for k, v in (head.get("Metadata") or {}).items()}
    return head["ETag"] if metadata.get(WRITE_ID) == write_id else None


def conditional(key: str, write: Callable[[], str], read_back: Callable[[], str | None]) -> str:
    """Run a conditional write; when it fails in a way a lost answer can cause, `read_back` (the key's ETag if
    it holds this write, else None) decides before the failure is raised."""
    for attempt in range(3):
        try:
            return write()
        except (PreconditionFailed, NotFound, Transient) as err:
            etag = read_back()
            if etag is not None:
                log.info("write of %s was applied though its answer was lost (%s)", key, err.code)
                return etag
            if isinstance(err, Conflict) and attempt < 2:
                time.sleep(0.1 * (attempt + 1))  # a concurrent conditional write: S3 asks for a retry
                continue
            raise
    raise AssertionError("unreachable")


_pending_conditions: dict[tuple[str, str], dict[str, str]] = {}
_pending_lock = threading.Lock()


def _add_pending_conditions(params: dict[str, Any], **_: Any) -> None:
    with _pending_lock:
        pending = _pending_conditions.get((params.get("Bucket", ""), params.get("Key", "")))
    if pending:
        params.update(pending)


@contextmanager
def destination_conditions(
    client: Any, bucket: str, key: str, *, if_none_match: bool = False, if_match: str | None = None
) -> Iterator[None]:
    """Add If-None-Match / If-Match to the request that creates `key` inside a managed transfer.

    s3transfer forwards neither to CompleteMultipartUpload (nor to the PutObject of a small upload), so they are
    added on the way out by a botocore event handler, for this one key while the block runs.
    """
    wanted = conditions(if_none_match, if_match)
    if not wanted:
        yield
        return
    for operation in ("CompleteMultipartUpload", "PutObject", "CopyObject"):
        client.meta.events.register(
            f"before-parameter-build.s3.{operation}",
            _add_pending_conditions,
            unique_id=f"ingest-conditions-{operation}",
        )
    with _pending_lock:
        _pending_conditions[(bucket, key)] = wanted
    try:
        yield
    finally:
        with _pending_lock:
            _pending_conditions.pop((bucket, key), None)
