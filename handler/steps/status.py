"""`status`: the lock, a run in progress and how far it got, the last run; read from the ledger, written nowhere.

A run in progress is found the way the next run would find it: an open run (a sealed plan) is in `open-run.json`;
a run still planning has only its lock and `work/<run_id>/planning.json`. How far it got is read from its work
files: which batches stored results (one listing), what those results say (one GET each, side by side), which
shards finalized (one listing).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..ledger import PLANNING
from ..records import Tally, Tallying
from ..status import DatasetStatus, LockView, RunningRun
from . import Job

MAX_READERS = 16
"""Batch results read at once (each is at most batch_max_objects lines)."""


def lock_view(job: Job, now: float | None = None) -> LockView | None:
    """The lock as its runs see it: its expiry is S3's time, and so is `now` (learned from this very read)."""
    lock = job.ledger.lock
    document, _ = lock.read()
    return None if document is None else LockView.of(document, lock.clock.now() if now is None else now)


def running_run(job: Job, lock: LockView | None) -> RunningRun | None:
    """The run in progress, if any: the open run, or the lock holder's plan being made."""
    ledger = job.ledger
    run = ledger.open_run()
    if run is not None:
        live = lock is not None and not lock.expired and lock.run_id == run.run_id
        reported = ledger.reported_batches(run.run_id)
        finalized = ledger.finalized_shards(run.run_id)
        return RunningRun.sealed(run, len(reported), len(finalized), _tally(job, run.run_id, reported), live)
    if lock is None or not lock.run_id:
        return None
    planning = ledger.read(PLANNING, run_id=lock.run_id)
    if planning is None:
        return None
    return RunningRun.planning(planning, len(ledger.planned_shards(lock.run_id)), live=not lock.expired)


def status(job: Job, now: float | None = None) -> DatasetStatus:
    lock = lock_view(job, now)
    return DatasetStatus(job.dataset.name, lock, running_run(job, lock), job.ledger.last_run())


def _tally(job: Job, run_id: str, batches: list[int]) -> Tally:
    """What the reported batches did, read side by side (a night of 1,000 batches is 1,000 small GETs)."""

    def one(number: int) -> Tally:
        tally = Tallying()
        for line in job.ledger.result(run_id, number) or ():
            tally.add(line)
        return tally.tally()

    total = Tally()
    if not batches:
        return total
    with ThreadPoolExecutor(max_workers=min(MAX_READERS, len(batches)), thread_name_prefix="status") as pool:
        for tally in pool.map(one, batches):
            total += tally
    return total
