"""The policy pack against the graphs the program builds: they pass, and each kind of drift is reported.

Every check goes through the pack's own process and the analyzer protocol (tests/policy/engine.py), with
properties in the engine's form, so a test passes only if `pulumi preview --policy-pack policy` would agree.
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from tests.infra.harness import ACCOUNT, ROOT
from tests.policy.conftest import STACKS, Build
from tests.policy.engine import PACK_DIR, Graph, Node, PolicyEngine, Violation

BUCKET = "aws:s3/bucket:Bucket"
TOPIC = "aws:sns/topic:Topic"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
BUCKET_SETTING_TYPES = (
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketPolicy:BucketPolicy",
)
PUBLIC_ACCESS_SETTINGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
STACK_POLICY = "s3-bucket-has-baseline-settings"
RESOURCE_POLICIES = (
    "s3-public-access-blocked",
    "s3-default-encryption",
    "s3-versioning-enabled",
    "s3-tls-only",
    "sns-topic-encrypted",
    "iam-no-wildcard-actions",
    "iam-s3-resources-named",
)
BASELINE = (STACK_POLICY, *RESOURCE_POLICIES)
# The rules of policy/hardening.py (tests/policy/test_hardening.py), in the pack beside these.
HARDENING_STACK_POLICIES = ("s3-access-logged", "cloudwatch-log-groups-one-key", "scheduler-failures-alarmed")
HARDENING_RESOURCE_POLICIES = (
    "cloudwatch-log-retention",
    "lambda-reserved-concurrency",
    "scheduler-dead-letter-and-retry",
    "iam-service-trust-source-scoped",
    "data-protected",
    "required-tags",
)


class BaselineOnly:
    """The pack as these tests read it: only the baseline's policies (policy/hardening.py has its own tests).

    The stacks fail some hardening rules until issue 23's parts are merged (tests/policy/test_hardening.py),
    and a change made here to break one baseline rule must be reported by that rule alone.
    """

    def __init__(self, engine: PolicyEngine) -> None:
        self.engine = engine

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        return self.engine.info()

    def analyze(self, node: Node) -> list[Violation]:
        return [v for v in self.engine.analyze(node) if v.policy in BASELINE]

    def analyze_stack(self, nodes: list[Node]) -> list[Violation]:
        return [v for v in self.engine.analyze_stack(nodes) if v.policy in BASELINE]

    def preview(self, graph: Graph) -> list[Violation]:
        return [v for v in self.engine.preview(graph) if v.policy in BASELINE]


@pytest.fixture
def pack(pack: PolicyEngine) -> BaselineOnly:
    return BaselineOnly(pack)


def document(node: Node, key: str = "policy") -> dict[str, Any]:
    return json.loads(node.inputs[key])


def with_statement(node: Node, statement: dict[str, Any]) -> Node:
    """A policy resource whose document gained one statement."""
    policy = document(node)
    policy["Statement"].append(statement)
    return node.with_inputs(policy=json.dumps(policy))


def only(violations: list[Violation]) -> Violation:
    assert len(violations) == 1, violations
    return violations[0]


# --- the pack as the CLI starts it ---------------------------------------------------------------------


def test_the_pack_starts_in_its_own_directory_and_every_policy_is_mandatory(pack: BaselineOnly) -> None:
    info = pack.engine.info()
    assert info.name == "data-file-ingestion-baseline"
    levels = {p.name: analyzer_pb2.EnforcementLevel.Name(p.enforcementLevel) for p in info.policies}
    every = (*BASELINE, *HARDENING_STACK_POLICIES, *HARDENING_RESOURCE_POLICIES)
    assert levels == dict.fromkeys(every, "MANDATORY")
    kinds = {p.name: analyzer_pb2.PolicyType.Name(p.policy_type) for p in info.policies}
    assert {kinds[name] for name in (STACK_POLICY, *HARDENING_STACK_POLICIES)} == {"POLICY_TYPE_STACK"}
    assert {kinds[name] for name in (*RESOURCE_POLICIES, *HARDENING_RESOURCE_POLICIES)} == {"POLICY_TYPE_RESOURCE"}


def test_the_pack_imports_only_the_standard_library_and_the_policy_sdk() -> None:
    """It runs beside a deployment, with no AWS credentials of its own: nothing of the project is imported."""
    allowed = {"pulumi_policy", "baseline", "hardening"}
    for path in sorted(PACK_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                assert top in allowed or top in sys.stdlib_module_names, f"{path.name} imports {module}"


def test_the_pack_requirements_are_the_repository_pins() -> None:
    def pins(path: Any) -> set[str]:
        lines = (line.strip() for line in path.read_text().splitlines())
        return {line for line in lines if line and not line.startswith("#")}

    pack_pins = pins(PACK_DIR / "requirements.txt")
    assert {pin.split("==")[0] for pin in pack_pins} == {"pulumi", "pulumi-policy"}
    assert pack_pins <= pins(ROOT / "requirements.txt")


# --- the stacks the project builds pass ----------------------------------------------------------------


@pytest.mark.parametrize("which", STACKS)
def test_every_stack_the_project_builds_passes_the_baseline(build: Build, pack: BaselineOnly, which: str) -> None:
    graph = build(which)
    buckets = graph.of_type(BUCKET)
    # Something for every rule to read: buckets with each setting, a topic, roles with their policies.
    assert len(buckets) >= 2
    for typ in BUCKET_SETTING_TYPES:
        assert len(graph.of_type(typ)) == len(buckets), typ
    assert len(graph.of_type(TOPIC)) == 1
    assert len(graph.of_type(ROLE)) == 3
    assert len(graph.of_type(ROLE_POLICY)) >= 4
    # The one Resource "*" of the stack (log delivery, not S3) is there, and allowed.
    delivery = [s for s in document(graph.named("ingestion-workflow-policy"))["Statement"] if s["Resource"] == "*"]
    assert [s["Sid"] for s in delivery] == ["DeliverLogs"]

    assert pack.preview(graph) == []


# --- buckets ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, setting",
    [
        ("public-access-block", "public access block"),
        ("encryption", "default encryption"),
        ("versioning", "versioning"),
        ("policy", "bucket policy"),
    ],
)
def test_a_bucket_without_one_of_its_settings_is_reported_by_name(
    build: Build, pack: BaselineOnly, suffix: str, setting: str
) -> None:
    graph = build("dev")
    bucket = graph.named("ingestion-raw-bucket")
    name = bucket.inputs["bucket"]

    violation = only(pack.preview(graph.replaced(graph.named(f"ingestion-raw-{suffix}"), None)))

    assert (violation.policy, violation.level, violation.urn) == (STACK_POLICY, "MANDATORY", bucket.urn)
    assert f"bucket {name} (ingestion-raw-bucket) has no {setting}: add an aws.s3." in violation.message


@pytest.mark.parametrize("setting", PUBLIC_ACCESS_SETTINGS)
@pytest.mark.parametrize("value", [False, None])
def test_a_public_access_block_with_any_setting_off_or_unset_is_reported(
    build: Build, pack: BaselineOnly, setting: str, value: bool | None
) -> None:
    graph = build("dev")
    block = graph.named("ingestion-raw-public-access-block")

    violation = only(pack.preview(graph.replaced(block, block.with_inputs(**{setting: value}))))

    assert (violation.policy, violation.level, violation.urn) == ("s3-public-access-blocked", "MANDATORY", block.urn)
    raw = block.inputs["bucket"]
    assert f"BucketPublicAccessBlock ingestion-raw-public-access-block (bucket {raw}): {setting} not true" in (
        violation.message
    )


@pytest.mark.parametrize(
    "rules",
    [
        [],
        [{"bucketKeyEnabled": True}],
        [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "none"}}],
    ],
    ids=["no-rule", "no-default", "unknown-algorithm"],
)
def test_a_bucket_without_sse_s3_or_sse_kms_by_default_is_reported(
    build: Build, pack: BaselineOnly, rules: list[dict[str, Any]]
) -> None:
    graph = build("dev")
    encryption = graph.named("ingestion-config-bucket-encryption")

    violation = only(pack.preview(graph.replaced(encryption, encryption.with_inputs(rules=rules))))

    assert (violation.policy, violation.urn) == ("s3-default-encryption", encryption.urn)
    assert "BucketServerSideEncryptionConfiguration ingestion-config-bucket-encryption (bucket " in violation.message
    assert '"AES256" (SSE-S3) or "aws:kms" (SSE-KMS)' in violation.message


def test_sse_kms_with_the_stack_key_passes(build: Build, pack: BaselineOnly) -> None:
    graph = build("two-datasets-kms")
    algorithms = {
        node.name: {rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] for rule in node.inputs["rules"]}
        for node in graph.of_type(BUCKET_SETTING_TYPES[1])
    }
    # S3 delivers no server access logs into an SSE-KMS bucket: the access log bucket is SSE-S3 whatever the key.
    assert algorithms.pop("ingestion-access-logs-encryption") == {"AES256"}
    assert algorithms and all(a == {"aws:kms"} for a in algorithms.values())
    assert [v for n in graph.of_type(BUCKET_SETTING_TYPES[1]) for v in pack.analyze(n)] == []


def test_suspended_versioning_is_reported(build: Build, pack: BaselineOnly) -> None:
    graph = build("dev")
    versioning = graph.named("ingestion-raw-versioning")
    suspended = versioning.with_inputs(versioningConfiguration={"status": "Suspended"})

    violation = only(pack.preview(graph.replaced(versioning, suspended)))

    assert (violation.policy, violation.urn) == ("s3-versioning-enabled", versioning.urn)
    assert "BucketVersioning ingestion-raw-versioning (bucket " in violation.message
    assert "versioning status is 'Suspended': set versioningConfiguration.status to \"Enabled\"" in violation.message


def tls_deny(bucket: str, **changes: Any) -> dict[str, Any]:
    statement = {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    statement.update(changes)
    return {k: v for k, v in statement.items() if v is not None}


@pytest.mark.parametrize(
    "changes",
    [
        lambda raw: {"Effect": "Allow"},
        lambda raw: {"Condition": None},
        lambda raw: {"Condition": {"Bool": {"aws:SecureTransport": "true"}}},
        lambda raw: {"Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}},
        lambda raw: {"Action": ["s3:GetObject", "s3:PutObject"]},
        lambda raw: {"Resource": [f"arn:aws:s3:::{raw}/*"]},
        lambda raw: {"Resource": ["arn:aws:s3:::another-bucket", "arn:aws:s3:::another-bucket/*"]},
    ],
    ids=["allow", "no-condition", "tls-true", "one-principal", "some-actions", "objects-only", "another-bucket"],
)
def test_a_bucket_policy_without_the_tls_deny_is_reported(
    build: Build, pack: BaselineOnly, changes: Callable[[str], dict[str, Any]]
) -> None:
    graph = build("dev")
    policy = graph.named("ingestion-raw-policy")
    raw = graph.named("ingestion-raw-bucket").inputs["bucket"]
    broken = {"Version": "2012-10-17", "Statement": [tls_deny(raw, **changes(raw))]}

    violations = pack.preview(graph.replaced(policy, policy.with_inputs(policy=json.dumps(broken))))

    violation = only([v for v in violations if v.policy == "s3-tls-only"])
    assert (violation.level, violation.urn) == ("MANDATORY", policy.urn)
    assert f"BucketPolicy ingestion-raw-policy (bucket {raw}): no statement denies requests without TLS" in (
        violation.message
    )


def test_a_tls_deny_written_another_valid_way_passes(build: Build, pack: BaselineOnly) -> None:
    graph = build("dev")
    policy = graph.named("ingestion-raw-policy")
    raw = graph.named("ingestion-raw-bucket").inputs["bucket"]
    statement = tls_deny(
        raw, Principal={"AWS": ["*"]}, Action=["s3:*"], Condition={"Bool": {"aws:SecureTransport": False}}
    )
    other = policy.with_inputs(policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))

    assert pack.analyze(other) == []


# --- topics ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, ""])
def test_a_topic_without_encryption_is_reported(build: Build, pack: BaselineOnly, key: str | None) -> None:
    graph = build("dev")
    (topic,) = graph.of_type(TOPIC)

    violation = only(pack.preview(graph.replaced(topic, topic.with_inputs(kmsMasterKeyId=key))))

    assert (violation.policy, violation.level, violation.urn) == ("sns-topic-encrypted", "MANDATORY", topic.urn)
    assert "Topic ingestion-notifications-topic: not encrypted at rest: set kmsMasterKeyId" in violation.message


# --- IAM and resource policies ---------------------------------------------------------------------------


RAW_OBJECTS = "arn:aws:s3:::acme-raw/orders/*"


@pytest.mark.parametrize(
    "statement, shown",
    [
        ({"Action": "s3:*", "Resource": RAW_OBJECTS}, "allows s3:*"),
        ({"Action": ["s3:GetObject", "s3:Put*"], "Resource": RAW_OBJECTS}, "allows s3:Put*"),
        ({"Action": "sns:*", "Resource": "arn:aws:sns:eu-west-1:123456789012:t"}, "allows sns:*"),
        ({"NotAction": "iam:*", "Resource": RAW_OBJECTS}, "allows everything but ['iam:*'] (NotAction)"),
    ],
    ids=["s3-star", "prefix-wildcard", "other-service-star", "not-action"],
)
def test_a_role_policy_allowing_a_wildcard_action_is_reported(
    build: Build, pack: BaselineOnly, statement: dict[str, Any], shown: str
) -> None:
    graph = build("two-datasets")
    policy = graph.named("ingestion-lambda-policy")
    changed = with_statement(policy, {"Sid": "Extra", "Effect": "Allow", **statement})

    violation = only(pack.preview(graph.replaced(policy, changed)))

    assert (violation.policy, violation.level, violation.urn) == ("iam-no-wildcard-actions", "MANDATORY", policy.urn)
    assert f"RolePolicy ingestion-lambda-policy, policy: statement Extra {shown}" in violation.message


@pytest.mark.parametrize(
    "action, resource",
    [
        ("s3:GetObject", "*"),
        (["s3:GetObject", "s3:PutObject"], ["arn:aws:s3:::acme-raw/orders/*", "arn:aws:s3:::*/*"]),
        ("s3:ListBucket", "arn:aws:s3:::*"),
    ],
    ids=["resource-star", "any-bucket-objects", "any-bucket"],
)
def test_an_s3_action_on_every_bucket_is_reported(build: Build, pack: BaselineOnly, action: Any, resource: Any) -> None:
    graph = build("two-datasets")
    policy = graph.named("ingestion-lambda-policy")
    changed = with_statement(policy, {"Sid": "Everywhere", "Effect": "Allow", "Action": action, "Resource": resource})

    violation = only(pack.preview(graph.replaced(policy, changed)))

    assert (violation.policy, violation.level, violation.urn) == ("iam-s3-resources-named", "MANDATORY", policy.urn)
    assert "RolePolicy ingestion-lambda-policy, policy: statement Everywhere allows s3:" in violation.message
    assert "name the buckets and prefixes" in violation.message


def test_resource_star_for_an_action_aws_cannot_scope_passes_but_not_beside_an_s3_action(
    build: Build, pack: BaselineOnly
) -> None:
    graph = build("two-datasets")
    policy = graph.named("ingestion-lambda-policy")
    xray = {"Sid": "Traces", "Effect": "Allow", "Action": ["xray:PutTraceSegments"], "Resource": "*"}
    assert pack.analyze(with_statement(policy, xray)) == []

    mixed = with_statement(policy, {**xray, "Action": ["xray:PutTraceSegments", "s3:GetObject"]})
    assert [v.policy for v in pack.analyze(mixed)] == ["iam-s3-resources-named"]


def test_an_allow_everything_statement_breaks_both_iam_rules(build: Build, pack: BaselineOnly) -> None:
    graph = build("dev")
    policy = graph.named("ingestion-workflow-policy")
    admin = with_statement(policy, {"Sid": "Admin", "Effect": "Allow", "Action": "*", "Resource": "*"})

    violations = pack.analyze(admin)

    assert sorted(v.policy for v in violations) == ["iam-no-wildcard-actions", "iam-s3-resources-named"]
    assert all(
        "RolePolicy ingestion-workflow-policy, policy: statement Admin allows *" in v.message for v in violations
    )


def test_a_bucket_policy_granting_a_wildcard_is_reported(build: Build, pack: BaselineOnly) -> None:
    graph = build("dev")
    policy = graph.named("ingestion-raw-policy")
    raw = graph.named("ingestion-raw-bucket").inputs["bucket"]
    grant = {
        "Sid": "PartnerRead",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
        "Action": "s3:Get*",
        "Resource": f"arn:aws:s3:::{raw}/*",
    }

    violation = only(pack.analyze(with_statement(policy, grant)))

    assert violation.policy == "iam-no-wildcard-actions"
    assert f"BucketPolicy ingestion-raw-policy (bucket {raw}), policy: statement PartnerRead allows s3:Get*" in (
        violation.message
    )


def test_role_inline_and_trust_policies_are_read_too(build: Build, pack: BaselineOnly) -> None:
    graph = build("dev")
    role = graph.named("ingestion-lambda-role")
    trust = document(role, "assumeRolePolicy")
    trust["Statement"][0]["Action"] = "sts:*"
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": RAW_OBJECTS}]}
    changed = role.with_inputs(
        assumeRolePolicy=json.dumps(trust), inlinePolicies=[{"name": "admin", "policy": json.dumps(admin)}]
    )

    messages = sorted(v.message for v in pack.preview(graph.replaced(role, changed)))

    assert len(messages) == 2
    assert "Role ingestion-lambda-role, assumeRolePolicy: statement #0 allows sts:*" in messages[0]
    assert "Role ingestion-lambda-role, inline policy admin: statement #0 allows s3:*" in messages[1]


# --- a preview of a new stack, where ids and ARNs are not known yet --------------------------------------


def unknown_names(graph: Graph) -> Graph:
    """The graph as a first preview sees it: bucket names and ids unknown, and whatever was built from them."""
    nodes = []
    for node in graph.nodes:
        if node.typ == BUCKET:
            node = node.with_inputs(bucket=UNKNOWN_STRING_VALUE, id=UNKNOWN_STRING_VALUE, arn=UNKNOWN_STRING_VALUE)
        elif node.typ in BUCKET_SETTING_TYPES:
            node = node.with_inputs(bucket=UNKNOWN_STRING_VALUE)
        if "policy" in node.property_dependencies:
            node = node.with_inputs(policy=UNKNOWN_STRING_VALUE)
        nodes.append(node)
    return Graph(nodes)


def test_in_a_first_preview_buckets_are_matched_to_their_settings_by_dependency(
    build: Build, pack: BaselineOnly
) -> None:
    graph = unknown_names(build("dev"))

    violations = pack.preview(graph)

    # Policies not known yet are left to `pulumi up` (advisory notes); nothing mandatory fails.
    assert violations
    assert {v.level for v in violations} == {"ADVISORY"}
    assert all("can't run policy" in v.message and "during preview" in v.message for v in violations)
    assert {v.policy for v in violations} == {"s3-tls-only", "iam-no-wildcard-actions", "iam-s3-resources-named"}

    # A bucket that lost its public access block is still found, by its logical name.
    bucket = graph.named("ingestion-raw-bucket")
    missing = graph.replaced(graph.named("ingestion-raw-public-access-block"), None)
    (violation,) = [v for v in pack.analyze_stack(missing.nodes) if v.level == "MANDATORY"]
    assert violation.urn == bucket.urn
    assert "bucket ingestion-raw-bucket has no public access block" in violation.message
