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
from .layout import KeyTooLong, UnsafeKey, relative_key, render_target_key
from .ledger import landed_entry
from .selection import COPY, EXCLUDE, FAIL, FOLDER_MARKER, SKIP, UNCHANGED, SourceObject, decide

ROUTINE_SKIPS = frozenset({UNCHANGED, FOLDER_MARKER})


@dataclass
class PlanCounts:
    listed: int = 0
    excluded: int = 0
    planned: int = 0
    planned_bytes: int = 0
    skipped: int = 0
    failed: int = 0
    skipped_by_reason: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "excluded": self.excluded,
            "planned": self.planned,
            "planned_bytes": self.planned_bytes,
            "skipped": self.skipped,
            "failed_at_plan": self.failed,
            "skipped_by_reason": dict(self.skipped_by_reason),
        }


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
        "reason TEXT) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX planned_target ON planned (target) WHERE action = 'copy'")
    counts = PlanCounts()
    rows: list[tuple[Any, ...]] = []
    with db:
        for obj in objects:
            counts.listed += 1
            row = _decide_row(obj, dataset, db, run_date=run_date, run_id=run_id, now=now, counts=counts)
            if row is not None:
                rows.append(row)
            if len(rows) >= 5000:
                db.executemany("INSERT OR REPLACE INTO planned VALUES (?,?,?,?,?,?)", rows)
                rows.clear()
        db.executemany("INSERT OR REPLACE INTO planned VALUES (?,?,?,?,?,?)", rows)
    _mark_collisions(db)
    for action, number, size in db.execute("SELECT action, COUNT(*), COALESCE(SUM(size), 0) FROM planned GROUP BY 1"):
        if action == COPY:
            counts.planned, counts.planned_bytes = number, size
        elif action == FAIL:
            counts.failed = number
        elif action == SKIP:
            counts.skipped += number
    for reason, number in db.execute("SELECT reason, COUNT(*) FROM planned WHERE action = 'skip' GROUP BY 1"):
        counts.skipped_by_reason[_reason_kind(reason)] += number
    return counts


def _decide_row(
    obj: SourceObject,
    dataset: DatasetConfig,
    db: sqlite3.Connection,
    *,
    run_date: Date,
    run_id: str,
    now: datetime,
    counts: PlanCounts,
) -> tuple[Any, ...] | None:
    relative = relative_key(dataset.source.prefix, obj.key)
    landed = landed_entry(db, obj.key)
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
    if decision.action == SKIP and decision.reason in ROUTINE_SKIPS:
        counts.skipped += 1
        counts.skipped_by_reason[decision.reason] += 1
        return None
    target = None
    action, reason = decision.action, decision.reason
    if action == COPY:
        try:
            target = render_target_key(
                dataset.key_template,
                dataset.target.prefix,
                dataset=dataset.name,
                relative=relative,
                run_date=run_date,
                run_id=run_id,
            )
        except KeyTooLong as err:
            action, reason = FAIL, str(err)
        except UnsafeKey as err:
            action, reason = SKIP, f"unsafe key: {err}"
        else:
            if landed and landed[1] == target:
                # An earlier version landed on this very key (a second run on the same date): never
                # overwrite a landing; the new version takes the next date's key.
                action, reason = (
                    SKIP,
                    (
                        f"target occupied: {target!r} already holds the version with ETag {landed[0]}; "
                        "this version lands on a later date (or add {run_id} to key_template)"
                    ),
                )
    return (obj.key, obj.etag, obj.size, target, action, reason)


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


def _reason_kind(reason: str) -> str:
    """Group skip reasons for the summary (`archived in GLACIER: ...` -> `archived`)."""
    for kind in ("archived", "modified", "unsafe key", "target occupied"):
        if reason.startswith(kind):
            return "too recent" if kind == "modified" else kind
    return reason


def iter_copies(db: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    for key, etag, size, target in db.execute(
        "SELECT key, etag, size, target FROM planned WHERE action = 'copy' ORDER BY key"
    ):
        yield {"key": key, "etag": etag, "size": size, "target": target}


def iter_notes(db: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    """Manifest lines for objects the plan itself skipped or failed (not the routine, unchanged ones)."""
    for key, etag, size, target, action, reason in db.execute(
        "SELECT key, etag, size, target, action, reason FROM planned WHERE action != 'copy' ORDER BY key"
    ):
        yield {
            "source_key": key,
            "source_etag": etag,
            "size": size,
            "target_key": target,
            "status": "failed" if action == FAIL else "skipped",
            "reason": reason,
            "ingested_at": None,
        }


def cut_batches(items: Iterable[dict[str, Any]], *, max_objects: int, max_bytes: int) -> Iterator[list[dict[str, Any]]]:
    """Group items so each batch finishes well inside one Lambda's 15 minutes; a huge object goes alone."""
    batch: list[dict[str, Any]] = []
    size = 0
    for item in items:
        if batch and (len(batch) >= max_objects or size + item["size"] > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item["size"]
    if batch:
        yield batch
