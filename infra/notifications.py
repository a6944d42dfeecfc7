"""The run-notification topic and its subscribers."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.stack_config import Subscription

# SNS's AWS managed key: encryption at rest without a key to manage. Its key policy already lets this
# account's principals use it through SNS, so the publishing roles need no KMS statement.
AWS_MANAGED_SNS_KEY = "alias/aws/sns"


@dataclass
class NotificationsArgs:
    """Subscribers from stack config, and the stack's KMS key if it has one."""

    subscriptions: Sequence[Subscription]
    kms_key_arn: str | None = None


class Notifications(pulumi.ComponentResource):
    """An encrypted SNS topic that the state machine (and a one-shot Lambda run) reports each run to."""

    topic: aws.sns.Topic
    topic_arn: pulumi.Output[str]
    subscriptions: dict[Subscription, aws.sns.TopicSubscription]

    def __init__(self, name: str, args: NotificationsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("data-file-ingestion:notifications:Notifications", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.topic = aws.sns.Topic(
            f"{name}-topic", kms_master_key_id=args.kms_key_arn or AWS_MANAGED_SNS_KEY, opts=child
        )
        self.topic_arn = self.topic.arn
        self.subscriptions = {
            sub: aws.sns.TopicSubscription(
                subscription_name(name, sub),
                topic=self.topic.arn,
                protocol=sub.protocol,
                endpoint=sub.endpoint,
                opts=child,
            )
            for sub in args.subscriptions
        }
        self.register_outputs({"topic_arn": self.topic_arn})


def subscription_name(name: str, sub: Subscription) -> str:
    """A logical name that depends on the subscriber, not its place in the list.

    Named by position, removing the first address would replace every later subscription and send each
    of those people a new confirmation email.
    """
    digest = hashlib.sha256(f"{sub.protocol}:{sub.endpoint}".encode()).hexdigest()[:10]
    return f"{name}-{re.sub(r'[^a-z0-9]+', '-', sub.protocol)}-{digest}"
