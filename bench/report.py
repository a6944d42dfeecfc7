"""The Markdown report: one block of tables per server and data set, then the ledger footprint.

The report goes to stdout; bench/RESULTS.md is such a report, from a full `make bench`, kept by hand.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import Sample

FOOTPRINT_ROWS = [
    ("state_bytes", "state parts (compressed)"),
    ("state_uncompressed_bytes", "state, uncompressed"),
    ("sqlite_plan_first_run", "SQLite: first run, plan"),
    ("sqlite_finalize_first_run", "SQLite: finalize (landed table)"),
    ("sqlite_plan_nothing_new", "SQLite: nothing new (state loaded, empty plan)"),
    ("sqlite_plan_all_changed", "SQLite: every key changed (state + full plan)"),
    ("manifest_bytes", "manifest (uncompressed JSONL, as stored)"),
    ("tmp_peak_finalize_first_run", "/tmp at finalize, all temp files"),
    ("tmp_peak", "/tmp, all temp files, highest of any step"),
]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(results: list[dict[str, Any]], feet: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    out = [f"## Results ({meta['when']}, {meta['cpus']} CPUs, {meta['reps']} repetitions, medians)", ""]
    out.append(
        f"Load average before/after: {meta['load_before']} / {meta['load_after']} "
        "(anything near or above the CPU count means other work shared the machine)."
    )
    out.append("")
    if meta.get("quick"):
        out += [
            "Quick run (`--quick`): tiny counts and one repetition, to show every part works; no numbers to quote.",
            "",
        ]
    out.append("Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    out.append("")
    for block in results:
        out += server_block(block)
    if feet:
        out += footprint_block(feet)
    return "\n".join(out)


def server_block(block: dict[str, Any]) -> list[str]:
    data, samples, labels = block["data"], block["samples"], block["labels"]

    def by(tool: str, phase: str) -> list[Sample]:
        return [s for s in samples if s.tool == tool and s.phase == phase]

    def timing(runs: list[Sample], ours: float) -> list[str]:
        med = median([s.seconds for s in runs])
        return [
            f"{med:.2f}",
            f"{min(s.seconds for s in runs):.2f}-{max(s.seconds for s in runs):.2f}",
            f"{data['count'] / med:.0f}",
            f"{med / ours:.2f}",
            f"{median([s.client_cpu for s in runs]):.2f}",
            f"{median([s.server_cpu for s in runs]):.2f}",
        ]

    out = [f"### {block['server']} - {data['description']}", ""]
    ours_copy = median([s.seconds for s in by("ours", "copy")])
    rows = []
    for tool in block["tools"]:
        if runs := by(tool, "copy"):
            note = labels[tool]["concurrency"]
            if tool == "rclone":
                streamed = sum(s.extra.get("streamed_copies", 0) for s in runs)
                note += "; all server-side copies" if not streamed else f"; {streamed} copies streamed via the client"
            rows.append([tool, *timing(runs, ours_copy), note])
    headers = ["tool", "median s", "range s", "objects/s", "time / ours", "client CPU s", "server CPU s", "concurrency"]
    out += ["Full copy into a fresh bucket:", "", table(headers, rows), ""]

    ours_again = median([s.seconds for s in by("ours", "incremental")])
    rows = [
        [labels[tool]["again"], *timing(runs, ours_again)]
        for tool in block["tools"]
        if (runs := by(tool, "incremental"))
    ]
    headers = ["run", "median s", "range s", "keys checked/s", "time / ours", "client CPU s", "server CPU s"]
    out += [
        "Second run over the same target, nothing new (every tool skipped all objects):",
        "",
        table(headers, rows),
        "",
    ]
    if ours_runs := by("ours", "copy"):
        e, n = ours_runs[-1].extra, data["count"]
        named = max(s.extra["tmp_named_peak_bytes"] for s in ours_runs)
        total = max(s.extra["tmp_peak_bytes"] for s in ours_runs)
        state, manifest = e["state_bytes"], e["manifest_bytes"]
        out.append(
            f"Our ledger after the first run: state object {state} bytes ({state / n:.1f} B/key), manifest "
            f"{manifest} bytes ({manifest / n:.0f} B/line). Peak seen in the run's TMPDIR (sampled every 20 ms, so "
            f"a lower bound): SQLite scratch file {named} bytes ({named / n:.0f} B/key), all temp files {total} "
            f"bytes ({total / n:.0f} B/key)."
        )
        out.append("")
    return out


def footprint_block(feet: list[dict[str, Any]]) -> list[str]:
    keys = feet[0]["keys"]
    out = [f"### Ledger footprint at {keys:,} keys (the real engine, generated source, default key template)", ""]
    for foot in feet:
        out.append(
            f"- {foot['shape']} keys, ~{foot['avg_source_key_chars']:.0f} characters, e.g. `{foot['example_key']}`"
        )
    interval_ms = feet[0]["sample_seconds"] * 1000
    out += [
        "",
        "SQLite rows: the files visible in the run's TMPDIR (the scratch DB); /tmp rows add the temp files the "
        f"process holds open unlinked (manifest and state spools). Each sampled every {interval_ms:g} ms during "
        "the step, so a lower bound; state and manifest sizes are the objects in the bucket.",
        "",
    ]
    headers = ["what"] + [f"{f['shape']} keys: bytes/key" for f in feet]
    rows = [
        [label] + [f"{f[field] / f['keys']:.{1 if field == 'state_bytes' else 0}f}" for f in feet]
        for field, label in FOOTPRINT_ROWS
    ]
    out += [table(headers, rows), ""]
    return out
