"""The one Lambda function that runs every step (plan, copy_batch, finalize), its role and its logs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pulumi
import pulumi_aws as aws

from handler.config import DatasetConfig
from handler.metrics import NAMESPACE_ENV
from infra.policies import function_policy
from infra.roles import role_policy, service_role
from infra.stack_config import FunctionSettings

HANDLER = "handler.lambda_function.handler"
RUNTIME = aws.lambda_.Runtime.PYTHON3D13


def handler_files(package_dir: Path) -> dict[str, Path]:
    """Archive path -> file for every module of the runtime package, and nothing else.

    Only `.py` files are taken, one by one, so byte-code caches, editor droppings and anything a test run
    leaves beside the code never reach the zip; paths keep the package name so the import path in the
    archive (`handler.lambda_function`) is the one the tests use.
    """
    files: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir)
        if any(part.startswith((".", "__pycache__")) for part in relative.parts):
            continue
        files[f"{package_dir.name}/{relative.as_posix()}"] = path
    if not files:
        raise ValueError(f"no Python modules under {package_dir}: nothing to deploy")
    return files


def handler_archive(package_dir: Path) -> pulumi.AssetArchive:
    return pulumi.AssetArchive({name: pulumi.FileAsset(str(path)) for name, path in handler_files(package_dir).items()})


@dataclass
class IngestFunctionArgs:
    """Code, sizing, and the names the function reads and writes."""

    package_dir: Path
    settings: FunctionSettings
    datasets: Sequence[DatasetConfig]
    config_bucket: str
    config_key_template: str
    config_keys: Sequence[str]
    topic_arn: pulumi.Input[str]
    partition: pulumi.Input[str]
    region: pulumi.Input[str]
    log_retention_days: int
    kms_key_arn: str | None = None
    topic_key_arn: pulumi.Input[str] | None = None
    """The key the topic is encrypted with (publishing needs it)."""
    metrics_namespace: str | None = None
    """Where the function's EMF lines put their metrics (handler/metrics.py); None: it prints none."""
    logs_kms_key_arn: str | None = None
    """The key the log group is encrypted with (`logsKmsKeyArn`); None: CloudWatch Logs' own encryption."""


class IngestFunction(pulumi.ComponentResource):
    """The function with a role scoped to its datasets' prefixes and its own retained log group."""

    role: aws.iam.Role
    function: aws.lambda_.Function
    log_group: aws.cloudwatch.LogGroup
    policy: aws.iam.RolePolicy
    arn: pulumi.Output[str]
    function_name: pulumi.Output[str]
    role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: IngestFunctionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("data-file-ingestion:compute:IngestFunction", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = service_role(
            name,
            service="lambda.amazonaws.com",
            description="Ingestion Lambda: reads its datasets' sources, lands them in the raw bucket",
            opts=child,
        )
        self.role_arn = self.role.arn
        self.function = self._create_function(name, args, child)
        self.arn = self.function.arn
        self.function_name = self.function.name
        self.log_group = self._create_log_group(name, args, child)
        self.policy = self._create_policy(name, args, child)
        self.register_outputs({"arn": self.arn, "function_name": self.function_name, "role_arn": self.role_arn})

    def _create_function(
        self, name: str, args: IngestFunctionArgs, child: pulumi.ResourceOptions
    ) -> aws.lambda_.Function:
        settings = args.settings
        return aws.lambda_.Function(
            f"{name}-function",
            role=self.role.arn,
            runtime=RUNTIME,
            # Graviton: the work is S3 API calls, pure Python with no native wheels, and arm64 is cheaper.
            architectures=["arm64"],
            handler=HANDLER,
            code=handler_archive(args.package_dir),
            memory_size=settings.memory_mb,
            timeout=settings.timeout_seconds,
            reserved_concurrent_executions=settings.reserved_concurrency,
            # /tmp holds the plan's SQLite file and finalize's spooled state and manifest (FunctionSettings).
            ephemeral_storage=aws.lambda_.FunctionEphemeralStorageArgs(size=settings.ephemeral_storage_mb),
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables={
                    "CONFIG_BUCKET": args.config_bucket,
                    "CONFIG_KEY": args.config_key_template,
                    "SNS_TOPIC_ARN": args.topic_arn,
                    **({NAMESPACE_ENV: args.metrics_namespace} if args.metrics_namespace else {}),
                }
            ),
            description="Data file ingestion: plan, copy_batch and finalize steps (handler/)",
            opts=child,
        )

    def _create_log_group(
        self, name: str, args: IngestFunctionArgs, child: pulumi.ResourceOptions
    ) -> aws.cloudwatch.LogGroup:
        # Lambda writes to /aws/lambda/<function name>. Creating that group here gives it a retention
        # period (Lambda's own would keep logs forever) and lets the role skip logs:CreateLogGroup.
        # With a key, CloudWatch Logs checks at creation that it may use it: the key policy comes first.
        return aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=self.function.name.apply(lambda fn: f"/aws/lambda/{fn}"),
            retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_kms_key_arn,
            opts=child,
        )

    def _create_policy(self, name: str, args: IngestFunctionArgs, child: pulumi.ResourceOptions) -> aws.iam.RolePolicy:
        # A separate policy, not inline on the role: it names the log group, which is named after the
        # function, which needs the role first. Settings are bound here; the Outputs are resolved by name.
        known = partial(
            function_policy,
            datasets=args.datasets,
            config_bucket=args.config_bucket,
            config_keys=args.config_keys,
            kms_key_arn=args.kms_key_arn,
        )
        return role_policy(
            f"{name}-policy",
            self.role,
            known,
            child,
            partition=args.partition,
            topic_arn=args.topic_arn,
            topic_key_arn=args.topic_key_arn,
            log_group_arn=self.log_group.arn,
            region=args.region,
        )
