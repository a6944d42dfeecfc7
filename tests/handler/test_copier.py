"""The copier against moto: what lands, with which bytes and metadata, and what a failure leaves behind.

moto as shipped ignores CopySourceIfMatch and If-None-Match on CopyObject; the tests run it patched to honour
them (tests/moto_patches.py), and the tests of a server that ignores them undo the patch. moto cannot deny
access, so those answers (and others) are injected with botocore event hooks: the request is built as usual,
then S3's error response is handed to botocore in place of the HTTP call, and botocore raises the same
ClientError it would raise for the real service.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date as Date
from typing import Any
from urllib.parse import unquote

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from handler import metadata as meta
from handler.copier import COPIED, FAILED, SKIPPED, CopyContext, copy_items
from handler.layout import render_target_key
from handler.records import BatchItem, ManifestLine
from handler.runner import Engine
from handler.store import Store
from tests.awkward_keys import AWKWARD_KEYS
from tests.conftest import dataset_config
from tests.moto_patches import ignore_copy_conditions

MiB = 1024 * 1024
DATE = "2026-11-27"
RUN_ID = "20261127T200000Z-abc123"
SMALL_THRESHOLD = 5 * MiB


@dataclass
class Rule:
    operation: str
    code: str
    status: int
    key: str | None


@dataclass
class S3Calls:
    """Records every S3 call a client makes and answers chosen ones with an S3 error instead of moto.

    The fault is decided at parameter-build time (where the Key is known) and answered at before-call
    time (where botocore accepts a ready-made response), so botocore parses it into its usual ClientError.
    """

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)

    def attach(self, client: Any) -> S3Calls:
        client.meta.events.register("before-parameter-build.s3", self._mark)
        client.meta.events.register("before-call.s3", self._answer)
        return self

    def fail(self, operation: str, code: str, status: int, *, key: str | None = None) -> None:
        self.rules.append(Rule(operation, code, status, key))

    def count(self, operation: str, key: str | None = None) -> int:
        return sum(1 for op, params in self.calls if op == operation and (key is None or params.get("Key") == key))

    def params(self, operation: str) -> list[dict[str, Any]]:
        return [params for op, params in self.calls if op == operation]

    def _mark(self, params: dict[str, Any], model: Any, context: dict[str, Any], **kwargs: Any) -> None:
        self.calls.append((model.name, dict(params)))
        for rule in self.rules:
            if rule.operation == model.name and rule.key in (None, params.get("Key")):
                context["injected_fault"] = rule

    def _answer(self, model: Any, context: dict[str, Any], **kwargs: Any) -> Any:
        rule = context.get("injected_fault")
        if rule is None:
            return None
        parsed = {
            "Error": {"Code": rule.code, "Message": f"injected {rule.code}"},
            "ResponseMetadata": {"HTTPStatusCode": rule.status, "HTTPHeaders": {}},
        }
        return AWSResponse("https://s3.amazonaws.com/", rule.status, {}, None), parsed


@pytest.fixture
def calls(s3: Any) -> S3Calls:
    return S3Calls().attach(s3)


def context(source: str, raw: str, *, threshold: int = 256 * MiB) -> CopyContext:
    return CopyContext(
        dataset="movielens",
        run_id=RUN_ID,
        date=DATE,
        source_bucket=source,
        target_bucket=raw,
        multipart_threshold=threshold,
    )


def target_for(key: str) -> str:
    return render_target_key(
        "{dir}/ingest_date={date}/{name}",
        "movielens/",
        dataset="movielens",
        relative=key.removeprefix("movielens/"),
        run_date=Date.fromisoformat(DATE),
        run_id=RUN_ID,
    )


def listed(s3: Any, bucket: str, key: str) -> BatchItem:
    """A plan item for one source object, with the ETag and size its listing shows."""
    (entry,) = [o for o in s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"] if o["Key"] == key]
    return BatchItem(key, entry["ETag"].strip('"'), entry["Size"], target_for(key))


def copy(
    s3: Any, items: list[BatchItem], ctx: CopyContext, *, threshold: int = 256 * MiB, chunk: int = 64 * MiB
) -> list[ManifestLine]:
    with Store(s3).transfer_manager(concurrency=4, threshold=threshold, chunk=chunk) as tm:
        return list(copy_items(Store(s3), tm, items, ctx, concurrency=4))


def absent(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        assert err.response["Error"]["Code"] == "404"
        return True
    return False


def patterned(size: int) -> bytes:
    """Bytes that differ from part to part, so a part copied from the wrong range would show."""
    block = bytes(range(256)) * 4096  # 1 MiB
    return (block * (size // len(block) + 1))[:size]


def test_single_part_copy_keeps_content_type_and_user_metadata_and_adds_lineage(s3, buckets):
    source, raw = buckets
    key = "movielens/ratings.csv"
    s3.put_object(
        Bucket=source,
        Key=key,
        Body=b"userId,movieId,rating\n1,31,2.5\n",
        ContentType="text/csv",
        ContentEncoding="identity",
        CacheControl="no-cache",
        Metadata={"owner": "grouplens", "ingest-source-key": "forged"},
    )
    item = listed(s3, source, key)

    (line,) = copy(s3, [item], context(source, raw))

    assert line.status == COPIED
    assert line.reason == ""
    head = s3.head_object(Bucket=raw, Key=item.target)
    assert head["ContentType"] == "text/csv"
    assert head["ContentEncoding"] == "identity"
    assert head["CacheControl"] == "no-cache"
    assert head["Metadata"]["owner"] == "grouplens"
    assert head["Metadata"]["ingest-source-bucket"] == source
    assert head["Metadata"]["ingest-source-key"] == key  # a source's own ingest-* value is replaced by ours
    assert head["Metadata"]["ingest-source-etag"] == item.etag
    assert head["Metadata"]["ingest-dataset"] == "movielens"
    assert head["Metadata"]["ingest-date"] == DATE
    assert head["Metadata"]["ingest-run-id"] == RUN_ID
    assert head["Metadata"]["ingest-timestamp"] == line.ingested_at
    assert head["ETag"].strip('"') == item.etag
    assert s3.get_object(Bucket=raw, Key=item.target)["Body"].read() == b"userId,movieId,rating\n1,31,2.5\n"


def test_copy_request_carries_the_listed_etag_as_copy_source_if_match(s3, buckets, calls):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"a")
    item = listed(s3, source, "movielens/a.csv")

    copy(s3, [item], context(source, raw))

    (request,) = calls.params("CopyObject")
    assert request["CopySourceIfMatch"] == f'"{item.etag}"'
    assert request["MetadataDirective"] == "REPLACE"
    (guarded_head,) = [p for p in calls.params("HeadObject") if p["Bucket"] == source]
    assert guarded_head["IfMatch"] == f'"{item.etag}"'


def test_multipart_copy_carries_content_type_and_metadata_and_identical_bytes(s3, buckets, calls):
    source, raw = buckets
    body = patterned(11 * MiB + 123)
    key = "movielens/big/genome-scores.csv"
    s3.put_object(Bucket=source, Key=key, Body=body, ContentType="text/csv", Metadata={"origin": "grouplens"})
    item = listed(s3, source, key)

    (line,) = copy(
        s3, [item], context(source, raw, threshold=SMALL_THRESHOLD), threshold=SMALL_THRESHOLD, chunk=5 * MiB
    )

    assert line.status == COPIED, line.reason
    assert calls.count("CopyObject") == 0
    assert calls.count("UploadPartCopy") == 3
    assert all(p["CopySourceIfMatch"] == f'"{item.etag}"' for p in calls.params("UploadPartCopy"))
    landed = s3.get_object(Bucket=raw, Key=item.target)
    assert landed["Body"].read() == body
    assert landed["ContentType"] == "text/csv"
    assert landed["ContentLength"] == len(body)
    assert landed["ETag"].strip('"').endswith("-3")
    assert landed["Metadata"]["origin"] == "grouplens"
    assert meta.landed_from(landed["Metadata"]) == (source, key, item.etag)


def test_multipart_copy_of_a_source_without_content_type_gets_the_s3_default(s3, buckets):
    source, raw = buckets
    key = "movielens/big.bin"
    s3.put_object(Bucket=source, Key=key, Body=patterned(6 * MiB))
    item = listed(s3, source, key)

    (line,) = copy(
        s3, [item], context(source, raw, threshold=SMALL_THRESHOLD), threshold=SMALL_THRESHOLD, chunk=5 * MiB
    )

    assert line.status == COPIED
    head = s3.head_object(Bucket=raw, Key=item.target)
    assert head["ContentType"] in ("binary/octet-stream", "application/octet-stream")


def test_zero_byte_file_lands(s3, buckets):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/empty.csv", Body=b"")
    item = listed(s3, source, "movielens/empty.csv")

    (line,) = copy(s3, [item], context(source, raw))

    assert line.status == COPIED
    assert line.size == 0
    landed = s3.get_object(Bucket=raw, Key=item.target)
    assert landed["ContentLength"] == 0
    assert landed["Body"].read() == b""


@pytest.mark.parametrize("name", AWKWARD_KEYS)
def test_awkward_key_lands_with_exact_bytes_and_decodable_lineage(s3, buckets, name):
    source, raw = buckets
    key = f"movielens/{name}"
    body = f"contents of {name}\n".encode()
    s3.put_object(Bucket=source, Key=key, Body=body)
    item = listed(s3, source, key)

    (line,) = copy(s3, [item], context(source, raw))

    assert line.status == COPIED, line.reason
    assert line.target_key.endswith("/" + name.rsplit("/", 1)[-1])
    assert s3.get_object(Bucket=raw, Key=item.target)["Body"].read() == body
    recorded = s3.head_object(Bucket=raw, Key=item.target)["Metadata"]["ingest-source-key"]
    assert recorded.isascii()
    assert unquote(recorded) == key


def test_source_gone_since_listing_fails_that_object_and_the_rest_of_the_batch_goes_on(s3, buckets):
    source, raw = buckets
    for name in ("a.csv", "b.csv", "c.csv"):
        s3.put_object(Bucket=source, Key=f"movielens/{name}", Body=name.encode())
    items = [listed(s3, source, f"movielens/{name}") for name in ("a.csv", "b.csv", "c.csv")]
    s3.delete_object(Bucket=source, Key="movielens/b.csv")

    lines = copy(s3, items, context(source, raw))

    assert [line.status for line in lines] == [COPIED, FAILED, COPIED]
    assert lines[1].reason == "source object is gone since listing"
    assert absent(s3, raw, items[1].target)
    assert not absent(s3, raw, items[0].target)
    assert not absent(s3, raw, items[2].target)


def test_source_changed_between_listing_and_head_fails_and_lands_nothing(s3, buckets):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"version 1")
    item = listed(s3, source, "movielens/a.csv")
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"version 2")

    (line,) = copy(s3, [item], context(source, raw))

    assert line.status == FAILED
    assert "changed since listing" in line.reason
    assert absent(s3, raw, item.target)


def test_source_changed_during_single_part_copy_is_recorded_and_leaves_nothing(s3, buckets, calls):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"a")
    s3.put_object(Bucket=source, Key="movielens/b.csv", Body=b"b")
    items = [listed(s3, source, "movielens/a.csv"), listed(s3, source, "movielens/b.csv")]
    calls.fail("CopyObject", "PreconditionFailed", 412, key=items[0].target)

    lines = copy(s3, items, context(source, raw))

    assert lines[0].status == FAILED
    assert "source changed during the copy" in lines[0].reason
    assert absent(s3, raw, items[0].target)
    assert lines[1].status == COPIED


def test_source_changed_during_multipart_copy_is_recorded_and_leaves_no_object_or_upload(s3, buckets, calls):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/big.csv", Body=patterned(11 * MiB))
    item = listed(s3, source, "movielens/big.csv")
    calls.fail("UploadPartCopy", "PreconditionFailed", 412, key=item.target)

    (line,) = copy(
        s3, [item], context(source, raw, threshold=SMALL_THRESHOLD), threshold=SMALL_THRESHOLD, chunk=5 * MiB
    )

    assert line.status == FAILED
    assert "source changed during the copy" in line.reason
    assert absent(s3, raw, item.target)
    assert s3.list_multipart_uploads(Bucket=raw).get("Uploads", []) == []
    assert calls.count("AbortMultipartUpload") == 1


def test_copy_that_lands_another_version_is_removed_by_verification(s3, buckets, calls, monkeypatch):
    """S3 honours CopySourceIfMatch; a server that ignores it is caught by the landed ETag check."""
    ignore_copy_conditions(monkeypatch)
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"version 1")
    item = listed(s3, source, "movielens/a.csv")

    def overwrite_source(**kwargs: Any) -> None:
        """The source changes after the guarded HEAD, just before the copy (moto then copies version 2)."""
        s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"version 2!")

    s3.meta.events.register("before-call.s3.CopyObject", overwrite_source)

    (line,) = copy(s3, [item], context(source, raw))

    assert line.status == FAILED
    assert line.reason.startswith("verification failed")
    assert absent(s3, raw, item.target)


def test_target_holding_another_versions_lineage_is_skipped_as_occupied(s3, buckets):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"new")
    item = listed(s3, source, "movielens/a.csv")
    older = meta.Lineage(
        source_bucket=source,
        source_key="movielens/a.csv",
        source_etag="0" * 32,
        dataset="movielens",
        date=DATE,
        ingested_at="2026-11-27T20:00:00.000Z",
        run_id="20261127T100000Z-000000",
    ).metadata()
    s3.put_object(Bucket=raw, Key=item.target, Body=b"old", Metadata=older)

    (line,) = copy(s3, [item], context(source, raw))

    assert line.status == SKIPPED
    assert line.reason.startswith("target occupied")
    assert "0" * 32 in line.reason
    assert s3.get_object(Bucket=raw, Key=item.target)["Body"].read() == b"old"


def test_target_holding_an_object_without_lineage_is_skipped_as_occupied(s3, buckets):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"new")
    item = listed(s3, source, "movielens/a.csv")
    s3.put_object(Bucket=raw, Key=item.target, Body=b"hand made")

    (line,) = copy(s3, [item], context(source, raw))

    assert line.status == SKIPPED
    assert "without lineage metadata" in line.reason
    assert s3.get_object(Bucket=raw, Key=item.target)["Body"].read() == b"hand made"


def test_object_already_landed_by_this_run_is_recorded_copied_without_a_second_copy(s3, buckets, calls):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"a", ContentType="text/csv")
    item = listed(s3, source, "movielens/a.csv")
    (first,) = copy(s3, [item], context(source, raw))
    landed_before = s3.head_object(Bucket=raw, Key=item.target)

    (again,) = copy(s3, [item], context(source, raw))

    assert first.status == again.status == COPIED
    assert again.reason.startswith("already landed")
    assert again.ingested_at == first.ingested_at
    assert calls.count("CopyObject") == 1
    assert calls.count("PutObject", key=item.target) == 0
    landed_after = s3.head_object(Bucket=raw, Key=item.target)
    assert landed_after["LastModified"] == landed_before["LastModified"]
    assert landed_after["Metadata"] == landed_before["Metadata"]


@pytest.mark.parametrize("operation", ["HeadObject", "CopyObject"])
def test_access_denied_fails_that_object_and_the_rest_goes_on(s3, buckets, calls, operation):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/secret.csv", Body=b"s")
    s3.put_object(Bucket=source, Key="movielens/open.csv", Body=b"o")
    items = [listed(s3, source, "movielens/secret.csv"), listed(s3, source, "movielens/open.csv")]
    denied_key = items[0].key if operation == "HeadObject" else items[0].target
    calls.fail(operation, "AccessDenied", 403, key=denied_key)

    lines = copy(s3, items, context(source, raw))

    assert lines[0].status == FAILED
    assert lines[0].reason.startswith("AccessDenied")
    assert f"({operation})" in lines[0].reason
    assert absent(s3, raw, items[0].target)
    assert lines[1].status == COPIED
    assert s3.get_object(Bucket=raw, Key=items[1].target)["Body"].read() == b"o"


def test_user_metadata_too_large_for_lineage_fails_with_the_reason(s3, buckets):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"a", Metadata={"notes": "x" * 1900})
    item = listed(s3, source, "movielens/a.csv")

    (line,) = copy(s3, [item], context(source, raw))

    assert line.status == FAILED
    assert "2048-byte limit" in line.reason
    assert absent(s3, raw, item.target)


def test_failed_copies_in_an_engine_batch_are_recorded_and_the_batch_goes_on(s3, buckets, calls):
    source, raw = buckets
    for name in ("a.csv", "b.csv", "c.csv", "d.csv"):
        s3.put_object(Bucket=source, Key=f"movielens/{name}", Body=name.encode())
    engine = Engine(Store(s3), dataset_config(source, raw))
    plan = engine.plan_all()
    s3.delete_object(Bucket=source, Key="movielens/b.csv")
    s3.put_object(Bucket=source, Key="movielens/c.csv", Body=b"changed")

    result = engine.copy_batch(plan["run_id"], 0)

    assert result == {"batch": 0, "copied": 2, "skipped": 0, "failed": 2, "bytes": 10}
    summary = engine.finalize(plan["run_id"])["summary"]
    assert summary["status"] == "partial"
    assert {f["source_key"]: f["reason"] for f in summary["failures"]} == {
        "movielens/b.csv": "source object is gone since listing",
        "movielens/c.csv": "source changed since listing (ETag differs); it lands on the next run",
    }


# ---- lost answers, occupied targets and sources rewritten mid-copy (issue 7) --------------------------------


class LostAnswers:
    """The first matching request is applied by S3 (through a clean client), then botocore gets a 500 in
    place of S3's answer and retries, as it does when S3's reply is lost after the write."""

    def __init__(self, s3: Any, clean: Any, operation: str, *, times: int = 1):
        self._clean, self._operation, self.left = clean, operation, times
        s3.meta.events.register(f"before-parameter-build.s3.{operation}", self._remember)
        s3.meta.events.register(f"before-call.s3.{operation}", self._apply_then_lose)

    def _remember(self, params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        context["api_params"] = dict(params)

    def _apply_then_lose(self, context: dict[str, Any], **kwargs: Any) -> Any:
        if self.left <= 0:
            return None
        self.left -= 1
        method = {"CopyObject": "copy_object", "HeadObject": "head_object"}[self._operation]
        getattr(self._clean, method)(**context["api_params"])
        parsed = {
            "Error": {"Code": "InternalError", "Message": "injected: answer lost after the write"},
            "ResponseMetadata": {"HTTPStatusCode": 500, "HTTPHeaders": {}},
        }
        return AWSResponse("https://s3.amazonaws.com/", 500, {}, None), parsed


@pytest.fixture
def clean_s3(s3: Any) -> Any:
    import boto3

    return boto3.client("s3", region_name="us-east-1")


def test_a_copy_applied_but_whose_answer_was_lost_is_recorded_copied_once(s3, clean_s3, buckets, calls):
    """Defect 1: the 500 after the write made botocore retry; the retry met our own object (If-None-Match
    refused it) and the copier read the target back: our lineage is there, so the object is copied, once."""
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"landed though the answer was lost")
    item = listed(s3, source, "movielens/a.csv")
    lost = LostAnswers(s3, clean_s3, "CopyObject")

    (line,) = copy(s3, [item], context(source, raw))

    assert lost.left == 0
    assert line.status == COPIED, line.reason
    assert all(p["IfNoneMatch"] == "*" for p in calls.params("CopyObject"))
    head = s3.head_object(Bucket=raw, Key=item.target)
    assert head["Metadata"]["ingest-run-id"] == RUN_ID
    assert line.ingested_at == head["Metadata"]["ingest-timestamp"]
    assert s3.get_object(Bucket=raw, Key=item.target)["Body"].read() == b"landed though the answer was lost"


def test_a_copy_whose_answer_never_came_is_read_back_before_it_is_called_failed(s3, clean_s3, buckets):
    """Defect 1, retries exhausted: every attempt's answer was lost (the first applied); the read-back finds
    our object, so it is not reported failed and copied again the next night under another date."""
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"a")
    item = listed(s3, source, "movielens/a.csv")
    LostAnswers(s3, clean_s3, "CopyObject", times=100)

    (line,) = copy(s3, [item], context(source, raw))

    assert line.status == COPIED, line.reason
    assert s3.head_object(Bucket=raw, Key=item.target)["Metadata"]["ingest-run-id"] == RUN_ID


def test_a_failing_target_head_on_a_retry_does_not_fail_the_object(s3, clean_s3, buckets, calls):
    """Defect 1's second half: a retried batch's HEAD of the target answers 503; the copy still runs, guarded
    by If-None-Match, meets the object landed before and reads it back instead of marking it failed."""
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"a")
    item = listed(s3, source, "movielens/a.csv")
    (first,) = copy(s3, [item], context(source, raw))
    failed_once: list[bool] = []

    def slow_down_once(params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("Key") == item.target and not failed_once:
            failed_once.append(True)
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 503}},
                "HeadObject",
            )

    s3.meta.events.register("before-parameter-build.s3.HeadObject", slow_down_once)

    (again,) = copy(s3, [item], context(source, raw))

    assert failed_once
    assert (first.status, again.status) == (COPIED, COPIED), again.reason
    assert again.ingested_at == first.ingested_at
    assert calls.count("CopyObject") == 2  # the second was refused by If-None-Match: nothing was overwritten
    assert clean_s3.head_object(Bucket=raw, Key=item.target)["Metadata"]["ingest-timestamp"] == first.ingested_at


def test_a_copy_never_overwrites_what_another_run_landed_at_its_target(s3, buckets, calls):
    """Defect 8: a first attempt does not HEAD its target, so only If-None-Match on the copy keeps another run's
    landing (here `a/b.csv`, while `a//b.csv` renders to the same key) from being overwritten."""
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a/b.csv", Body=b"the earlier landing")
    first = listed(s3, source, "movielens/a/b.csv")
    (landed,) = copy(s3, [first], context(source, raw))
    s3.put_object(Bucket=source, Key="movielens/a//b.csv", Body=b"a newcomer")
    newcomer = BatchItem("movielens/a//b.csv", listed(s3, source, "movielens/a//b.csv").etag, 10, first.target)
    fresh = CopyContext(**{**context(source, raw).__dict__, "run_id": "20261127T230000Z-def456", "check_target": False})

    (line,) = copy(s3, [newcomer], fresh)

    assert landed.status == COPIED
    assert line.status == SKIPPED
    assert line.reason.startswith("target occupied")
    assert s3.get_object(Bucket=raw, Key=first.target)["Body"].read() == b"the earlier landing"
    assert s3.head_object(Bucket=raw, Key=first.target)["Metadata"]["ingest-run-id"] == RUN_ID


def test_a_multipart_copy_whose_source_is_rewritten_mid_copy_is_removed(s3, buckets, calls):
    """Defect 9: moto ignores CopySourceIfMatch on UploadPartCopy (as some servers do), so the parts mix two
    versions. The source's ETag and LastModified after the copy differ from before it: the mix is removed."""
    source, raw = buckets
    key = "movielens/big/genome-scores.csv"
    s3.put_object(Bucket=source, Key=key, Body=patterned(11 * MiB))
    item = listed(s3, source, key)
    rewritten = []

    def rewrite_source(params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("PartNumber") == 2 and not rewritten:
            rewritten.append(True)
            s3.put_object(Bucket=source, Key=key, Body=bytes(11 * MiB))

    s3.meta.events.register("before-parameter-build.s3.UploadPartCopy", rewrite_source)

    (line,) = copy(
        s3, [item], context(source, raw, threshold=SMALL_THRESHOLD), threshold=SMALL_THRESHOLD, chunk=5 * MiB
    )

    assert rewritten
    assert line.status == FAILED
    assert "source changed during the copy" in line.reason
    assert absent(s3, raw, item.target)
    assert all(p.get("IfNoneMatch") == "*" for p in calls.params("CompleteMultipartUpload"))


# ---- source_metadata: lineage (no source HEAD) ------------------------------------------------------------


def lineage_only(source: str, raw: str, *, threshold: int = 256 * MiB, check_target: bool = True) -> CopyContext:
    ctx = context(source, raw, threshold=threshold)
    return replace(ctx, carry_source_metadata=False, check_target=check_target)


@pytest.mark.parametrize(
    "name, content_type",
    [("ratings.csv", "text/csv"), ("ratings.csv.gz", "application/gzip"), ("blob.weird", "binary/octet-stream")],
)
def test_lineage_only_copies_with_one_request_and_lands_lineage_and_a_type_from_the_extension(
    s3, buckets, calls, name, content_type
):
    source, raw = buckets
    key = f"movielens/{name}"
    s3.put_object(Bucket=source, Key=key, Body=b"1,31,2.5\n", ContentType="text/x-mine", Metadata={"owner": "g"})
    item = listed(s3, source, key)
    calls.calls.clear()

    (line,) = copy(s3, [item], lineage_only(source, raw, check_target=False))  # a fresh run's first attempt

    assert line.status == COPIED, line.reason
    assert [op for op, _ in calls.calls] == ["CopyObject"]  # no HEAD of the source, none of the target
    head = s3.head_object(Bucket=raw, Key=item.target)
    assert head["ContentType"] == content_type
    assert "owner" not in head["Metadata"]
    assert meta.landed_from(head["Metadata"]) == (source, key, item.etag)
    assert head["Metadata"]["ingest-run-id"] == RUN_ID
    assert s3.get_object(Bucket=raw, Key=item.target)["Body"].read() == b"1,31,2.5\n"


def test_lineage_only_still_refuses_a_source_changed_since_listing_and_lands_nothing(s3, buckets):
    source, raw = buckets
    key = "movielens/a.csv"
    s3.put_object(Bucket=source, Key=key, Body=b"first")
    item = listed(s3, source, key)
    s3.put_object(Bucket=source, Key=key, Body=b"second, longer")

    (line,) = copy(s3, [item], lineage_only(source, raw))

    assert line.status == FAILED
    assert "source changed" in line.reason
    assert absent(s3, raw, item.target)


def test_lineage_only_records_a_source_gone_since_listing(s3, buckets):
    source, raw = buckets
    key = "movielens/gone.csv"
    s3.put_object(Bucket=source, Key=key, Body=b"x")
    item = listed(s3, source, key)
    s3.delete_object(Bucket=source, Key=key)

    (line,) = copy(s3, [item], lineage_only(source, raw))

    assert (line.status, line.reason) == (FAILED, "source object is gone since listing")
    assert absent(s3, raw, item.target)


def test_lineage_only_heads_a_multipart_source_only_to_check_it_did_not_change_during_the_copy(s3, buckets, calls):
    source, raw = buckets
    key = "movielens/big.csv"
    s3.put_object(Bucket=source, Key=key, Body=patterned(6 * MiB), ContentType="text/x-mine", Metadata={"o": "g"})
    item = listed(s3, source, key)

    (line,) = copy(
        s3, [item], lineage_only(source, raw, threshold=SMALL_THRESHOLD), threshold=SMALL_THRESHOLD, chunk=5 * MiB
    )

    assert line.status == COPIED, line.reason
    assert calls.count("HeadObject", key=key) >= 2  # before and after the parts
    head = s3.head_object(Bucket=raw, Key=item.target)
    assert (head["ContentType"], "o" in head["Metadata"]) == ("text/csv", False)  # as a single-part copy lands
    assert meta.landed_from(head["Metadata"]) == (source, key, item.etag)


# ---- content checksums (issue 22): what the manifest line records on moto's plain path ----------------------


def test_a_copy_asks_for_the_sources_checksum_algorithm_and_records_both_checksums(s3, buckets, calls):
    """boto3 uploads with a CRC32 by default: the copy asks S3 for a CRC32 of the landed object too, and the two
    equal values verify it without another request."""
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"1,31,2.5\n")
    item = listed(s3, source, "movielens/a.csv")
    source_crc = s3.head_object(Bucket=source, Key=item.key, ChecksumMode="ENABLED")["ChecksumCRC32"]

    (line,) = copy(s3, [item], context(source, raw))

    assert (line.status, line.verified) == (COPIED, "checksum")
    (request,) = calls.params("CopyObject")
    assert request["ChecksumAlgorithm"] == "CRC32"
    landed_crc = s3.head_object(Bucket=raw, Key=item.target, ChecksumMode="ENABLED")["ChecksumCRC32"]
    assert line.checksum == f"CRC32:{landed_crc}" and line.source_checksum == f"CRC32:{source_crc}"
    assert ManifestLine.from_json(line.to_json()) == line


def test_lineage_only_lets_s3_carry_the_checksum_over_and_verifies_by_the_etag_with_one_request(s3, buckets, calls):
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/a.csv", Body=b"1,31,2.5\n")
    item = listed(s3, source, "movielens/a.csv")
    calls.calls.clear()

    (line,) = copy(s3, [item], lineage_only(source, raw, check_target=False))

    assert [op for op, _ in calls.calls] == ["CopyObject"]
    assert "ChecksumAlgorithm" not in calls.params("CopyObject")[0]
    assert (line.status, line.verified, line.source_checksum) == (COPIED, "etag", None)
    landed_crc = s3.head_object(Bucket=raw, Key=item.target, ChecksumMode="ENABLED")["ChecksumCRC32"]
    assert line.checksum == f"CRC32:{landed_crc}"


def test_a_multipart_copy_asks_for_a_full_object_crc64nvme_and_is_verified_by_size_when_nothing_compares(
    s3, buckets, calls
):
    """The source's CRC32 cannot be asked of a managed multipart copy (s3transfer refuses ChecksumType), and moto
    gives the landed multipart object no checksum type: nothing compares, so size and the conditional copy."""
    source, raw = buckets
    s3.put_object(Bucket=source, Key="movielens/big.csv", Body=patterned(6 * MiB))
    item = listed(s3, source, "movielens/big.csv")

    (line,) = copy(
        s3, [item], context(source, raw, threshold=SMALL_THRESHOLD), threshold=SMALL_THRESHOLD, chunk=5 * MiB
    )

    assert (line.status, line.verified) == (COPIED, "size"), line.reason
    assert calls.params("CreateMultipartUpload")[0]["ChecksumAlgorithm"] == "CRC64NVME"
    assert line.checksum and line.checksum.startswith("CRC64NVME:") and line.checksum.endswith(":UNTYPED")
    assert line.source_checksum and line.source_checksum.startswith("CRC32:")
    assert s3.get_object(Bucket=raw, Key=item.target)["Body"].read() == patterned(6 * MiB)
