"""The error hierarchy. Lambda reports an exception's class name as `errorType`, so the names are API."""

from __future__ import annotations

import errno
import signal
import tempfile

try:
    import resource  # imported now: at the moment a process runs out of descriptors, importing it would fail too
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]


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


class ExtraMissing(IngestError):
    """A command needs an optional dependency (an extra of pyproject.toml, e.g. `demo`'s moto) this Python lacks;
    the message says how to install it, nothing was done."""


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


class PartitionsFailed(IngestError):
    """The Glue catalog did not take a night's partitions. The night is committed; `ingest partitions` repairs."""


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
store.errors keeps as `code`) or S3 (its error code)."""


def credentials_error(err: BaseException) -> CredentialsError | None:
    """The CredentialsError `err` amounts to, or None: one place decides what counts as a credentials problem.

    Read by name, not by class, so neither botocore nor store.errors has to be imported here.
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


# ---- the machine, not S3 or the config ------------------------------------------------------------------------
# A run that fails for want of disk, descriptors or memory must say so: these are fixed on the machine (or the
# Lambda's settings), and told as "an endpoint error" or "a bug" they send people to the wrong place.

RESUMES = "nothing that landed is lost, and the next run picks up where this one stopped"


class ScratchSpaceFull(IngestError):
    """The temporary directory filled up (ENOSPC): the run's scratch database and spooled ledger files live there.

    `directory` is where they were being written.
    """

    def __init__(self, directory: str, detail: str):
        self.directory = directory
        super().__init__(
            f"no space left in the temporary directory {directory} ({detail}): the run keeps its scratch database "
            "and spooled ledger files there. Free space there, or point TMPDIR at a filesystem with room (on "
            f"Lambda, raise the function's ephemeral storage), then run again; {RESUMES}"
        )


class TooManyOpenFiles(IngestError):
    """The process reached its open-file limit (EMFILE, or the system's, ENFILE): connections could not open.

    `soft` and `hard` are RLIMIT_NOFILE as this process sees it (None where the platform has no such limit).
    """

    def __init__(self, detail: str, soft: int | None, hard: int | None, *, system: bool = False):
        self.soft, self.hard = soft, hard
        if system:
            limit = "the system's open-file table is full (ENFILE): other processes hold the files"
        elif soft is None:
            limit = "this process reached its open-file limit (EMFILE)"
        else:
            raise_to = min(max(4 * soft, 4096), hard) if hard is not None else max(4 * soft, 4096)
            how = (
                f"raise it before running (`ulimit -n {raise_to}`)"
                if raise_to > soft
                else "that is the hard limit, which only root raises (limits.conf, systemd's LimitNOFILE)"
            )
            limit = (
                f"this process may have {soft} files and connections open at once (RLIMIT_NOFILE soft {soft}, "
                f"hard {hard if hard is not None else 'unlimited'}): {how}"
            )
        super().__init__(
            f"too many open files ({detail}): {limit}, or lower --concurrency or --workers (each worker holds up "
            f"to --concurrency connections to S3 and a few files); {RESUMES}"
        )


class WorkerKilled(IngestError):
    """A worker process of the CLI's pool died without answering, mostly from a signal (SIGKILL from the kernel's
    out-of-memory killer, above all). `signum` is the signal, or None when it ended with `exitcode` instead."""

    def __init__(self, step: str, *, signum: int | None, exitcode: int | None):
        self.signum, self.exitcode = signum, exitcode
        if signum is None:
            how = "ended without answering" + (f" (exit status {exitcode})" if exitcode is not None else "")
            likely = "its log lines above say why"
        else:
            try:
                name = signal.Signals(signum).name
            except ValueError:
                name = f"signal {signum}"
            how = f"was killed by {name} (signal {signum})"
            likely = {
                signal.SIGKILL: "most often the kernel's out-of-memory killer (see `dmesg` or `journalctl -k` for "
                "'Out of memory'): lower --workers or --concurrency, or give the machine more memory",
                signal.SIGSEGV: "the Python interpreter crashed: run again, and report it if it repeats",
                signal.SIGTERM: "something on the machine stopped it (a scheduler, a shutdown, `kill`)",
            }.get(signum, "something on the machine stopped it")
        super().__init__(f"a worker process {how} during {step}: {likely}; {RESUMES}")


def environment_error(err: BaseException) -> IngestError | None:
    """The ScratchSpaceFull or TooManyOpenFiles `err` amounts to, or None: the one place that reads an OS error
    anywhere in an exception's chain (botocore wraps a socket's EMFILE in EndpointConnectionError, SQLite says
    "database or disk is full" for ENOSPC) as the machine's problem it is."""
    for cause in _chain(err):
        if isinstance(cause, ScratchSpaceFull | TooManyOpenFiles):
            return cause
        number = getattr(cause, "errno", None) if isinstance(cause, OSError) else None
        if number in (errno.ENOSPC, errno.EDQUOT) or _sqlite_full(cause):
            detail = "ENOSPC" if number != errno.EDQUOT else "EDQUOT: the disk quota is used up"
            where = getattr(cause, "filename", None)
            return ScratchSpaceFull(tempfile.gettempdir(), f"{detail}, writing {where}" if where else detail)
        if number in (errno.EMFILE, errno.ENFILE):
            soft, hard = open_file_limit()
            return TooManyOpenFiles(errno.errorcode[number], soft, hard, system=number == errno.ENFILE)
    return None


def open_file_limit() -> tuple[int | None, int | None]:
    """RLIMIT_NOFILE (soft, hard) of this process (None for unlimited, or where there is no `resource` module)."""
    if resource is None:
        return None, None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    return (None if soft == unlimited else soft), (None if hard == unlimited else hard)


def _sqlite_full(err: BaseException) -> bool:
    """SQLite's SQLITE_FULL, which it raises for ENOSPC without an errno (read by name: no sqlite3 import here)."""
    return type(err).__name__ == "OperationalError" and "database or disk is full" in str(err)


def _chain(err: BaseException) -> list[BaseException]:
    """`err` and everything it was raised from or while handling, botocore's `error` keyword included."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [err]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen) or len(seen) > 20:
            continue
        seen.append(current)
        kwargs = getattr(current, "kwargs", None)
        wrapped = kwargs.get("error") if isinstance(kwargs, dict) else None
        todo += [current.__cause__, current.__context__, getattr(current, "cause", None), wrapped]
    return [e for e in seen if isinstance(e, BaseException)]
