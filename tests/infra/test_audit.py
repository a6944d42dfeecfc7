"""Audit and protection under the mocks: access logs, the log groups' key, default tags, `protect`, the names the
trust policies hold."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from infra.names import stack_scoped_name
from infra.pipeline import IngestionPipeline, IngestionPipelineArgs
from infra.stack_config import StackConfig
from infra.storage import ACCESS_LOG_PREFIX
from infra.tags import UNTAGGED_TYPES, default_tags
from tests.infra.harness import (
    ACCOUNT,
    AUTONAME_SUFFIX,
    DEV_CONFIG,
    DEV_RAW,
    DEV_SOURCE,
    HANDLER_DIR,
    REGION,
    Deployment,
    RecordingMocks,
    dev_config,
    dev_stack_config,
    pinned_sdk_layer,
    two_dataset_config,
)

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_LOGGING = "aws:s3/bucketLogging:BucketLogging"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
KMS_KEY_TYPE = "aws:kms/key:Key"
LOG_BUCKET = "ingestion-access-logs-bucket" + AUTONAME_SUFFIX
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
LOGS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/9999abcd-12ab-34cd-56ef-1234567890ab"
TAGS = {"owner": "data-team", "cost-centre": "cc-1234", "data-classification": "internal"}

Build = Callable[[StackConfig], Deployment]
Run = Callable[[dict[str, str]], Deployment]


def with_(config: StackConfig, **changes: Any) -> StackConfig:
    return dataclasses.replace(config, **changes)


def for_bucket(deployment: Deployment, typ: str, bucket: str) -> dict[str, Any]:
    (inputs,) = [r.inputs for r in deployment.of_type(typ) if r.inputs["bucket"] == bucket]
    return inputs


# ---- server access logs ----------------------------------------------------------------------------------------


def test_raw_config_and_created_source_buckets_log_into_the_log_bucket_partitioned_by_day(run_program: Run) -> None:
    deployment = run_program(dev_stack_config())
    logging = {r.inputs["bucket"]: r.inputs for r in deployment.of_type(BUCKET_LOGGING)}

    # Every bucket the stack creates but the log bucket itself, which must not log into itself.
    assert set(logging) == {DEV_RAW, DEV_CONFIG, DEV_SOURCE}
    for inputs in logging.values():
        assert inputs["targetBucket"] == LOG_BUCKET
        assert inputs["targetPrefix"] == ACCESS_LOG_PREFIX == "s3-access-logs/"
        # `<prefix><account>/<region>/<bucket>/<yyyy>/<mm>/<dd>/`: one prefix for all, partitions for Athena.
        assert inputs["targetObjectKeyFormat"] == {"partitionedPrefix": {"partitionDateSource": "EventTime"}}
        # ACLs are off on the log bucket (BucketOwnerEnforced): a grant would be refused.
        assert "targetGrants" not in inputs
    assert deployment.exports["accessLogBucketName"] == LOG_BUCKET


def test_existing_source_buckets_are_not_logged_by_the_stack(build_pipeline: Build) -> None:
    deployment = build_pipeline(two_dataset_config())
    logged = {r.inputs["bucket"] for r in deployment.of_type(BUCKET_LOGGING)}
    assert logged == {"acme-raw", "acme-ingestion-config"}  # not partner-orders-export, not web-analytics-drop


def test_log_bucket_lets_only_s3_log_delivery_write_only_logs_of_the_stacks_buckets(run_program: Run) -> None:
    deployment = run_program(dev_stack_config())
    policy = json.loads(for_bucket(deployment, BUCKET_POLICY, LOG_BUCKET)["policy"])

    deny, delivery = policy["Statement"]
    assert deny["Sid"] == "DenyInsecureTransport" and deny["Effect"] == "Deny"
    assert delivery == {
        "Sid": "S3ServerAccessLogDelivery",
        "Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{LOG_BUCKET}/s3-access-logs/*",
        "Condition": {
            "ArnLike": {"aws:SourceArn": sorted(f"arn:aws:s3:::{b}" for b in (DEV_RAW, DEV_CONFIG, DEV_SOURCE))},
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
        },
    }
    # Exactly the buckets that log into it (the bucket resources' own ARNs).
    logged = {r.inputs["bucket"] for r in deployment.of_type(BUCKET_LOGGING)}
    arns = {b.arn for b in deployment.of_type(BUCKET) if b.state["bucket"] in logged}
    assert set(delivery["Condition"]["ArnLike"]["aws:SourceArn"]) == arns


def test_log_bucket_is_sse_s3_even_when_every_other_bucket_uses_the_stack_key(build_pipeline: Build) -> None:
    deployment = build_pipeline(with_(dev_config(), kms_key_arn=KMS_KEY))
    (rule,) = for_bucket(deployment, ENCRYPTION, LOG_BUCKET)["rules"]
    assert rule == {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}
    (raw,) = for_bucket(deployment, ENCRYPTION, DEV_RAW)["rules"]
    assert raw["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KMS_KEY}


@pytest.mark.parametrize(("configured", "days"), [(None, 365), ("30", 30)])
def test_logs_expire_after_the_configured_days_and_so_do_their_old_versions(
    run_program: Run, configured: str | None, days: int
) -> None:
    config = dev_stack_config()
    if configured:
        config["data-file-ingestion:accessLogRetentionDays"] = configured
    deployment = run_program(config)
    rules = {rule["id"]: rule for rule in for_bucket(deployment, LIFECYCLE, LOG_BUCKET)["rules"]}

    assert rules["expire-access-logs"] == {
        "id": "expire-access-logs",
        "status": "Enabled",
        "filter": {"prefix": ""},
        "expiration": {"days": days},
        "noncurrentVersionExpiration": {"noncurrentDays": days},
    }
    # A separate rule: S3 refuses expiredObjectDeleteMarker beside days in one Expiration.
    assert rules["remove-expired-log-delete-markers"]["expiration"] == {"expiredObjectDeleteMarker": True}
    assert set(rules) == {
        "abort-incomplete-multipart-uploads",
        "expire-access-logs",
        "remove-expired-log-delete-markers",
    }


def test_bucket_logging_waits_for_the_log_bucket_and_its_policy(run_program: Run) -> None:
    deployment = run_program(dev_stack_config())
    (policy_urn,) = [u for u in deployment.urns if u.endswith("::ingestion-access-logs-policy")]
    # S3 may deliver the first log as soon as logging is on: the log bucket's policy must already allow it.
    for logging in deployment.of_type(BUCKET_LOGGING):
        assert policy_urn in logging.dependencies, logging.name


# ---- the log groups' key -----------------------------------------------------------------------------------------


def test_without_a_logs_key_the_log_groups_use_cloudwatch_logs_own_encryption(run_program: Run) -> None:
    deployment = run_program(dev_stack_config())
    assert [g.inputs.get("kmsKeyId") for g in deployment.of_type(LOG_GROUP)] == [None, None]
    # Exported all the same: the key policy needs it before the update that sets the key.
    assert deployment.exports["logsKeyPolicyStatement"]["Sid"] == "AllowIngestionLogGroups"


def test_logs_key_encrypts_both_log_groups_and_its_exported_statement_covers_exactly_them(run_program: Run) -> None:
    deployment = run_program({**dev_stack_config(), "data-file-ingestion:logsKmsKeyArn": LOGS_KEY})
    groups = deployment.of_type(LOG_GROUP)
    assert len(groups) == 2 and all(g.inputs["kmsKeyId"] == LOGS_KEY for g in groups)

    statement = deployment.exports["logsKeyPolicyStatement"]
    patterns = statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert statement == {
        "Sid": "AllowIngestionLogGroups",
        "Effect": "Allow",
        "Principal": {"Service": f"logs.{REGION}.amazonaws.com"},
        "Action": [
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncryptFrom",
            "kms:ReEncryptTo",
            "kms:GenerateDataKey",
            "kms:GenerateDataKeyWithoutPlaintext",
        ],
        "Resource": "*",
        "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": patterns}},
    }
    # Known before the groups exist (the key policy must be in place first), yet matching the groups created.
    for group in groups:
        assert [p for p in patterns if fnmatch.fnmatchcase(group.arn, p)], (group.arn, patterns)
    assert all(p.startswith(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:") for p in patterns)
    assert not any(
        fnmatch.fnmatchcase(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/other", p) for p in patterns
    )


# ---- default tags ------------------------------------------------------------------------------------------------


def build_recording_taggable(mocks: RecordingMocks, config: StackConfig) -> tuple[Deployment, set[tuple[str, str]]]:
    """The pipeline, and which of its resources take a `tags` input at all (what the SDK hands a transformation)."""
    taggable: set[tuple[str, str]] = set()

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        if isinstance(args.resource, pulumi.CustomResource) and args.props and "tags" in args.props:
            taggable.add((args.type_, args.name))

    @pulumi.runtime.test
    def program() -> None:
        IngestionPipeline(
            "ingestion",
            IngestionPipelineArgs(config=config, package_dir=HANDLER_DIR, sdk_layer=pinned_sdk_layer()),
            opts=pulumi.ResourceOptions(transformations=[record]),
        )

    program()
    return Deployment(resources=list(mocks.resources), urns=mocks.urns()), taggable


def test_every_taggable_resource_gets_the_stack_tags(mocks: RecordingMocks) -> None:
    deployment, taggable = build_recording_taggable(mocks, with_(dev_config(), tags=TAGS))

    tagged = {(r.typ, r.name) for r in deployment.resources if r.inputs.get("tags")}
    assert taggable - tagged == {t for t in taggable if t[0] in UNTAGGED_TYPES}
    assert tagged == {t for t in taggable if t[0] not in UNTAGGED_TYPES}
    assert all(r.inputs["tags"] == TAGS for r in deployment.resources if (r.typ, r.name) in tagged)
    # The kinds a reviewer looks for, each tagged.
    kinds = {typ for typ, _ in tagged}
    for kind in (BUCKET, KMS_KEY_TYPE, LOG_GROUP, "aws:iam/role:Role", "aws:lambda/function:Function"):
        assert kind in kinds, kind
    for kind in (
        "aws:sfn/stateMachine:StateMachine",
        "aws:sns/topic:Topic",
        "aws:scheduler/scheduleGroup:ScheduleGroup",
    ):
        assert kind in kinds, kind


def test_without_tags_no_resource_is_tagged(build_pipeline: Build) -> None:
    deployment = build_pipeline(dev_config())
    assert [r.name for r in deployment.resources if r.inputs.get("tags")] == []


def test_tags_from_stack_config_reach_the_resources(run_program: Run) -> None:
    deployment = run_program({**dev_stack_config(), "data-file-ingestion:tags": json.dumps(TAGS)})
    (raw,) = [b for b in deployment.of_type(BUCKET) if b.state["bucket"] == DEV_RAW]
    assert raw.inputs["tags"] == TAGS


def test_a_tag_a_resource_sets_itself_wins_over_the_default(mocks: RecordingMocks) -> None:
    import pulumi_aws as aws

    @pulumi.runtime.test
    def program() -> None:
        opts = pulumi.ResourceOptions(transformations=[default_tags({"owner": "data-team", "app": "ingestion"})])
        parent = pulumi.ComponentResource("test:index:Parent", "parent", None, opts)
        aws.sns.Topic("topic", tags={"owner": "someone-else"}, opts=pulumi.ResourceOptions(parent=parent))
        aws.sns.Topic("plain", opts=pulumi.ResourceOptions(parent=parent))

    program()
    tags = {r.name: r.inputs["tags"] for r in mocks.resources if r.typ == "aws:sns/topic:Topic"}
    assert tags == {
        "topic": {"owner": "someone-else", "app": "ingestion"},
        "plain": {"owner": "data-team", "app": "ingestion"},
    }


# ---- protect -----------------------------------------------------------------------------------------------------


EVERY_DEV_BUCKET = {(BUCKET, b) for b in (DEV_RAW, DEV_CONFIG, DEV_SOURCE, LOG_BUCKET)}
"""The buckets a dev-shaped stack creates: raw, config, its own source bucket (`source.create`) and the access logs."""


def test_a_stack_not_marked_disposable_protects_and_retains_every_bucket_it_creates_and_its_key(
    build_pipeline: Build,
) -> None:
    deployment = build_pipeline(with_(dev_config(), disposable=False, force_destroy_buckets=False))
    assert {(BUCKET, r.state["bucket"]) for r in deployment.of_type(BUCKET)} == EVERY_DEV_BUCKET
    protected = {(r.typ, r.state.get("bucket") or r.name) for r in deployment.resources if r.protect}
    assert protected == EVERY_DEV_BUCKET | {(KMS_KEY_TYPE, "ingestion-notifications-topic-key")}
    assert {(r.typ, r.state.get("bucket") or r.name) for r in deployment.resources if r.retain_on_delete} == protected


def test_only_buckets_and_keys_are_protected_not_their_settings(build_pipeline: Build) -> None:
    """A bucket's settings (policy, logging, lifecycle...) can be recreated by the next `pulumi up`; its objects
    cannot, so only the bucket is protected, and an update may still replace a setting."""
    deployment = build_pipeline(with_(dev_config(), disposable=False, force_destroy_buckets=False))
    assert {r.typ for r in deployment.resources if r.protect} == {BUCKET, KMS_KEY_TYPE}


def test_the_dev_stack_is_disposable_and_protects_nothing(run_program: Run) -> None:
    deployment = run_program(dev_stack_config())
    assert [r.name for r in deployment.resources if r.protect or r.retain_on_delete] == []


def test_a_stack_left_at_the_defaults_is_protected(run_program: Run) -> None:
    config = {**dev_stack_config()}
    del config["data-file-ingestion:disposable"], config["data-file-ingestion:forceDestroyBuckets"]
    deployment = run_program(config)
    assert {r.name for r in deployment.resources if r.protect} == {
        "ingestion-raw-bucket",
        "ingestion-config-bucket-bucket",
        f"ingestion-source-{DEV_SOURCE}-bucket",
        "ingestion-access-logs-bucket",
        "ingestion-notifications-topic-key",
    }


def test_with_a_stack_key_there_is_no_key_of_the_stacks_own_to_protect(build_pipeline: Build) -> None:
    deployment = build_pipeline(with_(dev_config(), disposable=False, force_destroy_buckets=False, kms_key_arn=KMS_KEY))
    assert deployment.of_type(KMS_KEY_TYPE) == []
    assert {(r.typ, r.state.get("bucket") or r.name) for r in deployment.resources if r.protect} == EVERY_DEV_BUCKET


def test_force_destroy_without_disposable_stops_the_program_before_anything_is_created(
    run_program: Run, mocks: RecordingMocks
) -> None:
    config = {**dev_stack_config(), "data-file-ingestion:disposable": "false"}
    with pytest.raises(pulumi.RunError, match=r"data-file-ingestion:forceDestroyBuckets: true only in a stack marked"):
        run_program(config)
    assert mocks.resources == []


# ---- names the trust policies hold -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "limit", "expected"),
    [
        ("dev", 80, "data-file-ingestion-dev"),
        ("team.prod", 80, "data-file-ingestion-team-prod"),  # a stack name may hold `.`, a state machine's not
    ],
)
def test_stack_scoped_names_are_the_project_and_stack_in_allowed_characters(
    stack: str, limit: int, expected: str
) -> None:
    assert stack_scoped_name("data-file-ingestion", stack, limit) == expected


def test_a_long_stack_name_is_cut_to_the_limit_and_stays_apart_from_another() -> None:
    a = stack_scoped_name("data-file-ingestion", "x" * 70 + "a", 64)
    b = stack_scoped_name("data-file-ingestion", "x" * 70 + "b", 64)
    assert len(a) == len(b) == 64 and a != b
    assert a.startswith("data-file-ingestion-xxx")


def arn_like(arn: str, pattern: str) -> bool:
    """IAM's ArnLike: each of the six `:`-separated parts matched on its own, the last being the rest of the ARN."""
    parts, wanted = arn.split(":", 5), pattern.split(":", 5)
    return len(parts) == len(wanted) == 6 and all(fnmatch.fnmatchcase(p, w) for p, w in zip(parts, wanted, strict=True))


@pytest.mark.parametrize(
    ("resource", "admitted"),
    [
        ("stateMachine:ingest", True),
        ("stateMachine:ingest:3", True),  # a version
        ("stateMachine:ingest:live", True),  # an alias
        ("mapRun:ingest/copy-batches:0f1e2d3c", True),  # a Distributed Map run
        ("execution:ingest/copy-batches:0f1e2d3c", True),  # one of its child executions
        ("stateMachine:ingest-other", False),  # another state machine whose name starts with ours
        ("stateMachine:other", False),
        ("stateMachine:other:ingest", False),  # another state machine's alias named like ours
        ("mapRun:other/ingest:0f1e2d3c", False),
    ],
)
def test_the_state_machine_role_admits_its_own_state_machine_and_nothing_else(resource: str, admitted: bool) -> None:
    from infra.policies import state_machine_source_arns

    patterns = state_machine_source_arns("aws", REGION, ACCOUNT, "ingest")
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:{resource}"
    assert any(arn_like(arn, p) for p in patterns) is admitted
    other_region = f"arn:aws:states:us-east-1:{ACCOUNT}:{resource}"
    assert not any(arn_like(other_region, p) for p in patterns)


def test_the_exported_key_statements_pass_parliament(run_program: Run) -> None:
    from tests.infra.test_policies import lint

    deployment = run_program({**dev_stack_config(), "data-file-ingestion:logsKmsKeyArn": LOGS_KEY})
    statement = deployment.exports["logsKeyPolicyStatement"]
    # Parliament reads it as an identity policy. In a key policy `Resource: "*"` is the key itself, and AWS's own
    # statement puts this string condition key under ArnLike/ArnEquals: nothing else may be found.
    assert lint({"Version": "2012-10-17", "Statement": [statement]}) == ["MISMATCHED_TYPE", "RESOURCE_STAR"]
