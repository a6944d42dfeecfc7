"""The policy pack as the Pulumi CLI runs it, fed the resource graph the program registers under mocks.

`PolicyEngine` starts `policy/` exactly as `pulumi-analyzer-policy-python` does (`python -u -m pulumi.policy
ENGINE .` in the pack's directory, port read from stdout) and speaks the analyzer gRPC protocol to it. So the
pack's own start-up, the SDK's deserialisation (property proxies, unknowns, assets) and its enforcement
levels are all exercised; only the CLI is missing.

`GraphMocks` records what that needs and the harness's mocks do not keep: each registration's URN, parent,
dependencies and property dependencies, and its properties in wire form. Inputs are what the engine sends
to `Analyze` (resource policies), outputs what it sends to `AnalyzeStack` (stack policies), both under the
provider's property names (`blockPublicAcls`), as the engine sends them.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from tests.infra.harness import ROOT, RecordingMocks

PACK_DIR = ROOT / "policy"


@dataclass(frozen=True)
class Node:
    """One registered resource, as the engine would describe it to an analyzer."""

    urn: str
    typ: str
    name: str
    parent: str
    dependencies: tuple[str, ...]
    property_dependencies: dict[str, list[str]]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    protect: bool = False

    def with_inputs(self, **changes: Any) -> Node:
        """A copy whose inputs and outputs both carry `changes` (a value None removes the property)."""
        return replace(self, inputs=_changed(self.inputs, changes), outputs=_changed(self.outputs, changes))

    def protected(self, protect: bool = True) -> Node:
        """A copy registered with (or without) `protect` in its resource options."""
        return replace(self, protect=protect)


def _changed(props: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(props)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


class GraphMonitor(MockMonitor):
    def __init__(self, mocks: GraphMocks) -> None:
        super().__init__(mocks)
        self.nodes: list[Node] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.nodes.append(
                Node(
                    urn=response.urn,
                    typ=request.type,
                    name=request.name,
                    parent=request.parent,
                    dependencies=tuple(request.dependencies),
                    # The engine leaves out properties that depend on nothing; so does this.
                    property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items() if v.urns},
                    inputs=json_format.MessageToDict(request.object),
                    outputs=json_format.MessageToDict(response.object),
                    protect=bool(request.protect),
                )
            )
        return response


class GraphMocks(RecordingMocks):
    """The harness's mocks (same answers), plus the graph as an analyzer sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.monitor = GraphMonitor(self)

    def nodes(self) -> list[Node]:
        return list(self.monitor.nodes)


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    message: str
    urn: str


@dataclass
class Graph:
    """The registered resources, to look up and to change before they are analysed."""

    nodes: list[Node] = field(default_factory=list)

    def of_type(self, typ: str) -> list[Node]:
        return [n for n in self.nodes if n.typ == typ]

    def named(self, name: str) -> Node:
        (node,) = [n for n in self.nodes if n.name == name]
        return node

    def replaced(self, node: Node, new: Node | None) -> Graph:
        """This graph with `node` swapped for `new` (None: removed)."""
        return Graph([new if n is node else n for n in self.nodes if n is not node or new is not None])


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(props, struct_pb2.Struct())


class PolicyEngine:
    """The pack in its own process, and the two calls a preview makes to it."""

    def __init__(self, pack_dir: Path = PACK_DIR) -> None:
        # PYTHONPATH dropped: the pack must start with nothing of the project importable, as under the CLI.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", "."],
            cwd=pack_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        port = self.process.stdout.readline().decode().strip()
        if not port.isdigit():
            self.process.kill()
            _, err = self.process.communicate()
            raise AssertionError(f"the policy pack did not start: {port!r}\n{err.decode()}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.process.kill()
        self.process.communicate()

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        return self.stub.GetAnalyzerInfo(empty_pb2.Empty())

    def configure(self, config: dict[str, Any]) -> None:
        """What `--policy-pack-config FILE` sends: each policy's config (`{}`: back to none).

        As in the file: a policy's value is its enforcement level (`"advisory"`), or its properties, which may hold
        an `enforcementLevel`; without one a policy keeps its own level, mandatory for every policy of this pack.
        """
        policies = {}
        for name, value in config.items():
            properties = {"enforcementLevel": value} if isinstance(value, str) else dict(value)
            level = properties.pop("enforcementLevel", "mandatory")
            policies[name] = analyzer_pb2.PolicyConfig(
                enforcementLevel=analyzer_pb2.EnforcementLevel.Value(level.upper()), properties=_struct(properties)
            )
        self.stub.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=policies))

    def analyze(self, node: Node, provider: dict[str, Any] | None = None) -> list[Violation]:
        """What the resource policies say about one resource's inputs (before it is created or updated).

        `provider`: the properties of the resource's AWS provider (`defaultTags`), when a test needs them.
        """
        request = analyzer_pb2.AnalyzeRequest(
            urn=node.urn,
            type=node.typ,
            name=node.name,
            properties=_struct(node.inputs),
            options=analyzer_pb2.AnalyzerResourceOptions(parent=node.parent, protect=node.protect),
        )
        if provider is not None:
            request.provider.CopyFrom(
                analyzer_pb2.AnalyzerProviderResource(
                    type="pulumi:providers:aws",
                    name="aws",
                    urn="urn:pulumi:test::p::pulumi:providers:aws::aws",
                    properties=_struct(provider),
                )
            )
        return _violations(self.stub.Analyze(request), node.urn)

    def analyze_stack(self, nodes: Sequence[Node]) -> list[Violation]:
        """What the stack policies say about every resource's outputs together."""
        request = analyzer_pb2.AnalyzeStackRequest(
            resources=[
                analyzer_pb2.AnalyzerResource(
                    urn=n.urn,
                    type=n.typ,
                    name=n.name,
                    properties=_struct(n.outputs),
                    options=analyzer_pb2.AnalyzerResourceOptions(parent=n.parent, protect=n.protect),
                    parent=n.parent,
                    dependencies=list(n.dependencies),
                    propertyDependencies={
                        k: analyzer_pb2.AnalyzerPropertyDependencies(urns=v) for k, v in n.property_dependencies.items()
                    },
                )
                for n in nodes
            ]
        )
        return _violations(self.stub.AnalyzeStack(request), "")

    def preview(self, graph: Graph | Iterable[Node]) -> list[Violation]:
        """Everything `pulumi preview --policy-pack policy` would report for this graph."""
        nodes = graph.nodes if isinstance(graph, Graph) else list(graph)
        return [v for n in nodes for v in self.analyze(n)] + self.analyze_stack(nodes)


def _violations(response: analyzer_pb2.AnalyzeResponse, default_urn: str) -> list[Violation]:
    return [
        Violation(
            policy=d.policyName,
            level=analyzer_pb2.EnforcementLevel.Name(d.enforcementLevel),
            message=d.message,
            urn=d.urn or default_urn,
        )
        for d in response.diagnostics
    ]
