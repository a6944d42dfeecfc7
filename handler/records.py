"""What the ledger stores and the steps pass to each other, as frozen records with one JSON form each.

The JSON forms are the contract (docs/lambda-contract.md and the README's ledger section): field names and
order here are what lands in S3 and what Step Functions sees. Each record has exactly one `to_json` and,
where it is read back, one `from_json`, so no module spells a manifest line or a summary by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Self

from .shards import StatePart

if TYPE_CHECKING:
    from .config import DatasetConfig


class ObjectStatus(StrEnum):
    """What happened to one object in a run (a manifest line's `status`)."""

    COPIED = "copied"
    SKIPPED = "skipped"
    FAILED = "failed"


class RunStatus(StrEnum):
    """How a run ended (a summary's `status`)."""

    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    NOTHING_NEW = "nothing_new"
    DRY_RUN = "dry_run"


FAILING_STATUSES = frozenset({RunStatus.PARTIAL, RunStatus.FAILED})


def run_status(copied: int, failed: int) -> RunStatus:
    """Something landed and nothing failed is success; failures with landings are partial."""
    if failed:
        return RunStatus.PARTIAL if copied else RunStatus.FAILED
    return RunStatus.SUCCEEDED if copied else RunStatus.NOTHING_NEW


def utc_now() -> str:
    """Timestamps in the ledger: UTC, ISO 8601, milliseconds, `Z`."""
    return utc_stamp(datetime.now(UTC))


def utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@cache
def _names(cls: type) -> tuple[str, ...]:
    """A record class's field names, looked up once: a run turns a manifest line to JSON and back several
    times per object, and `dataclasses.fields` builds its answer anew on every call."""
    return tuple(f.name for f in fields(cls))


def _plain(record: Any) -> dict[str, Any]:
    """A flat record's fields in declaration order (enums are str, so json.dumps writes their value)."""
    return {name: getattr(record, name) for name in _names(type(record))}


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The fields `cls` declares, so a document with extra keys (a newer writer) still reads."""
    names = _names(cls)
    return {k: v for k, v in data.items() if k in names}


class Record:
    """A record whose JSON is its fields in declaration order, and which reads back from a document with keys it
    does not know (a newer writer's). Records with nested records say how to write and read those."""

    __slots__ = ()
    _WRITTEN: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    """Fields written in another form than their own (a nested record, a tuple as a list)."""
    _READ: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    """Fields read back through a function of the stored value (None where the document has no such key)."""

    def to_json(self) -> dict[str, Any]:
        data = _plain(self)
        for name, write in self._WRITTEN.items():
            data[name] = write(data[name])
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        values = _known(cls, data)
        for name, read in cls._READ.items():
            values[name] = read(values.get(name))
        return cls(**values)


class Sums:
    """A record of counts that adds up field by field (a mapping of counts key by key): a run's counts are its
    shards' or its batches' added up, and a field added to the record is added up with no second list to keep."""

    __slots__ = ()

    def __add__(self, other: Self) -> Self:
        return type(self)(**{f.name: _plus(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})  # type: ignore[arg-type]


def _plus(one: Any, other: Any) -> Any:
    if isinstance(one, Mapping):
        return {key: one.get(key, 0) + other.get(key, 0) for key in {**one, **other}}
    return one + other


def _nested(record: Any) -> dict[str, Any]:
    return record.to_json()


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value or {})


def _sequence(value: Any) -> tuple[Any, ...]:
    return tuple(value or ())


@dataclass(frozen=True)
class BatchItem(Record):
    """One planned copy: the listed version and where it lands."""

    key: str
    etag: str
    size: int
    target: str


@dataclass(frozen=True)
class Batch(Record):
    """One batch file (`work/<run_id>/batches/NNNNNN.json`): the copies one copy step makes, cut by the plan."""

    run_id: str
    items: tuple[BatchItem, ...]

    _WRITTEN = {"items": lambda items: [item.to_json() for item in items]}
    _READ = {"items": lambda items: tuple(BatchItem.from_json(item) for item in items or ())}


@dataclass(frozen=True)
class RunRef:
    """What every manifest line of one run shares; stamped onto each line when the manifest is written."""

    dataset: str
    run_id: str
    date: str
    source_bucket: str
    target_bucket: str


@dataclass(frozen=True)
class ManifestLine(Record):
    """One object's outcome. Batches report these; the manifest is these stamped with their run."""

    source_key: str
    source_etag: str
    size: int
    target_key: str | None
    status: ObjectStatus
    reason: str = ""
    ingested_at: str | None = None
    checksum: str | None = None
    """The landed object's content checksum as S3 reported it, `<ALGORITHM>:<base64>` (integrity.Checksum)."""
    source_checksum: str | None = None
    """The source version's, when the copy read it (`source_metadata: carry`, or to settle a comparison)."""
    verified: str | None = None
    """How the copy was shown to be the listed version: `checksum`, `etag` or `size` (integrity.Verified)."""
    schema_drift: str | None = None
    """How the file's header differs from its table's declared columns (schema_check.Drift), when it does."""
    _READ = {"status": ObjectStatus}

    @classmethod
    def of(
        cls,
        item: BatchItem,
        status: ObjectStatus,
        reason: str = "",
        ingested_at: str | None = None,
        *,
        checksum: str | None = None,
        source_checksum: str | None = None,
        verified: str | None = None,
        schema_drift: str | None = None,
    ) -> ManifestLine:
        return cls(
            item.key,
            item.etag,
            item.size,
            item.target,
            status,
            reason,
            ingested_at,
            checksum,
            source_checksum,
            verified,
            schema_drift,
        )

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.schema_drift is None:  # only a checked file that drifted has one: other lines read as before
            del data["schema_drift"]
        return data

    def stamped(self, run: RunRef) -> dict[str, Any]:
        """The manifest's form: the object's fields, then the run's (README: "Manifest line")."""
        return {**self.to_json(), **_plain(run)}


@dataclass(frozen=True)
class Tally(Sums, Record):
    """Objects and bytes by outcome: a batch's result, and a run's running total."""

    copied: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    """Bytes copied: a skipped or failed object adds none."""

    @property
    def objects(self) -> int:
        return self.copied + self.skipped + self.failed


@dataclass(frozen=True)
class CopiedBatch:
    """The copy step's answer: which batch, and how its objects went."""

    batch: int
    tally: Tally

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.batch, **self.tally.to_json()}


@dataclass(frozen=True)
class OneShotAnswer:
    """A one-shot run's answer (the CLI's --json, a Lambda invoked without an action): the last run's summary,
    with any runs it finished first in `resumed_runs`."""

    summaries: tuple[RunSummary, ...]

    def to_json(self) -> dict[str, Any]:
        answer = self.summaries[-1].to_json()
        if len(self.summaries) > 1:
            answer["resumed_runs"] = [summary.to_json() for summary in self.summaries[:-1]]
        return answer


@dataclass(frozen=True)
class Released(Record):
    """The release step's answer: whose lock, and whether this call handed it back (False: it was gone, or
    another run holds the lock now)."""

    dataset: str
    run_id: str | None
    released: bool


class Tallying:
    """A Tally counted line by line, in place: a batch or a shard goes through thousands of lines, and building a
    frozen Tally for each one was 3 % of a small-file run's CPU."""

    __slots__ = ("copied", "skipped", "failed", "bytes")

    def __init__(self) -> None:
        self.copied = self.skipped = self.failed = self.bytes = 0

    def add(self, line: ManifestLine) -> None:
        status = line.status
        if status == ObjectStatus.COPIED:
            self.copied += 1
            self.bytes += line.size
        elif status == ObjectStatus.SKIPPED:
            self.skipped += 1
        else:
            self.failed += 1

    @property
    def objects(self) -> int:
        return self.copied + self.skipped + self.failed

    def tally(self) -> Tally:
        return Tally(self.copied, self.skipped, self.failed, self.bytes)


@dataclass(frozen=True)
class PlanCounts(Sums, Record):
    """What a plan decided, counted at plan time (routine skips are only counted, never listed)."""

    listed: int = 0
    """Source objects listed under the prefix (or read from the inventory) in the plan's range."""
    excluded: int = 0
    """Left out by the dataset's include/exclude patterns: not counted anywhere else."""
    planned: int = 0
    planned_bytes: int = 0
    skipped: int = 0
    failed_at_plan: int = 0
    """Objects the plan already knows cannot land (a key collision, a key too long for the target, ...)."""
    skipped_by_reason: Mapping[str, int] = field(default_factory=dict)

    _WRITTEN = _READ = {"skipped_by_reason": _mapping}


@dataclass(frozen=True)
class OpenRun(Record):
    """The run being worked on (`open-run.json`): present from a stored plan until its commit."""

    dataset: str
    run_id: str
    date: str
    started_at: str
    batch_count: int
    counts: PlanCounts
    resumed: bool = False
    shard_count: int = 1
    """Shards the run was planned in (0 .. shard_count-1); a run planned before shards existed has one."""
    scheduled_time: str | None = None
    """The schedule's time of the night it lands (`scheduled_time` of the plan's event), for the OpenLineage
    events' nominal time; None when the night was given as a date or is today's."""

    def as_resumed(self) -> OpenRun:
        return replace(self, resumed=True)

    _WRITTEN = {"counts": _nested}
    _READ = {"counts": PlanCounts.from_json, "resumed": bool, "shard_count": lambda value: int(value or 1)}


@dataclass(frozen=True)
class Planning(Record):
    """A run whose shards are being planned (`work/<run_id>/planning.json`); it becomes the open run when its
    plan is sealed. Rounds: shards that listed their budget hand the rest of their range to new shards, which
    are planned in the next round (ids `round_start` .. `shard_count`-1)."""

    dataset: str
    run_id: str
    date: str
    started_at: str
    shard_count: int
    round: int = 0
    round_start: int = 0
    inventory: bool = False
    """Planned from an inventory report (`work/<run_id>/inventory.json`), not from a listing."""
    scheduled_time: str | None = None
    """The schedule's time of the night (OpenRun.scheduled_time), handed to the open run when the plan is sealed."""


@dataclass(frozen=True)
class PlanOutcome(Record):
    """What one shard's plan stored: its batches, its counts, and where its listing stopped."""

    shard: int
    batches: int
    counts: PlanCounts
    end_at: str | None
    """The end of the range it planned: the shard's own end, or its last listed key when it stopped early."""
    rest: bool = False
    """It stopped at its key budget; the rest of its range is a new shard."""

    _WRITTEN = {"counts": _nested}
    _READ = {"counts": PlanCounts.from_json}


def sum_counts(counts: Iterable[PlanCounts]) -> PlanCounts:
    """A run's plan counts from its shards'."""
    return sum(counts, PlanCounts())


@dataclass(frozen=True)
class DryRun:
    """The dry run's answer: what a run of `date` would plan, in a summary's first fields and a plan's counts, and
    the interrupted run it would complete first (`completes_first`, only when there is one)."""

    dataset: str
    date: str
    counts: PlanCounts
    completes_first: OpenRun | None = None

    @property
    def status(self) -> RunStatus:
        return RunStatus.DRY_RUN

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"dataset": self.dataset, "run_id": None, "date": self.date, "status": self.status}
        answer.update(self.counts.to_json())
        if (first := self.completes_first) is not None:
            answer["completes_first"] = {"run_id": first.run_id, "date": first.date, "planned": first.counts.planned}
        return answer


@dataclass(frozen=True)
class Failure(Record):
    """One failed object as a summary lists it."""

    source_key: str
    reason: str


@dataclass(frozen=True)
class Drifted(Record):
    """One file whose header differed from its table's columns, as a summary lists it: what it differs in, and
    what its table's policy made of it (its status, and where it landed: `_quarantine/...` when quarantined)."""

    source_key: str
    status: ObjectStatus
    target_key: str | None
    drift: str

    _READ = {"status": ObjectStatus}

    @classmethod
    def of(cls, line: ManifestLine) -> Drifted:
        return cls(line.source_key, line.status, line.target_key, line.schema_drift or "")


@dataclass(frozen=True)
class ShardOutcome:
    """What one shard's finalize stored (`work/<run_id>/final/`): its tally, its first failures, the state
    pieces the next index names for its range, and its manifest part (None: no line to record)."""

    shard: int
    tally: Tally
    failures: tuple[Failure, ...]
    pieces: tuple[StatePart, ...]
    manifest_part: str | None
    tables: tuple[str, ...] = ()
    """The described tables (catalog names) its copies landed in: the raw partitions the commit registers."""
    schema_drift: int = 0
    """Lines whose file's header differed from its table's columns (schema_check.py)."""
    drifted: tuple[Drifted, ...] = ()
    """The first of them."""

    def to_json(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "tally": self.tally.to_json(),
            "failures": [f.to_json() for f in self.failures],
            "pieces": [p.to_json() for p in self.pieces],
            "manifest_part": self.manifest_part,
            "tables": list(self.tables),
            "schema_drift": self.schema_drift,
            "drifted": [d.to_json() for d in self.drifted],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShardOutcome:
        return cls(
            int(data["shard"]),
            Tally(**_known(Tally, data["tally"])),
            tuple(Failure(**f) for f in data.get("failures") or ()),
            tuple(StatePart.from_json(p) for p in data.get("pieces") or ()),
            data.get("manifest_part"),
            tuple(data.get("tables") or ()),
            int(data.get("schema_drift") or 0),
            tuple(Drifted.from_json(d) for d in data.get("drifted") or ()),
        )


@dataclass(frozen=True)
class RunSummary(Record):
    """One run's outcome (`summary/`, `last-run.json`, the CLI's `--json`, the notification's body)."""

    dataset: str
    run_id: str | None
    date: str
    status: RunStatus
    started_at: str
    finished_at: str
    duration_seconds: float
    resumed: bool
    source: str
    target: str
    listed: int = 0
    excluded: int = 0
    planned: int = 0
    copied: int = 0
    skipped: int = 0
    unchanged: int = 0
    failed: int = 0
    bytes: int = 0
    skipped_by_reason: Mapping[str, int] = field(default_factory=dict)
    failures: tuple[Failure, ...] = ()
    manifest: str | None = None
    """The run's manifest as one glob (`.../manifest/date=D/<run_id>-*.jsonl`), as DuckDB and Athena read it."""
    manifest_parts: tuple[str, ...] = ()
    """Every part of the manifest, one per shard that had lines (none: the run had no line to record)."""
    marker: str | None = None
    last_landed_at: str | None = None
    """When this dataset last landed something: this run's end if it copied, else the previous run's value
    (the freshness behind the `NewestDataAgeSeconds` metric and `status`)."""
    error: str | None = None
    """Set only when the run itself broke (no manifest then)."""
    schema_drift: int = 0
    """Files whose header differed from their table's declared columns, whatever their table's policy did."""
    schema_drift_files: tuple[Drifted, ...] = ()
    """The first of them, with the difference and what became of each."""

    @property
    def failing(self) -> bool:
        return self.status in FAILING_STATUSES

    @property
    def tally(self) -> Tally:
        """Objects and bytes by outcome, as a run in progress counts them (`status.RunningRun.tally`)."""
        return Tally(self.copied, self.skipped, self.failed, self.bytes)

    @classmethod
    def ended(
        cls, dataset: DatasetConfig, *, date: str, status: RunStatus, started_at: str, finished_at: str, **run: Any
    ) -> RunSummary:
        """A run's summary as it ended, committed or broken before its commit: the one place its identity (dataset,
        where from, where to) and its times are filled in."""
        return cls(
            dataset=dataset.name,
            date=date,
            status=status,
            started_at=started_at,
            finished_at=finished_at,
            duration_seconds=(parse_utc(finished_at) - parse_utc(started_at)).total_seconds(),
            source=dataset.source.uri(),
            target=dataset.target.uri(),
            **run,
        )

    _WRITTEN = {
        "skipped_by_reason": _mapping,
        "failures": lambda failures: [f.to_json() for f in failures],
        "manifest_parts": list,
        "schema_drift_files": lambda drifted: [d.to_json() for d in drifted],
    }
    _READ = {
        "status": RunStatus,
        "skipped_by_reason": _mapping,
        "failures": lambda failures: tuple(Failure(**f) for f in failures or ()),
        "manifest_parts": _sequence,
        "schema_drift": lambda count: int(count or 0),
        "schema_drift_files": lambda drifted: tuple(Drifted.from_json(d) for d in drifted or ()),
    }

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.error is None:
            del data["error"]
        if not self.schema_drift:  # a run that met no drift reads as before (schema contracts, README)
            del data["schema_drift"], data["schema_drift_files"]
        return data


@dataclass(frozen=True)
class Marker(Record):
    """The completion marker (`complete/`): the hand-off to downstream jobs, written last."""

    dataset: str
    run_id: str
    date: str
    status: RunStatus
    copied: int
    bytes: int
    manifest: str
    manifest_parts: tuple[str, ...]
    summary: str
    target: str
    completed_at: str

    @classmethod
    def of(cls, summary: RunSummary, summary_uri: str) -> Marker:
        assert summary.run_id is not None and summary.manifest is not None
        return cls(
            dataset=summary.dataset,
            run_id=summary.run_id,
            date=summary.date,
            status=summary.status,
            copied=summary.copied,
            bytes=summary.bytes,
            manifest=summary.manifest,
            manifest_parts=summary.manifest_parts,
            summary=summary_uri,
            target=summary.target,
            completed_at=summary.finished_at,
        )

    _WRITTEN = {"manifest_parts": list}


@dataclass(frozen=True)
class Notification:
    """What SNS publishes: `attributes` is already in MessageAttributes form."""

    subject: str
    message: str
    attributes: Mapping[str, Mapping[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "message": self.message, "attributes": dict(self.attributes)}


@dataclass(frozen=True)
class Finalized:
    """The finalize step's answer: the committed summary, its message, and whether to plan again."""

    summary: RunSummary
    notification: Notification
    partitions_error: str | None = None
    """Why the night's partitions were not registered in Glue (the night is committed all the same)."""

    @property
    def replan(self) -> bool:
        """A resumed run was completed: tonight's own work is still to be planned."""
        return self.summary.resumed

    def to_json(self) -> dict[str, Any]:
        answer = {"summary": self.summary.to_json(), "notification": self.notification.to_json(), "replan": self.replan}
        return {**answer, "partitions_error": self.partitions_error} if self.partitions_error else answer


class Stage(StrEnum):
    """Where a run is in its life: the one vocabulary of a plan answer's `stage` (what it asks of the caller next,
    docs/lambda-contract.md) and of `status` (where a run in progress got to). A plan answer is never `finalizing`
    (finalize is what copying leads to); a run in progress is never `finalized` (a committed run is history)."""

    PLANNING = "planning"
    """Its shards are being listed and planned: plan every shard of `shards` (plan_shard), then seal_plan. Nothing
    is copied yet and nothing is open: if it dies, the next run plans afresh."""
    COPYING = "copying"
    """Its plan is sealed (open-run.json): copy every batch of `batches`, finalize every shard of `final_shards`,
    then finalize."""
    FINALIZING = "finalizing"
    """Every batch reported, or a shard's manifest part is written: the commit is next."""
    FINALIZED = "finalized"
    """Committed: with nothing to copy, the plan answer's `summary` and `notification` are set."""


@dataclass(frozen=True)
class PlanResult:
    """The answer of plan and seal_plan once the plan is sealed; `batches` and `final_shards` locate the lists a
    Distributed Map's ItemReader reads."""

    run: OpenRun
    batches: Mapping[str, str]
    final_shards: Mapping[str, str] | None = None
    finalized: Finalized | None = None
    """Set when the plan finalized the run itself (it had no batches)."""

    @property
    def batch_count(self) -> int:
        return 0 if self.finalized else self.run.batch_count

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.run.dataset,
            "run_id": self.run.run_id,
            "date": self.run.date,
            "stage": Stage.FINALIZED if self.finalized else Stage.COPYING,
            "resumed": self.run.resumed,
            "shard_count": self.run.shard_count,
            "shards": None,
            "batch_count": self.batch_count,
            "planned": self.run.counts.planned,
            "bytes": self.run.counts.planned_bytes,
            "batches": dict(self.batches),
            "final_shards": dict(self.final_shards) if self.final_shards else None,
            "summary": self.finalized.summary.to_json() if self.finalized else None,
            "notification": self.finalized.notification.to_json() if self.finalized else None,
            "replan": bool(self.finalized and self.run.resumed),
        }


@dataclass(frozen=True)
class PlanningResult:
    """The plan step's answer while shards remain to be planned: the same fields as PlanResult (a state machine
    selects them all), with `shards` locating the list of this round's shards."""

    planning: Planning
    shards: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        p = self.planning
        return {
            "dataset": p.dataset,
            "run_id": p.run_id,
            "date": p.date,
            "stage": Stage.PLANNING,
            "resumed": False,
            "shard_count": p.shard_count - p.round_start,
            "shards": dict(self.shards),
            "batch_count": 0,
            "planned": 0,
            "bytes": 0,
            "batches": None,
            "final_shards": None,
            "summary": None,
            "notification": None,
            "replan": False,
        }
