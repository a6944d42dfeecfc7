"""The function registers partitions in the database its environment names (GLUE_DATABASE, set by the stack), and
its finalize answer says when Glue refused them, with the run committed all the same."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from handler import lambda_function
from tests.conftest import REGION
from tests.glue_catalog import DATABASE, create_catalog, partitions_of
from tests.handler.test_lambda_function import Deployment, deployment, invoke  # noqa: F401 - the fixture
from tests.handler.test_partitions import TABLES, movielens, put_files


@pytest.fixture
def glue(deployment: Deployment) -> Any:  # noqa: F811 - the imported fixture
    lambda_function._glue.cache_clear()  # each test is a fresh container
    deployment.monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    deployment.configure(tables=TABLES)
    put_files(deployment.s3, deployment.source, ["movielens/ratings.csv", "movielens/movies.csv"])
    return boto3.client("glue", region_name=REGION)


def test_a_one_shot_invocation_registers_the_nights_partitions_in_the_environments_database(deployment, glue):  # noqa: F811
    create_catalog(glue, [movielens(deployment.raw, deployment.source)])

    summary = invoke({"dataset": "movielens", "date": "2026-11-27"})

    assert summary["status"] == "succeeded"
    assert [p["Values"] for p in partitions_of(glue, "movielens_ratings")] == [["2026-11-27"]]
    assert [p["Values"] for p in partitions_of(glue, "runs")] == [["movielens", "2026-11-27"]]
    assert partitions_of(glue, "movielens_links") == []  # no links file landed: no partition without files


def test_the_finalize_answer_carries_the_refusal_and_the_run_stays_committed(deployment, glue):  # noqa: F811
    glue.create_database(DatabaseInput={"Name": DATABASE})  # the tables are missing: EntityNotFoundException

    summary = invoke({"dataset": "movielens", "date": "2026-11-27"})
    again = invoke({"action": "finalize", "dataset": "movielens", "run_id": summary["run_id"]})

    assert summary["status"] == "succeeded"
    assert again["summary"]["run_id"] == summary["run_id"] and again["summary"]["status"] == "succeeded"
    assert "EntityNotFoundException" in again["partitions_error"]
    assert "ingest partitions --config <config> --dataset movielens --date 2026-11-27" in again["partitions_error"]
