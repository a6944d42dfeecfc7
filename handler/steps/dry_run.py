"""The dry run: what a run would do, writing nothing and taking no lock.

Each object it would copy, skip or fail is a `PlannedObject`, shown as it is found (never held: a plan can have
millions): as a `COPY`/`SKIP`/`FAIL` line for a person, or as one JSON line for --json (README, "Commands").
Its lines go to a terminal and quote source keys, which may hold any character: each key is shown through
`layout.printable`, so an ESC sequence or a bidi override in a key is seen as `\\x1b` or `\\u202e`, not obeyed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import date as Date
from typing import Any

from ..config import DatasetConfig
from ..layout import printable
from ..ledger import BATCH
from ..planner import build_plan, iter_copies, iter_notes
from ..records import BatchItem, DryRun, ManifestLine, ObjectStatus, OpenRun
from ..state import record_landed, scratch_db
from . import Job, new_run_id, run_date_for
from .plan import source_objects


@dataclass(frozen=True)
class PlannedObject:
    """One object the dry run would act on: `copy` (with where it lands, and `completes_run` when it is in an
    interrupted run's plan, completed first), or `skip` / `fail` with the reason (routine skips are only counted)."""

    action: str
    source_key: str
    target_key: str | None = None
    size: int | None = None
    reason: str = ""
    completes_run: str | None = None

    @property
    def fails(self) -> bool:
        return self.action == "fail"

    def line(self, ds: DatasetConfig) -> str:
        """The person's line: `COPY  <source URI> -> <target URI>`, `SKIP  <source URI>: reason`."""
        source = f"s3://{ds.source.bucket}/{self.source_key}"
        if self.action == "copy":
            return printable(f"COPY  {source} -> s3://{ds.target.bucket}/{self.target_key}")
        return printable(f"{self.action.upper()}  {source}: {self.reason}")

    def to_json(self) -> dict[str, Any]:
        """The JSON line: `action` first (a summary line has none), only the fields the action has."""
        answer: dict[str, Any] = {"action": self.action, "source_key": self.source_key}
        if self.action == "copy":
            answer.update(target_key=self.target_key, size=self.size)
            if self.completes_run is not None:
                answer["completes_run"] = self.completes_run
        else:
            answer["reason"] = self.reason
        return answer


def dry_run(
    job: Job,
    run_date: Date | None = None,
    out: Callable[[str], None] = print,
    show: Callable[[PlannedObject], None] | None = None,
) -> DryRun:
    """Plan as a run would and show each object: to `show` when given, else as a line to `out` (which also gets
    the line saying an interrupted run is completed first)."""
    ds = job.dataset
    shown: Callable[[PlannedObject], None] = show or (lambda planned: out(planned.line(ds)))
    now = datetime.fromtimestamp(job.ledger.lock.server_now(), UTC)  # S3's time, as a run's plan uses
    run_date = run_date or run_date_for(ds, now)
    with scratch_db() as db:
        job.ledger.load_state(db)
        interrupted = _interrupted(job, db, (lambda line: None) if show else out, shown)
        counts = build_plan(source_objects(job), ds, db, run_date=run_date, run_id=new_run_id(now), now=now)
        for item in iter_copies(db):
            shown(_copy(item))
        for note in iter_notes(db):
            action = "fail" if note.status == ObjectStatus.FAILED else "skip"
            shown(PlannedObject(action, note.source_key, reason=note.reason))
    return DryRun(ds.name, run_date.isoformat(), counts, interrupted)


def _interrupted(
    job: Job, db: sqlite3.Connection, out: Callable[[str], None], shown: Callable[[PlannedObject], None]
) -> OpenRun | None:
    """A run first completes an interrupted one under that run's date: show its plan, then plan past it."""
    run = job.ledger.open_run()
    if run is None:
        return None
    out(f"RESUME  run {run.run_id} was interrupted; it is completed first, its plan landing under {run.date}")
    for number in job.ledger.batch_numbers(run.run_id):
        batch = job.ledger.read(BATCH, run_id=run.run_id, batch=number)
        items = batch.items if batch else ()
        for item in items:
            shown(_copy(item, run.run_id))
        # By the time the new run plans, these are in the state: plan as if they were.
        record_landed(db, [ManifestLine.of(item, ObjectStatus.COPIED) for item in items], run.run_id, run.date)
    return run


def _copy(item: BatchItem, completes_run: str | None = None) -> PlannedObject:
    return PlannedObject("copy", item.key, item.target, item.size, completes_run=completes_run)
