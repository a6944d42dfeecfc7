"""`source.kms_key_arn` and `inventory.kms_key_arn`: only a full key ARN is taken, and every other form is named.

The value becomes the Resource of the function role's kms:Decrypt statement (infra/policies.py). IAM matches a
key only by its key ARN (AWS KMS developer guide, "Specifying KMS keys in IAM policy statements"), so an alias or
a key id would deploy a statement that allows nothing; the config refuses them before anything is created.
"""

from __future__ import annotations

from typing import Any

import pytest

from handler.config import DATASET_FIELDS, parse_config, with_overrides
from handler.errors import ConfigError
from handler.naming import kms_key_arn_problems

NAME = "orders"
KEY = "arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"
MRK = "arn:aws:kms:us-east-1:444455556666:key/mrk-1234abcd12ab34cd56ef1234567890ab"
INVENTORY = {"bucket": "inventory-bucket", "prefix": "inventory/src-bucket/daily-csv/"}
WHY = "an IAM policy can allow a key (above all one of another account) only by its key ARN"
SHAPE = "arn:<partition>:kms:<region>:<12-digit account>:key/<key id>"


def raw(source: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    source = {"bucket": "src-bucket", "prefix": "in/", **(source or {})}
    return {"source": source, "target": {"bucket": "raw-bucket"}, **fields}


def problems(document: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({"datasets": {NAME: document}})
    return info.value.problems


@pytest.mark.parametrize(
    "arn",
    [
        KEY,
        MRK,
        "arn:aws-us-gov:kms:us-gov-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws-cn:kms:cn-north-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ],
)
def test_a_key_arn_of_any_partition_and_a_multi_region_key_are_taken_for_the_source_and_the_inventory(
    arn: str,
) -> None:
    dataset = parse_config(
        {"datasets": {NAME: raw({"kms_key_arn": arn}, inventory={**INVENTORY, "kms_key_arn": arn})}}
    ).dataset(NAME)

    assert (dataset.source_kms_key_arn, dataset.inventory_kms_key_arn) == (arn, arn)


def test_a_dataset_without_keys_has_none_and_writes_none_back() -> None:
    dataset = parse_config({"datasets": {NAME: raw(inventory=INVENTORY)}}).dataset(NAME)

    assert (dataset.source_kms_key_arn, dataset.inventory_kms_key_arn) == (None, None)
    written = dataset.to_dict()
    assert "kms_key_arn" not in written["source"]
    assert "kms_key_arn" not in written["inventory"]


def test_the_keys_are_written_back_where_the_document_gives_them_and_read_back_equal() -> None:
    """The stack writes `to_dict()` for the Lambda, and the CLI reads the same document: the keys survive both."""
    dataset = parse_config(
        {"datasets": {NAME: raw({"kms_key_arn": KEY}, inventory={**INVENTORY, "kms_key_arn": MRK})}}
    ).dataset(NAME)

    written = dataset.to_dict()

    assert written["source"]["kms_key_arn"] == KEY
    assert written["inventory"]["kms_key_arn"] == MRK
    assert parse_config({"datasets": {NAME: written}}).dataset(NAME) == dataset


@pytest.mark.parametrize(
    ("given", "what"),
    [
        ("alias/partner-orders", "an alias, not a key ARN"),
        ("arn:aws:kms:eu-west-1:444455556666:alias/partner-orders", "an alias, not a key ARN"),
        ("1234abcd-12ab-34cd-56ef-1234567890ab", "a key id, not a key ARN"),
        ("mrk-1234abcd12ab34cd56ef1234567890ab", "a key id, not a key ARN"),
        ("arn:aws:kms::444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab", "not a KMS key ARN"),
        ("arn:aws:kms:eu-west-1:4444:key/1234abcd-12ab-34cd-56ef-1234567890ab", "not a KMS key ARN"),
        ("arn:aws:s3:::partner-orders-export", "not a KMS key ARN"),
        (f"{KEY}/", "not a KMS key ARN"),
        ("", "not a KMS key ARN"),
    ],
)
def test_an_alias_a_key_id_or_anything_else_is_refused_naming_the_field_and_why(given: str, what: str) -> None:
    expected = (
        f"{given!r} is {what}: give the key's full ARN, {SHAPE} (`aws kms describe-key --key-id <alias or id> "
        f"--query KeyMetadata.Arn`, run in the key's account), because {WHY}"
    )

    assert problems(raw({"kms_key_arn": given})) == [f"datasets.{NAME}.source.kms_key_arn: {expected}"]
    assert problems(raw(inventory={**INVENTORY, "kms_key_arn": given})) == [
        f"datasets.{NAME}.inventory.kms_key_arn: {expected}"
    ]


@pytest.mark.parametrize("given", [42, ["arn"], {"arn": KEY}, True])
def test_a_value_that_is_not_text_is_refused(given: Any) -> None:
    assert problems(raw({"kms_key_arn": given})) == [
        f"datasets.{NAME}.source.kms_key_arn: must be a KMS key ARN ({SHAPE}), got {given!r}"
    ]


def test_an_inventory_key_without_the_inventory_is_the_missing_bucket_and_prefix() -> None:
    assert problems(raw(inventory={"kms_key_arn": KEY})) == [
        f"datasets.{NAME}.inventory.bucket: missing; give the bucket the inventory reports are delivered to",
        f"datasets.{NAME}.inventory.prefix: missing; give the reports' prefix, `<destination prefix>/<source "
        "bucket>/<inventory id>/` (docs/inventory.md)",
    ]


def test_the_key_is_a_source_field_and_an_inventory_field_only() -> None:
    assert problems({**raw(), "target": {"bucket": "raw-bucket", "kms_key_arn": KEY}}) == [
        f"datasets.{NAME}.target.kms_key_arn: unknown field; allowed: bucket, prefix"
    ]
    assert problems(raw(kms_key_arn=KEY)) == [
        f"datasets.{NAME}.kms_key_arn: unknown field; allowed: "
        + ", ".join(sorted({s.name.partition(".")[0] for s in DATASET_FIELDS}))
    ]


def test_a_misspelt_key_field_gets_a_did_you_mean() -> None:
    assert problems(raw({"kms_key": KEY})) == [
        f"datasets.{NAME}.source.kms_key: unknown field; did you mean 'kms_key_arn'?"
    ]


def test_an_override_is_checked_as_the_document_is() -> None:
    dataset = parse_config({"datasets": {NAME: raw()}}).dataset(NAME)

    assert with_overrides(dataset, source_kms_key_arn=KEY).source_kms_key_arn == KEY
    with pytest.raises(ConfigError) as info:
        with_overrides(dataset, source_kms_key_arn="alias/partner-orders")
    assert info.value.problems == [f"source.kms_key_arn: {kms_key_arn_problems('alias/partner-orders')[0]}"]
