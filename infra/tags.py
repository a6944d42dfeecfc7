"""The stack's default tags (`tags` in stack config), put on every taggable resource of the pipeline.

A transformation on the pipeline component, not a provider with `default_tags`: moving every resource of a
deployed stack from the default provider to an explicit one is a provider change the engine may answer with a
replacement of each resource (it asks the provider's DiffConfig only since pulumi/pulumi#18509, 2025; before,
an explicit provider change always replaced), and tags a provider adds are invisible to the program and its tests.
A transformation only sets the `tags` input, which every AWS resource here updates in place; and it runs in the
program (the SDK), so the tests see exactly the tags each resource is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

UNTAGGED_TYPES = frozenset({"aws:s3/bucketObjectv2:BucketObjectv2"})
"""Taggable, but not with the stack's tags: S3 object tags are a per-object label (at most 10) that lifecycle and
access rules match on; cost allocation reads the bucket's tags, which the bucket gets."""


def default_tags(tags: Mapping[str, str]) -> pulumi.ResourceTransformation:
    """Fills `tags` on every resource whose inputs have it; a tag the resource sets itself wins over the default."""
    defaults = dict(tags)

    def transform(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if not isinstance(args.resource, pulumi.CustomResource) or args.type_ in UNTAGGED_TYPES:
            return None
        if not args.props or "tags" not in args.props:
            return None
        own = args.props["tags"]
        merged: Any
        if own is None:
            merged = dict(defaults)
        else:
            merged = pulumi.Output.from_input(own).apply(lambda mine: {**defaults, **(mine or {})})
        return pulumi.ResourceTransformationResult(props={**args.props, "tags": merged}, opts=args.opts)

    return transform
