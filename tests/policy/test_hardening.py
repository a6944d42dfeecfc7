"""policy/hardening.py's rules against the graphs the program builds: each violation is reported by name.

Every stack the program builds passes every rule (the dev stack with its own policy config, policy/dev.json).
Each rule is then shown to report a violating graph, by name: the shipped graph with the one thing the rule asks
for taken out (a bucket's logging, a schedule's dead-letter queue, a role's aws:SourceArn, ...), so the test
follows the program's real shape rather than a hand-made stand-in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
import yaml
from pulumi.runtime.proto import analyzer_pb2

from infra.stack_config import NAMESPACE
from tests.infra.harness import ACCOUNT, REGION, ROOT, dev_stack_config
from tests.policy.conftest import STACKS, Build, run_program  # noqa: F401 (a fixture, requested by name)
from tests.policy.engine import PACK_DIR, Graph, GraphMocks, Node, PolicyEngine, Violation

BUCKET = "aws:s3/bucket:Bucket"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
LOGGING_V2 = "aws:s3/bucketLoggingV2:BucketLoggingV2"
TRAIL = "aws:cloudtrail/trail:Trail"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
QUEUE = "aws:sqs/queue:Queue"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
KMS_KEY = "aws:kms/key:Key"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
RAW_OBJECTS = "arn:aws:s3:::acme-raw/"

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
DISPOSABLE = json.loads((PACK_DIR / "disposable.json").read_text())
DEV = json.loads((PACK_DIR / "dev.json").read_text())
STACK_CONFIG = {"dev": DEV, "two-datasets": {}, "two-datasets-kms": {}}
"""The policy config each stack is previewed with: dev's own (thrown away, and it reserves no concurrency)."""


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


def without(graph: Graph, keep: Callable[[Node], bool]) -> Graph:
    """The graph with the nodes `keep` refuses taken out."""
    return Graph([n for n in graph.nodes if keep(n)])


def mandatory(violations: list[Violation]) -> list[Violation]:
    """What fails `pulumi preview` and `pulumi up` (an advisory violation is printed, and the update goes on)."""
    return [v for v in violations if v.level == "MANDATORY"]


# --- the pack ------------------------------------------------------------------------------------------------


def test_the_shipped_disposable_config_turns_off_exactly_data_protected() -> None:
    assert DISPOSABLE == {"data-protected": {"disposable": True}}


def test_the_dev_policy_config_lifts_exactly_what_pulumi_dev_yaml_turns_off() -> None:
    """dev.json and Pulumi.dev.yaml say the same: a disposable stack, without reserved concurrency."""
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert config[f"{NAMESPACE}:disposable"] is True
    assert config[f"{NAMESPACE}:reserveLambdaConcurrency"] is False
    assert DEV == {**DISPOSABLE, "lambda-reserved-concurrency": "advisory"}


def test_the_hardening_rules_are_in_the_pack_mandatory_and_two_take_config(pack: PolicyEngine) -> None:
    policies = {p.name: p for p in pack.info().policies if p.name in HARDENING}
    assert set(policies) == set(HARDENING)
    assert {analyzer_pb2.EnforcementLevel.Name(p.enforcementLevel) for p in policies.values()} == {"MANDATORY"}
    configurable = {name for name, p in policies.items() if p.configSchema.properties}
    assert configurable == {"data-protected", "required-tags"}


# --- the shipped stacks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", STACKS)
def test_every_stack_the_project_builds_passes_each_rule(build: Build, pack: PolicyEngine, which: str) -> None:
    graph = build(which)
    with configured(pack, STACK_CONFIG[which]):
        violations = pack.preview(graph)

    assert [v for v in violations if v.policy in HARDENING and v.level == "MANDATORY"] == []
    advisory = [(v.policy, v.urn) for v in violations if v.policy in HARDENING]
    if which == "dev":  # it warns that the function reserves nothing, and says how to
        assert advisory == [("lambda-reserved-concurrency", graph.named("ingestion-lambda-function").urn)]
    else:
        assert advisory == []


def test_without_its_policy_config_the_dev_stack_fails_exactly_protection_and_reservation(
    build: Build, pack: PolicyEngine
) -> None:
    """What dev.json lifts is what dev lacks, and nothing else: previewed as a production stack, dev fails on it."""
    graph = build("dev")
    violations = mandatory([v for v in pack.preview(graph) if v.policy in HARDENING])
    assert {v.policy for v in violations} == {"data-protected", "lambda-reserved-concurrency"}


# --- access logging ----------------------------------------------------------------------------------------------


def unlogged(graph: Graph, *bucket_names: str) -> Graph:
    """The graph without the BucketLogging of the named buckets (Pulumi names); of every bucket when none is named."""
    urns = {graph.named(name).urn for name in bucket_names}

    def keep(n: Node) -> bool:
        return n.typ != LOGGING or bool(urns) and not urns & set(n.property_dependencies.get("bucket", ()))

    return without(graph, keep)


def test_every_bucket_without_access_logging_is_reported_by_name(build: Build, pack: PolicyEngine) -> None:
    shipped = build("two-datasets")
    assert len(shipped.of_type(LOGGING)) == len(shipped.of_type(BUCKET)) - 1  # all but the log bucket
    graph = unlogged(shipped)

    violations = of("s3-access-logged", pack.analyze_stack(graph.nodes))

    # The log bucket too: once nothing logs into it, it is a bucket like any other.
    assert sorted(v.urn for v in violations) == sorted(b.urn for b in graph.of_type(BUCKET))
    raw = graph.named("ingestion-raw-bucket")
    (message,) = [v.message for v in violations if v.urn == raw.urn]
    assert "bucket acme-raw (ingestion-raw-bucket) has no access logging: add an aws.s3.BucketLogging" in message


def test_one_bucket_whose_logging_is_gone_is_reported_and_the_log_bucket_stays_exempt(
    build: Build, pack: PolicyEngine
) -> None:
    graph = unlogged(build("two-datasets"), "ingestion-config-bucket-bucket")

    violations = of("s3-access-logged", pack.analyze_stack(graph.nodes))

    config_bucket = graph.named("ingestion-config-bucket-bucket")
    assert [v.urn for v in violations] == [config_bucket.urn]
    assert (
        "bucket acme-ingestion-config (ingestion-config-bucket-bucket) has no access logging" in violations[0].message
    )


def test_logging_is_matched_to_its_buckets_by_dependency_when_names_are_unknown(
    build: Build, pack: PolicyEngine
) -> None:
    """In a first preview bucket names are not known yet: a BucketLogging(V2) names its buckets by dependency only."""
    shipped = build("two-datasets")
    log_bucket = shipped.named("ingestion-access-logs-bucket")
    graph = unlogged(shipped)
    inputs = {"bucket": "unknown-in-preview", "targetBucket": "unknown-too", "targetPrefix": "s3-access-logs/"}
    loggings = [
        node(typ, f"{bucket.name}-logging", inputs, bucket=bucket, targetBucket=log_bucket)
        for typ in (LOGGING, LOGGING_V2)
        for bucket in graph.of_type(BUCKET)
        if bucket is not log_bucket
    ]
    assert of("s3-access-logged", pack.analyze_stack([*graph.nodes, *loggings])) == []


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
    graph = unlogged(build("two-datasets"), "ingestion-raw-bucket", "ingestion-config-bucket-bucket")
    trail = node(TRAIL, "ingestion-trail", {"s3BucketName": "acme-trail", **selectors})

    violations = of("s3-access-logged", pack.analyze_stack([*graph.nodes, trail]))

    assert graph.named("ingestion-raw-bucket").urn not in {v.urn for v in violations}
    assert (graph.named("ingestion-config-bucket-bucket").urn not in {v.urn for v in violations}) is every_bucket


def test_a_trail_logging_only_part_of_a_bucket_does_not_count(build: Build, pack: PolicyEngine) -> None:
    graph = unlogged(build("two-datasets"), "ingestion-raw-bucket")
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
    name = "ingestion-schedules-movielens"
    shipped = build("dev")
    assert shipped.named(name).inputs["target"]["deadLetterConfig"]["arn"]
    graph = schedule_target(shipped, name, deadLetterConfig=None)
    assert graph.named(name).inputs["target"]["retryPolicy"]  # it still retries: only the queue is missing

    (violation,) = of("scheduler-dead-letter-and-retry", pack.preview(graph))

    assert violation.urn == graph.named(name).urn
    assert "Schedule ingestion-schedules-movielens: target has no deadLetterConfig.arn" in violation.message


def test_a_schedule_with_a_dead_letter_queue_but_no_retry_policy_is_reported(build: Build, pack: PolicyEngine) -> None:
    name = "ingestion-schedules-movielens"
    graph = schedule_target(build("dev"), name, retryPolicy=None)
    assert graph.named(name).inputs["target"]["deadLetterConfig"]

    (violation,) = of("scheduler-dead-letter-and-retry", pack.preview(graph))

    assert "Schedule ingestion-schedules-movielens: target has no retryPolicy" in violation.message


def alarm(name: str, actions: list[str], queue: Node | None = None, **inputs: Any) -> Node:
    deps = {"dimensions": queue} if queue is not None else {}
    return node(ALARM, name, {"alarmActions": actions, **inputs}, **deps)


TWO_DATASETS = ("orders", "click_stream")
"""The datasets of the two-datasets stack (tests/infra/harness.py)."""
SCHEDULER_ALARM = "ingestion-monitoring-schedule-failed"
"""The stack's alarm on its schedule group's AWS/Scheduler metrics (failed, dropped, dead-lettered starts)."""


def dead_letter_alarm(dataset: str) -> str:
    """The stack's alarm on one dataset's dead-letter queue (AWS/SQS, a message waiting)."""
    return f"ingestion-monitoring-{dataset}-dead-letters"


def unalarmed(graph: Graph, *names: str) -> Graph:
    return without(graph, lambda n: n.name not in names)


def test_the_stack_alarms_on_its_schedules_twice_each_alarm_enough_alone(build: Build, pack: PolicyEngine) -> None:
    graph = build("two-datasets")
    queue_alarms = [dead_letter_alarm(ds) for ds in TWO_DATASETS]

    assert of("scheduler-failures-alarmed", pack.analyze_stack(unalarmed(graph, SCHEDULER_ALARM).nodes)) == []
    assert of("scheduler-failures-alarmed", pack.analyze_stack(unalarmed(graph, *queue_alarms).nodes)) == []


def test_a_schedule_whose_failures_raise_no_alarm_is_reported(build: Build, pack: PolicyEngine) -> None:
    graph = build("two-datasets")
    schedules = graph.of_type("aws:scheduler/schedule:Schedule")
    # Without the scheduler alarm, and without the alarm on the orders queue: only orders goes unwatched.
    orders_unwatched = unalarmed(graph, SCHEDULER_ALARM, dead_letter_alarm("orders"))
    no_alarm = unalarmed(graph, SCHEDULER_ALARM, *(dead_letter_alarm(ds) for ds in TWO_DATASETS))

    (violation,) = of("scheduler-failures-alarmed", pack.analyze_stack(orders_unwatched.nodes))
    violations = of("scheduler-failures-alarmed", pack.analyze_stack(no_alarm.nodes))

    assert violation.urn == graph.named("ingestion-schedules-orders").urn
    assert "schedule ingestion-schedules-orders has no alarm on its failed invocations" in violation.message
    assert sorted(v.urn for v in violations) == sorted(s.urn for s in schedules)


def test_an_alarm_with_actions_on_the_dead_letter_queue_covers_its_schedule(build: Build, pack: PolicyEngine) -> None:
    """The stack's own alarm on the queue covers it by dependency; one added by hand by the queue's name too."""
    shipped = build("dev")
    graph = unalarmed(shipped, SCHEDULER_ALARM)
    schedule = graph.named("ingestion-schedules-movielens")
    queue = graph.named("ingestion-schedules-movielens-dlq")
    queue_alarm = graph.named(dead_letter_alarm("movielens"))
    assert queue.urn in queue_alarm.property_dependencies["dimensions"]
    alone = unalarmed(graph, queue_alarm.name)
    topic = graph.of_type("aws:sns/topic:Topic")[0].outputs["arn"]
    dims = {"namespace": "AWS/SQS", "metricName": "ApproximateNumberOfMessagesVisible"}
    queue_name = queue.outputs["name"]
    by_dependency = alarm("dlq-alarm", [topic], queue, dimensions={"QueueName": "unknown-in-preview"}, **dims)
    by_name = alarm("dlq-alarm", [topic], dimensions={"QueueName": queue_name}, **dims)
    silent = alarm("dlq-alarm", [], queue, dimensions={"QueueName": queue_name}, **dims)
    other_queue = alarm("dlq-alarm", [topic], dimensions={"QueueName": "another-queue"}, **dims)

    def violations(*extra: Node) -> list[Violation]:
        return of("scheduler-failures-alarmed", pack.analyze_stack([*alone.nodes, *extra]))

    assert of("scheduler-failures-alarmed", pack.analyze_stack(graph.nodes)) == []
    assert [v.urn for v in violations()] == [schedule.urn]
    assert violations(by_dependency) == []
    assert violations(by_name) == []
    assert [v.urn for v in violations(silent)] == [schedule.urn]
    assert [v.urn for v in violations(other_queue)] == [schedule.urn]


def test_an_alarm_on_the_scheduler_metrics_covers_every_schedule(build: Build, pack: PolicyEngine) -> None:
    graph = unalarmed(build("two-datasets"), *(dead_letter_alarm(ds) for ds in TWO_DATASETS))
    assert len(of("scheduler-failures-alarmed", pack.analyze_stack(unalarmed(graph, SCHEDULER_ALARM).nodes))) == 2
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


def without_source_arn(graph: Graph, role: str) -> Graph:
    """The role's trust statement without its aws:SourceArn condition (the account condition stays)."""
    node = graph.named(role)
    document = json.loads(node.inputs["assumeRolePolicy"])
    condition = document["Statement"][0]["Condition"]
    for block in condition.values():
        block.pop("aws:SourceArn", None)
    document["Statement"][0]["Condition"] = {op: block for op, block in condition.items() if block}
    return graph.replaced(node, node.with_inputs(assumeRolePolicy=json.dumps(document)))


def test_service_roles_without_source_arn_are_reported_by_name(build: Build, pack: PolicyEngine) -> None:
    shipped = build("dev")
    workflow_role, schedules_role = shipped.named("ingestion-workflow-role"), shipped.named("ingestion-schedules-role")
    graph = without_source_arn(without_source_arn(shipped, workflow_role.name), schedules_role.name)
    assert "aws:SourceAccount" in graph.named(workflow_role.name).inputs["assumeRolePolicy"]

    violations = of("iam-service-trust-source-scoped", pack.preview(graph))

    by_urn = {v.urn: v.message for v in violations}
    assert set(by_urn) == {workflow_role.urn, schedules_role.urn}
    assert (
        "Role ingestion-workflow-role: trust statement #0 lets states.amazonaws.com assume the role without a "
        "condition on aws:SourceArn:" in by_urn[workflow_role.urn]
    )
    assert (
        "lets scheduler.amazonaws.com assume the role without a condition on aws:SourceArn:"
        in (by_urn[schedules_role.urn])
    )


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


def test_a_stack_that_is_not_disposable_protects_every_bucket_and_its_key(build: Build, pack: PolicyEngine) -> None:
    """two-datasets is not disposable: every bucket it creates and its own key are protected, and the pack says so;
    a bucket it would leave unprotected is reported by name."""
    graph = build("two-datasets")
    held = [n for n in graph.nodes if n.typ in (BUCKET, KMS_KEY)]
    assert {n.typ for n in held} == {BUCKET, KMS_KEY}
    assert all(n.protect for n in held)
    assert of("data-protected", pack.preview(graph)) == []

    config_bucket = graph.named("ingestion-config-bucket-bucket")
    (violation,) = of("data-protected", pack.preview(graph.replaced(config_bucket, config_bucket.protected(False))))
    assert violation.urn == config_bucket.urn
    assert "bucket ingestion-config-bucket-bucket is not protected" in violation.message


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

    reported = {v.urn for v in violations}
    assert raw.urn in reported
    assert graph.named("ingestion-lambda-function").urn in reported
    assert "bucket ingestion-raw-bucket" not in partly.message
    assert "Bucket ingestion-raw-bucket has no tag data-classification: set it in the stack's tags" in partly.message
    assert of("required-tags", complete) == []
    assert of("required-tags", by_provider) == []
    assert of("required-tags", by_provider_json) == []


def test_required_tags_asks_them_of_exactly_the_resources_that_take_tags(
    run_program: Callable[[dict[str, str]], Any],  # noqa: F811 (the fixture imported above, requested by name)
    mocks: GraphMocks,
    pack: PolicyEngine,
) -> None:
    """Which resources take tags, the program says: its tag transformation (infra/tags.py) sets `tags` on every
    resource that has the input. Tagged by the stack, none is reported; with the tags taken off, each of those is
    reported, and nothing else (schedules, the SDK layer, a bucket's settings, role policies, queue policies, Glue
    tables, the dashboard: they have no tags to set)."""
    run_program({**dev_stack_config(), f"{NAMESPACE}:tags": json.dumps(dict.fromkeys(TAG_KEYS, "x"))})
    graph = Graph(mocks.nodes())
    takes_tags = {n.urn for n in graph.nodes if "tags" in n.inputs}
    untagged = Graph([n.with_inputs(tags=None) for n in graph.nodes])
    types = {n.typ for n in graph.nodes if n.urn in takes_tags}
    assert {"aws:scheduler/scheduleGroup:ScheduleGroup", "aws:sqs/queue:Queue", BUCKET, KMS_KEY} <= types
    assert not types & {"aws:scheduler/schedule:Schedule", "aws:lambda/layerVersion:LayerVersion", LOGGING}

    with configured(pack, {"required-tags": {"keys": TAG_KEYS}}):
        on_tagged = of("required-tags", pack.preview(graph))
        on_untagged = of("required-tags", pack.preview(untagged))

    assert on_tagged == []
    assert {v.urn for v in on_untagged} == takes_tags
