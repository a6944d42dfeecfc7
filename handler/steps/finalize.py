"""The finalize steps: each shard gathers its batches' lines (reconciling batches that never reported) into its
manifest part and its new state parts (`finalize_shard`, in parallel); then one commit names them all.

A shard's finalize reads only its range's state and its own batches' results, so its time, memory and `/tmp`
follow the shard, not the dataset. A shard where nothing landed keeps its state part as it is: a no-op night
rewrites no state.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

from .. import state
from ..config import DatasetConfig
from ..contracts import QUARANTINE, Contracts
from ..copier import settle_own_landing
from ..errors import LockLost, RunNotFound
from ..layout import KeyTooLong
from ..ledger import BATCH, OPEN_RUN, PLAN_OUTCOME, RUN_SHARD, SHARD_OUTCOME, Ledger, RunLedger
from ..lock import Lock
from ..notify import build_notification
from ..openlineage import end_event
from ..partitions import landed_table, landed_tables, register_night, table_folders
from ..records import (
    BatchItem,
    Drifted,
    Failure,
    Finalized,
    ManifestLine,
    ObjectStatus,
    OpenRun,
    RunRef,
    RunSummary,
    ShardOutcome,
    Tally,
    Tallying,
    run_status,
    utc_stamp,
)
from ..selection import ROUTINE_SKIPS, UNCHANGED
from ..shards import RunShard, StateIndex, StatePart, batch_number, split_sizes
from ..state import record_landed, scratch_db
from ..store import jsonl_bytes
from . import Job
from .copy import copy_context

MAX_FAILURES_IN_SUMMARY = 10

log = logging.getLogger(__name__)


def finalize(job: Job, run_id: str, *, lock: Lock | None = None) -> Finalized:
    """Commit the run to the ledger and release the lock; calling it again after success is harmless, and so is
    calling it twice at once: the attempt that finds the run committed by its sibling answers with that commit.
    A shard not finalized yet (a local run, or a Map that skipped it) is finalized here first."""
    run, version = job.ledger.read_versioned(OPEN_RUN)
    if run is None or run.run_id != run_id:
        done = committed(job, run_id)
        if done is not None:
            _finish_cleanup(job, run_id)
            return _registered(job, done)
        job.ledger.open_run_named(run_id)  # raises RunNotFound with the details
    assert run is not None
    try:
        ledger = job.join(run_id, lock)
        ledger.saw(OPEN_RUN, version)  # the open run as read above: what the commit's delete of it expects
        finalized, tables = _commit(job, ledger, run)
        return _registered(job, finalized, tables)
    except (LockLost, RunNotFound):
        # Read back before believing it: under a workflow execution a sibling attempt (Lambda ran the step twice)
        # may have committed the run and released the lock. Met between our read of the open run and our read of
        # the shards' outcomes, that commit shows as RunNotFound instead (its work files are cleared, and a shard
        # without an outcome is finalized here, which finds the run no longer open). A local run has no siblings:
        # its lock was taken over, and a run that another process completed is not this one's to report.
        done = committed(job, run_id) if job.execution is not None else None
        if done is None:
            raise
        log.info("run %s was committed by a sibling attempt of finalize; answering with its commit", run_id)
        return _registered(job, done)


def _registered(job: Job, finalized: Finalized, tables: frozenset[str] | None = None) -> Finalized:
    """The committed night's partitions registered in the job's Glue catalog, if it has one. A commit made
    earlier (a retried finalize) has no shard outcomes left: its tables are read off its manifest. A failure is
    the answer's `partitions_error`, never the run's: the night is committed."""
    summary = finalized.summary
    if job.catalog is None or summary.run_id is None:
        return finalized
    if tables is None:
        copied = (
            line["target_key"]
            for line in job.ledger.manifest_lines(summary.date, summary.run_id)
            if line.get("status") == ObjectStatus.COPIED and line.get("target_key")
        )
        tables = landed_tables(job.dataset, summary.date, copied) if summary.copied else frozenset()
    error = register_night(job.catalog, job.dataset, summary, tables)
    if not error:
        return finalized
    # The notification is what people read: it says the night landed but engines other than Athena do not see it.
    told = finalized.notification
    message = f"{told.message}\n\nWarning: the night's partitions were not registered in Glue: {error}\n"
    return replace(finalized, partitions_error=error, notification=replace(told, message=message))


def _commit(job: Job, ledger: RunLedger, run: OpenRun) -> tuple[Finalized, frozenset[str]]:
    ds, run_id = job.dataset, run.run_id
    ledger.observe_commit(run)  # while the lock is known to be ours: what the commit may replace
    before = job.ledger.state_index()
    tally = Tally()
    failures: list[Failure] = []
    pieces: list[StatePart] = []
    parts: list[str] = []
    tables: set[str] = set()
    drift, drifted = 0, []
    for shard in range(run.shard_count):
        outcome = ledger.read(SHARD_OUTCOME, shard=shard) or finalize_shard(job, run_id, shard, lock=ledger.lock)
        tables.update(outcome.tables)
        tally += outcome.tally
        failures.extend(outcome.failures[: MAX_FAILURES_IN_SUMMARY - len(failures)])
        drift += outcome.schema_drift
        drifted.extend(outcome.drifted[: MAX_FAILURES_IN_SUMMARY - len(drifted)])
        pieces.extend(outcome.pieces)
        parts.extend([outcome.manifest_part] if outcome.manifest_part else [])
    index = StateIndex.of(pieces, run_id, before)
    changed = not index.same_parts(before) or any(p.keys < 0 for p in before.parts)
    summary = summarize(ds, run, tally, tuple(failures), job.ledger, tuple(parts), (drift, tuple(drifted)))
    committed = ledger.commit(
        run, index if changed else None, summary, lambda done: end_event(done, ds, run, job.execution)
    )
    return Finalized(committed, build_notification(committed)), frozenset(tables)


def committed(job: Job, run_id: str) -> Finalized | None:
    """The run's commit, if it has one: its summary (last-run.json while it is the newest run)."""
    open_run = job.ledger.open_run()
    if open_run is not None and open_run.run_id == run_id:
        return None  # a commit that died part-way is not a commit: the run is completed by whoever holds it
    summary = job.ledger.committed_summary(run_id)
    return None if summary is None else Finalized(summary, build_notification(summary))


def finalize_shard(job: Job, run_id: str, shard: int, *, lock: Lock | None = None) -> ShardOutcome:
    """One shard's lines into its manifest part, its state into new parts if anything in it landed (split in
    halves when it outgrew `shard_max_keys`), then its outcome. Safe to retry."""
    ds = job.dataset
    run = job.ledger.open_run_named(run_id)
    ledger = job.join(run_id, lock)
    done = ledger.read(SHARD_OUTCOME, shard=shard)
    if done is not None:
        return done  # an earlier attempt (or a sibling running beside this one) finished it: keep its account
    spec, batches, end_at = _shard_of(job, run, shard)
    ledger.observe_shard(run, shard)  # while the lock is known to be ours
    ref = RunRef(ds.name, run_id, run.date, ds.source.bucket, ds.target.bucket)
    tally = Tallying()
    failures: list[Failure] = []
    folders, tables = table_folders(ds, run.date), set[str | None]()
    drift, drifted = 0, []
    with scratch_db() as db, tempfile.TemporaryFile() as manifest, ledger.lock.heartbeat():
        job.ledger.load_parts(db, spec.parts, spec.start_after, end_at)
        for line in _shard_lines(job, run, shard, batches, db):
            manifest.write(jsonl_bytes([line.stamped(ref)]))
            tally.add(line)
            if line.status == ObjectStatus.FAILED and len(failures) < MAX_FAILURES_IN_SUMMARY:
                failures.append(Failure(line.source_key, line.reason))
            elif line.status == ObjectStatus.COPIED and folders and line.target_key:
                tables.add(landed_table(folders, line.target_key))
            if line.schema_drift:
                drift += 1
                if len(drifted) < MAX_FAILURES_IN_SUMMARY:
                    drifted.append(Drifted.of(line))
        keys = state.count(db)
        sizes = split_sizes(keys, ds.shard_max_keys)
        if tally.copied or spec.rewrite or len(sizes) > 1 or _unsized(job, spec):
            pieces = ledger.save_pieces(db, shard, spec.start_after, sizes if keys else [])
        else:
            pieces = (StatePart(spec.start_after, spec.parts[0] if spec.parts else None, keys),)
        part = ledger.save_manifest_part(run, shard, manifest) if tally.objects else None
    pieces = pieces or (StatePart(spec.start_after, None, 0),)
    landed_in = tuple(sorted(t for t in tables if t))
    outcome = ShardOutcome(shard, tally.tally(), tuple(failures), pieces, part, landed_in, drift, tuple(drifted))
    ledger.write(SHARD_OUTCOME, outcome, shard=shard)
    return outcome


def _unsized(job: Job, spec: RunShard) -> bool:
    """The shard's state is a single-file state of an older version: written anew as parts (its migration)."""
    return spec.parts == (job.ledger.paths.legacy_state,)


def _shard_of(job: Job, run: OpenRun, shard: int) -> tuple[RunShard, list[int], str | None]:
    """The shard's spec, its batch numbers and the end of the range it planned. A run planned before shards
    existed is one shard over everything, its state the single file, its batches 0 .. batch_count-1."""
    ledger = job.ledger
    spec = ledger.read(RUN_SHARD, run_id=run.run_id, shard=shard)
    outcome = ledger.read(PLAN_OUTCOME, run_id=run.run_id, shard=shard)
    if spec is None or outcome is None:
        if shard == 0 and run.shard_count == 1:
            legacy = ledger.state_index()
            return (
                RunShard(0, None, None, tuple(p.part for p in legacy.parts if p.part), True),
                list(range(run.batch_count)),
                None,
            )
        raise RunNotFound(f"run {run.run_id} has no shard {shard} (it has {run.shard_count})")
    return spec, [batch_number(shard, n) for n in range(outcome.batches)], outcome.end_at


def summarize(
    dataset: DatasetConfig,
    run: OpenRun,
    tally: Tally,
    failures: tuple[Failure, ...],
    ledger: Ledger,
    manifest_parts: tuple[str, ...] = (),
    schema_drift: tuple[int, tuple[Drifted, ...]] = (0, ()),
) -> RunSummary:
    """The run's summary from its plan counts and its lines' tally. Routine skips (unchanged, folder
    markers) are only counted at plan time; every other skip has a manifest line and so is in the tally.
    `schema_drift`: how many of its files drifted from their table's columns, and the first of them."""
    counts = run.counts
    finished = utc_stamp(datetime.fromtimestamp(ledger.lock.server_now(), UTC))  # S3's time, as started_at is
    routine = sum(counts.skipped_by_reason.get(kind, 0) for kind in ROUTINE_SKIPS)
    return RunSummary.ended(
        dataset,
        run_id=run.run_id,
        date=run.date,
        status=run_status(tally.copied, tally.failed),
        started_at=run.started_at,
        finished_at=finished,
        resumed=run.resumed,
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
        manifest_parts=manifest_parts,
        marker=ledger.marker_uri(run.date, run.run_id) if tally.copied else None,
        last_landed_at=finished if tally.copied else ledger.last_landed_at(),
        schema_drift=schema_drift[0],
        schema_drift_files=schema_drift[1],
    )


def _finish_cleanup(job: Job, run_id: str) -> None:
    """A finalize that died after committing left its work files and lock: clear them, or the replan
    after a resumed run would meet its own lock until the TTL ran out."""
    index = job.ledger.state_index()
    if index.run_id == run_id:
        job.ledger.delete_replaced(index)
    job.ledger.clear_work(run_id)
    try:
        ledger = job.join(run_id)
    except LockLost:
        return  # released already, or another run holds it: not ours to touch
    ledger.lock.release()


def _shard_lines(
    job: Job, run: OpenRun, shard: int, batches: list[int], db: sqlite3.Connection
) -> Iterator[ManifestLine]:
    """Plan notes, then each batch's results in order; a batch that never reported is reconciled, and so is
    every object a batch reported failed: a failure may be a copy whose answer was lost."""
    yield from job.ledger.plan_notes(run.run_id, shard)
    for number in batches:
        reported = job.ledger.result(run.run_id, number)
        if reported is None:
            lines = _reconcile(job, run, number)
        else:
            lines = [_read_back(job, run, line) if line.status == ObjectStatus.FAILED else line for line in reported]
        record_landed(db, lines, run.run_id, run.date)
        yield from lines


def _reconcile(job: Job, run: OpenRun, number: int) -> list[ManifestLine]:
    """Look at what landed for a batch whose Lambda died: the ledger must match the bucket."""
    batch = job.ledger.read(BATCH, run_id=run.run_id, batch=number)
    contracts = Contracts.of(job.dataset)
    return [
        _landed_line(job, run, item, "landed, but its batch never reported; found on reconcile")
        or _quarantined_line(job, run, item, contracts)
        or ManifestLine.of(
            item, ObjectStatus.FAILED, "its batch did not complete (crash or timeout); lands on the next run"
        )
        for item in (batch.items if batch else ())
    ]


def _quarantined_line(job: Job, run: OpenRun, item: BatchItem, contracts: Contracts | None) -> ManifestLine | None:
    """The line of an object of a quarantining table that this run landed under the quarantine folder (its
    difference is not known: the batch that read its header never reported), else None."""
    table = contracts.table_for(item.key) if contracts is not None else None
    if contracts is None or table is None or table.on_schema_drift != QUARANTINE:
        return None
    try:
        quarantined = replace(item, target=contracts.quarantine_key(item.target))
    except KeyTooLong:
        return None
    line = _landed_line(job, run, quarantined, "quarantined, but its batch never reported; found on reconcile")
    return None if line is None else replace(line, schema_drift=UNREPORTED_DRIFT)


UNREPORTED_DRIFT = "not recorded: its batch never reported (the file was found quarantined on reconcile)"


def _read_back(job: Job, run: OpenRun, line: ManifestLine) -> ManifestLine:
    """A failed object whose target holds this run's copy of it landed after all: record it copied, or the
    next night would land the same version again under another date. A read-back that fails fails the
    finalize (the run stays open and is completed by the next run), never guesses."""
    item = BatchItem(line.source_key, line.source_etag, line.size, line.target_key)
    landed = _landed_line(job, run, item, f"landed though its copy reported: {line.reason}; found on reconcile")
    return line if landed is None else replace(landed, schema_drift=line.schema_drift)


def _landed_line(job: Job, run: OpenRun, item: BatchItem, reason: str) -> ManifestLine | None:
    """The item's line if its target holds this run's copy of the listed version (verified as the copier
    verifies a fresh copy, so the line records its checksum and how it was verified), else None."""
    return settle_own_landing(job.store, item, copy_context(job, run), reason)
