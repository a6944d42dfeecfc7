"""A run's steps (plan, copy a batch, finalize, and the dry run), each composing the ledger, the copier and the
pure decisions. A step of a run joins it once (`Job.join`) and works on the run's ledger it gets, which holds the
run id and the lock. `runner.Engine` is their public face."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import date as Date
from zoneinfo import ZoneInfo

from ..config import DatasetConfig
from ..errors import InvalidRequest
from ..ledger import Ledger, RunLedger
from ..lock import Lock
from ..partitions import Catalog
from ..records import RunSummary
from ..store import Store


def run_date_for(dataset: DatasetConfig, now: datetime | None = None) -> Date:
    """The date a run belongs to: today in the dataset's time zone (a run at 20:00 in Chicago is that day)."""
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(dataset.timezone)).date()


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by start time, unique without coordination."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Job:
    """What every step of one dataset shares: its store (S3), its config and its ledger."""

    store: Store
    dataset: DatasetConfig
    ledger: Ledger
    allow_unprotected: bool = False
    execution: str | None = None
    """The workflow execution these steps belong to (a Step Functions execution id; None for the CLI): the lock
    records it, so a retried step of the same execution takes its lock back and a late one of another stops."""
    catalog: Catalog | None = None
    """Where a commit registers its night's partitions (handler/partitions.py); None: nowhere."""

    @classmethod
    def of(
        cls,
        store: Store,
        dataset: DatasetConfig,
        *,
        allow_unprotected: bool = False,
        execution: str | None = None,
        catalog: Catalog | None = None,
    ) -> Job:
        return cls(store, dataset, Ledger(store, dataset), allow_unprotected, execution, catalog)

    def take_lock(self) -> Lock:
        """Probe for conditional writes (unless told not to), then take the dataset's lock for a new run (or take
        back the one an earlier attempt of this execution took)."""
        lock = self.ledger.lock
        if not self.allow_unprotected:
            lock.probe()
        # Named by S3's time, as the run's start is: run ids sort by start whatever the machines' clocks.
        run_id = new_run_id(datetime.fromtimestamp(lock.server_now(), UTC))
        return lock.acquire(run_id, execution=self.execution)

    def join(self, run_id: str, lock: Lock | None = None) -> RunLedger:
        """The one way a step joins a run: its ledger, holding the lock (adopted as this execution's when none
        is handed in, checked when one is). See `Ledger.join`."""
        return self.ledger.join(run_id, lock, execution=self.execution)


def committed_runs(
    ledger: Ledger, run_date: Date | None, run_id: str | None, open_run: str | None, *, without_runs: str
) -> tuple[str, list[RunSummary]]:
    """The night a question about committed runs is about and its runs, oldest first: `run_id`'s night and that
    run alone, or `run_date`'s (default: the last run's) and all of them. `without_runs` ends the refusal when
    the dataset has no run yet and no date was given."""
    dataset = ledger.dataset
    if run_id is not None:
        if run_id == open_run:
            raise InvalidRequest(
                f"run {run_id} of dataset {dataset} is still in progress; verify it once it is committed "
                "(`ingest status` shows how far it got)"
            )
        date = ledger.run_date(run_id)
        if date is None:
            raise InvalidRequest(f"dataset {dataset} has no committed run {run_id}; `ingest history` lists its runs")
        if run_date is not None and run_date.isoformat() != date:
            raise InvalidRequest(f"run {run_id} belongs to {date}, not {run_date.isoformat()}")
        return date, [run for run in ledger.runs_on(date) if run.run_id == run_id]
    if run_date is None:
        last = ledger.last_run()
        if last is None:
            raise InvalidRequest(f"no run of dataset {dataset} is recorded yet; {without_runs}")
        run_date = Date.fromisoformat(last.date)
    date = run_date.isoformat()
    return date, ledger.runs_on(date)
