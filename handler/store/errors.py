"""The one place where botocore's and s3transfer's errors become this package's own, in the way s3fs's
`errors.py` does it.

Code outside this module catches `NotFound`, `PreconditionFailed`, ... and never reads
`err.response["Error"]["Code"]` itself, so what counts as "not found" or "lost a conditional race" is decided
once. The botocore error stays reachable as `__cause__` (and `.cause`) for logs and for debugging.

Lambda reports an exception's class name as `errorType`, so these names are part of the step contract; the
state machine retries all of them except the ones it names in `NOT_RETRYABLE_ERRORS`.
"""

from __future__ import annotations

import re
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

from ..errors import IngestError, environment_error


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


class KeyAccessDenied(AccessDenied):
    """403 because S3 may not use, for this caller, the KMS key the object is encrypted with (kms:Decrypt).

    Its reason keeps S3's answer and says what grants the key: both halves, since for another account's key
    AWS needs the key policy *and* an IAM policy of the caller's account, and S3's message names only the one
    it found missing.
    """


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

# How S3 says that KMS refused it the key to decrypt an object: an AccessDenied whose message is KMS's own,
# "User: <caller> is not authorized to perform: kms:Decrypt on resource: <key ARN> because no identity-based
# (or resource-based) policy allows the kms:Decrypt action", or, in older answers, "The ciphertext refers to a
# customer master key that does not exist, does not exist in this region, or you are not allowed to access."
# (both quoted from GetObject errors in public bug reports). S3 also names KMS's errors `KMS.<error>`
# (KMS.DisabledException, KMS.NotFoundException); `KMS.AccessDeniedException` would be that form of KMS's
# refusal (not seen in AWS's documentation: taken should S3 answer so). A refused kms:GenerateDataKey is the
# write side (the raw bucket's key), not this.
_KMS_DECRYPT_REFUSED = re.compile(r"kms:Decrypt|ciphertext refers to a customer master key", re.IGNORECASE)
_KMS_ACCESS_DENIED_CODES = frozenset({"KMS.AccessDeniedException"})
_KMS_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")
KEY_GRANT_ADVICE = (
    "S3 may not decrypt the object with its KMS key{key} for the caller. Reading under another account's key "
    "takes two grants: name the key in the dataset's source.kms_key_arn (inventory.kms_key_arn for its "
    "inventory reports), from which the stack allows the function's role kms:Decrypt on it through S3, and "
    "have the key's owner allow that role (stack output functionRoleArn) kms:Decrypt in the key policy "
    "(docs/deploy.md, Add a dataset)"
)
"""What a KeyAccessDenied's reason adds to S3's answer: `{key}` becomes ` (<key ARN>)` when S3 named it."""
HEAD_REFUSAL_ADVICE = (
    "S3 answers a refused HEAD without a reason. The caller may lack s3:GetObject on the object (another "
    "account's bucket must allow it in its bucket policy too); or the object may be encrypted under a KMS key "
    "the caller may not use (a HEAD asking for checksums needs kms:Decrypt): for another account's key name it "
    "in the dataset's source.kms_key_arn, from which the stack allows the function's role kms:Decrypt, and have "
    "the key's owner allow that role (stack output functionRoleArn) kms:Decrypt in the key policy; or the object "
    "may be gone (without s3:ListBucket on its key S3 answers 403, not 404)"
)
"""What a refused HeadObject's reason adds: a HEAD answer has no body, so botocore reports only `403: Forbidden`,
and the runtime's HEAD of a source asks for its checksums (HeadObject `ChecksumMode`), which for an SSE-KMS
object needs kms:Decrypt (S3 API reference): a missing key grant shows here first, unexplained."""


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
    elif code in _KMS_ACCESS_DENIED_CODES or (code in _ACCESS_DENIED and _KMS_DECRYPT_REFUSED.search(text)):
        key = _KMS_KEY_ARN.search(text)
        message = f"{message}; {KEY_GRANT_ADVICE.format(key=f' ({key.group()})' if key else '')}"
        kind = KeyAccessDenied
    elif code == "403" and err.operation_name == "HeadObject":
        message = f"{message}; {HEAD_REFUSAL_ADVICE}"
        kind = AccessDenied
    elif code in _ACCESS_DENIED:
        kind = AccessDenied
    elif code in _THROTTLED:
        kind = Throttled
    elif code in _TRANSIENT or status.startswith("5"):
        kind = Transient
    else:
        kind = S3Error
    return kind(message, code=code, operation=err.operation_name, cause=err)
