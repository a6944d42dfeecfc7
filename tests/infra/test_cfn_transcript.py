"""The CloudFormation transcription checkov reviews: it carries what the checks read, and refuses what it can't map.

A transcription that dropped a property would make checkov pass a check the stack fails (or fail one it
passes), so each property a check reads is asserted here, on the real graph or on a resource built to have it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from pulumi.runtime import rpc

from tests.infra.cfn_transcript import (
    BUCKET_SETTINGS,
    PLACEHOLDER,
    TRANSCRIBERS,
    TranscriptionError,
    UnmappedType,
    logical_id,
    pulumi_names,
    transcribe,
)
from tests.infra.harness import Deployment, Registered, dev_config, dev_stack_config, two_dataset_config

BUCKET = "aws:s3/bucket:Bucket"
KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def bucket(name: str = "logs-bucket", bucket_name: str = "acme-logs") -> Registered:
    inputs = {"bucket": bucket_name}
    return Registered(BUCKET, name, inputs, {**inputs, "id": bucket_name})


def resource(typ: str, name: str, **inputs: Any) -> Registered:
    return Registered(typ, name, inputs, {**inputs, "name": f"{name}-7f3a2c1"})


def props(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Resources"][logical_id(name)]["Properties"]


@pytest.fixture
def dev(run_program: Callable[[dict[str, str]], Deployment]) -> tuple[Deployment, dict[str, Any]]:
    deployment = run_program(dev_stack_config())
    return deployment, transcribe(deployment)


def test_every_aws_resource_of_the_dev_stack_is_in_the_template_or_folded_into_its_bucket(
    dev: tuple[Deployment, dict[str, Any]],
) -> None:
    deployment, template = dev
    aws = [r for r in deployment.resources if r.typ.startswith("aws:")]
    placed = [r for r in aws if TRANSCRIBERS.get(r.typ) is not None]
    folded = [r for r in aws if r.typ in BUCKET_SETTINGS]
    skipped = [r for r in aws if r.typ in TRANSCRIBERS and TRANSCRIBERS[r.typ] is None]
    assert len(placed) + len(folded) + len(skipped) == len(aws)
    assert set(template["Resources"]) == {logical_id(r.name) for r in placed}
    assert pulumi_names(template, deployment) == {logical_id(r.name): r.name for r in placed}
    assert {r.typ for r in skipped} == {"aws:s3/bucketObjectv2:BucketObjectv2"}
    types = {v["Type"] for v in template["Resources"].values()}
    assert {"AWS::S3::Bucket", "AWS::Lambda::Function", "AWS::Logs::LogGroup", "AWS::IAM::Policy"} <= types
    json.dumps(template)  # plain JSON, nothing left of Pulumi's types


def test_a_bucket_carries_every_setting_pulumi_keeps_beside_it(dev: tuple[Deployment, dict[str, Any]]) -> None:
    deployment, template = dev
    raw = props(template, "ingestion-raw-bucket")

    assert raw["BucketName"] == deployment.named("ingestion-raw-bucket").inputs["bucket"]
    assert raw["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert raw["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }
    assert raw["VersioningConfiguration"] == {"Status": "Enabled"}
    assert raw["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    rules = {rule["Id"]: rule for rule in raw["LifecycleConfiguration"]["Rules"]}
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert rules["expire-map-results"]["ExpirationInDays"] == 7
    log_bucket = deployment.named("ingestion-access-logs-bucket").state["bucket"]
    assert raw["LoggingConfiguration"] == {
        "DestinationBucketName": log_bucket,
        "LogFilePrefix": "s3-access-logs/",
        "TargetObjectKeyFormat": {"PartitionedPrefix": {"PartitionDateSource": "EventTime"}},
    }
    # Every bucket but the log bucket is logged into it; the log bucket logs nothing (it would log itself).
    buckets = {r.name: props(template, r.name) for r in deployment.resources if r.typ == BUCKET}
    logged = {name for name, b in buckets.items() if "LoggingConfiguration" in b}
    assert logged == set(buckets) - {"ingestion-access-logs-bucket"}
    assert {buckets[n]["LoggingConfiguration"]["DestinationBucketName"] for n in logged} == {log_bucket}


def test_sse_kms_and_policies_are_carried_as_documents(
    build_pipeline: Callable[[Any], Deployment],
) -> None:
    deployment = build_pipeline(two_dataset_config(kms_key_arn=KMS_KEY))
    template = transcribe(deployment)

    (raw,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::S3::Bucket" and r["Properties"]["BucketName"] == "acme-raw"
    ]
    default = raw["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert default == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KMS_KEY}

    policy = props(template, "ingestion-lambda-policy")
    assert policy["Roles"] == [deployment.named("ingestion-lambda-policy").inputs["role"]]
    assert policy["PolicyDocument"] == deployment.policy("ingestion-lambda-policy")
    trust = props(template, "ingestion-workflow-role")["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "states.amazonaws.com"}


def test_the_function_log_groups_and_schedule_carry_what_checkov_reads(dev: tuple[Deployment, dict[str, Any]]) -> None:
    deployment, template = dev
    function = props(template, "ingestion-lambda-function")
    assert function["Runtime"].startswith("python3.")
    assert set(function["Environment"]["Variables"]) >= {"CONFIG_BUCKET", "SNS_TOPIC_ARN"}
    # The dev stack reserves no concurrency (Pulumi.dev.yaml says why).
    for absent in ("ReservedConcurrentExecutions", "DeadLetterConfig", "KmsKeyArn", "VpcConfig"):
        assert absent not in function, absent
    layer = props(template, "ingestion-lambda-sdk")
    assert function["Layers"] == [deployment.named("ingestion-lambda-sdk").state["arn"]]
    assert layer["CompatibleRuntimes"] == [function["Runtime"]]
    assert layer["CompatibleArchitectures"] == function["Architectures"]
    assert props(template, "ingestion-lambda-logs")["RetentionInDays"] == 14
    schedule = props(template, "ingestion-schedules-movielens")
    assert schedule["Target"]["RetryPolicy"] == {"MaximumRetryAttempts": 5, "MaximumEventAgeInSeconds": 3600}
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    queue = deployment.named("ingestion-schedules-movielens-dlq")
    assert schedule["Target"]["DeadLetterConfig"] == {"Arn": queue.state["arn"]}
    group = props(template, "ingestion-schedules-group")
    assert template["Resources"][logical_id("ingestion-schedules-group")]["Type"] == "AWS::Scheduler::ScheduleGroup"
    assert schedule["GroupName"] == group["Name"] == deployment.named("ingestion-schedules-group").inputs["name"]
    dlq = props(template, "ingestion-schedules-movielens-dlq")
    assert dlq["SqsManagedSseEnabled"] is True and "KmsMasterKeyId" not in dlq
    assert dlq["MessageRetentionPeriod"] == 1209600
    dlq_policy = props(template, "ingestion-schedules-movielens-dlq-policy")
    assert dlq_policy["Queues"] == [queue.state["url"]]
    assert dlq_policy["PolicyDocument"]["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_stack_tags_reach_every_resource_cloudformation_tags(run_program: Callable[..., Deployment]) -> None:
    tags = {"owner": "data-team", "cost-centre": "cc-1"}
    config = {**dev_stack_config(), "data-file-ingestion:tags": json.dumps(tags)}
    template = transcribe(run_program(config))
    expected = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    tagged = {v["Type"] for v in template["Resources"].values() if v["Properties"].get("Tags") == expected}
    assert {"AWS::S3::Bucket", "AWS::Scheduler::ScheduleGroup", "AWS::SQS::Queue", "AWS::Lambda::Function"} <= tagged


def test_settings_the_dev_stack_does_not_use_are_transcribed_too() -> None:
    """Reserved concurrency, a log group key, a queue under KMS, a function DLQ, tracing, a VPC: settings another
    stack (or a later change) may use, which checkov must then see."""
    logs = bucket()
    raw = bucket("raw-bucket", "acme-raw")
    resources = [
        logs,
        raw,
        resource(
            "aws:s3/bucketLoggingV2:BucketLoggingV2",
            "raw-logging",
            bucket="acme-raw",
            targetBucket="acme-logs",
            targetPrefix="raw/",
        ),  # fmt: skip
        resource(
            "aws:lambda/function:Function",
            "fn",
            reservedConcurrentExecutions=20.0,
            kmsKeyArn=KMS_KEY,
            layers=["arn:aws:lambda:eu-west-1:123456789012:layer:sdk:3"],
            deadLetterConfig={"targetArn": "arn:aws:sqs:eu-west-1:123456789012:dlq"},
            tracingConfig={"mode": "Active"},
            vpcConfig={"subnetIds": ["subnet-1"], "securityGroupIds": ["sg-1"]},
            environment={"variables": {"A": "b"}},
        ),
        resource("aws:lambda/function:Function", "unreserved", reservedConcurrentExecutions=-1.0),
        resource("aws:cloudwatch/logGroup:LogGroup", "lg", retentionInDays=30.0, kmsKeyId=KMS_KEY),
        resource("aws:sqs/queue:Queue", "dlq", kmsMasterKeyId=KMS_KEY, messageRetentionSeconds=1209600.0),
        resource(
            "aws:scheduler/schedule:Schedule",
            "nightly",
            target={"arn": "arn:x", "roleArn": "arn:r", "deadLetterConfig": {"arn": "arn:aws:sqs:eu-west-1:1:dlq"}},
        ),
    ]
    template = transcribe(Deployment(resources))

    assert props(template, "raw-bucket")["LoggingConfiguration"] == {
        "DestinationBucketName": "acme-logs",
        "LogFilePrefix": "raw/",
    }
    assert "LoggingConfiguration" not in props(template, "logs-bucket")
    fn = props(template, "fn")
    assert fn["ReservedConcurrentExecutions"] == 20
    assert fn["KmsKeyArn"] == KMS_KEY
    assert fn["Layers"] == ["arn:aws:lambda:eu-west-1:123456789012:layer:sdk:3"]
    assert fn["DeadLetterConfig"] == {"TargetArn": "arn:aws:sqs:eu-west-1:123456789012:dlq"}
    assert fn["TracingConfig"] == {"Mode": "Active"}
    assert fn["VpcConfig"] == {"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
    # -1 is Pulumi's "unreserved": CloudFormation says that by leaving the property out.
    assert "ReservedConcurrentExecutions" not in props(template, "unreserved")
    assert props(template, "lg") == {"LogGroupName": "lg-7f3a2c1", "RetentionInDays": 30, "KmsKeyId": KMS_KEY}
    assert props(template, "dlq")["KmsMasterKeyId"] == KMS_KEY
    assert props(template, "nightly")["Target"]["DeadLetterConfig"] == {"Arn": "arn:aws:sqs:eu-west-1:1:dlq"}


def test_a_managed_policy_attachment_lands_on_its_role() -> None:
    role = resource("aws:iam/role:Role", "fn-role", assumeRolePolicy='{"Version": "2012-10-17", "Statement": []}')
    attachment = resource(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "fn-xray",
        role="fn-role-7f3a2c1",
        policyArn="arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess",
    )
    template = transcribe(Deployment([role, attachment]))
    assert list(template["Resources"]) == ["FnRole"]
    assert props(template, "fn-role")["ManagedPolicyArns"] == ["arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"]
    stray = resource("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "x", role="another", policyArn="arn:p")
    with pytest.raises(TranscriptionError, match="attaches to role 'another'"):
        transcribe(Deployment([role, stray]))


def test_a_type_without_a_transcription_stops_it_by_name() -> None:
    with pytest.raises(UnmappedType, match=r"aws:ec2/instance:Instance \(web\) has no CloudFormation transcription"):
        transcribe(Deployment([bucket(), resource("aws:ec2/instance:Instance", "web")]))


def test_project_components_and_providers_are_not_aws_resources() -> None:
    template = transcribe(Deployment([Registered("data-file-ingestion:storage:SecureBucket", "x", {}, {}), bucket()]))
    assert list(template["Resources"]) == ["LogsBucket"]


def test_a_bucket_setting_for_a_bucket_the_stack_does_not_create_stops_it() -> None:
    versioning = resource("aws:s3/bucketVersioning:BucketVersioning", "v", bucket="someone-elses")
    with pytest.raises(TranscriptionError, match="configures bucket 'someone-elses'"):
        transcribe(Deployment([bucket(), versioning]))


def test_names_that_collide_as_logical_ids_stop_it() -> None:
    with pytest.raises(TranscriptionError, match="both become logical id LogsBucket"):
        transcribe(Deployment([bucket("logs-bucket", "a"), bucket("logs_bucket", "b")]))


def test_unknown_values_become_the_placeholder() -> None:
    topic = resource("aws:sns/topic:Topic", "t", kmsMasterKeyId=rpc.UNKNOWN)
    assert props(transcribe(Deployment([topic])), "t")["KmsMasterKeyId"] == PLACEHOLDER


def test_every_mapping_names_a_cloudformation_type() -> None:
    for typ, entry in TRANSCRIBERS.items():
        assert typ.startswith("aws:") and typ.count(":") == 2, typ
        assert entry is None or entry[0].startswith("AWS::"), typ
    assert not set(TRANSCRIBERS) & set(BUCKET_SETTINGS)


def test_a_stack_at_the_defaults_with_a_logs_key_gives_checkov_the_reservation_and_the_key(
    build_pipeline: Callable[[Any], Deployment],
) -> None:
    """What the dev stack leaves out (docs/policy.md: CKV_AWS_115 and CKV_AWS_158 are n/a there) reaches the template
    of a stack that keeps the default reservation and sets `logsKmsKeyArn`."""
    config = dev_config()
    config = dataclasses.replace(
        config,
        function=dataclasses.replace(config.function, reserve_concurrency=True),
        logs_kms_key_arn=KMS_KEY,
    )
    deployment = build_pipeline(config)
    template = transcribe(deployment)

    assert config.reserved_concurrency is not None and config.reserved_concurrency >= 1
    assert props(template, "ingestion-lambda-function")["ReservedConcurrentExecutions"] == config.reserved_concurrency
    groups = [v["Properties"] for v in template["Resources"].values() if v["Type"] == "AWS::Logs::LogGroup"]
    assert len(groups) == 2
    assert all(g["KmsKeyId"] == KMS_KEY for g in groups)
