"""The Step Functions state machine that runs one dataset's ingestion, with its role and its logs."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from handler.width import S3_WRITES_PER_SECOND
from infra.component import Component
from infra.policies import map_run_policy, state_machine_source_arns, workflow_policy
from infra.roles import role_policy, service_role
from infra.runners import RunnerArgs, runner_log_group, runner_policy
from infra.workflow_definition import build_definition

# Log delivery writes through a CloudWatch Logs resource policy, whose size per account is limited; groups
# under this AWS-recommended prefix share one statement instead of adding one each.
VENDED_LOGS_PREFIX = "/aws/vendedlogs/states/"
STATE_MACHINE_NAME_LIMIT = 80
"""CreateStateMachine: 1 to 80 characters, only `[A-Za-z0-9_-]` for its logging to CloudWatch Logs to work."""


def log_group_prefix(name: str) -> str:
    """The state machine's log group name, but for the suffix Pulumi adds: known before it exists."""
    return f"{VENDED_LOGS_PREFIX}{name}-"


@dataclass
class WorkflowArgs:
    """What the definition calls, how wide it fans out, and what its role may touch."""

    runner: RunnerArgs
    """The datasets, topic and keys its role is scoped to, and how its logs are kept (shared with the function)."""
    function_arn: pulumi.Input[str]
    map_concurrency: int
    tolerated_failure_percentage: float
    lambda_timeout_seconds: int
    """The function's timeout: each Lambda Task times out a margin after it (TASK_TIMEOUT_MARGIN_SECONDS)."""
    execution_timeout_seconds: int
    """How long an execution may run before it ends TIMED_OUT (the definition's top-level TimeoutSeconds)."""
    s3_writes_per_second: int = S3_WRITES_PER_SECOND
    """The S3 write rate the copy Map's width is sized to (handler/width.py); its width never exceeds
    `map_concurrency`."""
    log_level: str = "ERROR"
    state_machine_name: str | None = None
    """A name fixed before creation (`infra.names.stack_scoped_name`), so the role's trust policy can name the state
    machine it is for; None: Pulumi's `<logical>-<random>` and no `aws:SourceArn` (tests of the component alone)."""
    send_lineage: bool = False
    """The stack names a lineage destination: each committed run's events are delivered (`send_lineage` step)."""


class Workflow(Component):
    """A STANDARD state machine: plan, a Distributed Map of copy batches, finalize, notify."""

    role: aws.iam.Role
    log_group: aws.cloudwatch.LogGroup
    policy: aws.iam.RolePolicy
    state_machine: aws.sfn.StateMachine
    map_run_policy: aws.iam.RolePolicy
    arn: pulumi.Output[str]
    state_machine_name: pulumi.Output[str]

    def __init__(self, name: str, args: WorkflowArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("workflow:Workflow", name, opts)
        environment = args.runner.environment
        source_arns = None
        if args.state_machine_name is not None:
            machine = args.state_machine_name
            source_arns = environment.apply(lambda *where: state_machine_source_arns(*where, name=machine))
        self.role = service_role(
            name,
            service="states.amazonaws.com",
            account_id=environment.account_id,
            source_arns=source_arns,
            description="Ingestion state machine: invokes the ingestion Lambda, publishes run reports",
            opts=self.child,
        )
        self.log_group = runner_log_group(name, args.runner, self.child, name_prefix=log_group_prefix(name))
        self.policy = runner_policy(
            name, self.role, workflow_policy, args.runner, self.child, function_arn=args.function_arn
        )
        self.state_machine = self._create_state_machine(name, args)
        self.arn = self.state_machine.arn
        self.state_machine_name = self.state_machine.name
        # Needs the state machine's own ARN, so it can only exist after it; no schedule fires before it
        # exists, because the schedules depend on the whole component.
        self.map_run_policy = role_policy(
            f"{name}-map-run-policy", self.role, map_run_policy, self.child, state_machine_arn=self.state_machine.arn
        )
        self.register_outputs({"arn": self.arn, "state_machine_name": self.state_machine_name})

    def _create_state_machine(self, name: str, args: WorkflowArgs) -> aws.sfn.StateMachine:
        definition = pulumi.Output.all(
            function_arn=args.function_arn,
            topic_arn=args.runner.topic_arn,
            map_concurrency=args.map_concurrency,
            s3_writes_per_second=args.s3_writes_per_second,
            tolerated_failure_percentage=args.tolerated_failure_percentage,
            lambda_timeout_seconds=args.lambda_timeout_seconds,
            execution_timeout_seconds=args.execution_timeout_seconds,
            send_lineage=args.send_lineage,
            # The stack's datasets all land in its raw bucket (infra/stack_config.py checks it).
            results_bucket=min(ds.target.bucket for ds in args.runner.datasets),
        ).apply(lambda values: json.dumps(build_definition(**values)))
        return aws.sfn.StateMachine(
            f"{name}-state-machine",
            name=args.state_machine_name,
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
