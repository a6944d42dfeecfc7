"""Alarms and a dashboard: what tells an operator a night went wrong, or that a dataset went quiet.

Six kinds of alarm, all reporting to the run topic (ALARM and OK):

- an execution of the state machine failed, timed out or was aborted (its own AWS/States metrics);
- a dataset's run left objects failed (`ObjectsFailed`, from the Lambda's EMF lines: handler/metrics.py);
- **freshness**: no successful run of a dataset (`RunSucceeded`) within the longest gap its schedule allows
  plus the stack's grace. Missing data is breaching: a schedule that stopped firing, a Lambda that cannot
  start, and a run that keeps failing all look alike here, and all are what the alarm is for;
- a schedule's start of an execution failed, was dropped, or was (or could not be) dead-lettered (AWS/Scheduler
  metrics of the stack's own schedule group);
- a dataset's dead-letter queue holds a start that never happened (AWS/SQS), for as long as it holds one;
- a dataset's run met files whose header differs from their table's declared columns (`SchemaDrift`), for a
  dataset whose files are checked (README "Schema contracts").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pulumi
import pulumi_aws as aws

from handler.config import DatasetConfig
from handler.metrics import DIMENSION, FAILED_OBJECTS, METRICS, SCHEMA_DRIFT, SUCCEEDED
from handler.schedules import longest_gap
from handler.schema_check import checked_tables
from infra.component import Component

HOUR = 3600
MAX_ALARM_WINDOW_HOURS = 7 * 24
"""CloudWatch evaluates an alarm over at most seven days (periods x evaluation periods <= 604,800 s)."""

STATE_MACHINE_FAILURES = ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted")
SCHEDULE_FAILURES = (
    "TargetErrorCount",
    "InvocationDroppedCount",
    "InvocationsSentToDeadLetterCount",
    "InvocationsFailedToBeSentToDeadLetterCount",
)
"""AWS/Scheduler metrics of a start that went wrong: StartExecution answered an error (each attempt, retried or not),
the retries ran out (dropped), the start went to the dead-letter queue, or even that failed. Their one dimension is
`ScheduleGroup` (EventBridge Scheduler User Guide, "Monitoring ... with Amazon CloudWatch":
https://docs.aws.amazon.com/scheduler/latest/UserGuide/monitoring-cloudwatch.html), hence the stack's own group."""
QUEUE_DEPTH = "ApproximateNumberOfMessagesVisible"
"""AWS/SQS: messages waiting in a queue, reported while the queue holds any (Amazon SQS Developer Guide, "Available
CloudWatch metrics": https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/
sqs-available-cloudwatch-metrics.html)."""


def freshness_window_hours(dataset: DatasetConfig, grace_hours: int) -> int | None:
    """Hours without a successful run after which the dataset is stale; None when no alarm can say so (a
    one-time or year-limited schedule, or a gap longer than CloudWatch's seven-day window)."""
    gap = longest_gap(dataset.schedule)
    if gap is None:
        return None
    # A zone with daylight saving time makes one gap a year an hour longer.
    dst = timedelta(hours=0 if dataset.timezone in ("UTC", "Etc/UTC") else 1)
    hours = math.ceil((gap + dst).total_seconds() / HOUR) + grace_hours
    return hours if hours <= MAX_ALARM_WINDOW_HOURS else None


def summed_failures(
    namespace: str, metrics: Sequence[str], dimensions: Mapping[str, pulumi.Input[str]], *, label: str
) -> list[aws.cloudwatch.MetricAlarmMetricQueryArgs]:
    """One 5-minute sum of each failure metric and their total as the alarm's value: one alarm for every way a
    service says it failed, so none of them can be left without one."""
    queries = [
        aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id=metric.lower(),
            metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                namespace=namespace, metric_name=metric, dimensions=dict(dimensions), period=300, stat="Sum"
            ),
        )
        for metric in metrics
    ]
    total = aws.cloudwatch.MetricAlarmMetricQueryArgs(
        id="failures",
        expression="SUM([" + ",".join(m.lower() for m in metrics) + "])",
        label=label,
        return_data=True,
    )
    return [*queries, total]


@dataclass
class MonitoringArgs:
    namespace: str
    """The stack's metric namespace (the Lambda's METRICS_NAMESPACE)."""
    datasets: Sequence[DatasetConfig]
    topic_arn: pulumi.Input[str]
    state_machine_arn: pulumi.Input[str]
    function_name: pulumi.Input[str]
    region: pulumi.Input[str]
    freshness_grace_hours: int
    schedule_group_name: pulumi.Input[str] | None = None
    """The group the stack's schedules are in (infra/schedule.py); None: no schedule alarm."""
    dead_letter_queue_names: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Dataset -> its schedule's dead-letter queue."""


class Monitoring(Component):
    """The stack's alarms (wired to the run topic) and its CloudWatch dashboard."""

    execution_failed: aws.cloudwatch.MetricAlarm
    objects_failed: dict[str, aws.cloudwatch.MetricAlarm]
    freshness: dict[str, aws.cloudwatch.MetricAlarm]
    schedule_failed: aws.cloudwatch.MetricAlarm | None
    dead_letters: dict[str, aws.cloudwatch.MetricAlarm]
    dashboard: aws.cloudwatch.Dashboard
    schema_drift: dict[str, aws.cloudwatch.MetricAlarm]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("monitoring:Monitoring", name, opts)
        actions = [args.topic_arn]
        self.execution_failed = aws.cloudwatch.MetricAlarm(
            f"{name}-execution-failed",
            alarm_description="An ingestion execution failed, timed out or was aborted: see its history in "
            "Step Functions; the run stays open and the next execution completes it.",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            evaluation_periods=1,
            treat_missing_data="notBreaching",
            metric_queries=summed_failures(
                "AWS/States",
                STATE_MACHINE_FAILURES,
                {"StateMachineArn": args.state_machine_arn},
                label="executions failed, timed out or aborted",
            ),
            alarm_actions=actions,
            ok_actions=actions,
            opts=self.child,
        )
        self.schedule_failed = None
        if args.schedule_group_name is not None:
            self.schedule_failed = self._schedule_alarm(name, args.schedule_group_name, actions)
        self.dead_letters = {
            dataset: aws.cloudwatch.MetricAlarm(
                f"{name}-{dataset}-dead-letters",
                alarm_description=f"Dataset {dataset}: its schedule could not start an execution, even after an hour "
                "of retries; the start waits in the dead-letter queue (kept 14 days), with the error. Fix the cause, "
                "run the night by hand (docs/deploy.md), then purge the queue.",
                namespace="AWS/SQS",
                metric_name=QUEUE_DEPTH,
                dimensions={"QueueName": queue},
                statistic="Maximum",
                period=300,
                threshold=1,
                evaluation_periods=1,
                comparison_operator="GreaterThanOrEqualToThreshold",
                # SQS reports the depth only while the queue is in use: silence is an empty queue.
                treat_missing_data="notBreaching",
                alarm_actions=actions,
                ok_actions=actions,
                opts=self.child,
            )
            for dataset, queue in args.dead_letter_queue_names.items()
        }
        self.objects_failed = {}
        self.freshness = {}

        def dataset_alarm(suffix: str, ds: DatasetConfig, metric: str, **settings: Any) -> aws.cloudwatch.MetricAlarm:
            """An alarm on one dataset's hourly sum of one of its metrics, reporting to the topic."""
            return aws.cloudwatch.MetricAlarm(
                f"{name}-{ds.name}-{suffix}",
                namespace=args.namespace,
                metric_name=metric,
                dimensions={DIMENSION: ds.name},
                statistic="Sum",
                period=HOUR,
                threshold=1,
                alarm_actions=actions,
                ok_actions=actions,
                opts=self.child,
                **settings,
            )

        for ds in args.datasets:
            self.objects_failed[ds.name] = dataset_alarm(
                "objects-failed",
                ds,
                FAILED_OBJECTS,
                alarm_description=f"Dataset {ds.name}: a run left objects failed. Its summary and manifest "
                "(status = 'failed') say which and why; they are planned again by the next run.",
                evaluation_periods=1,
                comparison_operator="GreaterThanOrEqualToThreshold",
                treat_missing_data="notBreaching",
            )
            window = freshness_window_hours(ds, args.freshness_grace_hours)
            if window is None:
                pulumi.log.warn(
                    f"dataset {ds.name}: no freshness alarm; its schedule {ds.schedule!r} runs once, stops, or "
                    f"leaves more than {MAX_ALARM_WINDOW_HOURS} hours between runs (with the grace), longer "
                    "than a CloudWatch alarm can watch",
                    resource=self,
                )
                continue
            self.freshness[ds.name] = dataset_alarm(
                "freshness",
                ds,
                SUCCEEDED,
                alarm_description=f"Dataset {ds.name}: no successful run in {window} hours (its schedule "
                f"{ds.schedule} plus the grace). Check the schedule, the latest execution and the last run.",
                evaluation_periods=window,
                datapoints_to_alarm=window,
                comparison_operator="LessThanThreshold",
                treat_missing_data="breaching",
            )
        # Schema contracts: only a dataset whose files are checked (a described csv or json table, check_schema on).
        self.schema_drift = {
            ds.name: dataset_alarm(
                "schema-drift",
                ds,
                SCHEMA_DRIFT,
                alarm_description=f"Dataset {ds.name}: a run met files whose header differs from their table's "
                "declared columns. The run summary's schema_drift_files and the manifest's schema_drift say which "
                "and how; each table's on_schema_drift says whether they landed, were quarantined or failed.",
                evaluation_periods=1,
                comparison_operator="GreaterThanOrEqualToThreshold",
                treat_missing_data="notBreaching",
            )
            for ds in args.datasets
            if checked_tables(ds)
        }
        body = pulumi.Output.all(
            args.state_machine_arn, args.function_name, args.region, args.schedule_group_name
        ).apply(lambda values: json.dumps(dashboard_body(args.namespace, [d.name for d in args.datasets], *values)))
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=f"{name}-{pulumi.get_stack()}", dashboard_body=body, opts=self.child
        )
        self.register_outputs({"dashboard_name": self.dashboard.dashboard_name})

    def _schedule_alarm(
        self, name: str, group: pulumi.Input[str], actions: list[pulumi.Input[str]]
    ) -> aws.cloudwatch.MetricAlarm:
        """Any schedule of the stack failed to start an execution, in a 5-minute period."""
        return aws.cloudwatch.MetricAlarm(
            f"{name}-schedule-failed",
            alarm_description="A schedule's start of an ingestion execution failed (retried for up to an hour), was "
            "dropped, or went to the schedule's dead-letter queue: see the AWS/Scheduler metrics of the stack's "
            "schedule group and the queue's message, which names the error.",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            evaluation_periods=1,
            treat_missing_data="notBreaching",
            metric_queries=summed_failures(
                "AWS/Scheduler",
                SCHEDULE_FAILURES,
                {"ScheduleGroup": group},
                label="scheduled starts that failed, were dropped or dead-lettered",
            ),
            alarm_actions=actions,
            ok_actions=actions,
            opts=self.child,
        )

    @property
    def alarms(self) -> list[aws.cloudwatch.MetricAlarm]:
        schedule = [self.schedule_failed] if self.schedule_failed is not None else []
        return [
            self.execution_failed,
            *schedule,
            *self.objects_failed.values(),
            *self.freshness.values(),
            *self.dead_letters.values(),
            *self.schema_drift.values(),
        ]


def dashboard_body(
    namespace: str,
    datasets: Sequence[str],
    state_machine_arn: str,
    function_name: str,
    region: str,
    schedule_group: str | None = None,
) -> dict[str, Any]:
    """One row per dataset (objects, bytes, duration, freshness), then the state machine's, the Lambda's and the
    schedules'."""
    widgets: list[dict[str, Any]] = []

    def graph(title: str, metrics: list[list[Any]], stat: str = "Sum", period: int = HOUR) -> None:
        widgets.append(
            {
                "type": "metric",
                "width": 6,
                "height": 6,
                "properties": {
                    "title": title,
                    "region": region,
                    "metrics": metrics,
                    "stat": stat,
                    "period": period,
                    "view": "timeSeries",
                },
            }
        )

    units = {m.name: m for m in METRICS}
    for ds in datasets:

        def of(metric: str, dataset: str = ds) -> list[Any]:
            assert metric in units, metric
            return [namespace, metric, DIMENSION, dataset]

        graph(f"{ds}: objects", [of("ObjectsCopied"), of("ObjectsSkipped"), of("ObjectsFailed")])
        graph(f"{ds}: bytes copied", [of("BytesCopied")])
        graph(f"{ds}: run duration (s)", [of("RunDurationSeconds")], stat="Maximum")
        graph(f"{ds}: age of newest landed data (s)", [of("NewestDataAgeSeconds")], stat="Maximum")
    graph(
        "state machine executions",
        [
            ["AWS/States", metric, "StateMachineArn", state_machine_arn]
            for metric in ("ExecutionsStarted", "ExecutionsSucceeded", *STATE_MACHINE_FAILURES)
        ],
        period=300,
    )
    graph(
        "function errors and throttles",
        [["AWS/Lambda", metric, "FunctionName", function_name] for metric in ("Invocations", "Errors", "Throttles")],
        period=300,
    )
    graph("function duration (ms)", [["AWS/Lambda", "Duration", "FunctionName", function_name]], "Maximum", 300)
    if schedule_group is not None:
        graph(
            "scheduled starts",
            [
                ["AWS/Scheduler", metric, "ScheduleGroup", schedule_group]
                for metric in ("InvocationAttemptCount", *SCHEDULE_FAILURES)
            ],
            period=300,
        )
    for n, widget in enumerate(widgets):
        widget["x"], widget["y"] = (n % 4) * 6, (n // 4) * 6
    return {"widgets": widgets}
