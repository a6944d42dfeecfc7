"""The dry run: what a run would do, writing nothing and taking no lock.

Its lines go to a terminal and quote source keys, which may hold any character: each key is shown through
`layout.printable`, so an ESC sequence or a bidi override in a key is seen as `\\x1b` or `\\u202e`, not obeyed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from datetime import date as Date

from ..config import DatasetConfig
from ..layout import printable
from ..ledger import BATCH
from ..planner import build_plan, iter_copies, iter_notes
from ..records import BatchItem, DryRun, ManifestLine, ObjectStatus, OpenRun
from ..state import record_landed, scratch_db
from . import Job, new_run_id, run_date_for
from .plan import source_objects


def dry_run(job: Job, run_date: Date | None = None, out: Callable[[str], None] = print) -> DryRun:
    ds = job.dataset
    now = datetime.fromtimestamp(job.ledger.lock.server_now(), UTC)  # S3's time, as a run's plan uses
    run_date = run_date or run_date_for(ds, now)
    with scratch_db() as db:
        job.ledger.load_state(db)
        interrupted = _interrupted(job, db, out)
        counts = build_plan(source_objects(job), ds, db, run_date=run_date, run_id=new_run_id(now), now=now)
        for item in iter_copies(db):
            out(_copy_line(ds, item))
        for note in iter_notes(db):
            out(printable(f"{note.status.upper()[:4]}  s3://{ds.source.bucket}/{note.source_key}: {note.reason}"))
    return DryRun(ds.name, run_date.isoformat(), counts, interrupted)


def _interrupted(job: Job, db: sqlite3.Connection, out: Callable[[str], None]) -> OpenRun | None:
    """A run first completes an interrupted one under that run's date: show its plan, then plan past it."""
    run = job.ledger.open_run()
    if run is None:
        return None
    ds = job.dataset
    out(f"RESUME  run {run.run_id} was interrupted; it is completed first, its plan landing under {run.date}")
    for number in job.ledger.batch_numbers(run.run_id):
        batch = job.ledger.read(BATCH, run_id=run.run_id, batch=number)
        items = batch.items if batch else ()
        for item in items:
            out(_copy_line(ds, item))
        # By the time the new run plans, these are in the state: plan as if they were.
        record_landed(db, [ManifestLine.of(item, ObjectStatus.COPIED) for item in items], run.run_id, run.date)
    return run


def _copy_line(ds: DatasetConfig, item: BatchItem) -> str:
    return printable(f"COPY  s3://{ds.source.bucket}/{item.key} -> s3://{ds.target.bucket}/{item.target}")
