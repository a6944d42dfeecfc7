"""`python -m bench.scale.model RESULT.json`: the docs/SCALE.md model of a large night in AWS, from the per-key
costs a `bench.scale --mode steps` run measured here and AWS's published limits and prices.

Every input is printed with where it comes from: `measured` (from the JSON), `AWS` (a published limit or
us-east-1 price) or `assumed` (an estimate this model cannot measure offline, e.g. S3's page latency). The
arithmetic is deliberately simple (waves of `map_concurrency` equal invocations), so a reader can redo it.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from handler.width import copy_width

LAMBDA_VCPU_MB = 1769  # AWS: a function gets one full vCPU at 1,769 MB, proportionally less below
PRICE_REQUEST_PUT = 0.005 / 1000  # AWS, S3 Standard: PUT, COPY, POST, LIST per request
PRICE_REQUEST_GET = 0.0004 / 1000  # AWS, S3 Standard: GET, HEAD and others per request
PRICE_GB_SECOND = 0.0000133334  # AWS, Lambda arm64 (the stack's architecture) per GB-second
PRICE_INVOCATION = 0.20 / 1_000_000  # AWS, Lambda per request
PRICE_TRANSITION = 0.025 / 1000  # AWS, Step Functions STANDARD per state transition
S3_WRITES_PER_PREFIX = 3500  # AWS: PUT/COPY/POST/DELETE per second per partitioned prefix, before S3 scales out


@dataclass(frozen=True)
class Costs:
    """Per-key CPU seconds on the measuring machine's cores (`measured`)."""

    plan_first: float
    """A night with changes (1 % here): listing, deciding and storing batches."""
    plan_noop: float
    copy: float
    finalize: float
    overhead: float
    """CPU of one invocation that does almost nothing (seal_plan): imports and clients, paid per invocation."""


@dataclass(frozen=True)
class Night:
    total: int = 100_000_000
    changed: int = 10_000_000
    shard_max_keys: int = 500_000
    batch_max_objects: int = 1000
    concurrency: int = 32
    memory_mb: int = 1024
    map_concurrency: int = 10
    list_page_s: float = 0.1  # assumed: ListObjectsV2 page of 1,000 keys in-region (the issue quotes 50-300 ms)
    copy_s: float = 0.06  # assumed: one small-object CopyObject round trip in-region
    cpu_speed: float = 1.0  # assumed: a Lambda vCPU as fast as one core of the measuring machine
    carry_source_metadata: bool = True  # the dataset's `source_metadata: carry` (the default): a HEAD per copy


def costs_from(result: dict[str, Any]) -> tuple[Costs, int]:
    """Per-key costs from the largest steps-mode block of a bench.scale JSON result.

    Planning and finalizing come from the change night: its shards are the ones a real night has (cut from the
    state), while a first run is cut at the folders it finds, often into shards too small to measure a per-key
    cost. Copying comes from the first run, which copies every object. The per-invocation overhead (imports,
    clients, the lock) is the cheapest invocation seen, and is taken off each step before dividing.
    """
    blocks = [b for b in result["blocks"] if b["mode"] == "steps"]
    if not blocks:
        raise SystemExit("bench.scale.model: the result has no --mode steps block; run bench.scale --mode steps")
    block = max(blocks, key=lambda b: b["keys"])
    nights = {n["night"]: n for n in block["nights"]}
    first, noop, change = nights["first"], nights["noop"], nights["change"]
    overhead = min(run["cpu_s"] for night in block["nights"] for run in night["step_runs"])

    def per_key(night: dict[str, Any], step: str, keys: int) -> float:
        s = night["steps"][step]
        return max(0.0, s["total_cpu_s"] - s["count"] * overhead) / keys

    listed = change["summary"]["listed"]
    costs = Costs(
        plan_first=per_key(change, "plan_shard", listed),
        plan_noop=per_key(noop, "plan_shard", noop["summary"]["listed"]),
        copy=per_key(first, "copy_batch", first["summary"]["copied"]),
        finalize=per_key(change, "finalize_shard", listed),
        overhead=overhead,
    )
    return costs, block["keys"]


def model(costs: Costs, night: Night) -> dict[str, Any]:
    share = min(1.0, night.memory_mb / LAMBDA_VCPU_MB) * night.cpu_speed
    # A part splits into halves past the budget, so parts hold between half and all of it: three quarters on
    # average (the state's parts are what a night's shards are cut from).
    shard_keys = 0.75 * night.shard_max_keys
    shards = math.ceil(night.total / shard_keys)
    batches = math.ceil(night.changed / night.batch_max_objects)
    changed_per_shard = night.changed / shards

    plan_s = shard_keys / 1000 * night.list_page_s + (shard_keys * costs.plan_noop + costs.overhead) / share
    plan_s += changed_per_shard * max(0.0, costs.plan_first - costs.plan_noop) / share
    latency = night.batch_max_objects * night.copy_s / night.concurrency
    batch_cpu = (night.batch_max_objects * costs.copy + costs.overhead) / share
    batch_s = max(latency, batch_cpu)
    finalize_s = (shard_keys * costs.finalize + costs.overhead) / share + 2.0  # assumed: 2 s of part I/O

    waves = lambda count, width=night.map_concurrency: math.ceil(count / width)  # noqa: E731
    floor = night.changed / S3_WRITES_PER_PREFIX  # every copy under one target prefix (a flat dataset)
    # The copy Map runs only as many copy_batch invocations as offer S3's rate for one prefix (handler/width.py,
    # what plan answers the state machine), at most map_concurrency; planning and finalizing run map_concurrency.
    width = copy_width(night.concurrency, night.memory_mb, cap=night.map_concurrency)
    walls = {
        "plan": waves(shards) * plan_s,
        "copy": max(waves(batches, width) * batch_s, floor),
        "finalize": waves(shards) * finalize_s,
    }
    lambda_s = shards * plan_s + batches * batch_s + shards * finalize_s
    invocations = 1 + 2 * shards + batches + 2
    requests_put = night.total / 1000 + night.changed + 4 * shards + 2 * batches  # LIST pages, copies, ledger
    # Ledger reads; the source HEAD `source_metadata: carry` makes before each copy (handler/copier.py; the copy's
    # own answer verifies it, no HEAD after); each invocation's read of its config object.
    source_heads = night.changed if night.carry_source_metadata else 0
    requests_get = 3 * shards + 2 * batches + source_heads + invocations
    transitions = 3 * (2 * shards + batches) + 30  # about three per Map child, a few tens in the parent
    dollars = {
        "S3 requests": requests_put * PRICE_REQUEST_PUT + requests_get * PRICE_REQUEST_GET,
        "Lambda": lambda_s * night.memory_mb / 1024 * PRICE_GB_SECOND + invocations * PRICE_INVOCATION,
        "Step Functions": transitions * PRICE_TRANSITION,
    }
    return {
        "shards": shards,
        "batches": batches,
        "copy_width": width,
        "plan_shard_s": plan_s,
        "copy_batch_s": batch_s,
        "finalize_shard_s": finalize_s,
        "walls": walls,
        "copy_floor_s": floor,
        "wall_s": sum(walls.values()),
        "lambda_s": lambda_s,
        "invocations": invocations,
        "requests": requests_put + requests_get,
        "dollars": dollars,
    }


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:,.1f} min"


def report(costs: Costs, measured_at: int, nights: list[Night]) -> str:
    lines = [
        f"Per-key CPU measured at {measured_at:,} keys (`--mode steps`, one process per step), per-invocation "
        f"overhead {costs.overhead:.2f} s:",
        "",
        "| input | value | source |",
        "| --- | --- | --- |",
        f"| plan_shard CPU per key, night with 1 % changed | {costs.plan_first * 1e6:,.0f} us | measured |",
        f"| plan_shard CPU per key, no-op night | {costs.plan_noop * 1e6:,.0f} us | measured |",
        f"| copy_batch CPU per copied object | {costs.copy * 1e3:,.2f} ms | measured |",
        f"| finalize_shard CPU per key | {costs.finalize * 1e6:,.0f} us | measured |",
        f"| ListObjectsV2 page (1,000 keys) | {nights[0].list_page_s * 1000:.0f} ms | assumed |",
        f"| CopyObject round trip, small object | {nights[0].copy_s * 1000:.0f} ms | assumed |",
        f"| Lambda CPU | memory / {LAMBDA_VCPU_MB} MB of a vCPU, as fast as a core here | AWS; assumed speed |",
        f"| S3 writes per prefix | {S3_WRITES_PER_PREFIX:,}/s (S3 scales out above it) | AWS |",
        "",
        "| setting / result | "
        + " | ".join(f"{n.memory_mb:,} MB, mapConcurrency {n.map_concurrency}" for n in nights)
        + " |",
        "| --- | " + " | ".join("---" for _ in nights) + " |",
    ]
    results = [model(costs, n) for n in nights]
    rows = [
        ("shards / batches", lambda r: f"{r['shards']:,} / {r['batches']:,}"),
        ("copy Map width", lambda r: f"{r['copy_width']:,}"),
        ("one plan_shard", lambda r: f"{r['plan_shard_s']:,.0f} s"),
        ("one copy_batch", lambda r: f"{r['copy_batch_s']:,.1f} s"),
        ("one finalize_shard", lambda r: f"{r['finalize_shard_s']:,.0f} s"),
        ("planning (wall)", lambda r: _minutes(r["walls"]["plan"])),
        ("copying (wall)", lambda r: _minutes(r["walls"]["copy"])),
        ("of which S3's floor, one prefix", lambda r: _minutes(r["copy_floor_s"])),
        ("finalizing (wall)", lambda r: _minutes(r["walls"]["finalize"])),
        ("**night (wall)**", lambda r: f"**{_minutes(r['wall_s'])}**"),
        ("Lambda-seconds", lambda r: f"{r['lambda_s']:,.0f}"),
        ("invocations", lambda r: f"{r['invocations']:,}"),
        ("S3 requests", lambda r: f"{r['requests']:,.0f}"),
        ("cost: S3 requests", lambda r: f"${r['dollars']['S3 requests']:,.2f}"),
        ("cost: Lambda", lambda r: f"${r['dollars']['Lambda']:,.2f}"),
        ("cost: Step Functions", lambda r: f"${r['dollars']['Step Functions']:,.2f}"),
    ]
    for name, cell in rows:
        lines.append(f"| {name} | " + " | ".join(cell(r) for r in results) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale.model", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("result", type=Path, help="a bench.scale --json-out file with a --mode steps block")
    p.add_argument(
        "--settings",
        default="1024:10,1024:40,1769:40,1769:100",
        help="comma list of MEMORY_MB:MAP_CONCURRENCY columns (default 1024:10,1024:40,1769:40,1769:100)",
    )
    args = p.parse_args(argv)
    costs, keys = costs_from(json.loads(args.result.read_text()))
    columns = [tuple(int(x) for x in pair.split(":")) for pair in args.settings.split(",")]
    nights = [replace(Night(), memory_mb=memory, map_concurrency=maps) for memory, maps in columns]
    print(report(costs, keys, nights), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
