"""S3 for the runtime: `Store`, the one object every S3 call goes through, and the exceptions it raises.

This package is the only runtime code that imports botocore (and boto3's S3 transfer): the client and how it is
made (clients.py, parsing.py, retries.py), the one call path and its error translation (store.py, errors.py),
the fast road (lean.py, http1.py), write-id recovery (writes.py), resumable reads (reads.py), S3's clock
(server_clock.py), the SDK version check (sdk.py) and SNS publishing (topic.py).
"""

from .errors import (
    AccessDenied,
    Conflict,
    KeyAccessDenied,
    NoSuchBucket,
    NotFound,
    PreconditionFailed,
    S3Error,
    Throttled,
    Transient,
)
from .reads import jsonl_bytes
from .server_clock import ServerClock
from .store import Store

__all__ = [
    "AccessDenied",
    "Conflict",
    "KeyAccessDenied",
    "NoSuchBucket",
    "NotFound",
    "PreconditionFailed",
    "S3Error",
    "ServerClock",
    "Store",
    "Throttled",
    "Transient",
    "jsonl_bytes",
]
