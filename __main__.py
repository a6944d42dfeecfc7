"""The Pulumi program: validate the stack config, build the pipeline, export what operators need.

Everything deployable comes from the stack config (`Pulumi.<stack>.yaml`); see docs/deploy.md.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.pipeline import IngestionPipeline, IngestionPipelineArgs
from infra.sdk_layer import SdkLayerError, installed_sdk_layer
from infra.stack_config import StackConfigError, load_stack_config

HANDLER_PACKAGE = Path(__file__).resolve().parent / "handler"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"


def deployment_placeholders() -> dict[str, str]:
    """What `{account_id}` and `{region}` in the stack's bucket names stand for: where this deploy goes.

    Asked of the provider (the credentials and `aws:region`), synchronously, because the names must be
    known, and checked, before any resource is declared.
    """
    return {"account_id": aws.get_caller_identity().account_id, "region": aws.get_region().region}


def main() -> None:
    try:
        config = load_stack_config(pulumi.Config(), placeholders=deployment_placeholders)
        # The function's SDK layer, from .venv's installed pins: checked here, before any resource is declared.
        sdk_layer = installed_sdk_layer(REQUIREMENTS) if config.function.sdk_layer else None
    except (StackConfigError, SdkLayerError) as err:
        # RunError: `pulumi up` prints the list of problems, not a Python traceback, and creates nothing.
        raise pulumi.RunError(str(err)) from err
    pipeline = IngestionPipeline(
        "ingestion", IngestionPipelineArgs(config=config, package_dir=HANDLER_PACKAGE, sdk_layer=sdk_layer)
    )
    for name, value in pipeline.exports.items():
        pulumi.export(name, value)


main()
