"""Make moto honour what S3 honours and the runtime relies on, where moto 5.2.5 does not.

S3 honours `If-None-Match: *` and `If-Match` on CopyObject's destination, and `x-amz-copy-source-if-match` on
CopyObject; moto ignores all three (../shared/notes/s3-conditional-writes.md). The runtime's exactly-once
guarantees rest on them, so the tests run against a moto that checks them the way S3 does: 412
PreconditionFailed before anything is written. A test that needs the unpatched behaviour (a server that
ignores the conditions) says so and undoes the patch.
"""

from __future__ import annotations

import functools
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
