"""The scale harness's Markdown report: machine, command, and per key count the nights, listers and steps."""

from __future__ import annotations

from typing import Any

from bench.common import MIB
from bench.scale.nights import NIGHT_TITLES


def _mib(value: float) -> str:
    return f"{value / MIB:,.1f}"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _night_rows(nights: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for n in nights:
        s, ledger = n["summary"], n["ledger"]
        check = "ok" if not n["problems"] else "**MISMATCH**: " + "; ".join(n["problems"])
        rows.append(
            [
                NIGHT_TITLES.get(n["night"], n["night"]),
                f"{n['wall']:.1f}",
                f"{n['cpu']:.1f}",
                f"{n['server_cpu']:.1f}",
                _mib(n["peak_rss"]),
                _mib(n["peak_tmp"]),
                s.get("copied", "?"),
                s.get("unchanged", "?"),
                s.get("skipped", "?"),
                s.get("failed", "?"),
                check,
                f"{ledger.get('state_bytes', 0):,}",
                ledger.get("state_objects", 0),
                f"{ledger.get('manifest_bytes', 0):,}",
            ]
        )
    return rows


def _steps_rows(night: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            action,
            k["count"],
            f"{k['max_wall_s']:.1f}",
            f"{k['max_cpu_s']:.1f}",
            _mib(k["max_rss_bytes"]),
            _mib(k["max_tmp_bytes"]),
            f"{k['total_wall_s']:.1f}",
            f"{k['total_cpu_s']:.1f}",
        ]
        for action, k in night["steps"].items()
    ]


def _peer_row(name: str, p: dict[str, Any]) -> list[Any]:
    check = "ok" if not p["problems"] else "**" + "; ".join(p["problems"]) + "**"
    return [name, f"{p['keys']:,}", f"{p['wall_s']:.2f}", f"{p['cpu_s']:.2f}", f"{p['server_cpu_s']:.2f}",
            _mib(p["peak_rss_bytes"]), len(p["runs"]), check]  # fmt: skip


def _as_peer(night: dict[str, Any], keys: int) -> dict[str, Any]:
    """Our no-op night in the listers' shape, for the row beside them."""
    return {"keys": keys, "wall_s": night["wall"], "cpu_s": night["cpu"], "server_cpu_s": night["server_cpu"],
            "peak_rss_bytes": night["peak_rss"], "runs": [night], "problems": night["problems"]}  # fmt: skip


def _section(block: dict[str, Any]) -> list[str]:
    keys, mode = block["keys"], block["mode"]
    out = [f"## {keys:,} keys, {block['layout']} layout, {mode} mode", ""]
    out.append(
        f"Seeded {keys:,} files ({block['seed_bytes']:,} bytes) in {block['seed_s']:.1f} s; change night: "
        f"{block['rewritten']:,} rewritten, {block['added']:,} added. This key count took {block['elapsed_s']:.0f} s "
        "in all (seeding, listers, nights, clean-up)."
    )
    out.append("")
    head = ["night", "wall s", "client CPU s", "server CPU s", "peak RSS MiB", "peak /tmp MiB", "copied",
            "unchanged", "skipped", "failed", "check", "state bytes", "state objects", "manifest bytes"]  # fmt: skip
    out += _table(head, _night_rows(block["nights"]))
    out.append("")
    first = next((n for n in block["nights"] if n["night"] == "first"), None)
    if first and keys:
        out.append(
            f"Per key (first run): {first['wall'] * 1000 / keys:.2f} ms wall, {first['cpu'] * 1000 / keys:.2f} ms "
            f"client CPU, {first['peak_tmp'] / keys:,.0f} B peak /tmp, "
            f"{first['ledger'].get('state_bytes', 0) / keys:.1f} B state, "
            f"{first['ledger'].get('manifest_bytes', 0) / keys:.1f} B manifest."
        )
        out.append("")
    if block.get("peers"):
        noop = next((n for n in block["nights"] if n["night"] == "noop"), None)
        rows = [_peer_row(name, p) for name, p in block["peers"].items()]
        if noop:
            rows.append(_peer_row(f"ours, no-op night ({mode})", _as_peer(noop, keys)))
        out.append("Listing the same source prefix (medians; rclone's directory cache dropped before each):")
        out.append("")
        out += _table(
            ["lister", "keys", "wall s", "client CPU s", "server CPU s", "peak RSS MiB", "runs", "check"], rows
        )
        out.append("")
    for night in block["nights"]:
        if night["steps"]:
            out.append(f"Steps of the {NIGHT_TITLES.get(night['night'], night['night'])} (one process each):")
            out.append("")
            head = [
                "step",
                "count",
                "max wall s",
                "max CPU s",
                "max RSS MiB",
                "max /tmp MiB",
                "total wall s",
                "total CPU s",
            ]
            out += _table(head, _steps_rows(night))
            out.append("")
    for night in block["nights"]:
        if night.get("error"):
            out += [f"**{night['night']} night broke:** `{night['error'][:1500]}`", ""]
    return out


def report(result: dict[str, Any]) -> str:
    """The whole report; any mismatch is repeated at the top so nobody quotes a broken run's numbers."""
    out = ["# Scale harness report", ""]
    if result.get("quick"):
        out += ["**A `--quick` smoke run (2,000 keys, one repetition of the listers): numbers not to quote.**", ""]
    problems = [
        f"{b['keys']:,} keys, {b['mode']}, {n['night']}: {p}"
        for b in result["blocks"]
        for n in b["nights"]
        for p in n["problems"]
    ]
    problems += [
        f"{b['keys']:,} keys, {name}: {p}"
        for b in result["blocks"]
        for name, peer in b.get("peers", {}).items()
        for p in peer["problems"]
    ]
    if problems:
        out += ["## MISMATCHES", "", "These runs did not give the counts they should; their figures are suspect:", ""]
        out += [f"- {p}" for p in problems] + [""]
    m = result["machine"]
    out += ["## Machine and command", ""]
    out += _table(["", ""], [[k, str(v).replace("|", "/")] for k, v in m.items()])
    out += ["", "```sh", result["command"], "```", ""]
    out.append(f"Total: {result['elapsed_s']:.0f} s; load average after: {result.get('load_after', '?')}.")
    out.append("")
    for block in result["blocks"]:
        out += _section(block)
    return "\n".join(out).rstrip() + "\n"
