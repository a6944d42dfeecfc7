"""with_overrides: a field replaced from outside the config (a CLI option) passes the config's own checks."""

from __future__ import annotations

from typing import Any

import pytest

from handler.config import DATASET_FIELDS, DatasetConfig, parse_config, with_overrides
from handler.errors import ConfigError
from handler.settings import Setting

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ingest"
PLAIN = [s for s in DATASET_FIELDS if "." not in s.path]


def dataset(**fields: Any) -> DatasetConfig:
    raw = {"source": {"bucket": "src-bucket"}, "target": {"bucket": "raw-bucket"}, **fields}
    return parse_config({"datasets": {"sales": raw}}).dataset("sales")


def override_problems(ds: DatasetConfig, **fields: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        with_overrides(ds, **fields)
    return info.value.problems


def test_concurrency_beyond_the_config_range_is_refused_naming_the_field() -> None:
    assert override_problems(dataset(), concurrency=5000) == ["concurrency: must be between 1 and 1024, got 5000"]


@pytest.mark.parametrize("value", [0, -1])
def test_concurrency_below_the_range_is_refused(value: int) -> None:
    assert override_problems(dataset(), concurrency=value) == [f"concurrency: must be between 1 and 1024, got {value}"]


@pytest.mark.parametrize("value", ["8", True, 8.0, None])
def test_concurrency_that_is_not_a_whole_number_is_refused(value: Any) -> None:
    assert override_problems(dataset(), concurrency=value) == [
        f"concurrency: must be a whole number between 1 and 1024, got {value!r}"
    ]


def test_a_valid_override_replaces_only_that_field() -> None:
    original = dataset(timezone="Europe/Berlin")

    changed = with_overrides(original, concurrency=1024, topic_arn=TOPIC)

    assert (changed.concurrency, changed.topic_arn) == (1024, TOPIC)
    assert changed.timezone == "Europe/Berlin"
    assert (original.concurrency, original.topic_arn) == (32, None)


def test_no_overrides_gives_an_equal_dataset() -> None:
    assert with_overrides(dataset()) == dataset()


def test_topic_arn_is_checked_and_none_clears_it() -> None:
    assert override_problems(dataset(), topic_arn="my-topic") == [
        "topic_arn: must be an SNS topic ARN (arn:aws:sns:...) or omitted"
    ]
    assert with_overrides(dataset(topic_arn=TOPIC), topic_arn=None).topic_arn is None


def test_every_problem_is_reported_at_once() -> None:
    assert override_problems(dataset(), concurrency=0, timezone="Mars/Base", create_source="yes") == [
        "concurrency: must be between 1 and 1024, got 0",
        "timezone: 'Mars/Base' is not an IANA time zone name (e.g. 'UTC', 'America/Chicago')",
        "source.create: must be true or false",
    ]


def test_patterns_may_be_given_as_a_list_or_a_tuple_and_are_held_as_a_tuple() -> None:
    assert with_overrides(dataset(), include=["*.csv"]).include == ("*.csv",)
    assert with_overrides(dataset(), exclude=("*.tmp",)).exclude == ("*.tmp",)
    assert override_problems(dataset(), include=()) == [
        "include: an empty list would include nothing; omit it to include everything"
    ]


@pytest.mark.parametrize("name", ["source", "target", "name", "concurency", "source.create"])
def test_a_name_that_is_not_an_overridable_field_is_a_programming_error(name: str) -> None:
    with pytest.raises(TypeError, match="cannot be overridden"):
        with_overrides(dataset(), **{name: 1})


@pytest.mark.parametrize("setting", [s for s in PLAIN if s.low is not None], ids=lambda s: s.name)
def test_each_ranged_field_is_refused_with_the_message_a_config_file_gets(setting: Setting) -> None:
    bad = setting.high + 1
    with pytest.raises(ConfigError) as in_file:
        dataset(**{setting.name: bad})

    assert override_problems(dataset(), **{setting.path: bad}) == [
        p.removeprefix("datasets.sales.") for p in in_file.value.problems
    ]


def test_a_key_template_override_is_rendered_like_the_config_s_own() -> None:
    [message] = override_problems(dataset(), key_template="{dir}/../{date}/{name}")

    assert message.startswith("key_template: '{dir}/../{date}/{name}' cannot land ordinary files")
