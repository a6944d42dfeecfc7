"""A run's three steps (plan, copy a batch, finalize) and the one-shot run that chains them.

Exactly-once rests on three facts. The target key depends only on the source key and the run's date, so a
retried or resumed copy lands on the same key and is recognised by its lineage metadata. A run's plan is
stored before anything is copied, and an interrupted run is completed from that plan, under its own date,
before any new work is planned. And the lock keeps a second run from planning while one is open.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from datetime import date as Date
from typing import Any
from zoneinfo import ZoneInfo

from botocore.exceptions import ClientError

from . import lock as locks
from .config import LEDGER_ROOT, DatasetConfig
from .copier import COPIED, FAILED, CopyContext, copy_items, transfer_manager
from .errors import LockLost, RunNotFound
from .ledger import (
    LedgerPaths,
    jsonl_bytes,
    load_state,
    read_jsonl,
    record_landed,
    upload_spooled,
    write_state,
)
from .metadata import landed_from
from .notify import build_notification
from .planner import ROUTINE_SKIPS, build_plan, cut_batches, iter_copies, iter_notes
from .s3io import (
    delete_prefix,
    get_json,
    is_not_found,
    is_precondition_failed,
    iter_keys,
    iter_source_objects,
    put_json,
)
from .selection import UNCHANGED, SourceObject

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (objects done, bytes done) as batches complete."""

MAX_FAILURES_IN_SUMMARY = 10


def run_date_for(dataset: DatasetConfig, now: datetime | None = None) -> Date:
    """The date a run belongs to: today in the dataset's time zone (a run at 20:00 in Chicago is that day)."""
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(dataset.timezone)).date()


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by start time, unique without coordination."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{uuid.uuid4().hex[:6]}"


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@contextmanager
def _scratch_db() -> Iterator[sqlite3.Connection]:
    """An on-disk SQLite file in the temp dir (Lambda's /tmp): memory stays flat for millions of keys."""
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        db = sqlite3.connect(os.path.join(tmp, "plan.sqlite"))
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        try:
            yield db
        finally:
            db.close()


class Engine:
    """One dataset's runs against one S3 client (and optionally SNS for the one-shot path)."""

    def __init__(self, s3: Any, dataset: DatasetConfig, *, allow_unprotected: bool = False):
        self.s3 = s3
        self.dataset = dataset
        self.paths = LedgerPaths(dataset)
        self.allow_unprotected = allow_unprotected

    # ---- plan -------------------------------------------------------------------------------------------

    def plan(self, run_date: Date | None = None, *, handle: locks.LockHandle | None = None) -> dict[str, Any]:
        """Take the lock and return an interrupted run to finish, or plan a new one.

        With no batches the run is finalized at once and the result carries its summary.
        """
        ds, paths = self.dataset, self.paths
        if handle is None:
            handle = self.acquire()
        durable = False
        try:
            open_run, _ = get_json(self.s3, paths.bucket, paths.open_run)
            if open_run is not None:
                durable = True
                return self._resume(open_run, handle)
            # With the lock held and no run open, anything under work/ is a plan that died before it was
            # stored: nothing was copied from it, so it goes.
            delete_prefix(self.s3, paths.bucket, paths.root + "work/")
            now = datetime.now(UTC)
            run_date = run_date or run_date_for(ds, now)
            run_id = handle.run_id
            started = _utc_now()
            # Listing millions of keys can outlast the TTL: keep the lock alive while planning.
            with _scratch_db() as db, locks.Heartbeat(self.s3, handle):
                load_state(self.s3, paths, db)
                counts = build_plan(self._source_objects(), ds, db, run_date=run_date, run_id=run_id, now=now)
                put_json_lines(self.s3, paths.bucket, paths.plan_notes(run_id), iter_notes(db))
                batch_count = 0
                for number, batch in enumerate(
                    cut_batches(iter_copies(db), max_objects=ds.batch_max_objects, max_bytes=ds.batch_max_bytes)
                ):
                    put_json(self.s3, paths.bucket, paths.batch(run_id, number), {"run_id": run_id, "items": batch})
                    batch_count = number + 1
            index = [{"dataset": ds.name, "run_id": run_id, "batch": n} for n in range(batch_count)]
            put_json(self.s3, paths.bucket, paths.batch_index(run_id), index)
            open_run = {
                "dataset": ds.name,
                "run_id": run_id,
                "date": run_date.isoformat(),
                "started_at": started,
                "batch_count": batch_count,
                "counts": counts.as_dict(),
                "resumed": False,
            }
            # The plan is durable from here on: a crash after this point is completed by the next run.
            put_json(self.s3, paths.bucket, paths.open_run, open_run)
            durable = True
        except BaseException:
            if not durable:
                locks.release(self.s3, handle)
            raise
        if batch_count == 0:
            finished = self.finalize(run_id, handle=handle)
            return self._plan_result(open_run, summary=finished["summary"], notification=finished["notification"])
        return self._plan_result(open_run)

    def acquire(self) -> locks.LockHandle:
        if not self.allow_unprotected:
            locks.probe_conditional_writes(self.s3, self.paths.bucket, self.paths.probe)
        return locks.acquire(self.s3, self.paths.bucket, self.paths.lock, new_run_id(), self.dataset.lock_ttl_seconds)

    def _resume(self, open_run: dict[str, Any], handle: locks.LockHandle) -> dict[str, Any]:
        log.warning("run %s for %s was interrupted; completing it first", open_run["run_id"], open_run["date"])
        locks.rebind(self.s3, handle, open_run["run_id"])
        open_run = dict(open_run, resumed=True)
        put_json(self.s3, self.paths.bucket, self.paths.open_run, open_run)
        if open_run["batch_count"] == 0:
            # A plan result with no batches is final by contract (nothing calls finalize after it), so an
            # empty run whose finalize died is finalized here, or it would stay open for good.
            finished = self.finalize(open_run["run_id"], handle=handle)
            return self._plan_result(open_run, summary=finished["summary"], notification=finished["notification"])
        return self._plan_result(open_run)

    def _plan_result(
        self, open_run: dict[str, Any], *, summary: dict[str, Any] | None = None, notification: Any = None
    ) -> dict[str, Any]:
        counts = open_run["counts"]
        return {
            "dataset": self.dataset.name,
            "run_id": open_run["run_id"],
            "date": open_run["date"],
            "resumed": bool(open_run.get("resumed")),
            "batch_count": 0 if summary else open_run["batch_count"],
            "planned": counts["planned"],
            "bytes": counts["planned_bytes"],
            "batches": {"bucket": self.paths.bucket, "key": self.paths.batch_index(open_run["run_id"])},
            "summary": summary,
            "notification": notification,
            # An interrupted run finished inside this plan step: tonight's work is still to be planned.
            "replan": bool(summary and open_run.get("resumed")),
        }

    def _source_objects(self) -> Iterator[SourceObject]:
        """The listing a plan decides over. A ledger is never source data: not ours when source and target
        share a bucket, and not another pipeline's when the source is some other raw bucket."""
        source = self.dataset.source
        return iter_source_objects(self.s3, source.bucket, source.prefix, skip_prefix=LEDGER_ROOT)

    # ---- copy ---------------------------------------------------------------------------------------------

    def copy_batch(
        self,
        run_id: str,
        number: int,
        *,
        handle: locks.LockHandle | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Copy one batch and store its results; safe to retry (landed objects are recognised, not recopied)."""
        ds, paths = self.dataset, self.paths
        handle = handle or locks.adopt(self.s3, paths.bucket, paths.lock, run_id, ds.lock_ttl_seconds)
        open_run = self._open_run(run_id)
        batch, _ = get_json(self.s3, paths.bucket, paths.batch(run_id, number))
        if batch is None:
            raise RunNotFound(f"run {run_id} has no batch {number}")
        ctx = self._context(open_run, check_target=self._is_retry(open_run, number))
        tm = transfer_manager(
            self.s3,
            concurrency=ds.concurrency,
            threshold=ds.multipart_threshold_bytes,
            chunk=ds.multipart_chunk_bytes,
        )
        lines = []
        with tm, locks.Heartbeat(self.s3, handle) as heartbeat:
            done = done_bytes = 0
            for line in copy_items(self.s3, tm, batch["items"], ctx, concurrency=ds.concurrency, check=heartbeat.check):
                lines.append(line)
                done += 1
                done_bytes += line["size"] if line["status"] == COPIED else 0
                if progress and done % 50 == 0:
                    progress(done, done_bytes)
        # A process paused past its TTL (stopped, swapped out) must not report into a run it no longer owns.
        locks.renew(self.s3, handle)
        self.s3.put_object(
            Bucket=paths.bucket,
            Key=paths.result(run_id, number),
            Body=jsonl_bytes(lines),
            ContentType="application/x-ndjson",
        )
        return {"batch": number, **_tally(lines)}

    def _is_retry(self, open_run: dict[str, Any], number: int) -> bool:
        """Could this batch's objects already be at their targets? Only on a resumed run or a batch tried before."""
        if open_run.get("resumed"):
            return True
        marker = self.paths.batch_started(open_run["run_id"], number)
        try:
            self.s3.put_object(Bucket=self.paths.bucket, Key=marker, Body=b"", IfNoneMatch="*")
        except ClientError as err:
            if is_precondition_failed(err):
                return True
            raise
        return False

    def _context(self, open_run: dict[str, Any], *, check_target: bool = True) -> CopyContext:
        return CopyContext(
            check_target=check_target,
            dataset=self.dataset.name,
            run_id=open_run["run_id"],
            date=open_run["date"],
            source_bucket=self.dataset.source.bucket,
            target_bucket=self.dataset.target.bucket,
            multipart_threshold=self.dataset.multipart_threshold_bytes,
        )

    def _open_run(self, run_id: str) -> dict[str, Any]:
        open_run, _ = get_json(self.s3, self.paths.bucket, self.paths.open_run)
        if open_run is None or open_run["run_id"] != run_id:
            raise RunNotFound(
                f"run {run_id} of dataset {self.dataset.name} is not open (open: "
                f"{open_run and open_run['run_id']}); it was finalized already or never planned"
            )
        return open_run

    # ---- finalize -----------------------------------------------------------------------------------------

    def finalize(self, run_id: str, *, handle: locks.LockHandle | None = None) -> dict[str, Any]:
        """Commit the run to the ledger and release the lock; calling it again after success is harmless."""
        ds, paths = self.dataset, self.paths
        open_run, _ = get_json(self.s3, paths.bucket, paths.open_run)
        if open_run is None or open_run["run_id"] != run_id:
            last, _ = get_json(self.s3, paths.bucket, paths.last_run)
            if last and last.get("run_id") == run_id:
                self._finish_cleanup(run_id)
                return {"summary": last, "notification": build_notification(last), "replan": bool(last.get("resumed"))}
            self._open_run(run_id)  # raises RunNotFound with the details
        handle = handle or locks.adopt(self.s3, paths.bucket, paths.lock, run_id, ds.lock_ttl_seconds)
        date = open_run["date"]
        tally = {"copied": 0, "skipped": 0, "failed": 0, "bytes": 0}
        failures: list[dict[str, Any]] = []
        with _scratch_db() as db, tempfile.TemporaryFile() as manifest, locks.Heartbeat(self.s3, handle):
            load_state(self.s3, paths, db)
            for line in self._run_lines(open_run, db):
                line.update(
                    dataset=ds.name,
                    run_id=run_id,
                    date=date,
                    source_bucket=ds.source.bucket,
                    target_bucket=ds.target.bucket,
                )
                manifest.write(jsonl_bytes([line]))
                tally[line["status"]] += 1
                if line["status"] == COPIED:
                    tally["bytes"] += line["size"]
                elif line["status"] == FAILED and len(failures) < MAX_FAILURES_IN_SUMMARY:
                    failures.append({"source_key": line["source_key"], "reason": line["reason"]})
            locks.renew(self.s3, handle)  # the commit starts here: only the lock's owner may make it
            upload_spooled(self.s3, paths.bucket, paths.manifest(date, run_id), manifest, "application/x-ndjson")
            write_state(self.s3, paths, db)
        summary = self._summary(open_run, tally, failures)
        put_json(self.s3, paths.bucket, paths.summary(date, run_id), summary)
        if summary["copied"]:
            put_json(self.s3, paths.bucket, paths.marker(date, run_id), self._marker(summary))
        put_json(self.s3, paths.bucket, paths.last_run, summary)
        self.s3.delete_object(Bucket=paths.bucket, Key=paths.open_run)
        delete_prefix(self.s3, paths.bucket, paths.work(run_id))
        locks.release(self.s3, handle)
        return {"summary": summary, "notification": build_notification(summary), "replan": summary["resumed"]}

    def _finish_cleanup(self, run_id: str) -> None:
        """A finalize that died after committing left its work files and lock: clear them, or the replan
        after a resumed run would meet its own lock until the TTL ran out."""
        delete_prefix(self.s3, self.paths.bucket, self.paths.work(run_id))
        try:
            handle = locks.adopt(self.s3, self.paths.bucket, self.paths.lock, run_id, self.dataset.lock_ttl_seconds)
        except LockLost:
            return  # released already, or another run holds it: not ours to touch
        locks.release(self.s3, handle)

    def _run_lines(self, open_run: dict[str, Any], db: sqlite3.Connection) -> Iterator[dict[str, Any]]:
        """Plan notes, then each batch's results in order; a batch that never reported is reconciled."""
        paths, run_id = self.paths, open_run["run_id"]
        yield from read_jsonl(self.s3, paths.bucket, paths.plan_notes(run_id)) or ()
        for number in range(open_run["batch_count"]):
            reported = read_jsonl(self.s3, paths.bucket, paths.result(run_id, number))
            # A batch is at most batch_max_objects lines: recorded in one transaction, not one per line.
            lines = list(reported) if reported is not None else self._reconcile(open_run, number)
            record_landed(db, lines, run_id, open_run["date"])
            yield from lines

    def _reconcile(self, open_run: dict[str, Any], number: int) -> list[dict[str, Any]]:
        """Look at what landed for a batch whose Lambda died: the ledger must match the bucket."""
        batch, _ = get_json(self.s3, self.paths.bucket, self.paths.batch(open_run["run_id"], number))
        lines = []
        for item in (batch or {}).get("items", []):
            line = {
                "source_key": item["key"],
                "source_etag": item["etag"],
                "size": item["size"],
                "target_key": item["target"],
                "ingested_at": None,
            }
            try:
                head = self.s3.head_object(Bucket=self.dataset.target.bucket, Key=item["target"])
            except Exception as err:
                if not is_not_found(err):
                    raise
                head = None
            if head and landed_from(head.get("Metadata")) == (
                self.dataset.source.bucket,
                item["key"],
                item["etag"],
            ):
                meta = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
                line.update(
                    status=COPIED,
                    reason="landed, but its batch never reported; found on reconcile",
                    ingested_at=meta.get("ingest-timestamp"),
                )
            else:
                line.update(
                    status=FAILED,
                    reason="its batch did not complete (crash or timeout); lands on the next run",
                )
            lines.append(line)
        return lines

    def _summary(
        self, open_run: dict[str, Any], tally: dict[str, int], failures: list[dict[str, Any]]
    ) -> dict[str, Any]:
        counts = open_run["counts"]
        copied, failed = tally["copied"], tally["failed"]
        if failed:
            status = "partial" if copied else "failed"
        else:
            status = "succeeded" if copied else "nothing_new"
        finished = _utc_now()
        started = open_run["started_at"]
        duration = (_parse(finished) - _parse(started)).total_seconds()
        unchanged = counts["skipped_by_reason"].get(UNCHANGED, 0)
        return {
            "dataset": self.dataset.name,
            "run_id": open_run["run_id"],
            "date": open_run["date"],
            "status": status,
            "started_at": started,
            "finished_at": finished,
            "duration_seconds": duration,
            "resumed": bool(open_run.get("resumed")),
            "source": self.dataset.source.uri(),
            "target": self.dataset.target.uri(),
            "listed": counts["listed"],
            "excluded": counts["excluded"],
            "planned": counts["planned"],
            "copied": copied,
            "skipped": _skipped_total(counts, tally),
            "unchanged": unchanged,
            "failed": failed,
            "bytes": tally["bytes"],
            "skipped_by_reason": counts["skipped_by_reason"],
            "failures": failures,
            "manifest": self.paths.uri(self.paths.manifest(open_run["date"], open_run["run_id"])),
            "marker": self.paths.uri(self.paths.marker(open_run["date"], open_run["run_id"])) if copied else None,
        }

    def _marker(self, summary: dict[str, Any]) -> dict[str, Any]:
        return {
            "dataset": summary["dataset"],
            "run_id": summary["run_id"],
            "date": summary["date"],
            "status": summary["status"],
            "copied": summary["copied"],
            "bytes": summary["bytes"],
            "manifest": summary["manifest"],
            "summary": self.paths.uri(self.paths.summary(summary["date"], summary["run_id"])),
            "target": summary["target"],
            "completed_at": summary["finished_at"],
        }

    # ---- one shot -----------------------------------------------------------------------------------------

    def run(self, run_date: Date | None = None, *, progress: Progress | None = None) -> list[dict[str, Any]]:
        """Plan, copy every batch and finalize in this process; first finishes an interrupted run, if any.

        Returns the summaries of every run it finalized (the resumed one first).
        """
        summaries = []
        while True:
            handle = self.acquire()
            plan = self.plan(run_date, handle=handle)
            if plan["summary"] is not None:
                summaries.append(plan["summary"])
            else:
                base = [0, 0]  # objects and bytes of the batches already done

                def batch_progress(objects: int, size: int, base: list[int] = base) -> None:
                    if progress:
                        progress(base[0] + objects, base[1] + size)

                for number in range(plan["batch_count"]):
                    result = self.copy_batch(plan["run_id"], number, handle=handle, progress=batch_progress)
                    base[0] += result["copied"] + result["skipped"] + result["failed"]
                    base[1] += result["bytes"]
                    batch_progress(0, 0)
                summaries.append(self.finalize(plan["run_id"], handle=handle)["summary"])
            if not plan["resumed"]:
                return summaries

    def dry_run(self, run_date: Date | None = None, out: Callable[[str], None] = print) -> dict[str, Any]:
        """Show what a run would do, writing nothing and taking no lock."""
        ds = self.dataset
        now = datetime.now(UTC)
        run_date = run_date or run_date_for(ds, now)
        run_id = new_run_id(now)
        with _scratch_db() as db:
            load_state(self.s3, self.paths, db)
            interrupted = self._dry_run_interrupted(db, out)
            counts = build_plan(self._source_objects(), ds, db, run_date=run_date, run_id=run_id, now=now)
            for item in iter_copies(db):
                out(f"COPY  s3://{ds.source.bucket}/{item['key']} -> s3://{ds.target.bucket}/{item['target']}")
            for note in iter_notes(db):
                out(f"{note['status'].upper()[:4]}  s3://{ds.source.bucket}/{note['source_key']}: {note['reason']}")
        return {
            "dataset": ds.name,
            "run_id": None,
            "date": run_date.isoformat(),
            "status": "dry_run",
            **counts.as_dict(),
            **({"completes_first": interrupted} if interrupted else {}),
        }

    def _dry_run_interrupted(self, db: sqlite3.Connection, out: Callable[[str], None]) -> dict[str, Any] | None:
        """A run first completes an interrupted one under that run's date: show its plan, then plan past it."""
        open_run, _ = get_json(self.s3, self.paths.bucket, self.paths.open_run)
        if open_run is None:
            return None
        ds, run_id, date = self.dataset, open_run["run_id"], open_run["date"]
        out(f"RESUME  run {run_id} was interrupted; it is completed first, its plan landing under {date}")
        for number in range(open_run["batch_count"]):
            batch, _ = get_json(self.s3, self.paths.bucket, self.paths.batch(run_id, number))
            items = (batch or {}).get("items", [])
            for item in items:
                out(f"COPY  s3://{ds.source.bucket}/{item['key']} -> s3://{ds.target.bucket}/{item['target']}")
            # By the time the new run plans, these are in the state: plan as if they were.
            lines = [
                {
                    "source_key": item["key"],
                    "source_etag": item["etag"],
                    "size": item["size"],
                    "target_key": item["target"],
                    "status": COPIED,
                    "ingested_at": None,
                }
                for item in items
            ]
            record_landed(db, lines, run_id, date)
        return {"run_id": run_id, "date": date, "planned": open_run["counts"]["planned"]}

    # ---- history ------------------------------------------------------------------------------------------

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        """Run summaries, newest first (run ids start with their UTC start time)."""
        keys = sorted(
            iter_keys(self.s3, self.paths.bucket, self.paths.summaries),
            key=lambda k: k.rsplit("/", 1)[-1],
            reverse=True,
        )
        return [get_json(self.s3, self.paths.bucket, key)[0] for key in keys[:limit]]


def put_json_lines(s3: Any, bucket: str, key: str, lines: Iterator[dict[str, Any]]) -> None:
    with tempfile.TemporaryFile() as tmp:
        for line in lines:
            tmp.write(jsonl_bytes([line]))
        upload_spooled(s3, bucket, key, tmp, "application/x-ndjson")


def _tally(lines: list[dict[str, Any]]) -> dict[str, int]:
    tally = {"copied": 0, "skipped": 0, "failed": 0, "bytes": 0}
    for line in lines:
        tally[line["status"]] += 1
        if line["status"] == COPIED:
            tally["bytes"] += line["size"]
    return tally


def _skipped_total(counts: dict[str, Any], tally: dict[str, int]) -> int:
    """Routine skips (unchanged, folder markers) are only counted at plan time; every other skip has a
    manifest line (plan notes and copy-time skips alike) and so is in the tally."""
    routine = sum(counts["skipped_by_reason"].get(reason, 0) for reason in ROUTINE_SKIPS)
    return routine + tally["skipped"]


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
