"""DATASET_FIELDS is the one table of dataset fields: the dataclass, the parser and the README all follow it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from handler.config import DATASET_FIELDS, DatasetConfig, Location, parse_config
from handler.errors import ConfigError
from handler.settings import REQUIRED, Setting, markdown_table
from tests.handler.doc_tables import ROOT, table_lines, table_rows

README_HEADER = "| field | default | range | meaning |"
PLAIN = {s.path: s for s in DATASET_FIELDS if "." not in s.path}
RANGED = [s for s in DATASET_FIELDS if s.low is not None]


def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def minimal(**overrides: Any) -> dict[str, Any]:
    return {"source": {"bucket": "src-bucket"}, "target": {"bucket": "raw-bucket"}, **overrides}


# ---- the README ----------------------------------------------------------------------------------------------


def test_readme_rows_are_the_table_rows_field_for_field() -> None:
    expected = [[f"`{s.name}`", s.default_text(), s.range_text(), s.doc] for s in DATASET_FIELDS]

    assert table_rows(readme(), README_HEADER) == expected


def test_readme_holds_exactly_the_rendered_table() -> None:
    rendered = markdown_table(DATASET_FIELDS)

    assert "\n".join(table_lines(readme(), README_HEADER)) == rendered, (
        "README.md's field table is not what DATASET_FIELDS renders; replace it with:\n" + rendered
    )


def test_defaults_and_ranges_are_written_in_their_units() -> None:
    shown = {s.name: (s.default_text(), s.range_text()) for s in DATASET_FIELDS}

    assert shown["source.bucket"] == ("required", "")
    assert shown["source.prefix"] == ('`""`', "")
    assert shown["source.create"] == ("`false`", "")
    assert shown["include"] == ('`["*"]`', "")
    assert shown["timezone"] == ("`UTC`", "")
    assert shown["topic_arn"] == ("none", "")
    assert shown["source.kms_key_arn"] == shown["inventory.kms_key_arn"] == ("none", "")
    assert shown["concurrency"] == ("32", "1 to 1024")
    assert shown["lock_ttl_seconds"] == ("900", "1 to 7 days")
    assert shown["multipart_threshold_bytes"] == ("256 MiB", "5 MiB to 5 GiB")
    assert shown["batch_max_bytes"] == ("100 GiB", "1 to 5 TiB")


# ---- the dataclass -------------------------------------------------------------------------------------------


def test_every_dataset_config_field_is_one_table_row_and_takes_its_default() -> None:
    fields = {f.name: f for f in dataclasses.fields(DatasetConfig) if f.name not in ("name", "source", "target")}

    assert set(fields) == set(PLAIN)
    for name, field in fields.items():
        assert field.default == PLAIN[name].default, name


def test_both_locations_have_their_bucket_and_prefix_rows() -> None:
    names = {s.name for s in DATASET_FIELDS}
    for which in ("source", "target"):
        assert {f"{which}.{f.name}" for f in dataclasses.fields(Location)} <= names


def test_names_are_unique_and_the_table_is_made_of_settings() -> None:
    names = [s.name for s in DATASET_FIELDS]

    assert len(names) == len(set(names))
    assert all(isinstance(s, Setting) for s in DATASET_FIELDS)


# ---- the parser ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", [s for s in DATASET_FIELDS if s.default is not REQUIRED], ids=lambda s: s.name)
def test_every_default_passes_its_own_check(setting: Setting) -> None:
    default = list(setting.default) if isinstance(setting.default, tuple) else setting.default

    assert setting.problems(default) == []


def test_a_minimal_dataset_is_written_back_with_every_table_default() -> None:
    written = parse_config({"datasets": {"sales": minimal()}}).dataset("sales").to_dict()

    for setting in DATASET_FIELDS:
        if setting.default in (REQUIRED, None) or setting.name.startswith("inventory."):
            continue
        parent, _, leaf = setting.name.rpartition(".")
        value = (written[parent] if parent else written)[leaf]
        assert value == (list(setting.default) if isinstance(setting.default, tuple) else setting.default)
    assert "topic_arn" not in written
    assert "inventory" not in written, "no inventory section: the dataset is listed, and says nothing about reports"


@pytest.mark.parametrize("setting", RANGED, ids=lambda s: s.name)
def test_the_parser_enforces_the_table_range(setting: Setting) -> None:
    for value in (setting.low, setting.high):
        ds = parse_config({"datasets": {"sales": minimal(**{setting.name: value})}}).dataset("sales")
        assert setting.read(ds) == value
    with pytest.raises(ConfigError) as info:
        parse_config({"datasets": {"sales": minimal(**{setting.name: setting.high + 1})}})
    assert info.value.problems == [
        f"datasets.sales.{setting.name}: must be between {setting.low} and {setting.high}, got {setting.high + 1}"
    ]
