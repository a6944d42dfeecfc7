"""The release step: hand back the lock of a run whose step failed, so the next execution need not wait out the
TTL. The run stays open and is completed by the next run."""

from __future__ import annotations

from ..errors import InvalidRequest, LockLost
from ..records import Released
from . import Job


def release(job: Job, run_id: str | None = None) -> Released:
    """With the job's execution, whatever lock that execution holds goes (a plan that failed has no run id to
    name); without one, the lock of `run_id`. A lock another run holds is left alone."""
    name = job.dataset.name
    if job.execution is not None:
        held = job.ledger.lock.release_execution(job.execution)
        return Released(name, held or run_id, held is not None)
    if run_id is None:
        raise InvalidRequest("release needs the run id or the execution whose lock to release")
    try:
        ledger = job.join(run_id)
    except LockLost:
        return Released(name, run_id, False)
    ledger.lock.release()
    return Released(name, run_id, True)
