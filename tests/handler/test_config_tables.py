"""The `tables` field: its three forms, the `{table}` default layout, and every way a table can be written wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handler.columns import Column, Table
from handler.config import DatasetConfig, parse_config, with_overrides
from handler.errors import ConfigError
from handler.templates import DEFAULT_KEY_TEMPLATE, DEFAULT_TABLE_KEY_TEMPLATE
from tests.conftest import REPO

NAME = "movielens"
RATINGS = {
    "pattern": "ratings*.csv",
    "columns": [
        {"name": "userId", "type": "bigint"},
        {"name": "movieId", "type": "bigint"},
        {"name": "rating", "type": "double"},
        {"name": "timestamp", "type": "bigint", "comment": "seconds since 1970"},
    ],
}


def raw_dataset(**fields: Any) -> dict[str, Any]:
    return {
        "source": {"bucket": "src-bucket", "prefix": "in/"},
        "target": {"bucket": "raw-bucket", "prefix": "ml/"},
        **fields,
    }


def parse_one(raw: dict[str, Any]) -> DatasetConfig:
    return parse_config({"datasets": {NAME: raw}}).dataset(NAME)


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({"datasets": {NAME: raw}})
    return info.value.problems


def only_problem(raw: dict[str, Any]) -> str:
    found = problems(raw)
    assert len(found) == 1, found
    return found[0]


def table_problem(spec: Any, name: str = "ratings") -> str:
    return only_problem(raw_dataset(tables={name: spec}))


# ---- the forms -----------------------------------------------------------------------------------------------


def test_a_pattern_a_list_of_patterns_and_a_description_are_all_tables() -> None:
    ds = parse_one(
        raw_dataset(tables={"movies": "movies*.csv", "tags": ["tags.csv", "tags-*.csv"], "ratings": RATINGS})
    )

    assert ds.tables == (
        Table("movies", ("movies*.csv",)),
        Table(
            "ratings",
            ("ratings*.csv",),
            (
                Column("userId", "bigint"),
                Column("movieId", "bigint"),
                Column("rating", "double"),
                Column("timestamp", "bigint", "seconds since 1970"),
            ),
        ),
        Table("tags", ("tags.csv", "tags-*.csv")),
    )
    assert [t.described for t in ds.tables] == [False, True, False]
    assert ds.table_patterns == (
        ("movies", ("movies*.csv",)),
        ("ratings", ("ratings*.csv",)),
        ("tags", ("tags.csv", "tags-*.csv")),
    )


def test_tables_are_held_by_name_so_the_order_of_the_object_changes_nothing() -> None:
    # The stack writes config objects with sorted keys and Pulumi sorts its config: no order can mean anything.
    tables = {"tags": "tags*.csv", "ratings": RATINGS, "movies": "movies*.csv"}

    in_order = parse_one(raw_dataset(tables=tables))
    reversed_ = parse_one(raw_dataset(tables=dict(reversed(tables.items()))))

    assert in_order == reversed_
    assert [t.name for t in in_order.tables or ()] == ["movies", "ratings", "tags"]


def test_a_dataset_with_tables_lands_a_folder_per_table_by_default() -> None:
    assert parse_one(raw_dataset(tables={"movies": "movies*.csv"})).key_template == DEFAULT_TABLE_KEY_TEMPLATE
    assert DEFAULT_TABLE_KEY_TEMPLATE == "{table}/ingest_date={date}/{path}"
    assert parse_one(raw_dataset()).key_template == DEFAULT_KEY_TEMPLATE
    assert parse_one(raw_dataset()).tables is None


def test_an_explicit_template_with_table_is_kept() -> None:
    ds = parse_one(
        raw_dataset(tables={"movies": "movies*.csv"}, key_template="{dataset}/{table}/ingest_date={date}/{name}/{path}")
    )

    assert ds.key_template == "{dataset}/{table}/ingest_date={date}/{name}/{path}"


def test_the_written_config_reads_back_to_an_equal_dataset() -> None:
    ds = parse_one(
        raw_dataset(
            tables={
                "movies": "movies*.csv",
                "ratings": RATINGS,
                "events": {
                    "pattern": ["events/*.json"],
                    "format": "json",
                    "columns": [{"name": "id", "type": "string"}],
                },
                "links": {
                    "pattern": "links*.csv",
                    "quoted": False,
                    "header": False,
                    "delimiter": "\t",
                    "columns": [{"name": "tmdbId", "type": "bigint"}],
                },
            }
        )
    )

    written = ds.to_dict()

    assert written["tables"]["movies"] == ["movies*.csv"]
    assert written["tables"]["ratings"]["columns"][3] == {
        "name": "timestamp",
        "type": "bigint",
        "comment": "seconds since 1970",
    }
    assert written["key_template"] == DEFAULT_TABLE_KEY_TEMPLATE
    assert parse_config({"datasets": {NAME: written}}).dataset(NAME) == ds


def test_a_dataset_without_tables_writes_none() -> None:
    assert "tables" not in parse_one(raw_dataset()).to_dict()


# ---- the template and the tables must fit ----------------------------------------------------------------------


def test_table_placeholder_without_tables_is_refused_naming_the_template() -> None:
    message = only_problem(raw_dataset(key_template="{table}/ingest_date={date}/{path}"))

    assert message.startswith("datasets.movielens.key_template: '{table}/ingest_date={date}/{path}' uses {table}")
    assert "add tables or remove {table}" in message


def test_tables_with_a_template_without_table_are_refused_naming_tables() -> None:
    message = only_problem(raw_dataset(tables={"movies": "movies*.csv"}, key_template=DEFAULT_KEY_TEMPLATE))

    assert message.startswith(
        "datasets.movielens.tables: key_template '{dir}/ingest_date={date}/{name}' has no {table}"
    )
    assert DEFAULT_TABLE_KEY_TEMPLATE in message


def test_table_in_place_of_dir_does_not_make_same_named_files_distinct() -> None:
    # `{table}` and `{name}` alone would land `a/ratings.csv` and `b/ratings.csv` on one key.
    message = only_problem(
        raw_dataset(tables={"ratings": "*ratings.csv"}, key_template="{table}/ingest_date={date}/{name}")
    )

    assert message.startswith("datasets.movielens.key_template: must keep distinct source files distinct")


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{dir}/{table}/ingest_date={date}/{name}", "hold {dir}, which differ from file to file"),
        ("{table}/{yyyy}/{mm}/{dd}/{path}", "no 'ingest_date={date}' folder"),
        ("ingest_date={date}/{table}/{path}", "{table} is not among the folders before 'ingest_date={date}'"),
    ],
)
def test_a_described_table_needs_one_location_above_its_partitions(template: str, why: str) -> None:
    message = only_problem(raw_dataset(tables={"ratings": RATINGS}, key_template=template))

    assert message.startswith(
        f"datasets.movielens.tables.ratings.columns: the table is described, but key_template {template!r}"
    )
    assert why in message


def test_an_undescribed_table_may_use_any_template_with_table() -> None:
    ds = parse_one(
        raw_dataset(tables={"ratings": "ratings*.csv"}, key_template="{dir}/{table}/{yyyy}/{mm}/{dd}/{name}")
    )

    assert ds.key_template == "{dir}/{table}/{yyyy}/{mm}/{dd}/{name}"


def test_patterns_that_overlap_on_an_ordinary_key_are_refused() -> None:
    message = only_problem(raw_dataset(tables={"csv": "*.csv", "everything": "*"}))

    assert message.startswith("datasets.movielens.tables: an ordinary key such as 'a.csv' would fail: ambiguous table:")
    assert "'csv' ('*.csv'), 'everything' ('*')" in message


def test_two_datasets_whose_tables_would_share_a_catalog_name_are_refused() -> None:
    described = {"pattern": "*.csv", "columns": [{"name": "id", "type": "bigint"}]}
    datasets = {
        "web-logs": raw_dataset(tables={"daily": described}),
        "web_logs": {**raw_dataset(tables={"daily": described}), "source": {"bucket": "other-src"}},
    }

    with pytest.raises(ConfigError) as info:
        parse_config({"datasets": datasets})

    assert info.value.problems == [
        "datasets.web_logs.tables.daily: its catalog table would be named 'web_logs_daily', as "
        "datasets.web-logs.tables.daily's is; rename one of them"
    ]


def test_overriding_the_template_checks_it_against_the_tables() -> None:
    ds = parse_one(raw_dataset())

    with pytest.raises(ConfigError) as info:
        with_overrides(ds, key_template="{table}/ingest_date={date}/{path}")

    assert info.value.problems[0].startswith("key_template: '{table}/ingest_date={date}/{path}' uses {table}")
    tabled = parse_one(raw_dataset(tables={"ratings": "ratings*.csv"}))
    assert with_overrides(tabled, key_template="{table}/{date}/{path}").key_template == "{table}/{date}/{path}"


# ---- names, patterns and fields ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Ratings", "user-ratings", "1ratings", "_ratings", "r" * 65, ""])
def test_a_table_name_unfit_for_folders_and_athena_is_refused(name: str) -> None:
    assert table_problem("ratings*.csv", name=name) == (
        f"datasets.movielens.tables.{name}: a table name must be 1-64 lowercase letters, digits or '_', starting "
        "with a letter (it names the table's folder and its Athena table)"
    )


@pytest.mark.parametrize("value", ["ratings*.csv", ["ratings.csv"]])
def test_tables_that_are_not_an_object_are_refused_with_an_example(value: Any) -> None:
    assert only_problem(raw_dataset(tables=value)) == (
        "datasets.movielens.tables: must be an object of table name -> glob pattern(s) or table description, "
        'e.g. {"ratings": "ratings*.csv"}'
    )


def test_an_empty_tables_object_is_refused() -> None:
    assert only_problem(raw_dataset(tables={})).startswith("datasets.movielens.tables: an empty object names no table")


@pytest.mark.parametrize("spec", ["", [], [""], ["ok*.csv", 3], {"pattern": []}])
def test_a_table_needs_non_empty_patterns(spec: Any) -> None:
    message = table_problem(spec)

    assert message.startswith("datasets.movielens.tables.ratings")
    assert message.endswith('must be a glob pattern or a non-empty list of them, e.g. "ratings*.csv"')


def test_a_table_object_needs_its_pattern() -> None:
    assert table_problem({"columns": RATINGS["columns"]}).startswith(
        "datasets.movielens.tables.ratings.pattern: missing"
    )


def test_a_table_that_is_neither_pattern_nor_object_is_refused() -> None:
    assert table_problem(3).startswith(
        "datasets.movielens.tables.ratings: must be a glob pattern, a list of them, or an object"
    )


def test_a_misspelt_table_field_gets_a_did_you_mean() -> None:
    assert table_problem({**RATINGS, "colums": []}) == (
        "datasets.movielens.tables.ratings.colums: unknown field; did you mean 'columns'?"
    )


def test_reading_options_without_columns_are_refused_naming_columns() -> None:
    message = table_problem({"pattern": "ratings*.csv", "format": "csv", "header": True})

    assert message.startswith("datasets.movielens.tables.ratings.columns: missing; format, header describe a table")


@pytest.mark.parametrize(("field", "value"), [("header", "yes"), ("quoted", 1)])
def test_csv_switches_must_be_booleans(field: str, value: Any) -> None:
    assert (
        table_problem({**RATINGS, field: value}) == f"datasets.movielens.tables.ratings.{field}: must be true or false"
    )


@pytest.mark.parametrize("value", ["", ",,", 1])
def test_a_delimiter_is_one_character(value: Any) -> None:
    assert table_problem({**RATINGS, "delimiter": value}).startswith(
        "datasets.movielens.tables.ratings.delimiter: must be one character"
    )


def test_an_unknown_format_is_refused_listing_the_known() -> None:
    assert table_problem({**RATINGS, "format": "avro"}) == (
        "datasets.movielens.tables.ratings.format: 'avro' is not one of csv, json, parquet"
    )


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_csv_options_on_another_format_are_refused(fmt: str) -> None:
    assert table_problem({**RATINGS, "format": fmt, "header": True}) == (
        "datasets.movielens.tables.ratings.header: only a csv table has it"
    )


# ---- columns -------------------------------------------------------------------------------------------------


def test_columns_as_an_object_are_refused_because_objects_have_no_order() -> None:
    message = table_problem({"pattern": "r.csv", "columns": {"userId": "bigint", "movieId": "bigint"}})

    assert message == (
        'datasets.movielens.tables.ratings.columns: must be a non-empty list of {"name": ..., "type": ...} in the '
        "order of the file's fields"
    )


def test_each_bad_column_is_named_by_its_place() -> None:
    columns = [
        {"name": "userId", "type": "bigint"},
        {"name": "user id", "type": "bigint"},
        {"name": "USERID", "type": "bigint"},
        {"name": "ingest_date", "type": "string"},
        {"name": "rating", "type": "float"},
        {"name": "tag", "typ": "string"},
        "movieId bigint",
    ]

    found = problems(raw_dataset(tables={"ratings": {"pattern": "r.csv", "columns": columns}}))

    assert found == [
        "datasets.movielens.tables.ratings.columns[1].name: must be letters, digits or '_', not starting with a "
        "digit, got 'user id'",
        "datasets.movielens.tables.ratings.columns[2].name: 'USERID' is also column 0 (names ignore case)",
        "datasets.movielens.tables.ratings.columns[3].name: 'ingest_date' is the partition column every table gets "
        "from its folders; rename it",
        "datasets.movielens.tables.ratings.columns[4].type: 'float': a quoted csv table (OpenCSVSerde) reads only "
        "string, boolean, int, bigint, double; declare it string and CAST it in a query, or set quoted: false if "
        "the files never quote a field",
        "datasets.movielens.tables.ratings.columns[5].typ: unknown field; did you mean 'type'?",
        "datasets.movielens.tables.ratings.columns[5].type: must be a Hive type name (string, boolean, tinyint, "
        "smallint, int, bigint, float, double, date, timestamp, decimal(p,s), ...), got None",
        'datasets.movielens.tables.ratings.columns[6]: must be an object {"name": ..., "type": ...}',
    ]


@pytest.mark.parametrize(
    "kind", ["float", "date", "timestamp", "decimal(10,2)", "varchar(20)", "array<string>", "struct<a:int,b:string>"]
)
def test_any_hive_type_is_accepted_where_the_serde_reads_it(kind: str) -> None:
    unquoted = {"pattern": "r.csv", "quoted": False, "columns": [{"name": "x", "type": kind}]}
    as_json = {"pattern": "r.json", "format": "json", "columns": [{"name": "x", "type": kind}]}

    ds = parse_one(raw_dataset(tables={"csv": unquoted, "events": as_json}))

    assert [t.columns[0].type for t in ds.tables or ()] == [kind, kind]


def test_a_type_that_is_not_hive_gets_a_did_you_mean() -> None:
    spec = {"pattern": "r.json", "format": "json", "columns": [{"name": "x", "type": "bigitn"}]}

    assert table_problem(spec) == (
        "datasets.movielens.tables.ratings.columns[0].type: 'bigitn' is not a Hive type; did you mean 'bigint'?"
    )


def test_the_readme_config_example_is_a_valid_config_with_a_table_per_kind() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = json.loads(readme.split("```json\n", 1)[1].split("```", 1)[0])

    ds = parse_config(example).dataset(NAME)

    assert [(t.name, t.described) for t in ds.tables or ()] == [
        ("links", False),
        ("movies", True),
        ("ratings", True),
        ("tags", False),
    ]
    assert ds.key_template == DEFAULT_TABLE_KEY_TEMPLATE


# ---- schema contracts: on_schema_drift and check_schema ------------------------------------------------------


@pytest.mark.parametrize("policy", ["land", "quarantine", "fail"])
def test_a_described_table_names_what_schema_drift_does_and_writes_it_back(policy: str) -> None:
    ds = parse_one(raw_dataset(tables={"ratings": {**RATINGS, "on_schema_drift": policy}}))

    (table,) = ds.tables or ()
    assert table.on_schema_drift == policy
    assert parse_config(json.loads(json.dumps({"datasets": {NAME: ds.to_dict()}}))).dataset(NAME) == ds
    written = ds.to_dict()["tables"]["ratings"]
    assert written.get("on_schema_drift", "quarantine") == policy


def test_schema_drift_quarantines_by_default_and_schema_is_checked_by_default() -> None:
    ds = parse_one(raw_dataset(tables={"ratings": RATINGS}))

    assert (ds.tables or ())[0].on_schema_drift == "quarantine"
    assert ds.check_schema is True
    assert parse_one(raw_dataset(tables={"ratings": RATINGS}, check_schema=False)).check_schema is False


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (
            {**RATINGS, "on_schema_drift": "drop"},
            ".ratings.on_schema_drift: 'drop' is not one of land, quarantine, fail",
        ),
        (
            {**RATINGS, "format": "parquet", "on_schema_drift": "fail", "columns": [{"name": "a", "type": "int"}]},
            ".ratings.on_schema_drift: parquet files are not checked against their columns; leave it out",
        ),
        (
            {"pattern": "ratings*.csv", "on_schema_drift": "fail"},
            ".ratings.columns: missing; on_schema_drift describe a table the stack creates, which needs its columns "
            "(or give only the pattern)",
        ),
    ],
)
def test_a_wrong_on_schema_drift_fails_the_config_naming_the_field(spec: dict[str, Any], problem: str) -> None:
    assert table_problem(spec) == f"datasets.{NAME}.tables{problem}"


def test_check_schema_must_be_true_or_false() -> None:
    assert only_problem(raw_dataset(check_schema="no")) == f"datasets.{NAME}.check_schema: must be true or false"


@pytest.mark.parametrize("catch_all", ["*", "**", "*.csv", "rat*"])
def test_a_catch_all_beside_a_specific_table_is_refused_naming_both_and_what_to_do(catch_all: str) -> None:
    message = only_problem(raw_dataset(tables={"all": catch_all, "ratings": "ratings*.csv"}))

    assert message.startswith(
        f"datasets.movielens.tables: 'all' ({catch_all!r}) and 'ratings' ('ratings*.csv') overlap: a key such as "
        "'ratings.csv' matches both"
    )
    assert "make the patterns disjoint" in message
    assert "'_unmatched' folder" in message


def test_overlap_is_found_in_any_pattern_of_a_list_and_in_either_direction() -> None:
    message = only_problem(raw_dataset(tables={"movies": ["movies.csv", "links.csv"], "misc": "*s.csv"}))

    assert "'misc' ('*s.csv') and 'movies' ('movies.csv') overlap: a key such as 'movies.csv'" in message


def test_disjoint_patterns_pass_and_the_check_works_on_overrides_too() -> None:
    ds = parse_one(raw_dataset(tables={"movies": "movies*.csv", "ratings": "ratings*.csv", "tags": "tags-[0-9].csv"}))

    with pytest.raises(ConfigError) as info:
        with_overrides(ds, tables={"everything": "*", "movies": "movies*.csv"})
    assert info.value.problems[0].startswith("tables: 'everything' ('*') and 'movies' ('movies*.csv') overlap")
