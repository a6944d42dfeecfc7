"""The error hierarchy. Lambda reports an exception's class name as `errorType`, so the names are API."""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(IngestError):
    """The process config is wrong; nothing was copied. Each message names the dataset and field."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid config:\n  - " + "\n  - ".join(self.problems))


class UnknownDataset(ConfigError):
    """The dataset asked for is not in the config."""


class RunInProgress(IngestError):
    """Another live run holds this dataset's lock; this one copied nothing."""


class LockLost(IngestError):
    """This run's lock expired and was taken over; it stops so two runs never interleave."""


class ConditionalWritesUnsupported(IngestError):
    """The S3 endpoint ignored If-None-Match, so the lock and ledger cannot be protected."""


class SdkTooOld(IngestError):
    """The botocore this process runs (the Lambda runtime's own, or a user's environment) lacks a request
    parameter the runtime depends on; nothing was done."""


class CorruptDocument(IngestError):
    """A ledger document (the lock, a state index, a plan) read the same way several times is not JSON: it was
    damaged outside this tool. Nothing is written over it; the message names the key, `reason` says why."""

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


class RunNotFound(IngestError):
    """A batch or finalize step named a run that has no open plan (already finalized, or never planned)."""


class InvalidRequest(IngestError):
    """A question about the ledger that cannot be answered as asked: a run that was never committed, an object URI
    that is not `s3://bucket/key`, a run still in progress. Like a usage error, nothing was done."""


class NoLineage(IngestError):
    """The object asked about is missing, carries no lineage metadata, or was landed by another dataset."""


class Interrupted(IngestError):
    """SIGTERM or Ctrl-C stopped the run: its lock is released, and an open run is completed by the next run."""

    def __init__(self, signum: int):
        self.signum = signum
        name = {2: "SIGINT (Ctrl-C)", 15: "SIGTERM"}.get(signum, f"signal {signum}")
        super().__init__(
            f"interrupted by {name}; the lock was released and the next run completes whatever was planned"
        )


class CredentialsError(IngestError):
    """No usable AWS credentials (a profile that does not exist, none configured, expired or wrong keys).

    The environment must be fixed before anything can run, like a config error; nothing was copied.
    """


class NotificationFailed(IngestError):
    """The run's notification could not be published. The run itself is recorded: this never undoes it."""


class LineageDeliveryFailed(IngestError):
    """A lineage backend did not take the run's events. They stay in the ledger; the run is not undone."""


CREDENTIAL_ERRORS = frozenset(
    {
        # botocore's own, raised before a request is sent
        "NoCredentialsError",
        "PartialCredentialsError",
        "ProfileNotFound",
        "CredentialRetrievalError",
        "TokenRetrievalError",
        "SSOTokenLoadError",
        "UnauthorizedSSOTokenError",
        # what S3 answers to keys it does not accept
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
    }
)
"""Error names that mean "these credentials cannot work", whoever raised them: botocore (the class name, which
s3errors keeps as `code`) or S3 (its error code)."""


def credentials_error(err: BaseException) -> CredentialsError | None:
    """The CredentialsError `err` amounts to, or None: one place decides what counts as a credentials problem.

    Read by name, not by class, so neither botocore nor s3errors has to be imported here.
    """
    if isinstance(err, CredentialsError):
        return err
    if not {getattr(err, "code", None), type(err).__name__} & CREDENTIAL_ERRORS:
        return None
    detail = str(err) if str(err).startswith(type(err).__name__) else f"{type(err).__name__}: {err}"
    return CredentialsError(
        f"no usable AWS credentials ({detail}); set AWS_PROFILE to a profile in your AWS config (after "
        "`aws sso login` for an SSO profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; nothing was copied"
    )
