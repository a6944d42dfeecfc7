"""What a person reads of an answer (the CLI without --json, which keeps every record as it is): values in words
rather than Python's reprs, and a one-shot run that completed interrupted runs first told as that many runs.

Pure functions of the records; the CLI prints what they return.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .layout import printable
from .notify import STATUS_WORDS
from .records import RunSummary

NOTHING = "-"
"""None, or an empty list: `marker  -`, `manifest_parts  -`."""


def shown(value: Any) -> str:
    """A value of an answer as a person reads it: yes/no, `-` for nothing, a list or a count by reason on one
    line (`unchanged 6, archived 1`); anything nested stays JSON, the one form that shows it whole."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or (isinstance(value, list | tuple | dict) and not value):
        return NOTHING
    if isinstance(value, list | tuple) and all(_flat(item) for item in value):
        return ", ".join(shown(item) for item in value)
    if isinstance(value, Mapping) and all(_flat(item) for item in value.values()):
        return ", ".join(f"{name} {shown(item)}" for name, item in value.items())
    if isinstance(value, list | tuple | Mapping):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def completed_first(summaries: Sequence[RunSummary]) -> list[str]:
    """The lines that open a one-shot run's answer when it completed interrupted runs before its own: one a run,
    each completed run's failures under it, then the run of the date asked for. Without them the answer opens on
    that last run alone, and 26 s of copying read as `nothing_new, copied 0, duration 1.1`. None for one run."""
    if len(summaries) < 2:
        return []
    *completed, last = summaries
    lines = []
    for run in completed:
        lines.append(f"completed interrupted run {run.run_id} for {run.date}: {_outcome(run)}")
        lines.extend(f"  - {printable(f.source_key)}: {printable(f.reason)}" for f in run.failures)
    which = f"run {last.run_id}" if last.run_id else "this run"
    lines.append(f"then {which} for {last.date}: {_outcome(last)}")
    return lines


def _outcome(run: RunSummary) -> str:
    status = STATUS_WORDS.get(run.status, run.status)  # the notification's words: `nothing new`, `partly failed`
    drift = f", schema drift in {run.schema_drift}" if run.schema_drift else ""
    return (
        f"{status}, copied {run.copied} ({run.bytes} bytes), skipped {run.skipped}, failed {run.failed}{drift}, "
        f"in {run.duration_seconds:.1f} s"
    )


def _flat(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
