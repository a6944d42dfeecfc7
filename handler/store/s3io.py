"""Thin S3 edges: JSON and JSON Lines objects with conditional writes, streamed listings, managed uploads.

Every function here runs inside `s3_errors()`, so callers see only the package's exceptions (errors.py).
Decisions stay with the callers; these functions only move bytes and report what S3 said.

Two faults S3 produces every night at scale are absorbed here, once, for every caller:

- A write whose answer was lost (a 500 after the write was applied, a reset before the reply). botocore then
  retries it, and a retried conditional write meets its own first attempt and gets 412. So every conditional
  write carries a fresh write id in its metadata, and on 412, 404 (If-Match on a key since deleted) or an error
  that outlasted the retries, the key is read back: if it holds our write id, the write happened.
- A body cut off mid-read (a reset after the headers). botocore does not retry a read, so `open_body` resumes
  from the byte it reached with a ranged GET pinned to the same ETag.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from . import lean
from ..errors import CorruptDocument
from .errors import Conflict, NotFound, PreconditionFailed, S3Error, Transient, s3_errors
from ..selection import SourceObject, clean_etag
from .server_clock import ServerClock

log = logging.getLogger(__name__)

DELETE_BATCH = 1000
"""DeleteObjects takes at most 1,000 keys a request."""

WRITE_ID = "ingest-write-id"
"""User metadata on every conditional write: how a writer recognises its own write after a lost answer."""

READ_ATTEMPTS = 6
"""How many times a cut-off body is resumed before the read fails."""


def jsonl_bytes(lines: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")


def get_json(s3: Any, bucket: str, key: str, *, clock: ServerClock | None = None) -> tuple[Any, str | None]:
    """(document, ETag) or (None, None) when absent; a body cut off mid-read is resumed, and a document
    rewritten while it was read (its resume refused: the lock, renewed by another process) is read again.

    A body that is not JSON is read again too: S3's reads are atomic, but a server that rewrites files in place
    (`rclone serve s3`) can serve parts of two versions in one answer. One that stays unreadable is reported.
    With a `clock`, the answer's `Date` (a 404's too) tells it the server's time."""
    for attempt in range(READ_ATTEMPTS):
        sent = time.time()
        try:
            with s3_errors():
                response = lean.call(s3, "get_object", Bucket=bucket, Key=key)
        except NotFound as absent:
            if clock is not None:
                clock.observe(absent, sent)
            return None, None
        if clock is not None:
            clock.observe(response, sent)
        try:
            with io.BufferedReader(ResumableBody(s3, bucket, key, response)) as body:
                raw = body.read()
        except PreconditionFailed:
            if attempt == READ_ATTEMPTS - 1:
                raise
            log.info("%s changed while it was read; reading it again", key)
            continue
        try:
            return json.loads(raw), response["ETag"]
        except ValueError as err:
            if attempt == READ_ATTEMPTS - 1:
                raise CorruptDocument(
                    f"s3://{bucket}/{key} is not a JSON document ({err}), read {READ_ATTEMPTS} times: it was "
                    "written or damaged by something else; restore an earlier version of it",
                    reason=str(err),
                ) from err
            log.warning("%s was not one whole JSON document (%s); reading it again", key, err)
            time.sleep(min(0.05 * 2**attempt, 1.0))
    raise AssertionError("unreachable")


def put_json(
    s3: Any,
    bucket: str,
    key: str,
    document: Any,
    *,
    if_none_match: bool = False,
    if_match: str | None = None,
    clock: ServerClock | None = None,
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
        clock=clock,
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
    clock: ServerClock | None = None,
) -> str:
    """Write an object and return its ETag. With a condition, a lost race raises PreconditionFailed (NotFound
    for If-Match on a key that is gone), and a write whose answer was lost is recognised by its write id.
    With a `clock`, a write's answer tells it the server's time."""
    conditions = _conditions(if_none_match, if_match)
    if not conditions:
        sent = time.time()
        with s3_errors():
            answer = lean.call(s3, "put_object", Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        if clock is not None:
            clock.observe(answer, sent)
        return answer["ETag"]
    write_id = uuid.uuid4().hex

    def write() -> str:
        sent = time.time()
        answer = lean.call(
            s3,
            "put_object",
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            Metadata={WRITE_ID: write_id},
            **conditions,
        )
        if clock is not None:
            clock.observe(answer, sent)
        return answer["ETag"]

    return _conditional(s3, bucket, key, write_id, write)


def create_once(s3: Any, bucket: str, key: str) -> bool:
    """Write an empty object unless the key exists: True if this call created it (even if its answer was lost)."""
    try:
        put_bytes(s3, bucket, key, b"", "application/octet-stream", if_none_match=True)
    except PreconditionFailed:
        return False
    return True


def written_by(s3: Any, bucket: str, key: str, write_id: str) -> str | None:
    """The key's ETag if its current version is the write with this id, else None."""
    current = head_or_none(s3, bucket, key)
    if current is None:
        return None
    metadata = {str(k).lower(): v for k, v in (current.get("Metadata") or {}).items()}
    return current["ETag"] if metadata.get(WRITE_ID) == write_id else None


def _conditions(if_none_match: bool, if_match: str | None) -> dict[str, str]:
    conditions = {}
    if if_none_match:
        conditions["IfNoneMatch"] = "*"
    if if_match:
        conditions["IfMatch"] = if_match
    return conditions


def _conditional(s3: Any, bucket: str, key: str, write_id: str, write: Any) -> str:
    """Run a conditional write; when it fails in a way a lost answer can cause, read back before deciding."""
    for attempt in range(3):
        try:
            with s3_errors():
                return write()
        except (PreconditionFailed, NotFound, Transient) as err:
            etag = written_by(s3, bucket, key, write_id)
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
        conditions = _pending_conditions.get((params.get("Bucket", ""), params.get("Key", "")))
    if conditions:
        params.update(conditions)


@contextmanager
def destination_conditions(s3: Any, bucket: str, key: str, *, if_none_match: bool = False, if_match: str | None = None):
    """Add If-None-Match / If-Match to the request that creates `key` inside a managed transfer.

    s3transfer forwards neither to CompleteMultipartUpload (nor to the PutObject of a small upload), so they are
    added on the way out by a botocore event handler, for this one key while the block runs.
    """
    conditions = _conditions(if_none_match, if_match)
    if not conditions:
        yield
        return
    for operation in ("CompleteMultipartUpload", "PutObject", "CopyObject"):
        s3.meta.events.register(
            f"before-parameter-build.s3.{operation}",
            _add_pending_conditions,
            unique_id=f"ingest-conditions-{operation}",
        )
    with _pending_lock:
        _pending_conditions[(bucket, key)] = conditions
    try:
        yield
    finally:
        with _pending_lock:
            _pending_conditions.pop((bucket, key), None)


def open_body(s3: Any, bucket: str, key: str) -> IO[bytes] | None:
    """The object's body as a stream that survives cut-off reads, or None when it does not exist."""
    return open_versioned(s3, bucket, key)[0]


def open_versioned(s3: Any, bucket: str, key: str) -> tuple[IO[bytes] | None, str | None]:
    """(body stream, ETag) of the object, or (None, None) when it does not exist."""
    try:
        with s3_errors():
            response = s3.get_object(Bucket=bucket, Key=key)
    except NotFound:
        return None, None
    return io.BufferedReader(ResumableBody(s3, bucket, key, response), buffer_size=256 * 1024), response["ETag"]


class ResumableBody(io.RawIOBase):
    """A GetObject body that, when the connection breaks mid-read, asks for the rest with `Range` and
    `If-Match` on the ETag it started with, so the bytes it returns are always one version's."""

    def __init__(self, s3: Any, bucket: str, key: str, response: dict[str, Any]):
        super().__init__()
        self._s3, self._bucket, self._key = s3, bucket, key
        self._etag = response["ETag"]
        self._size = int(response.get("ContentLength", -1))
        self._body = response["Body"]
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        for attempt in range(READ_ATTEMPTS):
            try:
                with s3_errors():
                    data = self._body.read(len(buffer))
                if not data and 0 <= self._position < self._size:
                    raise Transient(f"body of {self._key} ended at byte {self._position} of {self._size}")
            except Transient as err:
                if attempt == READ_ATTEMPTS - 1:
                    raise
                log.warning("read of %s broke at byte %d (%s); resuming", self._key, self._position, err.code)
                time.sleep(min(0.05 * 2**attempt, 2.0))
                self._reopen()
                continue
            buffer[: len(data)] = data
            self._position += len(data)
            return len(data)
        raise AssertionError("unreachable")

    def _reopen(self) -> None:
        if self._position >= self._size >= 0:
            self._body = io.BytesIO(b"")
            return
        try:
            with s3_errors():
                response = self._s3.get_object(
                    Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-", IfMatch=self._etag
                )
        except S3Error as err:
            if not isinstance(err, NotFound) and err.code != "InvalidRange":
                raise
            # The object is now shorter than what was read of it, or gone: another version, as If-Match would
            # have said on a server that checks it (rclone serve s3 answers 416, or 404 mid-rewrite, instead).
            raise PreconditionFailed(
                f"{self._key} changed while it was read ({err.code})", code="PreconditionFailed", cause=err
            ) from err
        if response.get("ETag") != self._etag:
            # If-Match ignored (rclone serve s3): these bytes belong to another version.
            response["Body"].close()
            raise PreconditionFailed(
                f"{self._key} changed while it was read (ETag {self._etag} is now {response.get('ETag')})",
                code="PreconditionFailed",
            )
        self._body = response["Body"]

    def close(self) -> None:
        try:
            self._body.close()
        finally:
            super().close()


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


def upload_file(
    s3: Any,
    bucket: str,
    key: str,
    fileobj: IO[bytes],
    content_type: str,
    *,
    if_none_match: bool = False,
    if_match: str | None = None,
) -> str | None:
    """Upload a temp file with the managed transfer (multipart when large) from its start.

    With a condition it returns the new ETag (read back: the managed transfer does not return it), and a lost
    answer is recognised by the write id as in `put_bytes`.
    """
    conditions = _conditions(if_none_match, if_match)
    if not conditions:
        fileobj.seek(0)
        with s3_errors():
            s3.upload_fileobj(fileobj, bucket, key, ExtraArgs={"ContentType": content_type})
        return None
    write_id = uuid.uuid4().hex

    def write() -> str:
        fileobj.seek(0)
        extra = {"ContentType": content_type, "Metadata": {WRITE_ID: write_id}}
        with destination_conditions(s3, bucket, key, if_none_match=if_none_match, if_match=if_match):
            s3.upload_fileobj(fileobj, bucket, key, ExtraArgs=extra)
        etag = written_by(s3, bucket, key, write_id)
        if etag is None:
            raise PreconditionFailed(f"PreconditionFailed: {key} was replaced right after our upload", code="412")
        return etag

    return _conditional(s3, bucket, key, write_id, write)


def head(s3: Any, bucket: str, key: str, *, if_match: str | None = None, checksums: bool = False) -> dict[str, Any]:
    """HEAD an object; raises NotFound, PreconditionFailed (with if_match) and the rest as translated.

    With `checksums`, the answer carries the object's content checksum (`x-amz-checksum-mode: ENABLED`: the
    `Checksum<ALGORITHM>` and `ChecksumType` fields), read from S3's metadata: no data is read."""
    kwargs = {"IfMatch": if_match} if if_match else {}
    if checksums:
        kwargs["ChecksumMode"] = "ENABLED"
    with s3_errors():
        return lean.call(s3, "head_object", Bucket=bucket, Key=key, **kwargs)


def head_or_none(s3: Any, bucket: str, key: str, *, checksums: bool = False) -> dict[str, Any] | None:
    try:
        return head(s3, bucket, key, checksums=checksums)
    except NotFound:
        return None


def copy_object(s3: Any, **kwargs: Any) -> dict[str, Any]:
    """CopyObject (lean.py's road when the answer is plain; botocore's, with its retries, otherwise)."""
    with s3_errors():
        return lean.call(s3, "copy_object", **kwargs)


def wait(future: Any) -> Any:
    """The result of an s3transfer future, its failure translated like any other S3 error."""
    with s3_errors():
        return future.result()


def delete(s3: Any, bucket: str, key: str, *, if_match: str | None = None) -> None:
    """Delete a key; one that is already gone is what the caller wanted (a retried delete whose first answer
    was lost finds it gone). With `if_match`, a key rewritten since raises PreconditionFailed."""
    kwargs = {"IfMatch": if_match} if if_match else {}
    try:
        with s3_errors():
            s3.delete_object(Bucket=bucket, Key=key, **kwargs)
    except NotFound:
        pass


def iter_source_objects(
    s3: Any,
    bucket: str,
    prefix: str,
    *,
    skip_prefix: str | None = None,
    start_after: str | None = None,
    end_at: str | None = None,
) -> Iterator[SourceObject]:
    """Every object under the prefix, page by page (1,000 a page), without holding the listing in memory; with
    a range, only keys `start_after < key <= end_at` (a shard's): listing starts after the one and stops past
    the other."""
    for item in _iter_contents(s3, bucket, prefix, start_after=start_after):
        key = item["Key"]
        if end_at is not None and key > end_at:
            return
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


def iter_etags(s3: Any, bucket: str, prefix: str) -> Iterator[tuple[str, str]]:
    """(key, ETag as HEAD gives it, quoted) of every object under a prefix."""
    for item in _iter_contents(s3, bucket, prefix):
        yield item["Key"], item["ETag"]


def delete_keys(s3: Any, bucket: str, keys: Iterable[str]) -> None:
    """Delete the given keys, DELETE_BATCH a request."""
    chunk: list[dict[str, str]] = []
    for key in keys:
        chunk.append({"Key": key})
        if len(chunk) == DELETE_BATCH:
            _delete_objects(s3, bucket, chunk)
            chunk = []
    if chunk:
        _delete_objects(s3, bucket, chunk)


def delete_prefix(s3: Any, bucket: str, prefix: str, *, older_than_seconds: float | None = None) -> None:
    """Delete every object under a prefix (with an age, only those last modified longer ago than it, by this
    machine's clock against the server's LastModified), DELETE_BATCH keys a request."""
    if older_than_seconds is None:
        delete_keys(s3, bucket, iter_keys(s3, bucket, prefix))
        return
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    delete_keys(
        s3, bucket, (item["Key"] for item in _iter_contents(s3, bucket, prefix) if item["LastModified"] < cutoff)
    )


def _delete_objects(s3: Any, bucket: str, objects: list[dict[str, str]]) -> None:
    with s3_errors():
        s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def list_folders(s3: Any, bucket: str, prefix: str, *, max_pages: int = 10) -> tuple[list[str], bool]:
    """The folders (common prefixes) right under `prefix`, from a delimiter listing of at most `max_pages`
    pages, and whether there are objects directly under it too. Cheap: one entry per folder, not per key."""
    folders: list[str] = []
    files = False
    with s3_errors():
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        for number, page in enumerate(pages):
            folders.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
            files = files or bool(page.get("Contents"))
            if number + 1 >= max_pages:
                break
    return folders, files


def require_bucket(s3: Any, bucket: str) -> None:
    """Raise NoSuchBucket when the bucket does not exist: a HEAD's 404 has no body, so it cannot tell a missing
    bucket from a missing key (one listing request)."""
    with s3_errors():
        s3.list_objects_v2(Bucket=bucket, MaxKeys=1)


def more_than_a_page(s3: Any, bucket: str, prefix: str) -> bool:
    """Whether the prefix holds more than one listing page (1,000 keys): one request."""
    with s3_errors():
        return bool(s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("IsTruncated"))


def _iter_contents(s3: Any, bucket: str, prefix: str, *, start_after: str | None = None) -> Iterator[dict[str, Any]]:
    road = lean.of(s3)
    if road is None:
        kwargs = {"StartAfter": start_after} if start_after is not None else {}
        with s3_errors():
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, **kwargs):
                yield from page.get("Contents", ())
        return
    token: str | None = None
    while True:
        with s3_errors():
            try:
                contents, token = road.list_page(bucket, prefix, start_after=start_after, token=token)
            except lean.Declined as why:  # this page through botocore, with its retries; the next on the road
                log.debug("list page of %s through botocore: %s", prefix, why)
                contents, token = _botocore_page(s3, bucket, prefix, start_after, token)
        yield from contents
        if token is None:
            return


def _botocore_page(
    s3: Any, bucket: str, prefix: str, start_after: str | None, token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}  # botocore sets and decodes url encoding
    if start_after is not None:
        kwargs["StartAfter"] = start_after
    if token is not None:
        kwargs["ContinuationToken"] = token
    page = s3.list_objects_v2(**kwargs)
    return page.get("Contents", []), page.get("NextContinuationToken") if page.get("IsTruncated") else None
