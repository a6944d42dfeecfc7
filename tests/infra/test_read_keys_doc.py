"""docs/deploy.md's source under its own KMS key, followed literally: both halves of the grant it gives fit.

The walk (tests/infra/test_quick_start.py's way: the doc's sh blocks applied by the emulated CLI, every
`pulumi up` under the mocks) deploys the key the doc names; the stack's half must then be in the function's
policy, and the key owner's half the doc prints must name the same action, the role the stack exports and
S3 in the key's region, or the two halves would not meet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest

from infra.stack_config import NAMESPACE
from tests.infra.harness import ROOT, Deployment, RecordingMocks, run_main
from tests.infra.pulumi_cli import PulumiCli
from tests.infra.shell_blocks import commands, without_section

SECTION = "#### A source under its own KMS key"
LAMBDA_ROLE_POLICY = "ingestion-lambda-policy"


def deploy_doc() -> str:
    return (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")


def section(doc: str) -> str:
    start = doc.index(SECTION)
    end = doc.index("\n#", start + len(SECTION))
    return doc[start:end]


@pytest.fixture
def cli() -> Iterator[PulumiCli]:
    def deploy(stack: str, config: dict[str, str], preview: bool) -> Deployment:
        mocks = RecordingMocks()
        pulumi.runtime.set_mocks(mocks, project=NAMESPACE, stack=stack, preview=preview, monitor=mocks.monitor)
        return run_main(mocks, config)

    yield PulumiCli(ROOT, deploy)
    pulumi.runtime.set_all_config({})


def test_the_doc_names_a_key_the_config_takes_and_both_halves_of_its_grant_meet(cli: PulumiCli) -> None:
    doc = deploy_doc()
    text = section(doc)
    (key_arn,) = set(re.findall(r"arn:aws:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]+", text.split("```json")[0]))
    key_region = key_arn.split(":")[3]
    (owner_half,) = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]

    cli.run_all(commands(without_section(doc, "## Another environment")))

    dev = cli.stacks["dev"]
    keyed = [
        update
        for update in dev.updates
        if any(
            json.loads(o.inputs["content"])["datasets"].get("clicks", {}).get("source", {}).get("kms_key_arn")
            == key_arn
            for o in update.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
        )
    ]
    assert keyed, "no `pulumi up` of the walk deployed the key the doc names"
    deployment = keyed[-1]
    # The stack's half, from the dataset field: kms:Decrypt on that key through S3 in its region, for clicks' objects.
    stack_half = [st for st in deployment.policy(LAMBDA_ROLE_POLICY)["Statement"] if st.get("Resource") == key_arn]
    assert stack_half == [
        {
            "Sid": "UseReadKey1",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key_arn,
            "Condition": {
                "StringEquals": {"kms:ViaService": f"s3.{key_region}.amazonaws.com"},
                "StringLike": {
                    "kms:EncryptionContext:aws:s3:arn": [
                        "arn:aws:s3:::web-analytics-drop",
                        "arn:aws:s3:::web-analytics-drop/events/*",
                    ]
                },
            },
        }
    ]
    # The owner's half the doc prints: the same action, for the role the stack exports, through S3 in the key's region.
    assert "functionRoleArn" in deployment.exports
    assert owner_half["Principal"] == {"AWS": "<functionRoleArn>"}
    assert owner_half["Effect"] == "Allow"
    assert as_list(owner_half["Action"]) == ["kms:Decrypt"]
    assert owner_half["Resource"] == "*"
    assert owner_half["Condition"] == {"StringEquals": {"kms:ViaService": f"s3.{key_region}.amazonaws.com"}}
    # And the doc says where the role ARN comes from, and that the other half is the stack's.
    assert "`pulumi stack output functionRoleArn`" in doc
    assert "source.kms_key_arn" in text


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
