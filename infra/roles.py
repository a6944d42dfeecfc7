"""Roles that one AWS service assumes, and policy documents built from Outputs, for every component.

infra/policies.py builds documents from plain strings; this is the step in between: wait for the Outputs a
document needs, passed by name so none can land in another's place, call the builder, serialise the result.
Nothing here is a component: each resource is created with the caller's `opts` (`parent=` the calling
component), so its logical name and URN are exactly those the component gave it before these helpers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.policies import service_trust_policy

Build = Callable[..., dict[str, Any]]


def policy_json(build: Build, /, **inputs: pulumi.Input[Any]) -> pulumi.Output[str]:
    """`build(**inputs)` as JSON, once every input is known; plain values are passed through as they are."""
    return pulumi.Output.all(**inputs).apply(lambda values: json.dumps(build(**values)))


def service_role(
    name: str,
    /,
    *,
    service: str,
    description: str,
    opts: pulumi.ResourceOptions,
    account_id: pulumi.Input[str] | None = None,
    source_arns: pulumi.Input[list[str]] | None = None,
) -> aws.iam.Role:
    """`<name>-role`, which only `service` may assume; with `account_id`, only on this account's behalf, and with
    `source_arns`, only for those resources (ARN patterns).

    Both are for services that act for an account and name the resource they act for (Step Functions,
    Scheduler): see `service_trust_policy` for why those conditions matter.
    """
    trust: pulumi.Input[str]
    if account_id is None and source_arns is None:
        trust = json.dumps(service_trust_policy(service))
    else:
        trust = policy_json(
            partial(service_trust_policy, service), account_id=account_id, source_arns=source_arns or ()
        )
    return aws.iam.Role(f"{name}-role", assume_role_policy=trust, description=description, opts=opts)


def role_policy(
    logical_name: str, role: aws.iam.Role, build: Build, opts: pulumi.ResourceOptions, /, **inputs: pulumi.Input[Any]
) -> aws.iam.RolePolicy:
    """A RolePolicy of `role` whose document is `build(**inputs)`, once every input is known."""
    return aws.iam.RolePolicy(logical_name, role=role.id, policy=policy_json(build, **inputs), opts=opts)
