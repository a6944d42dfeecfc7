"""The run-notification topic and its subscribers."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.component import Component
from infra.environment import Environment
from infra.policies import topic_key_policy
from infra.stack_config import Subscription


@dataclass
class NotificationsArgs:
    """Subscribers from stack config, the stack's KMS key if it has one, and where the alarms are."""

    subscriptions: Sequence[Subscription]
    environment: Environment
    alarm_prefix: str
    """The start of the stack's alarm names: the alarms the topic key lets publish."""
    kms_key_arn: str | None = None
    protect: bool = False
    """Not disposable: the key the stack creates is `protect`ed and `retain_on_delete` (deleting it would leave
    every message still encrypted with it unreadable)."""


class Notifications(Component):
    """An encrypted SNS topic that the state machine (and a one-shot Lambda run) reports each run to."""

    topic: aws.sns.Topic
    topic_arn: pulumi.Output[str]
    key: aws.kms.Key | None
    """The topic's own key, when the stack has no KMS key (`kmsKeyArn`)."""
    key_arn: pulumi.Output[str]
    """The key the topic is encrypted with: the stack key, or its own."""
    subscriptions: dict[Subscription, aws.sns.TopicSubscription]

    def __init__(self, name: str, args: NotificationsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("notifications:Notifications", name, opts)
        if args.kms_key_arn:
            self.key = None
            self.key_arn = pulumi.Output.from_input(args.kms_key_arn)
        else:
            # Not SNS's AWS managed key: CloudWatch alarms cannot publish to a topic encrypted with it.
            policy = args.environment.apply(
                lambda *where: json.dumps(topic_key_policy(*where, alarm_prefix=args.alarm_prefix))
            )
            self.key = aws.kms.Key(
                f"{name}-topic-key",
                description="Data file ingestion: encrypts the run topic; its alarms may publish to it",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                policy=policy,
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect),
            )
            self.key_arn = self.key.arn
        self.topic = aws.sns.Topic(f"{name}-topic", kms_master_key_id=self.key_arn, opts=self.child)
        self.topic_arn = self.topic.arn
        self.subscriptions = {
            sub: aws.sns.TopicSubscription(
                subscription_name(name, sub),
                topic=self.topic.arn,
                protocol=sub.protocol,
                endpoint=sub.endpoint,
                opts=self.child,
            )
            for sub in args.subscriptions
        }
        self.register_outputs({"topic_arn": self.topic_arn, "key_arn": self.key_arn})


def subscription_name(name: str, sub: Subscription) -> str:
    """A logical name that depends on the subscriber, not its place in the list.

    Named by position, removing the first address would replace every later subscription and send each
    of those people a new confirmation email.
    """
    digest = hashlib.sha256(f"{sub.protocol}:{sub.endpoint}".encode()).hexdigest()[:10]
    return f"{name}-{re.sub(r'[^a-z0-9]+', '-', sub.protocol)}-{digest}"
