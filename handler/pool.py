"""Running a run's shards and batches side by side on one machine, as the state machine's Maps do in AWS.

Planning and finalizing a shard are CPU work in Python (deciding keys, SQLite, gzip), so threads would share one
core: a laptop run uses a pool of processes instead, each with its own S3 client and its own adopted lock, just
like one Lambda invocation per shard. `InProcess` runs the same steps one after another in this process (the
Lambda's one-shot path, tests on in-memory S3).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from . import interrupts
from .config import DatasetConfig
from .contract import Step, StepRequest
from .errors import Interrupted, WorkerKilled
from .lock import Lock

log = logging.getLogger(__name__)


class Workers(Protocol):
    """Runs one step that a Map runs per item (`plan_shard`, `copy_batch`, `finalize_shard`: a `Step` of
    handler/contract.py with a unit) for many units of one run."""

    def run(self, step: Step, run_id: str, units: Iterable[int], lock: Lock) -> Iterator[dict[str, Any]]: ...

    def parallel(self, units: int) -> bool:
        """Whether `units` units would run side by side (else here, one by one, with per-object progress)."""
        ...


@dataclass
class InProcess:
    """One unit after another, in this process, with the caller's lock."""

    job: Any

    def run(self, step: Step, run_id: str, units: Iterable[int], lock: Lock) -> Iterator[dict[str, Any]]:
        for unit in units:
            yield _step(self.job, step, run_id, unit, lock)

    def parallel(self, units: int) -> bool:
        return False


@dataclass(frozen=True)
class ClientSettings:
    """What a worker process needs to make its own S3 client (clients cannot cross a process boundary)."""

    concurrency: int
    endpoint_url: str | None


class ProcessPool:
    """`count` worker processes (spawned: a fork would copy the parent's threads and their locks). Results come
    back in completion order; the first failure cancels what has not started and is raised."""

    def __init__(
        self,
        dataset: DatasetConfig,
        settings: ClientSettings,
        count: int,
        *,
        allow_unprotected: bool,
        log_level: int | None = None,
    ):
        context = multiprocessing.get_context("spawn")
        self._stopping = context.Event()
        """Set when a step stops early: the units not yet started end at once, unworked (see `_stop`)."""
        self._pool = ProcessPoolExecutor(
            max_workers=count,
            mp_context=context,
            initializer=_start_worker,
            initargs=(dataset, settings, allow_unprotected, log_level, self._stopping),
        )

    def run(self, step: Step, run_id: str, units: Iterable[int], lock: Lock) -> Iterator[dict[str, Any]]:
        self._stopping.clear()
        with lock.heartbeat():  # the parent only waits; its lock must not lapse meanwhile
            # The processes start here: they must not die of a Ctrl-C before they ignore it, nor be left half
            # started by the parent's Interrupted.
            with _sigint_held(), interrupts.held(every=True):
                futures = [self._pool.submit(_work, step, run_id, unit) for unit in units]
            # The executor's own table of its processes (private, hence read defensively): it forgets them when
            # it shuts down, and their exit codes are what says how one died.
            processes = dict(getattr(self._pool, "_processes", None) or {})
            pending: set[Future[dict[str, Any]]] = set(futures)
            try:
                while pending:
                    # Each unit's answer as soon as it is in, so the caller's progress moves batch by batch.
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        error = future.exception()
                        if error is not None:
                            if isinstance(error, BrokenProcessPool):
                                raise self._killed(step, processes) from error
                            raise error
                        yield future.result()
            except BaseException as why:
                self._stop(pending, why)
                raise

    def _stop(self, pending: set[Future[dict[str, Any]]], why: BaseException) -> None:
        """On the way out of a failed or interrupted step (its lock still held): what has not started never
        starts, and the units already running are waited for, so their work is recorded and not redone. A
        second interruption (Ctrl-C again, now or before) stops the workers at once instead: what they copied
        is recognised by the next run, which completes this one, as after any crash.

        Units not started are told to end unworked rather than cancelled: Python 3.11's executor, finding a
        worker gone, fails every future it still holds, and one cancelled meanwhile makes its thread die with a
        traceback (InvalidStateError)."""
        self._stopping.set()
        if isinstance(why, Interrupted) and pending:
            if interrupts.again():
                self.terminate()
                return
            running = sum(1 for future in pending if future.running())
            log.warning(
                "stopping: waiting for the %d running %s to end (Ctrl-C again stops them at once)",
                running,
                "unit" if running == 1 else "units",
            )
        try:
            wait(pending)
        except BaseException:
            self.terminate()
            raise

    def terminate(self) -> None:
        """Stop every worker now (SIGTERM) and stop waiting for them: a second Ctrl-C must not wait for a batch."""
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _killed(self, step: Step, processes: dict[int, Any]) -> WorkerKilled:
        """What broke the pool: a worker that died by a signal other than the SIGTERM the executor then sends the
        others, else one that exited, else SIGTERM itself. Read once the executor has joined them all, so every
        exit code is known."""
        known = {**processes, **(getattr(self._pool, "_processes", None) or {})}
        self._pool.shutdown(wait=True, cancel_futures=True)
        codes = [p.exitcode for p in known.values() if p.exitcode not in (None, 0)]
        signals = [-code for code in codes if code < 0 and -code != signal.SIGTERM]
        exits = [code for code in codes if code > 0]
        if signals or not exits and -signal.SIGTERM in codes:
            return WorkerKilled(str(step.action), signum=signals[0] if signals else signal.SIGTERM, exitcode=None)
        return WorkerKilled(str(step.action), signum=None, exitcode=exits[0] if exits else None)

    def parallel(self, units: int) -> bool:
        return True

    def close(self) -> None:
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
        except BaseException:  # interrupted while the workers finish: they are stopped, not waited for forever
            self.terminate()
            raise

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalPool:
    """The CLI's workers: a step of two or more units goes to `count` processes, started at the first such step
    (a spawned process costs about a second of imports, which a ten-file night should not pay); a step of one
    unit, or any step when `count` is 1, runs here with the caller's job and lock."""

    def __init__(
        self,
        job: Any,
        settings: ClientSettings,
        count: int,
        *,
        allow_unprotected: bool,
        log_level: int | None = None,
    ):
        self._here = InProcess(job)
        self._dataset = job.dataset
        self._settings = settings
        self._count = count
        self._allow_unprotected = allow_unprotected
        self._log_level = log_level
        """The CLI's (-q, -v): the workers log what they copy at the level their parent does."""
        self._pool: ProcessPool | None = None

    def parallel(self, units: int) -> bool:
        return self._count > 1 and units > 1

    def run(self, step: Step, run_id: str, units: Iterable[int], lock: Lock) -> Iterator[dict[str, Any]]:
        units = list(units)
        if not self.parallel(len(units)):
            return self._here.run(step, run_id, units, lock)
        if self._pool is None:
            self._pool = ProcessPool(
                self._dataset,
                self._settings,
                self._count,
                allow_unprotected=self._allow_unprotected,
                log_level=self._log_level,
            )
        return self._pool.run(step, run_id, units, lock)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_job: Any = None
_stopping: Any = None
"""The pool's `multiprocessing.Event`: set, a unit not yet started ends unworked."""


def _start_worker(
    dataset: DatasetConfig,
    settings: ClientSettings,
    allow_unprotected: bool,
    log_level: int | None = None,
    stopping: Any = None,
) -> None:
    global _job, _stopping
    # Ctrl-C reaches the whole process group, workers included. Only the parent decides what it means (let
    # the running batches end, or stop them at a second Ctrl-C), so a worker neither dies of it halfway through
    # its imports nor prints a KeyboardInterrupt traceback. Until here it was held (`_sigint_held`); a Ctrl-C
    # pending meanwhile is dropped by ignoring it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()
    from .logs import to_stderr
    from .steps import Job
    from .store import Store

    to_stderr(log_level)
    _stopping = stopping

    _job = Job.of(
        Store.sized(concurrency=settings.concurrency, endpoint_url=settings.endpoint_url),
        dataset,
        allow_unprotected=allow_unprotected,
    )


@contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT blocked in this thread while it starts worker processes, which inherit the blocked signal until
    `_start_worker` ignores it: a Ctrl-C in their first second (the imports) cannot kill them with a traceback.
    The parent itself still hears it: Python runs its handler in the main thread whichever thread the signal
    reaches."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _exit_with_parent() -> None:
    """A worker whose parent is gone (killed, or lost power in a test) stops at once, wherever it is, as a
    Lambda whose execution ended would: the run is completed by the next one, as after any crash. Without
    this, the pool's workers of a killed CLI would wait forever for work, or go on copying for nobody."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(70)


def _work(step: Step, run_id: str, unit: int) -> dict[str, Any] | None:
    if _stopping is not None and _stopping.is_set():
        return None  # its step stopped early (see `ProcessPool._stop`); nobody reads this answer
    return _step(_job, step, run_id, unit, None)


def _step(job: Any, step: Step, run_id: str, unit: int, lock: Lock | None) -> dict[str, Any]:
    from .steps.table import run_step

    answer = run_step(job, StepRequest(step, job.dataset.name, run_id=run_id, unit=unit), lock)
    return {"unit": unit, **answer.to_json()}
