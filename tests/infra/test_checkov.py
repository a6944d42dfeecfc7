"""checkov's findings on the transcribed stack are exactly docs/policy.md's table (tests/infra/checkov_review.py).

The comparison itself, and the table's form, are tested without checkov. The run needs `.venv-checkov`
(`make checkov` and `make test` build it from .ci/checkov/requirements.txt; one run takes about 5 s): a bare
`pytest` without it skips the two runs, saying so.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.cfn_transcript import pulumi_names, transcribe
from tests.infra.checkov_review import (
    CHECKOV,
    POLICY_DOC,
    TABLE_END,
    TABLE_START,
    Documented,
    Finding,
    Review,
    documented_findings,
    failed_findings,
    review,
    run_checkov,
)
from tests.infra.harness import ACCOUNT, REGION, Deployment, dev_config, dev_stack_config


def report(*failed: tuple[str, str]) -> dict[str, Any]:
    return {
        "results": {
            "failed_checks": [
                {"check_id": check, "resource": f"AWS::S3::Bucket.{lid}", "check_name": "Ensure something"}
                for check, lid in failed
            ]
        }
    }


def test_the_table_names_resources_of_the_dev_stack_and_says_why(
    run_program: Callable[[dict[str, str]], Deployment],
) -> None:
    names = {r.name for r in run_program(dev_stack_config()).resources}
    rows = documented_findings()
    assert rows, "docs/policy.md's checkov table is empty"
    for row in rows:
        assert row.finding.check.startswith(("CKV_AWS_", "CKV2_AWS_")), row
        assert row.finding.resource in names, f"{row.finding.resource} is not a resource of the dev stack"
        assert len(row.why) > 30, row
    assert len({r.finding for r in rows}) == len(rows), "a finding is listed twice"


def test_a_finding_not_in_the_table_and_a_row_no_longer_found_both_fail() -> None:
    names = {"IngestionRawBucket": "ingestion-raw-bucket", "LogsBucket": "logs-bucket"}
    found = failed_findings(report(("CKV_AWS_18", "IngestionRawBucket"), ("CKV_AWS_21", "LogsBucket")), names)
    assert found == {Finding("CKV_AWS_18", "ingestion-raw-bucket"), Finding("CKV_AWS_21", "logs-bucket")}
    table = [
        Documented(Finding("CKV_AWS_18", "ingestion-raw-bucket"), "open", "no access logging yet"),
        Documented(Finding("CKV_AWS_145", "ingestion-raw-bucket"), "n/a", "SSE-S3 is enough here"),
    ]
    result = Review(report(("CKV_AWS_18", "IngestionRawBucket"), ("CKV_AWS_21", "LogsBucket")), found, table)

    assert result.undocumented == [Finding("CKV_AWS_21", "logs-bucket")]
    assert [d.finding for d in result.stale] == [Finding("CKV_AWS_145", "ingestion-raw-bucket")]
    problems = result.problems()
    assert len(problems) == 2
    assert "checkov reports CKV_AWS_21 (Ensure something) on logs-bucket, which docs/policy.md's table" in problems[0]
    assert "lists CKV_AWS_145 on ingestion-raw-bucket (n/a), which checkov no longer reports" in problems[1]


@pytest.mark.parametrize(
    "table, error",
    [
        ("no markers at all", "has no table between"),
        (f"{TABLE_START}\n| Check | Resource | Why |\n| --- | --- | --- |\n{TABLE_END}", "header must be"),
        (
            f"{TABLE_START}\n| Check | Resource | Status | Why |\n| --- | --- | --- | --- |\n"
            f"| `CKV_AWS_18` | `b` | fixed | logged now |\n{TABLE_END}",
            "status 'fixed'",
        ),
        (
            f"{TABLE_START}\n| Check | Resource | Status | Why |\n| --- | --- | --- | --- |\n"
            f"| `CKV_AWS_18` | `b` | n/a |  |\n{TABLE_END}",
            "says no why",
        ),
    ],
    ids=["no-markers", "no-status-column", "unknown-status", "no-why"],
)
def test_a_malformed_table_is_refused(table: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        documented_findings(table)


def test_no_checkov_finding_is_left_open() -> None:
    """Issue 23's bar: checkov leaves only findings documented as not applicable."""
    assert [d.finding for d in documented_findings() if d.status == "open"] == []


# `make test` builds .venv-checkov first (the Makefile's test target needs it), so CI always runs this; the skip is
# only for someone running pytest by hand without it.
@pytest.mark.skipif(
    not CHECKOV.exists(), reason=f"{CHECKOV} missing: run `make checkov` (or `make test`), which builds it"
)
def test_checkov_on_the_transcribed_dev_stack_reports_exactly_the_documented_findings(tmp_path: Any) -> None:
    result = review(tmp_path)

    assert result.report["summary"]["resource_count"] >= 25
    assert result.report["summary"]["passed"] > 50  # the checks did read the properties
    assert result.problems() == [], f"checkov and {POLICY_DOC.name} disagree (run `make checkov`)"


@pytest.mark.skipif(
    not CHECKOV.exists(), reason=f"{CHECKOV} missing: run `make checkov` (or `make test`), which builds it"
)
def test_a_production_shaped_stack_leaves_only_the_rows_that_are_not_about_dev(
    build_pipeline: Callable[[Any], Deployment], tmp_path: Any
) -> None:
    """The table's CKV_AWS_115 and CKV_AWS_158 rows say the dev stack alone lacks a reservation and a log key: checkov
    agrees, on the dev stack at the defaults (reserved), not disposable, with `logsKmsKeyArn`."""
    config = dev_config()
    config = dataclasses.replace(
        config,
        function=dataclasses.replace(config.function, reserve_concurrency=True),
        logs_kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        disposable=False,
        force_destroy_buckets=False,
    )
    deployment = build_pipeline(config)
    template = transcribe(deployment)
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template))

    found = failed_findings(run_checkov(path), pulumi_names(template, deployment))

    dev_only = {"CKV_AWS_115", "CKV_AWS_158"}
    assert found == {d.finding for d in documented_findings() if d.finding.check not in dev_only}
