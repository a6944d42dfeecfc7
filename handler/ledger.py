"""The record of what arrived, from where, and when: one dataset's `_ingestion/<dataset>/`, and every
read and write of it.

    _ingestion/<dataset>/
      lock.json                                       the run lock (lock.py)
      open-run.json                                   the run being worked on; present from its sealed plan
                                                      until its commit
      last-run.json                                   summary of the newest committed run
      state/index.json                                the current state: key ranges and the part holding each
      state/parts/<run_id>/<shard>-<piece>.jsonl.gz   a part: one line per source key of its range last landed
                                                      (state.py); written by the run that last changed it
      manifest/date=YYYY-MM-DD/<run_id>-<shard>.jsonl one line per object the run copied, skipped or failed, one
                                                      part per shard: `<run_id>-*.jsonl` is the run's manifest
      summary/date=YYYY-MM-DD/<run_id>.json           the run's summary: status, counts, bytes, start, end
      complete/date=YYYY-MM-DD/<run_id>.json          completion marker for downstream jobs (runs that landed files)
      lineage/date=YYYY-MM-DD/<run_id>-start.json     the run's OpenLineage START event (openlineage.py), and
      lineage/date=YYYY-MM-DD/<run_id>-end.json       its COMPLETE or FAIL event, written with the summary
      work/<run_id>/...                               shards, plan notes, batches, results; deleted at the commit
      probe/                                          the conditional-write probe's scratch objects

Nothing outside this module calls S3 on one of these objects (their keys are spelt in ledger_keys.py). Two objects
read and write them, so that a step gives the run and its lock once, when it joins the run, instead of handing them
back to the ledger on every call. `Ledger` is the dataset's: the reads that need no run (the open run, the last run,
the state, the history). `Ledger.join(run_id)` gives a `RunLedger`, a step's hold on one run: it carries the run id,
the lock and what this process has read of the keys it will write, so a step names a batch or a shard and nothing
else. The JSON documents are one table, `DOCUMENTS`: each kind's key, its record and whether it is fenced, read and
written by one `read` and one `write`. The order in which a run becomes durable is in one place, `RunLedger.commit`.

Every write a run shares with other runs is fenced twice. The lock is renewed just before it (a process paused
past its TTL finds out there), and the write itself is conditional on the version this process read when it
still held the lock (If-Match on that ETag, If-None-Match when the key was absent). So a process that wakes
after another run took over cannot overwrite anything that run wrote since, even if it is paused again
between its renewal and its write. A write refused that way raises LockLost.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import IO, Any, Generic, TypeVar

from . import state
from .config import DatasetConfig
from .errors import LockLost, RunNotFound
from .ledger_keys import Key, LedgerPaths
from .lock import PROBE_LEFTOVER_AGE_SECONDS, Lock, LockFile
from .records import Batch, BatchItem, ManifestLine, Marker, OpenRun, Planning, PlanOutcome, RunSummary, ShardOutcome
from .shards import BATCH_STRIDE, RunShard, StateIndex, StatePart, batch_number, shard_of_batch
from .sources import ReportChoice
from .store import NotFound, PreconditionFailed, Store, jsonl_bytes

JSONL = "application/x-ndjson"

log = logging.getLogger(__name__)

T = TypeVar("T")


def _as_is(document: Any) -> Any:
    return document


@dataclass(frozen=True)
class Document(Generic[T]):
    """One kind of JSON document in the ledger: where it is, what record it holds, and how it is written.

    A fenced document is one a run shares with other runs, or one a process paused past its lock must not
    overwrite: written under the lock, conditional on the version this process read (`RunLedger._fenced`). A
    plain one is under the run's own `work/`, which a run that takes the lock over clears before it plans, so
    nothing can be between its read and its write."""

    name: str
    key: Key
    """The key's template in ledger_keys.py: its fields are the document's coordinates (`run_id`, `shard` ...)."""
    load: Callable[[Any], T]
    dump: Callable[[T], Any]
    fenced: bool

    @cached_property
    def run_scoped(self) -> bool:
        """Whether the key names a run: a run's ledger fills in its own run id."""
        return "run_id" in self.key.fields


def _record(name: str, key: Key, cls: Any, *, fenced: bool) -> Document[Any]:
    return Document(name, key, cls.from_json, cls.to_json, fenced)


def _listing(name: str, key: Key) -> Document[list[dict[str, Any]]]:
    """A list a Distributed Map's ItemReader reads as it is: its items are JSON the state machine hands on."""
    return Document(name, key, _as_is, _as_is, fenced=False)


OPEN_RUN = _record("open run", LedgerPaths.open_run, OpenRun, fenced=True)
"""From its write on, the run's plan is durable: a crash after it is completed by the next run. Fenced against the
open run read at the start of the step, so a planner that wakes after another run took over stops there."""
LAST_RUN = _record("last run", LedgerPaths.last_run, RunSummary, fenced=True)
STATE_INDEX = _record("state index", LedgerPaths.state_index, StateIndex, fenced=True)
SUMMARY = _record("summary", LedgerPaths.summary, RunSummary, fenced=True)
MARKER = _record("marker", LedgerPaths.marker, Marker, fenced=True)
LINEAGE_EVENT: Document[dict[str, Any]] = Document("lineage event", LedgerPaths.lineage_event, _as_is, _as_is, True)
SHARD_OUTCOME = _record("shard outcome", LedgerPaths.shard_outcome, ShardOutcome, fenced=True)
"""Written last by a shard's finalize: its presence says the shard is done. Fenced: the run's account of a shard
is never written by a process that lost the run."""
PLANNING = _record("planning", LedgerPaths.planning, Planning, fenced=False)
REPORT = _record("inventory report", LedgerPaths.report, ReportChoice, fenced=False)
RUN_SHARD = _record("run shard", LedgerPaths.run_shard, RunShard, fenced=False)
PLAN_OUTCOME = _record("plan outcome", LedgerPaths.plan_outcome, PlanOutcome, fenced=False)
"""Written last by a shard's plan: its presence says the shard is planned."""
BATCH = _record("batch", LedgerPaths.batch, Batch, fenced=False)
BATCH_INDEX = _listing("batch index", LedgerPaths.batch_index)
SHARD_LIST = _listing("shard list", LedgerPaths.shard_list)
FINAL_SHARDS = _listing("final shards", LedgerPaths.final_shards)

DOCUMENTS: tuple[Document[Any], ...] = (
    OPEN_RUN,
    LAST_RUN,
    STATE_INDEX,
    SUMMARY,
    MARKER,
    LINEAGE_EVENT,
    SHARD_OUTCOME,
    PLANNING,
    REPORT,
    RUN_SHARD,
    PLAN_OUTCOME,
    BATCH,
    BATCH_INDEX,
    SHARD_LIST,
    FINAL_SHARDS,
)
"""Every JSON document of the ledger. The JSON Lines objects (results, plan notes, manifest parts, state parts)
are streamed, not read whole, and have methods of their own."""


class Ledger:
    """One dataset's ledger in its target bucket: what any step, or a reader with no run, may read."""

    def __init__(self, store: Store, dataset: DatasetConfig):
        self._store = store
        self.dataset = dataset.name
        self.paths = paths = LedgerPaths(dataset)
        self.bucket = paths.bucket
        self.lock = LockFile(store, self.bucket, paths.lock, dataset.lock_ttl_seconds, paths.probe)

    # ---- joining a run ------------------------------------------------------------------------------------

    def join(self, run_id: str, lock: Lock | None = None, *, execution: str | None = None) -> RunLedger:
        """A step's hold on run `run_id`. Without a lock (a step in a process of its own, a Lambda) the lock its
        plan took is adopted, and must be `execution`'s when one is given; a lock handed in (a local pool) is
        checked, since it may have been lost while this process was paused. Either way LockLost stops the step
        before it reads anything it would act on."""
        if lock is None:
            lock = self.lock.adopt(run_id, execution)
        else:
            lock.fence()
        return self.hold(lock)

    def hold(self, lock: Lock) -> RunLedger:
        """The ledger of the run `lock` was just taken for (a plan): nothing to check, the lock is fresh."""
        return RunLedger(self, lock)

    def open_run_named(self, run_id: str) -> OpenRun:
        """The open run, which must be `run_id`: a step for any other run has nothing to do here."""
        run = self.open_run()
        if run is None or run.run_id != run_id:
            raise RunNotFound(
                f"run {run_id} of dataset {self.dataset} is not open (open: "
                f"{run and run.run_id}); it was finalized already or never planned"
            )
        return run

    # ---- documents ----------------------------------------------------------------------------------------

    def key(self, doc: Document[Any], **where: Any) -> str:
        return doc.key.render(self.paths.root, **where)

    def read(self, doc: Document[T], **where: Any) -> T | None:
        """The document at `where`, or None when it is absent. Unfenced: nothing is written on the strength of
        this read (a run's ledger reads what it will write over with `RunLedger.read`)."""
        return self.read_versioned(doc, **where)[0]

    def read_versioned(self, doc: Document[T], **where: Any) -> tuple[T | None, str | None]:
        """The document and the version read (None: absent), for a step that fences a later write on it."""
        document, etag = self._store.get_json(self.bucket, self.key(doc, **where))
        return (None if document is None else doc.load(document)), etag

    def location(self, doc: Document[Any], **where: Any) -> dict[str, str]:
        """Where a document is, in the form a Distributed Map's ItemReader takes."""
        return {"bucket": self.bucket, "key": self.key(doc, **where)}

    def open_run(self) -> OpenRun | None:
        return self.read(OPEN_RUN)

    def last_run(self) -> RunSummary | None:
        return self.read(LAST_RUN)

    # ---- where things are ---------------------------------------------------------------------------------

    def manifest_uri(self, date: str, run_id: str) -> str:
        """The run's manifest as one glob over its parts."""
        return self.paths.uri(self.paths.manifest_glob(date=date, run_id=run_id))

    def summary_uri(self, date: str, run_id: str) -> str:
        return self.paths.uri(self.paths.summary(date=date, run_id=run_id))

    def marker_uri(self, date: str, run_id: str) -> str:
        return self.paths.uri(self.paths.marker(date=date, run_id=run_id))

    # ---- a run's work, read without holding it (status, dry run, the local chain) ---------------------------

    def batch_numbers(self, run_id: str) -> list[int]:
        """Every batch of a sealed run, from the list the copy Map reads."""
        return [int(item["batch"]) for item in self.read(BATCH_INDEX, run_id=run_id) or ()]

    def result(self, run_id: str, number: int) -> list[ManifestLine] | None:
        """A batch's reported lines, or None when it never reported. A batch is at most batch_max_objects."""
        lines = self._store.read_jsonl(self.bucket, self.paths.result(run_id=run_id, batch=number))
        return None if lines is None else [ManifestLine.from_json(line) for line in lines]

    def plan_notes(self, run_id: str, shard: int) -> Iterator[ManifestLine]:
        lines = self._store.read_jsonl(self.bucket, self.paths.plan_notes(run_id=run_id, shard=shard))
        if lines is None and shard == 0:  # a run planned before shards existed
            lines = self._store.read_jsonl(self.bucket, self.paths.legacy_plan_notes(run_id=run_id))
        return (ManifestLine.from_json(line) for line in lines or ())

    def reported_batches(self, run_id: str) -> list[int]:
        """The batches of a run that have stored their results so far."""
        return self._units(self.paths.results(run_id=run_id))

    def planned_shards(self, run_id: str) -> list[int]:
        """The shards of a run being planned that have stored their plan so far."""
        return self._units(self.paths.plan_outcomes(run_id=run_id))

    def finalized_shards(self, run_id: str) -> list[int]:
        """The shards of a run that have written their manifest part and state so far."""
        return self._units(self.paths.shard_outcomes(run_id=run_id))

    def _units(self, prefix: str) -> list[int]:
        units = (self.paths.unit(key) for key in self._store.iter_keys(self.bucket, prefix))
        return sorted(n for n in units if n is not None)

    # ---- housekeeping under the lock ----------------------------------------------------------------------

    def clear_unstored_plans(self, keep: str) -> None:
        """With the lock held and no run open, anything under work/ but the run `keep`'s own folder is a plan that
        died before it was stored: nothing was copied from it. The lock's own run is kept: a sibling attempt of
        its plan (a duplicated invocation) may be writing there now. Probe objects a failed delete left behind go
        too, once they are old enough that no probe (another run's, which needs no lock) can be between its two
        writes."""
        own = self.paths.work(run_id=keep)
        doomed = (key for key in self._store.iter_keys(self.bucket, self.paths.all_work) if not key.startswith(own))
        self._store.delete_keys(self.bucket, doomed)
        self._store.delete_prefix(self.bucket, self.paths.probe, older_than_seconds=PROBE_LEFTOVER_AGE_SECONDS)

    def delete_replaced(self, index: StateIndex) -> None:
        """The parts an index replaced, and its run's own parts it does not name (an earlier attempt's split).
        Only those: a later run's index is built from this one, so it can never name them."""
        kept = {p.part for p in index.parts if p.part}
        doomed = [key for key in index.replaced if key not in kept]
        if index.run_id is not None:
            own = self.paths.run_state_parts(run_id=index.run_id)
            doomed += [key for key in self._store.iter_keys(self.bucket, own) if key not in kept]
        self._store.delete_keys(self.bucket, doomed)

    def clear_work(self, run_id: str) -> None:
        """A run's work files; also called for a committed run whose finalize died before it cleared them."""
        self._store.delete_prefix(self.bucket, self.paths.work(run_id=run_id))

    # ---- the state ----------------------------------------------------------------------------------------

    def state_index(self) -> StateIndex:
        """The committed state's ranges and parts; a single-file state of an older version reads as one part."""
        index = self.read(STATE_INDEX)
        if index is not None:
            return index
        if self._store.head_or_none(self.bucket, self.paths.legacy_state) is not None:
            return StateIndex((StatePart(None, self.paths.legacy_state, -1),))
        return StateIndex.empty()

    def load_parts(
        self, db: sqlite3.Connection, parts: Iterable[str], start_after: str | None, end_at: str | None
    ) -> int:
        """A shard's state: the keys of its range from the parts that hold them, into `db`'s `landed` table."""
        state.create_table(db)
        count = 0
        for key in parts:
            body = self._store.open_body(self.bucket, key)
            if body is None:
                raise FileNotFoundError(f"state part {self.paths.uri(key)} named by the state index is missing")
            count += state.read_into(db, body, start_after=start_after, end_at=end_at)
        return count

    def load_state(self, db: sqlite3.Connection) -> int:
        """The whole current state into `db` (a dry run, tests): every part, so it grows with the dataset."""
        return self.load_parts(db, (p.part for p in self.state_index().parts if p.part), None, None)

    def iter_state(self) -> Iterator[dict[str, Any]]:
        """Every row of the current state, part by part in key order (verification, tests)."""
        for part in self.state_index().parts:
            if part.part:
                body = self._store.open_body(self.bucket, part.part)
                if body is not None:
                    yield from state.iter_lines(body)

    def state_part_rows(self, key: str) -> Iterator[dict[str, Any]] | None:
        """One state part's rows in key order, streamed; None when the part is missing."""
        body = self._store.open_body(self.bucket, key)
        return None if body is None else state.iter_lines(body)

    # ---- reading the record back (status, verify, lineage) ------------------------------------------------

    def manifest_lines(self, date: str, run_id: str) -> Iterator[dict[str, Any]]:
        """A run's manifest lines, part by part (a run written before parts existed: its one file)."""
        for key in self.manifest_part_keys(date, run_id):
            yield from self.part_lines(key)

    def manifest_part_keys(self, date: str, run_id: str) -> Iterator[str]:
        """The keys of a run's manifest parts, in shard order (a run written before parts existed: its one file)."""
        yield from self._store.iter_keys(self.bucket, self.paths.manifest_parts(date=date, run_id=run_id))
        whole = self.paths.legacy_manifest(date=date, run_id=run_id)
        if self._store.head_or_none(self.bucket, whole) is not None:
            yield whole

    def part_lines(self, key: str) -> Iterator[dict[str, Any]]:
        """One manifest part's lines, streamed (none when it is gone)."""
        yield from self._store.read_jsonl(self.bucket, key) or ()

    def committed_summary(self, run_id: str) -> RunSummary | None:
        """The summary of a committed run: last-run.json when it is the newest (one read), else its summary found by
        listing the summaries (a rare path: a step that reads back after a sibling committed)."""
        last = self.last_run()
        if last is not None and last.run_id == run_id:
            return last
        date = self.run_date(run_id)
        return None if date is None else self.read(SUMMARY, date=date, run_id=run_id)

    def last_landed_at(self) -> str | None:
        """When the newest committed run that landed something ended; read without fencing (nothing is
        written over it on the strength of this read). Summaries older than the field: their end if they
        copied, else unknown."""
        document, _ = self._store.get_json(self.bucket, self.paths.last_run)
        if document is None:
            return None
        return document.get("last_landed_at") or (document.get("finished_at") if document.get("copied") else None)

    def runs_on(self, date: str) -> list[RunSummary]:
        """The committed runs of one date, oldest first (a summary is written by each run's commit)."""
        keys = sorted(self._store.iter_keys(self.bucket, self.paths.summary_folder(date=date)))
        summaries = (self._store.get_json(self.bucket, key)[0] for key in keys)
        return [RunSummary.from_json(document) for document in summaries if document is not None]

    def lineage_events(self, date: str, run_id: str) -> list[dict[str, Any]]:
        """The run's OpenLineage events as stored, START first (a run committed before they existed has none)."""
        events = (self.read(LINEAGE_EVENT, date=date, run_id=run_id, event=event) for event in ("start", "end"))
        return [event for event in events if event is not None]

    def run_date(self, run_id: str) -> str | None:
        """The date a committed run belongs to, from its summary's key (one listing of the summaries: one key per
        run, so it grows with the history, not with the dataset)."""
        for key in self._store.iter_keys(self.bucket, self.paths.summaries):
            found = self.paths.summary_run(key)
            if found is not None and found[1] == run_id:
                return found[0]
        return None

    def history(self, limit: int) -> list[RunSummary]:
        """Run summaries, newest first (run ids start with their UTC start time)."""
        keys = sorted(
            self._store.iter_keys(self.bucket, self.paths.summaries),
            key=lambda k: k.rsplit("/", 1)[-1],
            reverse=True,
        )
        return [RunSummary.from_json(self._store.get_json(self.bucket, key)[0]) for key in keys[:limit]]


class RunLedger:
    """A step's hold on one run of the ledger: the run, its lock, and the versions this process read of the keys
    it will write (the fencing state), so a step names a batch or a shard and nothing else.

    One per step: the versions are what this step read while the lock was known to be its own; a step that
    trusted another step's reads would fence its writes on versions it never saw."""

    def __init__(self, ledger: Ledger, lock: Lock):
        self.ledger = ledger
        self.lock = lock
        self.paths = ledger.paths
        self.bucket = ledger.bucket
        self._store = ledger._store
        self._seen: dict[str, str | None] = {}
        """Key -> the ETag this process last read or wrote there (None: absent): what fenced writes expect."""
        self._seen_under: dict[str, dict[str, str]] = {}
        """Prefix -> the ETags of every key under it when listed: keys not listed were absent."""

    @property
    def run_id(self) -> str:
        """The lock's run: a plan that resumes an interrupted run rebinds the lock, and this ledger follows it."""
        return self.lock.run_id

    def _key(self, doc: Document[Any], where: dict[str, Any]) -> str:
        if doc.run_scoped:
            where.setdefault("run_id", self.run_id)
        return self.ledger.key(doc, **where)

    # ---- documents ----------------------------------------------------------------------------------------

    def read(self, doc: Document[T], **where: Any) -> T | None:
        """The document at `where` (this run's unless another `run_id` is named). A fenced document's version is
        noted: a later write of it is conditional on what this read saw."""
        key = self._key(doc, where)
        document, etag = self._store.get_json(self.bucket, key)
        if doc.fenced:
            self._seen[key] = etag
        return None if document is None else doc.load(document)

    def write(self, doc: Document[T], record: T, **where: Any) -> bool:
        """Write a document; a fenced one only over the version read (`read`, `observe`). False when a sibling
        attempt of this step wrote it first: its version is kept (`_refused`)."""
        key, document = self._key(doc, where), doc.dump(record)
        if not doc.fenced:
            self._store.put_json(self.bucket, key, document)
            return True
        return self._fenced(key, lambda **cond: self._store.put_json(self.bucket, key, document, **cond))

    def saw(self, doc: Document[Any], etag: str | None, **where: Any) -> None:
        """A version of `doc` read before this run was joined (`Ledger.read_versioned`), as a later write expects."""
        self._seen[self._key(doc, where)] = etag

    def location(self, doc: Document[Any], **where: Any) -> dict[str, str]:
        """Where one of this run's documents is, for a Distributed Map's ItemReader."""
        return {"bucket": self.bucket, "key": self._key(doc, where)}

    # ---- fencing ------------------------------------------------------------------------------------------

    def observe(self, *keys: str) -> None:
        """Note the current version of keys this step will write, while the lock is known to be ours."""
        for key in keys:
            head = self._store.head_or_none(self.bucket, key)
            self._seen[key] = None if head is None else head["ETag"]

    def _expect(self, key: str) -> dict[str, Any]:
        if key not in self._seen:
            listed = next((keys for prefix, keys in self._seen_under.items() if key.startswith(prefix)), None)
            if listed is None:
                raise RuntimeError(f"ledger write of {key} without reading it first: the write could not be fenced")
            self._seen[key] = listed.get(key)
        etag = self._seen[key]
        return {"if_match": etag} if etag else {"if_none_match": True}

    def _fenced(self, key: str, write: Any) -> bool:
        """Write `key` fenced; False when a sibling attempt's version was there first and is kept instead."""
        self.lock.fence()
        try:
            self._seen[key] = write(**self._expect(key))
        except (PreconditionFailed, NotFound) as err:
            self._refused(key, err)
            return False
        return True

    def _refused(self, key: str, err: Exception) -> None:
        """A fenced write met a version of `key` this process did not read. If the lock still carries our token,
        only our own run can have written it: a sibling attempt of this step (Lambda delivered it twice, or ran
        it beside its retry), which wrote the same step's account. Keep the sibling's version, as if ours had
        come first. Otherwise another run took over: stop without writing."""
        if self.lock.still_ours():
            head = self._store.head_or_none(self.bucket, key)
            self._seen[key] = None if head is None else head["ETag"]
            log.info("run %s: %s was written by a sibling attempt of this step; keeping it", self.run_id, key)
            return
        raise LockLost(
            f"run {self.run_id}: {key} was written by another run after this one read it; stopping without "
            "writing (this process was probably paused past its lock)"
        ) from err

    def _fenced_file(self, key: str, spool: IO[bytes], content_type: str) -> None:
        self._fenced(key, lambda **cond: self._store.upload_file(self.bucket, key, spool, content_type, **cond))

    def _fenced_delete(self, key: str) -> None:
        etag = self._seen.get(key)
        if etag is None:
            return
        self.lock.fence()
        try:
            self._store.delete(self.bucket, key, if_match=etag)
        except (PreconditionFailed, NotFound) as err:
            self._refused(key, err)
            return
        self._seen[key] = None

    # ---- the open run -------------------------------------------------------------------------------------

    def open_run(self) -> OpenRun | None:
        """The open run, whichever it is, its version noted: a plan or a seal may write it next."""
        return self.read(OPEN_RUN)

    def save_start_event(self, run: OpenRun, event: dict[str, Any]) -> None:
        """The run's OpenLineage START, once its plan is durable. Only this run writes the key; it is fenced all
        the same, like every ledger write of a run."""
        where = {"date": run.date, "run_id": run.run_id, "event": "start"}
        self.observe(self.ledger.key(LINEAGE_EVENT, **where))
        self.write(LINEAGE_EVENT, event, **where)

    # ---- the plan -----------------------------------------------------------------------------------------

    def start_planning(self, planning: Planning, shards: Iterable[RunShard]) -> None:
        """A round's shards, then the list the PlanShards Map reads, then the planning record: a step that finds
        the record finds everything it names. Nothing here is fenced: it is all under this run's own work/,
        which a run that takes the lock over clears before it plans (`Ledger.clear_unstored_plans`)."""
        ids = []
        for shard in shards:
            self.write(RUN_SHARD, shard, shard=shard.shard)
            ids.append(shard.shard)
        items = [{"dataset": self.ledger.dataset, "run_id": self.run_id, "shard": n} for n in ids]
        self.write(SHARD_LIST, items, round=planning.round)
        self.write(PLANNING, planning)

    def store_shard_plan(self, shard: int, notes: Iterable[ManifestLine], batches: Iterable[list[BatchItem]]) -> int:
        """One shard's plan notes and batches (numbered `batch_number(shard, n)`); returns how many batches."""
        self._upload_lines(self.paths.plan_notes(run_id=self.run_id, shard=shard), (line.to_json() for line in notes))
        count = 0
        for n, batch in enumerate(batches):
            self.write(BATCH, Batch(self.run_id, tuple(batch)), batch=batch_number(shard, n))
            count = n + 1
        return count

    def store_sealed_lists(self, batches: Iterable[int], shard_count: int) -> None:
        """The lists the copy and finalize Maps read. The batch list has one item per batch of the night: its
        size follows the night's changes, not the dataset's (10 million changed keys make 10,000 items)."""
        items = [{"dataset": self.ledger.dataset, "run_id": self.run_id, "batch": n} for n in batches]
        self.write(BATCH_INDEX, items)
        self.store_final_shards(shard_count)

    def store_final_shards(self, shard_count: int) -> None:
        shards = [{"dataset": self.ledger.dataset, "run_id": self.run_id, "shard": n} for n in range(shard_count)]
        self.write(FINAL_SHARDS, shards)

    def batch_planned(self, run: OpenRun, number: int) -> bool:
        """Whether the run's plan has this batch, whether or not its file is still there."""
        shard, n = shard_of_batch(number), number % BATCH_STRIDE
        if shard >= run.shard_count:
            return False
        outcome = self.read(PLAN_OUTCOME, shard=shard)
        if outcome is None:  # a run planned before shards existed: batches 0 .. batch_count-1
            return run.shard_count == 1 and number < run.batch_count
        return n < outcome.batches

    def first_attempt(self, number: int) -> bool:
        """True only for the first attempt at a batch (a marker written with If-None-Match)."""
        return self._store.create_once(self.bucket, self.paths.batch_started(run_id=self.run_id, batch=number))

    def _upload_lines(self, key: str, lines: Iterable[dict[str, Any]]) -> None:
        with tempfile.TemporaryFile() as spool:
            for line in lines:
                spool.write(jsonl_bytes([line]))
            self._store.upload_file(self.bucket, key, spool, JSONL)

    # ---- batch results ------------------------------------------------------------------------------------

    def observe_result(self, number: int) -> None:
        """At the start of a batch: the result it will replace (a resumed or retried batch reports again)."""
        self.observe(self.paths.result(run_id=self.run_id, batch=number))

    def save_result(self, number: int, lines: list[ManifestLine]) -> None:
        """Only the lock's owner may report: a process paused past its TTL must not write into a run it
        no longer owns, nor over the result of the run that took over and ran the batch again."""
        key = self.paths.result(run_id=self.run_id, batch=number)
        body = jsonl_bytes(line.to_json() for line in lines)
        self._fenced(key, lambda **cond: self._store.put_bytes(self.bucket, key, body, JSONL, **cond))

    # ---- a shard's finalize -------------------------------------------------------------------------------

    def observe_shard(self, run: OpenRun, shard: int) -> None:
        """At the start of a shard's finalize: what it will replace (its own earlier attempt's files)."""
        paths = self.paths
        self.observe(
            paths.manifest_part(date=run.date, run_id=run.run_id, shard=shard),
            paths.shard_outcome(run_id=run.run_id, shard=shard),
        )
        prefix = paths.state_parts(run_id=run.run_id, shard=shard)
        self._seen_under[prefix] = dict(self._store.iter_etags(self.bucket, prefix))

    def save_pieces(
        self, db: sqlite3.Connection, shard: int, start_after: str | None, sizes: list[int]
    ) -> tuple[StatePart, ...]:
        """A shard's state as new parts of the given sizes, cut in key order, each fenced."""
        pieces = []
        rows = state.sorted_rows(db)
        low = start_after
        for piece, size in enumerate(sizes):
            key = self.paths.state_part(run_id=self.run_id, shard=shard, piece=piece)
            with tempfile.TemporaryFile() as spool:
                last = state.write_rows(itertools.islice(rows, size), spool)
                self._fenced_file(key, spool, "application/gzip")
            pieces.append(StatePart(low, key, size))
            low = last
        return tuple(pieces)

    def save_manifest_part(self, run: OpenRun, shard: int, spool: IO[bytes]) -> str:
        key = self.paths.manifest_part(date=run.date, run_id=run.run_id, shard=shard)
        self._fenced_file(key, spool, JSONL)
        return self.paths.uri(key)

    # ---- the commit ---------------------------------------------------------------------------------------

    def observe_commit(self, run: OpenRun) -> None:
        """At the start of a finalize: the versions its commit will replace (a repeated commit replaces its
        own earlier attempt's index and summary)."""
        paths = self.paths
        self.observe(
            paths.state_index,
            paths.summary(date=run.date, run_id=run.run_id),
            paths.marker(date=run.date, run_id=run.run_id),
            paths.lineage_event(date=run.date, run_id=run.run_id, event="end"),
            paths.last_run,
        )

    def commit(
        self,
        run: OpenRun,
        index: StateIndex | None,
        summary: RunSummary,
        end_event: Callable[[RunSummary], dict[str, Any]],
    ) -> RunSummary:
        """Make a finished run part of the record, in the one order that survives dying between any two writes.

        Before this, every shard's finalize wrote its manifest part and its new state parts (new keys of this
        run: the committed index still names the old ones), then its outcome under work/. Every write here is
        fenced (the lock renewed, then written only over the version read at the step's start,
        `observe_commit`), so a finalizer paused past its TTL stops at its next write, whichever it is.

        1. The state index (`index`; None when no shard's state changed): from here on the new parts are the
           state. It is built from the outcomes under work/, which stay until step 5, so a commit that dies
           after it is made again by the next finalize, with the same content.
        2. The summary, its OpenLineage end event, then the marker (only when something landed): the marker is
           the hand-off to downstream jobs, so it comes after everything it names. A sibling attempt of this
           finalize (Lambda ran it twice) that wrote its summary first is kept, and everything after it is written
           from that summary, so the record tells one story; the summary committed is returned.
        3. last-run.json: the newest run, and how a repeated finalize knows this run is committed.
        4. Delete open-run.json: from here on the run is no longer resumed. Everything before this point is
           repeated by the next run if we die; nothing after it is needed for the record.
        5. Delete the parts the new index replaced, the work files; release the lock. A death here leaves only
           garbage and a lock that the next finalize (or the TTL) clears.
        """
        night = {"date": run.date, "run_id": run.run_id}
        if index is not None:
            self.write(STATE_INDEX, index)
        if not self.write(SUMMARY, summary, **night):
            summary = self.read(SUMMARY, **night) or summary
        self.write(LINEAGE_EVENT, end_event(summary), event="end", **night)
        if summary.copied:
            self.write(MARKER, Marker.of(summary, self.ledger.summary_uri(**night)), **night)
        self.write(LAST_RUN, summary)
        self._fenced_delete(self.paths.open_run)
        if index is not None:
            self.ledger.delete_replaced(index)
        self.ledger.clear_work(run.run_id)
        self.lock.release()
        return summary
