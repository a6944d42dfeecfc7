"""`send_lineage`: after a run's commit, deliver the OpenLineage events its ledger holds to the stack's lineage
destination (handler/lineage_destination.py). A delivery that fails is a warning in the answer and the log, never
the night's failure: the run is committed, and its events stay in the ledger for `send-lineage` to send again.
Sending again is harmless: the events are the stored ones, unchanged (an HTTP backend keys them by run id and type,
DataZone by the client token made of the same two)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import Any

from ..errors import LineageDeliveryFailed
from ..lineage_destination import LineageDestination
from ..openlineage import deliver
from ..records import Record
from ..store import lineage as edge
from . import Job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LineageDelivery(Record):
    """The step's answer: where the run's events went, how many were stored and sent, and why not all were."""

    dataset: str
    run_id: str
    destination: str | None
    events: int
    sent: int
    warning: str | None = None


def send_lineage(
    job: Job,
    run_id: str,
    date: str | None,
    destination: LineageDestination | None = None,
    clients: edge.Clients | None = None,
) -> LineageDelivery:
    """Deliver the run's stored events to `destination` (default: the one the stack gave the function), through
    `clients` (default: the edge's own, made when a delivery needs one)."""
    destination = destination or LineageDestination.from_env(os.environ)
    dataset = job.dataset.name
    if destination is None:
        return _warned(LineageDelivery(dataset, run_id, None, 0, 0, "no lineage destination is configured"))
    night = date or job.ledger.run_date(run_id)
    events = job.ledger.lineage_events(night, run_id) if night else []
    answer = LineageDelivery(dataset, run_id, destination.describe(), len(events), 0)
    if not events:
        return _warned(replace(answer, warning=f"run {run_id} has no lineage events in the ledger"))
    try:
        sent = _send(destination, events, clients or edge.aws_client)
    except LineageDeliveryFailed as err:
        return _warned(replace(answer, warning=f"lineage events not delivered: {err}; `send-lineage` sends them again"))
    return replace(answer, sent=sent)


def _send(destination: LineageDestination, events: list[dict[str, Any]], clients: edge.Clients) -> int:
    if destination.datazone_domain:
        return edge.post_to_datazone(clients("datazone"), destination.datazone_domain, events)
    secret = destination.secret
    key = edge.api_key(secret, clients) if secret else None
    return deliver(events, str(destination.url), endpoint=destination.endpoint, api_key=key)


def _warned(answer: LineageDelivery) -> LineageDelivery:
    log.warning("dataset=%s run=%s lineage: %s", answer.dataset, answer.run_id, answer.warning)
    return answer
