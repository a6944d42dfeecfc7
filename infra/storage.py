"""Buckets the stack owns (raw, config, sources it is told to create, and their access logs), all secured the same
way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from handler.layout import LEDGER_ROOT
from infra.component import Component
from infra.policies import access_log_bucket_policy, deny_insecure_transport_policy
from infra.roles import policy_json
from infra.workflow_definition import MAP_RESULTS_PREFIX

ABORT_INCOMPLETE_MULTIPART_DAYS = 7
MAP_RESULTS_DAYS = 7
ACCESS_LOG_PREFIX = "s3-access-logs/"
"""Where every logged bucket's server access logs land in the log bucket. The partitioned key format adds
`<account>/<region>/<bucket>/<yyyy>/<mm>/<dd>/` below it, so one prefix serves every bucket and Athena can
partition on the bucket and the day."""

_SseDefault = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs
_AbortMultipart = aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs
_Expiration = aws.s3.BucketLifecycleConfigurationRuleExpirationArgs
_Noncurrent = aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs
_DELETE_MARKERS = _Expiration(expired_object_delete_marker=True)
"""Removes a delete marker once no version is left behind it."""


@dataclass
class SecureBucketArgs:
    """A bucket name from stack config, how to encrypt it, and how it is logged and protected."""

    bucket_name: str | None
    partition: pulumi.Input[str]
    kms_key_arn: str | None = None
    # Lets `pulumi destroy` remove a bucket that still holds objects (and versions): for dev stacks.
    force_destroy: bool = False
    # Only for a bucket that holds ledgers (the raw bucket): days a replaced or deleted version under
    # `_ingestion/` is kept. None: no ledger rule, every version is kept.
    ledger_noncurrent_version_days: int | None = None
    # Not disposable: `protect` (no update or destroy may delete or replace the bucket) and `retain_on_delete`
    # (a delete only forgets it). Only on the bucket itself: its settings can be recreated, its objects cannot.
    protect: bool = False
    # The stack's access log bucket, which gets this bucket's server access logs; None: no logging (the log
    # bucket itself: it must not log into itself).
    access_log_bucket: SecureBucket | None = None
    # Only for the access log bucket: the access logs it receives.
    log_delivery: LogDelivery | None = None


@dataclass
class LogDelivery:
    """What makes a SecureBucket the access log bucket: whose logs S3 may deliver into it, and for how long."""

    source_buckets: Sequence[str]
    account_id: pulumi.Input[str]
    retention_days: int


class SecureBucket(Component):
    """A private, encrypted, versioned bucket that refuses plain HTTP.

    Each setting is its own resource (the provider's model since v6), so each is visible and testable.
    """

    bucket: aws.s3.Bucket
    name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("storage:SecureBucket", name, opts)

        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            # None: the access log bucket, which no config names, gets Pulumi's unique `<logical>-<random>`.
            bucket=args.bucket_name,
            force_destroy=args.force_destroy,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect),
        )
        self.name = self.bucket.bucket
        self.arn = self.bucket.arn

        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self.child,
        )
        # ACLs off: every object belongs to the bucket owner, whoever wrote it (a source bucket may be
        # written by another account's uploader).
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=self.child,
        )
        self._create_encryption(name, args)
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=self.child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle", bucket=self.bucket.id, rules=lifecycle_rules(args), opts=self.child
        )
        # After the public access block: S3 rejects concurrent changes to a bucket's policy state.
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=self.bucket.id,
            policy=self._policy(args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )
        if args.access_log_bucket is not None:
            aws.s3.BucketLogging(
                f"{name}-access-logging",
                bucket=self.bucket.id,
                target_bucket=args.access_log_bucket.name,
                target_prefix=ACCESS_LOG_PREFIX,
                # `<prefix><account>/<region>/<bucket>/<yyyy>/<mm>/<dd>/<file>`, dated by the requests' time.
                target_object_key_format=aws.s3.BucketLoggingTargetObjectKeyFormatArgs(
                    partitioned_prefix=aws.s3.BucketLoggingTargetObjectKeyFormatPartitionedPrefixArgs(
                        partition_date_source="EventTime"
                    )
                ),
                # The log bucket's policy must let S3 deliver before the first log is due.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.access_log_bucket]),
            )
        self.register_outputs({"name": self.name, "arn": self.arn})

    def _policy(self, args: SecureBucketArgs) -> pulumi.Output[str]:
        if args.log_delivery is None:
            return policy_json(deny_insecure_transport_policy, partition=args.partition, bucket=self.bucket.bucket)
        return policy_json(
            access_log_bucket_policy,
            partition=args.partition,
            bucket=self.bucket.bucket,
            prefix=ACCESS_LOG_PREFIX,
            source_buckets=list(args.log_delivery.source_buckets),
            account_id=args.log_delivery.account_id,
        )

    def _create_encryption(self, name: str, args: SecureBucketArgs) -> None:
        # S3 delivers server access logs only into a bucket whose default encryption is SSE-S3: "Default
        # server-side encryption with AWS KMS keys (SSE-KMS) is not supported" for the destination bucket
        # (docs.aws.amazon.com/AmazonS3/latest/userguide/troubleshooting-server-access-logging.html).
        if args.kms_key_arn and args.log_delivery is None:
            default = _SseDefault(sse_algorithm="aws:kms", kms_master_key_id=args.kms_key_arn)
        else:
            default = _SseDefault(sse_algorithm="AES256")
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=default,
                    # One data key per bucket instead of one KMS call per object: a night's copy of
                    # thousands of files would otherwise be thousands of billed, throttled KMS requests.
                    bucket_key_enabled=(bool(args.kms_key_arn) and args.log_delivery is None) or None,
                )
            ],
            opts=self.child,
        )


def lifecycle_rules(args: SecureBucketArgs) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """What S3 cleans up by itself. No rule expires or transitions a current version of raw data or of the ledger;
    only the state machine's Map results, which nothing reads, and (in the access log bucket) the access logs
    expire."""
    # A copy that dies mid-way (a Lambda timeout during a multipart copy) leaves parts that are billed
    # and invisible in listings until someone aborts them.
    rules = [
        _rule(
            "abort-incomplete-multipart-uploads",
            abort_incomplete_multipart_upload=_AbortMultipart(days_after_initiation=ABORT_INCOMPLETE_MULTIPART_DAYS),
        )
    ]
    if args.log_delivery is not None:
        days = args.log_delivery.retention_days
        # The logs, whole bucket: a log expires `days` after delivery, and a version replaced or deleted before
        # then (by hand, or by this rule's expiry) is kept `days` more, so a log deleted early can be recovered.
        rules.append(
            _rule(
                "expire-access-logs",
                expiration=_Expiration(days=days),
                noncurrent_version_expiration=_Noncurrent(noncurrent_days=days),
            )
        )
        # The delete markers left once a log's last version is gone. A rule of its own: S3 refuses this flag
        # next to `days` in one Expiration.
        rules.append(_rule("remove-expired-log-delete-markers", expiration=_DELETE_MARKERS))
    if args.ledger_noncurrent_version_days is not None:
        # The runtime rewrites small ledger objects all the time (lock.json on every heartbeat,
        # open-run.json, last-run.json, the state) and deletes each run's work/ files at finalize; in a
        # versioned bucket every rewrite and delete leaves a noncurrent version that would be kept forever.
        # Only `_ingestion/` is filtered: the runtime refuses target prefixes and landed keys under it, so
        # landed data and its versions are never touched.
        rules.append(
            _rule(
                "expire-noncurrent-ledger-versions",
                prefix=LEDGER_ROOT,
                noncurrent_version_expiration=_Noncurrent(noncurrent_days=args.ledger_noncurrent_version_days),
                # Then removes the delete marker a deleted work/ file leaves once its last version is gone.
                # S3 forbids this flag only next to `days` or `date` in the same Expiration, which would
                # expire current versions; this rule sets neither, so one rule does both.
                expiration=_DELETE_MARKERS,
            )
        )
        # The state machine's Map results (its children's answers, kept only for someone debugging a run).
        rules.append(
            _rule("expire-map-results", prefix=MAP_RESULTS_PREFIX, expiration=_Expiration(days=MAP_RESULTS_DAYS))
        )
    return rules


def _rule(rule_id: str, prefix: str = "", **actions: Any) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    """An enabled rule over the objects under `prefix` (the whole bucket: ""), doing `actions`."""
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id=rule_id,
        status="Enabled",
        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
        **actions,
    )
