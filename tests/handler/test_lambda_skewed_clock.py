"""The Lambda's plan judges `min_age_seconds` by S3's clock when S3's clock is 10 minutes off the function's.

moto (in process) shares this machine's clock, so the function's S3 client is given S3's clock `skew` seconds
away by a botocore hook on its answers: every `Date` and every LastModified it reads is moved by `skew`, as a
real S3 whose clock is that far off would date them. (The other side, a skewed *machine*, is the CLI's test:
tests/e2e/test_cli_skewed_clock.py; both steps share the plan and the lock.)
"""

from __future__ import annotations

import time
from datetime import timedelta
from email.utils import formatdate
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from handler.ledger import BATCH
from handler.store import Store
from tests.conftest import REGION, ledger_in
from tests.handler.test_lambda_function import Deployment, deployment, invoke, items_at  # noqa: F401 (fixture)

MIN_AGE = 300


def s3_clock_off_by(skew: float) -> Store:
    """The function's store, on an S3 whose clock is `skew` seconds off this machine's."""
    client = boto3.client("s3", region_name=REGION)

    def move(parsed: dict[str, Any], **_: Any) -> None:
        headers = parsed.setdefault("ResponseMetadata", {}).setdefault("HTTPHeaders", {})
        headers["date"] = formatdate(time.time() + skew, usegmt=True)
        for item in [parsed, *parsed.get("Contents", ())]:
            if "LastModified" in item:
                item["LastModified"] += timedelta(seconds=skew)

    client.meta.events.register("after-call.s3", move)
    return Store(client)


@pytest.mark.parametrize("skew", [600, -600], ids=["s3-10min-ahead", "s3-10min-behind"])
def test_the_lambda_plan_leaves_young_objects_by_s3s_clock(
    deployment: Deployment,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
    skew: int,
) -> None:
    """An object written 302 s before the plan is planned, one written just before it is left for the next run."""
    deployment.configure(min_age_seconds=MIN_AGE)
    s3 = deployment.s3
    s3.put_object(Bucket=deployment.source, Key="movielens/old.csv", Body=b"old")
    stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(deployment.source, "movielens/old.csv")
    assert stored is not None
    stored.last_modified -= timedelta(seconds=MIN_AGE + 2)
    s3.put_object(Bucket=deployment.source, Key="movielens/young.csv", Body=b"young")
    skewed = s3_clock_off_by(skew)
    monkeypatch.setattr("handler.lambda_function._s3", lambda concurrency: skewed)

    answer = invoke({"action": "plan", "dataset": "movielens", "date": "2026-11-27"})
    while answer["stage"] == "planning":
        for item in items_at(s3, answer["shards"]):
            invoke({**item, "action": "plan_shard"})
        answer = invoke({"action": "seal_plan", "dataset": "movielens", "run_id": answer["run_id"]})

    assert answer["planned"] == 1
    [batch] = items_at(s3, answer["batches"])
    planned = ledger_in(s3, deployment.raw).read(BATCH, run_id=answer["run_id"], batch=batch["batch"])
    assert [item.key for item in (planned.items if planned else ())] == ["movielens/old.csv"]
