"""The plan steps: take the lock and cut the run into shards (`plan`), plan each shard on its own, in parallel
(`plan_shard`), then seal the plan into the open run before anything is copied (`seal_plan`).

A shard's plan lists only its key range and reads only the state parts of that range, so no invocation's time,
memory or `/tmp` depends on the dataset's size. One that lists `shard_max_keys` keys stops there; its sealing
hands the rest of its range to a new shard of the next round, planned the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from datetime import date as Date

from ..errors import LockLost, RunNotFound
from ..layout import LEDGER_ROOT
from ..ledger import (
    BATCH_INDEX,
    FINAL_SHARDS,
    OPEN_RUN,
    PLAN_OUTCOME,
    PLANNING,
    REPORT,
    RUN_SHARD,
    SHARD_LIST,
    RunLedger,
)
from ..lock import Lock
from ..openlineage import start_event
from ..planner import build_plan, cut_batches, iter_copies, iter_notes
from ..records import (
    OpenRun,
    PlanCounts,
    Planning,
    PlanningResult,
    PlanOutcome,
    PlanResult,
    parse_utc,
    sum_counts,
    utc_stamp,
)
from ..selection import SourceObject
from ..shards import (
    BATCH_STRIDE,
    RunShard,
    StateIndex,
    batch_number,
    boundaries_from_keys,
    boundaries_from_prefixes,
    run_shards,
)
from ..sources import choose_report, listed_objects, reported_objects
from ..state import scratch_db
from . import Job, run_date_for
from .finalize import committed, finalize

log = logging.getLogger(__name__)

MAX_DISCOVERY_DEPTH = 3
"""How many single-folder levels a first run looks through for folders to cut shards at (`data/2024/...`)."""


def plan(
    job: Job, run_date: Date | None = None, *, lock: Lock | None = None, scheduled: datetime | None = None
) -> PlanResult | PlanningResult:
    """Take the lock; finish an interrupted run, or cut a new one into shards to plan. `scheduled`: the schedule's
    time of the night, which a new run keeps for its lineage events' nominal time.

    A plan that fails leaves the lock to its caller: the state machine retries the step (the retry takes the
    lock back) and hands the lock back only when it gives up, and a local run releases it on the way out. A
    plan that released its own lock could release it under a sibling attempt still at work.
    """
    ledger = job.ledger.hold(lock or job.take_lock())
    interrupted = ledger.open_run()
    if interrupted is not None:
        return _resume(job, ledger, interrupted)
    return _start(job, ledger, run_date, scheduled)


def _start(job: Job, ledger: RunLedger, run_date: Date | None, scheduled: datetime | None) -> PlanningResult:
    """Cut a new run into shards. Every attempt of one execution's plan plans the same run the same way (its run
    id, start and date come from the lock), so a retry, or a duplicate running beside it, writes what its
    sibling writes; a retry that finds the planning stored carries on from it."""
    ds, lock = job.dataset, ledger.lock
    if lock.taken_back:
        planning = ledger.read(PLANNING)
        if planning is not None:
            log.info("run %s: its planning is stored already (a retried plan); carrying on", lock.run_id)
            return PlanningResult(planning, ledger.location(SHARD_LIST, round=planning.round))
    job.ledger.clear_unstored_plans(keep=lock.run_id)
    # S3's time, as every time of the lock is: `min_age_seconds` is judged against it (server_clock.py).
    started = utc_stamp(datetime.fromtimestamp(lock.acquired_at or lock.file.server_now(), UTC))
    run_date = run_date or run_date_for(ds, parse_utc(started))
    report = choose_report(job.store, ds) if ds.inventory else None
    index = job.ledger.state_index()
    cuts: list[str] = []
    if _unknown(index):
        cuts = boundaries_from_keys(report.cuts()) if report and report.sorted else _discover(job)
    shards = run_shards(index, ds.shard_max_keys, cuts)
    planning = Planning(
        ds.name,
        lock.run_id,
        run_date.isoformat(),
        started,
        len(shards),
        inventory=bool(report),
        scheduled_time=utc_stamp(scheduled) if scheduled is not None else None,
    )
    if report is not None:
        ledger.write(REPORT, report)  # before the planning record that says the run has one
    ledger.start_planning(planning, shards)
    log.info("run %s: planning %d shard(s) of %s", lock.run_id, len(shards), ds.name)
    return PlanningResult(planning, ledger.location(SHARD_LIST, round=0))


def _unknown(index: StateIndex) -> bool:
    """Nothing is known about the dataset's size yet: no state, or only a single-file state of unknown size."""
    return len(index.parts) == 1 and index.parts[0].keys in (0, -1)


def _discover(job: Job) -> list[str]:
    """Cut points for a first run: the folders under the source prefix (one request when there is at most a
    page of keys, a few more otherwise). A flat dataset gets none; its plan is cut by the key budget instead."""
    source = job.dataset.source
    if not job.store.more_than_a_page(source.bucket, source.prefix):
        return []
    prefix = source.prefix
    for _ in range(MAX_DISCOVERY_DEPTH):
        folders, files = job.store.list_folders(source.bucket, prefix)
        folders = [f for f in folders if not f.startswith(LEDGER_ROOT)]
        if len(folders) == 1 and not files:
            prefix = folders[0]
            continue
        return boundaries_from_prefixes(folders)
    return []


def plan_shard(job: Job, run_id: str, shard: int, *, lock: Lock | None = None) -> PlanOutcome:
    """Plan one shard: list its range, decide each key against its part of the state, store its batches.
    Safe to retry: a retry writes the same keys again."""
    ds = job.dataset
    ledger = job.join(run_id, lock)
    planning = ledger.read(PLANNING)
    spec = ledger.read(RUN_SHARD, shard=shard)
    if planning is None or spec is None:
        raise RunNotFound(f"run {run_id} of dataset {ds.name} is not being planned, or has no shard {shard}")
    now = parse_utc(planning.started_at)  # one clock for every shard, and for a retried one
    budget = _Budget(*_shard_objects(job, planning, spec))
    with scratch_db() as db, ledger.lock.heartbeat():
        job.ledger.load_parts(db, spec.parts, spec.start_after, spec.end_at)
        counts = build_plan(budget, ds, db, run_date=Date.fromisoformat(planning.date), run_id=run_id, now=now)
        batches = cut_batches(iter_copies(db), max_objects=ds.batch_max_objects, max_bytes=ds.batch_max_bytes)
        count = ledger.store_shard_plan(shard, iter_notes(db), batches)
    rest = budget.stopped and budget.last is not None
    outcome = PlanOutcome(shard, count, counts, budget.last if rest else spec.end_at, rest)
    ledger.write(PLAN_OUTCOME, outcome, shard=shard)
    return outcome


def _shard_objects(job: Job, planning: Planning, spec: RunShard) -> tuple[Iterator[SourceObject], int | None]:
    """A shard's objects and the key budget they may be cut at. An unsorted report comes in no key order, so its
    range is planned whole (its size is bounded by the state part it was cut from, or by discovery)."""
    ds = job.dataset
    if not planning.inventory:
        return listed_objects(job.store, ds, spec.start_after, spec.end_at), ds.shard_max_keys
    report = job.ledger.read(REPORT, run_id=planning.run_id)
    if report is None:
        raise RunNotFound(f"run {planning.run_id} of dataset {ds.name} plans from an inventory report it did not store")
    objects = reported_objects(job.store, ds, report, spec.start_after, spec.end_at)
    return objects, ds.shard_max_keys if report.sorted else None


class _Budget:
    """A shard's listing, stopped after `limit` keys (None: never): the rest of the range becomes another shard."""

    def __init__(self, objects: Iterator[SourceObject], limit: int | None):
        self._objects = objects
        self._limit = limit
        self.last: str | None = None
        self.stopped = False

    def __iter__(self) -> Iterator[SourceObject]:
        for listed, obj in enumerate(self._objects, start=1):
            self.last = obj.key
            yield obj
            if self._limit is not None and listed >= self._limit:
                self.stopped = True
                return


def seal_plan(job: Job, run_id: str, *, lock: Lock | None = None) -> PlanResult | PlanningResult:
    """Once every shard of the round is planned: hand the rest of any stopped shard to a new round, or make the
    plan durable (the open run) and answer what to copy. Safe to repeat, and to run twice at once: a sealed run
    answers the same again, and a sibling's seal is accepted (ledger `_refused`). Like `plan`, a failure leaves
    the lock to the caller."""
    try:
        ledger = job.join(run_id, lock)
    except LockLost:
        # A run with nothing to copy is committed by its seal, which releases the lock: a retried seal (its answer
        # was lost, or it died after the release) reads that commit back instead of believing the lock lost.
        answer = _committed_plan(job, run_id) if job.execution is not None else None
        if answer is None:
            raise
        return answer
    run = ledger.open_run()
    if run is not None and run.run_id == run_id:
        # A seal that died between opening the run and writing its START event is repeated here: write it now (the
        # same event, as `_resume` does), or the run's lineage would never say it started. A run with nothing to
        # copy is finalized now if the first seal died before it did.
        ledger.save_start_event(run, start_event(job.dataset, run, job.execution))
        return _answer(job, ledger, run)
    return _next_round_or_seal(job, ledger)


def _committed_plan(job: Job, run_id: str) -> PlanResult | None:
    """A sealed plan's answer rebuilt from its run's commit (its work files are gone), or None if not committed."""
    done = committed(job, run_id)
    if done is None:
        return None
    summary = done.summary
    counts = PlanCounts(
        summary.listed,
        summary.excluded,
        summary.planned,
        0,
        summary.skipped,
        summary.failed,
        dict(summary.skipped_by_reason),
    )
    run = OpenRun(summary.dataset, run_id, summary.date, summary.started_at, 0, counts, summary.resumed)
    ledger = job.ledger
    return PlanResult(
        run, ledger.location(BATCH_INDEX, run_id=run_id), ledger.location(FINAL_SHARDS, run_id=run_id), done
    )


def _next_round_or_seal(job: Job, ledger: RunLedger) -> PlanResult | PlanningResult:
    ds, run_id = job.dataset, ledger.run_id
    planning = ledger.read(PLANNING)
    if planning is None:
        raise RunNotFound(f"run {run_id} of dataset {ds.name} is not being planned")
    round_ids = range(planning.round_start, planning.shard_count)
    outcomes = {n: ledger.read(PLAN_OUTCOME, shard=n) for n in round_ids}
    missing = [n for n, outcome in outcomes.items() if outcome is None]
    if missing and len(missing) == len(outcomes) and planning.round:
        return PlanningResult(planning, ledger.location(SHARD_LIST, round=planning.round))  # after a new round
    if missing:
        raise RunNotFound(f"run {run_id}: shard(s) {_few(missing)} of round {planning.round} were not planned")
    rests = [_rest(ledger, outcome, planning.shard_count + i) for i, outcome in enumerate(_stopped(outcomes))]
    if rests:
        following = Planning(
            ds.name,
            run_id,
            planning.date,
            planning.started_at,
            planning.shard_count + len(rests),
            planning.round + 1,
            planning.shard_count,
            inventory=planning.inventory,
            scheduled_time=planning.scheduled_time,
        )
        ledger.start_planning(following, rests)
        log.info(
            "run %s: %d shard(s) listed their budget; planning the rest in round %d",
            run_id,
            len(rests),
            following.round,
        )
        return PlanningResult(following, ledger.location(SHARD_LIST, round=following.round))
    return _seal(job, ledger, planning)


def _stopped(outcomes: dict[int, PlanOutcome | None]) -> list[PlanOutcome]:
    return [outcome for outcome in outcomes.values() if outcome is not None and outcome.rest]


def _rest(ledger: RunLedger, outcome: PlanOutcome, shard: int) -> RunShard:
    spec = ledger.read(RUN_SHARD, shard=outcome.shard)
    assert spec is not None and outcome.end_at is not None
    return spec.rest_after(outcome.end_at, shard)


def _seal(job: Job, ledger: RunLedger, planning: Planning) -> PlanResult:
    ds, run_id = job.dataset, planning.run_id
    outcomes = [ledger.read(PLAN_OUTCOME, shard=n) for n in range(planning.shard_count)]
    if any(outcome is None for outcome in outcomes):
        raise RunNotFound(f"run {run_id}: a shard's plan is missing; the run is planned again by the next run")
    done = [outcome for outcome in outcomes if outcome is not None]
    batches = [batch_number(o.shard, n) for o in done for n in range(o.batches)]
    ledger.store_sealed_lists(batches, planning.shard_count)
    counts = sum_counts(o.counts for o in done)
    run = OpenRun(
        ds.name,
        run_id,
        planning.date,
        planning.started_at,
        len(batches),
        counts,
        False,
        planning.shard_count,
        planning.scheduled_time,
    )
    ledger.write(OPEN_RUN, run)  # from here on the plan is durable
    ledger.save_start_event(run, start_event(ds, run, job.execution))
    return _answer(job, ledger, run)


def _answer(job: Job, ledger: RunLedger, run: OpenRun) -> PlanResult:
    index, final_shards = ledger.location(BATCH_INDEX), ledger.location(FINAL_SHARDS)
    if run.batch_count == 0:
        # A plan answer with no batches is final by contract (nothing calls finalize after it), so an empty
        # run is finalized here, or it would stay open for good.
        return PlanResult(run, index, final_shards, finalize(job, run.run_id, lock=ledger.lock))
    return PlanResult(run, index, final_shards)


def _resume(job: Job, ledger: RunLedger, interrupted: OpenRun) -> PlanResult:
    log.warning("run %s for %s was interrupted; completing it first", interrupted.run_id, interrupted.date)
    ledger.lock.rebind(interrupted.run_id)  # the run's ledger follows its lock to the interrupted run
    run = interrupted.as_resumed()
    ledger.write(OPEN_RUN, run)
    ledger.save_start_event(run, start_event(job.dataset, run, job.execution))  # it may have died before this
    ledger.store_final_shards(run.shard_count)  # a run planned before shards has no such list
    return _answer(job, ledger, run)


def _few(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return shown + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")


def source_objects(job: Job) -> Iterator[SourceObject]:
    """Every object a plan of the whole dataset decides over (the dry run's): the newest report's, or a listing's."""
    if job.dataset.inventory:
        return reported_objects(job.store, job.dataset, choose_report(job.store, job.dataset), None, None)
    return listed_objects(job.store, job.dataset)


assert BATCH_STRIDE > 5_000_000, "a shard lists at most shard_max_keys (<= 5,000,000) keys, each at most one batch"
