"""`python -m bench`: the options, the measurement plan, and the report on stdout (progress on stderr)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench
from bench import footprint, peers, servers, workloads
from bench.common import SOURCE_BUCKET, Sample, Tool, drop_bucket
from bench.ours import Ours
from bench.report import report

TOOLS: dict[str, type[Tool]] = {"ours": Ours, **peers.PEERS}
# --quick: a smoke run that shows every part works (about a minute); its numbers mean little.
QUICK = {"reps": 1, "files": 100, "footprint_keys": 500}
DEFAULTS = {"reps": 3, "files": 1000, "footprint_keys": 5000}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=(bench.__doc__ or "").split("\n\n")[0])
    p.add_argument("--reps", type=int, help=f"repetitions per tool and data set (default {DEFAULTS['reps']})")
    p.add_argument("--files", type=int, help=f"files in the generated many-small set (default {DEFAULTS['files']})")
    p.add_argument("--servers", default=",".join(servers.SERVERS), help="comma list of moto, rclone (default both)")
    p.add_argument("--tools", default=",".join(TOOLS), help=f"comma list of {', '.join(TOOLS)} (default all)")
    p.add_argument("--movielens", type=Path, help="ml-latest-small folder (default: shared/data if present)")
    p.add_argument(
        "--footprint-keys",
        type=int,
        help=f"keys for the ledger footprint (default {DEFAULTS['footprint_keys']}; 0 skips)",
    )
    p.add_argument("--json-out", type=Path, help="also write the raw samples as JSON here")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()) + " unless given",
    )
    return p


def measure(
    server: servers.Server, data: workloads.DataSet, tools: dict[str, Tool], reps: int, log: Callable[[str], None]
) -> list[Sample]:
    """Per repetition: every tool's full copy into its own fresh bucket, then every tool's second run."""
    samples: list[Sample] = []
    names = list(tools)
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]  # rotate: nobody always goes first
        targets = {name: f"t-{data.short}-{name}-{rep}" for name in order}
        line = []
        for name in order:
            server.s3.create_bucket(Bucket=targets[name])
            sample = tools[name].run(data, targets[name], incremental=False)
            samples.append(sample)
            line.append(f"{name} {sample.seconds:.2f}s")
        for name in order:
            sample = tools[name].run(data, targets[name], incremental=True)
            samples.append(sample)
            line.append(f"{name}(again) {sample.seconds:.2f}s")
        for target in targets.values():
            drop_bucket(server.s3, target)
        log(f"    rep {rep + 1}/{reps}: " + ", ".join(line))
    return samples


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, QUICK[name] if args.quick else default)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    wanted_servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if unknown := set(tools) - set(TOOLS):
        p.error(f"unknown tools: {', '.join(sorted(unknown))}")
    if unknown := set(wanted_servers) - set(servers.SERVERS):
        p.error(f"unknown servers: {', '.join(sorted(unknown))}")
    if "ours" not in tools:
        p.error("ratios are against our tool: keep 'ours' in --tools")
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
    except ImportError:
        sys.exit("bench: boto3 and moto come from requirements.txt: run `make bench` (or `make test` once) first")
    binaries = peers.find_binaries(tuple(tools) + (("rclone",) if "rclone" in wanted_servers else ()))

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    meta: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "reps": args.reps,
        "quick": args.quick,
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "versions": peers.versions(binaries),
    }
    data_sets = [d for d in (workloads.movielens(args.movielens), workloads.many_small(args.files)) if d is not None]
    if len(data_sets) == 1:
        log("bench: MovieLens ml-latest-small not found (pass --movielens DIR); measuring the generated set only")
    for data in data_sets:
        log(f"bench: {data.name}: {data.description}")

    labels = {name: {"concurrency": TOOLS[name].concurrency, "again": TOOLS[name].again} for name in tools}
    workdir = Path(tempfile.mkdtemp(prefix="bench-run-"))
    results: list[dict[str, Any]] = []
    running: list[servers.Server] = []
    try:
        for server_name in wanted_servers:
            server = servers.start(server_name, binaries.get("rclone"))
            running.append(server)
            log(f"bench: {server.name} at {server.endpoint} ({server.notes})")
            (workdir / server.name).mkdir()
            runners = {name: TOOLS[name](server, binaries.get(name), workdir / server.name) for name in tools}
            server.s3.create_bucket(Bucket=SOURCE_BUCKET)
            for data in data_sets:
                workloads.seed(server.s3, data)
            for data in data_sets:
                log(f"  {data.name} on {server.name}:")
                samples = measure(server, data, runners, args.reps, log)
                results.append(
                    {
                        "server": server.notes,
                        "data": data.summary(),
                        "tools": tools,
                        "labels": labels,
                        "samples": samples,
                    }
                )
            server.stop()
            running.remove(server)
        feet = []
        if args.footprint_keys:
            log("  ledger footprint (the real engine, one process per key shape):")
            feet = [footprint.footprint(args.footprint_keys, shape, log) for shape in footprint.KEY_SHAPES]
    finally:
        for server in running:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    meta["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    meta["wall_seconds"] = round(time.monotonic() - started, 1)
    print(report(results, feet, meta))
    print(f"\n(bench wall time {meta['wall_seconds']:.0f} s)")
    if args.json_out:
        raw = {
            "meta": meta,
            "footprint": feet,
            "results": [dict(block, samples=[s.__dict__ for s in block["samples"]]) for block in results],
        }
        args.json_out.write_text(json.dumps(raw, indent=1, default=str))
    return 0
