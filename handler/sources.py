"""Where a plan's objects come from: a listing of the source (the default), or the source's newest S3 Inventory
report (`inventory` in the dataset config, docs/inventory.md).

A run reads one report from its first shard to its last: the plan step picks the report and stores the choice
in the run's work folder, and every shard (and a retried one) reads that choice back, so a report delivered
mid-run cannot give two shards two different pictures of the bucket.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .config import DatasetConfig
from .inventory import files_for_range, first_key, iter_inventory, latest_manifest, read_manifest
from .layout import LEDGER_ROOT
from .selection import SourceObject
from .store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportChoice:
    """The report a run plans from (`work/<run_id>/inventory.json`)."""

    bucket: str
    manifest: str
    """Key of the report's manifest.json."""
    sorted: bool
    firsts: tuple[tuple[str, str | None], ...] = ()
    """(data file, its first key) of each file, when the report is read as sorted."""

    def cuts(self) -> list[str]:
        """Where a first run's shards are cut when the report is sorted: at each data file's first key (so a
        shard reads about one file)."""
        return sorted({first for _, first in self.firsts if first is not None})[1:]

    def to_json(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "manifest": self.manifest, "sorted": self.sorted, "firsts": self.firsts}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReportChoice:
        firsts = tuple((name, first) for name, first in data.get("firsts", ()))
        return cls(data["bucket"], data["manifest"], bool(data["sorted"]), firsts)


def choose_report(store: Store, dataset: DatasetConfig) -> ReportChoice:
    """The newest delivered report, checked (a ConfigError naming the manifest when it cannot be planned from:
    raised before anything is planned or copied)."""
    where = dataset.inventory
    assert where is not None
    key = latest_manifest(store, where.bucket, where.prefix)
    manifest = read_manifest(store, where.bucket, key, source_bucket=dataset.source.bucket)
    firsts: tuple[tuple[str, str | None], ...] = ()
    if dataset.inventory_sorted:
        firsts = tuple((name, first_key(store, where.bucket, name, manifest.columns)) for name, _ in manifest.files)
    log.info("planning %s from inventory report %s (%d files)", dataset.name, manifest.uri, len(manifest.files))
    return ReportChoice(where.bucket, key, dataset.inventory_sorted, firsts)


def listed_objects(
    store: Store, dataset: DatasetConfig, start_after: str | None = None, end_at: str | None = None
) -> Iterator[SourceObject]:
    """The source's objects in `start_after < key <= end_at`, in key order. A ledger is never source data: not
    ours when source and target share a bucket, and not another pipeline's when the source is another raw bucket."""
    source = dataset.source
    return store.iter_source_objects(
        source.bucket, source.prefix, skip_prefix=LEDGER_ROOT, start_after=start_after, end_at=end_at
    )


def reported_objects(
    store: Store, dataset: DatasetConfig, report: ReportChoice, start_after: str | None, end_at: str | None
) -> Iterator[SourceObject]:
    """The report's objects in the range. In key order only when the report is read as sorted; otherwise in
    the report's order, so the caller must not cut the range at a budget (it could not say where it stopped)."""
    manifest = read_manifest(store, report.bucket, report.manifest, source_bucket=dataset.source.bucket)
    files = None
    if report.sorted:
        files = files_for_range(report.firsts, start_after, end_at, prefix=dataset.source.prefix)
    stream = iter_inventory(
        store,
        manifest,
        prefix=dataset.source.prefix,
        start_after=start_after,
        end_at=end_at,
        skip_prefix=LEDGER_ROOT,
        files=files,
        assume_sorted=report.sorted,
    )
    yield from stream
    stats = stream.stats
    if stats.malformed:
        log.warning(
            "inventory %s: %d malformed row(s) skipped, e.g. %s", manifest.uri, stats.malformed, stats.problems[:3]
        )
