"""Pulumi mocks that record every resource, and the stack configs the graph tests deploy.

Resources are collected in `new_resource` and asserted after the program has finished registering (the
`pulumi.runtime.test` wrapper waits for every outstanding registration), so an assertion can never be
skipped because an Output was not awaited. The mocks return realistic ARNs and auto-named physical
names (`<logical>-<suffix>`), so a test cannot pass by confusing a logical name with a physical one.
"""

from __future__ import annotations

import functools
import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pulumi
import yaml

from handler.config import parse_config
from infra.sdk_layer import SdkLayer, installed_sdk_layer
from infra.stack_config import NAMESPACE, StackConfig, parse_stack_config

ROOT = Path(__file__).resolve().parents[2]
HANDLER_DIR = ROOT / "handler"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
PARTITION = "aws"
AUTONAME_SUFFIX = "-7f3a2c1"
# Pulumi.dev.yaml's bucket names, as the program fills them in for the mocks' account and region.
DEV_RAW = f"data-file-ingestion-dev-raw-{ACCOUNT}-{REGION}"
DEV_CONFIG = f"data-file-ingestion-dev-config-{ACCOUNT}-{REGION}"
DEV_SOURCE = f"data-file-ingestion-dev-movielens-{ACCOUNT}-{REGION}"


@dataclass
class Registered:
    """One resource as the program registered it: its inputs, and the state the mock answered."""

    typ: str
    name: str
    inputs: dict[str, Any]
    state: dict[str, Any]
    protect: bool = False
    """The `protect` option the program sent with the registration (the engine, not the provider, enforces it)."""
    retain_on_delete: bool = False
    dependencies: tuple[str, ...] = ()
    """URNs the registration waits for (`depends_on`, a component's expanded to its children)."""

    @property
    def arn(self) -> str:
        return self.state["arn"]


@dataclass
class Deployment:
    """Everything one program run registered, plus its stack exports."""

    resources: list[Registered]
    urns: list[str] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def named(self, name: str) -> Registered:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name!r}, found {len(matches)}"
        return matches[0]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.resources:
            counts[r.typ] = counts.get(r.typ, 0) + 1
        return counts

    def policy(self, name: str) -> dict[str, Any]:
        """A RolePolicy's or BucketPolicy's document, parsed."""
        return json.loads(self.named(name).inputs["policy"])


def _physical(name: str) -> str:
    return name + AUTONAME_SUFFIX


def _answer(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs AWS would report for a new resource: id, name, ARN."""
    if typ == "aws:s3/bucket:Bucket":
        bucket = inputs.get("bucket") or _physical(name)
        return {"id": bucket, "bucket": bucket, "arn": f"arn:{PARTITION}:s3:::{bucket}"}
    if typ == "aws:iam/role:Role":
        role = _physical(name)
        return {"id": role, "name": role, "arn": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{role}"}
    if typ == "aws:sns/topic:Topic":
        topic = _physical(name)
        arn = f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{topic}"
        return {"id": arn, "name": topic, "arn": arn}
    if typ == "aws:lambda/function:Function":
        function = _physical(name)
        return {
            "id": function,
            "name": function,
            "arn": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{function}",
        }
    if typ == "aws:cloudwatch/logGroup:LogGroup":
        group = inputs.get("name") or inputs["namePrefix"] + "20261127"
        return {"id": group, "name": group, "arn": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{group}"}
    if typ == "aws:sfn/stateMachine:StateMachine":
        machine = inputs.get("name") or _physical(name)
        arn = f"arn:{PARTITION}:states:{REGION}:{ACCOUNT}:stateMachine:{machine}"
        return {"id": arn, "name": machine, "arn": arn}
    if typ == "aws:scheduler/schedule:Schedule":
        schedule = _physical(name)
        group = inputs.get("groupName") or "default"
        return {
            "id": f"{group}/{schedule}",
            "name": schedule,
            "arn": f"arn:{PARTITION}:scheduler:{REGION}:{ACCOUNT}:schedule/{group}/{schedule}",
        }
    if typ == "aws:scheduler/scheduleGroup:ScheduleGroup":
        group = inputs.get("name") or _physical(name)
        return {
            "id": group,
            "name": group,
            "arn": f"arn:{PARTITION}:scheduler:{REGION}:{ACCOUNT}:schedule-group/{group}",
        }
    if typ == "aws:sqs/queue:Queue":
        queue = _physical(name)
        url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{queue}"
        return {"id": url, "name": queue, "url": url, "arn": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{queue}"}
    if typ == "aws:sns/topicSubscription:TopicSubscription":
        return {"arn": f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:topic:{name}"}
    if typ == "aws:kms/key:Key":
        key_id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
        return {"id": key_id, "keyId": key_id, "arn": f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/{key_id}"}
    if typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
        alarm = inputs.get("name") or _physical(name)
        return {"id": alarm, "name": alarm, "arn": f"arn:{PARTITION}:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm}"}
    if typ == "aws:lambda/layerVersion:LayerVersion":
        layer = inputs["layerName"]
        layer_arn = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:layer:{layer}"
        return {"id": f"{layer_arn}:1", "arn": f"{layer_arn}:1", "layerArn": layer_arn, "version": "1"}
    if typ == "aws:glue/catalogDatabase:CatalogDatabase":
        database = inputs["name"]
        return {
            "id": f"{ACCOUNT}:{database}",
            "name": database,
            "arn": f"arn:{PARTITION}:glue:{REGION}:{ACCOUNT}:database/{database}",
        }
    return {}


class _OptionsMonitor(pulumi.runtime.mocks.MockMonitor):
    """The SDK's mock monitor, which also keeps the resource options it is sent that `Mocks.new_resource` never sees
    (`protect`, `retainOnDelete`, the explicit dependencies): what the program asks the engine for, as the engine
    would receive it."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.options: dict[tuple[str, str], dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        self.options[(request.type, request.name)] = {
            "protect": request.protect,
            "retain_on_delete": request.retainOnDelete,
            "dependencies": tuple(request.dependencies),
        }
        return super().RegisterResource(request)


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers like AWS would, and keeps every registration for the assertions."""

    def __init__(self) -> None:
        self.resources: list[Registered] = []
        self.monitor = _OptionsMonitor(self)

    def urns(self) -> list[str]:
        """Every registered URN: the type chain in a URN shows which component each resource lives in."""
        return list(self.monitor.get_registered_resources())

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        answer = _answer(args.typ, args.name, args.inputs)
        state = {**args.inputs, **answer}
        # A subclass may bring a monitor of its own (tests/policy/engine.py), which keeps no options.
        options = getattr(self.monitor, "options", {}).get((args.typ, args.name), {})
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs), state, **options))
        return answer.get("id", f"{args.name}-id"), state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == "aws:index/getPartition:getPartition":
            return {"id": PARTITION, "partition": PARTITION, "dnsSuffix": "amazonaws.com"}
        if args.token == "aws:index/getRegion:getRegion":
            return {"id": REGION, "region": REGION, "name": REGION, "endpoint": f"ec2.{REGION}.amazonaws.com"}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "id": ACCOUNT,
                "accountId": ACCOUNT,
                "arn": f"arn:{PARTITION}:iam::{ACCOUNT}:user/deployer",
                "userId": "AIDAEXAMPLE",
            }
        raise AssertionError(f"the program made an invoke the mocks do not answer: {args.token}")


@functools.cache
def pinned_sdk_layer() -> SdkLayer:
    """The SDK layer `pulumi up` builds from this virtualenv (built once: it walks ~2,300 files)."""
    return installed_sdk_layer(ROOT / "requirements.txt")


def run_main(mocks: RecordingMocks, config: dict[str, str]) -> Deployment:
    """Run __main__.py, exactly as `pulumi up` would, against the given stack config, under `mocks` (already set)."""
    exports: dict[str, Any] = {}
    resolved: dict[str, Any] = {}
    pulumi.runtime.set_all_config(config)

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        runpy.run_path(str(ROOT / "__main__.py"))
        # Resolve every export, so a test sees values, not Outputs.
        return pulumi.Output.from_input(exports).apply(resolved.update)

    with mock.patch.object(pulumi, "export", lambda name, value: exports.__setitem__(name, value)):
        program()
    return Deployment(resources=list(mocks.resources), urns=mocks.urns(), exports=resolved)


def dev_stack_config() -> dict[str, str]:
    """Pulumi.dev.yaml as the CLI hands it to the program: every value a string, objects as JSON."""
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    return {name: pulumi_string(value) for name, value in config.items()}


def placeholders() -> dict[str, str]:
    """What the program asks the provider for `{account_id}` and `{region}`, as the mocks answer it."""
    return {"account_id": ACCOUNT, "region": REGION}


def dev_config() -> StackConfig:
    """Pulumi.dev.yaml validated, its bucket names filled in as the program fills them."""
    return parse_stack_config(stack_values(dev_stack_config()), placeholders=placeholders)


def pulumi_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def stack_values(config: dict[str, str]) -> dict[str, str]:
    """Only this project's keys, without the namespace."""
    prefix = NAMESPACE + ":"
    return {name[len(prefix) :]: value for name, value in config.items() if name.startswith(prefix)}


def two_dataset_config(**overrides: Any) -> StackConfig:
    """Two datasets reading two different existing source buckets (perhaps in other accounts)."""
    datasets = {
        "orders": {
            "source": {"bucket": "partner-orders-export", "prefix": "daily/orders/"},
            "target": {"bucket": "acme-raw", "prefix": "orders/"},
            "include": ["*.parquet"],
            "schedule": " cron(30 2 * * ? *) ",  # spaces around, as a hand-edited YAML may have
            "timezone": "Europe/Berlin",
        },
        "click_stream": {
            "source": {"bucket": "web-analytics-drop"},
            "target": {"bucket": "acme-raw", "prefix": "clicks/"},
            "timezone": "UTC",
        },
    }
    return StackConfig(
        **{
            "raw_bucket": "acme-raw",
            "config_bucket": "acme-ingestion-config",
            "datasets": parse_config({"datasets": datasets}),
            **overrides,
        }
    )
