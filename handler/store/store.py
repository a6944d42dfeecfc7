"""The one storage object: a boto3 S3 client, the fast road beside it, and every S3 call the runtime makes.

Every call goes through `Store._call`, which picks the road (the fast road, lean.py, when the store has it and
the call is one it carries; botocore's otherwise) and translates botocore's and s3transfer's errors, once, into
the package's exceptions (errors.py). Decisions stay with the callers; the store only moves bytes and reports
what S3 said. Two faults S3 produces every night at scale are absorbed here, once, for every caller: a write
whose answer was lost (writes.py) and a body cut off mid-read (reads.py).
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from boto3.s3.transfer import TransferConfig, create_transfer_manager
from s3transfer.subscribers import BaseSubscriber

from ..errors import CorruptDocument
from ..selection import SourceObject, clean_etag
from . import clients, lean, retries, writes
from .errors import NotFound, PreconditionFailed, s3_errors
from .reads import READ_ATTEMPTS, ResumableBody, iter_lines
from .server_clock import ServerClock

log = logging.getLogger(__name__)

DELETE_BATCH = 1000
"""DeleteObjects takes at most 1,000 keys a request."""


class _KnownSource(BaseSubscriber):
    """Hands s3transfer the size and ETag we already have, sparing it a HEAD per object."""

    def __init__(self, size: int, etag: str):
        self._size = size
        self._etag = etag

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self._size)
        future.meta.provide_object_etag(self._etag)


class Store:
    """S3 as the runtime sees it: one client, and every call on it translated into the package's exceptions.

    `fast_road` is an optional capability (lean.py): the per-object calls, the ledger's small documents and the
    listing pages on a short road where the answer is plain. Without it every call takes botocore's road."""

    def __init__(self, client: Any, *, fast_road: lean.LeanS3 | None = None, fast_road_off: str | None = None):
        self.client = client
        self._road = fast_road
        self._road_off = fast_road_off if fast_road is None else None

    @classmethod
    def sized(cls, session: Any = None, *, concurrency: int = 32, endpoint_url: str | None = None) -> Store:
        """The store of a run: one client whose pool is as large as the copy concurrency, its answers parsed the
        cheap way where botocore's costs more (parsing.py), retried by one policy on both roads (retries.py),
        and the fast road open unless something closes it (lean.py)."""
        client, credentials, twin = clients.s3_client(session, concurrency=concurrency, endpoint_url=endpoint_url)
        why_not = lean.closed_because(client, credentials)
        if why_not is not None:
            log.debug("the fast road is closed: %s", why_not)
            return cls(client, fast_road_off=why_not)
        return cls(client, fast_road=lean.open_road(client, credentials, twin))

    # -- the fast road, a capability ------------------------------------------------------------------------

    @property
    def fast_road(self) -> lean.LeanS3 | None:
        """The fast road, when this store has it and nothing answers the client's requests before they are sent
        (moto's mock, botocore's Stubber: then every call goes botocore's way)."""
        if self._road is None or lean.intercepted(self.client):
            return None
        return self._road

    @property
    def fast_road_off(self) -> str | None:
        """Why this store's calls all take botocore's road (None: the fast road is on)."""
        if self._road is None:
            return self._road_off or "the store was made from a client, not by Store.sized"
        if lean.intercepted(self.client):
            return "a before-send handler answers the client's requests (a mock or a Stubber)"
        return None

    # -- the one call path ----------------------------------------------------------------------------------

    def _call(self, operation: str, /, *, fast: bool = False, **params: Any) -> Any:
        """`client.<operation>(**params)`, on the fast road when `fast` (a call whose answer it can give whole)
        and the store has it; botocore's and s3transfer's errors come out as the package's."""
        with self._translated():
            road = self.fast_road if fast and operation in lean.CARRIED else None
            if road is not None:
                return lean.answer(road, operation, params, lambda: getattr(self.client, operation)(**params))
            return getattr(self.client, operation)(**params)

    def _translated(self) -> AbstractContextManager[None]:
        """The translation `_call` makes, around what is not one call: a body's reads, a transfer's wait."""
        return s3_errors()

    # -- JSON documents and bytes ---------------------------------------------------------------------------

    def get_json(self, bucket: str, key: str, *, clock: ServerClock | None = None) -> tuple[Any, str | None]:
        """(document, ETag) or (None, None) when absent; a body cut off mid-read is resumed, and a document
        rewritten while it was read (its resume refused: the lock, renewed by another process) is read again.

        A body that is not JSON is read again too: S3's reads are atomic, but a server that rewrites files in
        place (`rclone serve s3`) can serve parts of two versions in one answer. One that stays unreadable is
        reported. With a `clock`, the answer's `Date` (a 404's too) tells it the server's time."""
        for attempt in range(READ_ATTEMPTS):
            sent = time.time()
            try:
                response = self._call("get_object", fast=True, Bucket=bucket, Key=key)
            except NotFound as absent:
                if clock is not None:
                    clock.observe(absent, sent)
                return None, None
            if clock is not None:
                clock.observe(response, sent)
            try:
                with io.BufferedReader(self._resumable(bucket, key, response)) as body:
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
                        f"s3://{bucket}/{key} is not a JSON document ({err}), read {READ_ATTEMPTS} times: it "
                        "was written or damaged by something else; restore an earlier version of it",
                        reason=str(err),
                    ) from err
                log.warning("%s was not one whole JSON document (%s); reading it again", key, err)
                time.sleep(min(0.05 * 2**attempt, 1.0))
        raise AssertionError("unreachable")

    def put_json(self, bucket: str, key: str, document: Any, **write: Any) -> str:
        """Write a JSON document and return its ETag; `write` as for `put_bytes` (its conditions and clock)."""
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return self.put_bytes(bucket, key, body, "application/json", **write)

    def put_bytes(
        self,
        bucket: str,
        key: str,
        body: bytes,
        content_type: str,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        clock: ServerClock | None = None,
    ) -> str:
        """Write an object and return its ETag. With a condition, a lost race raises PreconditionFailed
        (NotFound for If-Match on a key that is gone), and a write whose answer was lost is recognised by its
        write id (writes.py). With a `clock`, a write's answer tells it the server's time."""
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": body, "ContentType": content_type}

        def write(**condition: Any) -> str:
            sent = time.time()
            answer = self._call("put_object", fast=True, **params, **condition)
            if clock is not None:
                clock.observe(answer, sent)
            return answer["ETag"]

        conditions = writes.conditions(if_none_match, if_match)
        if not conditions:
            return write()
        write_id = writes.new_write_id()
        return writes.conditional(
            key,
            lambda: write(Metadata={writes.WRITE_ID: write_id}, **conditions),
            lambda: self._written_by(bucket, key, write_id),
        )

    def create_once(self, bucket: str, key: str) -> bool:
        """Write an empty object unless the key exists: True if this call created it (even if its answer was
        lost)."""
        try:
            self.put_bytes(bucket, key, b"", "application/octet-stream", if_none_match=True)
        except PreconditionFailed:
            return False
        return True

    def _written_by(self, bucket: str, key: str, write_id: str) -> str | None:
        return writes.written_by(self.head_or_none(bucket, key), write_id)

    def upload_file(
        self,
        bucket: str,
        key: str,
        fileobj: IO[bytes],
        content_type: str,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str | None:
        """Upload a temp file with the managed transfer (multipart when large) from its start.

        With a condition it returns the new ETag (read back: the managed transfer does not return it), and a
        lost answer is recognised by the write id as in `put_bytes`.
        """
        conditions = writes.conditions(if_none_match, if_match)
        if not conditions:
            fileobj.seek(0)
            self._call(
                "upload_fileobj", Fileobj=fileobj, Bucket=bucket, Key=key, ExtraArgs={"ContentType": content_type}
            )
            return None
        write_id = writes.new_write_id()

        def write() -> str:
            fileobj.seek(0)
            extra = {"ContentType": content_type, "Metadata": {writes.WRITE_ID: write_id}}
            with writes.destination_conditions(
                self.client, bucket, key, if_none_match=if_none_match, if_match=if_match
            ):
                self._call("upload_fileobj", Fileobj=fileobj, Bucket=bucket, Key=key, ExtraArgs=extra)
            etag = self._written_by(bucket, key, write_id)
            if etag is None:
                raise PreconditionFailed(f"PreconditionFailed: {key} was replaced right after our upload", code="412")
            return etag

        return writes.conditional(key, write, lambda: self._written_by(bucket, key, write_id))

    def get_bytes(self, bucket: str, key: str) -> bytes:
        """A whole object's bytes (a config file); NotFound when it does not exist."""
        with self._translated():
            return self._call("get_object", Bucket=bucket, Key=key)["Body"].read()

    # -- streamed reads -------------------------------------------------------------------------------------

    def open_body(self, bucket: str, key: str) -> IO[bytes] | None:
        """The object's body as a stream that survives cut-off reads, or None when it does not exist."""
        return self.open_versioned(bucket, key)[0]

    def open_versioned(self, bucket: str, key: str) -> tuple[IO[bytes] | None, str | None]:
        """(body stream, ETag) of the object, or (None, None) when it does not exist."""
        try:
            response = self._call("get_object", Bucket=bucket, Key=key)
        except NotFound:
            return None, None
        return io.BufferedReader(self._resumable(bucket, key, response), buffer_size=256 * 1024), response["ETag"]

    def read_range(
        self, bucket: str, key: str, start: int, length: int, *, if_match: str | None = None
    ) -> tuple[bytes, dict[str, Any]]:
        """Up to `length` bytes of an object from byte `start` (one ranged GET, pinned to `if_match`), and the
        rest of its answer (ETag, ContentRange, ContentLength)."""
        conditions = {"IfMatch": if_match} if if_match else {}
        with self._translated():
            response = self._call(
                "get_object", Bucket=bucket, Key=key, Range=f"bytes={start}-{start + length - 1}", **conditions
            )
            data = response["Body"].read(length)
            response["Body"].close()
        return data, response

    def _resumable(self, bucket: str, key: str, response: dict[str, Any]) -> ResumableBody:
        def rest(start: int, etag: str) -> dict[str, Any]:
            return self._call("get_object", Bucket=bucket, Key=key, Range=f"bytes={start}-", IfMatch=etag)

        return ResumableBody(key, response, rest, self._translated)

    def iter_lines(self, body: IO[bytes]) -> Iterator[dict[str, Any]]:
        """Decode a JSON Lines stream lazily (blank lines are allowed and skipped)."""
        return iter_lines(body, self._translated)

    def read_jsonl(self, bucket: str, key: str) -> Iterator[dict[str, Any]] | None:
        """Stream the lines of a JSONL object, or None when it does not exist."""
        body = self.open_body(bucket, key)
        return None if body is None else self.iter_lines(body)

    # -- objects --------------------------------------------------------------------------------------------

    def head(self, bucket: str, key: str, *, if_match: str | None = None, checksums: bool = False) -> dict[str, Any]:
        """HEAD an object; raises NotFound, PreconditionFailed (with if_match) and the rest as translated.

        With `checksums`, the answer carries the object's content checksum (`x-amz-checksum-mode: ENABLED`: the
        `Checksum<ALGORITHM>` and `ChecksumType` fields), read from S3's metadata: no data is read."""
        kwargs = {"IfMatch": if_match} if if_match else {}
        if checksums:
            kwargs["ChecksumMode"] = "ENABLED"
        return self._call("head_object", fast=True, Bucket=bucket, Key=key, **kwargs)

    def head_or_none(self, bucket: str, key: str, *, checksums: bool = False) -> dict[str, Any] | None:
        try:
            return self.head(bucket, key, checksums=checksums)
        except NotFound:
            return None

    def copy_object(self, **params: Any) -> dict[str, Any]:
        """CopyObject (the fast road's when the answer is plain; botocore's, with its retries, otherwise)."""
        return self._call("copy_object", fast=True, **params)

    def delete(self, bucket: str, key: str, *, if_match: str | None = None) -> None:
        """Delete a key; one that is already gone is what the caller wanted (a retried delete whose first answer
        was lost finds it gone). With `if_match`, a key rewritten since raises PreconditionFailed."""
        kwargs = {"IfMatch": if_match} if if_match else {}
        try:
            self._call("delete_object", Bucket=bucket, Key=key, **kwargs)
        except NotFound:
            pass

    def delete_keys(self, bucket: str, keys: Iterable[str]) -> None:
        """Delete the given keys, DELETE_BATCH a request."""
        chunk: list[dict[str, str]] = []
        for key in keys:
            chunk.append({"Key": key})
            if len(chunk) == DELETE_BATCH:
                self._call("delete_objects", Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
                chunk = []
        if chunk:
            self._call("delete_objects", Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})

    def delete_prefix(self, bucket: str, prefix: str, *, older_than_seconds: float | None = None) -> None:
        """Delete every object under a prefix (with an age, only those last modified longer ago than it, by this
        machine's clock against the server's LastModified), DELETE_BATCH keys a request."""
        if older_than_seconds is None:
            self.delete_keys(bucket, self.iter_keys(bucket, prefix))
            return
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        self.delete_keys(
            bucket, (item["Key"] for item in self._iter_contents(bucket, prefix) if item["LastModified"] < cutoff)
        )

    # -- managed copies -------------------------------------------------------------------------------------

    def transfer_manager(self, *, concurrency: int, threshold: int, chunk: int) -> Any:
        """One managed-transfer pool per run, sharing the store's client and its connection pool."""
        config = TransferConfig(
            multipart_threshold=threshold,
            multipart_chunksize=chunk,
            max_concurrency=concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        return create_transfer_manager(self.client, config)

    def multipart_copy(
        self, tm: Any, source_bucket: str, source_key: str, bucket: str, key: str, extra: dict[str, Any], size: int
    ) -> None:
        """s3transfer's parallel UploadPartCopy of a source whose size and ETag (`CopySourceIfMatch`) are known,
        never over an existing target: the complete carries If-None-Match (s3transfer would not send it). A
        failed UploadPartCopy has been aborted by s3transfer when this raises."""
        with self._translated():
            future = tm.copy(
                {"Bucket": source_bucket, "Key": source_key},
                bucket,
                key,
                extra_args=extra,
                subscribers=[_KnownSource(size, extra["CopySourceIfMatch"])],
            )
            with writes.destination_conditions(self.client, bucket, key, if_none_match=True):
                future.result()

    # -- listings -------------------------------------------------------------------------------------------

    def iter_source_objects(
        self,
        bucket: str,
        prefix: str,
        *,
        skip_prefix: str | None = None,
        start_after: str | None = None,
        end_at: str | None = None,
    ) -> Iterator[SourceObject]:
        """Every object under the prefix, page by page (1,000 a page), without holding the listing in memory;
        with a range, only keys `start_after < key <= end_at` (a shard's): listing starts after the one and
        stops past the other."""
        for item in self._iter_contents(bucket, prefix, start_after=start_after):
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

    def iter_keys(self, bucket: str, prefix: str) -> Iterator[str]:
        for item in self._iter_contents(bucket, prefix):
            yield item["Key"]

    def iter_etags(self, bucket: str, prefix: str) -> Iterator[tuple[str, str]]:
        """(key, ETag as HEAD gives it, quoted) of every object under a prefix."""
        for item in self._iter_contents(bucket, prefix):
            yield item["Key"], item["ETag"]

    def list_folders(self, bucket: str, prefix: str, *, max_pages: int | None = 10) -> tuple[list[str], bool]:
        """The folders (common prefixes) right under `prefix`, from a delimiter listing of at most `max_pages`
        pages (None: all of them), and whether there are objects directly under it too. Cheap: one entry per
        folder, not per key."""
        folders: list[str] = []
        files = False
        for number, page in enumerate(self._pages(bucket, prefix, Delimiter="/")):
            folders.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
            files = files or bool(page.get("Contents"))
            if max_pages is not None and number + 1 >= max_pages:
                break
        return folders, files

    def require_bucket(self, bucket: str) -> None:
        """Raise NoSuchBucket when the bucket does not exist: a HEAD's 404 has no body, so it cannot tell a
        missing bucket from a missing key (one listing request)."""
        self._call("list_objects_v2", Bucket=bucket, MaxKeys=1)

    def more_than_a_page(self, bucket: str, prefix: str) -> bool:
        """Whether the prefix holds more than one listing page (1,000 keys): one request."""
        return bool(self._call("list_objects_v2", Bucket=bucket, Prefix=prefix).get("IsTruncated"))

    def _iter_contents(self, bucket: str, prefix: str, *, start_after: str | None = None) -> Iterator[dict[str, Any]]:
        kwargs = {"StartAfter": start_after} if start_after is not None else {}
        for page in self._pages(bucket, prefix, fast=True, **kwargs):
            yield from page.get("Contents", ())

    def _pages(self, bucket: str, prefix: str, *, fast: bool = False, **params: Any) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 page by page (botocore sets and decodes the url encoding; the fast road its own)."""
        token: str | None = None
        while True:
            kwargs = dict(params, ContinuationToken=token) if token is not None else params
            page = self._call("list_objects_v2", fast=fast, Bucket=bucket, Prefix=prefix, **kwargs)
            yield page
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            if token is None:
                return

    # -- the client's retries -------------------------------------------------------------------------------

    def retry_counts(self, since: retries.Counts | None = None) -> retries.Counts | None:
        """What the client's retry policy counted (since an earlier count), None for a client without one."""
        return retries.report(self.client, since)

    def log_retries(self, what: str, since: retries.Counts | None = None) -> None:
        """Log the client's attempts, retries and throttles for `what` (retries.py)."""
        retries.log_report(self.client, what, since)
