"""The plan step: take the lock, then finish an interrupted run or store a new plan before anything is copied."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from datetime import date as Date

from ..config import LEDGER_ROOT
from ..lock import Lock
from ..planner import build_plan, cut_batches, iter_copies, iter_notes
from ..records import OpenRun, PlanResult, utc_now
from ..s3io import iter_source_objects
from ..selection import SourceObject
from ..state import scratch_db
from . import Job, run_date_for
from .finalize import finalize

log = logging.getLogger(__name__)


def plan(job: Job, run_date: Date | None = None, *, lock: Lock | None = None) -> PlanResult:
    """With no batches the run is finalized at once and the result carries its summary.

    Until the plan is durable (an open run exists), a failure releases the lock: nothing was copied, and the
    next run should not wait out the TTL for it.
    """
    lock = lock or job.take_lock()
    durable = False
    try:
        interrupted = job.ledger.open_run()
        if interrupted is not None:
            durable = True
            return _resume(job, interrupted, lock)
        run = _plan_new(job, run_date, lock)
        durable = True
    except BaseException:
        if not durable:
            lock.release()
        raise
    index = job.ledger.batch_index(run.run_id)
    if run.batch_count == 0:
        return PlanResult(run, index, finalize(job, run.run_id, lock=lock))
    return PlanResult(run, index)


def _plan_new(job: Job, run_date: Date | None, lock: Lock) -> OpenRun:
    ds, ledger = job.dataset, job.ledger
    ledger.clear_unstored_plans()
    now = datetime.now(UTC)
    run_date = run_date or run_date_for(ds, now)
    started = utc_now()
    # Listing millions of keys can outlast the TTL: keep the lock alive while planning.
    with scratch_db() as db, lock.heartbeat():
        ledger.load_state(db)
        counts = build_plan(source_objects(job), ds, db, run_date=run_date, run_id=lock.run_id, now=now)
        batches = cut_batches(iter_copies(db), max_objects=ds.batch_max_objects, max_bytes=ds.batch_max_bytes)
        batch_count = ledger.store_plan(lock.run_id, iter_notes(db), batches)
    run = OpenRun(ds.name, lock.run_id, run_date.isoformat(), started, batch_count, counts)
    ledger.save_open_run(run, lock)
    return run


def _resume(job: Job, interrupted: OpenRun, lock: Lock) -> PlanResult:
    log.warning("run %s for %s was interrupted; completing it first", interrupted.run_id, interrupted.date)
    lock.rebind(interrupted.run_id)
    run = interrupted.as_resumed()
    job.ledger.save_open_run(run, lock)
    index = job.ledger.batch_index(run.run_id)
    if run.batch_count == 0:
        # A plan result with no batches is final by contract (nothing calls finalize after it), so an empty
        # run whose finalize died is finalized here, or it would stay open for good.
        return PlanResult(run, index, finalize(job, run.run_id, lock=lock))
    return PlanResult(run, index)


def source_objects(job: Job) -> Iterator[SourceObject]:
    """The listing a plan decides over. A ledger is never source data: not ours when source and target
    share a bucket, and not another pipeline's when the source is some other raw bucket."""
    source = job.dataset.source
    return iter_source_objects(job.s3, source.bucket, source.prefix, skip_prefix=LEDGER_ROOT)
