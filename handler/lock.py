"""One run per dataset at a time, with a lock object guarded by S3 conditional writes.

Taking the lock is `PutObject If-None-Match: *`; taking over an expired lock and renewing it are
`PutObject If-Match: <etag>`, so two runs racing for it cannot both win. A run that dies leaves its lock
to expire after `lock_ttl_seconds`; a live run renews it (a heartbeat thread while a step runs). Servers
that ignore conditional writes are detected with a probe and refused, because on them this lock would
protect nothing.

Every time in the lock document (`acquired_at`, `renewed_at`, `expires_at`, epoch seconds) is S3's time, and so
is every "now" it is compared with: this machine's clock moved by the offset learned from the `Date` of the
lock's own answers (server_clock.py). So two machines whose clocks disagree still agree on when a lock expires:
a runner whose clock is fast does not take over a live lock, and one whose clock is slow does not wait past a
dead holder's TTL. A run's start (`acquired_at`) is the "now" its plan judges `min_age_seconds` by.

The ledger owns where the lock lives: it builds the `LockFile` and hands out the `Lock` a run holds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .errors import ConditionalWritesUnsupported, LockLost, RunInProgress
from .store import NotFound, PreconditionFailed, S3Error, ServerClock, Store

log = logging.getLogger(__name__)

ABSENCE_REREADS = (0.1, 0.3, 1.0)
"""Pauses between the reads that confirm a lock its holder expected is really gone."""
PROBE_ATTEMPTS = 3
"""Fresh probe objects whose second write must all be accepted before a server is called unprotected."""
PROBE_LEFTOVER_AGE_SECONDS = 3600
"""A probe object older than this is a leftover (its delete failed), not one a probe is still using: a probe
lasts two requests, so only these are cleared, never one another run is in the middle of."""


def default_owner() -> str:
    """Who holds the lock, for the RunInProgress message: the Lambda request or the host and pid."""
    return os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME") or f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class LockFile:
    """Where one dataset's lock lives and how long a holder may go without renewing it."""

    store: Store = field(repr=False)
    bucket: str
    key: str
    ttl: int
    probe_prefix: str
    clock: ServerClock = field(default_factory=ServerClock, compare=False, repr=False)
    """S3's time, learned from the lock's answers: what every expiry here is written in and compared with."""

    def read(self) -> tuple[dict[str, Any] | None, str | None]:
        """(lock document, ETag), or (None, None) when nobody holds it; either answer sets the clock."""
        return self.store.get_json(self.bucket, self.key, clock=self.clock)

    def server_now(self) -> float:
        """S3's time now (epoch seconds); a clock that has seen no answer yet reads the lock once to learn it."""
        if not self.clock.seen:
            self.read()
        return self.clock.now()

    def read_expecting_it(self) -> tuple[dict[str, Any] | None, str | None]:
        """`read` for a holder that expects its lock there: an absence is read again before it is believed.

        On S3 an absent lock is absent (its reads are strongly consistent), and this costs nothing but on the
        way to LockLost. A server that rewrites in place (`rclone serve s3`, with several workers renewing one
        lock) answers 404 for a moment now and then, which would stop a healthy run."""
        current, etag = self.read()
        for pause in ABSENCE_REREADS:
            if current is not None:
                break
            time.sleep(pause)
            current, etag = self.read()
        return current, etag

    def probe(self) -> None:
        """Write one probe object twice with If-None-Match; a server that accepts the second write ignores it.

        Both writes carry write ids (store/writes.py), so a lost answer to the first is not mistaken for a
        refusal, and a probe object that cannot be deleted is left to a later plan's clean-up instead of failing
        the run.
        A second write can also succeed because the object vanished in between (a clean-up of old probe
        leftovers, or a hand-run delete), so the probe is repeated with a fresh key before the server is
        blamed: only a server that accepts the second write PROBE_ATTEMPTS times in a row is refused.
        """
        for _ in range(PROBE_ATTEMPTS):
            if self._probe_once():
                return
            log.warning("a conditional-write probe's second write was accepted; probing again with a new key")
        raise ConditionalWritesUnsupported(
            f"the S3 endpoint serving bucket {self.bucket!r} ignored If-None-Match on PutObject, so two runs "
            "could interleave and land files twice. Use AWS S3 or a server that supports conditional writes, or "
            "pass --allow-unprotected to run without the lock at your own risk (never from a schedule)."
        )

    def _probe_once(self) -> bool:
        """Whether the server refused the second write of a fresh probe object."""
        key = f"{self.probe_prefix}{uuid.uuid4().hex}"
        self.store.put_json(self.bucket, key, {"probe": True}, if_none_match=True, clock=self.clock)
        try:
            self.store.put_json(self.bucket, key, {"probe": True}, if_none_match=True)
        except PreconditionFailed:
            return True
        finally:
            try:
                self.store.delete(self.bucket, key)
            except S3Error as err:
                log.warning("could not delete probe object %s (%s); a later plan clears it", key, err.code)
        return False

    def acquire(self, run_id: str, *, owner: str | None = None, execution: str | None = None) -> Lock:
        """Take the lock or raise RunInProgress naming the holder and when its lock expires.

        `execution` names the workflow execution the run belongs to (a Step Functions execution id). A lock that
        execution already holds is taken back, not refused: Lambda may run a plan whose answer was lost, or die
        part-way through one, and the retry must carry on that execution's run instead of meeting "another run".
        """
        token = uuid.uuid4().hex
        document = _document(run_id, token, self.ttl, owner or default_owner(), execution, self.server_now())

        def taken(etag: str) -> Lock:
            return Lock(
                self, run_id, token, etag, expires_at=document["expires_at"], execution=execution, **_times(document)
            )

        try:
            return taken(self.store.put_json(self.bucket, self.key, document, if_none_match=True, clock=self.clock))
        except PreconditionFailed:
            pass
        current, current_etag = self.read()
        if current is None:  # released between our write and our read: try once more from scratch
            return self.acquire(run_id, owner=owner, execution=execution)
        if current.get("token") == token:
            return taken(current_etag or "")
        if execution is not None and current.get("execution") == execution:
            return self._take_back(current, current_etag or "")
        remaining = float(current.get("expires_at", 0)) - self.clock.now()  # both S3's time: see the module
        if remaining > 0:
            raise RunInProgress(
                f"run {current.get('run_id')} ({_holder(current)}) is still in progress for this dataset; its lock "
                f"expires in {remaining:.0f}s unless renewed. Nothing was copied; try again later."
            )
        log.warning("taking over expired lock of run %s (%s)", current.get("run_id"), _holder(current))
        try:
            etag = self.store.put_json(self.bucket, self.key, document, if_match=current_etag, clock=self.clock)
        except (PreconditionFailed, NotFound) as err:
            raise RunInProgress("another run took over the expired lock first; nothing was copied") from err
        return taken(etag)

    def _take_back(self, current: dict[str, Any], etag: str) -> Lock:
        """The lock an earlier attempt of the same execution took: join its run, and push its expiry forward."""
        lock = Lock(
            self,
            str(current.get("run_id")),
            str(current["token"]),
            etag,
            expires_at=float(current.get("expires_at") or 0),
            execution=current.get("execution"),
            taken_back=True,
            **_times(current),
        )
        log.warning("execution %s takes back its lock of run %s (a retried plan)", lock.execution, lock.run_id)
        lock.renew()
        return lock

    def adopt(self, run_id: str, execution: str | None = None) -> Lock:
        """A batch or finalize step of a run joins the lock its plan step took (steps run in other Lambdas).

        With `execution`, the lock must also be that execution's: a run another execution resumed (it rebinds
        the lock to the run) belongs to that execution now, and a late step of the first one must stop."""
        current, etag = self.read_expecting_it()
        if current is None or current.get("run_id") != run_id:
            raise LockLost(
                f"run {run_id} does not hold this dataset's lock (holder: {current and current.get('run_id')}); "
                "it was finalized or taken over"
            )
        if execution is not None and current.get("execution") != execution:
            raise LockLost(
                f"run {run_id} of execution {execution} lost this dataset's lock to {_holder(current)}, which "
                "resumed the run; stopping so two executions never interleave"
            )
        lock = Lock(
            self,
            run_id,
            current["token"],
            etag or "",
            expires_at=float(current.get("expires_at") or 0),
            execution=current.get("execution"),
            **_times(current),
        )
        if not lock.fresh(self.clock.now()):
            lock.renew()
        return lock

    def release_execution(self, execution: str) -> str | None:
        """Delete the lock if `execution` holds it, whatever its run; returns the run it held, or None. The delete
        is conditional on the version read, so a lock another execution took in between survives."""
        for _ in range(RENEW_ATTEMPTS):
            current, etag = self.read()
            if current is None or current.get("execution") != execution:
                return None
            try:
                self.store.delete(self.bucket, self.key, if_match=etag)
                return str(current.get("run_id"))
            except PreconditionFailed:
                continue  # renewed by a heartbeat in between: read again
        return None


@dataclass
class Lock:
    """A lock this process holds (or held): its token tells our lock from one that another run took over.

    `confirmed_at` is the time this process last saw the lock as its own, like every time here S3's (the lock
    file's clock: this machine's wall clock moved by the learned offset). Wall clock, not monotonic: a laptop's
    suspend stops the monotonic clock but not the lock's expiry.
    """

    file: LockFile
    run_id: str
    token: str
    etag: str
    confirmed_at: float = 0.0
    """S3's time when this process last saw the lock as its own (0 on construction: now)."""
    expires_at: float = 0.0
    """The lock's expiry (S3's time) as this process last wrote or read it (0: not known)."""
    execution: str | None = None
    """The workflow execution the run belongs to (None: a CLI run)."""
    acquired_at: float = 0.0
    """When the run's lock was first taken: the run's start, the same for every attempt of its plan."""
    taken_back: bool = False
    """This lock was taken back from an earlier attempt of the same execution (a retried plan)."""

    def __post_init__(self) -> None:
        if not self.confirmed_at:
            self.confirmed_at = self.file.clock.now()

    def still_ours(self) -> bool:
        """Whether the lock still carries our token: then a write that met a newer version of a key met one of
        our own run's (a sibling attempt's), never another run's."""
        current, _ = self.file.read_expecting_it()
        return current is not None and current.get("token") == self.token

    def renew(self) -> None:
        """Push the expiry forward; raise LockLost if another run took the lock over."""
        self._rewrite("lost its lock", lambda current: dict(current, renewed_at=self.file.clock.now()))

    def fence(self) -> None:
        """Called before every ledger write: a process paused past its TTL finds out here, before it writes.

        A lock with more than two thirds of its TTL to run (by S3's time: the wall clock, which a pause moves
        on, and the learned offset) cannot have been taken over by expiry, so reading it is enough to see a
        takeover or a release, and the rewrite that renewing costs is left to the heartbeat. A lock nearer its
        expiry is renewed."""
        now = self.file.clock.now()
        if not self.fresh(now):
            self.renew()
            return
        current, self.etag = self._own("lost its lock")
        self.expires_at = float(current.get("expires_at") or 0)
        self.confirmed_at = now

    def fresh(self, now: float) -> bool:
        """Whether the lock, as last seen, has more than two thirds of its TTL to run at `now` (S3's time)."""
        return self.expires_at - now > self.file.ttl * 2 / 3

    def rebind(self, run_id: str) -> None:
        """The lock now covers another run (an interrupted one being completed); steps check the run id."""
        self._rewrite(f"lost the lock before resuming run {run_id}", lambda current: dict(current, run_id=run_id))
        self.run_id = run_id

    def _rewrite(self, what: str, change: Any) -> None:
        """Rewrite our lock document with a fresh expiry, If-Match on the version just read. A 412 means a
        parallel worker of the same run renewed at the same moment: read again and retry."""
        clock = self.file.clock
        for _ in range(RENEW_ATTEMPTS):
            checked = clock.now()
            current, etag = self._own(what)
            document = dict(change(current), expires_at=clock.now() + self.file.ttl)
            try:
                self.etag = self.file.store.put_json(
                    self.file.bucket, self.file.key, document, if_match=etag, clock=clock
                )
            except (PreconditionFailed, NotFound):
                continue
            self.confirmed_at = checked
            self.expires_at = document["expires_at"]
            return
        self._own(what)  # still ours, yet never rewritable in a row: say so rather than spin
        raise LockLost(f"run {self.run_id} could not rewrite its lock after {RENEW_ATTEMPTS} attempts; stopping")

    def release(self) -> None:
        """Delete the lock if it is still ours; one another run took over is left alone (the delete is
        conditional on the version we read, so a takeover between the read and the delete survives)."""
        for _ in range(RENEW_ATTEMPTS):
            current, etag = self.file.read()
            if current is None or current.get("token") != self.token:
                return
            try:
                self.file.store.delete(self.file.bucket, self.file.key, if_match=etag)
                return
            except PreconditionFailed:
                continue  # renewed by our own heartbeat in between: read again

    def release_quietly(self) -> None:
        """Release on the way out of a failed step: the failure is what the caller reports, not this."""
        try:
            self.release()
        except Exception as err:  # noqa: BLE001 - best effort; the TTL is the fallback
            log.warning("could not release the lock of run %s (%s); it expires by its TTL", self.run_id, err)

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(self)

    def _own(self, what: str) -> tuple[dict[str, Any], str | None]:
        current, etag = self.file.read_expecting_it()
        if current is None or current.get("token") != self.token:
            raise LockLost(
                f"run {self.run_id} {what} (now {current and current.get('run_id')}); stopping so two runs never "
                "interleave"
            )
        return current, etag


RENEW_ATTEMPTS = 5


def _document(run_id: str, token: str, ttl: int, owner: str, execution: str | None, now: float) -> dict[str, Any]:
    """A new lock document; `now` is S3's time."""
    document = {"run_id": run_id, "token": token, "owner": owner, "acquired_at": now, "expires_at": now + ttl}
    if execution is not None:
        document["execution"] = execution
    return document


def _times(document: dict[str, Any]) -> dict[str, float]:
    return {"acquired_at": float(document.get("acquired_at") or 0)}


def _holder(document: dict[str, Any]) -> str:
    """Who holds a lock, for messages: its execution (a Step Functions run) and its process."""
    execution = document.get("execution")
    owner = f"held by {document.get('owner')}"
    return f"execution {execution}, {owner}" if execution else owner


class Heartbeat:
    """Renews a lock every third of its TTL from a daemon thread while a long step runs.

    If renewal finds the lock lost, `lost` is set and the step checks it between objects. A process that was
    paused (SIGSTOP, a suspended laptop) wakes with a heartbeat that has not beaten for longer than the TTL:
    `check` then renews synchronously before letting the next object start, so a woken process learns it lost
    its lock before it copies anything more.
    """

    def __init__(self, lock: Lock):
        self._lock = lock
        self._stop = threading.Event()
        self._renewing = threading.Lock()
        self.lost: LockLost | None = None
        self._thread = threading.Thread(target=self._loop, name="lock-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Wait for a renewal in flight, however slow (botocore's retries bound it): the step's caller may
        # release the lock next, and a renewal landing after the release would put the lock back on a server
        # that ignores If-Match (rclone serve s3, with --allow-unprotected), leaving it to its TTL.
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        if self.lost:
            raise self.lost
        clock = self._lock.file.clock
        if clock.now() - self._lock.confirmed_at > self._lock.file.ttl / 2:
            with self._renewing:
                if clock.now() - self._lock.confirmed_at > self._lock.file.ttl / 2:
                    self._renew()
            if self.lost:
                raise self.lost

    def _renew(self) -> None:
        try:
            self._lock.renew()
        except LockLost as err:
            self.lost = err
        except Exception as err:  # a transient S3 error: the next beat tries again
            log.warning("lock renewal failed, will retry: %s", err)

    def _loop(self) -> None:
        interval = max(self._lock.file.ttl / 3, 0.2)
        while not self._stop.wait(interval) and not self.lost:
            with self._renewing:
                self._renew()
