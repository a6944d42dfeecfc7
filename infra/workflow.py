"""The Step Functions state machine that runs one dataset's ingestion, with its role and its logs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from handler.config import DatasetConfig
from infra.policies import map_run_policy, service_trust_policy, workflow_policy
from infra.workflow_definition import build_definition

# Log delivery writes through a CloudWatch Logs resource policy, whose size per account is limited; groups
# under this AWS-recommended prefix share one statement instead of adding one each.
VENDED_LOGS_PREFIX = "/aws/vendedlogs/states/"


@dataclass
class WorkflowArgs:
    """What the definition calls, how wide it fans out, and what its role may touch."""

    function_arn: pulumi.Input[str]
    topic_arn: pulumi.Input[str]
    map_concurrency: int
    tolerated_failure_percentage: float
    datasets: Sequence[DatasetConfig]
    partition: pulumi.Input[str]
    region: pulumi.Input[str]
    account_id: pulumi.Input[str]
    log_retention_days: int
    log_level: str = "ERROR"
    kms_key_arn: str | None = None


class Workflow(pulumi.ComponentResource):
    """A STANDARD state machine: plan, a Distributed Map of copy batches, finalize, notify."""

    role: aws.iam.Role
    log_group: aws.cloudwatch.LogGroup
    policy: aws.iam.RolePolicy
    state_machine: aws.sfn.StateMachine
    map_run_policy: aws.iam.RolePolicy
    arn: pulumi.Output[str]
    state_machine_name: pulumi.Output[str]

    def __init__(self, name: str, args: WorkflowArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("data-file-ingestion:workflow:Workflow", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: json.dumps(service_trust_policy("states.amazonaws.com", account))
            ),
            description="Ingestion state machine: invokes the ingestion Lambda, publishes run reports",
            opts=child,
        )
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name_prefix=f"{VENDED_LOGS_PREFIX}{name}-",
            retention_in_days=args.log_retention_days,
            opts=child,
        )
        self.policy = self._create_policy(name, args, child)
        self.state_machine = self._create_state_machine(name, args)
        self.arn = self.state_machine.arn
        self.state_machine_name = self.state_machine.name
        # Needs the state machine's own ARN, so it can only exist after it; no schedule fires before it
        # exists, because the schedules depend on the whole component.
        self.map_run_policy = aws.iam.RolePolicy(
            f"{name}-map-run-policy",
            role=self.role.id,
            policy=self.state_machine.arn.apply(lambda arn: json.dumps(map_run_policy(arn))),
            opts=child,
        )
        self.register_outputs({"arn": self.arn, "state_machine_name": self.state_machine_name})

    def _create_policy(self, name: str, args: WorkflowArgs, child: pulumi.ResourceOptions) -> aws.iam.RolePolicy:
        document = pulumi.Output.all(args.partition, args.function_arn, args.topic_arn, args.region).apply(
            lambda a: json.dumps(
                workflow_policy(
                    partition=a[0],
                    datasets=args.datasets,
                    function_arn=a[1],
                    topic_arn=a[2],
                    kms_key_arn=args.kms_key_arn,
                    region=a[3],
                )
            )
        )
        return aws.iam.RolePolicy(f"{name}-policy", role=self.role.id, policy=document, opts=child)

    def _create_state_machine(self, name: str, args: WorkflowArgs) -> aws.sfn.StateMachine:
        definition = pulumi.Output.all(
            args.function_arn, args.topic_arn, args.map_concurrency, args.tolerated_failure_percentage
        ).apply(lambda a: json.dumps(build_definition(*a)))
        return aws.sfn.StateMachine(
            f"{name}-state-machine",
            type="STANDARD",
            role_arn=self.role.arn,
            definition=definition,
            logging_configuration=aws.sfn.StateMachineLoggingConfigurationArgs(
                log_destination=self.log_group.arn.apply(lambda arn: f"{arn}:*"),
                level=args.log_level,
                # Inputs and outputs carry bucket keys and config; keep them in the execution history,
                # which is access-controlled per state machine, not copied into logs.
                include_execution_data=False,
            ),
            # CreateStateMachine checks that the role may deliver logs, so the policy must exist first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy]),
        )
