"""The Markdown report: the machine and command, one block of tables per server and data set (the no-op night
its own), then the ledger footprint.

The report goes to stdout, and with `--markdown-out PATH` to a file as well (`document`: docs/BENCHMARKS.md).
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import MIB, Sample

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
    rounds = f"{meta['reps']} round{'s' if meta['reps'] != 1 else ''}"
    out = [f"## Results ({meta['when']}, {meta['cpus']} CPUs, {rounds}, medians)", ""]
    machine = meta.get("machine", {})
    if machine:
        out.append(
            f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB, Linux "
            f"{machine['kernel']}, niceness {machine['niceness']}. Commit `{machine['commit'][:12]}` "
            f"(handler/ with uncommitted changes: {machine['handler_dirty']})."
        )
        out.append("")
    if meta.get("command"):
        out += [f"Command: `{meta['command']}` (from `{meta['cwd']}`)", ""]
    out.append(
        f"Load average before/after: {meta['load_before']} / {meta['load_after']} "
        "(anything near or above the CPU count means other work shared the machine)."
    )
    out.append("")
    if meta.get("quick"):
        out += [
            "Quick run (`--quick`): tiny counts and one round, to show every part works; no numbers to quote.",
            "",
        ]
    out.append("Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    out += ["", COLUMNS, ""]
    for block in results:
        out += noop_block(block) if block.get("kind") == "noop" else server_block(block)
    if feet:
        out += footprint_block(feet)
    return "\n".join(out)


COLUMNS = (
    "Columns: `median s` is the wall time of the whole command; `range s` its spread (min-max over the rounds); "
    "`time / ours` the median over rounds of the tool's time divided by ours in the same round (below 1: faster "
    "than ours); `client CPU s` the tool's user+system CPU (its process and children); `server CPU s` the "
    "server process's CPU during the command; `requests/object` all HTTP requests of one run, counted in one "
    "extra, untimed round through a counting proxy, divided by the objects in the set."
)


def document(text: str, meta: dict[str, Any]) -> str:
    """The report as a file of its own (`--markdown-out`, e.g. docs/BENCHMARKS.md)."""
    return (
        "# Benchmarks: our tool beside aws-cli, s5cmd and rclone\n\n"
        f"Written by `{meta.get('command', 'python -m bench')}`; bench/README.md says what each figure measures "
        "and what it does not. Re-run that command rather than editing this file by hand. Timing is never a "
        "pass/fail test: the bench checks only that every tool copied (or listed) every object.\n\n"
        f"{text}\n"
    )


def paired_ratio(runs: list[Sample], baseline: list[Sample]) -> float:
    """Each run's time over ours in the same round, then the median: the rounds share the machine's noise."""
    ours = {s.rep: s.seconds for s in baseline}
    return median([s.seconds / ours[s.rep] for s in runs if s.rep in ours and ours[s.rep] > 0])


def per_object(requests: dict[str, int] | None, count: int) -> str:
    if not requests:
        return "-"
    value = sum(requests.values()) / count
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"  # a listing makes one request per 1,000 keys


def requests_line(block: dict[str, Any], entries: list[tuple[str, str, str]]) -> list[str]:
    """Which requests made up each run's total, by S3 operation (COPY is CopyObject, LIST a listing page);
    `entries` are (tool, phase, label)."""
    parts = []
    for tool, phase, label in entries:
        if ops := block.get("requests", {}).get(tool, {}).get(phase):
            detail = ", ".join(f"{op} {n:,}" for op, n in sorted(ops.items(), key=lambda item: -item[1]))
            parts.append(f"{label} {sum(ops.values()):,} ({detail})")
    return ["Requests in the counting round: " + "; ".join(parts) + ".", ""] if parts else []


def timing(runs: list[Sample], baseline: list[Sample], count: int, requests: dict[str, int] | None) -> list[str]:
    med = median([s.seconds for s in runs])
    return [
        f"{med:.2f}",
        f"{min(s.seconds for s in runs):.2f}-{max(s.seconds for s in runs):.2f}",
        f"{count / med:,.0f}",
        f"{paired_ratio(runs, baseline):.2f}",
        f"{median([s.client_cpu for s in runs]):.2f}",
        f"{median([s.server_cpu for s in runs]):.2f}",
        per_object(requests, count),
    ]


def server_block(block: dict[str, Any]) -> list[str]:
    data, samples, labels = block["data"], block["samples"], block["labels"]
    requests = block.get("requests", {})

    def by(tool: str, phase: str) -> list[Sample]:
        return [s for s in samples if s.tool == tool and s.phase == phase]

    out = [f"### {block['server']} - {data['description']}", ""]
    ours_copy, rows = by("ours", "copy"), []
    for tool in block["tools"]:
        if runs := by(tool, "copy"):
            note = labels[tool]["concurrency"]
            if tool == "rclone":
                streamed = sum(s.extra.get("streamed_copies", 0) for s in runs)
                note += "; all server-side copies" if not streamed else f"; {streamed} copies streamed via the client"
            rows.append([tool, *timing(runs, ours_copy, data["count"], requests.get(tool, {}).get("copy")), note])
    headers = ["tool", "median s", "range s", "objects/s", "time / ours", "client CPU s", "server CPU s"]
    headers += ["requests/object", "concurrency"]
    out += ["Full copy into a fresh bucket:", "", table(headers, rows), ""]
    out += requests_line(block, [(tool, "copy", tool) for tool in block["tools"]])

    ours_again = by("ours", "incremental")
    rows = [
        [labels[tool]["again"], *timing(runs, ours_again, data["count"], requests.get(tool, {}).get("incremental"))]
        for tool in block["tools"]
        if (runs := by(tool, "incremental"))
    ]
    headers = ["run", "median s", "range s", "keys checked/s", "time / ours", "client CPU s", "server CPU s"]
    out += [
        "Second run over the same target, nothing new (every tool skipped all objects):",
        "",
        table([*headers, "requests/key"], rows),
        "",
    ]
    out += requests_line(block, [(tool, "incremental", labels[tool]["again"]) for tool in block["tools"]])
    if ours_runs := by("ours", "copy"):
        e, n = ours_runs[-1].extra, data["count"]
        named = max(s.extra["tmp_named_peak_bytes"] for s in ours_runs)
        total = max(s.extra["tmp_peak_bytes"] for s in ours_runs)
        state, manifest = e["state_bytes"], e["manifest_bytes"]
        out.append(
            f"Our ledger after the first run: state object {state} bytes ({state / n:.1f} B/key), manifest "
            f"{manifest} bytes ({manifest / n:.0f} B/line). Peak seen in the run's TMPDIR (sampled every 20 ms, so "
            f"a lower bound): SQLite scratch file {named} bytes ({named / n:.0f} B/key), all temp files {total} "
            f"bytes ({total / n:.0f} B/key)." + rss_sentence(ours_runs)
        )
        out.append("")
    return out


def rss_sentence(runs: list[Sample]) -> str:
    """Our peak memory over these runs, as TmpWatch sampled it (absent in samples of an older bench)."""
    if not runs or "peak_rss_bytes" not in runs[0].extra:
        return ""
    tree = max(s.extra["peak_rss_bytes"] for s in runs) / MIB
    one = max(s.extra["peak_rss_one_bytes"] for s in runs) / MIB
    return (
        f" Peak RSS, sampled every 20 ms: {tree:.0f} MiB summed over our processes (the CLI and its workers; "
        f"shared pages counted in each), {one:.0f} MiB in the largest one."
    )


def noop_block(block: dict[str, Any]) -> list[str]:
    """The no-op night: our re-run, which lists the prefix and decides every key unchanged, beside listings."""
    data, samples, first = block["data"], block["samples"], block["first"]
    requests = block.get("requests", {})
    ours = [s for s in samples if s.tool == "ours"]
    rows, entries = [], []
    for tool in block["tools"]:
        if runs := [s for s in samples if s.tool == tool]:
            label = block["labels"].get(tool, tool)
            rows.append([label, *timing(runs, ours, data["count"], requests.get(tool, {}).get(runs[0].phase))])
            entries.append((tool, runs[0].phase, label))
    headers = ["run", "median s", "range s", "keys/s", "time / ours", "client CPU s", "server CPU s"]
    return [
        f"### {block['server']} - no-op night: {data['description']}",
        "",
        f"Our first ingest of the {data['count']:,} keys into an empty target, once before the rounds: "
        f"{first.seconds:.1f} s wall, {first.client_cpu:.1f} s client CPU, {first.server_cpu:.1f} s server CPU. "
        "Then, per round, our re-run over that target (nothing new: it lists the prefix, reads its state and "
        "decides every key unchanged) beside bare listings of the same prefix:",
        "",
        table([*headers, "requests/key"], rows),
        "",
        *requests_line(block, entries),
        *(
            [f"Memory, first ingest:{rss_sentence([first])} No-op re-runs:{rss_sentence(ours)}", ""]
            if rss_sentence([first]) and rss_sentence(ours)
            else []
        ),
    ]


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
