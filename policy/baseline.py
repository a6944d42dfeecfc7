"""The security baseline of every stack of this project, as CrossGuard policies (`pulumi_policy`).

What it enforces, each rule mandatory (docs/policy.md): buckets block public access, are encrypted and
versioned, and refuse plain HTTP; topics are encrypted; no IAM or resource policy allows a wildcard action,
and no S3 action is allowed on every bucket.

The pack runs in its own directory (`python -m pulumi.policy` puts only `policy/` on the path), so this one
module holds all of it and imports nothing from the project: it reads the resource graph the engine sends,
never AWS. Properties arrive under the provider's names (`blockPublicAcls`, `versioningConfiguration`), as
read-only mappings and sequences; during `pulumi preview` some values are still unknown, and reading one
raises `UnknownValueError`, which the SDK turns into an advisory "can't run during preview" for that
resource. The rule then runs for real in `pulumi up`, before the resource is created.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

PACK_NAME = "data-file-ingestion-baseline"

BUCKET_TYPES = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ENCRYPTION_TYPES = frozenset(
    {
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
    }
)
VERSIONING_TYPES = frozenset(
    {"aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2"}
)
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
TOPIC = "aws:sns/topic:Topic"
ROLE = "aws:iam/role:Role"

PUBLIC_ACCESS_SETTINGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
# SSE-S3, SSE-KMS and dual-layer SSE-KMS; anything else (or no default rule) leaves objects to the writer.
SSE_ALGORITHMS = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})
# Properties that hold a policy document on any AWS resource: identity policies (RolePolicy, Policy, ...),
# trust policies, and resource policies (BucketPolicy, TopicPolicy, KeyPolicy, LogResourcePolicy, ...).
POLICY_PROPERTIES = ("policy", "assumeRolePolicy", "policyDocument")

Problem = str
"""One violation, as the message a user reads: which resource, what is wrong, what to change."""


# --- reading properties --------------------------------------------------------------------------------


def known(props: Mapping[str, Any], key: str) -> Any:
    """`props[key]`, or None when it is absent or not known yet (a preview of resources not created)."""
    try:
        return props.get(key)
    except UnknownValueError:
        return None


def strings(value: Any) -> list[str]:
    """A policy field that is one string or a list of them (`Action`, `Resource`), as a list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [item for item in value if isinstance(item, str)]
    return []


def parse_document(value: Any) -> Mapping[str, Any] | None:
    """A policy document from a property (JSON text, as the provider takes it); None if it is not one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, Mapping) and "Statement" in value:
        return value
    return None


def statements(document: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(label, statement) for each statement; the label is the Sid, or the position when there is none."""
    body = document.get("Statement")
    items = [body] if isinstance(body, Mapping) else list(body) if isinstance(body, Sequence) else []
    for index, statement in enumerate(items):
        if isinstance(statement, Mapping):
            yield str(statement.get("Sid") or f"#{index}"), statement


def policy_documents(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, document) for every policy document a resource carries, found by property name.

    By name, not by type, so a resource policy on a type this pack has never heard of is checked too.
    """
    for key in POLICY_PROPERTIES:
        if key in props:
            document = parse_document(props[key])
            if document is not None:
                yield key, document
    if resource_type == ROLE:
        for index, inline in enumerate(props.get("inlinePolicies") or ()):
            document = parse_document(inline.get("policy")) if isinstance(inline, Mapping) else None
            if document is not None:
                yield f"inline policy {inline.get('name') or index}", document


def _label(kind: str, args: ResourceValidationArgs) -> str:
    """`BucketPolicy ingestion-raw-policy (bucket acme-raw)`: the logical name, and the bucket if known."""
    bucket = known(args.props, "bucket")
    return f"{kind} {args.name}" + (f" (bucket {bucket})" if isinstance(bucket, str) else "")


# --- IAM: named actions, named buckets -----------------------------------------------------------------


def wildcard_action_problems(document: Mapping[str, Any]) -> list[Problem]:
    """Allow statements that grant more actions than they name: `*`, `s3:*`, `s3:Get*`, or NotAction.

    Deny statements may use wildcards (the TLS-only bucket policy denies `s3:*`: it must cover every action).
    """
    problems = []
    for sid, statement in statements(document):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            problems.append(
                f"statement {sid} allows everything but {strings(statement['NotAction'])} (NotAction): "
                "list the actions it needs in Action instead"
            )
        wild = [action for action in strings(statement.get("Action")) if "*" in action or "?" in action]
        if wild:
            problems.append(
                f"statement {sid} allows {', '.join(wild)}: name each action it needs (e.g. s3:GetObject), "
                "never a wildcard"
            )
    return problems


def is_any_bucket(resource: str) -> bool:
    """True for `*` and for S3 ARNs that name no bucket (`arn:aws:s3:::*`, `arn:aws:s3:::*/*`)."""
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] not in ("s3", "*"):
        return False
    bucket = parts[5].split("/", 1)[0]
    return bucket.strip("*?") == ""


def s3_resource_problems(document: Mapping[str, Any]) -> list[Problem]:
    """Allow statements whose S3 actions reach every bucket: `Resource: "*"`, `arn:aws:s3:::*`, NotResource.

    Other services keep `Resource: "*"` where AWS offers nothing narrower (CloudWatch Logs delivery, X-Ray);
    an S3 action always has a bucket or object ARN to name.
    """
    problems = []
    for sid, statement in statements(document):
        if statement.get("Effect") != "Allow":
            continue
        actions = [a for a in strings(statement.get("Action")) if a.lower().startswith("s3:") or a == "*"]
        if not actions:
            continue
        if "NotResource" in statement:
            problems.append(
                f"statement {sid} allows {', '.join(actions)} on every resource but "
                f"{strings(statement['NotResource'])} (NotResource): list the bucket and object ARNs in Resource"
            )
        broad = [resource for resource in strings(statement.get("Resource")) if is_any_bucket(resource)]
        if broad:
            problems.append(
                f"statement {sid} allows {', '.join(actions)} on {', '.join(broad)}: name the buckets and "
                "prefixes (arn:aws:s3:::BUCKET for ListBucket, arn:aws:s3:::BUCKET/PREFIX/* for objects)"
            )
    return problems


# --- S3 and SNS settings --------------------------------------------------------------------------------


def public_access_block_problems(props: Mapping[str, Any]) -> list[Problem]:
    off = [name for name in PUBLIC_ACCESS_SETTINGS if props.get(name) is not True]
    if not off:
        return []
    return [f"{', '.join(off)} not true: set all four of {', '.join(PUBLIC_ACCESS_SETTINGS)} to true"]


def encryption_problems(props: Mapping[str, Any]) -> list[Problem]:
    algorithms = [_default_algorithm(rule) for rule in props.get("rules") or ()]
    if algorithms and all(algorithm in SSE_ALGORITHMS for algorithm in algorithms):
        return []
    found = ", ".join(repr(a) if a else "unset" for a in algorithms) if algorithms else "in no rule"
    return [
        f"sseAlgorithm {found}: give each rule applyServerSideEncryptionByDefault.sseAlgorithm "
        '"AES256" (SSE-S3) or "aws:kms" (SSE-KMS)'
    ]


def _default_algorithm(rule: Any) -> Any:
    default = rule.get("applyServerSideEncryptionByDefault") if isinstance(rule, Mapping) else None
    return default.get("sseAlgorithm") if isinstance(default, Mapping) else None


def versioning_problems(props: Mapping[str, Any]) -> list[Problem]:
    status = (props.get("versioningConfiguration") or {}).get("status")
    if status == "Enabled":
        return []
    return [f'versioning status is {status!r}: set versioningConfiguration.status to "Enabled"']


def denies_insecure_transport(document: Mapping[str, Any], bucket: str | None) -> bool:
    """Whether a statement denies everyone every S3 action on the bucket and its objects without TLS.

    `bucket` None (not known yet in a preview): any one bucket covered with its objects is enough.
    """
    for _, statement in statements(document):
        principal = statement.get("Principal")
        if isinstance(principal, Mapping):
            principal = principal.get("AWS")
        if statement.get("Effect") != "Deny" or "*" not in strings(principal):
            continue
        if not {"s3:*", "*"} & {action.lower() for action in strings(statement.get("Action"))}:
            continue
        condition = statement.get("Condition") or {}
        values = [
            str(value).lower()
            for operator in ("Bool", "BoolIfExists")
            for value in _condition_values(condition.get(operator), "aws:SecureTransport")
        ]
        if "false" not in values:
            continue
        if _covers_bucket_and_objects(strings(statement.get("Resource")), bucket):
            return True
    return False


def _condition_values(block: Any, key: str) -> list[Any]:
    if not isinstance(block, Mapping):
        return []
    value = block.get(key)
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]


def _covers_bucket_and_objects(resources: list[str], bucket: str | None) -> bool:
    if "*" in resources:
        return True
    names = {r.split(":", 5)[5] for r in resources if r.startswith("arn:") and r.count(":") >= 5}
    covered = {name for name in names if "/" not in name and f"{name}/*" in names}
    return bool(covered) if bucket is None else bool({bucket, "*"} & covered)


def bucket_policy_problems(props: Mapping[str, Any]) -> list[Problem]:
    document = parse_document(props.get("policy"))
    bucket = known(props, "bucket")
    if document is not None and denies_insecure_transport(document, bucket if isinstance(bucket, str) else None):
        return []
    return [
        'no statement denies requests without TLS: add {"Effect": "Deny", "Principal": "*", "Action": "s3:*", '
        '"Resource": [BUCKET_ARN, BUCKET_ARN/*], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}'
    ]


def topic_problems(props: Mapping[str, Any]) -> list[Problem]:
    if props.get("kmsMasterKeyId"):
        return []
    return ['not encrypted at rest: set kmsMasterKeyId (the stack key\'s ARN, or "alias/aws/sns")']


# --- every bucket has each setting (stack) ------------------------------------------------------------

BUCKET_SETTINGS: tuple[tuple[str, frozenset[str], str], ...] = (
    (
        "public access block",
        frozenset({PUBLIC_ACCESS_BLOCK}),
        "an aws.s3.BucketPublicAccessBlock, all four settings true",
    ),
    ("default encryption", ENCRYPTION_TYPES, "an aws.s3.BucketServerSideEncryptionConfiguration (SSE-S3 or SSE-KMS)"),
    ("versioning", VERSIONING_TYPES, 'an aws.s3.BucketVersioning with status "Enabled"'),
    ("bucket policy", frozenset({BUCKET_POLICY}), "an aws.s3.BucketPolicy that denies aws:SecureTransport false"),
)
"""(what a bucket must have, the resource types that provide it, what to add)."""


def configures(setting: PolicyResource, bucket: PolicyResource) -> bool:
    """Whether a bucket-setting resource (public access block, policy, ...) applies to this bucket.

    By its `bucket` property's dependency on the bucket: in a preview of a new stack the bucket's id is
    unknown but the dependency is not. Then by name, for a setting given the bucket's name as a literal.
    """
    if any(dependency.urn == bucket.urn for dependency in setting.property_dependencies.get("bucket", ())):
        return True
    name = known(setting.props, "bucket")
    return isinstance(name, str) and name in (known(bucket.props, "bucket"), known(bucket.props, "id"))


def missing_bucket_settings(resources: Sequence[PolicyResource]) -> list[tuple[PolicyResource, Problem]]:
    """(bucket, problem) for each bucket without one of the settings the baseline needs."""
    buckets = [r for r in resources if r.resource_type in BUCKET_TYPES]
    missing = []
    for bucket in buckets:
        name = known(bucket.props, "bucket")
        label = f"bucket {name} ({bucket.name})" if isinstance(name, str) else f"bucket {bucket.name}"
        for setting, types, fix in BUCKET_SETTINGS:
            if not any(r.resource_type in types and configures(r, bucket) for r in resources):
                missing.append((bucket, f"{label} has no {setting}: add {fix}, with bucket=<the bucket>.id"))
    return missing


# --- the policies ---------------------------------------------------------------------------------------


def props_validation(
    types: Iterable[str], kind: str, check: Callable[[Mapping[str, Any]], list[Problem]]
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    """A resource validation that runs `check` on the properties of each resource of `types`."""
    wanted = frozenset(types)

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in wanted:
            return
        for problem in check(args.props):
            report_violation(f"{_label(kind, args)}: {problem}", None)

    return validate


def _validate_documents(
    check: Callable[[Mapping[str, Any]], list[Problem]],
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    """A resource validation that runs `check` on every policy document of every AWS resource."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not args.resource_type.startswith("aws:"):
            return
        kind = args.resource_type.rpartition(":")[2]
        for where, document in policy_documents(args.resource_type, args.props):
            for problem in check(document):
                report_violation(f"{_label(kind, args)}, {where}: {problem}", None)

    return validate


def _validate_buckets(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for bucket, problem in missing_bucket_settings(args.resources):
        report_violation(problem, bucket.urn)


MANDATORY = EnforcementLevel.MANDATORY

POLICIES: list[Policy] = [
    StackValidationPolicy(
        name="s3-bucket-has-baseline-settings",
        description="Every S3 bucket has a public access block, default encryption, versioning and a bucket policy.",
        validate=_validate_buckets,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="s3-public-access-blocked",
        description="S3 public access blocks turn on all four settings.",
        validate=props_validation([PUBLIC_ACCESS_BLOCK], "BucketPublicAccessBlock", public_access_block_problems),
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="s3-default-encryption",
        description="S3 buckets encrypt new objects by default with SSE-S3 or SSE-KMS.",
        validate=props_validation(ENCRYPTION_TYPES, "BucketServerSideEncryptionConfiguration", encryption_problems),
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="s3-versioning-enabled",
        description="S3 bucket versioning is enabled.",
        validate=props_validation(VERSIONING_TYPES, "BucketVersioning", versioning_problems),
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="s3-tls-only",
        description="S3 bucket policies deny every request made without TLS (aws:SecureTransport false).",
        validate=props_validation([BUCKET_POLICY], "BucketPolicy", bucket_policy_problems),
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="sns-topic-encrypted",
        description="SNS topics are encrypted at rest (kmsMasterKeyId).",
        validate=props_validation([TOPIC], "Topic", topic_problems),
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="iam-no-wildcard-actions",
        description="No policy document allows a wildcard action (*, service:*, service:Prefix*) or NotAction.",
        validate=_validate_documents(wildcard_action_problems),
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="iam-s3-resources-named",
        description="No policy document allows an S3 action on every bucket: S3 actions name bucket and prefix ARNs.",
        validate=_validate_documents(s3_resource_problems),
        enforcement_level=MANDATORY,
    ),
]
