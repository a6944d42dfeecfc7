"""The short road (handler/store/lean.py) answers exactly as botocore would, is signed as S3 checks, and hands every
answer that is not plain back to botocore, whose retries then decide."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from handler.store import Store, lean
from handler.store.errors import NotFound, PreconditionFailed
from tests.conftest import REGION, new_bucket
from tests.e2e.cli_fixtures import moto_server_fixture  # noqa: F401 - the fixture
from tests.faults.servers import RCLONE_CREDENTIALS, rclone_binary
from tests.stub_server import Answering, serving

KEYS = ["plain.csv", "with space.csv", "a+b=c&d.csv", "ünï/cödé €.csv", "deep/er/key~1.csv", "semi;colon,comma"]


@pytest.fixture(name="moto_url")
def moto_url_fixture(moto_server: str) -> str:
    return moto_server


def _plain(url: str) -> Any:
    return boto3.client("s3", endpoint_url=url, region_name=REGION)


@pytest.fixture(name="bucket")
def bucket_fixture(moto_url: str) -> str:
    return new_bucket(_plain(moto_url), "lean")


def test_a_run_client_takes_the_road_and_can_be_told_not_to(moto_url, monkeypatch):
    on = Store.sized(endpoint_url=moto_url)
    assert on.fast_road is not None and on.fast_road_off is None
    assert Store(on.client).fast_road is None, "a store made from a client has no fast road"
    assert Store(on.client).fast_road_off == "the store was made from a client, not by Store.sized"
    monkeypatch.setenv(lean.ENV_SWITCH, "0")
    off = Store.sized(endpoint_url=moto_url)
    assert off.fast_road is None and off.fast_road_off == f"{lean.ENV_SWITCH}=0"
    monkeypatch.delenv(lean.ENV_SWITCH)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    proxied = Store.sized(endpoint_url=moto_url)
    assert proxied.fast_road is None, "a proxy is botocore's to honour"
    assert proxied.fast_road_off == "HTTPS_PROXY is set: a proxy is botocore's to honour"


@pytest.mark.parametrize("key", KEYS)
def test_head_answers_what_botocore_answers(moto_url, bucket, key):
    plain = _plain(moto_url)
    plain.put_object(
        Bucket=bucket,
        Key=key,
        Body=b"a,b\n1,2\n",
        ContentType="text/csv",
        ContentEncoding="identity",
        CacheControl="max-age=60",
        Metadata={"owner": "team-a", "Mixed-Case": "v"},
    )
    road = Store.sized(endpoint_url=moto_url).fast_road

    ours, theirs = road.head_object(Bucket=bucket, Key=key), plain.head_object(Bucket=bucket, Key=key)

    for field in ("ContentLength", "ETag", "LastModified", "ContentType", "ContentEncoding", "CacheControl"):
        assert ours[field] == theirs[field], field
    assert ours["Metadata"] == theirs["Metadata"]
    for header in ("content-type", "content-length", "etag", "last-modified", "x-amz-meta-owner"):
        assert ours["ResponseMetadata"]["HTTPHeaders"][header] == theirs["ResponseMetadata"]["HTTPHeaders"][header]


def test_head_refusals_are_the_package_errors(moto_url, bucket):
    store = Store.sized(endpoint_url=moto_url)
    _plain(moto_url).put_object(Bucket=bucket, Key="k", Body=b"x")

    with pytest.raises(NotFound):
        store.head(bucket, "absent")
    with pytest.raises(PreconditionFailed):
        store.head(bucket, "k", if_match='"0123456789abcdef0123456789abcdef"')
    assert store.head(bucket, "k", if_match=store.head(bucket, "k")["ETag"])["ContentLength"] == 1


@pytest.mark.parametrize("key", KEYS)
def test_a_copy_lands_bytes_headers_and_metadata(moto_url, bucket, key):
    plain = _plain(moto_url)
    put = plain.put_object(Bucket=bucket, Key=key, Body=b"payload " + key.encode())
    store = Store.sized(endpoint_url=moto_url)

    answer = store.fast_road.copy_object(
        Bucket=bucket,
        Key="landed/" + key,
        CopySource={"Bucket": bucket, "Key": key},
        IfNoneMatch="*",
        CopySourceIfMatch=put["ETag"],
        MetadataDirective="REPLACE",
        Metadata={"ingest-source-key": "x%20y", "owner": "team-a"},
        ContentType="text/csv",
    )

    landed = plain.get_object(Bucket=bucket, Key="landed/" + key)
    assert landed["Body"].read() == b"payload " + key.encode()
    assert answer["CopyObjectResult"]["ETag"] == landed["ETag"] == put["ETag"]
    assert landed["ContentType"] == "text/csv"
    assert landed["Metadata"] == {"ingest-source-key": "x%20y", "owner": "team-a"}
    with pytest.raises(PreconditionFailed):  # the copy never overwrites (moto patched as S3 behaves)
        store.copy_object(
            Bucket=bucket, Key="landed/" + key, CopySource={"Bucket": bucket, "Key": key}, IfNoneMatch="*"
        )


def test_conditional_ledger_writes_and_reads_on_the_road(moto_url, bucket):
    store = Store.sized(endpoint_url=moto_url)

    etag = store.put_json(bucket, "_ingestion/doc.json", {"n": 1, "name": "ünï"}, if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put_json(bucket, "_ingestion/doc.json", {"n": 2}, if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put_json(bucket, "_ingestion/doc.json", {"n": 2}, if_match='"0123456789abcdef0123456789abcdef"')
    store.put_json(bucket, "_ingestion/doc.json", {"n": 3}, if_match=etag)

    document, read_etag = store.get_json(bucket, "_ingestion/doc.json")
    assert document == {"n": 3}
    assert read_etag == _plain(moto_url).head_object(Bucket=bucket, Key="_ingestion/doc.json")["ETag"]
    assert store.get_json(bucket, "_ingestion/absent.json") == (None, None)


def test_a_listing_on_the_road_is_the_paginators_listing(moto_url, bucket):
    plain = _plain(moto_url)
    keys = [f"many/{i:05d}" for i in range(1105)] + ["many/" + key for key in KEYS]
    for key in keys:
        plain.put_object(Bucket=bucket, Key=key, Body=b"x" * (len(key) % 7))
    store = Store.sized(endpoint_url=moto_url)

    ours = list(store.iter_source_objects(bucket, "many/"))
    ranged = list(store.iter_source_objects(bucket, "many/", start_after="many/00999"))
    theirs = [
        item
        for page in plain.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="many/")
        for item in page["Contents"]
    ]

    assert [(o.key, o.etag, o.size, o.last_modified) for o in ours] == [
        (t["Key"], t["ETag"].strip('"'), t["Size"], t["LastModified"]) for t in theirs
    ]
    assert sorted(keys) == [o.key for o in ours]
    assert [o.key for o in ranged] == [k for k in sorted(keys) if k > "many/00999"]


def test_the_road_is_signed_as_a_server_that_checks_signatures_expects(tmp_path):
    """rclone serve s3 verifies SigV4: every call on the road is answered, none handed back to botocore."""
    binary = rclone_binary()
    if binary is None:
        pytest.skip("rclone is not installed")
    from bench.servers import start_rclone_server

    server = start_rclone_server(binary)
    try:
        session = boto3.session.Session(
            aws_access_key_id=RCLONE_CREDENTIALS.access_key,
            aws_secret_access_key=RCLONE_CREDENTIALS.secret_key,
            region_name=REGION,
        )
        store = Store.sized(session, endpoint_url=server.endpoint)
        store.client.create_bucket(Bucket="signed")
        road = store.fast_road
        key = "ünï/with space+plus.csv"
        road.put_object(Bucket="signed", Key=key, Body=b"abc", ContentType="text/csv", Metadata={"a": "b"})
        assert road.head_object(Bucket="signed", Key=key)["ContentLength"] == 3
        assert road.get_object(Bucket="signed", Key=key)["Body"].read() == b"abc"
        road.copy_object(Bucket="signed", Key="copy/" + key, CopySource={"Bucket": "signed", "Key": key})
        contents, token = road.list_page("signed", "copy/")
        assert ([c["Key"] for c in contents], token) == (["copy/" + key], None)
        twin = session.client("s3", endpoint_url=server.endpoint, config=Config(signature_version="s3v4"))
        bad = lean.LeanS3(store.client, _Wrong(), lambda: twin)
        with pytest.raises(lean.Declined, match="403"):
            bad.head_object(Bucket="signed", Key=key)
    finally:
        server.stop()


class _Wrong:
    """Credentials with the wrong secret: a server that checks signatures refuses them."""

    def get_frozen_credentials(self) -> Any:
        from botocore.credentials import ReadOnlyCredentials

        return ReadOnlyCredentials(RCLONE_CREDENTIALS.access_key, "not-the-secret", None)


COPY_RESULT = (
    b'<CopyObjectResult><ETag>"aa"</ETag><LastModified>2026-12-03T06:48:57.000Z</LastModified></CopyObjectResult>'
)


class _Flaky(Answering):
    """A 500 first, then a plain answer: the first on the road, the retry through botocore."""

    seen: list[tuple[str, str]] = []

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        type(self).seen.append(("HEAD", self.headers.get("User-Agent", "")))
        if len(type(self).seen) == 1:
            self._answer(500, b"", {})
        else:
            self._answer(200, b"", {"ETag": '"aa"', "Last-Modified": "Thu, 03 Dec 2026 06:48:57 GMT"})

    def do_PUT(self) -> None:  # noqa: N802
        type(self).seen.append(("PUT", self.headers.get("User-Agent", "")))
        if len(type(self).seen) == 1:  # S3's 200 that carries an error: botocore retries it
            body = b"<Error><Code>InternalError</Code><Message>try again</Message></Error>"
        else:
            body = COPY_RESULT
        self._answer(200, body, {"Content-Type": "application/xml"})


@pytest.fixture(name="flaky")
def flaky_fixture() -> Iterator[str]:
    with serving(_Flaky) as url:
        yield url


def test_an_answer_that_is_not_plain_goes_to_botocore_and_its_retry_answers(flaky):
    store = Store.sized(endpoint_url=flaky)
    _Flaky.seen = []
    assert store.head("b", "k")["ETag"] == '"aa"'
    # A 500 is retried where it was met, by the client's one policy (tests/handler/test_retries.py).
    assert [agent.startswith("data-file-ingestion (lean)") for _, agent in _Flaky.seen] == [True, True]

    _Flaky.seen = []
    answer = store.copy_object(Bucket="b", Key="t", CopySource={"Bucket": "b", "Key": "k"}, IfNoneMatch="*")
    assert answer["CopyObjectResult"]["ETag"] == '"aa"'
    assert [agent.startswith("data-file-ingestion (lean)") for _, agent in _Flaky.seen] == [True, False]


def test_a_client_with_its_own_signature_version_stays_on_botocore(moto_url):
    s3 = boto3.session.Session().client("s3", endpoint_url=moto_url, config=Config(signature_version="s3"))
    assert lean.closed_because(s3, boto3.session.Session().get_credentials()) == "the client signs with s3"


def test_a_mocked_client_stays_on_botocore_so_the_mock_answers(aws):
    store = Store.sized()
    store.client.create_bucket(Bucket="mocked")

    assert lean.intercepted(store.client) and store.fast_road is None
    assert store.fast_road_off == "a before-send handler answers the client's requests (a mock or a Stubber)"
    store.put_json("mocked", "doc.json", {"n": 1})
    assert store.get_json("mocked", "doc.json")[0] == {"n": 1}


class _CutOnce(Answering):
    """The first GET's body stops short of its Content-Length; the next is whole."""

    gets = 0
    document = b'{"run_id": "r", "padding": "' + b"x" * 200 + b'"}'

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        cls = type(self)
        cls.gets += 1
        self.send_response(200)
        self.send_header("ETag", '"e"')
        self.send_header("Content-Length", str(len(cls.document)))
        self.end_headers()
        if cls.gets == 1:
            self.wfile.write(cls.document[:50])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(cls.document)


def test_a_body_cut_off_on_the_road_is_read_again_whole(monkeypatch):
    _CutOnce.gets = 0
    with serving(_CutOnce) as url:
        document, etag = Store.sized(concurrency=1, endpoint_url=url).get_json("b", "_ingestion/lock.json")

    assert (document["run_id"], etag) == ("r", '"e"')
    assert _CutOnce.gets == 2


class _ElsewhereBucket(Answering):
    """Every HEAD on the road is answered as a bucket in another region answers; botocore's is answered."""

    agents: list[str] = []

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        agent = self.headers.get("User-Agent", "")
        type(self).agents.append(agent)
        if agent.startswith("data-file-ingestion (lean)"):
            self._answer(301, b"", {"x-amz-bucket-region": "eu-west-1"})
        else:
            self._answer(200, b"", {"ETag": '"aa"'})


def test_a_bucket_in_another_region_is_left_to_botocore_after_its_first_answer():
    _ElsewhereBucket.agents = []
    with serving(_ElsewhereBucket) as url:
        store = Store.sized(concurrency=1, endpoint_url=url)
        assert [store.head("b", key)["ETag"] for key in ("k1", "k2", "k3")] == ['"aa"'] * 3

    on_road = [agent.startswith("data-file-ingestion (lean)") for agent in _ElsewhereBucket.agents]
    assert on_road == [True, False, False, False], "one try on the road, then botocore's road only"
