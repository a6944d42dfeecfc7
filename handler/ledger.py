"""The record of what arrived, from where, and when: one dataset's `_ingestion/<dataset>/`, and every
read and write of it.

    _ingestion/<dataset>/
      lock.json                                   the run lock (lock.py)
      open-run.json                               the run being worked on; present only until its commit
      last-run.json                               summary of the newest committed run
      state/current.jsonl.gz                      current state: one line per source key last landed (state.py)
      manifest/date=YYYY-MM-DD/<run_id>.jsonl     one line per object the run copied, skipped or failed
      summary/date=YYYY-MM-DD/<run_id>.json       the run's summary: status, counts, bytes, start, end
      complete/date=YYYY-MM-DD/<run_id>.json      completion marker for downstream jobs (runs that landed files)
      work/<run_id>/...                           plan notes, batches, batch results; deleted at the commit
      probe/                                      the conditional-write probe's scratch objects

Nothing outside this module builds one of these keys or calls S3 on one of these objects; the steps
(steps/) compose the ledger, the lock it hands out, the copier and the pure decisions. The order in which
a run becomes durable is in one place, `Ledger.commit`.

Every write a run shares with other runs is fenced twice. The lock is renewed just before it (a process paused
past its TTL finds out there), and the write itself is conditional on the version this process read when it
still held the lock (If-Match on that ETag, If-None-Match when the key was absent). So a process that wakes
after another run took over cannot overwrite anything that run wrote since, even if it is paused again
between its renewal and its write. A write refused that way raises LockLost.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from . import s3io, state
from .config import DatasetConfig
from .errors import LockLost
from .lock import Lock, LockFile
from .records import BatchItem, ManifestLine, Marker, OpenRun, RunSummary
from .s3errors import NotFound, PreconditionFailed

JSONL = "application/x-ndjson"


class LedgerPaths:
    """Keys of one dataset's ledger in its target bucket: the only place they are spelt."""

    def __init__(self, dataset: DatasetConfig):
        self.bucket = dataset.target.bucket
        self.root = dataset.ledger_prefix

    @property
    def lock(self) -> str:
        return self.root + "lock.json"

    @property
    def probe(self) -> str:
        return self.root + "probe/"

    @property
    def open_run(self) -> str:
        return self.root + "open-run.json"

    @property
    def last_run(self) -> str:
        return self.root + "last-run.json"

    @property
    def state(self) -> str:
        return self.root + "state/current.jsonl.gz"

    @property
    def manifests(self) -> str:
        return self.root + "manifest/"

    @property
    def summaries(self) -> str:
        return self.root + "summary/"

    @property
    def markers(self) -> str:
        return self.root + "complete/"

    @property
    def all_work(self) -> str:
        return self.root + "work/"

    def work(self, run_id: str) -> str:
        return f"{self.all_work}{run_id}/"

    def batch_index(self, run_id: str) -> str:
        return self.work(run_id) + "batches.json"

    def batch(self, run_id: str, number: int) -> str:
        return f"{self.work(run_id)}batches/{number:06d}.json"

    def batch_started(self, run_id: str, number: int) -> str:
        return f"{self.work(run_id)}started/{number:06d}"

    def result(self, run_id: str, number: int) -> str:
        return f"{self.work(run_id)}results/{number:06d}.jsonl"

    def plan_notes(self, run_id: str) -> str:
        return self.work(run_id) + "plan.jsonl"

    def manifest(self, date: str, run_id: str) -> str:
        return f"{self.manifests}date={date}/{run_id}.jsonl"

    def summary(self, date: str, run_id: str) -> str:
        return f"{self.summaries}date={date}/{run_id}.json"

    def marker(self, date: str, run_id: str) -> str:
        return f"{self.markers}date={date}/{run_id}.json"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


class Ledger:
    """One dataset's ledger in its target bucket."""

    def __init__(self, s3: Any, dataset: DatasetConfig):
        self._s3 = s3
        self.dataset = dataset.name
        self.paths = paths = LedgerPaths(dataset)
        self.bucket = paths.bucket
        self.lock = LockFile(s3, self.bucket, paths.lock, dataset.lock_ttl_seconds, paths.probe)
        self._seen: dict[str, str | None] = {}
        """Key -> the ETag this process last read or wrote there (None: absent): what fenced writes expect."""

    # ---- fencing ------------------------------------------------------------------------------------------

    def observe(self, *keys: str) -> None:
        """Note the current version of keys this step will write, while the lock is known to be ours."""
        for key in keys:
            head = s3io.head_or_none(self._s3, self.bucket, key)
            self._seen[key] = None if head is None else head["ETag"]

    def _expect(self, key: str) -> dict[str, Any]:
        if key not in self._seen:
            raise RuntimeError(f"ledger write of {key} without reading it first: the write could not be fenced")
        etag = self._seen[key]
        return {"if_match": etag} if etag else {"if_none_match": True}

    def _fenced(self, key: str, lock: Lock, write: Any) -> None:
        lock.fence()
        try:
            self._seen[key] = write(**self._expect(key))
        except (PreconditionFailed, NotFound) as err:
            raise LockLost(
                f"run {lock.run_id}: {key} was written by another run after this one read it; stopping without "
                "writing (this process was probably paused past its lock)"
            ) from err

    def _fenced_json(self, key: str, document: Any, lock: Lock) -> None:
        self._fenced(key, lock, lambda **cond: s3io.put_json(self._s3, self.bucket, key, document, **cond))

    def _fenced_file(self, key: str, spool: IO[bytes], content_type: str, lock: Lock) -> None:
        self._fenced(
            key, lock, lambda **cond: s3io.upload_file(self._s3, self.bucket, key, spool, content_type, **cond)
        )

    def _fenced_delete(self, key: str, lock: Lock) -> None:
        etag = self._seen.get(key)
        if etag is None:
            return
        lock.fence()
        try:
            s3io.delete(self._s3, self.bucket, key, if_match=etag)
        except PreconditionFailed as err:
            raise LockLost(f"run {lock.run_id}: {key} was rewritten by another run; not deleting it") from err
        self._seen[key] = None

    # ---- where things are ---------------------------------------------------------------------------------

    def manifest_uri(self, date: str, run_id: str) -> str:
        return self.paths.uri(self.paths.manifest(date, run_id))

    def summary_uri(self, date: str, run_id: str) -> str:
        return self.paths.uri(self.paths.summary(date, run_id))

    def marker_uri(self, date: str, run_id: str) -> str:
        return self.paths.uri(self.paths.marker(date, run_id))

    def batch_index(self, run_id: str) -> dict[str, str]:
        """Where the batch index is, in the form a Distributed Map's ItemReader takes."""
        return {"bucket": self.bucket, "key": self.paths.batch_index(run_id)}

    # ---- the open run -------------------------------------------------------------------------------------

    def open_run(self) -> OpenRun | None:
        document, etag = s3io.get_json(self._s3, self.bucket, self.paths.open_run)
        self._seen[self.paths.open_run] = etag
        return None if document is None else OpenRun.from_json(document)

    def save_open_run(self, run: OpenRun, lock: Lock) -> None:
        """From this write on, the run's plan is durable: a crash after it is completed by the next run.

        Fenced against the open run this process read at the start of its step: a planner that wakes after
        another run took over and opened its own run stops here.
        """
        self._fenced_json(self.paths.open_run, run.to_json(), lock)

    # ---- the plan -----------------------------------------------------------------------------------------

    def clear_unstored_plans(self) -> None:
        """With the lock held and no run open, anything under work/ is a plan that died before it was
        stored: nothing was copied from it. Probe objects a failed probe left behind go too."""
        s3io.delete_prefix(self._s3, self.bucket, self.paths.all_work)
        s3io.delete_prefix(self._s3, self.bucket, self.paths.probe)

    def store_plan(self, run_id: str, notes: Iterable[ManifestLine], batches: Iterable[list[BatchItem]]) -> int:
        """Plan notes, each batch, then the index the Map reads; returns the number of batches."""
        self._upload_lines(self.paths.plan_notes(run_id), (line.to_json() for line in notes))
        count = 0
        for number, batch in enumerate(batches):
            document = {"run_id": run_id, "items": [item.to_json() for item in batch]}
            s3io.put_json(self._s3, self.bucket, self.paths.batch(run_id, number), document)
            count = number + 1
        index = self.batch_index(run_id)
        items = [{"dataset": self.dataset, "run_id": run_id, "batch": n} for n in range(count)]
        s3io.put_json(self._s3, self.bucket, index["key"], items)
        return count

    def batch(self, run_id: str, number: int) -> list[BatchItem] | None:
        document, _ = s3io.get_json(self._s3, self.bucket, self.paths.batch(run_id, number))
        return None if document is None else [BatchItem.from_json(item) for item in document["items"]]

    def first_attempt(self, run_id: str, number: int) -> bool:
        """True only for the first attempt at a batch (a marker written with If-None-Match)."""
        return s3io.create_once(self._s3, self.bucket, self.paths.batch_started(run_id, number))

    def plan_notes(self, run_id: str) -> Iterator[ManifestLine]:
        lines = s3io.read_jsonl(self._s3, self.bucket, self.paths.plan_notes(run_id)) or ()
        return (ManifestLine.from_json(line) for line in lines)

    # ---- batch results ------------------------------------------------------------------------------------

    def observe_result(self, run_id: str, number: int) -> None:
        """At the start of a batch: the result it will replace (a resumed or retried batch reports again)."""
        self.observe(self.paths.result(run_id, number))

    def save_result(self, run_id: str, number: int, lines: list[ManifestLine], lock: Lock) -> None:
        """Only the lock's owner may report: a process paused past its TTL must not write into a run it
        no longer owns, nor over the result of the run that took over and ran the batch again."""
        key = self.paths.result(run_id, number)
        if key not in self._seen:
            self.observe(key)
        body = s3io.jsonl_bytes(line.to_json() for line in lines)
        self._fenced(key, lock, lambda **cond: s3io.put_bytes(self._s3, self.bucket, key, body, JSONL, **cond))

    def result(self, run_id: str, number: int) -> list[ManifestLine] | None:
        """A batch's reported lines, or None when it never reported. A batch is at most batch_max_objects."""
        lines = s3io.read_jsonl(self._s3, self.bucket, self.paths.result(run_id, number))
        return None if lines is None else [ManifestLine.from_json(line) for line in lines]

    # ---- the state ----------------------------------------------------------------------------------------

    def load_state(self, db: sqlite3.Connection) -> int:
        """Stream the current state into `db`'s `landed` table; returns the number of keys.

        The version read is the one a commit expects to replace: a stale finalizer cannot write its view over
        a newer run's."""
        state.create_table(db)
        body, etag = s3io.open_versioned(self._s3, self.bucket, self.paths.state)
        self._seen[self.paths.state] = etag
        return 0 if body is None else state.read_into(db, body)

    def save_state(self, db: sqlite3.Connection) -> None:
        """The whole state through a temp file (never all in memory); only `commit` calls it in a run."""
        with tempfile.TemporaryFile() as spool:
            state.write_to(db, spool)
            s3io.upload_file(self._s3, self.bucket, self.paths.state, spool, "application/gzip")

    # ---- the commit ---------------------------------------------------------------------------------------

    def observe_commit(self, run: OpenRun) -> None:
        """At the start of a finalize: the versions its commit will replace (a repeated commit replaces its
        own earlier attempt's manifest and summary)."""
        paths = self.paths
        self.observe(
            paths.manifest(run.date, run.run_id),
            paths.summary(run.date, run.run_id),
            paths.marker(run.date, run.run_id),
            paths.last_run,
        )

    def commit(
        self, run: OpenRun, manifest: IO[bytes], db: sqlite3.Connection, summary: RunSummary, lock: Lock
    ) -> None:
        """Make a finished run part of the record, in the one order that survives dying between any two writes.

        Every write is fenced (the lock renewed, then written only over the version read at the step's start,
        `observe_commit`), so a finalizer paused past its TTL stops at its next write, whichever it is.

        1. The manifest, then the state. Both are rewritten whole from the batch results under work/, which stay
           until step 5, so a commit that dies after either is simply made again by the next finalize, with the
           same keys and the same content.
        2. The summary, then the marker (only when something landed): the marker is the hand-off to downstream
           jobs, so it comes after everything it names.
        3. last-run.json: the newest run, and how a repeated finalize knows this run is committed.
        4. Delete open-run.json: from here on the run is no longer resumed. Everything before this point is
           repeated by the next run if we die; nothing after it is needed for the record.
        5. Delete the work files, release the lock. A death here leaves only garbage and a lock that the next
           finalize (or the TTL) clears.
        """
        paths = self.paths
        self._fenced_file(paths.manifest(run.date, run.run_id), manifest, JSONL, lock)
        with tempfile.TemporaryFile() as spool:
            state.write_to(db, spool)
            self._fenced_file(paths.state, spool, "application/gzip", lock)
        self._fenced_json(paths.summary(run.date, run.run_id), summary.to_json(), lock)
        if summary.copied:
            marker = Marker.of(summary, self.summary_uri(run.date, run.run_id))
            self._fenced_json(paths.marker(run.date, run.run_id), marker.to_json(), lock)
        self._fenced_json(paths.last_run, summary.to_json(), lock)
        self._fenced_delete(paths.open_run, lock)
        self.clear_work(run.run_id)
        lock.release()

    def last_run(self) -> RunSummary | None:
        document, etag = s3io.get_json(self._s3, self.bucket, self.paths.last_run)
        self._seen[self.paths.last_run] = etag
        return None if document is None else RunSummary.from_json(document)

    def clear_work(self, run_id: str) -> None:
        s3io.delete_prefix(self._s3, self.bucket, self.paths.work(run_id))

    def history(self, limit: int) -> list[RunSummary]:
        """Run summaries, newest first (run ids start with their UTC start time)."""
        keys = sorted(
            s3io.iter_keys(self._s3, self.bucket, self.paths.summaries),
            key=lambda k: k.rsplit("/", 1)[-1],
            reverse=True,
        )
        return [RunSummary.from_json(s3io.get_json(self._s3, self.bucket, key)[0]) for key in keys[:limit]]

    def _upload_lines(self, key: str, lines: Iterable[dict[str, Any]]) -> None:
        with tempfile.TemporaryFile() as spool:
            for line in lines:
                spool.write(s3io.jsonl_bytes([line]))
            s3io.upload_file(self._s3, self.bucket, key, spool, JSONL)
