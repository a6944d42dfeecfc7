"""The three nights the harness measures, what each must give, and what the ledger holds after it.

Each night has its own `--date`, as consecutive nights do: a same-date re-run would skip the changed files
("another version landed the same date") and measure something else.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import ledger_listing
from bench.scale.measure import Measured, run_measured
from bench.scale.seed import Change

NIGHTS = ("first", "noop", "change")
NIGHT_TITLES = {"first": "first run (empty raw)", "noop": "no-op re-run", "change": "1 % changed + 0.1 % new"}
SUMMARY_FIELDS = ("status", "listed", "planned", "copied", "skipped", "unchanged", "failed", "bytes", "run_id")


def night_dates(today: Date | None = None) -> dict[str, str]:
    today = today or Date.today()
    return {night: (today - timedelta(days=2 - n)).isoformat() for n, night in enumerate(NIGHTS)}


def expected(night: str, total: int, change: Change) -> dict[str, Any]:
    """The counts a correct run gives on this night (`total` objects before the change night)."""
    if night == "first":
        return {"status": "succeeded", "listed": total, "copied": total, "unchanged": 0, "skipped": 0, "failed": 0}
    if night == "noop":
        return {
            "status": "nothing_new", "listed": total, "copied": 0, "unchanged": total, "skipped": total, "failed": 0
        }  # fmt: skip
    changed, added = len(change.rewritten), len(change.added)
    return {
        "status": "succeeded",
        "listed": total + added,
        "copied": changed + added,
        "unchanged": total - changed,
        "skipped": total - changed,  # a summary's skipped counts the unchanged too
        "failed": 0,
    }


def mismatches(summary: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Every field that is not what the night should give, as `field: got X, expected Y`."""
    return [
        f"{name}: got {summary.get(name, '(missing)')!r}, expected {value!r}"
        for name, value in want.items()
        if summary.get(name) != value
    ]


def ledger_sizes(s3: Any, bucket: str, dataset: str, date: str, run_id: str | None) -> dict[str, int]:
    """Sizes read by listing `_ingestion/<dataset>/`: the whole state prefix (one object today, several parts
    once it is sharded), this run's manifest objects (names starting with its run id) and the ledger total."""
    root, sizes = ledger_listing(s3, bucket, dataset)
    state = [size for key, size in sizes.items() if key.startswith(root + "state/")]
    manifest_dir = f"{root}manifest/date={date}/"
    manifest = [
        size
        for key, size in sizes.items()
        if key.startswith(manifest_dir) and run_id and key[len(manifest_dir) :].startswith(run_id)
    ]
    return {
        "state_bytes": sum(state),
        "state_objects": len(state),
        "manifest_bytes": sum(manifest),
        "manifest_objects": len(manifest),
        "ledger_bytes": sum(sizes.values()),
        "ledger_objects": len(sizes),
    }


@dataclass
class Night:
    """One measured night, in either mode (`cli`: one process; `steps`: one process per Lambda step)."""

    keys: int
    mode: str
    night: str
    date: str
    wall: float
    cpu: float
    server_cpu: float
    peak_rss: int
    peak_tmp: int
    summary: dict[str, Any]
    expected: dict[str, Any]
    problems: list[str]
    ledger: dict[str, int] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    step_runs: list[dict[str, Any]] = field(default_factory=list)


def write_config(path: Path, dataset: str, source: str, target: str, prefix: str) -> Path:
    """The process config of one dataset: every setting at its default, as a user would start."""
    body = {
        "datasets": {
            dataset: {"source": {"bucket": source, "prefix": prefix}, "target": {"bucket": target, "prefix": prefix}}
        }
    }
    path.write_text(json.dumps(body, indent=2))
    return path


def cli_command(config: Path, dataset: str, endpoint: str, date: str) -> list[str]:
    return [
        sys.executable, "-m", "handler", "run", "--config", str(config), "--dataset", dataset,
        "--endpoint-url", endpoint, "--date", date, "--json", "--allow-unprotected",
    ]  # fmt: skip


def run_cli_night(cmd: list[str], env: dict[str, str], repo: Path, tmpdir: Path) -> tuple[Measured, dict[str, Any]]:
    """The whole night through the real CLI, from `repo` (PYTHONPATH decides whose `handler` runs)."""
    measured = run_measured(cmd, dict(env, PYTHONPATH=str(repo)), tmpdir, cwd=repo)
    summary = measured.answer()
    if summary is None:
        summary = {"status": "(no JSON answer)", "error": measured.stderr[-2000:]}
    return measured, summary
