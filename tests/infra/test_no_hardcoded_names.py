"""Guard: no region, account id or bucket name is written into the deployable code.

They belong in stack config (Pulumi.<stack>.yaml) or come from the provider at deploy time; the original
project hard-coded all three, which is why it could only ever run in one account.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.infra.harness import ROOT

SCANNED = [ROOT / "__main__.py", *sorted((ROOT / "infra").rglob("*.py")), *sorted((ROOT / "handler").rglob("*.py"))]

REGION = re.compile(
    r"\b(?:us|eu|ap|sa|ca|me|af|il|mx|cn)(?:-gov|-iso[a-z]?)?-"
    r"(?:north|south|east|west|central|northeast|southeast|northwest|southwest)-\d{1,2}\b"
)
ACCOUNT_ID = re.compile(r"(?<![\w.])\d{12}(?![\w.])")
S3_ARN = re.compile(r"arn:aws[a-z-]*:s3:::[a-z0-9]")
S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
BUCKET_ARGS = {"bucket", "Bucket", "bucket_name", "BucketName", "CONFIG_BUCKET"}
# Names used in docs and messages to show a shape (`s3://bucket/key`), never a real bucket.
PLACEHOLDER_BUCKETS = {"bucket", "my-bucket", "example-bucket", "your-bucket", "amzn-s3-demo-bucket"}

# Literals allowed on purpose, each with its reason: (file, literal) -> why. Keep this list short.
ALLOWED = {
    # `python -m handler demo` runs the runtime against a moto server it starts in-process; it never
    # reaches AWS, but boto3 wants some region name.
    ("handler/demo.py", "us-east-1"): "local moto server only",
}


def known_bucket_names() -> set[str]:
    """Every bucket a stack file names, plus the original project's buckets.

    A name with placeholders (`data-file-ingestion-dev-raw-{account_id}-{region}`) counts as written, and as
    its fixed part before the first placeholder: code that spells either hard-codes the stack file's bucket.
    """
    names = {"rajesh-movielens-bucket", "raw-rajesh-movielens-bucket", "code-bucket-rajesh"}
    for stack_file in ROOT.glob("Pulumi.*.yaml"):
        config = (yaml.safe_load(stack_file.read_text()) or {}).get("config", {})
        for name in _bucket_values(config):
            names.add(name)
            fixed = name.partition("{")[0].rstrip(".-")
            if fixed != name and len(fixed) >= 3:
                names.add(fixed)
    return names


def _bucket_values(value: object, key: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _bucket_values(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _bucket_values(v, key)
    elif isinstance(value, str) and "bucket" in key.lower():
        yield value


def literal_problems(source: str, bucket_names: set[str], path: str = "") -> list[str]:
    """Why this source text hard-codes a deployment detail (empty: it does not)."""
    problems = []
    for number, line in enumerate(source.splitlines(), start=1):
        for pattern, what in (
            (REGION, "region"),
            (ACCOUNT_ID, "account id"),
            (S3_ARN, "bucket ARN"),
            (S3_URI, "s3:// URI"),
        ):
            for match in pattern.finditer(line):
                if (path, match.group(0)) in ALLOWED:
                    continue
                if pattern is S3_URI and match.group(0)[len("s3://") :] in PLACEHOLDER_BUCKETS:
                    continue
                problems.append(f"line {number}: {what} {match.group(0)!r}")
        for name in bucket_names:
            if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", line):
                problems.append(f"line {number}: bucket name {name!r} from a stack file")
    for node in ast.walk(ast.parse(source)):
        # bucket="literal" in a call, {"bucket": "literal"} in a dict. (Not `X_BUCKET = "..."`: constants
        # so named are as often metadata keys as bucket names; stack-file names are caught above.)
        if isinstance(node, ast.keyword) and node.arg in BUCKET_ARGS and _is_text(node.value):
            problems.append(f"line {node.lineno}: {node.arg}= literal bucket name {node.value.value!r}")
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if _is_text(k) and k.value in BUCKET_ARGS and _is_text(v):
                    problems.append(f"line {v.lineno}: {k.value!r}: literal bucket name {v.value!r}")
    return problems


def _is_text(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(node.value)


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_deployable_code_names_no_region_account_or_bucket(path: Path) -> None:
    relative = path.relative_to(ROOT).as_posix()
    problems = literal_problems(path.read_text(), known_bucket_names(), relative)
    assert not problems, f"{path.relative_to(ROOT)} hard-codes what belongs in stack config:\n" + "\n".join(problems)


def test_the_guard_scans_the_program_the_components_and_the_runtime() -> None:
    scanned = {p.relative_to(ROOT).as_posix() for p in SCANNED}
    assert {"__main__.py", "infra/pipeline.py", "infra/policies.py", "handler/config.py"} <= scanned
    assert "data-file-ingestion-dev-raw" in known_bucket_names()


@pytest.mark.parametrize(
    "planted",
    [
        'REGION = "us-east-2"',
        'client = boto3.client("s3", region_name="eu-central-1")',
        'ACCOUNT = "867838412845"',
        'arn = f"arn:aws:iam::867838412845:role/x"',
        'resource = "arn:aws:s3:::raw-rajesh-movielens-bucket/*"',
        'uri = "s3://data-lake-prod/raw/"',
        'aws.s3.Bucket("raw", bucket="data-lake-prod")',
        's3.list_objects_v2(Bucket="data-lake-prod")',
        'config = {"bucket": "data-lake-prod", "prefix": ""}',
        'name = "data-file-ingestion-dev-raw"',
        'name = "data-file-ingestion-dev-raw-{account_id}-{region}"',
    ],
)
def test_the_guard_catches_each_kind_of_literal(planted: str) -> None:
    assert literal_problems(planted, known_bucket_names()), planted


@pytest.mark.parametrize(
    "fine",
    [
        'arn = f"arn:{partition}:s3:::{bucket}"',
        'uri = f"s3://{self.bucket}/{self.prefix}"',
        '"""A config location: a file or an `s3://bucket/key` URI."""',
        "bucket = config.require('rawBucket')",
        'aws.s3.Bucket(f"{name}-bucket", bucket=args.bucket_name)',
        "size = 5 * 1024 * 1024 * 1024",
        'LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"',
    ],
)
def test_the_guard_leaves_names_that_come_from_config_alone(fine: str) -> None:
    assert literal_problems(fine, known_bucket_names()) == []
