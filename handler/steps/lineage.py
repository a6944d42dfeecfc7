"""`lineage`: where one landed object came from, from its own metadata, and the manifest line that records it.

The object names its dataset, run and date (metadata.py), and so where its record is: the run's manifest parts
in the same bucket's ledger, read line by line until the line whose `target_key` is the object. No config is
needed; with one, the object must be that dataset's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..config import DatasetConfig, Location
from ..errors import InvalidRequest, NoLineage
from ..ledger import Ledger
from ..metadata import Lineage
from ..records import ObjectStatus, Record
from ..store import Store
from ..verify import Copied, Kind, Landed, Problem, copied_problems


def parse_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise InvalidRequest(f"{uri!r} is not an object URI; give it as s3://bucket/key")
    return bucket, key


@dataclass(frozen=True)
class ObjectLineage(Record):
    """`lineage`'s answer: the object as it is, where its metadata says it came from, the manifest line that
    records it, and every way the two disagree.

    It lives beside its step rather than in records.py: it is no ledger document nor a step of a run, and it is
    made of the metadata's `Lineage` and verify's `Problem`, which records.py has no reason to know."""

    uri: str
    size: int
    etag: str
    last_modified: str | None
    source: str
    """The source object as a URI (`s3://bucket/key`)."""
    lineage: Lineage
    run_in_progress: bool
    """The run that landed it is still open: its manifest part is written when its shard is finalized."""
    manifest_part: str | None
    manifest_line: dict[str, Any] | None
    problems: tuple[Problem, ...]

    _WRITTEN = {"problems": lambda problems: [problem.to_json() for problem in problems]}

    def to_json(self) -> dict[str, Any]:
        """The metadata's lineage is written as fields of the answer, in its place after `source`."""
        return {
            key: value
            for name, written in super().to_json().items()
            for key, value in (self.lineage.to_json().items() if name == "lineage" else ((name, written),))
        }


def lineage(store: Store, bucket: str, key: str, dataset: DatasetConfig | None = None) -> ObjectLineage:
    """The object's lineage, the manifest line that records it, and any way the two disagree (`problems`)."""
    uri = f"s3://{bucket}/{key}"
    head = store.head_or_none(bucket, key)
    if head is None:
        store.require_bucket(bucket)
        raise NoLineage(f"{uri} does not exist")
    found = Lineage.of(head.get("Metadata"))
    if found is None or not found.dataset:
        raise NoLineage(
            f"{uri} has no lineage metadata: it was not landed by this pipeline, or its metadata was replaced since"
        )
    if dataset is not None and found.dataset != dataset.name:
        raise NoLineage(f"{uri} was landed by dataset {found.dataset!r}, not by {dataset.name!r}")
    if dataset is not None and bucket != dataset.target.bucket:
        raise NoLineage(f"{uri} is outside dataset {dataset.name!r}'s target bucket {dataset.target.bucket!r}")
    ledger = Ledger(store, dataset or _ledger_of(found, bucket))
    part, line = _manifest_line(ledger, found, key)
    open_run = ledger.open_run()
    in_progress = open_run is not None and open_run.run_id == found.run_id
    landed = Landed(key, int(head.get("ContentLength") or 0), found)
    if line is not None and line.get("status") == ObjectStatus.COPIED:
        problems = copied_problems(Copied.of(line), landed)
    elif in_progress:
        problems = []  # its manifest part is written when its shard is finalized
    else:
        recorded = f"records it as {line.get('status')}: {line.get('reason')}" if line else "has no line for it"
        problems = [
            Problem(
                Kind.NOT_IN_MANIFEST, key, f"run {found.run_id}'s manifest of {found.date} {recorded}", found.run_id
            )
        ]
    modified = head.get("LastModified")
    return ObjectLineage(
        uri=uri,
        size=landed.size,
        etag=str(head.get("ETag", "")).strip('"'),
        last_modified=modified.isoformat() if isinstance(modified, datetime) else modified,
        source=f"s3://{found.source_bucket}/{found.source_key}",
        lineage=found,
        run_in_progress=in_progress,
        manifest_part=ledger.paths.uri(part) if part else None,
        manifest_line=line,
        problems=tuple(problems),
    )


def _ledger_of(found: Lineage, bucket: str) -> DatasetConfig:
    """Enough of a dataset to read its ledger: the ledger lives in the bucket the object landed in, under the
    dataset's name. Nothing is written through it."""
    return DatasetConfig(name=found.dataset, source=Location(found.source_bucket), target=Location(bucket))


def _manifest_line(ledger: Ledger, found: Lineage, key: str) -> tuple[str | None, dict[str, Any] | None]:
    """The run's line for this target, streaming its parts: the copied one, else any other that names it."""
    other: tuple[str | None, dict[str, Any] | None] = (None, None)
    for part in ledger.manifest_part_keys(found.date, found.run_id):
        for line in ledger.part_lines(part):
            if line.get("target_key") != key:
                continue
            if line.get("status") == ObjectStatus.COPIED:
                return part, line
            other = (part, line)
    return other
