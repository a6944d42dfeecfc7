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


class RunNotFound(IngestError):
    """A batch or finalize step named a run that has no open plan (already finalized, or never planned)."""
