"""`python -m bench.scale`: our tool at 10^5-10^6+ keys on `rclone serve s3` (issue 8, "Measure").

For each key count: seed the files straight into rclone's folder, list them with boto3 and s5cmd for
comparison, then three nights through the real CLI (or, with --steps, through the Lambda steps, one process
per invocation): a first run into an empty raw bucket, a no-op re-run, and a night with 1 % of the files
rewritten and 0.1 % added. Every night's counts are checked against what it must give; a mismatch is reported
at the top of the report and makes the exit code 1. Markdown on stdout, progress on stderr. See docs/SCALE.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import REPO, bench_s3, clean_env, command_line, find_binaries
from bench.scale.machine import facts
from bench.scale.nights import (
    SUMMARY_FIELDS,
    Night,
    cli_command,
    expected,
    ledger_sizes,
    mismatches,
    night_dates,
    run_cli_night,
    write_config,
)
from bench.scale.peers import list_peers
from bench.scale.report import report
from bench.scale.seed import LAYOUTS, PREFIX, Change, Layout, apply_change, change_night, content, write_objects
from bench.scale.server import RcloneServe, start
from bench.scale.steps import StepDriver, per_kind, timed_night

SOURCE, RAW, DATASET = "scale-source", "scale-raw", "scale"
QUICK = {"keys": [2000], "peer_reps": 1}


def _keys(text: str) -> list[int]:
    """`100000,1000000` (underscores and k/M suffixes allowed: `100k,1M`)."""
    out = []
    for word in text.split(","):
        word = word.strip().replace("_", "").lower()
        scale = {"k": 1000, "m": 1_000_000}.get(word[-1:], 1)
        out.append(int(word[:-1] if scale > 1 else word) * scale)
    if any(n < 1 for n in out):
        raise argparse.ArgumentTypeError("key counts must be 1 or more")
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--keys", type=_keys, help="comma list of key counts (default 100000; e.g. 100000,1000000)")
    p.add_argument("--layout", choices=LAYOUTS, default="nested", help="nested folders (default) or one flat folder")
    p.add_argument("--per-folder", type=int, default=500, help="keys per folder in the nested layout (default 500)")
    p.add_argument("--mode", choices=("cli", "steps", "both"), default="cli", help="how each night runs (default cli)")
    p.add_argument("--steps", action="store_const", const="steps", dest="mode", help="the same as --mode steps")
    p.add_argument("--step-workers", type=int, default=2, help="step processes at once, like a Map (default 2)")
    p.add_argument("--peer-reps", type=int, help="repetitions of each lister (default 3; 0 skips them)")
    p.add_argument("--repo", type=Path, default=REPO, help="checkout whose handler/ is measured (default: this one)")
    p.add_argument("--workdir", type=Path, help="where the generated data goes (default: a new folder in /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the generated data and the server's folder")
    p.add_argument("--seed-workers", type=int, default=os.cpu_count() or 2, help="processes writing the files")
    p.add_argument("--json-out", type=Path, help="also write the raw figures as JSON here")
    p.add_argument("--quick", action="store_true", help="smoke run: --keys 2000 --peer-reps 1 unless given")
    return p


def _log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Block:
    """One key count in one mode: its own server, folder and buckets from the start."""

    keys: int
    mode: str
    layout: Layout
    repo: Path
    workdir: Path
    rclone: str
    s5cmd: str | None
    peer_reps: int
    step_workers: int
    seed_workers: int
    keep: bool
    log: Callable[[str], None] = _log

    def run(self) -> dict[str, Any]:
        start_time = time.perf_counter()
        change = change_night(self.keys, self.layout)
        server = start(self.rclone, self.workdir, max_objects=3 * (self.keys + len(change.added)) + 10_000)
        out: dict[str, Any] = {"keys": self.keys, "mode": self.mode, "layout": self.layout.kind, "nights": []}
        out.update(rewritten=len(change.rewritten), added=len(change.added))
        try:
            source = server.bucket_dir(SOURCE)
            server.bucket_dir(RAW)
            self.log(f"{self.keys:,} keys ({self.mode}): seeding {server.folder}")
            seeded = time.perf_counter()
            write_objects(source, self.layout, range(self.keys), workers=self.seed_workers)
            out["seed_s"] = round(time.perf_counter() - seeded, 2)
            out["seed_bytes"] = sum(len(content(n)) for n in range(self.keys))
            self.log(f"  seeded in {out['seed_s']:.1f} s")
            env = clean_env()
            if self.peer_reps:
                self.log("  listers")
                out["peers"] = list_peers(server, self.s5cmd, SOURCE, PREFIX, self.keys, self.peer_reps, env,
                                          self.workdir / "tmp", self.log)  # fmt: skip
            config = write_config(self.workdir / "config.json", DATASET, SOURCE, RAW, PREFIX)
            for night, date in night_dates().items():
                if night == "change":
                    apply_change(source, self.layout, change, workers=self.seed_workers)
                self.log(f"  night {night} ({date})")
                record = self.night(server, night, date, config, env, change)
                out["nights"].append(dataclasses.asdict(record) | {"error": record.measured.get("error")})
                self.log(f"    {record.wall:.1f} s wall, {record.cpu:.1f} s CPU, {record.summary.get('status')}"
                         + (f"; MISMATCH {record.problems}" if record.problems else ""))  # fmt: skip
                if record.measured.get("error"):
                    break  # a broken step leaves the lock held: later nights would measure nothing
        finally:
            server.stop()
            if not self.keep:
                self.log(f"  removing {self.workdir}")
                shutil.rmtree(self.workdir, ignore_errors=True)
        out["elapsed_s"] = round(time.perf_counter() - start_time, 1)
        return out

    def night(
        self, server: RcloneServe, night: str, date: str, config: Path, env: dict[str, str], change: Change
    ) -> Night:
        server.forget()
        before = server.cpu_seconds()
        want = expected(night, self.keys, change)
        tmp = self.workdir / "tmp"
        problems: list[str] = []
        runs: list[dict[str, Any]] = []
        steps: dict[str, dict[str, Any]] = {}
        if self.mode == "cli":
            cmd = cli_command(config, DATASET, server.endpoint, date)
            measured, summary = run_cli_night(cmd, env, self.repo, tmp / f"cli-{night}")
            wall, cpu, rss, tmp_peak = measured.wall, measured.cpu, measured.peak_rss, measured.peak_tmp
            details: dict[str, Any] = measured.figures()
            if measured.returncode != 0:
                problems.append(f"exit code {measured.returncode}: {summary.get('error') or measured.stderr[-300:]}")
        else:
            step_env = dict(env, CONFIG_PATH=str(config), AWS_ENDPOINT_URL=server.endpoint)
            driver = StepDriver(self.repo, step_env, tmp, bench_s3(server.endpoint), self.step_workers, self.log)
            wall, summaries, error = timed_night(driver, DATASET, date)
            summary = summaries[-1] if summaries else {"status": "(no summary)"}
            measures = [r.measured for r in driver.runs]
            cpu = sum(m.cpu for m in measures)
            rss = max((m.peak_rss for m in measures), default=0)
            tmp_peak = max((m.peak_tmp for m in measures), default=0)
            steps, runs = per_kind(driver.runs), [r.record() for r in driver.runs]
            details = {"error": error, "executions": len(summaries)}
            if error:
                problems.append(f"a step failed: {error[:500]}")
        server_cpu = server.cpu_seconds() - before
        details["server_rss_bytes"] = server.rss_bytes()
        problems += mismatches(summary, want)
        kept = {k: summary.get(k) for k in SUMMARY_FIELDS if k in summary}
        ledger = ledger_sizes(bench_s3(server.endpoint), RAW, DATASET, date, summary.get("run_id"))
        return Night(self.keys, self.mode, night, date, round(wall, 3), round(cpu, 3), round(server_cpu, 3), rss,
                     tmp_peak, kept, want, problems, ledger, details, steps, runs)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    keys = args.keys or (QUICK["keys"] if args.quick else [100_000])
    peer_reps = args.peer_reps if args.peer_reps is not None else (QUICK["peer_reps"] if args.quick else 3)
    repo = args.repo.resolve()
    if not (repo / "handler" / "__init__.py").exists():
        sys.exit(f"bench.scale: {repo} has no handler/ package to measure")
    binaries = find_binaries(("rclone", "s5cmd"))
    base = args.workdir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="scale-", dir=base))
    result: dict[str, Any] = {
        "command": command_line("bench.scale", sys.argv[1:]),
        "cwd": os.getcwd(),
        "quick": args.quick,
        "machine": facts(repo, binaries["rclone"], binaries.get("s5cmd")),
        "blocks": [],
    }
    started = time.perf_counter()
    modes = ["cli", "steps"] if args.mode == "both" else [args.mode]
    _log(f"measuring {repo} ({result['machine']['commit'][:12]}) in {workdir}")
    try:
        for n in keys:
            for mode in modes:
                block = Block(n, mode, Layout(args.layout, args.per_folder), repo, workdir / f"n{n}-{mode}",
                              binaries["rclone"], binaries.get("s5cmd"), peer_reps if mode == modes[0] else 0,
                              args.step_workers, args.seed_workers, args.keep)  # fmt: skip
                result["blocks"].append(block.run())
                if args.json_out:  # after each block, so a long run that is stopped keeps what it measured
                    args.json_out.write_text(json.dumps(result, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=1))
    print(report(result), end="")
    bad = any(night["problems"] for b in result["blocks"] for night in b["nights"])
    bad = bad or any(p["problems"] for b in result["blocks"] for p in b.get("peers", {}).values())
    return 1 if bad else 0
