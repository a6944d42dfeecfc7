"""What an AWS reviewer asks of a production data pipeline beyond the baseline (issue 23), as CrossGuard policies.

Audit: every bucket but a log bucket has server access logging (or S3 data events in a CloudTrail trail).
Logs: every log group expires its events, and the log groups share one KMS key or none.
Capacity: every Lambda function has reserved concurrency. Schedules: every target has a retry policy and a
dead-letter queue, so an invocation that keeps failing is kept, not dropped, and an alarm says so.
Trust: a role that Step Functions or EventBridge Scheduler assumes names the account and the ARN it may be
assumed for (aws:SourceAccount, aws:SourceArn). Protection: buckets and KMS keys are `protect`ed unless the
policy config says the stack is disposable. Tags: the keys a policy config requires are on every resource
that takes tags.

Like `baseline`, this module reads only the graph the engine sends and imports nothing of the project.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from baseline import (
    BUCKET_TYPES,
    ROLE,
    Problem,
    configures,
    known,
    parse_document,
    props_validation,
    statements,
    strings,
)
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

LOGGING_TYPES = frozenset({"aws:s3/bucketLogging:BucketLogging", "aws:s3/bucketLoggingV2:BucketLoggingV2"})
TRAIL = "aws:cloudtrail/trail:Trail"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
FUNCTION = "aws:lambda/function:Function"
SCHEDULE = "aws:scheduler/schedule:Schedule"
KMS_KEY = "aws:kms/key:Key"
QUEUE = "aws:sqs/queue:Queue"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
PROTECTED_TYPES = BUCKET_TYPES | {KMS_KEY}
"""What holds the data or can make it unreadable: losing either to a stray `pulumi destroy` is not undone."""

# The services whose roles this stack creates and that set the confused-deputy keys when they assume a role:
# aws:SourceAccount and aws:SourceArn name the account and the state machine or schedule acting
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html; EventBridge Scheduler's execution
# role: https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role).
SOURCE_SCOPED_SERVICES = frozenset({"states.amazonaws.com", "scheduler.amazonaws.com"})
SOURCE_KEYS = ("aws:SourceAccount", "aws:SourceArn")

# Types that take `tags` (what a required-tags config is checked on); the others have no tags to set: a schedule
# (its group takes them), a Lambda layer version, a bucket's settings, role and queue policies, Glue tables, a
# dashboard. An S3 object takes object tags, a per-object label the stack's tags are not (infra/tags.py).
TAGGABLE_TYPES = frozenset(
    {
        *BUCKET_TYPES,
        KMS_KEY,
        LOG_GROUP,
        FUNCTION,
        ROLE,
        "aws:sns/topic:Topic",
        QUEUE,
        "aws:scheduler/scheduleGroup:ScheduleGroup",
        "aws:sfn/stateMachine:StateMachine",
        ALARM,
        "aws:glue/catalogDatabase:CatalogDatabase",
        "aws:iam/policy:Policy",
        TRAIL,
    }
)

MANDATORY = EnforcementLevel.MANDATORY


def _shown(value: Any) -> str:
    """A number as a user wrote it (the engine sends every number as a float): 14, not 14.0."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return repr(value)


def _bucket_label(bucket: PolicyResource) -> str:
    name = known(bucket.props, "bucket")
    return f"bucket {name} ({bucket.name})" if isinstance(name, str) else f"bucket {bucket.name}"


# --- access logging ----------------------------------------------------------------------------------------


def _refers_to(resource: PolicyResource, prop: str, bucket: PolicyResource) -> bool:
    """Whether `resource.props[prop]` is this bucket: by dependency (names unknown in a first preview), or name."""
    if any(dependency.urn == bucket.urn for dependency in resource.property_dependencies.get(prop, ())):
        return True
    value = known(resource.props, prop)
    return isinstance(value, str) and value in (known(bucket.props, "bucket"), known(bucket.props, "id"))


def _aws_partition(arn: str) -> str:
    """An ARN with its partition as `aws`, so aws-cn and aws-us-gov trails compare alike."""
    return re.sub(r"^arn:[^:]+:", "arn:aws:", arn)


def _trail_logs_objects_of(trail: PolicyResource, bucket: str) -> bool:
    """Whether a trail records S3 data events for every object in `bucket` (basic or advanced event selectors).

    `arn:aws:s3` in a basic selector means every bucket of the account; a value or `startsWith` that is a
    prefix of `arn:aws:s3:::BUCKET/` covers the whole bucket (https://docs.aws.amazon.com/awscloudtrail/latest/
    APIReference/API_DataResource.html).
    """
    whole = f"arn:aws:s3:::{bucket}/"
    for selector in known(trail.props, "eventSelectors") or ():
        for data in selector.get("dataResources") or ():
            if data.get("type") != "AWS::S3::Object":
                continue
            for value in map(_aws_partition, strings(data.get("values"))):
                if value in ("arn:aws:s3", "arn:aws:s3:::") or whole.startswith(value) and value.endswith("/"):
                    return True
    for selector in known(trail.props, "advancedEventSelectors") or ():
        fields = {f.get("field"): f for f in selector.get("fieldSelectors") or ()}
        if "AWS::S3::Object" not in strings((fields.get("resources.type") or {}).get("equals")):
            continue
        arn = fields.get("resources.ARN")
        if arn is None:
            return True  # every object in every bucket
        if any(whole.startswith(_aws_partition(p)) for p in strings(arn.get("startsWith"))):
            return True
    return False


def unlogged_buckets(resources: Sequence[PolicyResource]) -> list[tuple[PolicyResource, Problem]]:
    """Buckets with neither server access logging nor CloudTrail S3 data events; log buckets are exempt."""
    buckets = [r for r in resources if r.resource_type in BUCKET_TYPES]
    loggings = [r for r in resources if r.resource_type in LOGGING_TYPES]
    trails = [r for r in resources if r.resource_type == TRAIL]
    problems = []
    for bucket in buckets:
        if any(_refers_to(logging, "targetBucket", bucket) for logging in loggings):
            continue  # a log bucket: logging its own log deliveries would log forever
        if any(configures(logging, bucket) for logging in loggings):
            continue
        name = known(bucket.props, "bucket")
        if isinstance(name, str) and any(_trail_logs_objects_of(trail, name) for trail in trails):
            continue
        problems.append(
            (
                bucket,
                f"{_bucket_label(bucket)} has no access logging: add an aws.s3.BucketLogging with "
                "bucket=<the bucket>.id and target_bucket=<the stack's log bucket>, or S3 data events for it in "
                "a CloudTrail trail",
            )
        )
    return problems


def _validate_access_logging(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for bucket, problem in unlogged_buckets(args.resources):
        report_violation(problem, bucket.urn)


# --- log groups ---------------------------------------------------------------------------------------------


def log_group_retention_problems(props: Mapping[str, Any]) -> list[Problem]:
    days = known(props, "retentionInDays")
    if isinstance(days, int | float) and days > 0:
        return []
    return [
        f"retentionInDays is {_shown(days)}: set retention_in_days (0 or unset keeps every event forever, and bills it)"
    ]


def _log_group_label(group: PolicyResource) -> str:
    name = known(group.props, "name")
    return f"log group {name} ({group.name})" if isinstance(name, str) else f"log group {group.name}"


def log_groups_without_the_key(resources: Sequence[PolicyResource]) -> list[tuple[PolicyResource, Problem]]:
    """When any log group of the stack is encrypted with a KMS key, those that are not (the option is stack-wide)."""
    groups = [r for r in resources if r.resource_type == LOG_GROUP]
    keyed = [g for g in groups if g.props.get("kmsKeyId")]
    if not keyed:
        return []
    return [
        (
            group,
            f"{_log_group_label(group)} has no kmsKeyId while {_log_group_label(keyed[0])} is encrypted with a "
            "KMS key: give every log group of the stack the same key",
        )
        for group in groups
        if not group.props.get("kmsKeyId")
    ]


def _validate_log_group_keys(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for group, problem in log_groups_without_the_key(args.resources):
        report_violation(problem, group.urn)


# --- Lambda, schedules ----------------------------------------------------------------------------------------


def reserved_concurrency_problems(props: Mapping[str, Any]) -> list[Problem]:
    reserved = known(props, "reservedConcurrentExecutions")
    if isinstance(reserved, int | float) and reserved >= 1:
        return []
    shown = "unset" if reserved is None else ("-1 (unreserved)" if reserved == -1 else _shown(reserved))
    return [
        f"reservedConcurrentExecutions is {shown}: reserve concurrency (at least 1) so the function neither "
        "competes with every other function of the account nor takes all of it"
    ]


def schedule_problems(props: Mapping[str, Any]) -> list[Problem]:
    target = known(props, "target") or {}
    problems = []
    if not (target.get("deadLetterConfig") or {}).get("arn"):
        problems.append(
            "target has no deadLetterConfig.arn: give it an SQS dead-letter queue, or an invocation that keeps "
            "failing is dropped without a trace"
        )
    if not target.get("retryPolicy"):
        problems.append("target has no retryPolicy: set maximum_retry_attempts and maximum_event_age_in_seconds")
    return problems


def _alarm_dimensions(alarm: PolicyResource) -> list[Mapping[str, Any]]:
    """The dimensions of an alarm's metric, and of each metric in its metric queries."""
    found = [known(alarm.props, "dimensions") or {}]
    for query in known(alarm.props, "metricQueries") or ():
        metric = query.get("metric") if isinstance(query, Mapping) else None
        if isinstance(metric, Mapping):
            found.append(metric.get("dimensions") or {})
    return [d for d in found if isinstance(d, Mapping)]


def _alarm_namespaces(alarm: PolicyResource) -> set[str]:
    spaces = {known(alarm.props, "namespace")}
    for query in known(alarm.props, "metricQueries") or ():
        metric = query.get("metric") if isinstance(query, Mapping) else None
        if isinstance(metric, Mapping):
            spaces.add(metric.get("namespace"))
    return {s for s in spaces if isinstance(s, str)}


def _watches(alarm: PolicyResource, queue: PolicyResource) -> bool:
    """Whether an alarm's metric is about this queue: by dependency, or by its QueueName dimension."""
    if any(dependency.urn == queue.urn for deps in alarm.property_dependencies.values() for dependency in deps):
        return True
    name = known(queue.props, "name")
    return isinstance(name, str) and any(d.get("QueueName") == name for d in _alarm_dimensions(alarm))


def unalarmed_schedules(resources: Sequence[PolicyResource]) -> list[tuple[PolicyResource, Problem]]:
    """Schedules whose failed invocations no alarm (with actions) would report.

    Covered: an alarm on the schedule's dead-letter queue (AWS/SQS, found by dependency or QueueName), or any
    alarm on the AWS/Scheduler namespace (its invocation metrics are per account or schedule group).
    """
    alarms = [r for r in resources if r.resource_type == ALARM and known(r.props, "alarmActions")]
    if any("AWS/Scheduler" in _alarm_namespaces(alarm) for alarm in alarms):
        return []
    queues = [r for r in resources if r.resource_type == QUEUE]
    problems = []
    for schedule in (r for r in resources if r.resource_type == SCHEDULE):
        target = known(schedule.props, "target") or {}
        dlq_arn = (target.get("deadLetterConfig") or {}).get("arn") if isinstance(target, Mapping) else None
        target_deps = {d.urn for d in schedule.property_dependencies.get("target", ())}
        dlqs = [q for q in queues if q.urn in target_deps or (dlq_arn and known(q.props, "arn") == dlq_arn)]
        if any(_watches(alarm, queue) for alarm in alarms for queue in dlqs):
            continue
        problems.append(
            (
                schedule,
                f"schedule {schedule.name} has no alarm on its failed invocations: add a CloudWatch alarm with "
                "alarm_actions (the stack's topic) on its dead-letter queue (AWS/SQS "
                "ApproximateNumberOfMessagesVisible, QueueName) or on the AWS/Scheduler invocation metrics",
            )
        )
    return problems


def _validate_schedule_alarms(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for schedule, problem in unalarmed_schedules(args.resources):
        report_violation(problem, schedule.urn)


# --- trust policies ---------------------------------------------------------------------------------------------


def _condition_keys(condition: Any) -> set[str]:
    """Every key a Condition block tests, whatever the operator (StringEquals, ArnLike, ...)."""
    if not isinstance(condition, Mapping):
        return set()
    return {key for block in condition.values() if isinstance(block, Mapping) for key in block}


def trust_problems(props: Mapping[str, Any]) -> list[Problem]:
    document = parse_document(known(props, "assumeRolePolicy"))
    if document is None:
        return []
    problems = []
    for sid, statement in statements(document):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        services = set(strings(principal.get("Service"))) if isinstance(principal, Mapping) else set()
        scoped = sorted(services & SOURCE_SCOPED_SERVICES)
        if not scoped:
            continue
        missing = [key for key in SOURCE_KEYS if key not in _condition_keys(statement.get("Condition"))]
        if missing:
            problems.append(
                f"trust statement {sid} lets {', '.join(scoped)} assume the role without a condition on "
                f"{', '.join(missing)}: add the account (StringEquals aws:SourceAccount) and the state machine or "
                "schedule ARNs (ArnLike aws:SourceArn), so no other resource of the service can use the role"
            )
    return problems


# --- protection ---------------------------------------------------------------------------------------------------


def _validate_protected(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in PROTECTED_TYPES:
        return
    if args.get_config().get("disposable") is True or args.opts.protect:
        return
    kind = "bucket" if args.resource_type in BUCKET_TYPES else "KMS key"
    report_violation(
        f"{kind} {args.name} is not protected: set protect=True in its resource options (a `pulumi destroy` "
        "would delete it and what it holds), or, for a stack meant to be thrown away, pass a policy config "
        '{"data-protected": {"disposable": true}}',
        None,
    )


# --- tags -------------------------------------------------------------------------------------------------------


def _tag_keys(args: ResourceValidationArgs) -> set[str]:
    keys = set()
    for prop in ("tags", "tagsAll"):
        value = known(args.props, prop)
        if isinstance(value, Mapping):
            keys |= set(value)
    provider = args.provider
    if provider is not None:
        default = known(provider.props, "defaultTags")
        if isinstance(default, str):  # provider inputs may arrive JSON-encoded, as the engine keeps provider config
            try:
                default = json.loads(default)
            except ValueError:
                default = None
        tags = default.get("tags") if isinstance(default, Mapping) else None
        if isinstance(tags, Mapping):
            keys |= set(tags)
    return keys


def _validate_tags(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    required = [key for key in args.get_config().get("keys") or () if isinstance(key, str)]
    if not required or args.resource_type not in TAGGABLE_TYPES:
        return
    missing = [key for key in required if key not in _tag_keys(args)]
    if missing:
        kind = args.resource_type.rpartition(":")[2]
        report_violation(
            f"{kind} {args.name} has no tag {', '.join(missing)}: set it in the stack's tags (the provider's "
            "default tags) or on the resource",
            None,
        )


# --- the policies ---------------------------------------------------------------------------------------------


POLICIES: list[Policy] = [
    StackValidationPolicy(
        name="s3-access-logged",
        description="Every S3 bucket but a log bucket has server access logging (or CloudTrail S3 data events).",
        validate=_validate_access_logging,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="cloudwatch-log-retention",
        description="Every CloudWatch log group expires its events (retentionInDays set, not 0).",
        validate=props_validation(frozenset({LOG_GROUP}), "LogGroup", log_group_retention_problems),
        enforcement_level=MANDATORY,
    ),
    StackValidationPolicy(
        name="cloudwatch-log-groups-one-key",
        description="When one log group of the stack is encrypted with a KMS key, every log group is.",
        validate=_validate_log_group_keys,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="lambda-reserved-concurrency",
        description="Every Lambda function reserves concurrency (reservedConcurrentExecutions >= 1).",
        validate=props_validation(frozenset({FUNCTION}), "Function", reserved_concurrency_problems),
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="scheduler-dead-letter-and-retry",
        description="Every EventBridge Scheduler schedule's target has a retry policy and a dead-letter queue.",
        validate=props_validation(frozenset({SCHEDULE}), "Schedule", schedule_problems),
        enforcement_level=MANDATORY,
    ),
    StackValidationPolicy(
        name="scheduler-failures-alarmed",
        description="Every schedule's failed invocations raise an alarm (on its dead-letter queue, or AWS/Scheduler).",
        validate=_validate_schedule_alarms,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="iam-service-trust-source-scoped",
        description="Roles trusted by Step Functions or EventBridge Scheduler condition on aws:SourceAccount and "
        "aws:SourceArn.",
        validate=props_validation(frozenset({ROLE}), "Role", trust_problems),
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="data-protected",
        description="S3 buckets and KMS keys are protected from deletion, unless the stack is disposable.",
        validate=_validate_protected,
        enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={"disposable": {"type": "boolean", "description": "a stack meant to be thrown away"}}
        ),
    ),
    ResourceValidationPolicy(
        name="required-tags",
        description="Resources that take tags carry every tag key the policy config lists (none by default).",
        validate=_validate_tags,
        enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={"keys": {"type": "array", "items": {"type": "string"}, "description": "required tag keys"}}
        ),
    ),
]
