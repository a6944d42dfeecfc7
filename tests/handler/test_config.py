"""The process config: every problem is found before anything is copied, and each names its dataset and field."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from handler.config import (
    DEFAULT_SCHEDULE,
    DatasetConfig,
    Location,
    ProcessConfig,
    normalise_prefix,
    parse_config,
    parse_config_text,
)
from handler.errors import ConfigError, UnknownDataset
from handler.naming import bucket_name_problem, did_you_mean
from handler.schedules import schedule_problem
from handler.templates import DEFAULT_KEY_TEMPLATE

NAME = "sales"


def raw_dataset(**overrides: Any) -> dict[str, Any]:
    """A valid dataset config over two distinct buckets; overrides replace whole fields."""
    return {
        "source": {"bucket": "src-bucket", "prefix": "in/"},
        "target": {"bucket": "raw-bucket", "prefix": "out/"},
        **overrides,
    }


def problems(raw: Any, name: str = NAME) -> list[str]:
    """The problems parse_config reports for one dataset; fails the test if the config is accepted."""
    with pytest.raises(ConfigError) as info:
        parse_config({"datasets": {name: raw}})
    return info.value.problems


def only_problem(raw: Any, name: str = NAME) -> str:
    found = problems(raw, name)
    assert len(found) == 1, found
    return found[0]


def parse_one(raw: dict[str, Any], name: str = NAME) -> DatasetConfig:
    return parse_config({"datasets": {name: raw}}).dataset(name)


# ---- a valid config ----------------------------------------------------------------------------------------


def test_minimal_dataset_gets_the_documented_defaults() -> None:
    ds = parse_one(raw_dataset())

    assert ds.name == NAME
    assert ds.source == Location("src-bucket", "in/")
    assert ds.target == Location("raw-bucket", "out/")
    assert ds.key_template == DEFAULT_KEY_TEMPLATE == "{dir}/ingest_date={date}/{name}"
    assert ds.include == ("*",)
    assert ds.exclude == ()
    assert ds.timezone == "UTC"
    assert ds.schedule == DEFAULT_SCHEDULE
    assert ds.topic_arn is None
    assert ds.create_source is False
    assert ds.min_age_seconds == 0
    assert ds.ledger_prefix == "_ingestion/sales/"


def test_every_field_given_is_kept() -> None:
    ds = parse_one(
        raw_dataset(
            source={"bucket": "src-bucket", "prefix": "in/", "create": True},
            key_template="{dataset}/{yyyy}/{mm}/{dd}/{path}",
            include=["*.csv", "*.json"],
            exclude=["tmp/*"],
            timezone="America/Chicago",
            concurrency=8,
            lock_ttl_seconds=600,
            min_age_seconds=300,
            multipart_threshold_bytes=8 * 1024 * 1024,
            multipart_chunk_bytes=16 * 1024 * 1024,
            batch_max_objects=50,
            batch_max_bytes=1024,
            topic_arn="arn:aws:sns:us-east-1:123456789012:ingest",
            schedule="rate(1 hour)",
        )
    )

    assert ds.create_source is True
    assert ds.key_template == "{dataset}/{yyyy}/{mm}/{dd}/{path}"
    assert ds.include == ("*.csv", "*.json")
    assert ds.exclude == ("tmp/*",)
    assert ds.timezone == "America/Chicago"
    assert (ds.concurrency, ds.lock_ttl_seconds, ds.min_age_seconds) == (8, 600, 300)
    assert (ds.multipart_threshold_bytes, ds.multipart_chunk_bytes) == (8 * 1024 * 1024, 16 * 1024 * 1024)
    assert (ds.batch_max_objects, ds.batch_max_bytes) == (50, 1024)
    assert ds.topic_arn == "arn:aws:sns:us-east-1:123456789012:ingest"
    assert ds.schedule == "rate(1 hour)"


# ---- missing and unknown fields ------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["source", "target"])
def test_missing_location_is_named_with_its_dataset(missing: str) -> None:
    raw = raw_dataset()
    del raw[missing]

    message = only_problem(raw)

    assert message.startswith(f"datasets.sales.{missing}: missing")
    assert '"bucket"' in message


@pytest.mark.parametrize("missing", ["source", "target"])
def test_location_that_is_not_an_object_is_refused(missing: str) -> None:
    message = only_problem(raw_dataset(**{missing: "s3://bucket/prefix/"}))

    assert message.startswith(f"datasets.sales.{missing}: must be an object")


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("exlude", "exclude"),
        ("key_templat", "key_template"),
        ("timezon", "timezone"),
        ("concurency", "concurrency"),
        ("min_age_second", "min_age_seconds"),
        ("shedule", "schedule"),
    ],
)
def test_misspelt_dataset_field_gets_a_did_you_mean(typo: str, meant: str) -> None:
    message = only_problem(raw_dataset(**{typo: 1}))

    assert message == f"datasets.sales.{typo}: unknown field; did you mean {meant!r}?"


def test_description_is_not_a_field_so_a_comment_belongs_in_yaml_comments() -> None:
    # It used to be accepted and then ignored: an undocumented field nothing read.
    assert only_problem(raw_dataset(description="nightly sales drop")).startswith(
        "datasets.sales.description: unknown field; "
    )


def test_unknown_field_with_nothing_close_lists_the_allowed_ones() -> None:
    message = only_problem(raw_dataset(zzz=1))

    assert message.startswith("datasets.sales.zzz: unknown field; allowed: ")
    assert "key_template" in message and "source" in message


@pytest.mark.parametrize(
    ("which", "typo", "meant"),
    [("source", "bukcet", "bucket"), ("target", "prefx", "prefix"), ("source", "crate", "create")],
)
def test_misspelt_location_field_gets_a_did_you_mean(which: str, typo: str, meant: str) -> None:
    raw = raw_dataset()
    raw[which] = {**raw[which], typo: "x"}

    assert f"datasets.sales.{which}.{typo}: unknown field; did you mean {meant!r}?" in problems(raw)


def test_did_you_mean_names_the_closest_or_lists_all_under_the_given_heading() -> None:
    assert did_you_mean("prefx", {"bucket", "prefix"}) == "; did you mean 'prefix'?"
    assert did_you_mean("zzz", {"prefix", "bucket"}) == "; allowed: bucket, prefix"
    assert did_you_mean("zzz", ["b", "a"], "known keys") == "; known keys: a, b"


def test_create_is_a_source_field_only() -> None:
    raw = raw_dataset(target={"bucket": "raw-bucket", "prefix": "out/", "create": True})

    message = only_problem(raw)

    assert message == "datasets.sales.target.create: unknown field; allowed: bucket, prefix"


def test_source_create_must_be_a_boolean() -> None:
    raw = raw_dataset(source={"bucket": "src-bucket", "prefix": "in/", "create": "yes"})

    assert only_problem(raw) == "datasets.sales.source.create: must be true or false"


def test_unknown_top_level_field_is_reported_beside_the_datasets_problem() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"dataset": {NAME: raw_dataset()}})

    assert info.value.problems == [
        "unknown top-level field 'dataset' (only 'datasets' is allowed)",
        "'datasets' must be a non-empty object of dataset name -> dataset config",
    ]


def test_unknown_top_level_field_beside_valid_datasets_is_still_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"datasets": {NAME: raw_dataset()}, "version": 2})

    assert info.value.problems == ["unknown top-level field 'version' (only 'datasets' is allowed)"]


@pytest.mark.parametrize("document", [[], "datasets", None, 3])
def test_document_that_is_not_an_object_is_refused(document: Any) -> None:
    with pytest.raises(ConfigError, match="must be a JSON object with a 'datasets' object"):
        parse_config(document)


@pytest.mark.parametrize("datasets", [{}, [], "sales", None])
def test_datasets_must_be_a_non_empty_object(datasets: Any) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"datasets": datasets})

    assert info.value.problems == ["'datasets' must be a non-empty object of dataset name -> dataset config"]


def test_dataset_that_is_not_an_object_is_refused() -> None:
    assert only_problem("s3://bucket/") == "datasets.sales: must be an object"


@pytest.mark.parametrize("name", ["Sales", "-sales", "sales data", "sales/2024", "", "a" * 64, "données"])
def test_dataset_name_unfit_for_keys_and_resource_names_is_refused(name: str) -> None:
    message = only_problem(raw_dataset(), name=name)

    assert message.startswith(f"datasets.{name}: dataset name must be 1-63 lowercase letters")


@pytest.mark.parametrize("name", ["a", "sales", "sales-2024", "sales_eu", "9lives", "a" * 63])
def test_dataset_name_of_lowercase_letters_digits_dash_underscore_is_accepted(name: str) -> None:
    assert parse_one(raw_dataset(), name=name).name == name


# ---- key template --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("placeholder", ["day", "filename", "Date", "path.name", "0", ""])
def test_unknown_placeholder_is_named_and_known_ones_listed(placeholder: str) -> None:
    template = "{dir}/{date}/{name}/{" + placeholder + "}"

    message = only_problem(raw_dataset(key_template=template))

    assert message.startswith("datasets.sales.key_template: unknown placeholder {" + placeholder + "}; known: ")
    assert "{run_id}" in message and "{dataset}" in message


@pytest.mark.parametrize("template", ["{date}/{path", "{date}/{path}}", "{date}/}{path}"])
def test_malformed_template_is_explained(template: str) -> None:
    message = only_problem(raw_dataset(key_template=template))

    assert message.startswith(f"datasets.sales.key_template: {template!r} is malformed")
    assert "'{{'" in message


@pytest.mark.parametrize("template", ["{date:%Y}/{path}", "{date!r}/{path}"])
def test_placeholder_with_format_spec_or_conversion_is_refused(template: str) -> None:
    message = only_problem(raw_dataset(key_template=template))

    assert message == "datasets.sales.key_template: placeholder {date} takes no format spec or conversion"


@pytest.mark.parametrize("template", ["{path}", "{dir}/{name}", "{yyyy}/{mm}/{path}", "{dataset}/{run_id}/{path}"])
def test_template_without_the_date_is_refused(template: str) -> None:
    message = only_problem(raw_dataset(key_template=template))

    assert message.startswith("datasets.sales.key_template: must contain {date}")


@pytest.mark.parametrize(
    "template",
    ["{date}/{name}", "{dir}/{date}/{stem}", "{dir}/{date}/{ext}", "{date}/{stem}{ext}", "{date}/{run_id}"],
)
def test_template_that_could_merge_distinct_sources_is_refused(template: str) -> None:
    message = only_problem(raw_dataset(key_template=template))

    assert message.startswith("datasets.sales.key_template: must keep distinct source files distinct")
    assert "{path}" in message


def test_template_without_date_or_distinctness_reports_both() -> None:
    assert problems(raw_dataset(key_template="{dataset}/{name}")) == [
        "datasets.sales.key_template: must contain {date} (or {yyyy}, {mm} and {dd}) so each night lands in its "
        "own partition",
        "datasets.sales.key_template: must keep distinct source files distinct: use {path}, or {dir} with {name} "
        "(or {stem} and {ext})",
    ]


@pytest.mark.parametrize("template", ["", "   ", 7, None, ["{date}/{path}"]])
def test_template_must_be_a_non_empty_string(template: Any) -> None:
    message = only_problem(raw_dataset(key_template=template))

    assert message == "datasets.sales.key_template: must be a non-empty string"


@pytest.mark.parametrize(
    "template",
    [
        "{dir}/ingest_date={date}/{name}",
        "{date}/{path}",
        "{yyyy}/{mm}/{dd}/{path}",
        "{dataset}/{dir}/{date}/{stem}{ext}",
        "{dir}/{date}/{run_id}/{name}",
        "{{literal}}/{date}/{path}",
    ],
)
def test_templates_with_date_and_distinct_keys_are_accepted(template: str) -> None:
    assert parse_one(raw_dataset(key_template=template)).key_template == template


# ---- key template: rendered through the planner's own function ------------------------------------------------


@pytest.mark.parametrize(
    ("template", "prefix", "rendered", "why"),
    [
        ("{dir}/../{date}/{name}", "out/", "'out/../", "a '.' or '..' segment"),
        ("{dir}/./{date}/{name}", "out/", "'out/./", "a '.' or '..' segment"),
        ("{dir}./{date}/{name}", "out/", "'out/./", "a '.' or '..' segment"),
        ("_ingestion/{dataset}/{date}/{path}", "", "'_ingestion/sales/", "reserved ledger prefix '_ingestion/'"),
        ("{path}/{path}/{path}/{path}/{path}/{path}/{path}/{date}", "out/", "'out/", "1,024-byte"),
    ],
)
def test_template_that_cannot_land_ordinary_keys_is_refused_naming_the_rendered_key(
    template: str, prefix: str, rendered: str, why: str
) -> None:
    message = only_problem(raw_dataset(key_template=template, target={"bucket": "raw-bucket", "prefix": prefix}))

    assert message.startswith(f"datasets.sales.key_template: {template!r} cannot land ordinary files")
    assert "for the source key " in message
    assert rendered in message
    assert why in message
    assert f"e.g. the default {DEFAULT_KEY_TEMPLATE!r}" in message


def test_template_inside_the_ledger_without_a_date_reports_both_problems() -> None:
    found = problems(raw_dataset(key_template="_ingestion/{dataset}/{path}", target={"bucket": "raw-bucket"}))

    assert len(found) == 2, found
    assert found[0].startswith("datasets.sales.key_template: must contain {date}")
    assert "reserved ledger prefix '_ingestion/'" in found[1]


@pytest.mark.parametrize("template", ["{dir}{name}/{date}", "{date}/{dir}{stem}{ext}"])
def test_template_that_renders_two_sample_files_onto_one_key_is_refused(template: str) -> None:
    message = only_problem(raw_dataset(key_template=template))

    assert message.startswith(f"datasets.sales.key_template: {template!r} lands different files on one key: ")
    assert "'ab/c.csv' and 'a/bc.csv'" in message
    assert "separate {dir} from the file name with '/'" in message


@pytest.mark.parametrize("template", ["{date}/{run_id}", "{dir}/{date}/{ext}", "{dataset}/{date}"])
def test_template_without_a_file_name_placeholder_is_refused_once(template: str) -> None:
    message = only_problem(raw_dataset(key_template=template))

    assert message.startswith("datasets.sales.key_template: must keep distinct source files distinct")


@pytest.mark.parametrize("prefix", ["", "out/", "a/b/c/"])
@pytest.mark.parametrize(
    "template",
    [
        DEFAULT_KEY_TEMPLATE,
        "{date}/{path}",
        "{dataset}/{yyyy}/{mm}/{dd}/{dir}/{stem}{ext}",
        "{dir}/{run_id}/{date}/{name}",
        "_archive/{date}/{path}",
        "x/_ingestion/{date}/{path}",
    ],
)
def test_templates_that_land_every_sample_are_accepted_under_any_prefix(template: str, prefix: str) -> None:
    ds = parse_one(raw_dataset(key_template=template, target={"bucket": "raw-bucket", "prefix": prefix}))

    assert ds.key_template == template


# ---- buckets and prefixes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["source", "target"])
@pytest.mark.parametrize("bucket", ["", None, 5])
def test_empty_or_missing_bucket_name_is_named(which: str, bucket: Any) -> None:
    raw = raw_dataset()
    raw[which] = {"prefix": "x/"} if bucket is None else {"bucket": bucket, "prefix": "x/"}

    message = only_problem(raw)

    assert message == f"datasets.sales.{which}.bucket: missing or empty; give the bucket name"


@pytest.mark.parametrize("which", ["source", "target"])
@pytest.mark.parametrize(
    "bucket",
    [
        "s3://src-bucket",
        "arn:aws:s3:::src-bucket",
        "My_Bucket",
        "UPPER",
        "ab",
        "a" * 64,
        "two..dots",
        "-leading-dash",
        "trailing-dash-",
        ".leading-dot",
        "xn--punycode",
        "bucket/prefix",
        "bücket",
        " bucket",
    ],
)
def test_invalid_bucket_name_is_named_with_a_hint(which: str, bucket: str) -> None:
    raw = raw_dataset()
    raw[which] = {"bucket": bucket}

    message = only_problem(raw)

    assert message.startswith(f"datasets.sales.{which}.bucket: {bucket!r} is not a valid S3 bucket name")
    assert "not an ARN or s3:// URI" in message


@pytest.mark.parametrize("bucket", ["abc", "a" * 63, "my.bucket-1", "123-data", "logs.example.com"])
def test_valid_bucket_names_are_accepted(bucket: str) -> None:
    assert bucket_name_problem(bucket) is None
    assert parse_one(raw_dataset(source={"bucket": bucket})).source.bucket == bucket


def test_bucket_name_problem_is_the_message_the_config_reports() -> None:
    assert bucket_name_problem("s3://src-bucket") == (
        "'s3://src-bucket' is not a valid S3 bucket name (3-63 lowercase letters, digits, '.' or '-'); "
        "give the name, not an ARN or s3:// URI"
    )


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("", ""),
        ("/", ""),
        ("///", ""),
        ("a", "a/"),
        ("a/b", "a/b/"),
        ("a/b/", "a/b/"),
        ("/a/b", "a/b/"),
        ("/a/b/", "a/b/"),
        ("données/été", "données/été/"),
        ("a b/c+d", "a b/c+d/"),
        ("...", ".../"),
    ],
)
def test_prefix_is_normalised_to_end_with_one_slash(given: str, normalised: str) -> None:
    assert normalise_prefix(given) == normalised
    ds = parse_one(raw_dataset(source={"bucket": "src-bucket", "prefix": given}))
    assert ds.source.prefix == normalised


@pytest.mark.parametrize("which", ["source", "target"])
@pytest.mark.parametrize("prefix", ["/a//b", "a//b/", "a/./b", "a/../b", "..", "./a", "a/.."])
def test_prefix_with_empty_dot_or_dotdot_segment_is_refused(which: str, prefix: str) -> None:
    raw = raw_dataset()
    raw[which] = {"bucket": raw[which]["bucket"], "prefix": prefix}

    message = only_problem(raw)

    assert normalise_prefix(prefix) is None
    assert message.startswith(f"datasets.sales.{which}.prefix: {prefix!r} has an empty, '.' or '..' segment")


@pytest.mark.parametrize("which", ["source", "target"])
def test_prefix_must_be_a_string(which: str) -> None:
    raw = raw_dataset()
    raw[which] = {"bucket": raw[which]["bucket"], "prefix": ["a"]}

    assert only_problem(raw) == f"datasets.sales.{which}.prefix: must be a string"


@pytest.mark.parametrize(
    ("source_prefix", "target_prefix"),
    [
        ("", ""),
        ("", "raw/"),
        ("in/", ""),
        ("in/", "in/"),
        ("in/", "in/raw/"),
        ("data/in/", "data/"),
        ("a/b/c/", "a/"),
    ],
)
def test_target_overlapping_source_in_one_bucket_is_refused(source_prefix: str, target_prefix: str) -> None:
    raw = raw_dataset(
        source={"bucket": "shared-bucket", "prefix": source_prefix},
        target={"bucket": "shared-bucket", "prefix": target_prefix},
    )

    message = only_problem(raw)

    assert message.startswith(
        f"datasets.sales: target s3://shared-bucket/{target_prefix} overlaps source s3://shared-bucket/{source_prefix}"
    )
    assert "ingested again" in message


@pytest.mark.parametrize(
    ("source_prefix", "target_prefix"),
    [("in/", "out/"), ("in/", "inbox/"), ("inbox/", "in/"), ("data/in/", "data/out/"), ("a/b/", "a/bc/")],
)
def test_disjoint_prefixes_in_one_bucket_are_accepted(source_prefix: str, target_prefix: str) -> None:
    ds = parse_one(
        raw_dataset(
            source={"bucket": "shared-bucket", "prefix": source_prefix},
            target={"bucket": "shared-bucket", "prefix": target_prefix},
        )
    )

    assert (ds.source.prefix, ds.target.prefix) == (source_prefix, target_prefix)


def test_same_prefix_in_different_buckets_is_accepted() -> None:
    ds = parse_one(raw_dataset(source={"bucket": "src-bucket"}, target={"bucket": "raw-bucket"}))

    assert ds.source.prefix == ds.target.prefix == ""


@pytest.mark.parametrize("prefix", ["_ingestion/", "_ingestion", "/_ingestion/", "_ingestion/sales/", "_ingestion/x"])
def test_target_prefix_inside_the_reserved_ledger_root_is_refused(prefix: str) -> None:
    message = only_problem(raw_dataset(target={"bucket": "raw-bucket", "prefix": prefix}))

    assert message == "datasets.sales.target.prefix: '_ingestion/' is reserved for the ledger; choose another"


@pytest.mark.parametrize("prefix", ["_ingestion2/", "_ingestions/", "data/_ingestion/", "ingestion/"])
def test_target_prefix_merely_resembling_the_ledger_root_is_accepted(prefix: str) -> None:
    assert parse_one(raw_dataset(target={"bucket": "raw-bucket", "prefix": prefix})).target.prefix == prefix


def test_source_inside_the_ledger_of_the_same_bucket_is_refused() -> None:
    raw = raw_dataset(
        source={"bucket": "shared-bucket", "prefix": "_ingestion/other/"},
        target={"bucket": "shared-bucket", "prefix": "out/"},
    )

    message = only_problem(raw)

    assert message == "datasets.sales: source.prefix: '_ingestion/' is the ledger of the target bucket; choose another"


# ---- timezone, numbers, lists, topic -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timezone", ["Mars/Olympus_Mons", "Europe/Londn", "utc", "UTC+1", "", "../etc/passwd", 1, None]
)
def test_bad_timezone_is_named(timezone: Any) -> None:
    message = only_problem(raw_dataset(timezone=timezone))

    assert message.startswith(f"datasets.sales.timezone: {timezone!r} is not an IANA time zone name")


@pytest.mark.parametrize("timezone", ["UTC", "America/Chicago", "Europe/Berlin", "Asia/Kolkata", "Etc/GMT-14"])
def test_iana_timezones_are_accepted(timezone: str) -> None:
    assert parse_one(raw_dataset(timezone=timezone)).timezone == timezone


INT_FIELDS = {
    "concurrency": (1, 1024),
    "lock_ttl_seconds": (1, 7 * 24 * 3600),
    "min_age_seconds": (0, 365 * 24 * 3600),
    "multipart_threshold_bytes": (5 * 1024**2, 5 * 1024**3),
    "multipart_chunk_bytes": (5 * 1024**2, 5 * 1024**3),
    "batch_max_objects": (1, 100_000),
    "batch_max_bytes": (1, 5 * 1024**4),
}


@pytest.mark.parametrize("field", sorted(INT_FIELDS))
@pytest.mark.parametrize("value", [True, False, "10", 1.5, 10.0, None, [1]])
def test_int_field_that_is_not_a_whole_number_is_named(field: str, value: Any) -> None:
    low, high = INT_FIELDS[field]

    message = only_problem(raw_dataset(**{field: value}))

    assert message == f"datasets.sales.{field}: must be a whole number between {low} and {high}, got {value!r}"


@pytest.mark.parametrize("field", sorted(INT_FIELDS))
@pytest.mark.parametrize("side", ["below", "above"])
def test_int_field_out_of_range_is_named(field: str, side: str) -> None:
    low, high = INT_FIELDS[field]
    value = low - 1 if side == "below" else high + 1

    message = only_problem(raw_dataset(**{field: value}))

    assert message == f"datasets.sales.{field}: must be between {low} and {high}, got {value}"


@pytest.mark.parametrize("field", sorted(INT_FIELDS))
@pytest.mark.parametrize("side", ["low", "high"])
def test_int_field_at_its_bounds_is_accepted(field: str, side: str) -> None:
    low, high = INT_FIELDS[field]
    value = low if side == "low" else high

    assert getattr(parse_one(raw_dataset(**{field: value})), field) == value


def test_include_empty_list_is_refused_because_it_would_include_nothing() -> None:
    message = only_problem(raw_dataset(include=[]))

    assert message == "datasets.sales.include: an empty list would include nothing; omit it to include everything"


def test_exclude_empty_list_is_accepted() -> None:
    assert parse_one(raw_dataset(exclude=[])).exclude == ()


@pytest.mark.parametrize("field", ["include", "exclude"])
@pytest.mark.parametrize("value", ["*.csv", [""], ["*.csv", 3], None, {"*.csv": True}])
def test_filter_that_is_not_a_list_of_patterns_is_named(field: str, value: Any) -> None:
    found = problems(raw_dataset(**{field: value}))

    assert found[0] == f'datasets.sales.{field}: must be a list of non-empty glob patterns, e.g. ["*.csv"]'


@pytest.mark.parametrize("value", ["*.csv", [""], None])
def test_malformed_include_is_not_also_called_empty(value: Any) -> None:
    # Regression: a malformed include was reported twice, the second time as "an empty list would include
    # nothing", which the user never wrote.
    assert problems(raw_dataset(include=value)) == [
        'datasets.sales.include: must be a list of non-empty glob patterns, e.g. ["*.csv"]'
    ]


@pytest.mark.parametrize("topic", ["my-topic", "", 7, "sns:us-east-1:123:topic"])
def test_topic_arn_that_is_not_an_arn_is_named(topic: Any) -> None:
    message = only_problem(raw_dataset(topic_arn=topic))

    assert message == "datasets.sales.topic_arn: must be an SNS topic ARN (arn:aws:sns:...) or omitted"


def test_null_topic_arn_means_no_topic() -> None:
    assert parse_one(raw_dataset(topic_arn=None)).topic_arn is None


# ---- schedule ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("cron(0 20 * * *)", "has 5 fields; EventBridge cron takes 6"),
        ("cron(0 20 * * ? * *)", "has 7 fields"),
        ("cron()", "has 0 fields"),
        ("cron(0 20 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 20 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(60 20 * * ? *)", "minutes value 60 is outside 0-59"),
        ("cron(0,75 20 * * ? *)", "minutes value 75 is outside 0-59"),
        ("cron(0 24 * * ? *)", "hours value 24 is outside 0-23"),
        ("cron(0 8-25 * * ? *)", "hours value 25 is outside 0-23"),
        ("cron(0 20 * * ? $)", "has a field with characters cron does not allow"),
        ("0 20 * * ?", "is not 'cron(...)', 'rate(...)' or 'at(...)'"),
        ("every night", "is not 'cron(...)', 'rate(...)' or 'at(...)'"),
        ("rate(0 minutes)", "'0' is not a whole number above 0"),
        ("rate(5 weeks)", "'weeks' is not a unit"),
        ("rate(five minutes)", "'five' is not a whole number above 0"),
        ("rate(-1 hours)", "'-1' is not a whole number above 0"),
        ("rate(1 minutes)", "write 1 minute, not 1 minutes"),
        ("rate(5 minute)", "write 5 minutes, not 5 minute"),
        ("", "is not 'cron(...)', 'rate(...)' or 'at(...)'"),
        ("cron(0 20 ? * 0 *)", "day-of-week value 0 is outside 1-7 or SUN-SAT (1 is Sunday)"),
        ("cron(0 20 1 * ? 2200)", "year value 2200 is outside 1970-2199"),
        ("at(2027-02-30T20:00:00)", "at takes one moment as yyyy-mm-ddThh:mm:ss"),
    ],
)
def test_bad_schedule_expression_is_named_with_the_reason(expression: str, why: str) -> None:
    message = only_problem(raw_dataset(schedule=expression))

    assert message.startswith(f"datasets.sales.schedule: {expression!r}")
    assert why in message


@pytest.mark.parametrize("expression", [None, 20, ["cron(0 20 * * ? *)"]])
def test_schedule_that_is_not_a_string_is_named(expression: Any) -> None:
    message = only_problem(raw_dataset(schedule=expression))

    assert message == f"datasets.sales.schedule: must be a string such as {DEFAULT_SCHEDULE!r}"


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 20 * * ? *)",
        "cron(15 10 ? * 6L 2024-2030)",
        "cron(0/15 * * * ? *)",
        "cron(0 8-18 ? * MON-FRI *)",
        "cron(59 23 L * ? *)",
        "cron(0 9 ? * 2#1 *)",
        "cron(0 0 1,15 * ? *)",
        " cron(0 20 * * ? *) ",
        "rate(1 minute)",
        "rate(5 minutes)",
        "rate(1 hour)",
        "rate(12 hours)",
        "rate(1 day)",
        "rate(7 days)",
        "at(2027-01-31T20:00:00)",
        "cron(0 0 ? JAN-MAR MON *)",
    ],
)
def test_valid_cron_and_rate_expressions_are_accepted(expression: str) -> None:
    assert schedule_problem(expression) is None
    assert parse_one(raw_dataset(schedule=expression)).schedule == expression


# ---- the whole document at once ------------------------------------------------------------------------------


def test_every_problem_of_every_dataset_is_reported_at_once() -> None:
    document = {
        "datasets": {
            "sales": raw_dataset(exlude=["*.tmp"], timezone="Nowhere/City", concurrency=0),
            "stock": {"source": {"bucket": ""}, "key_template": "{date}/{name}"},
            "fine": raw_dataset(),
        }
    }

    with pytest.raises(ConfigError) as info:
        parse_config(document)

    assert info.value.problems == [
        "datasets.sales.exlude: unknown field; did you mean 'exclude'?",
        "datasets.sales.timezone: 'Nowhere/City' is not an IANA time zone name (e.g. 'UTC', 'America/Chicago')",
        "datasets.sales.concurrency: must be between 1 and 1024, got 0",
        "datasets.stock.source.bucket: missing or empty; give the bucket name",
        'datasets.stock.target: missing; give {"bucket": ..., "prefix": ...}',
        "datasets.stock.key_template: must keep distinct source files distinct: use {path}, or {dir} with {name} "
        "(or {stem} and {ext})",
    ]
    assert str(info.value) == "invalid config:\n  - " + "\n  - ".join(info.value.problems)


def test_unknown_dataset_lists_the_known_names() -> None:
    config = parse_config({"datasets": {"beta": raw_dataset(), "alpha": raw_dataset()}})

    with pytest.raises(UnknownDataset) as info:
        config.dataset("gamma")

    assert isinstance(info.value, ConfigError)
    assert info.value.problems == [
        "dataset 'gamma' is not in the config (known datasets: alpha, beta); check the name or add it under 'datasets'"
    ]


def test_unknown_dataset_in_an_empty_config_says_none_are_known() -> None:
    with pytest.raises(UnknownDataset, match=r"known datasets: none"):
        ProcessConfig(datasets={}).dataset("sales")


# ---- serialising and reading back ----------------------------------------------------------------------------

ROUND_TRIP_CASES = {
    "defaults": raw_dataset(),
    "everything": raw_dataset(
        source={"bucket": "src-bucket", "prefix": "/données/été", "create": True},
        target={"bucket": "raw-bucket", "prefix": "landing"},
        key_template="{dataset}/{yyyy}/{mm}/{dd}/{run_id}/{dir}/{stem}{ext}",
        include=["*.csv", "reports/**"],
        exclude=["*.tmp", "_*"],
        timezone="Australia/Lord_Howe",
        concurrency=1,
        lock_ttl_seconds=7 * 24 * 3600,
        min_age_seconds=3600,
        multipart_threshold_bytes=5 * 1024**2,
        multipart_chunk_bytes=5 * 1024**3,
        batch_max_objects=100_000,
        batch_max_bytes=1,
        topic_arn="arn:aws:sns:eu-west-1:123456789012:ingest-alerts",
        schedule="cron(30 2 ? * MON-FRI *)",
    ),
    "same-bucket-disjoint": raw_dataset(
        source={"bucket": "shared-bucket", "prefix": "in"}, target={"bucket": "shared-bucket", "prefix": "inbox"}
    ),
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIP_CASES))
def test_to_dict_parses_back_to_an_equal_dataset(case: str) -> None:
    original = parse_one(ROUND_TRIP_CASES[case])

    again = parse_config(json.loads(json.dumps({"datasets": {NAME: original.to_dict()}}))).dataset(NAME)

    assert again == original
    assert again.to_dict() == original.to_dict()


def test_process_config_to_dict_round_trips_through_json_text() -> None:
    config = parse_config({"datasets": {name: raw for name, raw in ROUND_TRIP_CASES.items()}})

    again = parse_config_text(json.dumps(config.to_dict()))

    assert again == config


def test_to_dict_holds_normalised_prefixes_and_filled_defaults() -> None:
    written = parse_one(raw_dataset(source={"bucket": "src-bucket", "prefix": "/a/b"})).to_dict()

    assert written["source"] == {"bucket": "src-bucket", "prefix": "a/b/", "create": False}
    assert written["key_template"] == DEFAULT_KEY_TEMPLATE
    assert written["include"] == ["*"]
    assert written["schedule"] == DEFAULT_SCHEDULE
    assert "topic_arn" not in written


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{\n  "datasets": {\n    "sales": 1,\n  }\n}', "at line 4 column 3"),
        ('{"datasets": }', "at line 1 column 14"),
        ("", "at line 1 column 1"),
        ('{"datasets": {}}\n\nx', "at line 3 column 1"),
    ],
)
def test_invalid_json_text_names_origin_line_and_column(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, origin="s3://cfg-bucket/config/sales.json")

    [message] = info.value.problems
    assert message.startswith("s3://cfg-bucket/config/sales.json is not valid JSON: ")
    assert message.endswith(where)


def test_valid_json_text_is_validated_like_a_document() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(json.dumps({"datasets": {NAME: raw_dataset(timezone="Nowhere")}}))

    assert info.value.problems == [
        "datasets.sales.timezone: 'Nowhere' is not an IANA time zone name (e.g. 'UTC', 'America/Chicago')"
    ]


# ---- hostile JSON text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, id="arrays"),
        pytest.param('{"a": ' * 100_000 + "1" + "}" * 100_000, id="objects"),
        pytest.param(
            '{"datasets": {"sales": {"include": ' + "[" * 100_000 + "]" * 100_000 + "}}}", id="inside-a-field"
        ),
    ],
)
def test_deeply_nested_json_is_a_config_error_naming_the_origin(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, origin="deep.json")

    [message] = info.value.problems
    assert message.startswith("deep.json nests arrays or objects too deeply")
    assert "check that it is the process config" in message


def test_a_dataset_defined_twice_is_refused_naming_it() -> None:
    one = json.dumps(raw_dataset())
    text = '{"datasets": {"sales": ' + one + ', "stock": ' + one + ', "sales": ' + one + "}}"

    with pytest.raises(ConfigError) as info:
        parse_config_text(text, origin="config.json")

    assert info.value.problems == [
        "config.json: datasets.sales is given twice (JSON keeps only the last); remove or rename one of them"
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            '{"datasets": {"sales": {"source": {"bucket": "src-bucket", "bucket": "other-bucket"}, '
            '"target": {"bucket": "raw-bucket"}}}}',
            "datasets.sales.source.bucket",
        ),
        (
            '{"datasets": {"sales": {"source": {"bucket": "src-bucket"}, "target": {"bucket": "raw-bucket"}, '
            '"concurrency": 4, "concurrency": 8}}}',
            "datasets.sales.concurrency",
        ),
        ('{"datasets": {}, "datasets": {"sales": {}}}', "datasets"),
        ('{"datasets": {"sales": {"include": [{"x": 1, "x": 2}]}}}', "datasets.sales.include[0].x"),
    ],
)
def test_a_field_given_twice_at_any_level_is_refused_naming_its_path(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, origin="config.json")

    assert info.value.problems[0] == (
        f"config.json: {where} is given twice (JSON keeps only the last); remove or rename one of them"
    )


def test_a_duplicate_is_reported_beside_the_other_problems() -> None:
    text = '{"datasets": {"sales": {"source": {"bucket": "src-bucket"}, "timezone": "UTC", "timezone": "Nowhere"}}}'

    with pytest.raises(ConfigError) as info:
        parse_config_text(text, origin="config.json")

    assert info.value.problems == [
        "config.json: datasets.sales.timezone is given twice (JSON keeps only the last); remove or rename one of them",
        'datasets.sales.target: missing; give {"bucket": ..., "prefix": ...}',
        "datasets.sales.timezone: 'Nowhere' is not an IANA time zone name (e.g. 'UTC', 'America/Chicago')",
    ]


def test_an_inventory_section_is_read_with_its_prefix_as_a_folder() -> None:
    raw = {
        "source": {"bucket": "src-bucket", "prefix": "movielens/"},
        "target": {"bucket": "raw-bucket"},
        "inventory": {"bucket": "inventory-bucket", "prefix": "inventory/src-bucket/daily-csv", "sorted": True},
    }
    dataset = parse_config({"datasets": {"movielens": raw}}).dataset("movielens")

    assert (dataset.inventory.bucket, dataset.inventory.prefix) == (
        "inventory-bucket",
        "inventory/src-bucket/daily-csv/",
    )
    assert dataset.inventory_sorted is True
    again = parse_config({"datasets": {"movielens": dataset.to_dict()}}).dataset("movielens")
    assert again == dataset


@pytest.mark.parametrize(
    ("inventory", "expected"),
    [
        ({"prefix": "inventory/x/"}, "datasets.movielens.inventory.bucket: missing"),
        ({"bucket": "inventory-bucket"}, "datasets.movielens.inventory.prefix: missing"),
        ({"bucket": "Bad_Bucket", "prefix": "p/"}, "datasets.movielens.inventory.bucket:"),
        ({"bucket": 5, "prefix": "p/"}, "datasets.movielens.inventory.bucket: must be a non-empty string"),
        ({"bucket": "inventory-bucket", "prefix": "p/", "sortd": True}, "inventory.sortd: unknown field; did you mean"),
        ({"bucket": "inventory-bucket", "prefix": "p/", "sorted": "yes"}, "inventory.sorted: must be true or false"),
        ("s3://inventory-bucket/p/", "datasets.movielens.inventory: must be an object"),
    ],
)
def test_a_bad_inventory_section_names_the_field_and_the_fix(inventory: Any, expected: str) -> None:
    raw = {"source": {"bucket": "src-bucket"}, "target": {"bucket": "raw-bucket"}, "inventory": inventory}

    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_config({"datasets": {"movielens": raw}})
