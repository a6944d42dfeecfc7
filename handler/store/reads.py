"""Resumable reads: a body cut off mid-read (a reset after the headers) is read on from the byte it reached.

botocore does not retry a read, so `ResumableBody` asks for the rest with a ranged GET pinned to the ETag it
started with: the bytes it returns are always one version's.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import IO, Any

from .errors import NotFound, PreconditionFailed, S3Error, Transient

log = logging.getLogger(__name__)

READ_ATTEMPTS = 6
"""How many times a cut-off body is resumed before the read fails."""


class ResumableBody(io.RawIOBase):
    """A GetObject body that, when the connection breaks mid-read, asks for the rest with `Range` and
    `If-Match` on the ETag it started with, so the bytes it returns are always one version's.

    `rest(start, etag)` is the store's GetObject of the bytes from `start` on, If-Match `etag`; `translated()`
    the store's translation of botocore's errors, around each read of the body."""

    def __init__(
        self,
        key: str,
        response: dict[str, Any],
        rest: Callable[[int, str], dict[str, Any]],
        translated: Callable[[], AbstractContextManager[None]],
    ):
        super().__init__()
        self._key = key
        self._rest = rest
        self._translated = translated
        self._etag = response["ETag"]
        self._size = int(response.get("ContentLength", -1))
        self._body = response["Body"]
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        for attempt in range(READ_ATTEMPTS):
            try:
                with self._translated():
                    data = self._body.read(len(buffer))
                if not data and 0 <= self._position < self._size:
                    raise Transient(f"body of {self._key} ended at byte {self._position} of {self._size}")
            except Transient as err:
                if attempt == READ_ATTEMPTS - 1:
                    raise
                log.warning("read of %s broke at byte %d (%s); resuming", self._key, self._position, err.code)
                time.sleep(min(0.05 * 2**attempt, 2.0))
                self._reopen()
                continue
            buffer[: len(data)] = data
            self._position += len(data)
            return len(data)
        raise AssertionError("unreachable")

    def _reopen(self) -> None:
        if self._position >= self._size >= 0:
            self._body = io.BytesIO(b"")
            return
        try:
            response = self._rest(self._position, self._etag)
        except S3Error as err:
            if not isinstance(err, NotFound) and err.code != "InvalidRange":
                raise
            # The object is now shorter than what was read of it, or gone: another version, as If-Match would
            # have said on a server that checks it (rclone serve s3 answers 416, or 404 mid-rewrite, instead).
            raise PreconditionFailed(
                f"{self._key} changed while it was read ({err.code})", code="PreconditionFailed", cause=err
            ) from err
        if response.get("ETag") != self._etag:
            # If-Match ignored (rclone serve s3): these bytes belong to another version.
            response["Body"].close()
            raise PreconditionFailed(
                f"{self._key} changed while it was read (ETag {self._etag} is now {response.get('ETag')})",
                code="PreconditionFailed",
            )
        self._body = response["Body"]

    def close(self) -> None:
        try:
            self._body.close()
        finally:
            super().close()


def iter_lines(body: IO[bytes], translated: Callable[[], AbstractContextManager[None]]) -> Iterator[dict[str, Any]]:
    """Decode a JSON Lines stream lazily (blank lines are allowed and skipped)."""
    with translated():
        for line in io.TextIOWrapper(body, encoding="utf-8"):
            if line.strip():
                yield json.loads(line)


def jsonl_bytes(lines: Any) -> bytes:
    """JSON Lines, one document a line, as the ledger stores them."""
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")
