"""The process config objects: each dataset's validated config, written where the Lambda reads it.

This is what makes `pulumi config set` + `pulumi up` change the next run: the Lambda reads
`config/<dataset>.json` from the config bucket at the start of each step, and nothing is baked into code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from handler.config import DatasetConfig

# The runtime owns the key layout; re-exported so the pipeline sets the Lambda's CONFIG_KEY to the same template.
from handler.configfile import CONFIG_KEY_TEMPLATE as CONFIG_KEY_TEMPLATE
from handler.configfile import config_key
from infra.component import Component


def config_document(dataset: DatasetConfig) -> dict[str, Any]:
    """One dataset's process config, defaults filled in: a document `parse_config` accepts as is."""
    return {"datasets": {dataset.name: dataset.to_dict()}}


@dataclass
class ConfigObjectsArgs:
    """The config bucket and the validated datasets to write into it."""

    bucket: pulumi.Input[str]
    datasets: Sequence[DatasetConfig]


class ConfigObjects(Component):
    """One object per dataset, so a change to one dataset's config rewrites only that object."""

    objects: dict[str, aws.s3.BucketObjectv2]
    keys: dict[str, str]

    def __init__(self, name: str, args: ConfigObjectsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("config:ConfigObjects", name, opts)
        self.keys = {ds.name: config_key(ds.name) for ds in args.datasets}
        self.objects = {
            ds.name: aws.s3.BucketObjectv2(
                f"{name}-{ds.name}",
                bucket=args.bucket,
                key=self.keys[ds.name],
                content=json.dumps(config_document(ds), indent=2, sort_keys=True) + "\n",
                content_type="application/json",
                opts=self.child,
            )
            for ds in args.datasets
        }
        self.register_outputs({"keys": self.keys})
