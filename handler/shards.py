"""Key ranges: how a dataset's keys are cut into shards that plan, and keep their state, independently.

A shard is a range of source keys `start_after < key <= end_at` (None: open), compared as Python strings,
whose order (code points) is S3's listing order (UTF-8 bytes). Ranges rather than hashes because a range is
what ListObjectsV2 can list on its own (`StartAfter`, stop past `end_at`): a shard's plan lists only its keys
and reads only its state part, so no step touches the whole dataset.

The committed state is an index of ranges, each with its part (`StateIndex`). A run cuts its own shards from
it (`run_shards`): small neighbours are planned together and merged into one part, and the first run of an
unknown dataset is cut at the folders a delimiter listing finds. A shard that grows past `shard_max_keys` is
split into halves when its part is written (`split_sizes`), and a plan that lists more than that many keys
stops and hands the rest of its range on as a new shard, so no invocation's work depends on the dataset's
size. Nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BATCH_STRIDE = 10_000_000
"""Batch numbers are `shard * BATCH_STRIDE + n`, unique across shards planned in parallel without coordination.
Shard 0's batches are 0, 1, 2, ... as before shards existed, so a run planned by an older version resumes."""

MAX_DISCOVERED_SHARDS = 256
"""A first run cuts at most this many shards from the folders it finds; later nights split by size."""


def in_range(key: str, start_after: str | None, end_at: str | None) -> bool:
    return (start_after is None or key > start_after) and (end_at is None or key <= end_at)


def batch_number(shard: int, n: int) -> int:
    if not 0 <= n < BATCH_STRIDE:
        raise ValueError(f"shard {shard} would plan more than {BATCH_STRIDE} batches")
    return shard * BATCH_STRIDE + n


def shard_of_batch(number: int) -> int:
    return number // BATCH_STRIDE


@dataclass(frozen=True)
class StatePart:
    """One committed range of the state and the object that holds its keys (None: no keys)."""

    start_after: str | None
    part: str | None
    keys: int
    """Keys in the part; -1 when not known (a state written before parts existed)."""

    def to_json(self) -> dict[str, Any]:
        return {"start_after": self.start_after, "part": self.part, "keys": self.keys}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatePart:
        return cls(data.get("start_after"), data.get("part"), int(data.get("keys", -1)))


@dataclass(frozen=True)
class StateIndex:
    """The committed state: ranges in key order, the first open below, each running up to the next one's start."""

    parts: tuple[StatePart, ...]
    run_id: str | None = None
    """The run that committed it."""
    replaced: tuple[str, ...] = ()
    """Parts of the index before it that it no longer names: deleted once its run is committed."""

    FORMAT = 2

    @classmethod
    def empty(cls) -> StateIndex:
        return cls((StatePart(None, None, 0),))

    @property
    def keys(self) -> int:
        return sum(max(p.keys, 0) for p in self.parts)

    def ranges(self) -> list[tuple[StatePart, str | None]]:
        """Each part with the end of its range."""
        ends = [p.start_after for p in self.parts[1:]] + [None]
        return list(zip(self.parts, ends, strict=True))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.FORMAT,
            "run_id": self.run_id,
            "parts": [p.to_json() for p in self.parts],
            "replaced": list(self.replaced),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StateIndex:
        parts = tuple(StatePart.from_json(p) for p in data.get("parts") or ())
        return cls(parts or cls.empty().parts, data.get("run_id"), tuple(data.get("replaced") or ()))

    def same_parts(self, other: StateIndex) -> bool:
        return [(p.start_after, p.part) for p in self.parts] == [(p.start_after, p.part) for p in other.parts]

    @classmethod
    def of(cls, pieces: Iterable[StatePart], run_id: str, before: StateIndex) -> StateIndex:
        """The index a commit writes from every shard's pieces: sorted, with keyless ranges folded into the range
        before them (which holds no key of theirs either, so its part stays right), the first range open."""
        ordered = sorted(pieces, key=lambda p: (p.start_after is not None, p.start_after or ""))
        kept = [p for p in ordered if p.keys != 0] or list(cls.empty().parts)
        kept[0] = StatePart(None, kept[0].part, kept[0].keys)
        named = {p.part for p in kept if p.part}
        replaced = tuple(p.part for p in before.parts if p.part and p.part not in named)
        return cls(tuple(kept), run_id, replaced)


@dataclass(frozen=True)
class RunShard:
    """One shard of a run: a key range, the committed parts that hold its state, and its first batch number."""

    shard: int
    start_after: str | None
    end_at: str | None
    parts: tuple[str, ...]
    rewrite: bool
    """The parts hold keys outside this range, or several parts: the shard's state is written anew even when
    nothing in it changed, so the next index has one part per range."""

    def to_json(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "start_after": self.start_after,
            "end_at": self.end_at,
            "parts": list(self.parts),
            "rewrite": self.rewrite,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunShard:
        return cls(
            int(data["shard"]),
            data.get("start_after"),
            data.get("end_at"),
            tuple(data.get("parts") or ()),
            bool(data.get("rewrite")),
        )

    def rest_after(self, last_key: str, shard: int) -> RunShard:
        """What a plan that stopped at `last_key` hands on: the rest of the range, the same parts."""
        return RunShard(shard, last_key, self.end_at, self.parts, True)


def run_shards(index: StateIndex, shard_max_keys: int, discovered: Sequence[str] = ()) -> list[RunShard]:
    """Cut a run's shards from the committed index.

    Neighbouring parts whose keys together stay under half of `shard_max_keys` are planned as one shard (so a
    dataset that shrank, or a first run cut at many small folders, merges back). `discovered` boundaries (used
    when nothing is known yet) cut further.
    """
    groups: list[list[tuple[StatePart, str | None]]] = []
    budget = shard_max_keys // 2
    for part, end in index.ranges():
        last = groups[-1] if groups else None
        if (
            last is not None
            and part.keys >= 0
            and all(p.keys >= 0 for p, _ in last)
            and sum(p.keys for p, _ in last) + part.keys <= budget
        ):
            last.append((part, end))
        else:
            groups.append([(part, end)])
    shards: list[RunShard] = []
    for group in groups:
        start, end = group[0][0].start_after, group[-1][1]
        parts = tuple(p.part for p, _ in group if p.part)
        cuts = [b for b in discovered if in_range(b, start, end) and b != end]
        bounds = [start, *cuts, end]
        for low, high in zip(bounds, bounds[1:], strict=False):
            shards.append(RunShard(len(shards), low, high, parts, len(parts) > 1 or len(bounds) > 2))
    return shards


def boundaries_from_prefixes(prefixes: Iterable[str], limit: int = MAX_DISCOVERED_SHARDS) -> list[str]:
    """Cut points from the folders a delimiter listing found: each folder's keys start after its name without
    the slash (`data/2024/` holds keys > `data/2024`). Thinned evenly to `limit` shards."""
    cuts = sorted({p[:-1] if p.endswith("/") else p for p in prefixes})
    return boundaries_from_keys(cuts[1:], limit)  # the first folder starts the first shard, which is open below


def boundaries_from_keys(cuts: Iterable[str], limit: int = MAX_DISCOVERED_SHARDS) -> list[str]:
    """Cut points (each ends a shard, inclusive), sorted and thinned evenly to at most `limit` shards."""
    cuts = sorted(set(cuts))
    if len(cuts) >= limit:
        step = len(cuts) / (limit - 1)
        cuts = [cuts[math.floor(i * step)] for i in range(limit - 1)]
    return cuts


def split_sizes(keys: int, shard_max_keys: int) -> list[int]:
    """How many keys each piece of a shard's new part holds: one piece up to `shard_max_keys`, else pieces of
    about half of it, so a split shard has room to grow before it splits again."""
    if keys <= shard_max_keys:
        return [keys]
    pieces = math.ceil(keys / max(shard_max_keys // 2, 1))
    size, extra = divmod(keys, pieces)
    return [size + (1 if i < extra else 0) for i in range(pieces)]
