"""Build a run's plan from a streamed listing and the current state, in an on-disk SQLite table.

Two passes keep memory flat however many keys a dataset has: the listing streams into the table with
each object's decision, then a GROUP BY finds targets that two sources would share (reported as failures
before anything is copied), and the copies stream out in key order to be cut into batches.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import datetime
from typing import Any

from .config import DatasetConfig
from .layout import AmbiguousTable, KeyTooLong, UnsafeKey, relative_key, render_target_key
from .records import BatchItem, ManifestLine, ObjectStatus, PlanCounts
from .selection import COPY, EXCLUDE, FAIL, ROUTINE_SKIPS, SKIP, SkipKind, SourceObject, decide
from .state import LOOKUP_CHUNK, chunks, landed_entries

_INSERT = "INSERT OR REPLACE INTO planned VALUES (?,?,?,?,?,?,?)"


@dataclass
class _Counting:
    """Counts while the listing streams; frozen into PlanCounts at the end."""

    listed: int = 0
    excluded: int = 0
    skipped: int = 0
    skipped_by_reason: Counter[str] = field(default_factory=Counter)


def build_plan(
    objects: Iterable[SourceObject],
    dataset: DatasetConfig,
    db: sqlite3.Connection,
    *,
    run_date: Date,
    run_id: str,
    now: datetime,
) -> PlanCounts:
    """Decide every listed object into the `planned` table; `db` already holds the `landed` state."""
    db.execute(
        "CREATE TABLE planned (key TEXT PRIMARY KEY, etag TEXT, size INTEGER, target TEXT, action TEXT, "
        "reason TEXT, kind TEXT) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX planned_target ON planned (target) WHERE action = 'copy'")
    counts = _Counting()
    rows: list[tuple[Any, ...]] = []
    with db:
        for page in chunks(objects, LOOKUP_CHUNK):
            # One SELECT per page of keys, not one per key: on a no-op night the lookups were a tenth of the CPU.
            landed = landed_entries(db, [obj.key for obj in page])
            for obj in page:
                counts.listed += 1
                row = _decide_row(
                    obj, dataset, landed.get(obj.key), run_date=run_date, run_id=run_id, now=now, counts=counts
                )
                if row is not None:
                    rows.append(row)
            if len(rows) >= 5000:
                db.executemany(_INSERT, rows)
                rows.clear()
        db.executemany(_INSERT, rows)
    _mark_collisions(db)
    _mark_occupied(db, run_date)
    totals = {COPY: (0, 0), FAIL: (0, 0), SKIP: (0, 0)}
    for action, number, size in db.execute("SELECT action, COUNT(*), COALESCE(SUM(size), 0) FROM planned GROUP BY 1"):
        totals[action] = (number, size)
    for kind, number in db.execute("SELECT kind, COUNT(*) FROM planned WHERE action = 'skip' GROUP BY 1"):
        counts.skipped_by_reason[kind] += number
    return PlanCounts(
        listed=counts.listed,
        excluded=counts.excluded,
        planned=totals[COPY][0],
        planned_bytes=totals[COPY][1],
        skipped=counts.skipped + totals[SKIP][0],
        failed_at_plan=totals[FAIL][0],
        skipped_by_reason=dict(counts.skipped_by_reason),
    )


def _decide_row(
    obj: SourceObject,
    dataset: DatasetConfig,
    landed: tuple[str, str] | None,
    *,
    run_date: Date,
    run_id: str,
    now: datetime,
    counts: _Counting,
) -> tuple[Any, ...] | None:
    relative = relative_key(dataset.source.prefix, obj.key)
    decision = decide(
        obj,
        relative,
        include=dataset.include,
        exclude=dataset.exclude,
        landed_etag=landed[0] if landed else None,
        min_age_seconds=dataset.min_age_seconds,
        now=now,
    )
    if decision.action == EXCLUDE:
        counts.excluded += 1
        return None
    if decision.action == SKIP and decision.kind in ROUTINE_SKIPS:
        counts.skipped += 1
        counts.skipped_by_reason[decision.kind] += 1
        return None
    target = None
    action, reason, kind = decision.action, decision.reason, decision.kind
    if action == COPY:
        try:
            target = render_target_key(
                dataset.key_template,
                dataset.target.prefix,
                dataset=dataset.name,
                relative=relative,
                run_date=run_date,
                run_id=run_id,
                tables=dataset.table_patterns,
            )
        except (KeyTooLong, AmbiguousTable) as err:
            action, reason = FAIL, str(err)
        except UnsafeKey as err:
            action, reason, kind = SKIP, f"unsafe key: {err}", SkipKind.UNSAFE_KEY
        else:
            if landed and landed[1] == target:
                # An earlier version landed on this very key (a second run on the same date): never
                # overwrite a landing; the new version takes the next date's key.
                action, kind = SKIP, SkipKind.TARGET_OCCUPIED
                reason = (
                    f"target occupied: {target!r} already holds the version with ETag {landed[0]}; "
                    "this version lands on a later date (or add {run_id} to key_template)"
                )
    return (obj.key, obj.etag, obj.size, target, action, reason, kind)


def _mark_collisions(db: sqlite3.Connection) -> None:
    shared = [
        row[0]
        for row in db.execute(
            "SELECT target FROM planned WHERE action = 'copy' GROUP BY target HAVING COUNT(*) > 1"
        ).fetchall()
    ]
    with db:
        for target in shared:
            keys = [r[0] for r in db.execute("SELECT key FROM planned WHERE action = 'copy' AND target = ?", (target,))]
            reason = (
                f"collision: {len(keys)} source objects ({', '.join(repr(k) for k in keys[:5])}) would land on "
                f"{target!r}; none of them is copied. Rename them or change key_template"
            )
            db.execute(
                "UPDATE planned SET action = 'fail', reason = ? WHERE action = 'copy' AND target = ?",
                (reason, target),
            )


def _mark_occupied(db: sqlite3.Connection, run_date: Date) -> None:
    """A target another source key already landed on (same-date re-runs: `a//b.csv` after `a/b.csv`) is never
    overwritten: the newcomer lands on a later date. The copy's If-None-Match would refuse it too, but only on
    servers that honour it; the state knows on any server, and the dry run shows it. Templates always hold the
    date, so only the state's rows of this date can share a target."""
    occupied = db.execute(
        "SELECT p.key, l.key, l.etag, l.run_id, p.target FROM landed AS l "
        "JOIN planned AS p ON p.target = l.target AND p.action = 'copy' AND p.key != l.key WHERE l.date = ?",
        (run_date.isoformat(),),
    ).fetchall()
    with db:
        for key, holder, etag, run_id, target in occupied:
            reason = (
                f"target occupied: {target!r} already holds {holder!r} ETag {etag} (run {run_id}); "
                "this version lands on a later date"
            )
            db.execute(
                "UPDATE planned SET action = 'skip', kind = ?, reason = ? WHERE key = ?",
                (SkipKind.TARGET_OCCUPIED, reason, key),
            )


def iter_copies(db: sqlite3.Connection) -> Iterator[BatchItem]:
    for key, etag, size, target in db.execute(
        "SELECT key, etag, size, target FROM planned WHERE action = 'copy' ORDER BY key"
    ):
        yield BatchItem(key, etag, size, target)


def iter_notes(db: sqlite3.Connection) -> Iterator[ManifestLine]:
    """Manifest lines for objects the plan itself skipped or failed (not the routine, unchanged ones)."""
    for key, etag, size, target, action, reason in db.execute(
        "SELECT key, etag, size, target, action, reason FROM planned WHERE action != 'copy' ORDER BY key"
    ):
        status = ObjectStatus.FAILED if action == FAIL else ObjectStatus.SKIPPED
        yield ManifestLine(key, etag, size, target, status, reason)


def cut_batches(items: Iterable[BatchItem], *, max_objects: int, max_bytes: int) -> Iterator[list[BatchItem]]:
    """Group items so each batch finishes well inside one Lambda's 15 minutes; a huge object goes alone."""
    batch: list[BatchItem] = []
    size = 0
    for item in items:
        if batch and (len(batch) >= max_objects or size + item.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.size
    if batch:
        yield batch
