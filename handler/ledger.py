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

A state written before shards existed (`state/current.jsonl.gz`, one file) is read as an index of one part of
unknown size; the first commit rewrites it as parts and deletes it (docs/SCALE.md, "Migration").

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

import itertools
import logging
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from . import state
from .config import DatasetConfig
from .errors import LockLost
from .ledger_keys import LedgerPaths
from .lock import PROBE_LEFTOVER_AGE_SECONDS, Lock, LockFile
from .records import (
    BatchItem,
    ManifestLine,
    Marker,
    OpenRun,
    Planning,
    PlanOutcome,
    RunSummary,
    ShardOutcome,
)
from .shards import BATCH_STRIDE, RunShard, StateIndex, StatePart, batch_number, shard_of_batch
from .sources import ReportChoice
from .store import NotFound, PreconditionFailed, Store, jsonl_bytes

JSONL = "application/x-ndjson"

log = logging.getLogger(__name__)


class Ledger:
    """One dataset's ledger in its target bucket."""

    def __init__(self, store: Store, dataset: DatasetConfig):
        self._store = store
        self.dataset = dataset.name
        self.paths = paths = LedgerPaths(dataset)
        self.bucket = paths.bucket
        self.lock = LockFile(store, self.bucket, paths.lock, dataset.lock_ttl_seconds, paths.probe)
        self._seen: dict[str, str | None] = {}
        """Key -> the ETag this process last read or wrote there (None: absent): what fenced writes expect."""
        self._seen_under: dict[str, dict[str, str]] = {}
        """Prefix -> the ETags of every key under it when listed: keys not listed were absent."""

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

    def _fenced(self, key: str, lock: Lock, write: Any) -> bool:
        """Write `key` fenced; False when a sibling attempt's version was there first and is kept instead."""
        lock.fence()
        try:
            self._seen[key] = write(**self._expect(key))
        except (PreconditionFailed, NotFound) as err:
            self._refused(key, lock, err)
            return False
        return True

    def _refused(self, key: str, lock: Lock, err: Exception) -> None:
        """A fenced write met a version of `key` this process did not read. If the lock still carries our token,
        only our own run can have written it: a sibling attempt of this step (Lambda delivered it twice, or ran
        it beside its retry), which wrote the same step's account. Keep the sibling's version, as if ours had
        come first. Otherwise another run took over: stop without writing."""
        if lock.still_ours():
            head = self._store.head_or_none(self.bucket, key)
            self._seen[key] = None if head is None else head["ETag"]
            log.info("run %s: %s was written by a sibling attempt of this step; keeping it", lock.run_id, key)
            return
        raise LockLost(
            f"run {lock.run_id}: {key} was written by another run after this one read it; stopping without "
            "writing (this process was probably paused past its lock)"
        ) from err

    def _fenced_json(self, key: str, document: Any, lock: Lock) -> bool:
        return self._fenced(key, lock, lambda **cond: self._store.put_json(self.bucket, key, document, **cond))

    def _fenced_file(self, key: str, spool: IO[bytes], content_type: str, lock: Lock) -> None:
        self._fenced(key, lock, lambda **cond: self._store.upload_file(self.bucket, key, spool, content_type, **cond))

    def _fenced_delete(self, key: str, lock: Lock) -> None:
        etag = self._seen.get(key)
        if etag is None:
            return
        lock.fence()
        try:
            self._store.delete(self.bucket, key, if_match=etag)
        except (PreconditionFailed, NotFound) as err:
            self._refused(key, lock, err)
            return
        self._seen[key] = None

    # ---- where things are ---------------------------------------------------------------------------------

    def manifest_uri(self, date: str, run_id: str) -> str:
        """The run's manifest as one glob over its parts."""
        return self.paths.uri(self.paths.manifest_glob(date, run_id))

    def summary_uri(self, date: str, run_id: str) -> str:
        return self.paths.uri(self.paths.summary(date, run_id))

    def marker_uri(self, date: str, run_id: str) -> str:
        return self.paths.uri(self.paths.marker(date, run_id))

    def batch_index(self, run_id: str) -> dict[str, str]:
        """Where the batch index is, in the form a Distributed Map's ItemReader takes."""
        return {"bucket": self.bucket, "key": self.paths.batch_index(run_id)}

    def final_shards(self, run_id: str) -> dict[str, str]:
        """Where the list of shards to finalize is, for the FinalizeShards Map's ItemReader."""
        return {"bucket": self.bucket, "key": self.paths.final_shards(run_id)}

    def shard_list(self, run_id: str, round_: int) -> dict[str, str]:
        """Where one planning round's shards are listed, for the PlanShards Map's ItemReader."""
        return {"bucket": self.bucket, "key": self.paths.shard_list(run_id, round_)}

    # ---- the open run -------------------------------------------------------------------------------------

    def open_run(self) -> OpenRun | None:
        document, etag = self._store.get_json(self.bucket, self.paths.open_run)
        self._seen[self.paths.open_run] = etag
        return None if document is None else OpenRun.from_json(document)

    def save_open_run(self, run: OpenRun, lock: Lock) -> None:
        """From this write on, the run's plan is durable: a crash after it is completed by the next run.

        Fenced against the open run this process read at the start of its step: a planner that wakes after
        another run took over and opened its own run stops here.
        """
        self._fenced_json(self.paths.open_run, run.to_json(), lock)

    def save_start_event(self, run: OpenRun, event: dict[str, Any], lock: Lock) -> None:
        """The run's OpenLineage START, once its plan is durable. Only this run writes the key; it is fenced all
        the same, like every ledger write of a run."""
        key = self.paths.lineage_event(run.date, run.run_id, end=False)
        self.observe(key)
        self._fenced_json(key, event, lock)

    # ---- the plan -----------------------------------------------------------------------------------------

    def clear_unstored_plans(self, keep: str) -> None:
        """With the lock held and no run open, anything under work/ but the run `keep`'s own folder is a plan that
        died before it was stored: nothing was copied from it. The lock's own run is kept: a sibling attempt of
        its plan (a duplicated invocation) may be writing there now. Probe objects a failed delete left behind go
        too, once they are old enough that no probe (another run's, which needs no lock) can be between its two
        writes."""
        own = self.paths.work(keep)
        doomed = (key for key in self._store.iter_keys(self.bucket, self.paths.all_work) if not key.startswith(own))
        self._store.delete_keys(self.bucket, doomed)
        self._store.delete_prefix(self.bucket, self.paths.probe, older_than_seconds=PROBE_LEFTOVER_AGE_SECONDS)

    def start_planning(self, planning: Planning, shards: Iterable[RunShard]) -> None:
        """A round's shards, then the list the PlanShards Map reads, then the planning record: a step that finds
        the record finds everything it names. Nothing here is fenced: it is all under this run's own work/,
        which a run that takes the lock over clears before it plans (`clear_unstored_plans`)."""
        ids = []
        for shard in shards:
            self._store.put_json(self.bucket, self.paths.run_shard(planning.run_id, shard.shard), shard.to_json())
            ids.append(shard.shard)
        items = [{"dataset": self.dataset, "run_id": planning.run_id, "shard": n} for n in ids]
        self._store.put_json(self.bucket, self.paths.shard_list(planning.run_id, planning.round), items)
        self._store.put_json(self.bucket, self.paths.planning(planning.run_id), planning.to_json())

    def planning(self, run_id: str) -> Planning | None:
        document, _ = self._store.get_json(self.bucket, self.paths.planning(run_id))
        return None if document is None else Planning.from_json(document)

    def store_report(self, run_id: str, report: ReportChoice) -> None:
        """The inventory report the run plans from, before the planning record that says it has one."""
        self._store.put_json(self.bucket, self.paths.report(run_id), report.to_json())

    def report(self, run_id: str) -> ReportChoice | None:
        document, _ = self._store.get_json(self.bucket, self.paths.report(run_id))
        return None if document is None else ReportChoice.from_json(document)

    def run_shard(self, run_id: str, shard: int) -> RunShard | None:
        document, _ = self._store.get_json(self.bucket, self.paths.run_shard(run_id, shard))
        return None if document is None else RunShard.from_json(document)

    def store_shard_plan(
        self, run_id: str, shard: int, notes: Iterable[ManifestLine], batches: Iterable[list[BatchItem]]
    ) -> int:
        """One shard's plan notes and batches (numbered `batch_number(shard, n)`); returns how many batches."""
        self._upload_lines(self.paths.plan_notes(run_id, shard), (line.to_json() for line in notes))
        count = 0
        for n, batch in enumerate(batches):
            document = {"run_id": run_id, "items": [item.to_json() for item in batch]}
            self._store.put_json(self.bucket, self.paths.batch(run_id, batch_number(shard, n)), document)
            count = n + 1
        return count

    def save_plan_outcome(self, run_id: str, outcome: PlanOutcome) -> None:
        """Written last by a shard's plan: its presence says the shard is planned."""
        self._store.put_json(self.bucket, self.paths.plan_outcome(run_id, outcome.shard), outcome.to_json())

    def plan_outcome(self, run_id: str, shard: int) -> PlanOutcome | None:
        document, _ = self._store.get_json(self.bucket, self.paths.plan_outcome(run_id, shard))
        return None if document is None else PlanOutcome.from_json(document)

    def store_sealed_lists(self, run_id: str, batches: Iterable[int], shard_count: int) -> None:
        """The lists the copy and finalize Maps read. The batch list has one item per batch of the night: its
        size follows the night's changes, not the dataset's (10 million changed keys make 10,000 items)."""
        items = [{"dataset": self.dataset, "run_id": run_id, "batch": n} for n in batches]
        self._store.put_json(self.bucket, self.paths.batch_index(run_id), items)
        self.store_final_shards(run_id, shard_count)

    def store_final_shards(self, run_id: str, shard_count: int) -> None:
        shards = [{"dataset": self.dataset, "run_id": run_id, "shard": n} for n in range(shard_count)]
        self._store.put_json(self.bucket, self.paths.final_shards(run_id), shards)

    def batch_planned(self, run: OpenRun, number: int) -> bool:
        """Whether the run's plan has this batch, whether or not its file is still there."""
        shard, n = shard_of_batch(number), number % BATCH_STRIDE
        if shard >= run.shard_count:
            return False
        outcome = self.plan_outcome(run.run_id, shard)
        if outcome is None:  # a run planned before shards existed: batches 0 .. batch_count-1
            return run.shard_count == 1 and number < run.batch_count
        return n < outcome.batches

    def batch_numbers(self, run_id: str) -> list[int]:
        """Every batch of a sealed run, from the list the copy Map reads."""
        document, _ = self._store.get_json(self.bucket, self.paths.batch_index(run_id))
        return [int(item["batch"]) for item in document or ()]

    def batch(self, run_id: str, number: int) -> list[BatchItem] | None:
        document, _ = self._store.get_json(self.bucket, self.paths.batch(run_id, number))
        return None if document is None else [BatchItem.from_json(item) for item in document["items"]]

    def first_attempt(self, run_id: str, number: int) -> bool:
        """True only for the first attempt at a batch (a marker written with If-None-Match)."""
        return self._store.create_once(self.bucket, self.paths.batch_started(run_id, number))

    def plan_notes(self, run_id: str, shard: int) -> Iterator[ManifestLine]:
        lines = self._store.read_jsonl(self.bucket, self.paths.plan_notes(run_id, shard))
        if lines is None and shard == 0:  # a run planned before shards existed
            lines = self._store.read_jsonl(self.bucket, self.paths.legacy_plan_notes(run_id))
        return (ManifestLine.from_json(line) for line in lines or ())

    # ---- batch results ------------------------------------------------------------------------------------

    def observe_result(self, run_id: str, number: int) -> None:
        """At the start of a batch: the result it will replace (a resumed or retried batch reports again)."""
        self.observe(self.paths.result(run_id, number))

    def save_result(self, run_id: str, number: int, lines: list[ManifestLine], lock: Lock) -> None:
        """Only the lock's owner may report: a process paused past its TTL must not write into a run it
        no longer owns, nor over the result of the run that took over and ran the batch again."""
        key = self.paths.result(run_id, number)
        body = jsonl_bytes(line.to_json() for line in lines)
        self._fenced(key, lock, lambda **cond: self._store.put_bytes(self.bucket, key, body, JSONL, **cond))

    def result(self, run_id: str, number: int) -> list[ManifestLine] | None:
        """A batch's reported lines, or None when it never reported. A batch is at most batch_max_objects."""
        lines = self._store.read_jsonl(self.bucket, self.paths.result(run_id, number))
        return None if lines is None else [ManifestLine.from_json(line) for line in lines]

    # ---- the state ----------------------------------------------------------------------------------------

    def state_index(self) -> StateIndex:
        """The committed state's ranges and parts; a single-file state of an older version reads as one part."""
        document, _ = self._store.get_json(self.bucket, self.paths.state_index)
        if document is not None:
            return StateIndex.from_json(document)
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

    def observe_shard(self, run: OpenRun, shard: int) -> None:
        """At the start of a shard's finalize: what it will replace (its own earlier attempt's files)."""
        paths = self.paths
        self.observe(paths.manifest_part(run.date, run.run_id, shard), paths.shard_outcome(run.run_id, shard))
        prefix = paths.state_parts(run.run_id, shard)
        self._seen_under[prefix] = dict(self._store.iter_etags(self.bucket, prefix))

    def save_pieces(
        self, db: sqlite3.Connection, run_id: str, shard: int, start_after: str | None, sizes: list[int], lock: Lock
    ) -> tuple[StatePart, ...]:
        """A shard's state as new parts of the given sizes, cut in key order, each fenced."""
        pieces = []
        rows = state.sorted_rows(db)
        low = start_after
        for piece, size in enumerate(sizes):
            key = self.paths.state_part(run_id, shard, piece)
            with tempfile.TemporaryFile() as spool:
                last = state.write_rows(itertools.islice(rows, size), spool)
                self._fenced_file(key, spool, "application/gzip", lock)
            pieces.append(StatePart(low, key, size))
            low = last
        return tuple(pieces)

    def save_manifest_part(self, run: OpenRun, shard: int, spool: IO[bytes], lock: Lock) -> str:
        key = self.paths.manifest_part(run.date, run.run_id, shard)
        self._fenced_file(key, spool, JSONL, lock)
        return self.paths.uri(key)

    def save_shard_outcome(self, run_id: str, outcome: ShardOutcome, lock: Lock) -> None:
        """Written last by a shard's finalize: its presence says the shard is done."""
        self._fenced_json(self.paths.shard_outcome(run_id, outcome.shard), outcome.to_json(), lock)

    def shard_outcome(self, run_id: str, shard: int) -> ShardOutcome | None:
        document, _ = self._store.get_json(self.bucket, self.paths.shard_outcome(run_id, shard))
        return None if document is None else ShardOutcome.from_json(document)

    def manifest_lines(self, date: str, run_id: str) -> Iterator[dict[str, Any]]:
        """A run's manifest lines, part by part (a run written before parts existed: its one file)."""
        for key in self.manifest_part_keys(date, run_id):
            yield from self.part_lines(key)

    def manifest_part_keys(self, date: str, run_id: str) -> Iterator[str]:
        """The keys of a run's manifest parts, in shard order (a run written before parts existed: its one file)."""
        prefix = self.paths.manifest_glob(date, run_id).removesuffix("*.jsonl")
        yield from self._store.iter_keys(self.bucket, prefix)
        whole = f"{self.paths.manifest_folder(date)}{run_id}.jsonl"
        if self._store.head_or_none(self.bucket, whole) is not None:
            yield whole

    def part_lines(self, key: str) -> Iterator[dict[str, Any]]:
        """One manifest part's lines, streamed (none when it is gone)."""
        yield from self._store.read_jsonl(self.bucket, key) or ()

    def state_part_rows(self, key: str) -> Iterator[dict[str, Any]] | None:
        """One state part's rows in key order, streamed; None when the part is missing."""
        body = self._store.open_body(self.bucket, key)
        return None if body is None else state.iter_lines(body)

    # ---- the commit ---------------------------------------------------------------------------------------

    def observe_commit(self, run: OpenRun) -> None:
        """At the start of a finalize: the versions its commit will replace (a repeated commit replaces its
        own earlier attempt's index and summary)."""
        paths = self.paths
        self.observe(
            paths.state_index,
            paths.summary(run.date, run.run_id),
            paths.marker(run.date, run.run_id),
            paths.lineage_event(run.date, run.run_id, end=True),
            paths.last_run,
        )

    def commit(
        self,
        run: OpenRun,
        index: StateIndex | None,
        summary: RunSummary,
        end_event: Callable[[RunSummary], dict[str, Any]],
        lock: Lock,
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
        paths = self.paths
        if index is not None:
            self.save_index(index, lock)
        if not self._fenced_json(paths.summary(run.date, run.run_id), summary.to_json(), lock):
            stored, _ = self._store.get_json(self.bucket, paths.summary(run.date, run.run_id))
            summary = summary if stored is None else RunSummary.from_json(stored)
        self._fenced_json(paths.lineage_event(run.date, run.run_id, end=True), end_event(summary), lock)
        if summary.copied:
            marker = Marker.of(summary, self.summary_uri(run.date, run.run_id))
            self._fenced_json(paths.marker(run.date, run.run_id), marker.to_json(), lock)
        self._fenced_json(paths.last_run, summary.to_json(), lock)
        self._fenced_delete(paths.open_run, lock)
        if index is not None:
            self.delete_replaced(index)
        self.clear_work(run.run_id)
        lock.release()
        return summary

    def save_index(self, index: StateIndex, lock: Lock) -> None:
        """Fenced against the index read at the finalize's start (`observe_commit`)."""
        self._fenced_json(self.paths.state_index, index.to_json(), lock)

    def delete_replaced(self, index: StateIndex) -> None:
        """The parts an index replaced, and its run's own parts it does not name (an earlier attempt's split).
        Only those: a later run's index is built from this one, so it can never name them."""
        kept = {p.part for p in index.parts if p.part}
        doomed = [key for key in index.replaced if key not in kept]
        if index.run_id is not None:
            own = self.paths.state_parts(index.run_id, 0).rsplit("/", 1)[0] + "/"
            doomed += [key for key in self._store.iter_keys(self.bucket, own) if key not in kept]
        self._store.delete_keys(self.bucket, doomed)

    def last_run(self) -> RunSummary | None:
        document, etag = self._store.get_json(self.bucket, self.paths.last_run)
        self._seen[self.paths.last_run] = etag
        return None if document is None else RunSummary.from_json(document)

    def committed_summary(self, run_id: str) -> RunSummary | None:
        """The summary of a committed run: last-run.json when it is the newest (one read), else its summary found by
        listing the summaries (a rare path: a step that reads back after a sibling committed)."""
        last = self.last_run()
        if last is not None and last.run_id == run_id:
            return last
        date = self.run_date(run_id)
        if date is None:
            return None
        document, _ = self._store.get_json(self.bucket, self.paths.summary(date, run_id))
        return None if document is None else RunSummary.from_json(document)

    def last_landed_at(self) -> str | None:
        """When the newest committed run that landed something ended; read without fencing (nothing is
        written over it on the strength of this read). Summaries older than the field: their end if they
        copied, else unknown."""
        document, _ = self._store.get_json(self.bucket, self.paths.last_run)
        if document is None:
            return None
        return document.get("last_landed_at") or (document.get("finished_at") if document.get("copied") else None)

    def clear_work(self, run_id: str) -> None:
        self._store.delete_prefix(self.bucket, self.paths.work(run_id))

    # ---- reading the record back (status, verify, lineage) ------------------------------------------------

    def runs_on(self, date: str) -> list[RunSummary]:
        """The committed runs of one date, oldest first (a summary is written by each run's commit)."""
        keys = sorted(self._store.iter_keys(self.bucket, self.paths.summary_folder(date)))
        summaries = (self._store.get_json(self.bucket, key)[0] for key in keys)
        return [RunSummary.from_json(document) for document in summaries if document is not None]

    def lineage_events(self, date: str, run_id: str) -> list[dict[str, Any]]:
        """The run's OpenLineage events as stored, START first (a run committed before they existed has none)."""
        events = (
            self._store.get_json(self.bucket, self.paths.lineage_event(date, run_id, end))[0] for end in (False, True)
        )
        return [event for event in events if event is not None]

    def run_date(self, run_id: str) -> str | None:
        """The date a committed run belongs to, from its summary's key (one listing of the summaries: one key per
        run, so it grows with the history, not with the dataset)."""
        for key in self._store.iter_keys(self.bucket, self.paths.summaries):
            found = self.paths.summary_run(key)
            if found is not None and found[1] == run_id:
                return found[0]
        return None

    def reported_batches(self, run_id: str) -> list[int]:
        """The batches of a run that have stored their results so far."""
        return self._units(self.paths.results(run_id))

    def planned_shards(self, run_id: str) -> list[int]:
        """The shards of a run being planned that have stored their plan so far."""
        return self._units(self.paths.plan_outcomes(run_id))

    def finalized_shards(self, run_id: str) -> list[int]:
        """The shards of a run that have written their manifest part and state so far."""
        return self._units(self.paths.shard_outcomes(run_id))

    def _units(self, prefix: str) -> list[int]:
        units = (self.paths.unit(key) for key in self._store.iter_keys(self.bucket, prefix))
        return sorted(n for n in units if n is not None)

    def history(self, limit: int) -> list[RunSummary]:
        """Run summaries, newest first (run ids start with their UTC start time)."""
        keys = sorted(
            self._store.iter_keys(self.bucket, self.paths.summaries),
            key=lambda k: k.rsplit("/", 1)[-1],
            reverse=True,
        )
        return [RunSummary.from_json(self._store.get_json(self.bucket, key)[0]) for key in keys[:limit]]

    def _upload_lines(self, key: str, lines: Iterable[dict[str, Any]]) -> None:
        with tempfile.TemporaryFile() as spool:
            for line in lines:
                spool.write(jsonl_bytes([line]))
            self._store.upload_file(self.bucket, key, spool, JSONL)
