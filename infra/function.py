"""The one Lambda function that runs every step (plan, copy_batch, finalize), its SDK layer, its role and its logs."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pulumi
import pulumi_aws as aws

from handler.lineage_destination import ENV as LINEAGE_ENV
from handler.lineage_destination import LineageDestination
from handler.metrics import NAMESPACE_ENV
from handler.partitions import GLUE_DATABASE_ENV
from infra.component import Component
from infra.policies import function_policy, glue_partition_arns
from infra.roles import service_role
from infra.runners import RunnerArgs, runner_log_group, runner_policy
from infra.sdk_layer import SdkLayer
from infra.stack_config import FunctionSettings

HANDLER = "handler.lambda_function.handler"
RUNTIME = aws.lambda_.Runtime.PYTHON3D13
ARCHITECTURE = "arm64"


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


def layer_name(name: str) -> str:
    """The SDK layer's name: per project, stack and component, so two stacks in one account never share one.

    Lambda requires a name (no auto-naming for layers) of at most 140 letters, digits, `-` and `_`.
    """
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{pulumi.get_project()}-{pulumi.get_stack()}-{name}-sdk")[:140]


def function_logical_name(name: str) -> str:
    return f"{name}-function"


def log_group_pattern(name: str) -> str:
    """The function's log group, as a pattern known before it exists: Lambda logs to `/aws/lambda/<function>`, and
    Pulumi names the function `<logical name>-<random suffix>`."""
    return f"/aws/lambda/{function_logical_name(name)}-*"


@dataclass
class IngestFunctionArgs:
    """Code, sizing, and the names the function reads and writes."""

    runner: RunnerArgs
    """The datasets, topic and keys its role is scoped to, and how its logs are kept (shared with the workflow)."""
    package_dir: Path
    settings: FunctionSettings
    config_bucket: str
    config_key_template: str
    config_keys: Sequence[str]
    metrics_namespace: str | None = None
    """Where the function's EMF lines put their metrics (handler/metrics.py); None: it prints none."""
    sdk_layer: SdkLayer | None = None
    """The pinned SDK (infra/sdk_layer.py), built before anything is created; required when settings.sdk_layer."""
    lineage: LineageDestination | None = None
    """Where the `send_lineage` step delivers each run's OpenLineage events (the stack's `lineage`); None: nowhere."""
    glue_database: str | None = None
    """The stack's Glue database: each commit registers its night's partitions in it (GLUE_DATABASE)."""
    glue_tables: Sequence[str] = ()
    """The catalog tables of that database the function may add partitions to: the raw and the ledger tables."""


class IngestFunction(Component):
    """The function with a role scoped to its datasets' prefixes and its own retained log group."""

    role: aws.iam.Role
    sdk_layer: aws.lambda_.LayerVersion | None
    function: aws.lambda_.Function
    log_group: aws.cloudwatch.LogGroup
    policy: aws.iam.RolePolicy
    arn: pulumi.Output[str]
    function_name: pulumi.Output[str]
    role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: IngestFunctionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("compute:IngestFunction", name, opts)
        self.role = service_role(
            name,
            service="lambda.amazonaws.com",
            description="Ingestion Lambda: reads its datasets' sources, lands them in the raw bucket",
            opts=self.child,
        )
        self.role_arn = self.role.arn
        self.sdk_layer = self._create_sdk_layer(name, args)
        self.function = self._create_function(name, args)
        self.arn = self.function.arn
        self.function_name = self.function.name
        self.log_group = self._create_log_group(name, args)
        self.policy = self._create_policy(name, args)
        self.register_outputs({"arn": self.arn, "function_name": self.function_name, "role_arn": self.role_arn})

    def _create_sdk_layer(self, name: str, args: IngestFunctionArgs) -> aws.lambda_.LayerVersion | None:
        # A layer, not the SDK vendored into the function's zip: the zip stays the handler's 0.2 MB, so a code
        # change uploads that and not 18 MB more, and a new layer version is published only when a pin changes
        # (docs/deploy.md has the sizes and import times measured for both).
        if not args.settings.sdk_layer:
            return None
        if args.sdk_layer is None:
            raise ValueError("settings.sdk_layer is on but no SdkLayer was built (infra/sdk_layer.installed_sdk_layer)")
        content = args.sdk_layer
        return aws.lambda_.LayerVersion(
            f"{name}-sdk",
            layer_name=layer_name(name),
            code=pulumi.AssetArchive({path: pulumi.FileAsset(str(file)) for path, file in content.files.items()}),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description=content.description(),
            opts=self.child,
        )

    def _create_function(self, name: str, args: IngestFunctionArgs) -> aws.lambda_.Function:
        settings = args.settings
        return aws.lambda_.Function(
            function_logical_name(name),
            role=self.role.arn,
            runtime=RUNTIME,
            # Graviton: the work is S3 API calls, pure Python with no native wheels, and arm64 is cheaper.
            architectures=[ARCHITECTURE],
            handler=HANDLER,
            code=handler_archive(args.package_dir),
            # The SDK layer's /opt/python precedes the runtime's own boto3 on sys.path (infra/sdk_layer.py).
            layers=[self.sdk_layer.arn] if self.sdk_layer else None,
            memory_size=settings.memory_mb,
            timeout=settings.timeout_seconds,
            reserved_concurrent_executions=settings.reserved_concurrency,
            # /tmp holds the plan's SQLite file and finalize's spooled state and manifest (FunctionSettings).
            ephemeral_storage=aws.lambda_.FunctionEphemeralStorageArgs(size=settings.ephemeral_storage_mb),
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables={
                    "CONFIG_BUCKET": args.config_bucket,
                    "CONFIG_KEY": args.config_key_template,
                    "SNS_TOPIC_ARN": args.runner.topic_arn,
                    **({NAMESPACE_ENV: args.metrics_namespace} if args.metrics_namespace else {}),
                    # The destination's document, never a key: the step reads the secret it names at delivery.
                    **({LINEAGE_ENV: json.dumps(args.lineage.to_document())} if args.lineage else {}),
                    **({GLUE_DATABASE_ENV: args.glue_database} if args.glue_database else {}),
                }
            ),
            description="Data file ingestion: plan, copy_batch and finalize steps (handler/)",
            opts=self.child,
        )

    def _create_log_group(self, name: str, args: IngestFunctionArgs) -> aws.cloudwatch.LogGroup:
        # Lambda writes to /aws/lambda/<function name>. Creating that group here gives it a retention
        # period (Lambda's own would keep logs forever) and lets the role skip logs:CreateLogGroup.
        return runner_log_group(
            name, args.runner, self.child, name=self.function.name.apply(lambda fn: f"/aws/lambda/{fn}")
        )

    def _create_policy(self, name: str, args: IngestFunctionArgs) -> aws.iam.RolePolicy:
        # A separate policy, not inline on the role: it names the log group, which is named after the
        # function, which needs the role first. Settings are bound here; the Outputs are resolved by name.
        known = partial(
            function_policy, config_bucket=args.config_bucket, config_keys=args.config_keys, lineage=args.lineage
        )
        database, tables = args.glue_database, args.glue_tables
        partition_arns = (
            args.runner.environment.apply(lambda *where: glue_partition_arns(*where, database, tables))
            if database and tables
            else []
        )
        return runner_policy(
            name,
            self.role,
            known,
            args.runner,
            self.child,
            log_group_arn=self.log_group.arn,
            account_id=args.runner.environment.account_id,
            partition_arns=partition_arns,
        )
