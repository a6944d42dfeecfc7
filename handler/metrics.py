"""A committed run as CloudWatch metrics, in Embedded Metric Format: one JSON log line that CloudWatch Logs turns
into metrics, so the Lambda needs no `cloudwatch:PutMetricData` and a run costs no extra request.

The stack's alarms and dashboard read these names (infra/monitoring.py imports them from here), so a metric
cannot be renamed on one side only. Every metric has one dimension, `Dataset`; the namespace is the stack's
(`METRICS_NAMESPACE`), so two stacks in one account never mix their numbers.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .records import FAILING_STATUSES, RunStatus, RunSummary, parse_utc

NAMESPACE_ENV = "METRICS_NAMESPACE"
DIMENSION = "Dataset"


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    value: Callable[[RunSummary, datetime], float | None]
    """The run's value; None leaves the metric out of this run's line."""
    description: str


def _age(summary: RunSummary, now: datetime) -> float | None:
    if summary.last_landed_at is None:
        return None
    return max(0.0, (now - parse_utc(summary.last_landed_at)).total_seconds())


def _succeeded(summary: RunSummary, now: datetime) -> float:
    return 0.0 if summary.status in FAILING_STATUSES or summary.status == RunStatus.DRY_RUN else 1.0


METRICS: tuple[Metric, ...] = (
    Metric("ObjectsCopied", "Count", lambda s, _: s.copied, "objects the run landed"),
    Metric("ObjectsSkipped", "Count", lambda s, _: s.skipped, "objects the run skipped (unchanged ones included)"),
    Metric("ObjectsFailed", "Count", lambda s, _: s.failed, "objects the run could not land (in its manifest)"),
    Metric("BytesCopied", "Bytes", lambda s, _: s.bytes, "bytes the run landed"),
    Metric("RunDurationSeconds", "Seconds", lambda s, _: s.duration_seconds, "from the run's start to its commit"),
    Metric("RunSucceeded", "Count", _succeeded, "1 for a run that ended succeeded or nothing_new, else 0"),
    Metric(
        "NewestDataAgeSeconds",
        "Seconds",
        _age,
        "seconds since the dataset last landed something, as the run saw it at its commit",
    ),
    Metric(
        "SchemaDrift",
        "Count",
        lambda s, _: s.schema_drift or None,
        "files whose header differed from their table's declared columns, whatever their table's policy did; "
        "left out of a run without drift, so a dataset that never drifts costs no custom metric",
    ),
)
SUCCEEDED = "RunSucceeded"
FAILED_OBJECTS = "ObjectsFailed"
SCHEMA_DRIFT = "SchemaDrift"


def emf_document(summary: RunSummary, namespace: str, now: datetime) -> dict[str, Any]:
    """The log line for one committed run: its metrics, plus the run id, date and status as searchable fields."""
    values = {m.name: m.value(summary, now) for m in METRICS}
    present = [m for m in METRICS if values[m.name] is not None]
    return {
        "_aws": {
            "Timestamp": int(now.timestamp() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": [{"Name": m.name, "Unit": m.unit} for m in present],
                }
            ],
        },
        DIMENSION: summary.dataset,
        **{m.name: values[m.name] for m in present},
        "RunId": summary.run_id,
        "RunDate": summary.date,
        "Status": str(summary.status),
    }


def emit(summaries: Iterable[RunSummary], namespace: str, now: datetime, write: Callable[[str], None]) -> None:
    """One line per run, written whole: Lambda sends each stdout line to CloudWatch Logs as one event, and EMF
    needs the event to be exactly the JSON."""
    for summary in summaries:
        write(json.dumps(emf_document(summary, namespace, now), separators=(",", ":")) + "\n")


def emit_committed(summaries: Iterable[RunSummary]) -> None:
    """EMF lines for committed runs on stdout, when the stack named a namespace (a local run has none to write
    to)."""
    namespace = os.environ.get(NAMESPACE_ENV)
    if namespace:
        emit(summaries, namespace, datetime.now(UTC), _stdout)


def _stdout(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()
