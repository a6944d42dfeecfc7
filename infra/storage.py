"""Buckets the stack owns (raw, config, and sources it is told to create), all secured the same way."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from handler.config import LEDGER_ROOT
from infra.policies import deny_insecure_transport_policy
from infra.roles import policy_json
from infra.workflow_definition import MAP_RESULTS_PREFIX

ABORT_INCOMPLETE_MULTIPART_DAYS = 7
MAP_RESULTS_DAYS = 7

_SseDefault = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs


@dataclass
class SecureBucketArgs:
    """A bucket name from stack config and how to encrypt it."""

    bucket_name: str
    partition: pulumi.Input[str]
    kms_key_arn: str | None = None
    # Lets `pulumi destroy` remove a bucket that still holds objects (and versions): for dev stacks.
    force_destroy: bool = False
    # Only for a bucket that holds ledgers (the raw bucket): days a replaced or deleted version under
    # `_ingestion/` is kept. None: no ledger rule, every version is kept.
    ledger_noncurrent_version_days: int | None = None


class SecureBucket(pulumi.ComponentResource):
    """A private, encrypted, versioned bucket that refuses plain HTTP.

    Each setting is its own resource (the provider's model since v6), so each is visible and testable.
    """

    bucket: aws.s3.Bucket
    name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("data-file-ingestion:storage:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.bucket = aws.s3.Bucket(
            f"{name}-bucket", bucket=args.bucket_name, force_destroy=args.force_destroy, opts=child
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
            opts=child,
        )
        # ACLs off: every object belongs to the bucket owner, whoever wrote it (a source bucket may be
        # written by another account's uploader).
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        self._create_encryption(name, args, child)
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle", bucket=self.bucket.id, rules=lifecycle_rules(args), opts=child
        )
        # After the public access block: S3 rejects concurrent changes to a bucket's policy state.
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=self.bucket.id,
            policy=policy_json(deny_insecure_transport_policy, partition=args.partition, bucket=self.bucket.bucket),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )
        self.register_outputs({"name": self.name, "arn": self.arn})

    def _create_encryption(self, name: str, args: SecureBucketArgs, child: pulumi.ResourceOptions) -> None:
        if args.kms_key_arn:
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
                    bucket_key_enabled=bool(args.kms_key_arn) or None,
                )
            ],
            opts=child,
        )


def lifecycle_rules(args: SecureBucketArgs) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """What S3 cleans up by itself. No rule expires or transitions a current version of raw data or of the ledger;
    only the state machine's Map results, which nothing reads, expire."""
    # A copy that dies mid-way (a Lambda timeout during a multipart copy) leaves parts that are billed
    # and invisible in listings until someone aborts them.
    rules = [
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="abort-incomplete-multipart-uploads",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
            abort_incomplete_multipart_upload=(
                aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=ABORT_INCOMPLETE_MULTIPART_DAYS
                )
            ),
        )
    ]
    if args.ledger_noncurrent_version_days is not None:
        # The runtime rewrites small ledger objects all the time (lock.json on every heartbeat,
        # open-run.json, last-run.json, the state) and deletes each run's work/ files at finalize; in a
        # versioned bucket every rewrite and delete leaves a noncurrent version that would be kept forever.
        # Only `_ingestion/` is filtered: the runtime refuses target prefixes and landed keys under it, so
        # landed data and its versions are never touched.
        rules.append(
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-noncurrent-ledger-versions",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=LEDGER_ROOT),
                noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    noncurrent_days=args.ledger_noncurrent_version_days
                ),
                # Then removes the delete marker a deleted work/ file leaves once its last version is gone.
                # S3 forbids this flag only next to `days` or `date` in the same Expiration, which would
                # expire current versions; this rule sets neither, so one rule does both.
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(expired_object_delete_marker=True),
            )
        )
        # The state machine's Map results (its children's answers, kept only for someone debugging a run).
        rules.append(
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-map-results",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=MAP_RESULTS_PREFIX),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=MAP_RESULTS_DAYS),
            )
        )
    return rules
