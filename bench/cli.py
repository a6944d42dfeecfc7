"""`python -m bench`: the options, what runs on which server, and the report on stdout (progress on stderr);
the rounds themselves are `bench.rounds`."""

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
from bench import footprint, peers, rounds, servers, workloads
from bench.common import REPO, SOURCE_BUCKET, Tool, command_line, find_binaries
from bench.ours import Ours, OursBotocore, OursLineage
from bench.report import document, report
from bench.scale.machine import facts

TOOLS: dict[str, type[Tool]] = {"ours": Ours, "ours-botocore": OursBotocore, **peers.PEERS}
EXTRA_TOOLS: dict[str, type[Tool]] = {"ours-lineage": OursLineage}  # measured only when --tools names them
ALL_TOOLS = {**TOOLS, **EXTRA_TOOLS}
# --quick: a smoke run that shows every part works (a minute or two on 2 cores); its numbers mean little.
QUICK: dict[str, Any] = {
    "reps": 1, "files": 200, "large_files": 10, "noop_keys": 2000, "footprint_keys": 500, "servers": "rclone"
}  # fmt: skip
DEFAULTS: dict[str, Any] = {
    "reps": 3, "files": 20_000, "large_files": 1000, "noop_keys": 300_000, "footprint_keys": 5000,
    "servers": ",".join(servers.SERVERS),
}  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=(bench.__doc__ or "").split("\n\n")[0])
    p.add_argument("--reps", type=int, help=f"timed rounds per server and data set (default {DEFAULTS['reps']})")
    p.add_argument(
        "--files", type=int, help=f"objects of 4 KiB in the small set (default {DEFAULTS['files']:,}; 0 skips)"
    )
    p.add_argument(
        "--large-files",
        type=int,
        help=f"objects of 1 MiB in the large set (default {DEFAULTS['large_files']:,}; 0 skips)",
    )
    p.add_argument(
        "--noop-keys",
        type=int,
        help=f"keys of the no-op night, rclone serve s3 only (default {DEFAULTS['noop_keys']:,}; 0 skips)",
    )
    p.add_argument("--servers", help=f"comma list of {', '.join(servers.SERVERS)} (default both)")
    p.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help=f"comma list of {', '.join(ALL_TOOLS)} (default: all but {', '.join(EXTRA_TOOLS)})",
    )
    p.add_argument("--movielens", type=Path, help="ml-latest-small folder (default: shared/data if present)")
    p.add_argument(
        "--footprint-keys",
        type=int,
        help=f"keys for the ledger footprint (default {DEFAULTS['footprint_keys']}; 0 skips)",
    )
    p.add_argument("--no-request-count", action="store_true", help="skip the extra, untimed round that counts requests")
    p.add_argument("--json-out", type=Path, help="also write the raw samples as JSON here")
    p.add_argument("--markdown-out", type=Path, help="also write the report here, e.g. docs/BENCHMARKS.md")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()) + " unless given",
    )
    return p


def metadata_room(data_sets: list[workloads.DataSet], tools: int, reps: int, noop_keys: int) -> int:
    """Objects rclone must keep metadata for (our lineage), with room to spare: every copy of every round."""
    return sum(d.count for d in data_sets) * tools * (reps + 2) + 2 * noop_keys + 10_000


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, QUICK[name] if args.quick else default)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    wanted_servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if unknown := set(tools) - set(ALL_TOOLS):
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
    binaries = find_binaries(tuple(tools) + (("rclone",) if "rclone" in wanted_servers else ()))

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    meta: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "reps": args.reps,
        "quick": args.quick,
        "command": command_line("bench", sys.argv[1:] if argv is None else argv),
        "cwd": os.getcwd(),
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "versions": peers.versions(binaries),
        "machine": facts(REPO, binaries.get("rclone", "rclone"), binaries.get("s5cmd")),
    }
    data_sets = [d for d in (workloads.movielens(args.movielens),) if d is not None]
    if not data_sets:
        log("bench: MovieLens ml-latest-small not found (pass --movielens DIR); measuring the generated sets only")
    data_sets += [workloads.small(args.files)] if args.files else []
    data_sets += [workloads.large(args.large_files)] if args.large_files else []
    noop = workloads.noop(args.noop_keys) if args.noop_keys else None
    for data in data_sets + ([noop] if noop else []):
        log(f"bench: {data.name}: {data.description}")

    labels = {name: {"concurrency": ALL_TOOLS[name].concurrency, "again": ALL_TOOLS[name].again} for name in tools}
    workdir = Path(tempfile.mkdtemp(prefix="bench-run-"))
    results: list[dict[str, Any]] = []
    running: list[servers.Server] = []
    try:
        room = metadata_room(data_sets, len(tools), args.reps, args.noop_keys)
        for server_name in wanted_servers:
            server = servers.start(server_name, binaries.get("rclone"), room)
            running.append(server)
            log(f"bench: {server.name} at {server.endpoint} ({server.notes})")
            (workdir / server.name).mkdir()
            runners = {name: ALL_TOOLS[name](server, binaries.get(name), workdir / server.name) for name in tools}
            server.s3.create_bucket(Bucket=SOURCE_BUCKET)
            for data in data_sets:
                workloads.seed(server, data)
            for data in data_sets:
                log(f"  {data.name} on {server.name}:")
                block = {"kind": "copy", "server": server.notes, "data": data.summary(), "tools": tools}
                block.update(labels=labels, samples=rounds.copy_rounds(server, data, runners, args.reps, log))
                if not args.no_request_count:
                    block["requests"] = rounds.count_copy_requests(server, data, runners, log)
                results.append(block)
            if noop and server.served:
                results.append(noop_night(server, noop, runners["ours"], binaries, args, log))
            elif noop:
                log(f"  no-op night: skipped on {server.name} (it is seeded straight into rclone's folder)")
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
    text = report(results, feet, meta) + f"\n\n(bench wall time {meta['wall_seconds']:.0f} s)"
    print(text)
    if args.markdown_out:
        args.markdown_out.write_text(document(text, meta))
    if args.json_out:
        raw = {"meta": meta, "footprint": feet, "results": [raw_block(block) for block in results]}
        args.json_out.write_text(json.dumps(raw, indent=1, default=str))
    return 0


def noop_night(
    server: servers.Server,
    data: workloads.DataSet,
    ours: Tool,
    binaries: dict[str, str],
    args: argparse.Namespace,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Seed the no-op set, ingest it once, then the rounds (and the counting round) beside the listers."""
    log(f"  no-op night on {server.name}: seeding {data.count:,} keys into its folder")
    workloads.seed(server, data)
    listers: dict[str, Tool] = {
        cls.name: cls(server, binaries.get(needs), ours.workdir)
        for needs, cls in peers.LISTERS.items()
        if needs == "boto3" or needs in binaries
    }
    target = f"t-{data.short}"
    first, samples = rounds.noop_rounds(server, data, ours, listers, args.reps, target, log)
    labels = {"ours": "ours, no-op re-run", **{name: name for name in listers}}
    block = {"kind": "noop", "server": server.notes, "data": data.summary(), "tools": ["ours", *listers]}
    block.update(labels=labels, samples=samples, first=first)
    if not args.no_request_count:
        block["requests"] = rounds.count_noop_requests(server, data, {"ours": ours, **listers}, target, log)
    server.drop(target)
    return block


def raw_block(block: dict[str, Any]) -> dict[str, Any]:
    """A result block for the JSON output: samples as plain dicts."""
    raw = dict(block, samples=[s.__dict__ for s in block["samples"]])
    if "first" in block:
        raw["first"] = block["first"].__dict__
    return raw
