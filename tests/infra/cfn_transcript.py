"""The stack as a CloudFormation template, so checkov's CloudFormation checks can review it (docs/policy.md).

checkov has no Pulumi front end; it reads CloudFormation. The program runs under the harness's mocks
(tests/infra/harness.py), and each resource it registers is written as the CloudFormation resource AWS
would create for it, with the properties checkov's checks read. Pulumi splits a bucket into a resource per
setting (public access block, encryption, versioning, logging, lifecycle, ownership); CloudFormation keeps
them on `AWS::S3::Bucket`, so they are folded back onto their bucket, found by the bucket name they name.

Every AWS type the program can register is mapped here, explicitly: a type without an entry stops the
transcription (`UnmappedType`), so a new kind of resource is never left unreviewed by accident. A type
CloudFormation has no resource for (a bucket object) is mapped to `None` with the reason. Values the mocks
leave unknown become the placeholder string `UNKNOWN`.

Run `python -m tests.infra.cfn_transcript OUT.json` to write the dev stack's template.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import rpc

from tests.infra.harness import Deployment, Registered

PLACEHOLDER = "UNKNOWN"
"""What an Output the mocks could not resolve becomes in the template."""


DESCRIPTION = "data-file-ingestion, transcribed from the Pulumi program under mocks (tests/infra/cfn_transcript.py)"


class UnmappedType(Exception):
    """The program registered an AWS type this module does not transcribe: add it to `TRANSCRIBERS`."""


class TranscriptionError(Exception):
    """A resource could not be placed in the template (a bucket setting naming no bucket of the stack)."""


# --- values -----------------------------------------------------------------------------------------------


def _known(value: Any) -> Any:
    """The value with every unknown (an Output the mocks left unresolved) as the placeholder string."""
    if value is pulumi.UNKNOWN or (isinstance(value, str) and value == rpc.UNKNOWN):
        return PLACEHOLDER
    if isinstance(value, Mapping):
        return {k: _known(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_known(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the mocks hand numbers over as floats; CloudFormation's schemas want integers
    return value


def _document(value: Any) -> Any:
    """A policy document property (JSON text in Pulumi) as the object CloudFormation takes."""
    value = _known(value)
    if isinstance(value, str) and value != PLACEHOLDER:
        return json.loads(value)
    return value


def _pascal(value: Any) -> Any:
    """Nested Pulumi arguments (`retryPolicy.maximumRetryAttempts`) in CloudFormation's spelling."""
    if isinstance(value, Mapping):
        return {k[:1].upper() + k[1:]: _pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pascal(v) for v in value]
    return value


def _tags(props: Mapping[str, Any]) -> list[dict[str, str]] | None:
    """Pulumi's `tags` map (what the resource itself sets; provider default tags are added by AWS) as CFN's list."""
    tags = props.get("tags") or props.get("tagsAll")
    if not tags:
        return None
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _drop_none(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if v is not None and v != [] and v != {}}


def logical_id(name: str) -> str:
    """A CloudFormation logical id from a Pulumi resource name: `ingestion-raw-bucket` -> `IngestionRawBucket`.

    Logical ids are alphanumeric; names that differ only in punctuation would collide, and that is checked.
    """
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)


# --- one function per CloudFormation type -----------------------------------------------------------------

Props = dict[str, Any]


def _bucket(r: Registered) -> Props:
    return {"BucketName": r.state.get("bucket"), "Tags": _tags(r.inputs)}


def _bucket_policy(r: Registered) -> Props:
    return {"Bucket": r.inputs.get("bucket"), "PolicyDocument": _document(r.inputs.get("policy"))}


def _function(r: Registered) -> Props:
    p = r.inputs
    reserved = p.get("reservedConcurrentExecutions")
    vpc = p.get("vpcConfig") or {}
    return {
        "FunctionName": r.state.get("name"),
        "Role": p.get("role"),
        "Runtime": p.get("runtime"),
        "Handler": p.get("handler"),
        # The code is an asset under Pulumi; CloudFormation needs some Code, and no check reads it.
        "Code": {"S3Bucket": PLACEHOLDER, "S3Key": PLACEHOLDER},
        "MemorySize": p.get("memorySize"),
        "Timeout": p.get("timeout"),
        "Architectures": p.get("architectures"),
        "EphemeralStorage": _pascal(p.get("ephemeralStorage")),
        "Environment": {"Variables": dict((p.get("environment") or {}).get("variables") or {})} or None,
        "KmsKeyArn": p.get("kmsKeyArn"),
        # -1 is Pulumi's "no reservation" (the provider's default), which CloudFormation expresses by omission.
        "ReservedConcurrentExecutions": reserved if reserved is not None and reserved >= 0 else None,
        "Layers": p.get("layers"),
        "DeadLetterConfig": {"TargetArn": p["deadLetterConfig"]["targetArn"]} if p.get("deadLetterConfig") else None,
        "VpcConfig": {"SubnetIds": vpc.get("subnetIds"), "SecurityGroupIds": vpc.get("securityGroupIds")}
        if vpc
        else None,
        "TracingConfig": _pascal(p.get("tracingConfig")),
        "CodeSigningConfigArn": p.get("codeSigningConfigArn"),
        "Tags": _tags(p),
    }


def _layer(r: Registered) -> Props:
    p = r.inputs
    return {
        "LayerName": p.get("layerName"),
        "Content": {"S3Bucket": PLACEHOLDER, "S3Key": PLACEHOLDER},
        "CompatibleRuntimes": p.get("compatibleRuntimes"),
        "CompatibleArchitectures": p.get("compatibleArchitectures"),
        "Description": p.get("description"),
    }


def _log_group(r: Registered) -> Props:
    p = r.inputs
    return {
        "LogGroupName": r.state.get("name") or p.get("name"),
        "RetentionInDays": p.get("retentionInDays"),
        "KmsKeyId": p.get("kmsKeyId"),
        "Tags": _tags(p),
    }


def _topic(r: Registered) -> Props:
    return {"TopicName": r.state.get("name"), "KmsMasterKeyId": r.inputs.get("kmsMasterKeyId"), "Tags": _tags(r.inputs)}


def _topic_subscription(r: Registered) -> Props:
    p = r.inputs
    return {"TopicArn": p.get("topic"), "Protocol": p.get("protocol"), "Endpoint": p.get("endpoint")}


def _topic_policy(r: Registered) -> Props:
    return {"Topics": [r.inputs.get("arn")], "PolicyDocument": _document(r.inputs.get("policy"))}


def _queue(r: Registered) -> Props:
    p = r.inputs
    return {
        "QueueName": r.state.get("name") or p.get("name"),
        "KmsMasterKeyId": p.get("kmsMasterKeyId"),
        "SqsManagedSseEnabled": p.get("sqsManagedSseEnabled"),
        "MessageRetentionPeriod": p.get("messageRetentionSeconds"),
        "RedrivePolicy": _document(p["redrivePolicy"]) if p.get("redrivePolicy") else None,
        "Tags": _tags(p),
    }


def _queue_policy(r: Registered) -> Props:
    return {"Queues": [r.inputs.get("queueUrl")], "PolicyDocument": _document(r.inputs.get("policy"))}


def _key(r: Registered) -> Props:
    p = r.inputs
    return {
        "Description": p.get("description"),
        "EnableKeyRotation": p.get("enableKeyRotation"),
        "KeyPolicy": _document(p.get("policy")),
        "PendingWindowInDays": p.get("deletionWindowInDays"),
        "Tags": _tags(p),
    }


def _alias(r: Registered) -> Props:
    return {"AliasName": r.inputs.get("name"), "TargetKeyId": r.inputs.get("targetKeyId")}


def _role(r: Registered) -> Props:
    p = r.inputs
    inline = [
        {"PolicyName": i.get("name"), "PolicyDocument": _document(i.get("policy"))}
        for i in p.get("inlinePolicies") or ()
        if i.get("policy")
    ]
    return {
        "RoleName": r.state.get("name"),
        "Description": p.get("description"),
        "AssumeRolePolicyDocument": _document(p.get("assumeRolePolicy")),
        "Policies": inline or None,
        "ManagedPolicyArns": p.get("managedPolicyArns"),
        "Tags": _tags(p),
    }


def _role_policy(r: Registered) -> Props:
    # An aws.iam.RolePolicy is an inline policy of one role: CloudFormation's AWS::IAM::Policy with Roles is
    # exactly that, and checkov's IAM checks read AWS::IAM::Policy.
    return {"PolicyName": r.name, "Roles": [r.inputs.get("role")], "PolicyDocument": _document(r.inputs.get("policy"))}


def _managed_policy(r: Registered) -> Props:
    return {"ManagedPolicyName": r.state.get("name"), "PolicyDocument": _document(r.inputs.get("policy"))}


def _state_machine(r: Registered) -> Props:
    p = r.inputs
    logging = p.get("loggingConfiguration") or {}
    tracing = p.get("tracingConfiguration") or {}
    return {
        "StateMachineName": r.state.get("name"),
        "StateMachineType": p.get("type"),
        "RoleArn": p.get("roleArn"),
        "DefinitionString": p.get("definition"),
        "LoggingConfiguration": {
            "Level": logging.get("level"),
            "IncludeExecutionData": logging.get("includeExecutionData"),
            "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": logging["logDestination"]}}]
            if logging.get("logDestination")
            else None,
        }
        if logging
        else None,
        "TracingConfiguration": {"Enabled": tracing.get("enabled")} if tracing else None,
        "Tags": _tags(p),
    }


def _schedule(r: Registered) -> Props:
    p = r.inputs
    target = p.get("target") or {}
    return {
        "Name": r.state.get("name"),
        "Description": p.get("description"),
        "GroupName": p.get("groupName"),
        "ScheduleExpression": p.get("scheduleExpression"),
        "ScheduleExpressionTimezone": p.get("scheduleExpressionTimezone"),
        "State": p.get("state"),
        "KmsKeyArn": p.get("kmsKeyArn"),
        "FlexibleTimeWindow": _pascal(p.get("flexibleTimeWindow")),
        "Target": _drop_none(
            {
                "Arn": target.get("arn"),
                "RoleArn": target.get("roleArn"),
                "Input": target.get("input"),
                "RetryPolicy": _pascal(target.get("retryPolicy")),
                "DeadLetterConfig": _pascal(target.get("deadLetterConfig")),
            }
        ),
    }


def _schedule_group(r: Registered) -> Props:
    return {"Name": r.state.get("name") or r.inputs.get("name"), "Tags": _tags(r.inputs)}


def _dimensions(dimensions: Mapping[str, str] | None) -> list[dict[str, str]]:
    return [{"Name": k, "Value": v} for k, v in sorted((dimensions or {}).items())]


def _alarm(r: Registered) -> Props:
    p = r.inputs
    return {
        "AlarmName": r.state.get("name"),
        "AlarmDescription": p.get("alarmDescription"),
        "AlarmActions": p.get("alarmActions"),
        "OKActions": p.get("okActions"),
        "InsufficientDataActions": p.get("insufficientDataActions"),
        "ComparisonOperator": p.get("comparisonOperator"),
        "EvaluationPeriods": p.get("evaluationPeriods"),
        "DatapointsToAlarm": p.get("datapointsToAlarm"),
        "Threshold": p.get("threshold"),
        "TreatMissingData": p.get("treatMissingData"),
        "Namespace": p.get("namespace"),
        "MetricName": p.get("metricName"),
        "Statistic": p.get("statistic"),
        "Period": p.get("period"),
        "Dimensions": _dimensions(p.get("dimensions")) or None,
        "Metrics": [
            _drop_none(
                {
                    "Id": q.get("id"),
                    "Expression": q.get("expression"),
                    "ReturnData": q.get("returnData"),
                    "MetricStat": {
                        "Metric": {
                            "Namespace": q["metric"].get("namespace"),
                            "MetricName": q["metric"].get("metricName"),
                            "Dimensions": _dimensions(q["metric"].get("dimensions")),
                        },
                        "Period": q["metric"].get("period"),
                        "Stat": q["metric"].get("stat"),
                    }
                    if q.get("metric")
                    else None,
                }
            )
            for q in p.get("metricQueries") or ()
        ]
        or None,
    }


def _dashboard(r: Registered) -> Props:
    return {"DashboardName": r.inputs.get("dashboardName"), "DashboardBody": r.inputs.get("dashboardBody")}


def _glue_database(r: Registered) -> Props:
    return {
        "CatalogId": r.inputs.get("catalogId") or PLACEHOLDER,
        "DatabaseInput": {"Name": r.inputs.get("name"), "Description": r.inputs.get("description")},
    }


def _glue_table(r: Registered) -> Props:
    p = r.inputs
    return {
        "CatalogId": p.get("catalogId") or PLACEHOLDER,
        "DatabaseName": p.get("databaseName"),
        "TableInput": _drop_none(
            {
                "Name": p.get("name"),
                "Description": p.get("description"),
                "TableType": p.get("tableType"),
                "Parameters": p.get("parameters"),
                "PartitionKeys": _pascal(p.get("partitionKeys")),
                "StorageDescriptor": _pascal(p.get("storageDescriptor")),
            }
        ),
    }


def _trail(r: Registered) -> Props:
    p = r.inputs
    return {
        "TrailName": r.state.get("name"),
        "S3BucketName": p.get("s3BucketName"),
        "IsLogging": p.get("enableLogging", True),
        "IsMultiRegionTrail": p.get("isMultiRegionTrail"),
        "EnableLogFileValidation": p.get("enableLogFileValidation"),
        "KMSKeyId": p.get("kmsKeyId"),
        "CloudWatchLogsLogGroupArn": p.get("cloudWatchLogsGroupArn"),
        "EventSelectors": _pascal(p.get("eventSelectors")),
        "AdvancedEventSelectors": _pascal(p.get("advancedEventSelectors")),
    }


# --- S3 settings, folded into their bucket ------------------------------------------------------------------


def _public_access_block(r: Registered) -> Props:
    p = r.inputs
    return {
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": p.get("blockPublicAcls"),
            "BlockPublicPolicy": p.get("blockPublicPolicy"),
            "IgnorePublicAcls": p.get("ignorePublicAcls"),
            "RestrictPublicBuckets": p.get("restrictPublicBuckets"),
        }
    }


def _encryption(r: Registered) -> Props:
    rules = []
    for rule in r.inputs.get("rules") or ():
        default = rule.get("applyServerSideEncryptionByDefault") or {}
        rules.append(
            _drop_none(
                {
                    "ServerSideEncryptionByDefault": _drop_none(
                        {"SSEAlgorithm": default.get("sseAlgorithm"), "KMSMasterKeyID": default.get("kmsMasterKeyId")}
                    ),
                    "BucketKeyEnabled": rule.get("bucketKeyEnabled"),
                }
            )
        )
    return {"BucketEncryption": {"ServerSideEncryptionConfiguration": rules}}


def _versioning(r: Registered) -> Props:
    return {"VersioningConfiguration": {"Status": (r.inputs.get("versioningConfiguration") or {}).get("status")}}


def _logging(r: Registered) -> Props:
    key_format = r.inputs.get("targetObjectKeyFormat") or {}
    partitioned = key_format.get("partitionedPrefix")
    return {
        "LoggingConfiguration": _drop_none(
            {
                "DestinationBucketName": r.inputs.get("targetBucket"),
                "LogFilePrefix": r.inputs.get("targetPrefix"),
                # CloudFormation's TargetObjectKeyFormat: PartitionedPrefix, or SimplePrefix (an empty object).
                "TargetObjectKeyFormat": {"PartitionedPrefix": _pascal(partitioned)}
                if partitioned is not None
                else ({"SimplePrefix": {}} if "simplePrefix" in key_format else None),
            }
        )
    }


def _lifecycle(r: Registered) -> Props:
    rules = []
    for rule in r.inputs.get("rules") or ():
        expiration = rule.get("expiration") or {}
        noncurrent = rule.get("noncurrentVersionExpiration") or {}
        abort = rule.get("abortIncompleteMultipartUpload") or {}
        rules.append(
            _drop_none(
                {
                    "Id": rule.get("id"),
                    "Status": rule.get("status"),
                    "Prefix": (rule.get("filter") or {}).get("prefix"),
                    "ExpirationInDays": expiration.get("days"),
                    "ExpiredObjectDeleteMarker": expiration.get("expiredObjectDeleteMarker"),
                    "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent["noncurrentDays"]}
                    if noncurrent.get("noncurrentDays") is not None
                    else None,
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": abort["daysAfterInitiation"]}
                    if abort.get("daysAfterInitiation") is not None
                    else None,
                }
            )
        )
    return {"LifecycleConfiguration": {"Rules": rules}}


def _ownership(r: Registered) -> Props:
    rule = r.inputs.get("rule") or {}
    return {"OwnershipControls": {"Rules": [{"ObjectOwnership": rule.get("objectOwnership")}]}}


BUCKET_TYPES = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})
ROLE = "aws:iam/role:Role"
# A managed policy attached to a role: CloudFormation lists it in the role's ManagedPolicyArns.
ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"

TRANSCRIBERS: dict[str, tuple[str, Callable[[Registered], Props]] | None] = {
    "aws:s3/bucket:Bucket": ("AWS::S3::Bucket", _bucket),
    "aws:s3/bucketV2:BucketV2": ("AWS::S3::Bucket", _bucket),
    "aws:s3/bucketPolicy:BucketPolicy": ("AWS::S3::BucketPolicy", _bucket_policy),
    # None: CloudFormation has no resource for an object in a bucket, and checkov no check of one.
    "aws:s3/bucketObjectv2:BucketObjectv2": None,
    "aws:s3/bucketObject:BucketObject": None,
    "aws:lambda/function:Function": ("AWS::Lambda::Function", _function),
    "aws:lambda/layerVersion:LayerVersion": ("AWS::Lambda::LayerVersion", _layer),
    "aws:cloudwatch/logGroup:LogGroup": ("AWS::Logs::LogGroup", _log_group),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("AWS::CloudWatch::Alarm", _alarm),
    "aws:cloudwatch/dashboard:Dashboard": ("AWS::CloudWatch::Dashboard", _dashboard),
    "aws:sns/topic:Topic": ("AWS::SNS::Topic", _topic),
    "aws:sns/topicSubscription:TopicSubscription": ("AWS::SNS::Subscription", _topic_subscription),
    "aws:sns/topicPolicy:TopicPolicy": ("AWS::SNS::TopicPolicy", _topic_policy),
    "aws:sqs/queue:Queue": ("AWS::SQS::Queue", _queue),
    "aws:sqs/queuePolicy:QueuePolicy": ("AWS::SQS::QueuePolicy", _queue_policy),
    "aws:kms/key:Key": ("AWS::KMS::Key", _key),
    "aws:kms/alias:Alias": ("AWS::KMS::Alias", _alias),
    "aws:iam/role:Role": ("AWS::IAM::Role", _role),
    "aws:iam/rolePolicy:RolePolicy": ("AWS::IAM::Policy", _role_policy),
    "aws:iam/policy:Policy": ("AWS::IAM::ManagedPolicy", _managed_policy),
    "aws:sfn/stateMachine:StateMachine": ("AWS::StepFunctions::StateMachine", _state_machine),
    "aws:scheduler/schedule:Schedule": ("AWS::Scheduler::Schedule", _schedule),
    "aws:scheduler/scheduleGroup:ScheduleGroup": ("AWS::Scheduler::ScheduleGroup", _schedule_group),
    "aws:glue/catalogDatabase:CatalogDatabase": ("AWS::Glue::Database", _glue_database),
    "aws:glue/catalogTable:CatalogTable": ("AWS::Glue::Table", _glue_table),
    "aws:cloudtrail/trail:Trail": ("AWS::CloudTrail::Trail", _trail),
}
"""Pulumi type -> (CloudFormation type, properties); None: deliberately not transcribed (see the comment)."""

BUCKET_SETTINGS: dict[str, Callable[[Registered], Props]] = {
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _public_access_block,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": _encryption,
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2": _encryption,
    "aws:s3/bucketVersioning:BucketVersioning": _versioning,
    "aws:s3/bucketVersioningV2:BucketVersioningV2": _versioning,
    "aws:s3/bucketLogging:BucketLogging": _logging,
    "aws:s3/bucketLoggingV2:BucketLoggingV2": _logging,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _lifecycle,
    "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2": _lifecycle,
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": _ownership,
}
"""Pulumi's separate S3 bucket settings -> the AWS::S3::Bucket properties they become on their bucket."""


def transcribe(deployment: Deployment) -> dict[str, Any]:
    """The CloudFormation template of everything `deployment` registered (see the module docstring).

    Pulumi's own types (`pulumi:providers:aws`) and this project's components carry no AWS resource and
    are skipped; every `aws:` type must be in `TRANSCRIBERS` or `BUCKET_SETTINGS`, or be a role policy attachment
    (folded into its role's ManagedPolicyArns).
    """
    resources: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    buckets: dict[str, dict[str, Any]] = {}
    settings: list[Registered] = []
    roles: dict[str, dict[str, Any]] = {}
    attachments: list[Registered] = []
    for r in deployment.resources:
        if not r.typ.startswith("aws:"):
            continue
        if r.typ in BUCKET_SETTINGS:
            settings.append(r)
            continue
        if r.typ == ROLE_POLICY_ATTACHMENT:
            attachments.append(r)
            continue
        if r.typ not in TRANSCRIBERS:
            raise UnmappedType(
                f"{r.typ} ({r.name}) has no CloudFormation transcription: add it to TRANSCRIBERS in "
                f"tests/infra/cfn_transcript.py with the properties checkov reads, or map it to None with the reason"
            )
        entry = TRANSCRIBERS[r.typ]
        if entry is None:
            continue
        cfn_type, properties = entry
        lid = logical_id(r.name)
        if lid in names:
            raise TranscriptionError(f"{r.name} and {names[lid]} both become logical id {lid}")
        names[lid] = r.name
        resource = {"Type": cfn_type, "Properties": _drop_none(_known(properties(r)))}
        resources[lid] = resource
        if r.typ in BUCKET_TYPES:
            buckets[r.state["bucket"]] = resource
        if r.typ == ROLE:
            roles[r.state.get("name") or r.name] = resource
    for r in attachments:
        role = _known(r.inputs.get("role"))
        if role not in roles:
            raise TranscriptionError(f"{r.typ} {r.name} attaches to role {role!r}, which the stack does not create")
        arns = roles[role]["Properties"].setdefault("ManagedPolicyArns", [])
        arns.append(_known(r.inputs.get("policyArn")))
    for r in settings:
        bucket = _known(r.inputs.get("bucket"))
        if bucket not in buckets:
            raise TranscriptionError(f"{r.typ} {r.name} configures bucket {bucket!r}, which the stack does not create")
        buckets[bucket]["Properties"].update(_drop_none(_known(BUCKET_SETTINGS[r.typ](r))))
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": DESCRIPTION,
        "Resources": resources,
    }


def pulumi_names(template: Mapping[str, Any], deployment: Deployment) -> dict[str, str]:
    """CloudFormation logical id -> the Pulumi resource name it was transcribed from."""
    return {logical_id(r.name): r.name for r in deployment.resources if logical_id(r.name) in template["Resources"]}


def dev_deployment() -> Deployment:
    """The dev stack (Pulumi.dev.yaml) through __main__.py, under fresh recording mocks."""
    from infra.stack_config import NAMESPACE
    from tests.infra.harness import RecordingMocks, dev_stack_config, run_main

    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project=NAMESPACE, stack="test", preview=False, monitor=mocks.monitor)
    try:
        return run_main(mocks, dev_stack_config())
    finally:
        pulumi.runtime.set_all_config({})


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.infra.cfn_transcript OUT.json", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(transcribe(dev_deployment()), indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
