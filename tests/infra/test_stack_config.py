"""infra/stack_config.py: bad stack config fails before anything is created, naming the key and the problem."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pulumi
import pytest

from handler.config import DEFAULT_SCHEDULE, parse_config
from handler.errors import ConfigError
from infra.stack_config import (
    FunctionSettings,
    StackConfig,
    StackConfigError,
    Subscription,
    WorkflowSettings,
    load_stack_config,
    needed_concurrency,
    parse_stack_config,
)
from tests.infra.harness import dev_config, dev_stack_config, stack_values, two_dataset_config

KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def dataset(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "source": {"bucket": "acme-landing", "prefix": "exports/", "create": True},
        "target": {"bucket": "acme-raw", "prefix": "exports/"},
    }
    base.update(overrides)
    return base


def values(**overrides: Any) -> dict[str, Any]:
    """A valid stack config in Pulumi's string form; overrides replace (None removes) a key."""
    base: dict[str, Any] = {
        "rawBucket": "acme-raw",
        "configBucket": "acme-config",
        "datasets": json.dumps({"exports": dataset()}),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config(raw)
    return caught.value.problems


def test_dev_stack_config_is_valid_and_uses_the_runtime_schema() -> None:
    config = dev_config()
    movielens = config.datasets.dataset("movielens")
    assert movielens.create_source is True
    assert movielens.target.bucket == config.raw_bucket
    assert movielens.schedule == "cron(0 20 * * ? *)"
    assert config.created_source_buckets == (movielens.source.bucket,)
    # The same code the Lambda runs accepts the stack's datasets unchanged.
    assert parse_config(config.datasets.to_dict()) == config.datasets


def test_pulumi_strings_are_decoded_to_typed_settings() -> None:
    config = parse_stack_config(
        values(
            lambdaMemoryMb="2048",
            lambdaTimeoutSeconds="600",
            lambdaReservedConcurrency="20",
            mapConcurrency="20",
            toleratedFailurePercentage="2",
            logRetentionDays="90",
            workflowLogLevel="all",
            forceDestroyBuckets="true",
            disposable="true",
            accessLogRetentionDays="90",
            logsKmsKeyArn=KMS_KEY,
            tags='{"owner": "data-team", "cost-centre": "cc-1234"}',
            kmsKeyArn=KMS_KEY,
            notificationEmails='["data-team@example.com"]',
            subscriptions='[{"protocol": "https", "endpoint": "https://hooks.example.com/ingest"}]',
        )
    )
    assert config.function == FunctionSettings(memory_mb=2048, timeout_seconds=600, reserved_concurrency=20)
    assert config.workflow == WorkflowSettings(map_concurrency=20, tolerated_failure_percentage=2.0, log_level="ALL")
    assert config.log_retention_days == 90
    assert config.force_destroy_buckets is True
    assert config.disposable is True
    assert config.access_log_retention_days == 90
    assert config.logs_kms_key_arn == KMS_KEY
    assert config.tags == {"owner": "data-team", "cost-centre": "cc-1234"}
    assert config.kms_key_arn == KMS_KEY
    assert config.subscriptions == (
        Subscription("email", "data-team@example.com"),
        Subscription("https", "https://hooks.example.com/ingest"),
    )


def test_defaults_when_optional_keys_are_absent() -> None:
    config = parse_stack_config(values())
    assert config.function == FunctionSettings(memory_mb=1769, timeout_seconds=900, reserved_concurrency=None)
    assert config.workflow == WorkflowSettings(map_concurrency=100, tolerated_failure_percentage=0.0, log_level="ERROR")
    assert config.log_retention_days == 30
    assert config.kms_key_arn is None
    assert config.subscriptions == ()
    assert config.datasets.dataset("exports").schedule == DEFAULT_SCHEDULE
    # Protected unless said otherwise; access logs kept a year; no key for the log groups; no tags.
    assert config.disposable is False
    assert config.access_log_retention_days == 365
    assert config.logs_kms_key_arn is None
    assert config.tags is None


def test_concurrency_is_reserved_by_default_for_every_datasets_run_at_once() -> None:
    # One run's Maps come one after another, each at most mapConcurrency invocations; one more per dataset for what
    # may overlap it (a second execution's plan that skips); datasets run side by side.
    three = json.dumps({name: dataset() for name in ("a", "b", "c")})
    assert needed_concurrency(1, 100) == 101
    assert parse_stack_config(values()).reserved_concurrency == 101  # the defaults: one dataset, mapConcurrency 100
    assert parse_stack_config(values(datasets=three, mapConcurrency="10")).reserved_concurrency == 33
    assert parse_stack_config(values(datasets=three, lambdaReservedConcurrency="100")).reserved_concurrency == 100


def test_reservation_can_be_turned_off_for_an_account_that_cannot_spare_it() -> None:
    config = parse_stack_config(values(reserveLambdaConcurrency="false"))

    assert config.function.reserve_concurrency is False
    assert config.reserved_concurrency is None
    # Turned off, mapConcurrency is no longer held to a reservation.
    wide = parse_stack_config(values(reserveLambdaConcurrency="false", mapConcurrency="5000"))
    assert wide.reserved_concurrency is None


def test_the_dev_stack_reserves_nothing_so_a_new_account_can_deploy_it() -> None:
    config = dev_config()

    assert config.workflow.map_concurrency == 10
    assert config.function.reserve_concurrency is False and config.reserved_concurrency is None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # The runtime's own checks, renamed to the stack config key.
        (
            {"datasets": json.dumps({"exports": dataset(schedule="cron(0 20 * * *)")})},
            "data-file-ingestion:datasets.exports.schedule: 'cron(0 20 * * *)' has 5 fields",
        ),
        (
            {"datasets": json.dumps({"exports": dataset(schedule="every night")})},
            "data-file-ingestion:datasets.exports.schedule: 'every night' is not 'cron(...)', 'rate(...)' or 'at(...)'",
        ),
        (
            {"datasets": json.dumps({"exports": dataset(timezone="Mars/Olympus_Mons")})},
            "data-file-ingestion:datasets.exports.timezone: 'Mars/Olympus_Mons' is not an IANA time zone",
        ),
        (
            {"datasets": json.dumps({"exports": dataset(source={"prefix": "exports/"})})},
            "data-file-ingestion:datasets.exports.source.bucket: missing or empty",
        ),
        (
            {"datasets": json.dumps({"exports": dataset(source={"bucket": "s3://acme-landing"})})},
            "data-file-ingestion:datasets.exports.source.bucket: 's3://acme-landing' is not a valid S3 bucket",
        ),
        (
            {"datasets": json.dumps({"exports": dataset(sechedule="cron(0 20 * * ? *)")})},
            "data-file-ingestion:datasets.exports.sechedule: unknown field; did you mean 'schedule'?",
        ),
        (
            {"datasets": json.dumps({"exports": dataset(key_template="{name}")})},
            "data-file-ingestion:datasets.exports.key_template: must contain {date}",
        ),
        ({"datasets": "{}"}, "data-file-ingestion:datasets: 'datasets' must be a non-empty object"),
        ({"datasets": None}, "data-file-ingestion:datasets: missing"),
        ({"datasets": "{movielens: {"}, "data-file-ingestion:datasets: not valid JSON"),
        # What only a stack can get wrong.
        (
            {"datasets": json.dumps({"exports": dataset(target={"bucket": "someone-elses-raw"})})},
            "data-file-ingestion:datasets.exports.target.bucket: 'someone-elses-raw' is not this stack's raw "
            "bucket ('acme-raw')",
        ),
        (
            {"datasets": json.dumps({"exports": dataset(topic_arn="arn:aws:sns:eu-west-1:123456789012:elsewhere")})},
            "data-file-ingestion:datasets.exports.topic_arn: not supported in a stack",
        ),
        (
            {"datasets": json.dumps({"exports": dataset(glue_database="elsewhere")})},
            "data-file-ingestion:datasets.exports.glue_database: not supported in a stack",
        ),
        (
            {"datasets": json.dumps({"exports": dataset(glue_database="Else-Where")})},
            "data-file-ingestion:datasets.exports.glue_database: 'Else-Where' must be 1-255 lower-case letters",
        ),
        (
            {
                "datasets": json.dumps(
                    {"exports": dataset(source={"bucket": "acme-raw", "prefix": "in/", "create": True})}
                )
            },
            "data-file-ingestion:datasets.exports.source.create: 'acme-raw' is already created by this stack "
            "as rawBucket",
        ),
        ({"rawBucket": None}, "data-file-ingestion:rawBucket: missing; set it with `pulumi config set"),
        ({"configBucket": "Acme_Config"}, "data-file-ingestion:configBucket: 'Acme_Config' is not a valid S3"),
        ({"configBucket": "acme-raw"}, "data-file-ingestion:configBucket: must differ from rawBucket"),
        ({"kmsKeyArn": "alias/ingestion"}, "data-file-ingestion:kmsKeyArn: 'alias/ingestion' is not a KMS key"),
        ({"lambdaMemoryMb": "64"}, "data-file-ingestion:lambdaMemoryMb: must be between 128 and 10240, got 64"),
        (
            {"lambdaEphemeralStorageMb": "511"},
            "data-file-ingestion:lambdaEphemeralStorageMb: must be between 512 and 10240, got 511",
        ),
        (
            {"lambdaEphemeralStorageMb": "10241"},
            "data-file-ingestion:lambdaEphemeralStorageMb: must be between 512 and 10240, got 10241",
        ),
        (
            {"lambdaEphemeralStorageMb": "2GB"},
            "data-file-ingestion:lambdaEphemeralStorageMb: must be a whole number between 512 and 10240",
        ),
        (
            {"ledgerNoncurrentVersionDays": "0"},
            "data-file-ingestion:ledgerNoncurrentVersionDays: must be between 1 and 3650, got 0",
        ),
        (
            {"ledgerNoncurrentVersionDays": "3651"},
            "data-file-ingestion:ledgerNoncurrentVersionDays: must be between 1 and 3650, got 3651",
        ),
        (
            {"ledgerNoncurrentVersionDays": "a week"},
            "data-file-ingestion:ledgerNoncurrentVersionDays: must be a whole number between 1 and 3650",
        ),
        ({"lambdaTimeoutSeconds": "15m"}, "data-file-ingestion:lambdaTimeoutSeconds: must be a whole number"),
        ({"lambdaTimeoutSeconds": "901"}, "data-file-ingestion:lambdaTimeoutSeconds: must be between 1 and 900"),
        (
            {"lambdaReservedConcurrency": "5", "mapConcurrency": "10"},
            "data-file-ingestion:lambdaReservedConcurrency: 5 is below mapConcurrency (10)",
        ),
        (
            {"lambdaReservedConcurrency": "50", "reserveLambdaConcurrency": "false"},
            "data-file-ingestion:lambdaReservedConcurrency: 50 is set, but reserveLambdaConcurrency is false",
        ),
        ({"reserveLambdaConcurrency": "no"}, "data-file-ingestion:reserveLambdaConcurrency: must be true or false"),
        ({"mapConcurrency": "0"}, "data-file-ingestion:mapConcurrency: must be between 1 and 10000, got 0"),
        (
            {"toleratedFailurePercentage": "150"},
            "data-file-ingestion:toleratedFailurePercentage: must be between 0 and 100, got 150",
        ),
        (
            {"toleratedFailurePercentage": "2.5"},
            "data-file-ingestion:toleratedFailurePercentage: must be a whole percentage (0, 1, ... 100), got 2.5",
        ),
        ({"logRetentionDays": "45"}, "data-file-ingestion:logRetentionDays: 45 is not one of 1, 3, 5"),
        ({"workflowLogLevel": "FATAL"}, "data-file-ingestion:workflowLogLevel: 'FATAL' must be ALL or ERROR"),
        ({"forceDestroyBuckets": "yes"}, "data-file-ingestion:forceDestroyBuckets: must be true or false"),
        (
            {"notificationEmails": '["not-an-address"]'},
            "data-file-ingestion:notificationEmails[0]: 'not-an-address' is not an email address",
        ),
        (
            {"subscriptions": '[{"protocol": "lambda", "endpoint": "arn:aws:lambda:x"}]'},
            "data-file-ingestion:subscriptions[0].protocol: 'lambda' is not supported",
        ),
        (
            {"subscriptions": '[{"protocol": "https", "endpoint": "http://hooks.example.com"}]'},
            "data-file-ingestion:subscriptions[0].endpoint: 'http://hooks.example.com' must start with https://",
        ),
        (
            {
                "notificationEmails": '["ops@example.com"]',
                "subscriptions": '[{"protocol": "email", "endpoint": "ops@example.com"}]',
            },
            "data-file-ingestion:subscriptions: email 'ops@example.com' is subscribed twice",
        ),
    ],
)
def test_bad_stack_config_names_the_key_and_the_problem(overrides: dict[str, Any], expected: str) -> None:
    problems = problems_of(values(**overrides))
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ('["owner"]', "must be an object of tag key -> value"),
        ('{"aws:owner": "x"}', "tag key 'aws:owner': the prefix 'aws:' is reserved for AWS's own tags"),
        ('{"AWS:Owner": "x"}', "tag key 'AWS:Owner': the prefix 'aws:' is reserved"),
        ('{"": "x"}', "tag key '' must be 1 to 128 characters"),
        (json.dumps({"k" * 129: "x"}), f"tag key '{'k' * 129}' must be 1 to 128 characters"),
        (json.dumps({"owner": "v" * 257}), "tag 'owner': the value must be at most 256 characters"),
        ('{"cost-centre": 1234}', "tag 'cost-centre': the value must be a string (quote numbers and booleans)"),
        ('{"owner": "data team; ops"}', "tag 'owner': the value may hold only letters, digits, spaces"),
        ('{"owner!": "x"}', "tag key 'owner!' may hold only letters, digits, spaces"),
        (json.dumps({f"t{i}": "x" for i in range(41)}), "41 tags; at most 40"),
    ],
)
def test_tags_break_no_aws_tag_rule(tags: str, expected: str) -> None:
    problems = problems_of(values(tags=tags))
    assert f"data-file-ingestion:tags: {expected}" in "\n".join(problems), problems


def test_tags_aws_accepts_are_accepted_as_given() -> None:
    tags = {"owner": "Data Team", "cost-centre": "cc_1234", "data-classification": "internal", "team/app": "a+b=c@d.e"}
    assert parse_stack_config(values(tags=json.dumps(tags))).tags == tags
    assert parse_stack_config(values(tags=json.dumps({"empty": ""}))).tags == {"empty": ""}


def test_force_destroy_is_refused_in_a_stack_not_marked_disposable() -> None:
    problems = problems_of(values(forceDestroyBuckets="true"))
    assert problems == [
        "data-file-ingestion:forceDestroyBuckets: true only in a stack marked disposable: it lets `pulumi destroy` "
        "delete the raw bucket with every landed file and ledger, which a stack that is not disposable protects; "
        "set disposable to true as well (to tear the stack down), or forceDestroyBuckets to false"
    ]
    assert parse_stack_config(values(forceDestroyBuckets="true", disposable="true")).force_destroy_buckets is True
    assert parse_stack_config(values(disposable="true")).force_destroy_buckets is False


def test_logs_kms_key_must_be_a_key_arn() -> None:
    problems = problems_of(values(logsKmsKeyArn="alias/logs"))
    assert problems == [
        "data-file-ingestion:logsKmsKeyArn: 'alias/logs' is not a KMS key ARN "
        "(arn:aws:kms:<region>:<account>:key/<id>); an alias cannot be used because IAM grants on an alias "
        "do not cover the key"
    ]


def test_lambda_ephemeral_storage_defaults_to_2048_mb_and_takes_the_configured_size() -> None:
    # The plan's SQLite file, the state and the finalize spool live in /tmp: 512 MB would cap a dataset
    # at about a million keys.
    assert parse_stack_config(values()).function.ephemeral_storage_mb == 2048
    assert FunctionSettings().ephemeral_storage_mb == 2048
    for size in ("512", "4096", "10240"):
        assert parse_stack_config(values(lambdaEphemeralStorageMb=size)).function.ephemeral_storage_mb == int(size)


def test_an_out_of_range_ephemeral_storage_cannot_be_constructed_directly() -> None:
    with pytest.raises(StackConfigError, match="data-file-ingestion:lambdaEphemeralStorageMb"):
        two_dataset_config(function=FunctionSettings(ephemeral_storage_mb=256))


def test_ledger_noncurrent_versions_are_kept_7_days_by_default_or_as_configured() -> None:
    assert parse_stack_config(values()).ledger_noncurrent_version_days == 7
    for days in ("1", "30", "3650"):
        config = parse_stack_config(values(ledgerNoncurrentVersionDays=days))
        assert config.ledger_noncurrent_version_days == int(days)


def test_an_out_of_range_ledger_version_retention_cannot_be_constructed_directly() -> None:
    with pytest.raises(StackConfigError, match="data-file-ingestion:ledgerNoncurrentVersionDays"):
        two_dataset_config(ledger_noncurrent_version_days=0)


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        values(
            rawBucket=None,
            mapConcurrency="0",
            datasets=json.dumps({"exports": dataset(schedule="nightly", timezone="Nowhere/Land")}),
        )
    )
    keys = {p.split(": ", 1)[0] for p in problems}
    assert {
        "data-file-ingestion:rawBucket",
        "data-file-ingestion:mapConcurrency",
        "data-file-ingestion:datasets.exports.schedule",
        "data-file-ingestion:datasets.exports.timezone",
    } <= keys


def test_error_is_a_config_error_whose_message_lists_the_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(values(mapConcurrency="0"))
    message = str(caught.value)
    assert message.startswith("invalid stack config:")
    assert "data-file-ingestion:mapConcurrency: must be between 1 and 10000" in message


def test_a_bucket_created_for_one_dataset_must_be_created_for_every_dataset_reading_it() -> None:
    shared = {"bucket": "acme-landing", "prefix": "b/"}
    problems = problems_of(
        values(
            datasets=json.dumps(
                {
                    "a": dataset(),
                    "b": dataset(source=shared, target={"bucket": "acme-raw", "prefix": "b/"}),
                }
            )
        )
    )
    assert any(
        p.startswith("data-file-ingestion:datasets.b.source.create: bucket 'acme-landing' is created by dataset 'a'")
        for p in problems
    ), problems


def test_a_misspelt_optional_key_is_reported_not_ignored() -> None:
    problems = problems_of({**values(), "mapConcurency": "50"})
    assert problems == ["data-file-ingestion:mapConcurency: unknown key; did you mean 'mapConcurrency'?"]


def test_load_stack_config_reads_the_pulumi_config_of_the_stack(mocks: object) -> None:
    pulumi.runtime.set_all_config(
        {
            "data-file-ingestion:rawBucket": "acme-raw",
            "data-file-ingestion:configBucket": "acme-config",
            "data-file-ingestion:datasets": json.dumps({"exports": dataset()}),
            "data-file-ingestion:mapConcurrency": "25",
            "aws:region": "eu-west-1",
        }
    )
    config = load_stack_config(pulumi.Config())
    assert config.raw_bucket == "acme-raw"
    assert config.workflow.map_concurrency == 25
    assert list(config.datasets.datasets) == ["exports"]


def test_load_stack_config_catches_a_misspelt_key_in_the_stack(mocks: object) -> None:
    pulumi.runtime.set_all_config(
        {
            "data-file-ingestion:rawBucket": "acme-raw",
            "data-file-ingestion:configBucket": "acme-config",
            "data-file-ingestion:datasets": json.dumps({"exports": dataset()}),
            "data-file-ingestion:logRetention": "7",
        }
    )
    with pytest.raises(StackConfigError, match="data-file-ingestion:logRetention: unknown key"):
        load_stack_config(pulumi.Config())


def test_an_invalid_stack_config_cannot_be_constructed_directly() -> None:
    with pytest.raises(StackConfigError, match="data-file-ingestion:mapConcurrency"):
        two_dataset_config(workflow=WorkflowSettings(map_concurrency=0))
    with pytest.raises(StackConfigError, match="data-file-ingestion:datasets.orders.target.bucket"):
        StackConfig(
            raw_bucket="another-raw",
            config_bucket="acme-config",
            datasets=two_dataset_config().datasets,
        )


# ---- what only a stack does to a dataset: target.bucket means rawBucket, placeholders in bucket names -------


HERE = {"account_id": "210987654321", "region": "ap-southeast-2"}


class Asked:
    """A placeholders callable that counts how often the program would ask the provider."""

    def __init__(self, answer: dict[str, str] = HERE):
        self.answer = answer
        self.calls = 0

    def __call__(self) -> dict[str, str]:
        self.calls += 1
        return self.answer


def test_a_dataset_without_target_bucket_lands_in_the_raw_bucket_and_its_config_object_names_it() -> None:
    config = parse_stack_config(values(datasets=json.dumps({"exports": dataset(target={"prefix": "exports/"})})))
    exports = config.datasets.dataset("exports")
    assert exports.target.bucket == "acme-raw"
    # What the config object (and the runtime) gets is the real name, not a missing field.
    assert config.datasets.to_dict()["datasets"]["exports"]["target"]["bucket"] == "acme-raw"


def test_the_dev_stack_follows_a_new_raw_bucket_name_set_on_the_command_line() -> None:
    # `pulumi config set rawBucket my-company-dev-raw` on Pulumi.dev.yaml, then `pulumi up`.
    config = parse_stack_config(
        {**stack_values(dev_stack_config()), "rawBucket": "my-company-dev-raw"}, placeholders=Asked()
    )
    assert config.raw_bucket == "my-company-dev-raw"
    assert config.datasets.dataset("movielens").target.bucket == "my-company-dev-raw"


def test_a_left_out_target_bucket_is_not_blamed_when_raw_bucket_itself_is_wrong() -> None:
    target_only = json.dumps({"exports": dataset(target={"prefix": "exports/"})})
    assert problems_of(values(rawBucket=None, datasets=target_only)) == [
        "data-file-ingestion:rawBucket: missing; set it with `pulumi config set rawBucket <value>`"
    ]
    assert problems_of(values(rawBucket="Acme_Raw", datasets=target_only)) == [
        "data-file-ingestion:rawBucket: 'Acme_Raw' is not a valid S3 bucket name (3-63 lowercase letters, digits, "
        "'.' or '-'); give the name, not an ARN or s3:// URI"
    ]


def test_placeholders_are_filled_into_every_bucket_name_before_it_is_checked() -> None:
    asked = Asked()
    config = parse_stack_config(
        values(
            rawBucket="acme-raw-{account_id}-{region}",
            configBucket="acme-config-{region}",
            datasets=json.dumps(
                {
                    "exports": dataset(
                        source={"bucket": "acme-landing-{account_id}", "prefix": "exports/", "create": True},
                        target={"bucket": "acme-raw-{account_id}-{region}", "prefix": "exports/"},
                    ),
                    "partner": dataset(
                        source={"bucket": "partner-drop-{region}", "prefix": "in/"},
                        target={"prefix": "partner/"},
                        inventory={"bucket": "acme-inventory-{account_id}", "prefix": "inv/partner-drop/all/"},
                    ),
                }
            ),
        ),
        placeholders=asked,
    )
    assert asked.calls == 1
    assert config.raw_bucket == "acme-raw-210987654321-ap-southeast-2"
    assert config.config_bucket == "acme-config-ap-southeast-2"
    exports, partner = config.datasets.dataset("exports"), config.datasets.dataset("partner")
    assert exports.source.bucket == "acme-landing-210987654321"
    assert exports.target.bucket == partner.target.bucket == config.raw_bucket
    assert partner.source.bucket == "partner-drop-ap-southeast-2"
    assert partner.inventory_bucket == "acme-inventory-210987654321"
    assert config.created_source_buckets == ("acme-landing-210987654321",)


def test_a_stack_without_placeholders_never_asks_for_the_account_or_region() -> None:
    asked = Asked()
    parse_stack_config(values(), placeholders=asked)
    assert asked.calls == 0


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"rawBucket": "acme-raw-{acount_id}"},
            "data-file-ingestion:rawBucket: {acount_id} is not a placeholder; a bucket name may contain {account_id} "
            "(the 12-digit id of the account deployed to), {region} (the region deployed to)",
        ),
        (
            {"datasets": json.dumps({"exports": dataset(source={"bucket": "acme-{env}-landing", "create": True})})},
            "data-file-ingestion:datasets.exports.source.bucket: {env} is not a placeholder; a bucket name may contain",
        ),
    ],
)
def test_an_unknown_placeholder_is_one_problem_naming_the_key(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config(values(**overrides), placeholders=Asked())
    (problem,) = caught.value.problems  # not also "is not a valid S3 bucket name", nor a blamed target
    assert problem.startswith(expected)


def test_a_filled_in_name_is_checked_as_the_bucket_name_it_becomes() -> None:
    # 38 characters of its own, 65 once filled in: longer than S3 allows.
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config(
            values(rawBucket="acme-ingestion-landed-data-raw-bucket-{account_id}-{region}"), placeholders=Asked()
        )
    assert caught.value.problems[0].startswith(
        "data-file-ingestion:rawBucket: 'acme-ingestion-landed-data-raw-bucket-210987654321-ap-southeast-2' is not a "
        "valid S3 bucket name"
    )


def test_placeholders_outside_the_program_are_reported_not_left_in_the_name() -> None:
    assert problems_of(values(configBucket="acme-config-{region}")) == [
        "data-file-ingestion:configBucket: 'acme-config-{region}': placeholders are filled in only by the Pulumi "
        "program (`pulumi up`)"
    ]


def longest_region() -> str:
    """The longest region name botocore knows, across partitions (aws, aws-cn, aws-us-gov, the isolated ones)."""
    session = botocore.session.get_session()
    regions = {
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("s3", partition_name=partition)
    }
    return max(regions, key=len)


def test_the_dev_stack_bucket_names_fit_s3_in_every_region() -> None:
    region = longest_region()
    assert len(region) >= len("ap-southeast-2")  # the list was read, not empty
    config = parse_stack_config(
        stack_values(dev_stack_config()), placeholders=Asked({"account_id": "210987654321", "region": region})
    )
    assert config.raw_bucket.endswith(f"-210987654321-{region}")
    assert config.created_source_buckets[0].endswith(f"-210987654321-{region}")
