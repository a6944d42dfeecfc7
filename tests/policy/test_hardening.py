"""policy/hardening.py's rules against the graphs the program builds: each violation is reported by name.

Most of what these rules ask is built by issue 23's other parts (access logging, reserved concurrency,
schedule dead-letter queues, aws:SourceArn on trust policies, `protect`). Until those are merged the shipped
stacks fail those rules: the tests that say the stacks pass them are marked `xfail(strict=True)` with that
reason, so they turn into failures (XPASS) the moment the stacks do pass, and the marks must then go.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
from pulumi.runtime.proto import analyzer_pb2

from tests.infra.harness import ACCOUNT, REGION
from tests.policy.conftest import STACKS, Build
from tests.policy.engine import PACK_DIR, Graph, GraphMocks, Node, PolicyEngine, Violation

BUCKET = "aws:s3/bucket:Bucket"
LOGGING = "aws:s3/bucketLoggingV2:BucketLoggingV2"
TRAIL = "aws:cloudtrail/trail:Trail"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
QUEUE = "aws:sqs/queue:Queue"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
KMS_KEY = "aws:kms/key:Key"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
RAW_OBJECTS = "arn:aws:s3:::acme-raw/"
DLQ_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:ingestion-schedules-dlq"

HARDENING = (
    "s3-access-logged",
    "cloudwatch-log-retention",
    "cloudwatch-log-groups-one-key",
    "lambda-reserved-concurrency",
    "scheduler-dead-letter-and-retry",
    "scheduler-failures-alarmed",
    "iam-service-trust-source-scoped",
    "data-protected",
    "required-tags",
)
AFTER_MERGE = {
    "s3-access-logged": "access logging of every bucket into a log bucket",
    "lambda-reserved-concurrency": "reserved concurrency by default",
    "scheduler-dead-letter-and-retry": "dead-letter queue per schedule",
    "scheduler-failures-alarmed": "alarm on each schedule's dead-letter queue",
    "iam-service-trust-source-scoped": "aws:SourceArn on the trust policies",
    "data-protected": "protect on buckets and keys unless disposable",
}
"""Rules the stacks of main fail today, and the part of issue 23 that makes them pass."""

DISPOSABLE = json.loads((PACK_DIR / "disposable.json").read_text())
STACK_CONFIG = {"dev": DISPOSABLE, "two-datasets": {}, "two-datasets-kms": {}}
"""The policy config each stack is previewed with: dev is the one meant to be thrown away."""


@contextmanager
def configured(pack: PolicyEngine, config: dict[str, dict[str, Any]]) -> Iterator[PolicyEngine]:
    """The pack with a policy config for one test (the pack process is shared: it is reset after)."""
    pack.configure(config)
    try:
        yield pack
    finally:
        pack.configure({})


def of(policy: str, violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.policy == policy]


def node(typ: str, name: str, inputs: dict[str, Any], **property_dependencies: Node) -> Node:
    """A resource added to a graph by hand, depending on other nodes through the named properties."""
    deps = {prop: [n.urn] for prop, n in property_dependencies.items()}
    return Node(
        urn=f"urn:pulumi:test::data-file-ingestion::{typ}::{name}",
        typ=typ,
        name=name,
        parent="",
        dependencies=tuple(urn for urns in deps.values() for urn in urns),
        property_dependencies=deps,
        inputs=inputs,
        outputs=inputs,
    )


def changed(graph: Graph, name: str, **inputs: Any) -> Graph:
    old = graph.named(name)
    return graph.replaced(old, old.with_inputs(**inputs))


# --- the pack ------------------------------------------------------------------------------------------------


def test_the_shipped_disposable_config_turns_off_exactly_data_protected() -> None:
    assert DISPOSABLE == {"data-protected": {"disposable": True}}


def test_the_hardening_rules_are_in_the_pack_mandatory_and_two_take_config(pack: PolicyEngine) -> None:
    policies = {p.name: p for p in pack.info().policies if p.name in HARDENING}
    assert set(policies) == set(HARDENING)
    assert {analyzer_pb2.EnforcementLevel.Name(p.enforcementLevel) for p in policies.values()} == {"MANDATORY"}
    configurable = {name for name, p in policies.items() if p.configSchema.properties}
    assert configurable == {"data-protected", "required-tags"}


# --- the shipped stacks ---------------------------------------------------------------------------------------


def _shipped_cases() -> Iterator[Any]:
    for which in STACKS:
        for rule in HARDENING:
            after = AFTER_MERGE.get(rule)
            if rule == "data-protected" and which == "dev":
                after = None  # dev is disposable: passes today
            reason = f"passes once issue 23's {after} is merged"
            marks = [pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)] if after else []
            yield pytest.param(which, rule, marks=marks, id=f"{which}-{rule}")


@pytest.mark.parametrize("which, rule", list(_shipped_cases()))
def test_every_stack_the_project_builds_passes_each_rule(
    build: Build, pack: PolicyEngine, which: str, rule: str
) -> None:
    graph = build(which)
    with configured(pack, STACK_CONFIG[which]):
        assert of(rule, pack.preview(graph)) == []


# --- access logging ----------------------------------------------------------------------------------------------


def test_every_bucket_without_access_logging_is_reported_by_name(build: Build, pack: PolicyEngine) -> None:
    graph = build("two-datasets")
    buckets = graph.of_type(BUCKET)

    violations = of("s3-access-logged", pack.analyze_stack(graph.nodes))

    assert sorted(v.urn for v in violations) == sorted(b.urn for b in buckets)
    raw = graph.named("ingestion-raw-bucket")
    (message,) = [v.message for v in violations if v.urn == raw.urn]
    assert "bucket acme-raw (ingestion-raw-bucket) has no access logging: add an aws.s3.BucketLogging" in message


def with_log_bucket(graph: Graph, logged: list[str]) -> tuple[Graph, Node]:
    """The graph plus a log bucket and a BucketLogging into it for each named bucket (by dependency only)."""
    log_bucket = node(BUCKET, "ingestion-access-logs-bucket", {"bucket": "acme-access-logs"})
    nodes = [*graph.nodes, log_bucket]
    for name in logged:
        bucket = graph.named(name)
        inputs = {"bucket": "unknown-in-preview", "targetBucket": "unknown-too", "targetPrefix": f"{name}/"}
        nodes.append(node(LOGGING, f"{name}-logging", inputs, bucket=bucket, targetBucket=log_bucket))
    return Graph(nodes), log_bucket


def test_a_logged_bucket_passes_and_the_log_bucket_itself_is_exempt(build: Build, pack: PolicyEngine) -> None:
    graph, log_bucket = with_log_bucket(build("two-datasets"), ["ingestion-raw-bucket"])

    violations = of("s3-access-logged", pack.analyze_stack(graph.nodes))

    assert [v.urn for v in violations] == [graph.named("ingestion-config-bucket-bucket").urn]
    assert log_bucket.urn not in {v.urn for v in violations}


@pytest.mark.parametrize(
    "selectors, every_bucket",
    [
        (
            {
                "eventSelectors": [
                    {"dataResources": [{"type": "AWS::S3::Object", "values": ["arn:aws:s3:::acme-raw/"]}]}
                ]
            },
            False,
        ),
        ({"eventSelectors": [{"dataResources": [{"type": "AWS::S3::Object", "values": ["arn:aws:s3"]}]}]}, True),
        (
            {
                "advancedEventSelectors": [
                    {
                        "fieldSelectors": [
                            {"field": "eventCategory", "equals": ["Data"]},
                            {"field": "resources.type", "equals": ["AWS::S3::Object"]},
                            {"field": "resources.ARN", "startsWith": [RAW_OBJECTS]},
                        ]
                    }
                ]
            },
            False,
        ),
    ],
    ids=["basic-bucket", "basic-every-bucket", "advanced-bucket"],
)
def test_s3_data_events_in_a_trail_count_as_access_logging(
    build: Build, pack: PolicyEngine, selectors: dict[str, Any], every_bucket: bool
) -> None:
    graph = build("two-datasets")
    trail = node(TRAIL, "ingestion-trail", {"s3BucketName": "acme-trail", **selectors})

    violations = of("s3-access-logged", pack.analyze_stack([*graph.nodes, trail]))

    assert graph.named("ingestion-raw-bucket").urn not in {v.urn for v in violations}
    assert (graph.named("ingestion-config-bucket-bucket").urn not in {v.urn for v in violations}) is every_bucket


def test_a_trail_logging_only_part_of_a_bucket_does_not_count(build: Build, pack: PolicyEngine) -> None:
    graph = build("two-datasets")
    values = ["arn:aws:s3:::acme-raw/orders/", "arn:aws:s3:::acme-raw-other/"]
    selectors = {"eventSelectors": [{"dataResources": [{"type": "AWS::S3::Object", "values": values}]}]}
    trail = node(TRAIL, "ingestion-trail", {"s3BucketName": "acme-trail", **selectors})

    violations = of("s3-access-logged", pack.analyze_stack([*graph.nodes, trail]))

    assert graph.named("ingestion-raw-bucket").urn in {v.urn for v in violations}


# --- log groups ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("days", [None, 0])
def test_a_log_group_that_keeps_events_forever_is_reported(build: Build, pack: PolicyEngine, days: int | None) -> None:
    graph = changed(build("dev"), "ingestion-lambda-logs", retentionInDays=days)

    (violation,) = of("cloudwatch-log-retention", pack.preview(graph))

    assert violation.urn == graph.named("ingestion-lambda-logs").urn
    assert f"LogGroup ingestion-lambda-logs: retentionInDays is {days!r}: set retention_in_days" in violation.message


def test_when_one_log_group_has_a_kms_key_every_log_group_needs_one(build: Build, pack: PolicyEngine) -> None:
    graph = changed(build("dev"), "ingestion-workflow-logs", kmsKeyId=KEY_ARN)

    (violation,) = of("cloudwatch-log-groups-one-key", pack.analyze_stack(graph.nodes))

    lambda_logs = graph.named("ingestion-lambda-logs")
    assert violation.urn == lambda_logs.urn
    assert f"log group {lambda_logs.inputs['name']} (ingestion-lambda-logs) has no kmsKeyId while log group" in (
        violation.message
    )
    both = changed(graph, "ingestion-lambda-logs", kmsKeyId=KEY_ARN)
    assert of("cloudwatch-log-groups-one-key", pack.analyze_stack(both.nodes)) == []


# --- Lambda and schedules -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reserved, shown", [(None, "unset"), (-1, "-1 (unreserved)"), (0, "0")])
def test_a_function_without_reserved_concurrency_is_reported(
    build: Build, pack: PolicyEngine, reserved: int | None, shown: str
) -> None:
    graph = changed(build("dev"), "ingestion-lambda-function", reservedConcurrentExecutions=reserved)

    (violation,) = of("lambda-reserved-concurrency", pack.preview(graph))

    assert violation.urn == graph.named("ingestion-lambda-function").urn
    assert f"Function ingestion-lambda-function: reservedConcurrentExecutions is {shown}: reserve" in (
        violation.message
    )


def test_a_function_with_reserved_concurrency_passes(build: Build, pack: PolicyEngine) -> None:
    graph = changed(build("dev"), "ingestion-lambda-function", reservedConcurrentExecutions=20)
    assert of("lambda-reserved-concurrency", pack.preview(graph)) == []


def schedule_target(graph: Graph, name: str, **changes: Any) -> Graph:
    schedule = graph.named(name)
    target = {**schedule.inputs["target"], **changes}
    return graph.replaced(schedule, schedule.with_inputs(target={k: v for k, v in target.items() if v is not None}))


def test_a_schedule_without_a_dead_letter_queue_is_reported(build: Build, pack: PolicyEngine) -> None:
    graph = build("dev")
    schedule = graph.named("ingestion-schedules-movielens")
    assert schedule.inputs["target"]["retryPolicy"]  # main already retries: only the queue is missing

    (violation,) = of("scheduler-dead-letter-and-retry", pack.preview(graph))

    assert violation.urn == schedule.urn
    assert "Schedule ingestion-schedules-movielens: target has no deadLetterConfig.arn" in violation.message


def test_a_schedule_with_a_dead_letter_queue_but_no_retry_policy_is_reported(build: Build, pack: PolicyEngine) -> None:
    name = "ingestion-schedules-movielens"
    with_dlq = schedule_target(build("dev"), name, deadLetterConfig={"arn": DLQ_ARN})
    assert of("scheduler-dead-letter-and-retry", pack.preview(with_dlq)) == []

    (violation,) = of(
        "scheduler-dead-letter-and-retry", pack.preview(schedule_target(with_dlq, name, retryPolicy=None))
    )

    assert "Schedule ingestion-schedules-movielens: target has no retryPolicy" in violation.message


def with_dead_letter_queue(graph: Graph, schedule_name: str) -> tuple[Graph, Node]:
    """The graph with an SQS queue that the schedule's target names as its dead-letter queue (by dependency)."""
    queue = node(QUEUE, "ingestion-schedules-dlq", {"name": "ingestion-schedules-dlq-7f3a2c1", "arn": DLQ_ARN})
    schedule = graph.named(schedule_name)
    target = {**schedule.inputs["target"], "deadLetterConfig": {"arn": DLQ_ARN}}
    deps = {**schedule.property_dependencies, "target": [*schedule.property_dependencies.get("target", ()), queue.urn]}
    changed_schedule = replace(schedule.with_inputs(target=target), property_dependencies=deps)
    return Graph([*graph.replaced(schedule, changed_schedule).nodes, queue]), queue


def alarm(name: str, actions: list[str], queue: Node | None = None, **inputs: Any) -> Node:
    deps = {"dimensions": queue} if queue is not None else {}
    return node(ALARM, name, {"alarmActions": actions, **inputs}, **deps)


def test_a_schedule_whose_failures_raise_no_alarm_is_reported(build: Build, pack: PolicyEngine) -> None:
    graph = build("two-datasets")
    schedules = graph.of_type("aws:scheduler/schedule:Schedule")

    violations = of("scheduler-failures-alarmed", pack.analyze_stack(graph.nodes))

    assert sorted(v.urn for v in violations) == sorted(s.urn for s in schedules)
    assert any(
        "schedule ingestion-schedules-orders has no alarm on its failed invocations" in v.message for v in violations
    )


def test_an_alarm_with_actions_on_the_dead_letter_queue_covers_its_schedule(build: Build, pack: PolicyEngine) -> None:
    graph, queue = with_dead_letter_queue(build("dev"), "ingestion-schedules-movielens")
    topic = graph.of_type("aws:sns/topic:Topic")[0].outputs["arn"]
    dims = {"namespace": "AWS/SQS", "metricName": "ApproximateNumberOfMessagesVisible"}
    by_dependency = alarm("dlq-alarm", [topic], queue, dimensions={"QueueName": "unknown-in-preview"}, **dims)
    by_name = alarm("dlq-alarm", [topic], dimensions={"QueueName": "ingestion-schedules-dlq-7f3a2c1"}, **dims)
    silent = alarm("dlq-alarm", [], queue, dimensions={"QueueName": "ingestion-schedules-dlq-7f3a2c1"}, **dims)
    other_queue = alarm("dlq-alarm", [topic], dimensions={"QueueName": "another-queue"}, **dims)

    def violations(extra: Node) -> list[Violation]:
        return of("scheduler-failures-alarmed", pack.analyze_stack([*graph.nodes, extra]))

    assert violations(by_dependency) == []
    assert violations(by_name) == []
    assert [v.urn for v in violations(silent)] == [graph.named("ingestion-schedules-movielens").urn]
    assert len(violations(other_queue)) == 1


def test_an_alarm_on_the_scheduler_metrics_covers_every_schedule(build: Build, pack: PolicyEngine) -> None:
    graph = build("two-datasets")
    scheduler = alarm("scheduler-failed", ["arn:aws:sns:eu-west-1:123456789012:t"], namespace="AWS/Scheduler")
    assert of("scheduler-failures-alarmed", pack.analyze_stack([*graph.nodes, scheduler])) == []


# --- trust policies --------------------------------------------------------------------------------------------------


def trust(graph: Graph, role: str, condition: dict[str, Any] | None) -> Graph:
    node = graph.named(role)
    document = json.loads(node.inputs["assumeRolePolicy"])
    document["Statement"][0]["Condition"] = condition
    if condition is None:
        del document["Statement"][0]["Condition"]
    return graph.replaced(node, node.with_inputs(assumeRolePolicy=json.dumps(document)))


def test_service_roles_without_source_arn_are_reported_by_name(build: Build, pack: PolicyEngine) -> None:
    graph = build("dev")

    violations = of("iam-service-trust-source-scoped", pack.preview(graph))

    by_urn = {v.urn: v.message for v in violations}
    assert set(by_urn) == {graph.named("ingestion-workflow-role").urn, graph.named("ingestion-schedules-role").urn}
    assert (
        "Role ingestion-workflow-role: trust statement #0 lets states.amazonaws.com assume the role without a "
        "condition on aws:SourceArn" in by_urn[graph.named("ingestion-workflow-role").urn]
    )
    assert "lets scheduler.amazonaws.com" in by_urn[graph.named("ingestion-schedules-role").urn]


def test_a_trust_policy_with_neither_key_names_both(build: Build, pack: PolicyEngine) -> None:
    graph = trust(build("dev"), "ingestion-schedules-role", None)

    (violation,) = [v for v in of("iam-service-trust-source-scoped", pack.preview(graph)) if "schedules" in v.message]

    assert "without a condition on aws:SourceAccount, aws:SourceArn" in violation.message


def test_a_trust_policy_with_both_keys_passes_and_the_lambda_role_is_not_asked(
    build: Build, pack: PolicyEngine
) -> None:
    scoped = {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/ingestion-*"},
    }
    graph = trust(trust(build("dev"), "ingestion-schedules-role", scoped), "ingestion-workflow-role", scoped)
    assert (
        "Condition" not in json.loads(graph.named("ingestion-lambda-role").inputs["assumeRolePolicy"])["Statement"][0]
    )

    assert of("iam-service-trust-source-scoped", pack.preview(graph)) == []


# --- protection ------------------------------------------------------------------------------------------------------


def test_unprotected_buckets_and_keys_are_reported_unless_the_stack_is_disposable(
    build: Build, pack: PolicyEngine
) -> None:
    graph = build("dev")  # its topic key is the stack's one KMS key
    held = [n for n in graph.nodes if n.typ in (BUCKET, KMS_KEY)]
    assert {n.typ for n in held} == {BUCKET, KMS_KEY}

    violations = of("data-protected", pack.preview(graph))

    assert sorted(v.urn for v in violations) == sorted(n.urn for n in held)
    raw = graph.named("ingestion-raw-bucket")
    assert any(
        v.urn == raw.urn and "bucket ingestion-raw-bucket is not protected: set protect=True" in v.message
        for v in violations
    )
    with configured(pack, DISPOSABLE):
        assert of("data-protected", pack.preview(graph)) == []
    with configured(pack, {"data-protected": {"disposable": False}}):
        assert len(of("data-protected", pack.preview(graph))) == len(held)


def test_protect_in_resource_options_reaches_the_pack(mocks: GraphMocks, pack: PolicyEngine) -> None:
    """`protect=True` as a component would set it travels from the registration to the rule."""

    @pulumi.runtime.test
    def program() -> None:
        aws.s3.Bucket("kept", bucket="acme-kept", opts=pulumi.ResourceOptions(protect=True))
        aws.s3.Bucket("loose", bucket="acme-loose")

    program()
    graph = Graph(mocks.nodes())

    assert (graph.named("kept").protect, graph.named("loose").protect) == (True, False)
    (violation,) = of("data-protected", pack.preview(graph))
    assert violation.urn == graph.named("loose").urn


def test_protected_buckets_and_keys_pass(build: Build, pack: PolicyEngine) -> None:
    graph = build("dev")
    protected = Graph([n.protected() if n.typ in (BUCKET, KMS_KEY) else n for n in graph.nodes])
    assert of("data-protected", pack.preview(protected)) == []

    raw = protected.named("ingestion-raw-bucket")
    (violation,) = of("data-protected", pack.preview(protected.replaced(raw, raw.protected(False))))
    assert violation.urn == raw.urn


# --- tags ------------------------------------------------------------------------------------------------------------


TAG_KEYS = ["owner", "cost-centre", "data-classification"]


def test_without_a_config_no_tag_is_required(build: Build, pack: PolicyEngine) -> None:
    assert of("required-tags", pack.preview(build("dev"))) == []


def test_a_taggable_resource_without_the_required_tags_is_reported(build: Build, pack: PolicyEngine) -> None:
    graph = build("dev")
    raw = graph.named("ingestion-raw-bucket")
    tagged = raw.with_inputs(tags={"owner": "data-eng", "cost-centre": "42"})

    with configured(pack, {"required-tags": {"keys": TAG_KEYS}}):
        violations = of("required-tags", pack.preview(graph))
        (partly,) = of("required-tags", pack.analyze(tagged))
        complete = pack.analyze(raw.with_inputs(tags=dict.fromkeys(TAG_KEYS, "x")))
        default_tags = {"tags": dict.fromkeys(TAG_KEYS, "x")}
        by_provider = pack.analyze(raw, provider={"defaultTags": default_tags})
        by_provider_json = pack.analyze(raw, provider={"defaultTags": json.dumps(default_tags)})
        schedule = pack.analyze(graph.named("ingestion-schedules-movielens"))

    reported = {v.urn for v in violations}
    assert raw.urn in reported
    assert graph.named("ingestion-lambda-function").urn in reported
    assert graph.named("ingestion-schedules-movielens").urn not in reported  # a schedule takes no tags
    assert "bucket ingestion-raw-bucket" not in partly.message
    assert "Bucket ingestion-raw-bucket has no tag data-classification: set it in the stack's tags" in partly.message
    assert of("required-tags", complete) == []
    assert of("required-tags", by_provider) == []
    assert of("required-tags", by_provider_json) == []
    assert of("required-tags", schedule) == []
