"""One run per dataset at a time, with a lock object guarded by S3 conditional writes.

Taking the lock is `PutObject If-None-Match: *`; taking over an expired lock and renewing it are
`PutObject If-Match: <etag>`, so two runs racing for it cannot both win. A run that dies leaves its lock
to expire after `lock_ttl_seconds`; a live run renews it (a heartbeat thread in the CLI, each batch in
Lambda). Servers that ignore conditional writes are detected with a probe and refused, because on them
this lock would protect nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .errors import ConditionalWritesUnsupported, LockLost, RunInProgress
from .s3io import get_json, is_not_found, is_precondition_failed, put_json

log = logging.getLogger(__name__)


def default_owner() -> str:
    """Who holds the lock, for the RunInProgress message: the Lambda request or the host and pid."""
    return os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME") or f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class LockHandle:
    bucket: str
    key: str
    run_id: str
    token: str
    etag: str
    ttl: int


def probe_conditional_writes(s3: Any, bucket: str, probe_prefix: str) -> None:
    """Write one probe object twice with If-None-Match; a server that accepts the second write ignores it."""
    key = f"{probe_prefix}{uuid.uuid4().hex}"
    put_json(s3, bucket, key, {"probe": True}, if_none_match=True)
    try:
        put_json(s3, bucket, key, {"probe": True}, if_none_match=True)
    except ClientError as err:
        if is_precondition_failed(err):
            return
        raise
    finally:
        s3.delete_object(Bucket=bucket, Key=key)
    raise ConditionalWritesUnsupported(
        f"the S3 endpoint serving bucket {bucket!r} ignored If-None-Match on PutObject, so two runs could "
        "interleave and land files twice. Use AWS S3 or a server that supports conditional writes, or pass "
        "--allow-unprotected to run without the lock at your own risk (never from a schedule)."
    )


def acquire(s3: Any, bucket: str, key: str, run_id: str, ttl: int, *, owner: str | None = None) -> LockHandle:
    """Take the dataset's lock or raise RunInProgress naming the holder and when its lock expires."""
    token = uuid.uuid4().hex
    document = _document(run_id, token, ttl, owner or default_owner())
    try:
        etag = put_json(s3, bucket, key, document, if_none_match=True)
        return LockHandle(bucket, key, run_id, token, etag, ttl)
    except ClientError as err:
        if not is_precondition_failed(err):
            raise
    current, current_etag = get_json(s3, bucket, key)
    if current is None:  # released between our write and our read: try once more from scratch
        return acquire(s3, bucket, key, run_id, ttl, owner=owner)
    remaining = float(current.get("expires_at", 0)) - time.time()
    if remaining > 0:
        raise RunInProgress(
            f"run {current.get('run_id')} (held by {current.get('owner')}) is still in progress for this "
            f"dataset; its lock expires in {remaining:.0f}s unless renewed. Nothing was copied; try again later."
        )
    log.warning("taking over expired lock of run %s held by %s", current.get("run_id"), current.get("owner"))
    try:
        etag = put_json(s3, bucket, key, document, if_match=current_etag)
    except ClientError as err:
        if is_precondition_failed(err):
            raise RunInProgress("another run took over the expired lock first; nothing was copied") from err
        raise
    return LockHandle(bucket, key, run_id, token, etag, ttl)


def renew(s3: Any, handle: LockHandle) -> None:
    """Push the expiry forward; raise LockLost if another run took the lock over."""
    current, etag = get_json(s3, handle.bucket, handle.key)
    if current is None or current.get("token") != handle.token:
        raise LockLost(
            f"run {handle.run_id} lost its lock (now {current and current.get('run_id')}); stopping so two "
            "runs never interleave"
        )
    document = dict(current, expires_at=time.time() + handle.ttl, renewed_at=time.time())
    try:
        handle.etag = put_json(s3, handle.bucket, handle.key, document, if_match=etag)
    except ClientError as err:
        if not is_precondition_failed(err):
            raise
        renew(s3, handle)  # a parallel worker of the same run renewed at the same moment; re-check


def adopt(s3: Any, bucket: str, key: str, run_id: str, ttl: int) -> LockHandle:
    """A batch or finalize step of a run joins the lock its plan step took (steps run in other Lambdas)."""
    current, etag = get_json(s3, bucket, key)
    if current is None or current.get("run_id") != run_id:
        raise LockLost(
            f"run {run_id} does not hold this dataset's lock (holder: {current and current.get('run_id')}); "
            "it was finalized or taken over"
        )
    handle = LockHandle(bucket, key, run_id, current["token"], etag or "", ttl)
    renew(s3, handle)
    return handle


def rebind(s3: Any, handle: LockHandle, run_id: str) -> None:
    """The lock now covers another run (an interrupted one being completed); steps check the run id."""
    current, etag = get_json(s3, handle.bucket, handle.key)
    if current is None or current.get("token") != handle.token:
        raise LockLost(f"lost the lock before resuming run {run_id}")
    document = dict(current, run_id=run_id, expires_at=time.time() + handle.ttl)
    handle.etag = put_json(s3, handle.bucket, handle.key, document, if_match=etag)
    handle.run_id = run_id


def release(s3: Any, handle: LockHandle) -> None:
    current, _ = get_json(s3, handle.bucket, handle.key)
    if current is not None and current.get("token") == handle.token:
        try:
            s3.delete_object(Bucket=handle.bucket, Key=handle.key)
        except ClientError as err:
            if not is_not_found(err):
                raise


def _document(run_id: str, token: str, ttl: int, owner: str) -> dict[str, Any]:
    now = time.time()
    return {"run_id": run_id, "token": token, "owner": owner, "acquired_at": now, "expires_at": now + ttl}


class Heartbeat:
    """Renews a lock every third of its TTL from a daemon thread while a long step runs.

    If renewal finds the lock lost, `lost` is set and the step checks it between objects.
    """

    def __init__(self, s3: Any, handle: LockHandle):
        self._s3 = s3
        self._handle = handle
        self._stop = threading.Event()
        self.lost: LockLost | None = None
        self._thread = threading.Thread(target=self._loop, name="lock-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check(self) -> None:
        if self.lost:
            raise self.lost

    def _loop(self) -> None:
        interval = max(self._handle.ttl / 3, 0.2)
        while not self._stop.wait(interval):
            try:
                renew(self._s3, self._handle)
            except LockLost as err:
                self.lost = err
                return
            except Exception as err:  # a transient S3 error: the next beat tries again
                log.warning("lock renewal failed, will retry: %s", err)
