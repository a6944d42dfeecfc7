"""Each step of the contract (handler/contract.py) bound to the function that runs it. The Lambda, the local
pool's workers and a one-shot run all run a step through `run_step`, so a step is reached one way wherever it
runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .. import contract
from ..contract import Step, StepRequest
from ..lock import Lock
from ..records import CopiedBatch, OneShotAnswer
from . import Job
from .chain import one_shot
from .copy import Progress, copy_batch
from .finalize import finalize, finalize_shard
from .plan import plan, plan_shard, seal_plan
from .release import release
from .send_lineage import send_lineage


class Answer(Protocol):
    """A step's answer: a record of handler/records.py, whose JSON is what the contract answers."""

    def to_json(self) -> dict[str, Any]: ...


Run = Callable[[Job, StepRequest, Lock | None, Progress | None], Answer]


def _run(request: StepRequest) -> str:
    assert request.run_id is not None, "read_event requires the run id of every step but plan and release"
    return request.run_id


def _unit(request: StepRequest) -> int:
    assert request.unit is not None, "read_event requires the unit of a step that a Map runs"
    return request.unit


RUNS: dict[Step, Run] = {
    contract.RUN: lambda job, request, lock, progress: OneShotAnswer(
        tuple(one_shot(job, request.night(job.dataset.timezone), run_step, progress=progress))
    ),
    contract.PLAN: lambda job, request, lock, _: plan(
        job, request.night(job.dataset.timezone), lock=lock, scheduled=request.scheduled
    ),
    contract.PLAN_SHARD: lambda job, request, lock, _: plan_shard(job, _run(request), _unit(request), lock=lock),
    contract.SEAL_PLAN: lambda job, request, lock, _: seal_plan(job, _run(request), lock=lock),
    contract.COPY_BATCH: lambda job, request, lock, progress: CopiedBatch(
        _unit(request), copy_batch(job, _run(request), _unit(request), lock=lock, progress=progress)
    ),
    contract.FINALIZE_SHARD: lambda job, request, lock, _: finalize_shard(
        job, _run(request), _unit(request), lock=lock
    ),
    contract.FINALIZE: lambda job, request, lock, _: finalize(job, _run(request), lock=lock),
    contract.RELEASE: lambda job, request, lock, _: release(job, request.run_id),
    contract.SEND_LINEAGE: lambda job, request, lock, _: send_lineage(
        job, _run(request), request.date.isoformat() if request.date else None
    ),
}


def run_step(job: Job, request: StepRequest, lock: Lock | None = None, progress: Progress | None = None) -> Answer:
    """Run the step `request` asks for. With `lock`, the caller's (a one-shot run holds it across its steps);
    without, the step joins the run's lock itself, as a Lambda invocation does."""
    return RUNS[request.step](job, request, lock, progress)
