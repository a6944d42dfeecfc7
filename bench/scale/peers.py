"""Listing the same source prefix without our tool: a bare boto3 paginator and `s5cmd ls`, side by side.

Why: a no-op night is mostly listing plus deciding; these two say how much of its time the listing alone takes
(in Python with botocore, and in Go). Each repetition starts with rclone's directory cache dropped, as every
night does, so all of them read the folder the same way.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.scale.measure import run_measured
from bench.scale.server import RcloneServe

BOTO3_LIST = """
import sys, boto3
s3 = boto3.session.Session().client("s3", endpoint_url=sys.argv[1])
count = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2], Prefix=sys.argv[3]):
    count += len(page.get("Contents", ()))
print(count)
"""


def commands(s5cmd: str | None, endpoint: str, bucket: str, prefix: str) -> dict[str, list[str]]:
    found = {"boto3 ListObjectsV2": [sys.executable, "-c", BOTO3_LIST, endpoint, bucket, prefix]}
    if s5cmd:
        found["s5cmd ls"] = [s5cmd, "--endpoint-url", endpoint, "ls", f"s3://{bucket}/{prefix}*"]
    return found


def count_listed(name: str, stdout: str) -> int:
    if name.startswith("boto3"):
        return int(stdout.strip() or -1)
    return sum(1 for line in stdout.splitlines() if line.strip() and " DIR " not in line)


def list_peers(
    server: RcloneServe,
    s5cmd: str | None,
    bucket: str,
    prefix: str,
    expected: int,
    reps: int,
    env: dict[str, str],
    tmp_root: Path,
    log: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Each lister `reps` times; medians of wall, CPU and server CPU, and whether every listing was complete."""
    results: dict[str, dict[str, Any]] = {}
    for name, cmd in commands(s5cmd, server.endpoint, bucket, prefix).items():
        runs = []
        for rep in range(reps):
            server.forget()
            before = server.cpu_seconds()
            measured = run_measured(cmd, env, tmp_root / f"peer-{rep}")
            runs.append({**measured.figures(), "server_cpu_s": round(server.cpu_seconds() - before, 3),
                         "keys": count_listed(name, measured.stdout) if measured.returncode == 0 else -1})  # fmt: skip
            log(f"    {name}: {runs[-1]['wall_s']:.2f} s, {runs[-1]['keys']} keys")
        problems = [f"listed {r['keys']} keys, expected {expected}" for r in runs if r["keys"] != expected]
        results[name] = {
            "runs": runs,
            "wall_s": statistics.median(r["wall_s"] for r in runs),
            "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "server_cpu_s": statistics.median(r["server_cpu_s"] for r in runs),
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
            "keys": expected,
            "problems": problems,
        }
    return results
