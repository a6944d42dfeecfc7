"""Each run as OpenLineage run events (START at its sealed plan, COMPLETE or FAIL at its commit), kept in the
ledger and sent to a lineage backend (Marquez, DataHub, OpenMetadata, Amazon DataZone, ...): by the CLI, or by the
state machine's `send_lineage` step after the commit (steps/send_lineage.py).

Datasets are named the OpenLineage way for S3: namespace `s3://<bucket>`, name the key prefix. A run's id is
derived from the dataset and run id (UUID 5), so the START and the end event of a run, written by different
processes, share it, and sending them twice is harmless: a backend keys events by run id and type.
"""

from __future__ import annotations

import base64
import json
import re
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
JOB_TYPE_SCHEMA = "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
OUTPUT_STATISTICS_SCHEMA = (
    "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json"
    "#/$defs/OutputStatisticsOutputDatasetFacet"
)
ERROR_MESSAGE_SCHEMA = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
PARENT_SCHEMA = "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet"
NOMINAL_TIME_SCHEMA = "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet"
SCHEMA_FACET_SCHEMA = "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"

FACET_HOME = "https://data-file-ingestion.github.io/openlineage"
"""Where the project publishes docs/openlineage/ (its repository's pages): a custom facet's `_schemaURL` is this,
then the schema file's path under docs/openlineage/, then the JSON pointer to its definition. The facet's version
is in the path, as in OpenLineage's own URLs (`.../spec/facets/1-0-1/...`): a changed facet is a new file under a
new version and a published one never changes, which is what the spec asks of a custom facet's URL (immutable,
canonical, one per version). The shipped file's `$id` is that URL; tests hold the two together."""
RUN_FACET = "dataFileIngestion_run"
"""The run as the ledger records it. The spec's key for a custom facet: `{prefix}_{name}`, both camelCase, the
prefix the project's name; its schema is `{prefix}{name}{entity}Facet`, so `DataFileIngestionRunRunFacet`."""
RUN_FACET_SCHEMA = f"{FACET_HOME}/facets/1-0-0/DataFileIngestionRunRunFacet.json#/$defs/DataFileIngestionRunRunFacet"
LEGACY_RUN_FACET = "ingestionRun"
"""The same facet in events stored by earlier versions (a key the spec's naming rule does not allow); still read."""
JOB_NAMESPACE = "data-file-ingestion"
"""The jobs' namespace, unless the CLI is given another (OPENLINEAGE_NAMESPACE, as OpenLineage clients read)."""

START, COMPLETE, FAIL = "START", "COMPLETE", "FAIL"
ENDPOINT = "api/v1/lineage"
"""Where OpenLineage's HTTP transport posts events under the backend's URL (OPENLINEAGE_ENDPOINT overrides)."""


def run_uuid(dataset: str, run_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"data-file-ingestion:{dataset}:{run_id}"))


_EXECUTION_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):states:(?P<where>[a-z0-9-]+:\d{12}):execution:(?P<machine>[^:]+):.+"
)


def parent_facet(execution: str | None) -> dict[str, Any] | None:
    """The Step Functions execution that runs this run, as its parent run: the state machine is the parent job (in
    our jobs' namespace, named by its ARN, unique across accounts and regions), the execution its run, with a UUID
    derived from the execution's ARN (a redriven execution keeps its ARN, so its events keep their parent). None
    for anything else: a CLI run, or a one-shot Lambda invocation (`lambda-request:...`), has no parent run."""
    found = _EXECUTION_ARN.fullmatch(execution or "")
    if found is None:
        return None
    machine = f"arn:{found['partition']}:states:{found['where']}:stateMachine:{found['machine']}"
    return _facet(
        PARENT_SCHEMA,
        run={"runId": str(uuid.uuid5(uuid.NAMESPACE_URL, str(execution)))},
        job={"namespace": JOB_NAMESPACE, "name": machine},
    )


def run_facet_of(event: dict[str, Any]) -> dict[str, Any]:
    """The event's own facet of the run, whichever key it was stored under."""
    facets = event["run"]["facets"]
    return facets.get(RUN_FACET) or facets[LEGACY_RUN_FACET]


def _s3_dataset(uri: str) -> dict[str, Any]:
    """`s3://bucket/prefix/` as an OpenLineage dataset: namespace the bucket, name the prefix (`/` for all)."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return {"namespace": f"s3://{bucket}", "name": prefix.rstrip("/") or "/"}


def _facet(schema: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": schema, **fields}


def _table_outputs(dataset: DatasetConfig | None) -> list[dict[str, Any]]:
    """One output dataset per described table, where its files land, with its declared columns in file order."""
    if dataset is None:
        return []
    bucket = dataset.target.bucket
    return [
        {
            "namespace": f"s3://{bucket}",
            "name": dataset.table_folder(table).rstrip("/") or "/",
            "facets": {
                "schema": _facet(
                    SCHEMA_FACET_SCHEMA,
                    fields=[
                        {
                            "name": column.name,
                            "type": column.type,
                            **({"description": column.comment} if column.comment else {}),
                            "ordinal_position": position,
                        }
                        for position, column in enumerate(table.columns, start=1)
                    ],
                )
            },
        }
        for table in dataset.tables or ()
        if table.described
    ]


def _event(
    event_type: str,
    time: str,
    dataset: str,
    run_id: str,
    date: str,
    source: str,
    target: str,
    *,
    config: DatasetConfig | None = None,
    execution: str | None = None,
    scheduled_time: str | None = None,
) -> dict[str, Any]:
    run_facets: dict[str, Any] = {RUN_FACET: _facet(RUN_FACET_SCHEMA, runId=run_id, date=date)}
    parent = parent_facet(execution)
    if parent is not None:
        run_facets["parent"] = parent
    if scheduled_time:
        run_facets["nominalTime"] = _facet(NOMINAL_TIME_SCHEMA, nominalStartTime=scheduled_time)
    return {
        "eventType": event_type,
        "eventTime": time,
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run_uuid(dataset, run_id), "facets": run_facets},
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
        "outputs": [_s3_dataset(target), *_table_outputs(config)],
    }


def start_event(dataset: DatasetConfig, run: OpenRun, execution: str | None = None) -> dict[str, Any]:
    """The run as it starts copying: its plan is sealed and durable. `execution`: the Step Functions execution
    sealing it (the parent run), if any."""
    return _event(
        START,
        run.started_at,
        dataset.name,
        run.run_id,
        run.date,
        dataset.source.uri(),
        dataset.target.uri(),
        config=dataset,
        execution=execution,
        scheduled_time=run.scheduled_time,
    )


def end_event(
    summary: RunSummary,
    dataset: DatasetConfig | None = None,
    run: OpenRun | None = None,
    execution: str | None = None,
) -> dict[str, Any]:
    """COMPLETE for a run that landed everything it planned (or had nothing to), FAIL when objects failed:
    a partial run's output statistics still count what it landed. `dataset` gives the described tables' outputs,
    `run` (the open run committed) its scheduled night, `execution` the execution committing it (the parent)."""
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
        config=dataset,
        execution=execution,
        scheduled_time=run.scheduled_time if run is not None else None,
    )
    event["run"]["facets"][RUN_FACET].update(
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
        return cls(dataset, sent, tuple(sorted({run_facet_of(e)["runId"] for e in events})))


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
