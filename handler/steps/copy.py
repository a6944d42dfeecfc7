"""The copy step: one batch of a stored plan, safe to retry (what landed is recognised, not copied again)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..contracts import Contracts
from ..copier import CopyContext, copy_items
from ..errors import RunNotFound
from ..ledger import BATCH
from ..lock import Lock
from ..records import ManifestLine, OpenRun, Tally, Tallying
from . import Job

Progress = Callable[[int, int], None]
"""Called with (objects done, bytes done) as a batch goes."""

PROGRESS_EVERY = 50

log = logging.getLogger(__name__)


def copy_batch(
    job: Job, run_id: str, number: int, *, lock: Lock | None = None, progress: Progress | None = None
) -> Tally:
    ds = job.dataset
    ledger = job.join(run_id, lock)  # a lock handed in may have been lost while paused: found out before copying
    run = job.ledger.open_run_named(run_id)
    batch = ledger.read(BATCH, batch=number)
    if batch is None:
        if not ledger.batch_planned(run, number):
            raise RunNotFound(f"run {run_id} has no batch {number} (see its batch list, batches.json)")
        # Only a plan cleared while its planner was paused past its lock loses a batch file; nothing can have
        # been copied from a batch nobody could read, so its objects are simply planned again by the next run.
        log.warning("batch %d of run %s is missing; its objects are planned again by the next run", number, run_id)
        return Tally()
    ledger.observe_result(number)
    # Could this batch's objects be at their targets already? Only on a resumed run or a batch tried before.
    retry = run.resumed or not ledger.first_attempt(number)
    tm = job.store.transfer_manager(
        concurrency=ds.concurrency, threshold=ds.multipart_threshold_bytes, chunk=ds.multipart_chunk_bytes
    )
    lines: list[ManifestLine] = []
    tally = Tallying()
    with tm, ledger.lock.heartbeat() as heartbeat:
        for line in copy_items(
            job.store,
            tm,
            batch.items,
            copy_context(job, run, check_target=retry),
            concurrency=ds.concurrency,
            check=heartbeat.check,
        ):
            lines.append(line)
            tally.add(line)
            if log.isEnabledFor(logging.INFO):  # -v: each object, as `aws s3 cp` and rclone -v list them
                log.info("%s %s -> %s%s", line.status, line.source_key, line.target_key, _why(line.reason))
            if progress and tally.objects % PROGRESS_EVERY == 0:
                progress(tally.objects, tally.bytes)
    ledger.save_result(number, lines)
    return tally.tally()


def _why(reason: str) -> str:
    return f" ({reason})" if reason else ""


def copy_context(job: Job, run: OpenRun, *, check_target: bool = True) -> CopyContext:
    ds = job.dataset
    return CopyContext(
        check_target=check_target,
        dataset=ds.name,
        run_id=run.run_id,
        date=run.date,
        source_bucket=ds.source.bucket,
        target_bucket=ds.target.bucket,
        multipart_threshold=ds.multipart_threshold_bytes,
        carry_source_metadata=ds.source_metadata == "carry",
        contracts=Contracts.of(ds),
    )
