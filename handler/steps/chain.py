"""A whole run in one process: the steps chained as the state machine chains them across Lambdas (plan, every
round of shards, seal, copy every batch, finalize every shard, commit), and again while a resumed run was
finished first. The CLI and a one-shot Lambda invocation run it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date as Date
from typing import Any

from .. import interrupts
from ..contract import COPY_BATCH, FINALIZE, FINALIZE_SHARD, PLAN, PLAN_SHARD, SEAL_PLAN, Step, StepRequest
from ..lock import Lock
from ..pool import InProcess, Workers
from ..progress import RunProgress, Snapshot
from ..records import PlanningResult, PlanResult, RunSummary
from . import Job
from .copy import Progress

RunStep = Callable[[Job, StepRequest, Lock | None, Progress | None], Any]
"""How a step is run (steps/table.py's `run_step`), handed in: the table runs this chain as a step of its own."""


def one_shot(
    job: Job,
    run_date: Date | None,
    run: RunStep,
    *,
    progress: RunProgress | None = None,
    workers: Workers | None = None,
) -> list[RunSummary]:
    """The steps chained in one process, as the state machine chains them across Lambdas, each run by `run` (the
    contract's table: steps/table.py); `workers` runs the shards and batches (default: one after another in
    this process). Returns the summaries of every run it finalized, a resumed one first."""
    chain = Chain(job, run, workers or InProcess(job), progress)
    summaries = []
    while True:
        lock = job.take_lock()
        try:
            planned = chain.planned(chain.step(PLAN, lock, date=run_date), lock)
            summaries.append(planned.finalized.summary if planned.finalized else chain.copy_and_finalize(planned, lock))
        except BaseException:
            # The open run (if its plan was stored) is completed by the next run; it should not also have to
            # wait out the TTL of a process that has stopped. A lock another run took over is left alone. A second
            # Ctrl-C must not cut the release short (handler/interrupts.py).
            with interrupts.held():
                lock.release_quietly()
            raise
        if not planned.run.resumed:
            return summaries


@dataclass(frozen=True)
class Chain:
    """One dataset's steps run in order under the caller's lock: the state machine's Choice and Map states."""

    job: Job
    run: RunStep
    workers: Workers
    progress: RunProgress | None

    def step(self, step: Step, lock: Lock, *, progress: Progress | None = None, **fields: Any) -> Any:
        return self.run(self.job, StepRequest(step, self.job.dataset.name, **fields), lock, progress)

    def planned(self, answer: PlanResult | PlanningResult, lock: Lock) -> PlanResult:
        """Plan every round of shards until the plan is sealed."""
        while isinstance(answer, PlanningResult):
            planning = answer.planning
            for _ in self.workers.run(
                PLAN_SHARD, planning.run_id, range(planning.round_start, planning.shard_count), lock
            ):
                pass
            answer = self.step(SEAL_PLAN, lock, run_id=planning.run_id)
        return answer

    def copy_and_finalize(self, planned: PlanResult, lock: Lock) -> RunSummary:
        run_id = planned.run.run_id
        done = [0, 0]  # objects and bytes of the batches already done
        counts = planned.run.counts

        def batch_progress(objects: int, size: int) -> None:
            if self.progress:
                self.progress(Snapshot(run_id, done[0] + objects, counts.planned, done[1] + size, counts.planned_bytes))

        def batch_done(answer: dict[str, Any]) -> None:
            done[0] += answer["copied"] + answer["skipped"] + answer["failed"]
            done[1] += answer["bytes"]
            batch_progress(0, 0)

        batch_progress(0, 0)  # the copying starts now: what the rate and the ETA are measured from
        batches = self.job.ledger.batch_numbers(run_id)
        if not self.workers.parallel(len(batches)):
            for number in batches:
                batch_done(self.step(COPY_BATCH, lock, run_id=run_id, unit=number, progress=batch_progress).to_json())
        else:
            for answer in self.workers.run(COPY_BATCH, run_id, batches, lock):
                batch_done(answer)
            for _ in self.workers.run(FINALIZE_SHARD, run_id, range(planned.run.shard_count), lock):
                pass
        return self.step(FINALIZE, lock, run_id=run_id).summary
