"""README "Query it": every DuckDB query it shows, run over s3:// against what the CLI landed on moto's server.

The dataset is the dev stack's MovieLens dataset (its `tables` from Pulumi.dev.yaml), landed on two nights by
`python -m handler run`; the files are the real ml-latest-small when /work/shared has it, else generated ones
with the same names, headers, CRLF line ends and a quoted title with a comma. Each query is written here once,
exactly as README shows it, and the test fails if README does not hold it word for word.
"""

from __future__ import annotations

import csv
import importlib.util
import io
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from handler.demo import sample_movielens
from tests.conftest import REPO
from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    REGION,
    Stage,
    moto_server_fixture,
    new_stage,
    one_json,
)

MOVIELENS = REPO.parent / "shared" / "data" / "ml-latest-small"
KINDS = ("ratings.csv", "movies.csv", "tags.csv", "links.csv")
README_BUCKET = "movielens-raw"
NIGHT_1, NIGHT_2 = "2026-11-27", "2026-11-28"
LATE_RATINGS = b"userId,movieId,rating,timestamp\n1,1,4.5,1700000000\n2,11,2.0,1700000001\n"
NOTES = b"note\nnot a kind of file the dataset knows\n"

RATINGS_COUNT = """SELECT count(*) FROM read_csv('s3://movielens-raw/movielens/ratings/**/*.csv',
    hive_partitioning = true, union_by_name = true);"""
RATINGS_BY_NIGHT = """SELECT ingest_date, count(*) AS ratings
FROM read_csv('s3://movielens-raw/movielens/ratings/**/*.csv', hive_partitioning = true, union_by_name = true)
GROUP BY ingest_date ORDER BY ingest_date;"""
ONE_NIGHT = """SELECT * FROM read_csv('s3://movielens-raw/movielens/ratings/**/*.csv',
    hive_partitioning = true, union_by_name = true)
WHERE ingest_date = '2026-11-28';"""
TOP_MOVIES = """SELECT m.title, count(*) AS ratings, round(avg(r.rating), 2) AS average
FROM read_csv('s3://movielens-raw/movielens/ratings/**/*.csv', hive_partitioning = true, union_by_name = true) AS r
JOIN read_csv('s3://movielens-raw/movielens/movies/**/*.csv', hive_partitioning = true, union_by_name = true) AS m
  USING (movieId)
GROUP BY m.title ORDER BY ratings DESC, m.title LIMIT 5;"""
MANIFEST_BY_STATUS = """SELECT status, count(*) AS objects, sum(size) AS bytes
FROM read_json('s3://movielens-raw/_ingestion/movielens/manifest/*/*.jsonl')
GROUP BY status;"""
MANIFEST_OF_A_NIGHT = """SELECT source_key, target_key, ingested_at
FROM read_json('s3://movielens-raw/_ingestion/movielens/manifest/*/*.jsonl')
WHERE date = '2026-11-28';"""
MIXED_KINDS = """SELECT * FROM read_csv('s3://movielens-raw/movielens/**/*.csv');"""
QUERIES = (RATINGS_COUNT, RATINGS_BY_NIGHT, ONE_NIGHT, TOP_MOVIES, MANIFEST_BY_STATUS, MANIFEST_OF_A_NIGHT, MIXED_KINDS)


def movielens_files() -> dict[str, bytes]:
    """The four MovieLens files: real when available, else generated in their shape (CRLF, as MovieLens is)."""
    if MOVIELENS.is_dir():
        return {name: (MOVIELENS / name).read_bytes() for name in KINDS}
    files = {name: body for name, body in sample_movielens().items() if name.endswith(".csv")}
    files["movies.csv"] += b'11,"American President, The (1995)",Comedy|Drama|Romance\n'
    return {name: body.replace(b"\n", b"\r\n") for name, body in files.items()}


def rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


def dev_stack_tables() -> dict[str, Any]:
    config = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]
    return config["data-file-ingestion:datasets"]["movielens"]["tables"]


def on(stage: Stage, query: str) -> str:
    return query.replace(f"s3://{README_BUCKET}/", f"s3://{stage.raw}/")


def connect(endpoint: str) -> duckdb.DuckDBPyConnection:
    """DuckDB with httpfs, reading s3:// from the moto server (the README's secret for an S3-compatible server).

    httpfs comes from the `duckdb-ext-httpfs` wheel (requirements.txt) when installed: no download at test time.
    """
    con = duckdb.connect()
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is not None and spec.submodule_search_locations:
        con.execute("SET extension_directory = ?", [str(Path(list(spec.submodule_search_locations)[0]) / "extensions")])
        con.execute("SET autoinstall_known_extensions = false")
    con.execute("LOAD httpfs")
    host = endpoint.removeprefix("http://")
    con.execute(
        f"CREATE SECRET moto (TYPE s3, KEY_ID 'testing', SECRET 'testing', REGION '{REGION}', ENDPOINT '{host}', "
        "URL_STYLE 'path', USE_SSL false)"
    )
    return con


@pytest.fixture(name="landed", scope="module")
def landed_fixture(
    moto_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stage, dict[str, bytes], duckdb.DuckDBPyConnection]]:
    """MovieLens landed by the CLI on two nights (the second adds a late ratings file), and DuckDB on the server.
    Once for the module: every test here only reads it."""
    stage = new_stage(moto_server, tmp_path_factory.mktemp("queries"))
    files = movielens_files()
    for name, body in files.items():
        stage.put(f"movielens/{name}", body)
    stage.put("movielens/extra/notes.csv", NOTES)
    config = stage.config(tables=dev_stack_tables(), include=["*.csv"])
    first = stage.run(config, "--json", "--date", NIGHT_1)
    assert first.returncode == 0, first.stderr
    stage.put("movielens/ratings_late.csv", LATE_RATINGS)
    second = stage.run(config, "--json", "--date", NIGHT_2)
    assert second.returncode == 0, second.stderr
    assert (one_json(first)["copied"], one_json(second)["copied"]) == (5, 1)
    con = connect(stage.url)
    yield stage, files, con
    con.close()


def test_readme_shows_every_query_tested_here_word_for_word() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")

    for query in QUERIES:
        assert query in readme, f"README.md no longer shows this tested query:\n{query}"


def test_each_kind_of_file_lands_in_its_table_folder_and_the_unknown_one_under_unmatched(landed) -> None:
    stage, files, _ = landed

    assert sorted(stage.landed()) == sorted(
        [f"movielens/{name.removesuffix('.csv')}/ingest_date={NIGHT_1}/{name}" for name in files]
        + [
            f"movielens/_unmatched/ingest_date={NIGHT_1}/extra/notes.csv",
            f"movielens/ratings/ingest_date={NIGHT_2}/ratings_late.csv",
        ]
    )


@pytest.mark.parametrize("table", ["ratings", "movies", "tags", "links"])
def test_each_table_reads_back_every_row_of_its_source_files_with_ingest_date_from_the_folders(landed, table) -> None:
    stage, files, con = landed
    query = on(stage, RATINGS_COUNT.replace("/ratings/", f"/{table}/"))
    expected = len(rows(files[f"{table}.csv"])) + (len(rows(LATE_RATINGS)) if table == "ratings" else 0)

    ((count,),) = con.sql(query).fetchall()
    columns = [c[0] for c in con.sql(f"DESCRIBE {query.replace('count(*)', '*').rstrip(';')}").fetchall()]

    assert count == expected
    assert columns[-1] == "ingest_date"
    assert columns[:-1] == list(rows(files[f"{table}.csv"])[0])


def test_rows_are_counted_per_night_and_one_night_is_read_alone(landed) -> None:
    stage, files, con = landed

    by_night = con.sql(on(stage, RATINGS_BY_NIGHT)).fetchall()
    late = con.sql(on(stage, ONE_NIGHT)).fetchall()

    assert by_night == [(date(2026, 11, 27), len(rows(files["ratings.csv"]))), (date(2026, 11, 28), 2)]
    assert late == [(1, 1, 4.5, 1700000000, date(2026, 11, 28)), (2, 11, 2.0, 1700000001, date(2026, 11, 28))]


def test_tables_join_and_quoted_titles_with_commas_are_one_field(landed) -> None:
    stage, files, con = landed
    titles = {row["movieId"]: row["title"] for row in rows(files["movies.csv"])}
    ratings = rows(files["ratings.csv"]) + rows(LATE_RATINGS)
    counted = Counter(titles[r["movieId"]] for r in ratings if r["movieId"] in titles)
    sums: Counter[str] = Counter()
    for r in ratings:
        if r["movieId"] in titles:
            sums[titles[r["movieId"]]] += float(r["rating"])
    expected = sorted(counted.items(), key=lambda item: (-item[1], item[0]))[:5]

    top = con.sql(on(stage, TOP_MOVIES)).fetchall()

    assert [(title, number) for title, number, _ in top] == expected
    assert [average for _, _, average in top] == [round(sums[title] / number, 2) for title, number in expected]
    assert any(", " in title for title in titles.values())


def test_the_manifest_reads_as_it_is_and_its_date_column_is_the_night(landed) -> None:
    stage, files, con = landed
    parts = f"s3://{stage.raw}/_ingestion/movielens/manifest/*/*.jsonl"
    landed_bytes = sum(len(body) for body in files.values()) + len(LATE_RATINGS) + len(NOTES)

    by_status = con.sql(on(stage, MANIFEST_BY_STATUS)).fetchall()
    night_2 = con.sql(on(stage, MANIFEST_OF_A_NIGHT)).fetchall()
    # The folders' `date=` (a partition column: hive_partitioning is auto-detected) and each line's own `date`
    # field are one column, not two; with the partition off, the lines say the same dates.
    from_folders = con.sql(f"SELECT source_key, date FROM read_json('{parts}') ORDER BY 1").fetchall()
    from_lines = con.sql(f"SELECT source_key, date FROM read_json('{parts}', hive_partitioning = false) ORDER BY 1")

    assert by_status == [("copied", 6, landed_bytes)]
    assert [(source, target) for source, target, _ in night_2] == [
        ("movielens/ratings_late.csv", f"movielens/ratings/ingest_date={NIGHT_2}/ratings_late.csv")
    ]
    assert from_folders == from_lines.fetchall()
    assert {str(night) for _, night in from_folders} == {NIGHT_1, NIGHT_2}


def test_one_glob_over_every_kind_of_file_fails_on_their_different_columns(landed) -> None:
    stage, _, con = landed

    with pytest.raises(duckdb.InvalidInputException, match="schema mismatch"):
        con.sql(on(stage, MIXED_KINDS)).fetchall()
