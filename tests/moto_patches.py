"""Make moto honour what S3 honours and the runtime relies on, where moto 5.2.5 does not.

S3 honours `If-None-Match: *` and `If-Match` on CopyObject's destination, and `x-amz-copy-source-if-match` on
CopyObject; moto ignores all three (../shared/notes/s3-conditional-writes.md). The runtime's exactly-once
guarantees rest on them, so the tests run against a moto that checks them the way S3 does: 412
PreconditionFailed before anything is written. A test that needs the unpatched behaviour (a server that
ignores the conditions) says so and undoes the patch. And S3's conditional writes are atomic where moto's check
and store in two steps: `serialise_key_writes` makes them so for tests that race writers.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from moto.s3.exceptions import MissingKey, PreconditionFailed
from moto.s3.responses import S3Response

_original_copy = S3Response.copy_object


@functools.wraps(_original_copy)
def _checked_copy(self: S3Response, *args: Any, **kwargs: Any) -> Any:
    destination = self.backend.get_object(self.bucket_name, self.parse_key_name())
    if_none_match = self.headers.get("If-None-Match")
    if_match = self.headers.get("If-Match")
    if if_none_match == "*" and destination is not None:
        raise PreconditionFailed("If-None-Match")
    if if_match:
        if destination is None:
            raise MissingKey
        if if_match.strip('"') != destination.etag.strip('"'):
            raise PreconditionFailed("If-Match")
    source_if_match = self.headers.get("x-amz-copy-source-if-match")
    if source_if_match:
        source = urlparse(self.headers["x-amz-copy-source"])
        bucket, key = unquote(source.path).lstrip("/").split("/", 1)
        current = self.backend.get_object(bucket, key)
        if current is not None and source_if_match.strip('"') != current.etag.strip('"'):
            raise PreconditionFailed("x-amz-copy-source-If-Match")
    return _original_copy(self, *args, **kwargs)


def honour_copy_conditions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S3Response, "copy_object", _checked_copy)


def ignore_copy_conditions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Back to moto as shipped: for tests of what happens on a server that ignores the conditions."""
    monkeypatch.setattr(S3Response, "copy_object", _original_copy)


def serialise_key_writes(
    monkeypatch: pytest.MonkeyPatch, watched: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """Make moto's conditional writes atomic, as S3's are, and watch for landed objects being replaced.

    moto checks If-None-Match / If-Match and then stores the object in two steps, so two invocations racing for
    one key (the lock, a ledger document, a target) could both pass the check. S3 does not allow that, so every
    key PUT (copies included), POST (multipart completion) and DELETE is serialised here, as
    tests/e2e/cli_fixtures.py does for its server.

    Returns a list that fills with one `overwritten:` line for each write that replaced an object outside the
    ledger (`_ingestion/`) of a `watched` bucket with a different one (another ETag or other metadata): a landed
    object must never be rewritten. Writing the very same object again (same bytes, same metadata) is not
    counted, as a retransmitted request is not.
    """
    guard = threading.RLock()
    found: list[str] = []

    def landed(response: S3Response, key_name: str) -> tuple[str, dict[str, str]] | None:
        if response.bucket_name not in watched or key_name.startswith("_ingestion/"):
            return None
        try:
            obj = response.backend.get_object(response.bucket_name, key_name)
        except Exception:  # noqa: BLE001 - no such bucket or key: nothing landed there
            return None
        if obj is None:
            return None
        return obj.etag, {str(k).lower(): str(v) for k, v in dict(obj.metadata).items()}

    def serialised(original: Any, key_of: Callable[..., str]) -> Any:
        @functools.wraps(original)
        def locked(self: S3Response, *args: Any, **kwargs: Any) -> Any:
            with guard:
                key_name = key_of(*args, **kwargs)
                before = landed(self, key_name)
                answer = original(self, *args, **kwargs)
                after = landed(self, key_name)
                if before is not None and after is not None and after != before:
                    changed = sorted(k for k in set(before[1]) | set(after[1]) if before[1].get(k) != after[1].get(k))
                    what = f"ETag {before[0]} -> {after[0]}" if before[0] != after[0] else "same ETag"
                    found.append(
                        f"overwritten: {key_name!r} in {self.bucket_name} was replaced ({what}; metadata changed: "
                        f"{', '.join(changed)}; run {before[1].get('x-amz-meta-ingest-run-id')} -> "
                        f"{after[1].get('x-amz-meta-ingest-run-id')})"
                    )
                return answer

        return locked

    monkeypatch.setattr(
        S3Response, "_key_response_put", serialised(S3Response._key_response_put, lambda query, key_name: key_name)
    )
    monkeypatch.setattr(
        S3Response,
        "_key_response_post",
        serialised(S3Response._key_response_post, lambda request, body, bucket_name, query, key_name: key_name),
    )
    monkeypatch.setattr(
        S3Response,
        "_key_response_delete",
        serialised(S3Response._key_response_delete, lambda bucket_name, query, key_name: key_name),
    )
    return found
