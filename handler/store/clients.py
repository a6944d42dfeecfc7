"""AWS clients sized for a run: one shared client, its pool as large as the copy concurrency.

boto3 itself honours AWS_PROFILE, AWS_REGION and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3; an explicit
endpoint (the CLI's --endpoint-url) wins. Throttling (503 SlowDown) and transient errors are retried on both of
the S3 client's roads by one policy (retries.py): botocore's retry rules and backoff, without its retry quota;
AWS_RETRY_MODE=adaptive also rate-limits, and AWS_MAX_ATTEMPTS sets the attempts per request (default 10,
counted across both roads), as for any AWS SDK.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

from ..errors import ConfigError
from . import retries
from .parsing import tune_client, tune_session


def client_config(concurrency: int) -> Config:
    return Config(
        # Standard mode whatever AWS_RETRY_MODE says: s3_client replaces its retry handler and, for adaptive mode,
        # adds botocore's rate limiter itself (retries.py). `total_max_attempts` counts the first attempt, as
        # AWS_MAX_ATTEMPTS does (botocore's `max_attempts` key counts retries: 10 would have meant 11 attempts).
        retries={"mode": "standard", "total_max_attempts": max_attempts()},
        # Each copy worker makes HEADs while s3transfer's own threads run the copies: room for both.
        max_pool_connections=2 * concurrency + 8,
        connect_timeout=10,
        read_timeout=120,
        # botocore (1.36 and later) asks for, and wraps every streamed body to check, the object's checksum;
        # it wraps error answers too, and then fails parsing one that carries a checksum header (rclone
        # serve s3's 500 during a concurrent rewrite) with AttributeError instead of retrying it. Our reads
        # are the ledger's own JSON and gzip (gzip has its own CRC), and uploads still send checksums.
        response_checksum_validation="when_required",
    )


def s3_client(
    session: Any = None, *, concurrency: int = 32, endpoint_url: str | None = None
) -> tuple[Any, Any, Callable[[Any], Any]]:
    """One S3 client for a run, its answers parsed the cheap way where botocore's costs more (parsing.py) and
    retried by one policy (retries.py); with the session's credentials and a maker of its twin with another
    config (the same session and endpoint), which the fast road needs (lean.py). Store.sized is the caller."""
    session = session or boto3.session.Session()
    # boto3 keeps its botocore session private; the parser defaults are only reachable there.
    tune_session(session._session)
    kwargs = {"endpoint_url": endpoint_url} if endpoint_url else {}
    mode = retry_mode()
    s3 = session.client("s3", config=client_config(concurrency), **kwargs)
    tune_client(s3)
    retries.install(s3, adaptive_mode=mode == "adaptive")
    return s3, session.get_credentials(), lambda config: session.client("s3", config=config, **kwargs)


def retry_mode() -> str:
    """AWS_RETRY_MODE as any AWS SDK reads it (default standard); legacy is run as standard (retries.py)."""
    mode = (os.environ.get("AWS_RETRY_MODE") or "standard").strip().lower()
    if mode not in retries.MODES:
        raise ConfigError(
            f"AWS_RETRY_MODE={mode!r} is not a retry mode; use one of {', '.join(retries.MODES)} or unset it"
        )
    return mode


def max_attempts() -> int:
    """AWS_MAX_ATTEMPTS as any AWS SDK reads it: attempts per request, the first included (default 10)."""
    text = os.environ.get("AWS_MAX_ATTEMPTS") or "10"
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(
            f"AWS_MAX_ATTEMPTS={text!r} is not a whole number of attempts (1 or more); unset it or fix it"
        )
    return int(text)
