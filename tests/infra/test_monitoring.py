"""Alarms and dashboard under the mocks: each alarm watches a metric the Lambda really emits (names from
handler/metrics.py, the namespace the function is given), reports to the run topic, and the freshness window
follows each dataset's schedule and the stack's grace."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from handler.config import parse_config
from handler.metrics import DIMENSION, METRICS
from infra.monitoring import freshness_window_hours
from infra.stack_config import StackConfig
from tests.infra.harness import Deployment, dev_stack_config, two_dataset_config

Run = Callable[[dict[str, str]], Deployment]
Build = Callable[[StackConfig], Deployment]
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
QUEUE = "aws:sqs/queue:Queue"
NAMESPACE = "data-file-ingestion/test"


def alarms(deployment: Deployment) -> dict[str, dict[str, Any]]:
    return {a.name.removeprefix("ingestion-monitoring-"): a.inputs for a in deployment.of_type(ALARM)}


def dataset(schedule: str, timezone: str = "UTC") -> Any:
    return parse_config(
        {
            "datasets": {
                "d": {
                    "source": {"bucket": "src-bucket"},
                    "target": {"bucket": "raw-bucket"},
                    "schedule": schedule,
                    "timezone": timezone,
                }
            }
        }
    ).dataset("d")


@pytest.mark.parametrize(
    ("schedule", "timezone", "grace", "hours"),
    [
        ("cron(0 20 * * ? *)", "America/Chicago", 3, 24 + 1 + 3),  # a DST zone: one night a year is 25 hours
        ("cron(0 20 * * ? *)", "UTC", 3, 27),
        ("cron(0 20 ? * MON-FRI *)", "UTC", 0, 72),
        ("rate(1 hour)", "UTC", 2, 3),
        ("rate(90 minutes)", "UTC", 0, 2),
        ("cron(0 0 ? * 1 *)", "UTC", 0, 168),  # weekly fits the seven days exactly
        ("cron(0 0 ? * 1 *)", "UTC", 1, None),  # ... one hour of grace more does not
        ("cron(0 0 1 * ? *)", "UTC", 3, None),  # monthly: longer than an alarm can watch
        ("at(2027-01-31T20:00:00)", "UTC", 3, None),
    ],
)
def test_freshness_window_is_the_schedules_longest_gap_plus_grace(schedule, timezone, grace, hours):
    assert freshness_window_hours(dataset(schedule, timezone), grace) == hours


def test_each_dataset_gets_an_objects_failed_and_a_freshness_alarm_and_the_stack_one_for_executions(
    build_pipeline: Build,
) -> None:
    deployment = build_pipeline(two_dataset_config())
    found = alarms(deployment)
    assert sorted(found) == [
        "click_stream-dead-letters",
        "click_stream-freshness",
        "click_stream-objects-failed",
        "execution-failed",
        "orders-dead-letters",
        "orders-freshness",
        "orders-objects-failed",
        "schedule-failed",
    ]
    (topic,) = deployment.of_type("aws:sns/topic:Topic")
    for name, alarm in found.items():
        assert alarm["alarmActions"] == [topic.arn] and alarm["okActions"] == [topic.arn], name


def test_freshness_alarms_fire_on_no_successful_run_and_on_silence(build_pipeline: Build) -> None:
    deployment = build_pipeline(two_dataset_config(freshness_grace_hours=5))
    orders = alarms(deployment)["orders-freshness"]
    # orders: cron(30 2 * * ? *) in Europe/Berlin: 24 hours, one more for DST, 5 of grace.
    assert (orders["namespace"], orders["metricName"], orders["dimensions"]) == (
        NAMESPACE,
        "RunSucceeded",
        {DIMENSION: "orders"},
    )
    assert (orders["statistic"], orders["period"], orders["evaluationPeriods"], orders["datapointsToAlarm"]) == (
        "Sum",
        3600,
        30,
        30,
    )
    assert (orders["comparisonOperator"], orders["threshold"], orders["treatMissingData"]) == (
        "LessThanThreshold",
        1,
        "breaching",
    )
    assert alarms(deployment)["click_stream-freshness"]["evaluationPeriods"] == 24 + 5  # UTC: no DST hour


def test_objects_failed_alarms_on_any_failed_object_and_is_quiet_without_runs(build_pipeline: Build) -> None:
    found = alarms(build_pipeline(two_dataset_config()))["orders-objects-failed"]
    assert (found["metricName"], found["dimensions"], found["statistic"]) == (
        "ObjectsFailed",
        {DIMENSION: "orders"},
        "Sum",
    )
    assert (found["comparisonOperator"], found["threshold"], found["treatMissingData"]) == (
        "GreaterThanOrEqualToThreshold",
        1,
        "notBreaching",
    )


def test_the_execution_alarm_sums_failed_timed_out_and_aborted_executions_of_this_state_machine(
    build_pipeline: Build,
) -> None:
    deployment = build_pipeline(two_dataset_config())
    (machine,) = deployment.of_type("aws:sfn/stateMachine:StateMachine")
    queries = alarms(deployment)["execution-failed"]["metricQueries"]
    metrics = {q["metric"]["metricName"]: q["metric"] for q in queries if "metric" in q}
    assert sorted(metrics) == ["ExecutionsAborted", "ExecutionsFailed", "ExecutionsTimedOut"]
    assert all(
        m["namespace"] == "AWS/States" and m["dimensions"] == {"StateMachineArn": machine.arn} for m in metrics.values()
    )
    (expression,) = [q for q in queries if "expression" in q]
    assert expression["returnData"] is True
    assert sorted(expression["expression"].removeprefix("SUM([").removesuffix("])").split(",")) == sorted(
        q["id"] for q in queries if "metric" in q
    )


def test_every_alarm_watches_a_metric_the_function_emits_in_the_namespace_it_is_given(run_program: Run) -> None:
    deployment = run_program(dev_stack_config())
    (function,) = deployment.of_type("aws:lambda/function:Function")
    namespace = function.inputs["environment"]["variables"]["METRICS_NAMESPACE"]
    assert namespace == deployment.exports["metricsNamespace"] == NAMESPACE
    # The alarms on one metric that is not AWS's own (the dead-letter alarms watch AWS/SQS).
    own = [a for a in alarms(deployment).values() if not a.get("namespace", "AWS/").startswith("AWS/")]
    assert len(own) == 3  # objects failed, freshness, and schema drift (the dev stack describes a table)
    for alarm in own:
        assert alarm["namespace"] == namespace
        assert alarm["metricName"] in {m.name for m in METRICS}
        assert set(alarm["dimensions"]) == {DIMENSION}


def test_a_schedule_no_alarm_can_watch_gets_no_freshness_alarm(build_pipeline: Build) -> None:
    monthly = parse_config(
        {
            "datasets": {
                "monthly": {
                    "source": {"bucket": "partner-export"},
                    "target": {"bucket": "acme-raw"},
                    "schedule": "cron(0 3 1 * ? *)",
                }
            }
        }
    )
    deployment = build_pipeline(two_dataset_config(datasets=monthly))
    assert sorted(alarms(deployment)) == [
        "execution-failed",
        "monthly-dead-letters",
        "monthly-objects-failed",
        "schedule-failed",
    ]


def test_the_schedule_alarm_sums_failed_dropped_and_dead_lettered_starts_of_the_stacks_own_schedule_group(
    build_pipeline: Build,
) -> None:
    deployment = build_pipeline(two_dataset_config())
    (group,) = deployment.of_type("aws:scheduler/scheduleGroup:ScheduleGroup")
    schedules = deployment.of_type("aws:scheduler/schedule:Schedule")
    # Scheduler's metrics have no dimension finer than the group: the group holds this stack's schedules only.
    assert len(schedules) == 2 and {s.inputs["groupName"] for s in schedules} == {group.state["name"]}
    alarm = alarms(deployment)["schedule-failed"]
    queries = alarm["metricQueries"]
    metrics = {q["metric"]["metricName"]: q["metric"] for q in queries if "metric" in q}
    assert sorted(metrics) == [
        "InvocationDroppedCount",
        "InvocationsFailedToBeSentToDeadLetterCount",
        "InvocationsSentToDeadLetterCount",
        "TargetErrorCount",
    ]
    for metric in metrics.values():
        assert metric["namespace"] == "AWS/Scheduler" and metric["dimensions"] == {"ScheduleGroup": group.state["name"]}
        assert metric["stat"] == "Sum" and metric["period"] == 300
    (expression,) = [q for q in queries if "expression" in q]
    assert expression["returnData"] is True
    assert sorted(expression["expression"].removeprefix("SUM([").removesuffix("])").split(",")) == sorted(
        q["id"] for q in queries if "metric" in q
    )
    assert (alarm["threshold"], alarm["comparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["treatMissingData"] == "notBreaching"


def test_each_dead_letter_queue_alarms_while_it_holds_a_message(build_pipeline: Build) -> None:
    deployment = build_pipeline(two_dataset_config())
    queues = {q.name.removeprefix("ingestion-schedules-").removesuffix("-dlq"): q for q in deployment.of_type(QUEUE)}
    assert sorted(queues) == ["click_stream", "orders"]
    found = alarms(deployment)
    for dataset, queue in queues.items():
        alarm = found[f"{dataset}-dead-letters"]
        assert (alarm["namespace"], alarm["metricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
        assert alarm["dimensions"] == {"QueueName": queue.state["name"]}
        assert (alarm["statistic"], alarm["threshold"], alarm["comparisonOperator"]) == (
            "Maximum",
            1,
            "GreaterThanOrEqualToThreshold",
        )
        assert alarm["treatMissingData"] == "notBreaching"


def test_the_dashboard_shows_every_dataset_and_the_state_machine_and_function(build_pipeline: Build) -> None:
    deployment = build_pipeline(two_dataset_config())
    (dashboard,) = deployment.of_type(DASHBOARD)
    (machine,) = deployment.of_type("aws:sfn/stateMachine:StateMachine")
    (function,) = deployment.of_type("aws:lambda/function:Function")
    body = json.loads(dashboard.inputs["dashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    for ds in ("orders", "click_stream"):
        assert f"{ds}: objects" in titles and f"{ds}: age of newest landed data (s)" in titles
    lines = [m for w in body["widgets"] for m in w["properties"]["metrics"]]
    own = [m for m in lines if m[0] == NAMESPACE]
    assert {m[1] for m in own} <= {m.name for m in METRICS}
    assert {m[3] for m in own} == {"orders", "click_stream"}
    assert ["AWS/States", "ExecutionsFailed", "StateMachineArn", machine.arn] in lines
    assert ["AWS/Lambda", "Errors", "FunctionName", function.state["name"]] in lines
    (group,) = deployment.of_type("aws:scheduler/scheduleGroup:ScheduleGroup")
    assert ["AWS/Scheduler", "InvocationDroppedCount", "ScheduleGroup", group.state["name"]] in lines
    positions = [(w["x"], w["y"]) for w in body["widgets"]]
    assert len(positions) == len(set(positions)), "widgets must not overlap"


def test_a_dataset_whose_files_are_checked_gets_a_schema_drift_alarm_and_one_that_turned_it_off_none(
    build_pipeline: Build,
) -> None:
    ratings = {"pattern": "ratings*.csv", "columns": [{"name": "userId", "type": "bigint"}]}

    def described(**fields: Any) -> dict[str, Any]:
        return {"source": {"bucket": "partner-export"}, "tables": {"ratings": ratings}, **fields}

    datasets = {
        "checked": {**described(), "target": {"bucket": "acme-raw", "prefix": "checked/"}},
        "unchecked": {**described(check_schema=False), "target": {"bucket": "acme-raw", "prefix": "off/"}},
        "plain": {"source": {"bucket": "partner-export2"}, "target": {"bucket": "acme-raw", "prefix": "plain/"}},
    }
    config = StackConfig(
        raw_bucket="acme-raw", config_bucket="acme-ingestion-config", datasets=parse_config({"datasets": datasets})
    )
    deployment = build_pipeline(config)
    found = alarms(deployment)
    assert [name for name in found if name.endswith("schema-drift")] == ["checked-schema-drift"]
    alarm = found["checked-schema-drift"]
    assert (alarm["namespace"], alarm["metricName"], alarm["dimensions"], alarm["statistic"]) == (
        NAMESPACE,
        "SchemaDrift",
        {DIMENSION: "checked"},
        "Sum",
    )
    assert (alarm["comparisonOperator"], alarm["threshold"], alarm["treatMissingData"]) == (
        "GreaterThanOrEqualToThreshold",
        1,
        "notBreaching",
    )
    (topic,) = deployment.of_type("aws:sns/topic:Topic")
    assert alarm["alarmActions"] == [topic.arn] and alarm["okActions"] == [topic.arn]
    assert "SchemaDrift" in {m.name for m in METRICS}
