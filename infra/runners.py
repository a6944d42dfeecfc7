"""What the two components that run the ingestion's steps share: the function and the state machine each have a role
scoped to the stack's datasets that reports to the stack's topic, and a retained log group of their own.

The pipeline builds one `RunnerArgs` and hands it to both, so the two roles cannot be scoped to different datasets,
topics or keys, and both log groups keep their logs as long and under the same key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from handler.config import DatasetConfig
from infra.environment import Environment
from infra.policies import RunnerScope
from infra.roles import Build, role_policy


@dataclass
class RunnerArgs:
    """The datasets the runners serve, the topic they report to, where they run, and how their logs are kept."""

    datasets: Sequence[DatasetConfig]
    topic_arn: pulumi.Input[str]
    environment: Environment
    log_retention_days: int
    kms_key_arn: str | None = None
    topic_key_arn: pulumi.Input[str] | None = None
    """The key the topic is encrypted with (publishing needs it)."""
    logs_kms_key_arn: str | None = None
    """The key the log groups are encrypted with (`logsKmsKeyArn`); None: CloudWatch Logs' own encryption."""

    def scope(self) -> pulumi.Output[RunnerScope]:
        """The scope both role policies are built from, once the topic, its key and the region are known."""
        known = pulumi.Output.all(
            partition=self.environment.partition,
            topic_arn=self.topic_arn,
            region=self.environment.region,
            topic_key_arn=self.topic_key_arn,
        )
        return known.apply(lambda values: RunnerScope(datasets=self.datasets, kms_key_arn=self.kms_key_arn, **values))


def runner_log_group(
    name: str, runner: RunnerArgs, opts: pulumi.ResourceOptions, /, **naming: pulumi.Input[str]
) -> aws.cloudwatch.LogGroup:
    """`<name>-logs`, retained and encrypted as the stack says; `naming` gives its name or name prefix.

    With a key, CloudWatch Logs checks at creation that it may use it: the key policy comes first.
    """
    return aws.cloudwatch.LogGroup(
        f"{name}-logs",
        retention_in_days=runner.log_retention_days,
        kms_key_id=runner.logs_kms_key_arn,
        opts=opts,
        **naming,
    )


def runner_policy(
    name: str, role: aws.iam.Role, build: Build, runner: RunnerArgs, opts: pulumi.ResourceOptions, /, **inputs: Any
) -> aws.iam.RolePolicy:
    """`<name>-policy` of `role`: `build(scope=<the runner's scope>, **inputs)`, once every input is known."""
    return role_policy(f"{name}-policy", role, build, opts, scope=runner.scope(), **inputs)
