"""The end-of-run message: what people read in their inbox, and what subscribers filter on."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from .errors import NotificationFailed
from .layout import printable
from .records import Notification, RunStatus, RunSummary
from .store import topic

STATUS_WORDS = {
    RunStatus.SUCCEEDED: "succeeded",
    RunStatus.PARTIAL: "partly failed",
    RunStatus.FAILED: "failed",
    RunStatus.NOTHING_NEW: "nothing new",
}
MAX_FAILURES_LISTED = 10


def build_notification(summary: RunSummary) -> Notification:
    """Subject, body and SNS message attributes for a run summary (no secrets: only keys, counts, reasons)."""
    status = STATUS_WORDS.get(summary.status, summary.status)
    subject = f"[ingestion] {summary.dataset} {summary.date}: {status}"
    lines = [
        f"Dataset {summary.dataset}, run {summary.run_id or '(none: the run could not start)'} "
        f"for {summary.date}: {status}.",
        f"Copied {summary.copied} object(s), {summary.bytes} bytes, in {summary.duration_seconds:.1f}s; "
        f"skipped {summary.skipped}, failed {summary.failed}, unchanged {summary.unchanged}.",
        f"From {summary.source} to {summary.target}.",
    ]
    if summary.resumed:
        lines.append("This run was interrupted earlier and has now been completed under its own date.")
    failures = summary.failures
    if failures:
        lines.append(f"First {min(len(failures), MAX_FAILURES_LISTED)} failure(s) of {summary.failed}:")
        lines.extend(f"  - {printable(f.source_key)}: {printable(f.reason)}" for f in failures[:MAX_FAILURES_LISTED])
    lines.extend(_drift_lines(summary))
    if summary.manifest:
        lines.append(f"Manifest: {summary.manifest}")
    lines.append("")
    # The summary as recorded, less its list of manifest parts (one a shard: hundreds on a large first run), which
    # the glob above names, and its drifted files, listed above: SNS and Step Functions both stop at 256 KiB
    # (docs/lambda-contract.md).
    recorded = {
        key: value for key, value in summary.to_json().items() if key not in ("manifest_parts", "schema_drift_files")
    }
    lines.append(json.dumps(recorded, indent=2, ensure_ascii=False))
    return Notification(
        subject=_ascii(subject)[:99],  # SNS: ASCII, fewer than 100 characters
        message="\n".join(lines),
        attributes={
            "dataset": {"DataType": "String", "StringValue": summary.dataset},
            "status": {"DataType": "String", "StringValue": str(summary.status)},
        },
    )


DRIFT_OUTCOMES = {"copied": "landed", "failed": "not landed", "skipped": "skipped"}


def _drift_lines(summary: RunSummary) -> list[str]:
    """The files whose header differed from their table's columns (README "Schema contracts"): how many, and the
    first few with the difference and what their table's policy made of each."""
    if not summary.schema_drift:
        return []
    files = summary.schema_drift_files[:MAX_FAILURES_LISTED]
    lines = [f"Schema drift in {summary.schema_drift} file(s); first {len(files)}:"]
    for drifted in files:
        outcome = DRIFT_OUTCOMES.get(drifted.status, drifted.status)
        if drifted.status == "copied" and drifted.target_key:
            outcome += f" at {drifted.target_key}"
        lines.append(f"  - {printable(drifted.source_key)}: {printable(drifted.drift)} ({printable(outcome)})")
    return lines


def publish(sns: Any, topic_arn: str | None, notification: Notification) -> str | None:
    """Publish if a topic is configured; with none, do nothing (a laptop run needs no topic).

    Publishing happens after the run committed, so its failure must not read as the run's: botocore's errors
    become NotificationFailed (store/topic.py), naming the topic, for the caller to report beside the run's own
    outcome.
    """
    if not topic_arn:
        return None
    return topic.publish(sns, topic_arn, notification.subject, notification.message, notification.attributes)


def publish_all(sns: Any, topic_arn: str | None, summaries: Iterable[RunSummary]) -> None:
    """One message per finalized run, the resumed one first, as a one-shot run reports them.

    Every message is tried even if one fails; then NotificationFailed names what did not go out.
    """
    failed = []
    for summary in summaries:
        try:
            publish(sns, topic_arn, build_notification(summary))
        except NotificationFailed as err:
            failed.append(str(err))
    if failed:
        raise NotificationFailed("; ".join(dict.fromkeys(failed)))


TOPIC_ENV = "SNS_TOPIC_ARN"
"""The stack's topic, which the function's environment names; a dataset's own `topic_arn` comes first."""


def announce(
    summaries: list[RunSummary], topic: str | None, sns: Callable[[], Any], warn: Callable[[str], None]
) -> dict[str, str]:
    """The one policy for telling people about committed runs, wherever they ran: one message a run, to `topic`
    (else the environment's), after the commit. A failure, whatever broke, is handed to `warn` and answered as
    `notification_error`, never as the run's outcome: the runs are committed, and raising now would make a
    caller report (and Lambda retry) runs that succeeded."""
    topic = topic or os.environ.get(TOPIC_ENV)
    if not topic:
        return {}
    try:
        publish_all(sns(), topic, summaries)
    except Exception as err:  # noqa: BLE001 - whatever broke, the committed runs stand
        reason = str(err) if isinstance(err, NotificationFailed) else f"{type(err).__name__}: {err}"
        warn(reason)
        return {"notification_error": reason}
    return {}


def _ascii(text: str) -> str:
    """SNS subjects must be ASCII and printable."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
