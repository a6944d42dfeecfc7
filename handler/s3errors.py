"""The one place where botocore's and s3transfer's errors become this package's own, in the way s3fs's
`errors.py` does it.

Code outside this module catches `NotFound`, `PreconditionFailed`, ... and never reads
`err.response["Error"]["Code"]` itself, so what counts as "not found" or "lost a conditional race" is decided
once. The botocore error stays reachable as `__cause__` (and `.cause`) for logs and for debugging.

Lambda reports an exception's class name as `errorType`, so these names are part of the step contract; the
state machine retries all of them except the ones it names in `NOT_RETRYABLE_ERRORS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    ResponseStreamingError,
)
from s3transfer.exceptions import S3CopyFailedError

from .errors import IngestError, environment_error


class S3Error(IngestError):
    """An S3 request failed; `code` is S3's error code (or the HTTP status), `operation` the API call."""

    def __init__(self, message: str, *, code: str = "", operation: str = "", cause: BaseException | None = None):
        super().__init__(message)
        self.code = code
        self.operation = operation
        self.cause = cause

    @property
    def reason(self) -> str:
        """One line for a manifest or a log: the code, S3's message and the call; never headers or keys."""
        return str(self)


class NotFound(S3Error):
    """The key does not exist (404, NoSuchKey)."""


class NoSuchBucket(NotFound):
    """The bucket does not exist: a problem of the whole run, never of one object."""


class PreconditionFailed(S3Error):
    """412: an If-Match / If-None-Match / CopySourceIfMatch condition did not hold."""


class Conflict(PreconditionFailed):
    """409 ConditionalRequestConflict: a concurrent conditional write on the key; the outcome is unknown."""


class AccessDenied(S3Error):
    """403: the credentials may not do this (or, without ListBucket, S3's answer for a missing key)."""


class Transient(S3Error):
    """A 5xx, a reset or a timeout that outlasted botocore's retries: trying again later may succeed."""


class Throttled(Transient):
    """503 SlowDown and friends: S3 asks for fewer requests per second on this prefix."""


_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})
_PRECONDITION = frozenset({"412", "PreconditionFailed"})
_CONFLICT = frozenset({"409", "ConditionalRequestConflict"})
_ACCESS_DENIED = frozenset({"403", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"})
_THROTTLED = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "503"})
_TRANSIENT = frozenset({"InternalError", "ServiceUnavailable", "RequestTimeout", "500", "502", "504"})
_CONNECTION_ERRORS = (ConnectionError, HTTPClientError, IncompleteReadError, ResponseStreamingError)


def translate(err: BaseException) -> BaseException:
    """The package's exception for a botocore or s3transfer error; anything else is returned unchanged."""
    if isinstance(err, S3Error):
        return err
    if isinstance(err, ClientError):
        return _from_client_error(err)
    if isinstance(err, S3CopyFailedError):
        # s3transfer raises this, not the ClientError, when an UploadPartCopy's CopySourceIfMatch fails.
        return PreconditionFailed(f"PreconditionFailed: {err} (UploadPartCopy)", code="PreconditionFailed", cause=err)
    if isinstance(err, _CONNECTION_ERRORS):
        # A socket this process could not open (EMFILE) is not the endpoint's fault: say what it is.
        local = environment_error(err)
        if local is not None:
            return Transient(str(local), code=type(local).__name__, cause=err)
        return Transient(f"{type(err).__name__}: {err}", code=type(err).__name__, cause=err)
    if isinstance(err, BotoCoreError):
        return S3Error(f"{type(err).__name__}: {err}", code=type(err).__name__, cause=err)
    return err


@contextmanager
def s3_errors() -> Iterator[None]:
    """Wrap S3 calls (a generator's whole loop included) so only the package's exceptions come out."""
    try:
        yield
    except (ClientError, BotoCoreError, S3CopyFailedError) as err:
        raise translate(err) from err


def _from_client_error(err: ClientError) -> S3Error:
    error = err.response.get("Error", {})
    status = str(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    code = str(error.get("Code", "")) or status
    text = error.get("Message", "") or "no message"
    metadata = err.response.get("ResponseMetadata", {})
    spent = ""
    if metadata.get("MaxAttemptsReached"):  # retries.py: the attempts of both roads, else botocore's own count
        attempts = metadata.get("TotalAttempts") or metadata.get("RetryAttempts", 0) + 1
        spent = f"; {'throttled by S3' if code in _THROTTLED else 'failed'} on all {attempts} attempts"
    message = f"{error.get('Code') or status or 'Error'}: {text} ({err.operation_name}{spent})"
    kind: type[S3Error]
    if code == "NoSuchBucket":
        kind = NoSuchBucket
    elif code in _NOT_FOUND:
        kind = NotFound
    elif code in _CONFLICT:
        kind = Conflict
    elif code in _PRECONDITION:
        kind = PreconditionFailed
    elif code in _ACCESS_DENIED:
        kind = AccessDenied
    elif code in _THROTTLED:
        kind = Throttled
    elif code in _TRANSIENT or status.startswith("5"):
        kind = Transient
    else:
        kind = S3Error
    return kind(message, code=code, operation=err.operation_name, cause=err)
