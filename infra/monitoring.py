"""Alarms and a dashboard: what tells an operator a night went wrong, or that a dataset went quiet.

Three kinds of alarm, all reporting to the run topic (ALARM and OK):

- an execution of the state machine failed, timed out or was aborted (its own AWS/States metrics);
- a dataset's run left objects failed (`ObjectsFailed`, from the Lambda's EMF lines: handler/metrics.py);
- **freshness**: no successful run of a dataset (`RunSucceeded`) within the longest gap its schedule allows
  plus the stack's grace. Missing data is breaching: a schedule that stopped firing, a Lambda that cannot
  start, and a run that keeps failing all look alike here, and all are what the alarm is for.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pulumi
import pulumi_aws as aws

from handler.config import DatasetConfig
from handler.metrics import DIMENSION, FAILED_OBJECTS, METRICS, SUCCEEDED
from handler.schedules import longest_gap

HOUR = 3600
MAX_ALARM_WINDOW_HOURS = 7 * 24
"""CloudWatch evaluates an alarm over at most seven days (periods x evaluation periods <= 604,800 s)."""

STATE_MACHINE_FAILURES = ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted")


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


class Monitoring(pulumi.ComponentResource):
    """The stack's alarms (wired to the run topic) and its CloudWatch dashboard."""

    execution_failed: aws.cloudwatch.MetricAlarm
    objects_failed: dict[str, aws.cloudwatch.MetricAlarm]
    freshness: dict[str, aws.cloudwatch.MetricAlarm]
    dashboard: aws.cloudwatch.Dashboard

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("data-file-ingestion:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        actions = [args.topic_arn]
        self.execution_failed = aws.cloudwatch.MetricAlarm(
            f"{name}-execution-failed",
            alarm_description="An ingestion execution failed, timed out or was aborted: see its history in "
            "Step Functions; the run stays open and the next execution completes it.",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            evaluation_periods=1,
            treat_missing_data="notBreaching",
            metric_queries=[
                *(
                    aws.cloudwatch.MetricAlarmMetricQueryArgs(
                        id=metric.lower(),
                        metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                            namespace="AWS/States",
                            metric_name=metric,
                            dimensions={"StateMachineArn": args.state_machine_arn},
                            period=300,
                            stat="Sum",
                        ),
                    )
                    for metric in STATE_MACHINE_FAILURES
                ),
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="failures",
                    expression="SUM([" + ",".join(m.lower() for m in STATE_MACHINE_FAILURES) + "])",
                    label="executions failed, timed out or aborted",
                    return_data=True,
                ),
            ],
            alarm_actions=actions,
            ok_actions=actions,
            opts=child,
        )
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
                opts=child,
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
        body = pulumi.Output.all(args.state_machine_arn, args.function_name, args.region).apply(
            lambda values: json.dumps(dashboard_body(args.namespace, [d.name for d in args.datasets], *values))
        )
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=f"{name}-{pulumi.get_stack()}", dashboard_body=body, opts=child
        )
        self.register_outputs({"dashboard_name": self.dashboard.dashboard_name})

    @property
    def alarms(self) -> list[aws.cloudwatch.MetricAlarm]:
        return [self.execution_failed, *self.objects_failed.values(), *self.freshness.values()]


def dashboard_body(
    namespace: str, datasets: Sequence[str], state_machine_arn: str, function_name: str, region: str
) -> dict[str, Any]:
    """One row per dataset (objects, bytes, duration, freshness), then the state machine's and the Lambda's."""
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
    for n, widget in enumerate(widgets):
        widget["x"], widget["y"] = (n % 4) * 6, (n // 4) * 6
    return {"widgets": widgets}
