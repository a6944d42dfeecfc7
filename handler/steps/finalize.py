"""The finalize step: gather every batch's lines (reconciling batches that never reported) and commit."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator

from .. import metadata as meta
from ..config import DatasetConfig
from ..copier import is_own_landing
from ..errors import LockLost
from ..ledger import Ledger
from ..lock import Lock
from ..notify import build_notification
from ..records import (
    BatchItem,
    Failure,
    Finalized,
    ManifestLine,
    ObjectStatus,
    OpenRun,
    RunRef,
    RunSummary,
    Tally,
    parse_utc,
    run_status,
    utc_now,
)
from ..s3io import head_or_none, jsonl_bytes
from ..selection import ROUTINE_SKIPS, UNCHANGED
from ..state import record_landed, scratch_db
from . import Job

MAX_FAILURES_IN_SUMMARY = 10


def finalize(job: Job, run_id: str, *, lock: Lock | None = None) -> Finalized:
    """Commit the run to the ledger and release the lock; calling it again after success is harmless."""
    ds, ledger = job.dataset, job.ledger
    run = ledger.open_run()
    if run is None or run.run_id != run_id:
        last = ledger.last_run()
        if last is not None and last.run_id == run_id:
            _finish_cleanup(job, run_id)
            return Finalized(last, build_notification(last))
        job.open_run_named(run_id)  # raises RunNotFound with the details
    assert run is not None
    if lock is None:
        lock = ledger.lock.adopt(run_id)
    else:
        lock.fence()
    ledger.observe_commit(run)  # while the lock is known to be ours: what the commit may replace
    ref = RunRef(ds.name, run_id, run.date, ds.source.bucket, ds.target.bucket)
    tally = Tally()
    failures: list[Failure] = []
    with scratch_db() as db, tempfile.TemporaryFile() as manifest, lock.heartbeat():
        ledger.load_state(db)
        for line in _run_lines(job, run, db):
            manifest.write(jsonl_bytes([line.stamped(ref)]))
            tally = tally.plus(line)
            if line.status == ObjectStatus.FAILED and len(failures) < MAX_FAILURES_IN_SUMMARY:
                failures.append(Failure(line.source_key, line.reason))
        summary = summarize(ds, run, tally, tuple(failures), ledger)
        ledger.commit(run, manifest, db, summary, lock)
    return Finalized(summary, build_notification(summary))


def summarize(
    dataset: DatasetConfig,
    run: OpenRun,
    tally: Tally,
    failures: tuple[Failure, ...],
    ledger: Ledger,
) -> RunSummary:
    """The run's summary from its plan counts and its lines' tally. Routine skips (unchanged, folder
    markers) are only counted at plan time; every other skip has a manifest line and so is in the tally."""
    counts = run.counts
    finished = utc_now()
    routine = sum(counts.skipped_by_reason.get(kind, 0) for kind in ROUTINE_SKIPS)
    return RunSummary(
        dataset=dataset.name,
        run_id=run.run_id,
        date=run.date,
        status=run_status(tally.copied, tally.failed),
        started_at=run.started_at,
        finished_at=finished,
        duration_seconds=(parse_utc(finished) - parse_utc(run.started_at)).total_seconds(),
        resumed=run.resumed,
        source=dataset.source.uri(),
        target=dataset.target.uri(),
        listed=counts.listed,
        excluded=counts.excluded,
        planned=counts.planned,
        copied=tally.copied,
        skipped=routine + tally.skipped,
        unchanged=counts.skipped_by_reason.get(UNCHANGED, 0),
        failed=tally.failed,
        bytes=tally.bytes,
        skipped_by_reason=dict(counts.skipped_by_reason),
        failures=failures,
        manifest=ledger.manifest_uri(run.date, run.run_id),
        marker=ledger.marker_uri(run.date, run.run_id) if tally.copied else None,
    )


def _finish_cleanup(job: Job, run_id: str) -> None:
    """A finalize that died after committing left its work files and lock: clear them, or the replan
    after a resumed run would meet its own lock until the TTL ran out."""
    job.ledger.clear_work(run_id)
    try:
        lock = job.ledger.lock.adopt(run_id)
    except LockLost:
        return  # released already, or another run holds it: not ours to touch
    lock.release()


def _run_lines(job: Job, run: OpenRun, db: sqlite3.Connection) -> Iterator[ManifestLine]:
    """Plan notes, then each batch's results in order; a batch that never reported is reconciled, and so is
    every object a batch reported failed: a failure may be a copy whose answer was lost."""
    yield from job.ledger.plan_notes(run.run_id)
    for number in range(run.batch_count):
        reported = job.ledger.result(run.run_id, number)
        if reported is None:
            lines = _reconcile(job, run, number)
        else:
            lines = [_read_back(job, run, line) if line.status == ObjectStatus.FAILED else line for line in reported]
        record_landed(db, lines, run.run_id, run.date)
        yield from lines


def _reconcile(job: Job, run: OpenRun, number: int) -> list[ManifestLine]:
    """Look at what landed for a batch whose Lambda died: the ledger must match the bucket."""
    return [
        _landed_line(job, run, item, "landed, but its batch never reported; found on reconcile")
        or ManifestLine.of(
            item, ObjectStatus.FAILED, "its batch did not complete (crash or timeout); lands on the next run"
        )
        for item in job.ledger.batch(run.run_id, number) or ()
    ]


def _read_back(job: Job, run: OpenRun, line: ManifestLine) -> ManifestLine:
    """A failed object whose target holds this run's copy of it landed after all: record it copied, or the
    next night would land the same version again under another date. A read-back that fails fails the
    finalize (the run stays open and is completed by the next run), never guesses."""
    item = BatchItem(line.source_key, line.source_etag, line.size, line.target_key)
    return _landed_line(job, run, item, f"landed though its copy reported: {line.reason}; found on reconcile") or line


def _landed_line(job: Job, run: OpenRun, item: BatchItem, reason: str) -> ManifestLine | None:
    """The item's COPIED line if its target holds this run's copy of the listed version, else None."""
    ds = job.dataset
    head = head_or_none(job.s3, ds.target.bucket, item.target)
    if head is None or not is_own_landing(head, item, ds.source.bucket, run.run_id):
        return None
    return ManifestLine.of(item, ObjectStatus.COPIED, reason, meta.normalise(head.get("Metadata")).get(meta.TIMESTAMP))
