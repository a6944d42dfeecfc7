"""Server-side copy of one planned object, guarded, verified and idempotent.

Above the multipart threshold the copy is boto3's managed transfer (s3transfer): parallel UploadPartCopy
(mandatory past 5 GiB). Below it the copy is the one CopyObject the managed transfer would make, called
directly so its response's ETag verifies the copy without another request. A multipart copy does not carry content type
or metadata over, so both are always set explicitly from a HEAD of the source (with `source_metadata: lineage`,
from the key's extension, and the single-part copy needs no HEAD at all). The HEAD and the copy are
guarded with the listed ETag, and the landed object is checked afterwards, because some servers (moto
among them) ignore CopySourceIfMatch.

A copy never overwrites: CopyObject and CompleteMultipartUpload carry `If-None-Match: *`, so what an earlier
run landed stays, and a retried copy whose first answer was lost meets its own object. Any copy that does not
answer success is followed by a read-back of the target: our lineage there (this run's id) means it landed.

Every copy gets a content checksum of the landed object from S3 (`ChecksumAlgorithm`: the source's algorithm when
its full-object checksum can be matched, else CRC64NVME; without a source HEAD, none asked, and S3 carries the
source's algorithm over), and the landed copy is judged by integrity.py: equal
checksums or ETags verify it, a proven difference removes it, and where nothing compares (a KMS or multipart
ETag, no common checksum) its size and the conditional copy stand. The manifest line records the landed
checksum, the source's when read, and how the copy was verified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from . import metadata as meta
from .contracts import FAIL, Contracts
from .integrity import Facts, Judgement, Verified, copy_algorithm, judge
from .layout import UnsafeKey
from .records import BatchItem, ManifestLine, ObjectStatus, utc_now
from .store import NoSuchBucket, NotFound, PreconditionFailed, S3Error, Store

log = logging.getLogger(__name__)

CARRIED_HEADERS = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl")

CHANGED_DURING_COPY = "source changed during the copy (CopySourceIfMatch); it lands on the next run"
SOURCE_GONE = "source object is gone since listing"

COPIED, SKIPPED, FAILED = ObjectStatus.COPIED, ObjectStatus.SKIPPED, ObjectStatus.FAILED


@dataclass(frozen=True)
class CopyContext:
    """What every copy of one run shares."""

    dataset: str
    run_id: str
    date: str
    source_bucket: str
    target_bucket: str
    multipart_threshold: int
    # A batch's first attempt of a fresh run cannot find its own copies: it skips the HEAD that looks for
    # them. Retries and resumed runs look first, so nothing is copied twice.
    check_target: bool = True
    # `source_metadata: carry`: the source's content headers and user metadata land too, read with a HEAD.
    # Without it a single-part copy is one CopyObject, guarded by CopySourceIfMatch and verified by its ETag.
    carry_source_metadata: bool = True
    # Schema contracts (contracts.py): None when no file of the dataset is checked, and the copy is as it was.
    contracts: Contracts | None = None

    def lineage(self, item: BatchItem, ingested_at: str) -> meta.Lineage:
        """What the landed copy of `item` will say about where it came from."""
        return meta.Lineage(self.source_bucket, item.key, item.etag, self.dataset, self.date, self.run_id, ingested_at)


_line = ManifestLine.of


def copy_one(store: Store, tm: Any, item: BatchItem, ctx: CopyContext) -> ManifestLine:
    """Land one object; never raises for the object's own problems, returns its manifest line instead."""
    try:
        if ctx.contracts is None:
            return _copy_one(store, tm, item, ctx)
        return _copy_checked(store, tm, item, ctx, ctx.contracts)
    except Exception as err:  # one bad object must not abort the other 9,999
        log.warning("copy of %r failed: %s", item.key, err)
        reason = err.reason if isinstance(err, S3Error) else f"{type(err).__name__}: {err}"
        return _line(item, FAILED, reason)


def _copy_checked(store: Store, tm: Any, item: BatchItem, ctx: CopyContext, contracts: Contracts) -> ManifestLine:
    """An object of a dataset with schema contracts: its header read (one ranged GET of the listed version, for a
    file of a checked table) and, when it differs from the declared columns, its table's policy applied: landed
    where it would have, landed under the quarantine folder, or failed. Its line records the difference."""
    try:
        verdict = contracts.verdict(store, ctx.source_bucket, item)
    except NotFound:
        return _line(item, FAILED, SOURCE_GONE)
    except PreconditionFailed:
        return _line(item, FAILED, "source changed since listing (ETag differs); it lands on the next run")
    except UnsafeKey as err:
        return _line(item, FAILED, f"schema drift, and it cannot be quarantined: {err}")
    if verdict is None:
        return _copy_one(store, tm, item, ctx)
    if verdict.policy == FAIL:
        reason = (
            f"schema drift ({verdict.drift}); its table's on_schema_drift is fail: it lands once its header matches "
            "the declared columns (or they are changed to match it)"
        )
        return _line(item, FAILED, reason, schema_drift=verdict.drift)
    line = _copy_one(store, tm, replace(item, target=verdict.target), ctx)
    return replace(line, schema_drift=verdict.drift)


def _copy_one(store: Store, tm: Any, item: BatchItem, ctx: CopyContext) -> ManifestLine:
    if ctx.check_target:
        head = _target_head(store, item, ctx)
        line = None if head is None else _already_there(store, item, ctx, head)
        if line is not None and line.status == COPIED:  # an earlier attempt's, perhaps never verified: verify it
            assert head is not None
            return _settle(store, _Attempt(item, ctx, line.ingested_at or ""), Facts.of(head), head, line)
        if line is not None:
            return line

    quoted = f'"{item.etag}"'
    multipart = item.size >= ctx.multipart_threshold
    source: dict[str, Any] = {}
    facts: Facts | None = None
    if ctx.carry_source_metadata or multipart:  # a multipart copy compares the source before and after
        try:
            source = store.head(ctx.source_bucket, item.key, if_match=quoted, checksums=True)
        except NotFound:
            return _line(item, FAILED, SOURCE_GONE)
        except PreconditionFailed:
            return _line(item, FAILED, "source changed since listing (ETag differs); it lands on the next run")
        facts = Facts.of(source)
    carried = source if ctx.carry_source_metadata else {"ContentType": meta.content_type_for(item.key)}

    ingested_at = utc_now()
    try:
        user_metadata = meta.merged(carried.get("Metadata"), ctx.lineage(item, ingested_at).metadata())
    except meta.MetadataTooLarge as err:
        return _line(item, FAILED, str(err))
    extra: dict[str, Any] = {h: carried[h] for h in CARRIED_HEADERS if carried.get(h)}
    extra.setdefault("ContentType", "binary/octet-stream")
    extra.update(Metadata=user_metadata, MetadataDirective="REPLACE", CopySourceIfMatch=quoted)
    # The landed object's checksum, computed by S3, in the source's algorithm where the two can then compare.
    algorithm = copy_algorithm(facts, multipart=multipart)
    if algorithm is not None:
        extra["ChecksumAlgorithm"] = algorithm
    attempt = _Attempt(item, ctx, ingested_at, facts)

    if not multipart:
        return _copy_single(store, attempt, extra)

    try:
        # Never over an existing target (If-None-Match on the complete); a failed UploadPartCopy is aborted.
        store.multipart_copy(tm, ctx.source_bucket, item.key, ctx.target_bucket, item.target, extra, item.size)
    except S3Error as err:
        return _after_refusal(store, attempt, err)
    changed = _source_changed(store, item, ctx, source)
    if changed:
        return _discard(store, attempt, changed)
    head = store.head(ctx.target_bucket, item.target, checksums=True)
    return _settle(store, attempt, Facts.of(head), head)


@dataclass(frozen=True)
class _Attempt:
    """One copy attempt: its lineage timestamp tells the object it landed from any other attempt's."""

    item: BatchItem
    ctx: CopyContext
    ingested_at: str
    source: Facts | None = None
    """What a HEAD of the listed source version said (None: not read, `source_metadata: lineage`)."""


def settle_own_landing(store: Store, item: BatchItem, ctx: CopyContext, reason: str) -> ManifestLine | None:
    """The item's line if its target holds this run's copy of the listed version, verified as a fresh copy is
    (removed on a proven difference: a FAILED line), else None. How the finalize records a copy whose answer
    never reached the ledger, so a recovered line says how it was verified like any other."""
    head = store.head_or_none(ctx.target_bucket, item.target, checksums=True)
    if head is None or not is_own_landing(head, item, ctx.source_bucket, ctx.run_id):
        return None
    found = _line(item, COPIED, reason, meta.normalise(head.get("Metadata")).get(meta.TIMESTAMP))
    return _settle(store, _Attempt(item, ctx, found.ingested_at or ""), Facts.of(head), head, found)


def _target_head(store: Store, item: BatchItem, ctx: CopyContext) -> dict[str, Any] | None:
    """The target's HEAD, or None when it is free. A HEAD that fails here is no reason to fail the object: the
    copy itself never overwrites."""
    try:
        return store.head_or_none(ctx.target_bucket, item.target, checksums=True)
    except S3Error as err:
        if isinstance(err, NoSuchBucket):
            raise
        log.warning("HEAD of target %r failed (%s); copying with If-None-Match", item.target, err.code)
        return None


def _already_there(store: Store, item: BatchItem, ctx: CopyContext, head: dict[str, Any]) -> ManifestLine | None:
    """What the target's HEAD shows, as this item's line: landed by this run already, or occupied by another
    object (None: neither)."""
    landed = meta.landed_from(head.get("Metadata"))
    lineage = meta.normalise(head.get("Metadata"))
    if is_own_landing(head, item, ctx.source_bucket, ctx.run_id):
        return _line(item, COPIED, "already landed by an earlier attempt of this run", lineage.get(meta.TIMESTAMP))
    if landed == (ctx.source_bucket, item.key, item.etag) and head["ContentLength"] == item.size:
        return _line(
            item,
            SKIPPED,
            f"already landed by run {lineage.get(meta.RUN_ID)} at {item.target!r}; not claimed twice",
        )
    other = f"{landed[1]!r} ETag {landed[2]}" if landed else "an object without lineage metadata"
    return _line(
        item,
        SKIPPED,
        f"target occupied: {item.target!r} already holds {other}; this version lands on a later date",
    )


def is_own_landing(head: dict[str, Any], item: BatchItem, source_bucket: str, run_id: str) -> bool:
    """Whether a target's HEAD shows this run's copy of the listed version: its lineage names the source
    object and ETag and the run, and its size is the listed one. How a lost answer is recognised."""
    lineage = meta.normalise(head.get("Metadata"))
    return (
        meta.landed_from(lineage) == (source_bucket, item.key, item.etag)
        and lineage.get(meta.RUN_ID) == run_id
        and head.get("ContentLength") == item.size
    )


def _copy_single(store: Store, attempt: _Attempt, extra: dict[str, Any]) -> ManifestLine:
    """Below the threshold a managed copy is one CopyObject anyway; calling it here keeps its response.

    The response carries the landed object's ETag, encryption and checksum: when its checksum equals the
    source's, or its ETag the listed one, the copy is verified with no second request.
    """
    item, ctx = attempt.item, attempt.ctx
    try:
        response = store.copy_object(
            Bucket=ctx.target_bucket,
            Key=item.target,
            CopySource={"Bucket": ctx.source_bucket, "Key": item.key},
            IfNoneMatch="*",
            **extra,
        )
    except S3Error as err:
        return _after_refusal(store, attempt, err)
    return _settle(store, attempt, Facts.of(response, response.get("CopyObjectResult") or {}))


def _after_refusal(store: Store, attempt: _Attempt, err: S3Error) -> ManifestLine:
    """A copy that did not answer success may still have been applied (its answer lost, a retry refused by
    our own first attempt's object). Read back the target before deciding what happened."""
    item, ctx = attempt.item, attempt.ctx
    if isinstance(err, NoSuchBucket):
        raise err
    try:
        head = store.head_or_none(ctx.target_bucket, item.target, checksums=True)
    except S3Error as head_err:
        # Nothing is known: the finalize step reads the target back again before it commits.
        return _line(item, FAILED, f"{err.reason}; the target could not be read back ({head_err.code})")
    if head is not None:
        landed = _already_there(store, item, ctx, head)
        if landed is not None and landed.status == COPIED:
            return _settle(store, attempt, Facts.of(head), head, landed)
        if isinstance(err, PreconditionFailed) and landed is not None:
            return landed  # If-None-Match refused: another object is there, and it stays
    if isinstance(err, PreconditionFailed):
        return _line(item, FAILED, CHANGED_DURING_COPY)
    if isinstance(err, NotFound):
        return _line(item, FAILED, SOURCE_GONE)
    return _line(item, FAILED, err.reason)


def _settle(
    store: Store,
    attempt: _Attempt,
    landed: Facts,
    head: dict[str, Any] | None = None,
    found: ManifestLine | None = None,
) -> ManifestLine:
    """Judge what landed (integrity.judge) and record it: removed on a proven difference, else copied with how
    it was verified. `head` is the target's HEAD when one was read; `found` the line of our own earlier attempt's
    object (a lost answer), whose reason and timestamp stay."""
    item, ctx = attempt.item, attempt.ctx
    judgement = judge(item.etag, attempt.source, landed)
    if judgement.undecided:  # nothing compared yet: read the source as it is now, then judge again
        now = _source_now(store, attempt)
        if attempt.source is None and now.etag == item.etag:
            attempt = replace(attempt, source=now)
        judgement = judge(item.etag, attempt.source, landed, now)
    if judgement.mismatch:
        return _discard(store, attempt, judgement.mismatch, head)
    if head is None and judgement.verified == Verified.SIZE:
        head = store.head(ctx.target_bucket, item.target, checksums=True)
    if head is not None:
        problem = _problem(attempt, head)
        if problem:
            return _discard(store, attempt, problem, head)
        if landed.checksum is None:
            landed = replace(landed, checksum=Facts.of(head).checksum)
    return _copied(attempt, landed, judgement, found)


def _copied(attempt: _Attempt, landed: Facts, judgement: Judgement, found: ManifestLine | None) -> ManifestLine:
    source = attempt.source.checksum if attempt.source is not None else None
    return ManifestLine.of(
        attempt.item,
        COPIED,
        found.reason if found else "",
        found.ingested_at if found else attempt.ingested_at,
        checksum=str(landed.checksum) if landed.checksum else None,
        source_checksum=str(source) if source else None,
        verified=judgement.verified,
    )


def _source_now(store: Store, attempt: _Attempt) -> Facts:
    """The source as it is after the copy, read to settle what the copy's answer could not: the listed version
    (its encryption and checksum), a newer version (a copy that matches it is that version, landed by a server
    that ignored CopySourceIfMatch), or, when it cannot be read, only the listed ETag."""
    item, ctx = attempt.item, attempt.ctx
    listed = Facts.listed(item.etag)
    try:
        return Facts.of(store.head(ctx.source_bucket, item.key, if_match=f'"{item.etag}"', checksums=True))
    except PreconditionFailed:
        pass
    except S3Error as err:
        if isinstance(err, NoSuchBucket):
            raise
        log.info("source %r could not be read to verify its copy (%s)", item.key, err.code)
        return listed
    try:  # rewritten since the listing: which version is it now?
        return Facts.of(store.head(ctx.source_bucket, item.key, checksums=True))
    except S3Error as err:
        if isinstance(err, NoSuchBucket):
            raise
        return listed


def _discard(store: Store, attempt: _Attempt, problem: str, head: dict[str, Any] | None = None) -> ManifestLine:
    """What landed is not the listed version: remove it so the ledger and the bucket agree. Only an object
    this run landed is removed (its lineage says so, and the delete is pinned to its ETag): a copy never
    takes away what another run landed."""
    item, ctx = attempt.item, attempt.ctx
    head = head or store.head_or_none(ctx.target_bucket, item.target)
    if head is not None and meta.normalise(head.get("Metadata")).get(meta.RUN_ID) == ctx.run_id:
        store.delete(ctx.target_bucket, item.target, if_match=head["ETag"])
    return _line(item, FAILED, problem)


def _source_changed(store: Store, item: BatchItem, ctx: CopyContext, before: dict[str, Any]) -> str | None:
    """A multipart copy reads the source part by part; a server that ignores CopySourceIfMatch on
    UploadPartCopy can mix two versions. The source's ETag, LastModified and version id are the same after
    the copy as before it only if nothing was written in between."""
    try:
        after = store.head(ctx.source_bucket, item.key)
    except NotFound:
        return "source was deleted during the multipart copy; it lands on the next run if it comes back"
    same = all(after.get(field) == before.get(field) for field in ("ETag", "LastModified", "VersionId"))
    return None if same else CHANGED_DURING_COPY


def _problem(attempt: _Attempt, head: dict[str, Any]) -> str | None:
    """What the target's HEAD proves wrong whatever the encryption: its size, or lineage that is not this copy's."""
    item, ctx = attempt.item, attempt.ctx
    if head["ContentLength"] != item.size:
        return f"verification failed: landed {head['ContentLength']} bytes, listed {item.size}"
    landed = meta.landed_from(head.get("Metadata"))
    if landed != (ctx.source_bucket, item.key, item.etag):
        return "verification failed: landed object lacks this copy's lineage metadata"
    return None


def copy_items(
    store: Store,
    tm: Any,
    items: Iterable[BatchItem],
    ctx: CopyContext,
    *,
    concurrency: int,
    check: Callable[[], None] = lambda: None,
) -> Iterator[ManifestLine]:
    """Copy items with `concurrency` workers; yield manifest lines in the items' order.

    `check` runs before each object (the lock heartbeat raises there if the run lost its lock).
    """

    def work(item: BatchItem) -> ManifestLine:
        check()
        return copy_one(store, tm, item, ctx)

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="copy")
    try:
        yield from pool.map(work, items)
    finally:
        # On an error or an interrupt, objects not yet started are not started; those in flight finish (their
        # lines are lost with the batch's result, and the finalize that completes the run reads them back).
        pool.shutdown(wait=True, cancel_futures=True)
