"""STACK_SETTINGS is the one table of stack keys: the dataclasses, the reader, the checks and the docs follow it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from handler.config import parse_config
from handler.settings import REQUIRED, Setting
from infra.stack_config import (
    KEYS,
    STACK_SETTINGS,
    FunctionSettings,
    StackConfig,
    StackConfigError,
    WorkflowSettings,
    parse_stack_config,
    stack_keys_markdown,
)
from tests.handler.doc_tables import ROOT, table_lines, table_rows

DEPLOY_HEADER = "| Key | Default | Range | Meaning |"
PLAIN = [s for s in STACK_SETTINGS if s.type not in (list, dict)]
RANGED = [s for s in STACK_SETTINGS if s.low is not None]
GROUPS = {"function": FunctionSettings, "workflow": WorkflowSettings}
DATASETS = {
    "exports": {
        "source": {"bucket": "acme-landing", "prefix": "exports/"},
        "target": {"bucket": "acme-raw", "prefix": "exports/"},
    }
}


def deploy_doc() -> str:
    return (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")


def values(**overrides: Any) -> dict[str, Any]:
    return {"rawBucket": "acme-raw", "configBucket": "acme-config", "datasets": json.dumps(DATASETS), **overrides}


def built(setting: Setting, value: Any) -> StackConfig:
    """A StackConfig built in code with this one setting's field set to `value`."""
    group, _, name = setting.path.rpartition(".")
    field = {group: GROUPS[group](**{name: value})} if group else {name: value}
    return StackConfig(
        raw_bucket="acme-raw", config_bucket="acme-config", datasets=parse_config({"datasets": DATASETS}), **field
    )


# ---- docs/deploy.md ------------------------------------------------------------------------------------------


def test_deploy_doc_rows_are_the_table_rows_key_for_key() -> None:
    expected = [[f"`{s.name}`", s.default_text(), s.range_text(), s.doc] for s in STACK_SETTINGS]

    rows = table_rows(deploy_doc(), DEPLOY_HEADER)

    assert rows[0][0] == "`aws:region`"  # the provider's key, documented beside this project's
    assert rows[1:] == expected


def test_deploy_doc_holds_exactly_the_rendered_table() -> None:
    rendered = stack_keys_markdown()

    assert "\n".join(table_lines(deploy_doc(), DEPLOY_HEADER)) == rendered, (
        "docs/deploy.md's stack config table is not what STACK_SETTINGS renders; replace it with:\n" + rendered
    )


# ---- the dataclasses and the keys ----------------------------------------------------------------------------


def test_every_plain_dataclass_field_is_one_table_row_and_takes_its_default() -> None:
    defaults: dict[str, Any] = {}
    for group, cls in (("", StackConfig), *GROUPS.items()):
        for f in dataclasses.fields(cls):
            if f.name not in (*GROUPS, "datasets", "subscriptions", "tags", "lineage"):
                defaults[f"{group}.{f.name}" if group else f.name] = f.default
    rows = {s.path: s for s in PLAIN}

    assert set(defaults) == set(rows)
    for path, default in defaults.items():
        if rows[path].default is not REQUIRED:
            assert default == rows[path].default, path


def test_the_known_keys_are_the_table_keys() -> None:
    assert list(KEYS) == [s.name for s in STACK_SETTINGS]
    assert KEYS["lambdaMemoryMb"] == "int"
    assert KEYS["toleratedFailurePercentage"] == "number"
    assert KEYS["datasets"] == "json"


@pytest.mark.parametrize("setting", [s for s in PLAIN if s.default is not REQUIRED], ids=lambda s: s.name)
def test_every_default_passes_its_own_check(setting: Setting) -> None:
    assert setting.problems(setting.default) == []


# ---- the reader and the checks -------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", RANGED, ids=lambda s: s.name)
def test_a_stack_config_enforces_the_table_range(setting: Setting) -> None:
    # One copy step at a time is the only mapConcurrency a reserved concurrency of 1 can serve.
    low_map = {"mapConcurrency": "1"} if setting.name == "lambdaReservedConcurrency" else {}
    for value in (setting.low, setting.high):
        config = parse_stack_config(values(**{setting.name: str(value)}, **low_map))
        assert setting.read(config) == value

    bad = setting.high + 1
    with pytest.raises(StackConfigError) as info:
        parse_stack_config(values(**{setting.name: str(bad)}))
    [problem] = info.value.problems
    assert problem.startswith(f"data-file-ingestion:{setting.name}: ")
    if not setting.choices:
        assert problem.endswith(f"must be between {setting.low:g} and {setting.high:g}, got {bad:g}")


@pytest.mark.parametrize("setting", RANGED, ids=lambda s: s.name)
def test_a_stack_config_built_in_code_gets_the_same_range_check(setting: Setting) -> None:
    bad = setting.high + 1
    with pytest.raises(StackConfigError) as in_code:
        built(setting, bad)
    with pytest.raises(StackConfigError) as from_stack:
        parse_stack_config(values(**{setting.name: str(bad)}))

    assert in_code.value.problems == from_stack.value.problems


def test_a_reserved_concurrency_below_one_cannot_be_built_in_code() -> None:
    # It used to be checked only when read from the stack.
    with pytest.raises(StackConfigError, match="lambdaReservedConcurrency: must be between 1 and 100000, got 0"):
        built(next(s for s in STACK_SETTINGS if s.name == "lambdaReservedConcurrency"), 0)


def test_force_destroy_that_is_not_a_boolean_cannot_be_built_in_code() -> None:
    with pytest.raises(StackConfigError, match="forceDestroyBuckets: must be true or false"):
        built(next(s for s in STACK_SETTINGS if s.name == "forceDestroyBuckets"), "yes")


@pytest.mark.parametrize("name", ["rawBucket", "configBucket"])
def test_a_required_key_given_as_null_is_reported_missing(name: str) -> None:
    # Regression: a key present with no value raised StackConfigError with no problem listed at all.
    with pytest.raises(StackConfigError) as info:
        parse_stack_config({**values(), name: None})

    assert info.value.problems == [
        f"data-file-ingestion:{name}: missing; set it with `pulumi config set {name} <value>`"
    ]


def test_datasets_given_as_null_are_reported_missing() -> None:
    with pytest.raises(StackConfigError) as info:
        parse_stack_config({**values(), "datasets": None})

    [problem] = info.value.problems
    assert problem.startswith("data-file-ingestion:datasets: missing; set it to an object of dataset name")


def test_an_out_of_range_map_concurrency_is_not_also_compared_with_the_reserved_concurrency() -> None:
    # Regression: the reader replaced the bad value by the default 10, then reported 5 as below that 10.
    with pytest.raises(StackConfigError) as info:
        parse_stack_config(values(mapConcurrency="0", lambdaReservedConcurrency="5"))

    assert info.value.problems == ["data-file-ingestion:mapConcurrency: must be between 1 and 10000, got 0"]


def test_the_log_level_is_read_in_any_case_and_held_upper_case() -> None:
    assert parse_stack_config(values(workflowLogLevel=" all ")).workflow.log_level == "ALL"
    with pytest.raises(StackConfigError, match="workflowLogLevel: 'all' must be ALL or ERROR"):
        built(next(s for s in STACK_SETTINGS if s.name == "workflowLogLevel"), "all")
