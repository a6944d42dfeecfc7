"""The runtime's public face: one dataset's steps, answering in the JSON forms of the Lambda contract.

Exactly-once rests on three facts. The target key depends only on the source key and the run's date, so a
retried or resumed copy lands on the same key and is recognised by its lineage metadata. A run's plan is
stored before anything is copied, and an interrupted run is completed from that plan, under its own date,
before any new work is planned. And the lock keeps a second run from planning while one is open. Where each
of those lives: steps/ (plan, copy, finalize), ledger.py (`RunLedger.commit` holds the commit order), lock.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date as Date
from typing import Any

from .config import DatasetConfig
from .contract import COPY_BATCH, FINALIZE, FINALIZE_SHARD, PLAN, PLAN_SHARD, RELEASE, SEAL_PLAN, Step, StepRequest
from .ledger import Ledger
from .lock import Lock
from .partitions import Catalog
from .pool import InProcess, Workers
from .progress import RunProgress
from .records import DryRun, RunSummary
from .status import DatasetStatus, HistoryEntry
from .steps import Job, committed_runs, new_run_id, run_date_for
from .steps.chain import Chain
from .steps.chain import one_shot as chained
from .steps.copy import Progress
from .steps.dry_run import PlannedObject, dry_run
from .steps.lineage import ObjectLineage, lineage, parse_uri
from .steps.plan import plan
from .steps.status import lock_view, running_run, status
from .steps.table import run_step
from .steps.verify import verify
from .store import Store
from .verify import Problem, VerifyReport

__all__ = ["Engine", "Progress", "RunProgress", "lineage_of", "new_run_id", "run_date_for"]


class Engine:
    """One dataset's runs against one store (S3). A step answers in its JSON form (docs/lambda-contract.md); the
    questions (dry_run, history, status, lineage) answer records, which the CLI formats and `to_json` writes."""

    def __init__(
        self,
        store: Store,
        dataset: DatasetConfig,
        *,
        allow_unprotected: bool = False,
        workers: Workers | None = None,
        execution: str | None = None,
        catalog: Catalog | None = None,
    ):
        self.job = Job.of(store, dataset, allow_unprotected=allow_unprotected, execution=execution, catalog=catalog)
        self.workers = workers
        """Where a one-shot run plans, copies and finalizes its units (default: one after another, here)."""

    @property
    def dataset(self) -> DatasetConfig:
        return self.job.dataset

    @property
    def ledger(self) -> Ledger:
        return self.job.ledger

    def acquire(self) -> Lock:
        return self.job.take_lock()

    def plan(self, run_date: Date | None = None, *, lock: Lock | None = None) -> dict[str, Any]:
        """Take the lock and return an interrupted run to finish, or plan a new one."""
        return self._step(PLAN, lock, date=run_date)

    def plan_all(self, run_date: Date | None = None, *, lock: Lock | None = None) -> dict[str, Any]:
        """`plan`, then every shard of every round planned here and the plan sealed: the answer the state machine
        has when its planning Maps are done (stage `copying`, or `finalized`)."""
        lock = lock or self.job.take_lock()
        try:
            steps = Chain(self.job, run_step, InProcess(self.job), None)
            return steps.planned(plan(self.job, run_date, lock=lock), lock).to_json()
        except BaseException:
            _release_unless_sealed(self.job, lock)
            raise

    def plan_shard(self, run_id: str, shard: int) -> dict[str, Any]:
        """Plan one shard of a run being planned; safe to retry."""
        return self._step(PLAN_SHARD, run_id=run_id, unit=shard)

    def seal_plan(self, run_id: str) -> dict[str, Any]:
        """After every shard of a round is planned: the next round, or the sealed plan; safe to repeat."""
        return self._step(SEAL_PLAN, run_id=run_id)

    def finalize_shard(self, run_id: str, shard: int) -> dict[str, Any]:
        """Write one shard's manifest part and state parts; safe to retry."""
        return self._step(FINALIZE_SHARD, run_id=run_id, unit=shard)

    def copy_batch(
        self, run_id: str, number: int, *, lock: Lock | None = None, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Copy one batch and store its results; safe to retry."""
        return self._step(COPY_BATCH, lock, progress, run_id=run_id, unit=number)

    def finalize(self, run_id: str, *, lock: Lock | None = None) -> dict[str, Any]:
        """Commit the run to the ledger and release the lock; calling it again after success is harmless."""
        return self._step(FINALIZE, lock, run_id=run_id)

    def run(self, run_date: Date | None = None, *, progress: RunProgress | None = None) -> list[dict[str, Any]]:
        """Plan, copy every batch and finalize in this process; first finishes an interrupted run, if any.

        Returns the summaries of every run it finalized (the resumed one first). `progress` is told how far the
        copying of each run got, against what its plan holds.
        """
        summaries = one_shot(self.job, run_date, progress=progress, workers=self.workers)
        return [summary.to_json() for summary in summaries]

    def release(self, run_id: str | None = None) -> dict[str, Any]:
        """Release the lock of a run whose step failed, so the next execution need not wait out the TTL; the
        run stays open and is completed by the next run (steps/release.py)."""
        return self._step(RELEASE, run_id=run_id)

    def _step(
        self, step: Step, lock: Lock | None = None, progress: Progress | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A step run through the contract's table, as the Lambda runs it, answering its JSON form."""
        return run_step(self.job, StepRequest(step, self.dataset.name, **fields), lock, progress).to_json()

    def dry_run(
        self,
        run_date: Date | None = None,
        out: Callable[[str], None] = print,
        show: Callable[[PlannedObject], None] | None = None,
    ) -> DryRun:
        """Show what a run would do, writing nothing and taking no lock: each object as a line to `out`, or as a
        PlannedObject to `show`."""
        return dry_run(self.job, run_date, out, show)

    def history(self, limit: int = 20) -> list[HistoryEntry]:
        """Run summaries, newest first; a run in progress comes first, with `status` `in_progress` and how far it
        got (status.py, `RunningRun`)."""
        running = running_run(self.job, lock_view(self.job))
        runs: list[HistoryEntry] = [running] if running else []
        return (runs + list(self.ledger.history(limit)))[:limit]

    def status(self) -> DatasetStatus:
        """The lock (holder, expiry), the run in progress and how far it got, and the last run's summary."""
        return status(self.job)

    def verify(
        self,
        run_date: Date | None = None,
        *,
        run_id: str | None = None,
        on_problem: Callable[[Problem], None] | None = None,
        checksums: bool = False,
    ) -> VerifyReport:
        """Check a night (default: the last run's) or one committed run against the bucket: every copied line's
        object is there with its size and lineage (and, with `checksums`, the content checksum its line recorded),
        every object the night landed is in a copied line, the state agrees. Its `status` is `clean` or `problems`;
        each problem also goes to `on_problem` as it is found."""
        return verify(self.job, run_date, run_id, on_problem, checksums=checksums)

    def lineage(self, key: str) -> ObjectLineage:
        """Where an object of this dataset's target bucket (a key, or its s3:// URI) came from, and its manifest
        line."""
        bucket, key = parse_uri(key) if key.startswith("s3://") else (self.dataset.target.bucket, key)
        return lineage(self.job.store, bucket, key, self.dataset)

    def lineage_events(self, run_date: Date | None = None, *, run_id: str | None = None) -> list[dict[str, Any]]:
        """The OpenLineage events of one committed run, or of every run of a night (default: the last run's
        night), in the order they happened."""
        ledger = self.ledger
        open_run = ledger.open_run()
        date, runs = committed_runs(
            ledger, run_date, run_id, open_run.run_id if open_run else None, without_runs="give --date or --run"
        )
        return [event for run in runs if run.run_id for event in ledger.lineage_events(date, run.run_id)]


def lineage_of(store: Store, uri: str) -> ObjectLineage:
    """`Engine.lineage` without a config: the object's own lineage names its dataset, and so its ledger."""
    bucket, key = parse_uri(uri)
    return lineage(store, bucket, key)


def one_shot(
    job: Job, run_date: Date | None = None, *, progress: RunProgress | None = None, workers: Workers | None = None
) -> list[RunSummary]:
    """Every step of a run in this process, a resumed run first (steps/chain.py), each through the contract's
    table as a Lambda runs it; `workers` runs the shards and batches (default: one after another here)."""
    return chained(job, run_date, run_step, progress=progress, workers=workers)


def _release_unless_sealed(job: Job, lock: Lock) -> None:
    """A plan that failed before its plan was sealed hands the lock back (nothing was copied, and the next run
    should not wait out the TTL); a sealed one keeps it for the state machine's own release, as on AWS."""
    try:
        run = job.ledger.open_run()
    except Exception:  # noqa: BLE001 - cannot tell: the TTL is the fallback
        return
    if run is None or run.run_id != lock.run_id:
        lock.release_quietly()
