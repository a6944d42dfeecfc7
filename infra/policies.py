"""Every IAM and bucket policy of the stack, as plain functions from known ARNs to policy documents.

They take plain strings (the components resolve Outputs first and serialise the result), so tests and
parliament read exactly what is deployed, and one file shows everything any role may do.

Least privilege here means: exact ARNs, prefixes from the dataset config, no wildcard action in any
Allow, and `Resource: "*"` only where AWS offers nothing narrower (log delivery, see below).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from handler.config import DatasetConfig, Location
from handler.lineage_destination import LineageDestination
from infra.workflow_definition import MAP_RESULTS_PREFIX

VERSION = "2012-10-17"


def bucket_arn(partition: str, bucket: str) -> str:
    return f"arn:{partition}:s3:::{bucket}"


def objects_arn(partition: str, bucket: str, prefix: str) -> str:
    """Every object under a prefix (`prefix` is empty or ends with `/`, as in DatasetConfig)."""
    return f"arn:{partition}:s3:::{bucket}/{prefix}*"


def document(statements: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def service_trust_policy(
    service: str, account_id: str | None = None, source_arns: Sequence[str] = ()
) -> dict[str, Any]:
    """Who may assume a role: one AWS service, and (where the service sets it) only for this account and resource.

    `aws:SourceAccount` stops the confused deputy across accounts: another account's schedule or state
    machine cannot be pointed at this role, because the service would be acting for that other account.
    `aws:SourceArn` (ArnLike, patterns allowed) stops it inside the account too: another state machine or
    schedule group of this account cannot use the role either, only the resource the role is for.

    The Lambda execution role gets neither: Lambda's documentation gives no `aws:SourceArn` or
    `aws:SourceAccount` for assuming an execution role (its trust policy example has no condition), and a
    condition the service does not send would deny every invocation. What stands in for it: only an identity of
    this account with `iam:PassRole` on the role can attach it to a function (a role cannot be passed to
    another account), and the function's name is not known before it exists anyway.
    """
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    condition: dict[str, Any] = {}
    if account_id is not None:
        condition["StringEquals"] = {"aws:SourceAccount": account_id}
    if source_arns:
        condition["ArnLike"] = {"aws:SourceArn": list(source_arns)}
    if condition:
        statement["Condition"] = condition
    return document([statement])


def state_machine_source_arns(partition: str, region: str, account_id: str, name: str) -> list[str]:
    """What Step Functions may name as `aws:SourceArn` when it assumes the role of state machine `name`.

    AWS documents the state machine's ARN (its example allows `stateMachine:*`; docs.aws.amazon.com/step-functions/
    latest/dg/procedure-create-iam-role.html). Its versions and aliases (`stateMachine:<name>:<version>`) and the
    Distributed Map's runs and child executions (`mapRun:<name>/<label>:<id>`, `execution:<name>/<label>:<id>`)
    extend the name with `:` or `/`, which a state machine name cannot contain: the two patterns admit those of
    this state machine, whichever Step Functions sends, and no other state machine's, whatever its name.
    """
    base = f"arn:{partition}:states:{region}:{account_id}"
    return [f"{base}:stateMachine:{name}", f"{base}:*:{name}/*", f"{base}:*:{name}:*"]


def schedule_group_source_arn(partition: str, region: str, account_id: str, group: str) -> str:
    """What EventBridge Scheduler names as `aws:SourceArn` when a schedule assumes its execution role: the
    schedule *group's* ARN, since September 2023 (EventBridge Scheduler User Guide, "Troubleshooting quotas in
    EventBridge Scheduler": it "began supporting the ScheduleGroup ARN instead of the Schedule ARN in execution
    role trust policies")."""
    return f"arn:{partition}:scheduler:{region}:{account_id}:schedule-group/{group}"


def deny_insecure_transport_policy(partition: str, bucket: str) -> dict[str, Any]:
    """Bucket policy: refuse every request that does not use TLS."""
    return document([deny_insecure_transport_statement(partition, bucket)])


def deny_insecure_transport_statement(partition: str, bucket: str) -> dict[str, Any]:
    """The one wildcard action in the stack, in a Deny: it must cover every S3 action, present and future."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn(partition, bucket), f"{bucket_arn(partition, bucket)}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def access_log_bucket_policy(
    partition: str, bucket: str, prefix: str, source_buckets: Sequence[str], account_id: str
) -> dict[str, Any]:
    """The access log bucket's policy: TLS only, and S3's log delivery may write under `prefix`, only the logs of
    this stack's buckets, in this account.

    A bucket with ACLs off (BucketOwnerEnforced) takes no log-delivery ACL grant: the logging service principal
    is allowed here instead, conditioned on the bucket it logs (`aws:SourceArn`) and its account
    (`aws:SourceAccount`), as docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html
    gives it.
    """
    return document(
        [
            deny_insecure_transport_statement(partition, bucket),
            {
                "Sid": "S3ServerAccessLogDelivery",
                "Effect": "Allow",
                "Principal": {"Service": "logging.s3.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": objects_arn(partition, bucket, prefix),
                "Condition": {
                    "ArnLike": {"aws:SourceArn": [bucket_arn(partition, b) for b in sorted(source_buckets)]},
                    "StringEquals": {"aws:SourceAccount": account_id},
                },
            },
        ]
    )


@dataclass(frozen=True)
class RunnerScope:
    """What both roles that run the ingestion (the function's and the state machine's) are scoped by: the datasets
    they serve, the topic they report to, and the keys the buckets and the topic are encrypted with."""

    partition: str
    datasets: Sequence[DatasetConfig]
    topic_arn: str
    kms_key_arn: str | None = None
    region: str | None = None
    topic_key_arn: str | None = None

    def notify_statement(self) -> dict[str, Any]:
        """Both publish run reports: the state machine after each run, the function for a one-shot run."""
        return {"Sid": "Notify", "Effect": "Allow", "Action": "sns:Publish", "Resource": self.topic_arn}

    def key_statements(self) -> list[dict[str, Any]]:
        """Both read the buckets and publish to the topic, so both use the same keys (`key_statements`)."""
        return key_statements(self.kms_key_arn, self.topic_key_arn, self.region)


def function_policy(
    *,
    scope: RunnerScope,
    config_bucket: str,
    config_keys: Sequence[str],
    log_group_arn: str,
    lineage: LineageDestination | None = None,
    account_id: str | None = None,
    partition_arns: Sequence[str] = (),
) -> dict[str, Any]:
    """What the ingestion Lambda may do, derived from the datasets it serves.

    Per dataset: list and read the source prefix (and its inventory reports, if it plans from them); write,
    verify (HeadObject is s3:GetObject) and delete its own failed copies under the target prefix; read, write
    and delete its ledger (`_ingestion/<dataset>/`). Plus: read its config objects, publish to its topic, write
    its own logs, and deliver lineage events where the stack's `lineage` setting says (`lineage_statements`). With
    `partition_arns` (`glue_partition_arns`): register partitions in the stack's tables.
    """
    partition, datasets = scope.partition, scope.datasets
    statements: list[dict[str, Any]] = []
    sids = _sids([ds.name for ds in datasets])
    for ds in datasets:
        sid = sids[ds.name]
        list_source: dict[str, Any] = {
            "Sid": f"ListSource{sid}",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn(partition, ds.source.bucket),
        }
        # An empty prefix means the whole bucket. A request without a Prefix carries no s3:prefix key, and
        # StringLike on a missing key is false, so a "*" condition would deny exactly that listing.
        if ds.source.prefix:
            list_source["Condition"] = {"StringLike": {"s3:prefix": [f"{ds.source.prefix}*"]}}
        statements.append(list_source)
        statements.append(
            {
                "Sid": f"ReadSource{sid}",
                "Effect": "Allow",
                # CopyObject copies the source's tags by default, which needs GetObjectTagging on the
                # source and PutObjectTagging on the target whenever the source object has tags.
                "Action": ["s3:GetObject", "s3:GetObjectTagging"],
                "Resource": objects_arn(partition, ds.source.bucket, ds.source.prefix),
            }
        )
        if ds.inventory is not None:
            # Planning from S3 Inventory: a delimiter listing of the report folders, and GETs of the
            # manifests and data files, all under this inventory's own prefix (docs/inventory.md).
            statements.append(
                {
                    "Sid": f"ListInventory{sid}",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": bucket_arn(partition, ds.inventory.bucket),
                    "Condition": {"StringLike": {"s3:prefix": [f"{ds.inventory.prefix}*"]}},
                }
            )
            statements.append(
                {
                    "Sid": f"ReadInventory{sid}",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": objects_arn(partition, ds.inventory.bucket, ds.inventory.prefix),
                }
            )
        statements.append(
            {
                "Sid": f"LandTarget{sid}",
                "Effect": "Allow",
                "Action": [
                    "s3:PutObject",
                    "s3:PutObjectTagging",
                    "s3:GetObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                ],
                "Resource": objects_arn(partition, ds.target.bucket, ds.target.prefix),
            }
        )
        statements.append(
            {
                "Sid": f"Ledger{sid}",
                "Effect": "Allow",
                "Action": [
                    "s3:PutObject",
                    "s3:GetObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                ],
                "Resource": objects_arn(partition, ds.target.bucket, ds.ledger_prefix),
            }
        )
    # Deliberately without an s3:prefix condition. The runtime tells "not landed yet" from "landed" by a
    # 404 from HeadObject/GetObject on the target, and S3 answers 403 instead of 404 unless the caller
    # may ListBucket the bucket; a GetObject request carries no s3:prefix, so a prefix condition would
    # turn every "not there yet" into AccessDenied. The target is the stack's own raw bucket.
    statements.append(
        {
            "Sid": "ListTargets",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": sorted({bucket_arn(partition, ds.target.bucket) for ds in datasets}),
        }
    )
    statements.append(
        {
            "Sid": "ReadConfig",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": [f"{bucket_arn(partition, config_bucket)}/{k}" for k in config_keys],
        }
    )
    statements.append(scope.notify_statement())
    statements.append(
        {
            "Sid": "OwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{log_group_arn}:*",
        }
    )
    statements.extend(read_key_statements(partition, datasets))
    # S3 for the buckets; SNS for a one-shot run's own report (an action-less event publishes it).
    statements.extend(scope.key_statements())
    if lineage is not None:
        if scope.region is None or account_id is None:
            raise ValueError("a lineage destination's grants need the region and the account")
        statements.extend(lineage_statements(partition, scope.region, account_id, lineage))
    if partition_arns:
        statements.append(register_partitions_statement(partition_arns))
    return document(statements)


def glue_partition_arns(
    partition: str, region: str, account_id: str, database: str, tables: Sequence[str]
) -> list[str]:
    """What BatchCreatePartition into `database`'s `tables` is authorized on: the table, and every ancestor of it
    ("All operations performed on a Data Catalog resource require permission on the resource and all the
    ancestors of that resource", AWS Glue developer guide, "Specifying AWS Glue resource ARNs"): the catalog and
    the database. Exact tables, no `table/<db>/*`: the stack's own raw and ledger tables, nothing else."""
    base = f"arn:{partition}:glue:{region}:{account_id}"
    return [
        f"{base}:catalog",
        f"{base}:database/{database}",
        *(f"{base}:table/{database}/{table}" for table in sorted(set(tables))),
    ]


def register_partitions_statement(partition_arns: Sequence[str]) -> dict[str, Any]:
    """The commit registers its night's partitions (handler/partitions.py): BatchCreatePartition only. It names
    the partitions it makes from the table specs the stack deployed, so it reads no table (no glue:GetTable) and
    checks for none first (an existing partition comes back as a per-entry AlreadyExistsException)."""
    return {
        "Sid": "RegisterPartitions",
        "Effect": "Allow",
        "Action": "glue:BatchCreatePartition",
        "Resource": list(partition_arns),
    }


def read_key_statements(partition: str, datasets: Sequence[DatasetConfig]) -> list[dict[str, Any]]:
    """kms:Decrypt on the keys the datasets name for what the function reads: sources and inventory reports.

    The role's half of a grant whose other half is the key's policy (docs/deploy.md): for a key of another
    account AWS needs both, and for one of this account whose policy delegates to IAM, this half alone. One
    statement per key, sorted by ARN, so a key two datasets share is allowed once.

    - Only kms:Decrypt: reading an SSE-KMS object needs it (GetObject, and so CopyObject and UploadPartCopy of
      it as the source), and so does HeadObject with ChecksumMode, which the runtime asks for (S3 API reference,
      HeadObject `ChecksumMode`). Writing the copies uses the raw bucket's key, never these.
    - `kms:ViaService`: only S3 may use the key for the role, in the key's region, which is the bucket's: S3 uses
      only a key in the bucket's own region (S3 user guide, "Using server-side encryption with AWS KMS keys").
    - `kms:EncryptionContext:aws:s3:arn`: S3 decrypts an object under the object's ARN, or the bucket's ARN when
      the object was written with an S3 Bucket Key (user guide, "Encryption context"; "Reducing the cost of
      SSE-KMS with Amazon S3 Bucket Keys"), so the key opens only this dataset's objects, the pattern AWS gives
      for replication roles ("Replicating objects created with server-side encryption (SSE) using KMS keys").
      With a Bucket Key the bucket ARN stands for every object of the bucket; the S3 statements keep the prefix.
    """
    contexts: dict[str, set[str]] = {}
    for ds in datasets:
        if ds.source_kms_key_arn:
            contexts.setdefault(ds.source_kms_key_arn, set()).update(_encryption_contexts(partition, ds.source))
        if ds.inventory is not None and ds.inventory_kms_key_arn:
            contexts.setdefault(ds.inventory_kms_key_arn, set()).update(_encryption_contexts(partition, ds.inventory))
    return [
        {
            "Sid": f"UseReadKey{number}",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key_arn,
            "Condition": {
                "StringEquals": {"kms:ViaService": f"s3.{key_arn.split(':')[3]}.amazonaws.com"},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": sorted(arns)},
            },
        }
        for number, (key_arn, arns) in enumerate(sorted(contexts.items()), start=1)
    ]


def _encryption_contexts(partition: str, location: Location) -> tuple[str, str]:
    """The `aws:s3:arn` values S3 decrypts a location's objects under: the bucket's ARN (S3 Bucket Key), or the
    object's ARN, under the location's prefix."""
    return bucket_arn(partition, location.bucket), objects_arn(partition, location.bucket, location.prefix)


MAP_LISTS = ("shards-*.json", "batches.json", "final-shards.json")
"""The lists under a run's work/ that the state machine's Distributed Maps read (handler/ledger.py names them)."""


def workflow_policy(*, scope: RunnerScope, function_arn: str) -> dict[str, Any]:
    """What the state machine may do before it exists: invoke, publish, read batch lists, log.

    It must be attached before the state machine is created, because CreateStateMachine checks that
    the role can deliver logs. Running its own Distributed Map children needs the state machine's ARN and
    lives in `map_run_policy`.
    """
    partition, datasets = scope.partition, scope.datasets
    statements: list[dict[str, Any]] = [
        {
            "Sid": "InvokeIngestFunction",
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            # The function, and its versions/aliases should the definition ever name one.
            "Resource": [function_arn, f"{function_arn}:*"],
        },
        scope.notify_statement(),
        {
            "Sid": "ReadMapLists",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            # Exactly what the Maps' ItemReaders read under _ingestion/<dataset>/work/<run_id>/: each planning
            # round's shards, the batches, the shards to finalize.
            "Resource": sorted(
                f"{bucket_arn(partition, ds.target.bucket)}/{ds.ledger_prefix}work/*/{name}"
                for ds in datasets
                for name in MAP_LISTS
            ),
        },
        {
            "Sid": "WriteMapResults",
            "Effect": "Allow",
            # Each Map's ResultWriter writes its children's outputs under one prefix of the raw bucket, outside
            # every dataset's ledger (infra/workflow_definition.py, MAP_RESULTS_PREFIX).
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
            "Resource": sorted({f"{bucket_arn(partition, ds.target.bucket)}/{MAP_RESULTS_PREFIX}*" for ds in datasets}),
        },
        {
            "Sid": "DeliverLogs",
            "Effect": "Allow",
            # These are the CloudWatch Logs vended-delivery APIs Step Functions calls on the role's behalf
            # to set up logging. None of them supports resource-level permissions (the Service
            # Authorization Reference lists no resource type for them), so "*" is the narrowest
            # resource AWS accepts. It is the only Resource "*" in the stack.
            "Action": [
                "logs:CreateLogDelivery",
                "logs:GetLogDelivery",
                "logs:UpdateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups",
            ],
            "Resource": "*",
        },
    ]
    # Reading a batch list from an SSE-KMS bucket and publishing to the encrypted topic.
    statements.extend(scope.key_statements())
    return document(statements)


def map_run_policy(state_machine_arn: str) -> dict[str, Any]:
    """Distributed Map: the state machine starts, watches and stops child executions of itself.

    Children of a Map run are named `execution:<state machine>/<map run label>:<id>` (or `express:` for
    EXPRESS children), so `<name>/*` covers them and nothing of any other state machine.
    """
    prefix, _, name = state_machine_arn.rpartition(":stateMachine:")
    if not prefix or not name:
        raise ValueError(f"not a state machine ARN: {state_machine_arn!r}")
    return document(
        [
            {
                "Sid": "StartMapRunChildren",
                "Effect": "Allow",
                "Action": "states:StartExecution",
                "Resource": state_machine_arn,
            },
            {
                "Sid": "ManageMapRunChildren",
                "Effect": "Allow",
                "Action": ["states:DescribeExecution", "states:StopExecution"],
                "Resource": [f"{prefix}:execution:{name}/*", f"{prefix}:express:{name}/*"],
            },
        ]
    )


def scheduler_policy(state_machine_arn: str, dead_letter_queue_arns: Sequence[str] = ()) -> dict[str, Any]:
    """EventBridge Scheduler may start this state machine, and send a start that kept failing to the schedules' own
    dead-letter queues: the execution role is what delivers to a schedule's DLQ (EventBridge Scheduler User Guide,
    "Configuring a schedule's dead-letter queue": https://docs.aws.amazon.com/scheduler/latest/UserGuide/
    configuring-schedule-dlq.html). Nothing else."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "StartIngestion",
            "Effect": "Allow",
            "Action": "states:StartExecution",
            "Resource": state_machine_arn,
        }
    ]
    if dead_letter_queue_arns:
        statements.append(
            {
                "Sid": "DeadLetterFailedStarts",
                "Effect": "Allow",
                "Action": "sqs:SendMessage",
                "Resource": sorted(dead_letter_queue_arns),
            }
        )
    return document(statements)


def deny_insecure_transport_queue_policy(queue_arn: str) -> dict[str, Any]:
    """Queue policy: refuse every request to the queue that does not use TLS, as the buckets do. A Deny with every
    SQS action, present and future; it grants nothing (the scheduler role's own policy allows its sends)."""
    return document(
        [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ]
    )


def key_statements(kms_key_arn: str | None, topic_key_arn: str | None, region: str | None) -> list[dict[str, Any]]:
    """The keys a role that reads the buckets and publishes to the topic uses: the stack key (buckets and topic),
    or, without one, only the topic's own key (the buckets are SSE-S3)."""
    if kms_key_arn:
        return [kms_statement(kms_key_arn, region, services=("s3", "sns"))]
    if topic_key_arn:
        return [kms_statement(topic_key_arn, region, services=("sns",), sid="UseTopicKey")]
    return []


def topic_key_policy(partition: str, region: str, account_id: str, alarm_prefix: str) -> dict[str, Any]:
    """The policy of the key the stack creates for its topic when it has no stack key.

    Why a key of its own: CloudWatch alarms cannot publish to a topic encrypted with SNS's AWS managed key
    (its policy cannot name the CloudWatch service, and nobody can edit it). The account administers and uses
    the key through IAM, listed action by action rather than `kms:*`; the alarms of this stack may use it.
    """
    return document(
        [
            {
                "Sid": "AccountAdministersAndUsesTheKeyThroughIam",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": [*TOPIC_KEY_ADMIN_ACTIONS, "kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*",
            },
            alarm_key_policy_statement(partition, region, account_id, alarm_prefix),
        ]
    )


TOPIC_KEY_ADMIN_ACTIONS = (
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:PutKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:EnableKeyRotation",
    "kms:DisableKeyRotation",
    "kms:ListResourceTags",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateKeyDescription",
    "kms:ListGrants",
    "kms:RevokeGrant",
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
)
"""What the provider reads and changes on the key, and what its administrators need to manage and retire it."""


def kms_statement(
    kms_key_arn: str, region: str | None, services: Sequence[str], sid: str = "UseStackKey"
) -> dict[str, Any]:
    """Use of a key, only through the services that encrypt with it."""
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": kms_key_arn,
    }
    if region:
        statement["Condition"] = {
            "StringEquals": {"kms:ViaService": [f"{service}.{region}.amazonaws.com" for service in services]}
        }
    return statement


def alarm_key_policy_statement(partition: str, region: str, account_id: str, alarm_prefix: str) -> dict[str, Any]:
    """The statement the stack key's *key policy* needs before the alarms can publish to the encrypted topic.

    CloudWatch publishes as the service itself, not as a role of this stack, and a key's policy is its
    owner's: the stack cannot add to it without replacing every other statement. So it is exported
    (`topicKeyPolicyStatement`) for the key's owner to add, scoped to this account's alarms of this stack. In a key
    policy, Resource "*" is the key itself.
    """
    return {
        "Sid": "AllowIngestionAlarmsToPublish",
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": account_id},
            "ArnLike": {"aws:SourceArn": f"arn:{partition}:cloudwatch:{region}:{account_id}:alarm:{alarm_prefix}*"},
        },
    }


LOGS_KEY_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
)
"""What CloudWatch Logs needs of a key that encrypts a log group. AWS's statement (docs.aws.amazon.com/
AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html) gives `kms:Encrypt*`, `kms:Decrypt*`, `kms:ReEncrypt*`,
`kms:GenerateDataKey*` and `kms:Describe*` under the encryption-context condition; these are the symmetric-key
actions those match, named, as every Allow of this project names its actions. `kms:DescribeKey` is left out: its
requests carry no encryption context, so under that condition AWS's statement never allows it either."""


def logs_key_policy_statement(
    partition: str, region: str, account_id: str, log_groups: Sequence[str], dns_suffix: str = "amazonaws.com"
) -> dict[str, Any]:
    """The statement `logsKmsKeyArn`'s *key policy* needs before the stack can create its log groups with it.

    CloudWatch Logs encrypts as the regional service principal and checks the key when the group is created, so
    the statement must be in the key policy first. The encryption context names the log group, which scopes the
    grant to this stack's groups (name patterns: the function's group is named after a function whose name
    Pulumi picks, the state machine's has a name prefix). Exported as `logsKeyPolicyStatement`.
    """
    return {
        "Sid": "AllowIngestionLogGroups",
        "Effect": "Allow",
        "Principal": {"Service": f"logs.{region}.{dns_suffix}"},
        "Action": list(LOGS_KEY_ACTIONS),
        "Resource": "*",
        "Condition": {
            "ArnLike": {
                "kms:EncryptionContext:aws:logs:arn": [
                    f"arn:{partition}:logs:{region}:{account_id}:log-group:{group}" for group in log_groups
                ]
            }
        },
    }


def _sids(names: Sequence[str]) -> dict[str, str]:
    """A unique statement-id part per dataset: Sids allow only [A-Za-z0-9], dataset names also '-', '_'.

    `a-b` and `a_b` both become `AB`; a number keeps them apart.
    """
    camel = {name: "".join(p.capitalize() for p in name.replace("_", "-").split("-")) for name in names}
    counts: dict[str, int] = {}
    for value in camel.values():
        counts[value] = counts.get(value, 0) + 1
    return {name: value if counts[value] == 1 else f"{value}{i}" for i, (name, value) in enumerate(camel.items())}


# ---- lineage delivery (the `send_lineage` step) ------------------------------------------------------------


def lineage_statements(
    partition: str, region: str, account_id: str, destination: LineageDestination
) -> list[dict[str, Any]]:
    """What delivering a run's lineage events needs, and nothing more: DataZone's PostLineageEvent; or, for an
    HTTP endpoint with a key, reading that one secret or parameter, and `kms:Decrypt` only when
    the setting names a customer managed key (the AWS managed keys `aws/secretsmanager` and `aws/ssm` need no grant
    in the caller's policy), only through the service that keeps the key. An endpoint without a key needs nothing.

    A secret given by name is granted as `<name>-??????`: Secrets Manager appends six characters to the name in the
    ARN, and `-*` would also match another secret whose name starts with this one's and a dash (Secrets Manager
    user guide, "Grant access to secrets by name"). An SSM parameter's ARN is `parameter/` and its name without a
    leading `/`."""
    if destination.datazone_domain is not None:
        # PostLineageEvent takes no resource type and no condition key (Service Authorization Reference, Amazon
        # DataZone: "Resource types" is empty for it, while GetDomain or TagResource name `domain*`): a statement
        # naming the domain's ARN would match no request and every delivery would be denied. `*` is the only
        # resource it can be granted on; which domain is the function's own setting, not the caller's choice.
        return [
            {
                "Sid": "PostLineageEvents",
                "Effect": "Allow",
                "Action": "datazone:PostLineageEvent",
                "Resource": "*",
            }
        ]
    secret, parameter = destination.api_key_secret, destination.api_key_parameter
    if secret is not None:
        key_region = secret.split(":")[3] if secret.startswith("arn:") else region
        resource = (
            secret
            if secret.startswith("arn:")
            else f"arn:{partition}:secretsmanager:{region}:{account_id}:secret:{secret}-??????"
        )
        read, via = {"Action": "secretsmanager:GetSecretValue", "Resource": resource}, "secretsmanager"
    elif parameter is not None:
        key_region = region
        resource = f"arn:{partition}:ssm:{region}:{account_id}:parameter/{parameter.lstrip('/')}"
        read, via = {"Action": "ssm:GetParameter", "Resource": resource}, "ssm"
    else:
        return []
    statements: list[dict[str, Any]] = [{"Sid": "ReadLineageApiKey", "Effect": "Allow", **read}]
    if destination.kms_key_arn is not None:
        statements.append(
            {
                "Sid": "DecryptLineageApiKey",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": destination.kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"{via}.{key_region}.amazonaws.com"}},
            }
        )
    return statements
