"""Facts about the machine and the checkout measured, for the report: numbers mean little without them."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import first_line


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def checkout(repo: Path) -> dict[str, str]:
    """The commit of the checkout whose `handler` is measured, and whether its handler/ differs from it."""
    commit = first_line(["git", "-C", str(repo), "rev-parse", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--", "handler"], capture_output=True, text=True
    ).stdout.strip()
    return {"repo": str(repo), "commit": commit, "handler_dirty": "yes" if dirty else "no"}


def facts(repo: Path, rclone: str, s5cmd: str | None) -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "boto3": first_line([sys.executable, "-c", "import boto3; print(boto3.__version__)"]),
        "rclone": first_line([rclone, "version"]),
        "s5cmd": first_line([s5cmd, "version"]) if s5cmd else "(not installed)",
        "niceness": os.nice(0),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        **checkout(repo),
    }
