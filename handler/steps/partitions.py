"""Repair (or backfill) the Glue catalog's partitions from the ledger: `ingest partitions`.

Nights committed before partitions were registered, or whose registration failed (the run's `partitions_error`),
get their partitions from what the ledger recorded: each committed run's summary, and for a run that copied, its
manifest's copied keys. Streamed night by night (summary keys sort by date), registered 100 a call, idempotent: a
partition that exists is counted, not refused, so the command can be run again at any time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..ledger import SUMMARY
from ..partitions import Catalog, Partition, landed_tables, night_partitions, register
from ..records import ObjectStatus, RunSummary
from . import Job


@dataclass(frozen=True)
class Repaired:
    """The repair's answer: which dataset, from which nights, what was registered."""

    dataset: str
    database: str
    nights: int
    first: str | None
    last: str | None
    partitions: int
    created: int
    existing: int
    calls: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def repair(job: Job, catalog: Catalog, *, date: str | None = None, since: str | None = None) -> Repaired:
    """Register the partitions of every committed night of the dataset (`date` only, or from `since` on)."""
    seen: list[str] = []

    def partitions() -> Iterator[Partition]:
        for night, runs in committed_nights(job, date=date, since=since):
            seen.append(night)
            yield from night_of(job, night, runs)

    done = register(catalog, partitions())
    return Repaired(
        job.dataset.name,
        catalog.database,
        len(seen),
        seen[0] if seen else None,
        seen[-1] if seen else None,
        done.partitions,
        done.created,
        done.existing,
        done.calls,
    )


def committed_nights(
    job: Job, *, date: str | None = None, since: str | None = None
) -> Iterator[tuple[str, list[RunSummary]]]:
    """(date, its committed runs) night by night, oldest first, from one listing of the summaries."""
    ledger = job.ledger
    prefix = ledger.paths.summary_folder(date=date) if date else ledger.paths.summaries
    night: str | None = None
    runs: list[RunSummary] = []
    for key in job.store.iter_keys(ledger.bucket, prefix):
        found = ledger.paths.summary_run(key)
        if found is None or (since is not None and found[0] < since):
            continue
        if found[0] != night:
            if night is not None and runs:
                yield night, runs
            night, runs = found[0], []
        summary = ledger.read(SUMMARY, date=found[0], run_id=found[1])
        if summary is not None:
            runs.append(summary)
    if night is not None and runs:
        yield night, runs


def night_of(job: Job, date: str, runs: list[RunSummary]) -> list[Partition]:
    """A committed night's partitions, from its runs' summaries and the copied keys of their manifests."""
    ledger = job.ledger
    copied = (
        line["target_key"]
        for run in runs
        if run.copied and run.run_id
        for line in ledger.manifest_lines(date, run.run_id)
        if line.get("status") == ObjectStatus.COPIED and line.get("target_key")
    )
    manifest = any(
        run.manifest_parts or (run.run_id and next(ledger.manifest_part_keys(date, run.run_id), None)) for run in runs
    )
    return night_partitions(job.dataset, date, tables=landed_tables(job.dataset, date, copied), manifest=manifest)
