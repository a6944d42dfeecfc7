"""The stack's `lineage` setting: what it accepts and how it refuses, the grants it gives the function (exactly the
one secret, parameter, key or domain; Pulumi mocks), the document in the function's environment (never a key),
and the state machine's `send_lineage` states, which asl-validator and the pure ASL rules accept."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from handler.lineage_destination import ENV, LineageDestination
from infra.stack_config import StackConfig, StackConfigError, parse_stack_config
from infra.workflow_definition import LAMBDA_DEATHS, LAMBDA_SERVICE_ERRORS
from tests.infra import asl_rules as rules
from tests.infra.harness import ACCOUNT, REGION, Deployment, dev_stack_config, placeholders, stack_values
from tests.infra.test_definition_rules import ASL_VALIDATOR, NOT_INSTALLED, run_asl_validator, stack_definition
from tests.infra.test_policies import LAMBDA_ROLE_POLICY, as_list, lint, statements

Build = Callable[[StackConfig], Deployment]
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:lineage/marquez-AbC123"
LINEAGE_SIDS = {"ReadLineageApiKey", "DecryptLineageApiKey", "PostLineageEvents"}


def config(lineage: Any) -> StackConfig:
    """Pulumi.dev.yaml with `lineage` set as the CLI hands it (JSON text)."""
    values = stack_values(dev_stack_config())
    return parse_stack_config({**values, "lineage": json.dumps(lineage)}, placeholders=placeholders)


def lineage_statements(deployment: Deployment) -> dict[str, dict[str, Any]]:
    found = statements(deployment.policy(LAMBDA_ROLE_POLICY))
    return {sid: statement for sid, statement in found.items() if sid in LINEAGE_SIDS}


def function_environment(deployment: Deployment) -> dict[str, str]:
    (function,) = deployment.of_type("aws:lambda/function:Function")
    return function.inputs["environment"]["variables"]


def definition_of(deployment: Deployment) -> dict[str, Any]:
    (machine,) = deployment.of_type("aws:sfn/stateMachine:StateMachine")
    return json.loads(machine.inputs["definition"])


def test_a_secret_by_name_is_granted_as_its_name_and_six_characters_and_nothing_else(build_pipeline: Build) -> None:
    deployment = build_pipeline(config({"url": "https://marquez.example.com", "apiKeySecret": "lineage/marquez"}))

    assert lineage_statements(deployment) == {
        "ReadLineageApiKey": {
            "Sid": "ReadLineageApiKey",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:lineage/marquez-??????",
        }
    }
    assert json.loads(function_environment(deployment)[ENV]) == {
        "url": "https://marquez.example.com",
        "apiKeySecret": "lineage/marquez",
    }
    states = definition_of(deployment)["States"]
    assert states["NotifyRun"]["Next"] == "SendLineageRun" and states["SendLineageRun"]["Next"] == "PlanAgain"
    assert states["NotifyNothingToCopy"]["Next"] == "SendLineageNothingToCopy"


def test_a_secret_by_arn_with_a_customer_key_is_granted_that_arn_and_decrypt_only_through_secrets_manager(
    build_pipeline: Build,
) -> None:
    deployment = build_pipeline(
        config({"url": "https://marquez.example.com", "apiKeySecret": SECRET_ARN, "kmsKeyArn": KEY})
    )

    found = lineage_statements(deployment)
    assert found["ReadLineageApiKey"]["Resource"] == SECRET_ARN
    assert found["DecryptLineageApiKey"] == {
        "Sid": "DecryptLineageApiKey",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": KEY,
        # The secret's own region: Secrets Manager there is the service that decrypts.
        "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}},
    }


def test_an_ssm_parameter_is_granted_by_its_arn_and_its_key_only_through_ssm(build_pipeline: Build) -> None:
    deployment = build_pipeline(
        config({"url": "https://marquez.example.com", "apiKeyParameter": "/lineage/api-key", "kmsKeyArn": KEY})
    )

    found = lineage_statements(deployment)
    assert found["ReadLineageApiKey"] == {
        "Sid": "ReadLineageApiKey",
        "Effect": "Allow",
        "Action": "ssm:GetParameter",
        "Resource": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/lineage/api-key",
    }
    assert found["DecryptLineageApiKey"]["Condition"] == {
        "StringEquals": {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}
    }


def test_datazone_is_granted_post_lineage_event_alone_on_the_only_resource_it_takes(build_pipeline: Build) -> None:
    deployment = build_pipeline(config({"datazoneDomain": "dzd_abc123"}))

    # The authorization reference lists no resource type for PostLineageEvent (parliament's copy of it agrees:
    # a domain ARN there is RESOURCE_MISMATCH), so `*` is the grant that works; the domain is the setting's.
    assert lineage_statements(deployment) == {
        "PostLineageEvents": {
            "Sid": "PostLineageEvents",
            "Effect": "Allow",
            "Action": "datazone:PostLineageEvent",
            "Resource": "*",
        }
    }
    stars = [
        statement["Sid"]
        for statement in deployment.policy(LAMBDA_ROLE_POLICY)["Statement"]
        if "*" in as_list(statement["Resource"])
    ]
    assert stars == ["PostLineageEvents"]
    assert "SendLineageRun" in definition_of(deployment)["States"]


def test_an_endpoint_without_a_key_needs_no_grant(build_pipeline: Build) -> None:
    keyless = build_pipeline(config({"url": "https://marquez.example.com"}))
    assert lineage_statements(keyless) == {}
    assert "SendLineageRun" in definition_of(keyless)["States"]


def test_a_stack_without_lineage_has_no_step_no_setting_and_no_grant(build_pipeline: Build) -> None:
    plain = build_pipeline(dataclasses.replace(config({"url": "https://x.example.com"}), lineage=None))
    assert ENV not in function_environment(plain)
    assert not [name for name in definition_of(plain)["States"] if name.startswith("SendLineage")]
    assert definition_of(plain)["States"]["NotifyRun"]["Next"] == "PlanAgain"
    assert lineage_statements(plain) == {}


@pytest.mark.parametrize(
    "lineage",
    [
        {"url": "https://m.example.com", "apiKeySecret": "lineage/marquez", "kmsKeyArn": KEY},
        {"url": "https://m.example.com", "apiKeyParameter": "lineage-key"},
        {"datazoneDomain": "dzd_abc123"},
    ],
)
def test_the_lineage_grants_pass_parliament(build_pipeline: Build, lineage: dict[str, str]) -> None:
    assert lint(build_pipeline(config(lineage)).policy(LAMBDA_ROLE_POLICY)) == []


@pytest.mark.parametrize(
    ("lineage", "expected"),
    [
        ("https://m.example.com", "lineage: must be an object"),
        ({}, "give either url (an OpenLineage HTTP endpoint) or datazoneDomain"),
        ({"url": "https://m.example.com", "datazoneDomain": "dzd_abc"}, "not both and not neither"),
        ({"url": "https://m.example.com", "apiKey": "k"}, "lineage.apiKey: unknown field"),
        ({"url": "http://m.example.com"}, "must be https:// (events would travel unencrypted)"),
        ({"url": "https://user:pw@m.example.com"}, "must not hold a user or password"),
        (
            {"url": "https://m.example.com", "apiKeySecret": "a", "apiKeyParameter": "b"},
            "give apiKeySecret or apiKeyParameter, not both",
        ),
        (
            {"url": "https://m.example.com", "apiKeySecret": "arn:aws:secretsmanager:eu-west-1:1:secret:x"},
            "is neither a Secrets Manager secret name nor its full ARN",
        ),
        ({"url": "https://m.example.com", "apiKeyParameter": f"arn:aws:ssm:{REGION}:1:parameter/x"}, "not its ARN"),
        ({"url": "https://m.example.com", "kmsKeyArn": KEY}, "names the key of apiKeySecret or apiKeyParameter"),
        (
            {"url": "https://m.example.com", "apiKeySecret": "s", "kmsKeyArn": "alias/lineage"},
            "is not a KMS key ARN",
        ),
        ({"datazoneDomain": "my-domain"}, "is not a DataZone domain id"),
        ({"datazoneDomain": "dzd_abc", "apiKeySecret": "s"}, "only for url"),
    ],
)
def test_a_wrong_lineage_setting_is_refused_naming_the_key_and_what_to_do(lineage: Any, expected: str) -> None:
    with pytest.raises(StackConfigError) as raised:
        config(lineage)

    problems = [p for p in raised.value.problems if "lineage" in p]
    assert problems and all(p.startswith("data-file-ingestion:lineage") for p in problems), raised.value.problems
    assert any(expected in p for p in problems), problems


def test_the_setting_reads_back_to_the_same_destination_the_function_is_given() -> None:
    lineage = {"url": "https://m.example.com", "endpoint": "v1/events", "apiKeyParameter": "/k", "kmsKeyArn": KEY}
    destination = config(lineage).lineage
    assert destination is not None and destination.to_document() == lineage
    assert LineageDestination.from_env({ENV: json.dumps(destination.to_document())}) == destination


LINEAGE_DEFINITIONS = {
    name: stack_definition(config(lineage))
    for name, lineage in (("http-lineage", {"url": "https://m.example.com"}), ("datazone", {"datazoneDomain": "dzd_a"}))
}


def test_the_definitions_with_lineage_pass_asl_validator(tmp_path: Path) -> None:
    assert ASL_VALIDATOR.exists(), NOT_INSTALLED
    assert run_asl_validator(LINEAGE_DEFINITIONS, tmp_path) == {name: [] for name in LINEAGE_DEFINITIONS}


@pytest.mark.parametrize("name", LINEAGE_DEFINITIONS)
def test_the_definitions_with_lineage_keep_the_rules_aws_enforces(name: str) -> None:
    definition = LINEAGE_DEFINITIONS[name]
    assert [n for n, _ in rules.states(definition) if n.startswith("SendLineage")] == [
        "SendLineageNothingToCopy",
        "SendLineageRun",
    ]
    assert rules.duplicate_state_names(definition) == []
    assert rules.dangling_transitions(definition) == []
    assert rules.catch_alls_not_last(definition) == []
    assert rules.tasks_without_timeout(definition) == []
    assert rules.retrier_field_problems(definition) == []
    assert rules.lambda_retry_problems(definition, [*LAMBDA_SERVICE_ERRORS, *LAMBDA_DEATHS], ["LockLost"]) == []
