"""The Pulumi program: validate the stack config, build the pipeline, export what operators need.

Everything deployable comes from the stack config (`Pulumi.<stack>.yaml`); see docs/deploy.md.
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from infra.pipeline import IngestionPipeline, IngestionPipelineArgs
from infra.stack_config import StackConfigError, load_stack_config

HANDLER_PACKAGE = Path(__file__).resolve().parent / "handler"


def main() -> None:
    try:
        config = load_stack_config(pulumi.Config())
    except StackConfigError as err:
        # RunError: `pulumi up` prints the list of problems, not a Python traceback, and creates nothing.
        raise pulumi.RunError(str(err)) from err
    pipeline = IngestionPipeline("ingestion", IngestionPipelineArgs(config=config, package_dir=HANDLER_PACKAGE))
    for name, value in pipeline.exports.items():
        pulumi.export(name, value)


main()
