"""The graph fixtures of tests/infra, over mocks that keep the graph as an analyzer sees it; the pack itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pytest

from infra.stack_config import NAMESPACE

# The program builders of tests/infra, unchanged: they take whichever `mocks` fixture is in scope, here the
# one below.
from tests.infra.conftest import build_pipeline, run_program  # noqa: F401
from tests.infra.harness import ACCOUNT, REGION, dev_stack_config, two_dataset_config
from tests.policy.engine import Graph, GraphMocks, PolicyEngine

KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
STACKS = ("dev", "two-datasets", "two-datasets-kms")

Build = Callable[[str], Graph]


@pytest.fixture
def mocks() -> Iterator[GraphMocks]:
    mocks = GraphMocks()
    pulumi.runtime.set_mocks(mocks, project=NAMESPACE, stack="test", preview=False, monitor=mocks.monitor)
    yield mocks
    pulumi.runtime.set_all_config({})


@pytest.fixture(scope="session")
def pack() -> Iterator[PolicyEngine]:
    """One pack process for the session: it keeps no state between calls, as under the CLI."""
    engine = PolicyEngine()
    yield engine
    engine.close()


@pytest.fixture
def build(
    run_program: Callable[..., Any],  # noqa: F811 (the fixture imported above, requested by name)
    build_pipeline: Callable[..., Any],  # noqa: F811
    mocks: GraphMocks,
) -> Build:
    """The graph of one of the stacks tests/infra deploys: dev through __main__.py, the others as components."""

    def build(which: str) -> Graph:
        if which == "dev":
            run_program(dev_stack_config())
        elif which == "two-datasets":
            build_pipeline(two_dataset_config())
        else:
            build_pipeline(two_dataset_config(kms_key_arn=KMS_KEY))
        return Graph(mocks.nodes())

    return build
