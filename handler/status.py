"""What `ingest status` and `history` say about a dataset right now: who holds the lock and until when, and how
far a run in progress got. Pure: the ledger reads are in steps/status.py, the clock is passed in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .records import OpenRun, Planning, RunSummary, Stage, Tally

IN_PROGRESS = "in_progress"
"""The `status` a run in progress has in `history`, beside the committed runs' own (`succeeded`, ...)."""


def stamp(epoch: float) -> str:
    """A lock's times (epoch seconds in lock.json) in the ledger's timestamp form."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LockView:
    """The dataset's lock as a person needs it: whose, since when, and how long until anyone may take it over."""

    run_id: str | None
    owner: str | None
    acquired_at: str | None
    expires_at: str | None
    expires_in_seconds: float
    """Negative once expired."""

    @classmethod
    def of(cls, document: Mapping[str, Any], now: float) -> LockView:
        acquired = document.get("acquired_at")
        expires = float(document.get("expires_at") or 0)
        return cls(
            run_id=document.get("run_id"),
            owner=document.get("owner"),
            acquired_at=stamp(float(acquired)) if acquired is not None else None,
            expires_at=stamp(expires) if expires else None,
            expires_in_seconds=round(expires - now, 1),
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockView:
        return cls(
            data.get("run_id"),
            data.get("owner"),
            data.get("acquired_at"),
            data.get("expires_at"),
            float(data.get("expires_in_seconds") or 0),
        )

    @property
    def expired(self) -> bool:
        """An expired lock is taken over by the next run; its holder is dead or paused past its TTL."""
        return self.expires_in_seconds <= 0

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "owner": self.owner,
            "acquired_at": self.acquired_at,
            "expires_at": self.expires_at,
            "expires_in_seconds": self.expires_in_seconds,
            "expired": self.expired,
        }

    def line(self) -> str:
        who = f"run {self.run_id} ({self.owner})"
        if self.expired:
            return (
                f"{who}, expired {-self.expires_in_seconds:.0f}s ago at {self.expires_at}: the next run takes it over"
            )
        return f"{who}, expires in {self.expires_in_seconds:.0f}s at {self.expires_at} unless renewed"


def stage_of(batches_done: int, batch_count: int, shards_finalized: int) -> Stage:
    """Where an open run (sealed plan) is: copying until every batch reported or a shard finalized."""
    if shards_finalized or batches_done >= batch_count:
        return Stage.FINALIZING
    return Stage.COPYING


@dataclass(frozen=True)
class RunningRun:
    """A run in progress and how far it got, from its work files (nothing here is committed yet)."""

    run_id: str
    date: str
    started_at: str
    stage: Stage
    live: bool
    """The lock is this run's and has not expired; else the run was interrupted and the next run completes it
    (planning: plans afresh)."""
    resumed: bool = False
    shards: int = 0
    shards_done: int = 0
    """Shards planned (planning) or finalized (finalizing) so far."""
    batches: int = 0
    batches_done: int = 0
    planned: int = 0
    planned_bytes: int = 0
    tally: Tally = Tally()
    """What the reported batches did: objects copied, skipped, failed, and the bytes copied (a summary's `tally`
    names the same of a committed run, so a `history` row reads either)."""

    @classmethod
    def planning(cls, planning: Planning, shards_done: int, live: bool) -> RunningRun:
        return cls(
            planning.run_id,
            planning.date,
            planning.started_at,
            Stage.PLANNING,
            live,
            shards=planning.shard_count,
            shards_done=shards_done,
        )

    @classmethod
    def sealed(cls, run: OpenRun, batches_done: int, shards_finalized: int, tally: Tally, live: bool) -> RunningRun:
        stage = stage_of(batches_done, run.batch_count, shards_finalized)
        return cls(
            run.run_id,
            run.date,
            run.started_at,
            stage,
            live,
            resumed=run.resumed,
            shards=run.shard_count,
            shards_done=shards_finalized,
            batches=run.batch_count,
            batches_done=batches_done,
            planned=run.counts.planned,
            planned_bytes=run.counts.planned_bytes,
            tally=tally,
        )

    @property
    def status(self) -> str:
        """`in_progress`: where a committed run's summary has how it ended."""
        return IN_PROGRESS

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "date": self.date,
            "status": self.status,
            "stage": self.stage.value,
            "live": self.live,
            "started_at": self.started_at,
            "resumed": self.resumed,
            "shards": self.shards,
            "shards_done": self.shards_done,
            "batches": self.batches,
            "batches_done": self.batches_done,
            "planned": self.planned,
            "planned_bytes": self.planned_bytes,
            "objects_done": self.tally.objects,
            "copied": self.tally.copied,
            "skipped": self.tally.skipped,
            "failed": self.tally.failed,
            "bytes": self.tally.bytes,
            "progress": self.progress(),
        }

    def progress(self) -> str:
        """How far it got, in a few words."""
        if self.stage == Stage.PLANNING:
            text = f"planning: {self.shards_done} of {self.shards} shards planned"
        elif self.stage == Stage.COPYING:
            text = (
                f"copying: {self.batches_done} of {self.batches} batches, {self.tally.objects} of {self.planned} "
                f"objects, {self.tally.bytes} of {self.planned_bytes} bytes"
            )
        else:
            text = f"finalizing: {self.shards_done} of {self.shards} shards written, {self.tally.objects} objects"
        if not self.live:
            later = "plans afresh" if self.stage == Stage.PLANNING else "completes it"
            text += f" (interrupted: no live lock; the next run {later})"
        return text


HistoryEntry = RunningRun | RunSummary
"""A row of `history`: the run in progress, or a committed run's summary. Both name their run, date, status and
what they copied, skipped and failed (`tally`); where a summary names its manifest, a run in progress says how far
it got (`progress()`)."""


@dataclass(frozen=True)
class DatasetStatus:
    """`status`'s answer: the lock, the run in progress, the last committed run (each None when there is none)."""

    dataset: str
    lock: LockView | None
    run: RunningRun | None
    last_run: RunSummary | None

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "lock": _json(self.lock),
            "run": _json(self.run),
            "last_run": _json(self.last_run),
        }


def _json(record: LockView | RunningRun | RunSummary | None) -> dict[str, Any] | None:
    return None if record is None else record.to_json()
