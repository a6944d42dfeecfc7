"""Fixtures that build the Pulumi program fresh for each test under recording mocks (see harness.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pulumi
import pytest

from infra.pipeline import IngestionPipeline, IngestionPipelineArgs
from infra.stack_config import NAMESPACE, StackConfig
from tests.infra.harness import HANDLER_DIR, Deployment, RecordingMocks, pinned_sdk_layer, run_main


@pytest.fixture
def mocks() -> Iterator[RecordingMocks]:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project=NAMESPACE, stack="test", preview=False, monitor=mocks.monitor)
    yield mocks
    pulumi.runtime.set_all_config({})


@pytest.fixture
def run_program(mocks: RecordingMocks) -> Callable[[dict[str, str]], Deployment]:
    """Run __main__.py, exactly as `pulumi up` would, against the given stack config."""
    return lambda config: run_main(mocks, config)


@pytest.fixture
def build_pipeline(mocks: RecordingMocks) -> Callable[[StackConfig], Deployment]:
    """Build the pipeline component straight from stack-config dataclasses."""

    def build(config: StackConfig) -> Deployment:
        @pulumi.runtime.test
        def program() -> None:
            layer = pinned_sdk_layer() if config.function.sdk_layer else None
            IngestionPipeline(
                "ingestion", IngestionPipelineArgs(config=config, package_dir=HANDLER_DIR, sdk_layer=layer)
            )

        program()
        return Deployment(resources=list(mocks.resources), urns=mocks.urns())

    return build
