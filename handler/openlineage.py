"""Each run as OpenLineage run events (START at its sealed plan, COMPLETE or FAIL at its commit), kept in the
ledger and, from the CLI, sent to a lineage backend (Marquez, DataHub, OpenMetadata, ...).

Datasets are named the OpenLineage way for S3: namespace `s3://<bucket>`, name the key prefix. A run's id is
derived from the dataset and run id (UUID 5), so the START and the end event of a run, written by different
processes, share it, and sending them twice is harmless: a backend keys events by run id and type.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import __version__
from .config import DatasetConfig
from .errors import LineageDeliveryFailed
from .records import FAILING_STATUSES, OpenRun, Record, RunSummary

PRODUCER = f"https://pypi.org/project/data-file-ingestion/{__version__}"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
JOB_TYPE_SCHEMA = "https://openlineage.io/spec/facets/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
OUTPUT_STATISTICS_SCHEMA = (
    "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json"
    "#/$defs/OutputStatisticsOutputDatasetFacet"
)
ERROR_MESSAGE_SCHEMA = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
RUN_FACET_SCHEMA = f"{PRODUCER}#/facets/ingestionRun"
JOB_NAMESPACE = "data-file-ingestion"
"""The jobs' namespace, unless the CLI is given another (OPENLINEAGE_NAMESPACE, as OpenLineage clients read)."""

START, COMPLETE, FAIL = "START", "COMPLETE", "FAIL"
ENDPOINT = "api/v1/lineage"
"""Where OpenLineage's HTTP transport posts events under the backend's URL (OPENLINEAGE_ENDPOINT overrides)."""


def run_uuid(dataset: str, run_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"data-file-ingestion:{dataset}:{run_id}"))


def _s3_dataset(uri: str) -> dict[str, Any]:
    """`s3://bucket/prefix/` as an OpenLineage dataset: namespace the bucket, name the prefix (`/` for all)."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return {"namespace": f"s3://{bucket}", "name": prefix.rstrip("/") or "/"}


def _facet(schema: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": schema, **fields}


def _event(
    event_type: str, time: str, dataset: str, run_id: str, date: str, source: str, target: str
) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "eventTime": time,
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {
            "runId": run_uuid(dataset, run_id),
            "facets": {"ingestionRun": _facet(RUN_FACET_SCHEMA, runId=run_id, date=date)},
        },
        "job": {
            "namespace": JOB_NAMESPACE,
            "name": dataset,
            "facets": {
                "jobType": _facet(
                    JOB_TYPE_SCHEMA, processingType="BATCH", integration="DATA_FILE_INGESTION", jobType="COPY"
                )
            },
        },
        "inputs": [_s3_dataset(source)],
        "outputs": [_s3_dataset(target)],
    }


def start_event(dataset: DatasetConfig, run: OpenRun) -> dict[str, Any]:
    """The run as it starts copying: its plan is sealed and durable."""
    return _event(START, run.started_at, dataset.name, run.run_id, run.date, dataset.source.uri(), dataset.target.uri())


def end_event(summary: RunSummary) -> dict[str, Any]:
    """COMPLETE for a run that landed everything it planned (or had nothing to), FAIL when objects failed:
    a partial run's output statistics still count what it landed."""
    assert summary.run_id is not None, "only committed runs have events"
    failing = summary.status in FAILING_STATUSES
    event = _event(
        FAIL if failing else COMPLETE,
        summary.finished_at,
        summary.dataset,
        summary.run_id,
        summary.date,
        summary.source,
        summary.target,
    )
    event["run"]["facets"]["ingestionRun"].update(
        status=str(summary.status), manifest=summary.manifest, failed=summary.failed
    )
    if failing:
        event["run"]["facets"]["errorMessage"] = _facet(
            ERROR_MESSAGE_SCHEMA,
            message=f"{summary.failed} object(s) failed to land; the run's manifest lists each with its reason",
            programmingLanguage="python",
        )
    event["outputs"][0]["outputFacets"] = {
        "outputStatistics": _facet(OUTPUT_STATISTICS_SCHEMA, size=summary.bytes, fileCount=summary.copied)
    }
    return event


@dataclass(frozen=True)
class Sent(Record):
    """`send-lineage`'s answer: how many events the backend accepted, and the runs they were of."""

    dataset: str
    sent: int
    runs: tuple[str, ...]

    _WRITTEN = {"runs": list}

    @classmethod
    def of(cls, dataset: str, sent: int, events: Iterable[dict[str, Any]]) -> Sent:
        """`runs` are the ledger's run ids, read from each event's own facet (its `runId` is a UUID of it)."""
        return cls(dataset, sent, tuple(sorted({e["run"]["facets"]["ingestionRun"]["runId"] for e in events})))


def deliver(
    events: Iterable[dict[str, Any]],
    url: str,
    *,
    endpoint: str = ENDPOINT,
    api_key: str | None = None,
    timeout: float = 10.0,
) -> int:
    """POST each event, as OpenLineage's HTTP transport does; returns how many were accepted. The API key (or a
    `user:password@` in the URL) goes in the Authorization header only, never in a message."""
    parts = urllib.parse.urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    target = urllib.parse.urlunsplit(parts._replace(netloc=host)).rstrip("/") + "/" + endpoint.lstrip("/")
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    elif userinfo:
        # https://user:password@host: HTTP basic auth, as a browser or curl would take it.
        plain = urllib.parse.unquote(userinfo).encode("utf-8")
        headers["Authorization"] = "Basic " + base64.b64encode(plain).decode("ascii")
    sent = 0
    for event in events:
        request = urllib.request.Request(target, json.dumps(event).encode("utf-8"), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 (the user's endpoint)
                answer.read()
        except urllib.error.HTTPError as err:
            raise LineageDeliveryFailed(f"{target} answered {err.code} to a {event['eventType']} event") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise LineageDeliveryFailed(f"could not reach {target}: {reason}") from None
        sent += 1
    return sent
