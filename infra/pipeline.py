"""The whole ingestion pipeline of one stack, composed from the single-concern components."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from handler.ledger_tables import LEDGER_TABLES
from handler.tables import glue_table_specs
from infra.catalog import LedgerCatalog, LedgerCatalogArgs, default_database_name
from infra.component import Component
from infra.config_objects import CONFIG_KEY_TEMPLATE, ConfigObjects, ConfigObjectsArgs
from infra.environment import Environment
from infra.function import IngestFunction, IngestFunctionArgs, log_group_pattern
from infra.monitoring import Monitoring, MonitoringArgs
from infra.names import stack_scoped_name
from infra.notifications import Notifications, NotificationsArgs
from infra.policies import alarm_key_policy_statement, logs_key_policy_statement
from infra.raw_tables import RawTables, RawTablesArgs
from infra.runners import RunnerArgs
from infra.schedule import SCHEDULE_GROUP_NAME_LIMIT, DatasetSchedules, DatasetSchedulesArgs
from infra.sdk_layer import SdkLayer
from infra.stack_config import StackConfig
from infra.storage import LogDelivery, SecureBucket, SecureBucketArgs
from infra.tags import default_tags
from infra.workflow import STATE_MACHINE_NAME_LIMIT, Workflow, WorkflowArgs, log_group_prefix


@dataclass
class IngestionPipelineArgs:
    """The validated stack config and where the runtime package is."""

    config: StackConfig
    package_dir: Path
    sdk_layer: SdkLayer | None = None
    """The function's pinned SDK (`installed_sdk_layer`); needed when `config.function.sdk_layer`."""


class IngestionPipeline(Component):
    """Buckets, config objects, topic, function, state machine and schedules for the configured datasets.

    Account, region and partition come from the provider's credentials, never from code, so the same
    program deploys anywhere the stack config points it.
    """

    access_log_bucket: SecureBucket
    raw_bucket: SecureBucket
    config_bucket: SecureBucket
    source_buckets: dict[str, SecureBucket]
    config_objects: ConfigObjects
    notifications: Notifications
    function: IngestFunction
    workflow: Workflow
    schedules: DatasetSchedules
    catalog: LedgerCatalog
    raw_tables: RawTables
    monitoring: Monitoring
    exports: dict[str, Any]

    def __init__(self, name: str, args: IngestionPipelineArgs, opts: pulumi.ResourceOptions | None = None):
        config = args.config
        if config.tags:
            # A transformation of this component applies to every resource under it (infra/tags.py: why not a
            # provider's default_tags).
            opts = pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(transformations=[default_tags(config.tags)])
            )
        super().__init__("pipeline:IngestionPipeline", name, opts)
        datasets = list(config.datasets.datasets.values())
        invoke_opts = pulumi.InvokeOutputOptions(parent=self)
        partition_info = aws.get_partition_output(opts=invoke_opts)
        environment = Environment(
            partition=partition_info.partition,
            region=aws.get_region_output(opts=invoke_opts).region,
            account_id=aws.get_caller_identity_output(opts=invoke_opts).account_id,
        )
        protect = not config.disposable
        # Fixed before creation, so the trust policies can name them (aws:SourceArn).
        project, stack = pulumi.get_project(), pulumi.get_stack()
        state_machine_name = stack_scoped_name(project, stack, STATE_MACHINE_NAME_LIMIT)
        schedule_group_name = stack_scoped_name(project, stack, SCHEDULE_GROUP_NAME_LIMIT)
        function_name, workflow_name = f"{name}-lambda", f"{name}-workflow"

        metrics_namespace = f"{project}/{stack}"
        monitoring_name = f"{name}-monitoring"
        alarm_prefix = f"{monitoring_name}-"  # every alarm's name starts so: the topic key lets those publish
        # Known before anything exists, so the function's environment and role can name the database and its
        # tables (the commit registers its night's partitions there: handler/partitions.py).
        database_name = config.glue_database or default_database_name(project, stack)
        glue_tables = [*(table.name for table in LEDGER_TABLES), *(spec.name for spec in glue_table_specs(datasets))]

        self._create_buckets(name, config, environment, protect=protect)
        self.config_objects = ConfigObjects(
            f"{name}-config-objects",
            ConfigObjectsArgs(bucket=self.config_bucket.bucket.id, datasets=datasets),
            opts=self.child,
        )
        self.notifications = Notifications(
            f"{name}-notifications",
            NotificationsArgs(
                subscriptions=config.subscriptions,
                environment=environment,
                alarm_prefix=alarm_prefix,
                kms_key_arn=config.kms_key_arn,
                protect=protect,
            ),
            opts=self.child,
        )
        runner = RunnerArgs(
            datasets=datasets,
            topic_arn=self.notifications.topic_arn,
            environment=environment,
            log_retention_days=config.log_retention_days,
            kms_key_arn=config.kms_key_arn,
            topic_key_arn=self.notifications.key_arn,
            logs_kms_key_arn=config.logs_kms_key_arn,
        )
        self.function = IngestFunction(
            function_name,
            IngestFunctionArgs(
                runner=runner,
                package_dir=args.package_dir,
                # The reservation resolved: the number given, the one the datasets need, or none.
                settings=replace(config.function, reserved_concurrency=config.reserved_concurrency),
                config_bucket=config.config_bucket,
                config_key_template=CONFIG_KEY_TEMPLATE,
                config_keys=sorted(self.config_objects.keys.values()),
                metrics_namespace=metrics_namespace,
                sdk_layer=args.sdk_layer,
                lineage=config.lineage,
                glue_database=database_name,
                glue_tables=glue_tables,
            ),
            # The function names the config bucket by its configured name; wait until it exists.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.config_bucket]),
        )
        self.workflow = Workflow(
            workflow_name,
            WorkflowArgs(
                runner=runner,
                function_arn=self.function.arn,
                map_concurrency=config.workflow.map_concurrency,
                s3_writes_per_second=config.workflow.s3_writes_per_second,
                tolerated_failure_percentage=config.workflow.tolerated_failure_percentage,
                lambda_timeout_seconds=config.function.timeout_seconds,
                execution_timeout_seconds=config.workflow.timeout_hours * 3600,
                log_level=config.workflow.log_level,
                state_machine_name=state_machine_name,
                send_lineage=config.lineage is not None,
            ),
            # The whole function component: its role policy must be in place before a run can start.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.function]),
        )
        self.catalog = LedgerCatalog(
            f"{name}-catalog",
            LedgerCatalogArgs(
                database_name=database_name,
                raw_bucket=self.raw_bucket.name,
                datasets=[ds.name for ds in datasets],
            ),
            opts=self.child,
        )
        self.raw_tables = RawTables(
            f"{name}-raw-tables",
            RawTablesArgs(database_name=self.catalog.database_name, raw_bucket=self.raw_bucket.name, datasets=datasets),
            opts=self.child,
        )
        self.schedules = DatasetSchedules(
            f"{name}-schedules",
            DatasetSchedulesArgs(
                state_machine_arn=self.workflow.arn,
                datasets=datasets,
                environment=environment,
                group_name=schedule_group_name,
            ),
            # A schedule may fire right after `pulumi up`: everything a run reads must exist by then.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[
                    self.workflow,
                    self.config_objects,
                    self.raw_bucket,
                    *self.source_buckets.values(),
                    # A night's commit registers its partitions in these tables.
                    self.catalog,
                    self.raw_tables,
                ],
            ),
        )
        self.monitoring = Monitoring(
            monitoring_name,
            MonitoringArgs(
                namespace=metrics_namespace,
                datasets=datasets,
                topic_arn=self.notifications.topic_arn,
                state_machine_arn=self.workflow.arn,
                function_name=self.function.function_name,
                region=environment.region,
                freshness_grace_hours=config.freshness_grace_hours,
                schedule_group_name=self.schedules.group.name,
                dead_letter_queue_names={ds: q.name for ds, q in self.schedules.dead_letter_queues.items()},
            ),
            opts=self.child,
        )
        self.exports = {
            "rawBucketName": self.raw_bucket.name,
            "accessLogBucketName": self.access_log_bucket.name,
            "configBucketName": self.config_bucket.name,
            "sourceBucketNames": {bucket: b.name for bucket, b in self.source_buckets.items()},
            "configObjectKeys": dict(self.config_objects.keys),
            "topicArn": self.notifications.topic_arn,
            "functionName": self.function.function_name,
            # What the owner of a source bucket in another account grants read access to.
            "functionRoleArn": self.function.role_arn,
            "stateMachineArn": self.workflow.arn,
            "stateMachineName": self.workflow.state_machine_name,
            "scheduleNames": {ds: s.name for ds, s in self.schedules.schedules.items()},
            "scheduleGroupName": self.schedules.group.name,
            # Where a scheduled start that kept failing waits, per dataset (docs/deploy.md, "Alarms").
            "deadLetterQueueUrls": {ds: q.url for ds, q in self.schedules.dead_letter_queues.items()},
            "glueDatabaseName": self.catalog.database_name,
            "glueTableNames": sorted([*self.catalog.tables, *self.raw_tables.tables]),
            "metricsNamespace": metrics_namespace,
            "dashboardName": self.monitoring.dashboard.dashboard_name,
            "alarmNames": [alarm.name for alarm in self.monitoring.alarms],
        }
        if config.kms_key_arn:
            self.exports["topicKeyPolicyStatement"] = environment.apply(
                lambda *where: alarm_key_policy_statement(*where, alarm_prefix=alarm_prefix)
            )
        # What `logsKmsKeyArn`'s key policy needs, exported whether or not a key is set: the key's owner adds it
        # before the `pulumi up` that sets the key. The function's group is named after the function
        # (`<logical>-<random>`), the state machine's has a name prefix: known as patterns before they exist.
        log_groups = [log_group_pattern(function_name), f"{log_group_prefix(workflow_name)}*"]
        self.exports["logsKeyPolicyStatement"] = pulumi.Output.all(
            environment.partition, environment.region, environment.account_id, partition_info.dns_suffix
        ).apply(lambda v: logs_key_policy_statement(v[0], v[1], v[2], log_groups, dns_suffix=v[3]))
        self.register_outputs(self.exports)

    def _create_buckets(
        self,
        name: str,
        config: StackConfig,
        environment: Environment,
        *,
        protect: bool,
    ) -> None:
        # Outside a disposable stack every bucket it creates is protected: the raw bucket holds every landed file
        # and ledger, the access log bucket the audit trail, a created source bucket the files people upload, and
        # the config bucket the config objects' old versions (the history of what each run was told). A deleted
        # bucket takes its versions with it, which no `pulumi up` brings back.
        logged = [config.raw_bucket, config.config_bucket, *config.created_source_buckets]
        # First: every other bucket logs into it. SSE-S3 whatever kmsKeyArn says (S3 delivers no access logs into
        # an SSE-KMS bucket), no logging of its own (it must not log into itself).
        self.access_log_bucket = SecureBucket(
            f"{name}-access-logs",
            SecureBucketArgs(
                bucket_name=None,
                partition=environment.partition,
                force_destroy=config.force_destroy_buckets,
                protect=protect,
                log_delivery=LogDelivery(
                    source_buckets=logged,
                    account_id=environment.account_id,
                    retention_days=config.access_log_retention_days,
                ),
            ),
            opts=self.child,
        )

        def bucket(logical: str, bucket_name: str, ledger_noncurrent_version_days: int | None = None) -> SecureBucket:
            return SecureBucket(
                logical,
                SecureBucketArgs(
                    bucket_name=bucket_name,
                    partition=environment.partition,
                    kms_key_arn=config.kms_key_arn,
                    force_destroy=config.force_destroy_buckets,
                    ledger_noncurrent_version_days=ledger_noncurrent_version_days,
                    protect=protect,
                    access_log_bucket=self.access_log_bucket,
                ),
                opts=self.child,
            )

        # Every dataset's ledger lives in the raw bucket (its target), so only it gets the ledger rule.
        self.raw_bucket = bucket(f"{name}-raw", config.raw_bucket, config.ledger_noncurrent_version_days)
        self.config_bucket = bucket(f"{name}-config-bucket", config.config_bucket)
        # Named by bucket, not dataset: two datasets may read one created bucket, and renaming a dataset
        # must not replace (delete) the bucket holding its files.
        self.source_buckets = {
            bucket_name: bucket(f"{name}-source-{bucket_name}", bucket_name)
            for bucket_name in config.created_source_buckets
        }
