"""The graph fixtures of tests/infra, over mocks that keep the graph as an analyzer sees it; the pack itself."""

from __future__ import annotations

from collections.abc import Iterator

import pulumi
import pytest

from infra.stack_config import NAMESPACE

# The program builders of tests/infra, unchanged: they take whichever `mocks` fixture is in scope, here the
# one below.
from tests.infra.conftest import build_pipeline, run_program  # noqa: F401
from tests.policy.engine import GraphMocks, PolicyEngine


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
