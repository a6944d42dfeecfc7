"""EventBridge Scheduler: one schedule per dataset, each starting the state machine for its dataset.

A start that still fails after the schedule's retry policy (an hour of retries) would otherwise be dropped without
a trace: each schedule has a dead-letter queue that receives it, with the error, and the schedules live in a group
of their own so that the `AWS/Scheduler` metrics, whose only dimension is the schedule group, describe this stack's
schedules and no other (infra/monitoring.py alarms on them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from handler.config import DatasetConfig
from infra.component import Component
from infra.environment import Environment
from infra.policies import deny_insecure_transport_queue_policy, schedule_group_source_arn, scheduler_policy
from infra.roles import role_policy, service_role

SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
"""EventBridge Scheduler replaces this context attribute in the target's input at each invocation (UTC,
`2026-11-27T20:00:00Z`): the time the schedule fired for, not the time the execution starts."""


def execution_input(dataset: str) -> str:
    """What each scheduled execution receives: the dataset and the time it was scheduled for, whose date in the
    dataset's time zone is the night it lands under, however late a retried start comes."""
    return json.dumps({"dataset": dataset, "scheduled_time": SCHEDULED_TIME})


@dataclass
class DatasetSchedulesArgs:
    """The state machine to start and the datasets (with their cron and time zone) to start it for."""

    state_machine_arn: pulumi.Input[str]
    datasets: Sequence[DatasetConfig]
    environment: Environment
    group_name: str
    """The stack's schedule group (`infra.names.stack_scoped_name`): Scheduler names the group as `aws:SourceArn` when a
    schedule assumes the role, so the role can trust this group's schedules and no other's."""
    # StartExecution failing (throttling, a brief outage) is retried for up to an hour; a nightly run
    # that starts an hour late is better than one that never starts.
    retry_attempts: int = 5
    max_event_age_seconds: int = 3600


DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600
"""How long a dead-letter queue keeps a failed start: 14 days, the most SQS keeps a message."""
SCHEDULE_GROUP_NAME_LIMIT = 64
"""CreateScheduleGroup: 1 to 64 characters of `[0-9a-zA-Z-_.]`."""


class DatasetSchedules(Component):
    """One schedule per dataset, and the role they start the state machine with.

    Scheduler rather than an EventBridge rule because it takes a time zone: a dataset's 20:00 stays
    20:00 local time across daylight-saving changes, in the dataset's own `timezone`.
    """

    group: aws.scheduler.ScheduleGroup
    role: aws.iam.Role
    policy: aws.iam.RolePolicy
    dead_letter_queues: dict[str, aws.sqs.Queue]
    queue_policies: dict[str, aws.sqs.QueuePolicy]
    schedules: dict[str, aws.scheduler.Schedule]

    def __init__(self, name: str, args: DatasetSchedulesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("schedule:DatasetSchedules", name, opts)
        self.group = aws.scheduler.ScheduleGroup(f"{name}-group", name=args.group_name, opts=self.child)
        group = args.group_name
        self.role = service_role(
            name,
            service="scheduler.amazonaws.com",
            account_id=args.environment.account_id,
            source_arns=args.environment.apply(lambda *where: [schedule_group_source_arn(*where, group=group)]),
            description="Ingestion schedules: start the ingestion state machine",
            opts=self.child,
        )
        self.dead_letter_queues = {ds.name: self._create_dead_letter_queue(name, ds) for ds in args.datasets}
        self.queue_policies = {
            dataset: aws.sqs.QueuePolicy(
                f"{name}-{dataset}-dlq-policy",
                queue_url=queue.url,
                policy=queue.arn.apply(lambda arn: json.dumps(deny_insecure_transport_queue_policy(arn))),
                opts=self.child,
            )
            for dataset, queue in self.dead_letter_queues.items()
        }
        # The schedules' execution role is what sends a failed start to its dead-letter queue (AWS, "Configuring a
        # schedule's dead-letter queue"), so it may send to exactly these queues.
        self.policy = role_policy(
            f"{name}-policy",
            self.role,
            scheduler_policy,
            self.child,
            state_machine_arn=args.state_machine_arn,
            dead_letter_queue_arns=pulumi.Output.all(*(q.arn for q in self.dead_letter_queues.values())),
        )
        self.schedules = {ds.name: self._create_schedule(name, ds, args) for ds in args.datasets}
        self.register_outputs(
            {
                "schedule_names": {n: s.name for n, s in self.schedules.items()},
                "group_name": self.group.name,
                "dead_letter_queue_urls": {n: q.url for n, q in self.dead_letter_queues.items()},
            }
        )

    def _create_dead_letter_queue(self, name: str, ds: DatasetConfig) -> aws.sqs.Queue:
        """A standard queue (Scheduler takes no FIFO queue as a DLQ), encrypted with SQS's own key: SSE-SQS needs
        no KMS permission of the role that sends to it."""
        return aws.sqs.Queue(
            f"{name}-{ds.name}-dlq",
            message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            opts=self.child,
        )

    def _create_schedule(self, name: str, ds: DatasetConfig, args: DatasetSchedulesArgs) -> aws.scheduler.Schedule:
        return aws.scheduler.Schedule(
            f"{name}-{ds.name}",
            group_name=self.group.name,
            description=f"Nightly ingestion of dataset {ds.name}",
            schedule_expression=ds.schedule.strip(),  # sent as AWS documents it, without spaces around
            schedule_expression_timezone=ds.timezone,
            flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
            target=aws.scheduler.ScheduleTargetArgs(
                arn=args.state_machine_arn,
                role_arn=self.role.arn,
                input=execution_input(ds.name),
                retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(
                    maximum_retry_attempts=args.retry_attempts,
                    maximum_event_age_in_seconds=args.max_event_age_seconds,
                ),
                # A start still failing after the retries lands here, with the error, instead of being dropped.
                dead_letter_config=aws.scheduler.ScheduleTargetDeadLetterConfigArgs(
                    arn=self.dead_letter_queues[ds.name].arn
                ),
            ),
            # The first firing must find the permission to start the state machine (and to dead-letter) in place.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy]),
        )
