"""The fault proxy itself: each fault has the outcome a client and the server would see from real S3 trouble,
and its S3 model (s3model.py) answers what S3 answers where moto does not.

Clients here run with retries off (`attempts=1`) wherever a test observes a fault, and read the server's
truth with a direct client that bypasses the proxy.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError, ConnectionClosedError, HTTPClientError, ResponseStreamingError

from tests.e2e.cli_fixtures import moto_server_fixture  # noqa: F401 (fixture)
from tests.faults.proxy import (
    DELAY,
    ERROR_500,
    LOST_AFTER,
    RESET_BEFORE,
    RESET_BODY,
    SLOWDOWN,
    FaultProxy,
    Logged,
    Request,
    Rule,
    classify,
)
from tests.faults.s3model import S3Model, checksum, crc32c, crc64nvme
from tests.faults.servers import RCLONE_CREDENTIALS, rclone_server_fixture, s3_client  # noqa: F401 (fixture)

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def running_proxy(moto_server: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_server, seed=7) as running:
        yield running


@pytest.fixture
def proxy(running_proxy: FaultProxy) -> FaultProxy:
    """One proxy per module, reset for each test (starting one and its clients per test costs seconds)."""
    running_proxy.reset(seed=7)
    return running_proxy


@pytest.fixture(scope="module")
def direct(moto_server: str) -> Any:
    """The server's truth, not through the proxy."""
    return s3_client(moto_server)


@pytest.fixture(scope="module")
def via(running_proxy: FaultProxy) -> Any:
    """Through the proxy, retries off: the test sees each fault as it was injected."""
    return s3_client(running_proxy.url, attempts=1)


@pytest.fixture
def bucket(direct: Any) -> str:
    name = f"proxy-{uuid.uuid4().hex[:12]}"
    direct.create_bucket(Bucket=name)
    return name


def exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if err.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return False
        raise
    return True


def presigned(proxy: FaultProxy, method: str, bucket: str, key: str) -> str:
    """Path and query of a presigned request through the proxy: moto refuses anonymous ones (403)."""
    operation = {"GET": "get_object", "PUT": "put_object"}[method]
    url = s3_client(proxy.url).generate_presigned_url(operation, Params={"Bucket": bucket, "Key": key})
    return url.removeprefix(proxy.url)


def raw_connection(proxy: FaultProxy) -> http.client.HTTPConnection:
    host, port = proxy.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=30)


def error_code(err: ClientError) -> tuple[int, str]:
    return err.response["ResponseMetadata"]["HTTPStatusCode"], err.response["Error"]["Code"]


# ---- each fault -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code"), [(SLOWDOWN, 503, "SlowDown"), (ERROR_500, 500, "InternalError")], ids=str
)
def test_an_error_fault_answers_without_reaching_the_server(
    proxy: FaultProxy, via: Any, direct: Any, bucket: str, fault: Any, status: int, code: str
) -> None:
    proxy.add_rule(Rule(fault, operation="PutObject", key="refused.csv"))

    with pytest.raises(ClientError) as raised:
        via.put_object(Bucket=bucket, Key="data/refused.csv", Body=b"never stored")

    assert error_code(raised.value) == (status, code)
    assert not exists(direct, bucket, "data/refused.csv")
    via.put_object(Bucket=bucket, Key="data/refused.csv", Body=b"stored")  # the rule was for one request only
    assert direct.get_object(Bucket=bucket, Key="data/refused.csv")["Body"].read() == b"stored"
    assert proxy.injected == {(fault, "PutObject"): 1}


def test_an_error_on_head_has_the_status_and_no_body(proxy: FaultProxy, via: Any, direct: Any, bucket: str) -> None:
    direct.put_object(Bucket=bucket, Key="k", Body=b"x")
    proxy.add_rule(Rule(SLOWDOWN, operation="HeadObject"))

    with pytest.raises(ClientError) as raised:
        via.head_object(Bucket=bucket, Key="k")

    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert via.head_object(Bucket=bucket, Key="k")["ContentLength"] == 1  # the connection is still usable


def test_a_lost_answer_leaves_the_write_applied_though_the_client_got_500(
    proxy: FaultProxy, via: Any, direct: Any, bucket: str
) -> None:
    proxy.add_rule(Rule(LOST_AFTER, operation="PutObject"))

    with pytest.raises(ClientError) as raised:
        via.put_object(Bucket=bucket, Key="applied.csv", Body=b"it is there")

    assert error_code(raised.value) == (500, "InternalError")
    assert direct.get_object(Bucket=bucket, Key="applied.csv")["Body"].read() == b"it is there"


def test_a_lost_copy_answer_leaves_the_copy_landed(proxy: FaultProxy, via: Any, direct: Any, bucket: str) -> None:
    direct.put_object(Bucket=bucket, Key="src.csv", Body=b"copied bytes")
    proxy.add_rule(Rule(LOST_AFTER, operation="CopyObject", key="dst.csv"))

    with pytest.raises(ClientError):
        via.copy_object(Bucket=bucket, Key="dst.csv", CopySource={"Bucket": bucket, "Key": "src.csv"})

    assert direct.get_object(Bucket=bucket, Key="dst.csv")["Body"].read() == b"copied bytes"


def test_a_reset_before_the_answer_is_a_connection_error_and_the_write_is_applied(
    proxy: FaultProxy, via: Any, direct: Any, bucket: str
) -> None:
    proxy.add_rule(Rule(RESET_BEFORE, operation="PutObject"))

    with pytest.raises((ConnectionClosedError, HTTPClientError)):
        via.put_object(Bucket=bucket, Key="reset.csv", Body=b"applied anyway")

    assert direct.get_object(Bucket=bucket, Key="reset.csv")["Body"].read() == b"applied anyway"


def test_a_reset_is_a_real_rst_not_a_clean_close(proxy: FaultProxy, direct: Any, bucket: str) -> None:
    """A FIN would read as an empty answer (RemoteDisconnected); an RST is ECONNRESET, as from a dead peer."""
    direct.put_object(Bucket=bucket, Key="k", Body=b"x")
    proxy.add_rule(Rule(RESET_BEFORE, operation="GetObject"))
    conn = raw_connection(proxy)
    try:
        conn.request("GET", presigned(proxy, "GET", bucket, "k"))
        with pytest.raises(ConnectionResetError):
            conn.getresponse()
    finally:
        conn.close()


def test_a_reset_mid_body_breaks_a_get_after_its_headers(proxy: FaultProxy, via: Any, direct: Any, bucket: str) -> None:
    body = bytes(range(256)) * 400
    direct.put_object(Bucket=bucket, Key="big.bin", Body=body)
    proxy.add_rule(Rule(RESET_BODY, operation="GetObject"))

    response = via.get_object(Bucket=bucket, Key="big.bin")  # status and headers arrive whole
    assert response["ContentLength"] == len(body)
    with pytest.raises(ResponseStreamingError):
        response["Body"].read()

    assert via.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == body


def test_a_reset_mid_body_of_a_head_is_an_error_never_a_head_with_half_its_headers(
    proxy: FaultProxy, via: Any, direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata={"ingest-source-key": "k" * 200})
    proxy.add_rule(Rule(RESET_BODY, operation="HeadObject", times=None))

    for _ in range(5):
        with pytest.raises((ConnectionClosedError, HTTPClientError)):
            via.head_object(Bucket=bucket, Key="k")


def test_a_reset_mid_body_sends_about_half_the_body(proxy: FaultProxy, direct: Any, bucket: str) -> None:
    body = b"0123456789" * 1000
    direct.put_object(Bucket=bucket, Key="k", Body=body)
    proxy.add_rule(Rule(RESET_BODY, operation="GetObject"))
    conn = raw_connection(proxy)
    try:
        conn.request("GET", presigned(proxy, "GET", bucket, "k"))
        response = conn.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as raised:
            response.read()  # Content-Length promised more than arrives
    finally:
        conn.close()
    received = raised.value.partial
    assert 0 < len(received) < len(body)
    assert body.startswith(received)


def test_a_delay_forwards_the_request_only_after_its_sleep(
    proxy: FaultProxy, via: Any, direct: Any, bucket: str
) -> None:
    """The window a race test needs: a write made while the request sleeps in the proxy is what it sees."""
    direct.put_object(Bucket=bucket, Key="k", Body=b"before")
    arrived = threading.Event()
    proxy.add_rule(Rule(DELAY, operation="GetObject", delay=1.0, action=lambda request: arrived.set()))
    result: dict[str, bytes] = {}
    reader = threading.Thread(target=lambda: result.update(body=via.get_object(Bucket=bucket, Key="k")["Body"].read()))
    reader.start()
    assert arrived.wait(30)
    direct.put_object(Bucket=bucket, Key="k", Body=b"after")
    reader.join(60)

    assert result == {"body": b"after"}
    assert proxy.injected == {(DELAY, "GetObject"): 1}


def test_a_body_the_server_cut_short_closes_the_clients_connection_at_once() -> None:
    """rclone serve s3 can declare a Content-Length and close before the body is whole (a GET meeting a rewrite
    of the same object in place). The proxy must pass the cut on: a kept-alive connection would leave the
    client waiting for the missing bytes until its read timeout (the CLI's is 120 s), a hang no server causes."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def upstream() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\nETag: "x"\r\n\r\n' + b"0123456789")

    server = threading.Thread(target=upstream, daemon=True)
    server.start()
    with FaultProxy(f"http://127.0.0.1:{port}", seed=1) as cutting:
        client = http.client.HTTPConnection("127.0.0.1", int(cutting.url.rsplit(":", 1)[1]), timeout=10)
        client.request("GET", "/bucket/key")
        answer = client.getresponse()
        assert answer.status == 200
        with pytest.raises(http.client.IncompleteRead) as cut:  # a hang would be a TimeoutError after 10 s
            answer.read()
        client.close()
    server.join(10)
    listener.close()

    assert cut.value.partial == b"0123456789"


def test_an_action_runs_before_the_request_is_forwarded(proxy: FaultProxy, via: Any, direct: Any, bucket: str) -> None:
    direct.put_object(Bucket=bucket, Key="src.csv", Body=b"listed version")

    def rewrite(request: Request) -> None:
        direct.put_object(Bucket=bucket, Key="src.csv", Body=b"rewritten in the window")

    proxy.add_rule(Rule(None, operation="CopyObject", action=rewrite))
    via.copy_object(Bucket=bucket, Key="dst.csv", CopySource={"Bucket": bucket, "Key": "src.csv"})

    assert direct.get_object(Bucket=bucket, Key="dst.csv")["Body"].read() == b"rewritten in the window"
    assert proxy.injected == {}
    assert proxy.log[-1] == Logged("CopyObject", "dst.csv", None)


# ---- rules ----------------------------------------------------------------------------------------------------


def outcomes(s3: Any, bucket: str, key: str, count: int) -> list[str]:
    result = []
    for n in range(count):
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=f"{n}".encode())
            result.append("ok")
        except ClientError as err:
            result.append(err.response["Error"]["Code"])
    return result


def test_a_rule_hits_exactly_times_matches_after_skipping_after(proxy: FaultProxy, via: Any, bucket: str) -> None:
    rule = proxy.add_rule(Rule(ERROR_500, operation="PutObject", key="target.csv", times=2, after=1))

    other = outcomes(via, bucket, "other.csv", 2)
    hit = outcomes(via, bucket, "dir/target.csv", 5)

    assert other == ["ok", "ok"]
    assert hit == ["ok", "InternalError", "InternalError", "ok", "ok"]
    assert (rule.matched, rule.hits, rule.exhausted) == (5, 2, True)


def test_a_rule_with_times_none_hits_every_match_from_after_on(proxy: FaultProxy, via: Any, bucket: str) -> None:
    proxy.add_rule(Rule(ERROR_500, operation="PutObject", times=None, after=2))

    assert outcomes(via, bucket, "k", 5) == ["ok", "ok", "InternalError", "InternalError", "InternalError"]
    proxy.clear()
    assert outcomes(via, bucket, "k", 1) == ["ok"]


def test_rules_are_consulted_in_order_and_the_first_in_its_window_wins(
    proxy: FaultProxy, via: Any, bucket: str
) -> None:
    first = proxy.add_rule(Rule(SLOWDOWN, operation="PutObject", times=1, after=1))
    second = proxy.add_rule(Rule(ERROR_500, operation="PutObject", times=1))

    assert outcomes(via, bucket, "k", 3) == ["InternalError", "SlowDown", "ok"]
    assert (first.matched, first.hits, second.matched, second.hits) == (3, 1, 2, 1)


def test_a_rule_matches_a_regex_and_the_ledger_keys(proxy: FaultProxy, via: Any, bucket: str) -> None:
    lock = proxy.add_rule(Rule(LOST_AFTER, operation="PutObject", key="lock.json", times=None))
    csv = proxy.add_rule(Rule(ERROR_500, operation="PutObject", key=re.compile(r"\.csv$"), times=None))

    assert outcomes(via, bucket, "_ingestion/movielens/lock.json", 1) == ["InternalError"]
    assert outcomes(via, bucket, "movielens/a.csv", 1) == ["InternalError"]
    assert outcomes(via, bucket, "movielens/a.csv.bak", 1) == ["ok"]
    assert (lock.hits, csv.hits) == (1, 1)
    assert proxy.injected == {(LOST_AFTER, "PutObject"): 1, (ERROR_500, "PutObject"): 1}


def test_a_rule_for_several_operations_and_one_bucket(
    proxy: FaultProxy, via: Any, direct: Any, bucket: str, moto_server: str
) -> None:
    other_bucket = f"proxy-other-{uuid.uuid4().hex[:8]}"
    direct.create_bucket(Bucket=other_bucket)
    direct.put_object(Bucket=bucket, Key="k", Body=b"x")
    direct.put_object(Bucket=other_bucket, Key="k", Body=b"x")
    proxy.add_rule(Rule(ERROR_500, operation=("HeadObject", "GetObject"), bucket=bucket, times=None))

    via.head_object(Bucket=other_bucket, Key="k")
    for call in (via.head_object, via.get_object):
        with pytest.raises(ClientError):
            call(Bucket=bucket, Key="k")
    assert proxy.injected == {(ERROR_500, "HeadObject"): 1, (ERROR_500, "GetObject"): 1}


# ---- classification -------------------------------------------------------------------------------------------


def test_every_operation_the_runtime_makes_is_classified_with_its_decoded_key(
    proxy: FaultProxy, via: Any, direct: Any, moto_server: str
) -> None:
    bucket = f"proxy-ops-{uuid.uuid4().hex[:8]}"
    key = "dir/a b+c%25 é/x.csv"
    via.create_bucket(Bucket=bucket)
    via.head_bucket(Bucket=bucket)
    via.put_object(Bucket=bucket, Key=key, Body=b"v")
    via.head_object(Bucket=bucket, Key=key)
    via.get_object(Bucket=bucket, Key=key)["Body"].read()
    via.copy_object(Bucket=bucket, Key="copy.csv", CopySource={"Bucket": bucket, "Key": key})
    via.list_objects_v2(Bucket=bucket, Prefix="dir/")
    via.delete_object(Bucket=bucket, Key="copy.csv")
    via.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})
    upload = via.create_multipart_upload(Bucket=bucket, Key="mp.bin")["UploadId"]
    part = via.upload_part(Bucket=bucket, Key="mp.bin", UploadId=upload, PartNumber=1, Body=b"p")
    via.complete_multipart_upload(
        Bucket=bucket,
        Key="mp.bin",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    aborted = via.create_multipart_upload(Bucket=bucket, Key="gone.bin")["UploadId"]
    via.abort_multipart_upload(Bucket=bucket, Key="gone.bin", UploadId=aborted)

    assert [(entry.operation, entry.key) for entry in proxy.log] == [
        ("CreateBucket", None),
        ("HeadBucket", None),
        ("PutObject", key),
        ("HeadObject", key),
        ("GetObject", key),
        ("CopyObject", "copy.csv"),
        ("ListObjectsV2", None),
        ("DeleteObject", "copy.csv"),
        ("DeleteObjects", None),
        ("CreateMultipartUpload", "mp.bin"),
        ("UploadPart", "mp.bin"),
        ("CompleteMultipartUpload", "mp.bin"),
        ("CreateMultipartUpload", "gone.bin"),
        ("AbortMultipartUpload", "gone.bin"),
    ]
    assert all(entry.fault is None for entry in proxy.log)


def test_a_managed_multipart_copy_is_upload_part_copies_with_the_bytes_intact(
    proxy: FaultProxy, via: Any, direct: Any, bucket: str
) -> None:
    body = bytes(range(256)) * (6 * MiB // 256 + 1)
    direct.put_object(Bucket=bucket, Key="src.bin", Body=body)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, use_threads=False)

    via.copy({"Bucket": bucket, "Key": "src.bin"}, bucket, "dst.bin", Config=config)

    operations = [entry.operation for entry in proxy.log if entry.key == "dst.bin"]
    assert operations == ["CreateMultipartUpload", "UploadPartCopy", "UploadPartCopy", "CompleteMultipartUpload"]
    assert direct.get_object(Bucket=bucket, Key="dst.bin")["Body"].read() == body


@pytest.mark.parametrize(
    ("method", "target", "copy_source", "expected"),
    [
        ("GET", "/", False, ("ListBuckets", None, None)),
        ("GET", "/b?list-type=2&prefix=x%2F", False, ("ListObjectsV2", "b", None)),
        ("GET", "/b/", False, ("ListObjects", "b", None)),
        ("PUT", "/b", False, ("CreateBucket", "b", None)),
        ("HEAD", "/b", False, ("HeadBucket", "b", None)),
        ("POST", "/b?delete", False, ("DeleteObjects", "b", None)),
        ("POST", "/b/k%2Fk?uploads", False, ("CreateMultipartUpload", "b", "k/k")),
        ("POST", "/b/k?uploadId=u", False, ("CompleteMultipartUpload", "b", "k")),
        ("DELETE", "/b/k?uploadId=u", False, ("AbortMultipartUpload", "b", "k")),
        ("PUT", "/b/k?partNumber=1&uploadId=u", True, ("UploadPartCopy", "b", "k")),
        ("PUT", "/b/k?partNumber=1&uploadId=u", False, ("UploadPart", "b", "k")),
        ("PUT", "/b/a//b.csv?x-id=CopyObject", True, ("CopyObject", "b", "a//b.csv")),
        ("PUT", "/b/k?tagging", False, ("other", "b", "k")),
        ("GET", "/b/k?versionId=3", False, ("GetObject", "b", "k")),
        ("GET", "/b/k?uploadId=u", False, ("ListParts", "b", "k")),
    ],
)
def test_classify(method: str, target: str, copy_source: bool, expected: tuple[str, str | None, str | None]) -> None:
    assert classify(method, target, copy_source=copy_source) == expected


# ---- framing --------------------------------------------------------------------------------------------------


def test_a_chunked_request_body_is_forwarded_with_its_framing(proxy: FaultProxy, direct: Any, bucket: str) -> None:
    conn = raw_connection(proxy)
    try:
        target = presigned(proxy, "PUT", bucket, "chunked.txt")
        conn.request("PUT", target, body=iter([b"hello, ", b"chunked ", b"world"]), encode_chunked=True)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    finally:
        conn.close()
    assert direct.get_object(Bucket=bucket, Key="chunked.txt")["Body"].read() == b"hello, chunked world"


def test_many_concurrent_clients_share_the_proxy(proxy: FaultProxy, direct: Any, bucket: str) -> None:
    via = s3_client(proxy.url)
    bodies = {f"k{n:03d}": uuid.uuid4().bytes * 50 for n in range(40)}
    threads = [
        threading.Thread(target=via.put_object, kwargs={"Bucket": bucket, "Key": k, "Body": b})
        for k, b in bodies.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert {k: direct.get_object(Bucket=bucket, Key=k)["Body"].read() for k in bodies} == bodies


# ---- seeded rates ---------------------------------------------------------------------------------------------


def fault_sequence(moto_server: str, bucket: str, seed: int) -> list[Any]:
    rates = {SLOWDOWN: 0.2, ERROR_500: 0.2, LOST_AFTER: 0.15}
    with FaultProxy(moto_server, seed=seed, rates=rates) as proxy:
        via = s3_client(proxy.url, attempts=1)
        outcomes(via, bucket, "seeded.csv", 24)
        return [entry.fault for entry in proxy.log]


def test_one_seed_gives_one_fault_sequence_for_sequential_requests(moto_server: str, bucket: str) -> None:
    first = fault_sequence(moto_server, bucket, seed=7)
    again = fault_sequence(moto_server, bucket, seed=7)
    other = fault_sequence(moto_server, bucket, seed=8)

    assert first == again
    assert first != other
    assert {SLOWDOWN, ERROR_500, LOST_AFTER} <= set(first)
    assert None in first


def test_rates_can_be_limited_to_some_operations(moto_server: str, direct: Any, bucket: str) -> None:
    direct.put_object(Bucket=bucket, Key="k", Body=b"x")
    with FaultProxy(moto_server, seed=1, rates={ERROR_500: 1.0}, rate_operations={"HeadObject"}) as proxy:
        via = s3_client(proxy.url, attempts=1)
        assert via.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
        with pytest.raises(ClientError):
            via.head_object(Bucket=bucket, Key="k")
        assert proxy.injected == {(ERROR_500, "HeadObject"): 1}


def test_rates_must_add_up_to_at_most_one(moto_server: str) -> None:
    with pytest.raises(ValueError):
        FaultProxy(moto_server, rates={SLOWDOWN: 0.6, ERROR_500: 0.6})


# ---- in front of rclone ---------------------------------------------------------------------------------------


def test_in_front_of_rclone_requests_pass_signed_and_faults_are_injected(rclone_server: str) -> None:
    """rclone checks SigV4 over the Host header: the proxy must forward it untouched for anything to work."""
    direct = s3_client(rclone_server, credentials=RCLONE_CREDENTIALS)
    bucket = f"proxy-{uuid.uuid4().hex[:12]}"
    with FaultProxy(rclone_server, seed=3) as proxy:
        via = s3_client(proxy.url, attempts=1, credentials=RCLONE_CREDENTIALS)
        via.create_bucket(Bucket=bucket)
        via.put_object(Bucket=bucket, Key="dir/plain.csv", Body=b"through the proxy", Metadata={"a": "b"})
        assert via.get_object(Bucket=bucket, Key="dir/plain.csv")["Body"].read() == b"through the proxy"

        proxy.add_rule(Rule(LOST_AFTER, operation="PutObject", key="lost.csv"))
        with pytest.raises(ClientError) as raised:
            via.put_object(Bucket=bucket, Key="dir/lost.csv", Body=b"applied")
        assert error_code(raised.value) == (500, "InternalError")

        assert direct.get_object(Bucket=bucket, Key="dir/lost.csv")["Body"].read() == b"applied"
        assert proxy.injected == {(LOST_AFTER, "PutObject"): 1}


def test_applied_writes_are_recorded_with_their_metadata_even_when_the_answer_was_lost(
    proxy: FaultProxy, via: Any, direct: Any, bucket: str
) -> None:
    proxy.add_rule(Rule(LOST_AFTER, operation="PutObject", key="lost.csv"))
    proxy.add_rule(Rule(ERROR_500, operation="PutObject", key="refused.csv"))
    via.put_object(Bucket=bucket, Key="kept.csv", Body=b"x", Metadata={"Ingest-Run-Id": "r1"})
    for key in ("lost.csv", "refused.csv"):
        with pytest.raises(ClientError):
            via.put_object(Bucket=bucket, Key=key, Body=b"x", Metadata={"ingest-run-id": "r2"})
    via.get_object(Bucket=bucket, Key="kept.csv")["Body"].read()

    assert [(a.operation, a.key, a.status, a.meta) for a in proxy.applied] == [
        ("PutObject", "kept.csv", 200, {"ingest-run-id": "r1"}),
        ("PutObject", "lost.csv", 200, {"ingest-run-id": "r2"}),
    ]


# ---- the S3 model: what S3 answers where moto differs (s3model.py) --------------------------------------------


@pytest.fixture(scope="module")
def modelled_proxy(moto_server: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_server, seed=11, model=S3Model()) as running:
        yield running


@pytest.fixture
def modelled(modelled_proxy: FaultProxy) -> FaultProxy:
    """A proxy with an S3 model, fresh for each test."""
    modelled_proxy.reset(seed=11)
    assert modelled_proxy.model is not None
    modelled_proxy.model.__init__()  # type: ignore[misc]
    return modelled_proxy


@pytest.fixture(scope="module")
def s3(modelled_proxy: FaultProxy) -> Any:
    """boto3 through the modelled proxy, retries off."""
    return s3_client(modelled_proxy.url, attempts=1)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def listed(client: Any, bucket: str) -> dict[str, dict[str, Any]]:
    return {o["Key"]: o for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}


@pytest.mark.parametrize("encryption", ["aws:kms", "aws:kms:dsse", "SSE-C"])
def test_an_encrypted_buckets_etags_are_not_md5s_and_agree_in_every_answer(
    modelled: FaultProxy, s3: Any, direct: Any, bucket: str, encryption: str
) -> None:
    assert modelled.model is not None
    modelled.model.encrypt(bucket, encryption)
    body = b"id,name\n1,a\n"

    put = s3.put_object(Bucket=bucket, Key="data/a b+c.csv", Body=body)["ETag"].strip('"')
    head = s3.head_object(Bucket=bucket, Key="data/a b+c.csv")
    got = s3.get_object(Bucket=bucket, Key="data/a b+c.csv")
    copy = s3.copy_object(Bucket=bucket, Key="copy.csv", CopySource={"Bucket": bucket, "Key": "data/a b+c.csv"})

    assert re.fullmatch(r"[0-9a-f]{32}", put) and put != md5(body)
    assert direct.head_object(Bucket=bucket, Key="data/a b+c.csv")["ETag"].strip('"') == md5(body)  # moto's own
    assert head["ETag"].strip('"') == got["ETag"].strip('"') == put
    assert got["Body"].read() == body
    assert listed(s3, bucket)["data/a b+c.csv"]["ETag"].strip('"') == put
    landed = copy["CopyObjectResult"]["ETag"].strip('"')
    assert landed not in (put, md5(body))  # another key, another ETag, though the bytes are the same
    assert s3.head_object(Bucket=bucket, Key="copy.csv")["ETag"].strip('"') == landed
    assert listed(s3, bucket)["copy.csv"]["ETag"].strip('"') == landed
    if encryption == "SSE-C":
        assert head["SSECustomerAlgorithm"] == "AES256" and "ServerSideEncryption" not in head
    else:
        for answer in (head, got, copy):
            assert answer["ServerSideEncryption"] == encryption
            assert answer["SSEKMSKeyId"].startswith("arn:aws:kms:")


def test_the_same_bytes_in_two_kms_buckets_have_two_etags_and_an_sse_s3_bucket_keeps_the_md5(
    modelled: FaultProxy, s3: Any, direct: Any
) -> None:
    assert modelled.model is not None
    names = []
    for encryption in ("aws:kms", "aws:kms", "AES256"):
        name = f"model-{uuid.uuid4().hex[:12]}"
        direct.create_bucket(Bucket=name)
        modelled.model.encrypt(name, encryption)
        names.append(name)
    etags = [s3.put_object(Bucket=name, Key="k", Body=b"same bytes")["ETag"].strip('"') for name in names]

    assert etags[0] != etags[1]
    assert etags[2] == md5(b"same bytes")
    assert s3.head_object(Bucket=names[2], Key="k")["ServerSideEncryption"] == "AES256"


def test_conditions_on_modelled_etags_hold_and_fail_as_on_s3(modelled: FaultProxy, s3: Any, bucket: str) -> None:
    assert modelled.model is not None
    modelled.model.encrypt(bucket, "aws:kms")
    etag = s3.put_object(Bucket=bucket, Key="src", Body=b"v1")["ETag"]
    the_md5 = f'"{md5(b"v1")}"'

    assert s3.head_object(Bucket=bucket, Key="src", IfMatch=etag)["ETag"] == etag
    assert s3.get_object(Bucket=bucket, Key="src", IfMatch=etag)["Body"].read() == b"v1"
    for condition in ({"IfMatch": the_md5}, {"IfNoneMatch": etag}):
        with pytest.raises(ClientError) as raised:
            s3.head_object(Bucket=bucket, Key="src", **condition)
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] in (304, 412)
    s3.copy_object(Bucket=bucket, Key="dst1", CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfMatch=etag)
    with pytest.raises(ClientError) as raised:  # the MD5 is not this object's ETag on S3, so not here
        s3.copy_object(
            Bucket=bucket, Key="dst2", CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfMatch=the_md5
        )  # noqa: E501
    assert error_code(raised.value) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=bucket, Key="src", Body=b"v2", IfMatch=the_md5)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    s3.put_object(Bucket=bucket, Key="src", Body=b"v2", IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"v2"


# ---- checksums


def test_checksum_values_are_s3s() -> None:
    assert crc64nvme(b"123456789") == 0xAE8B14860A799888
    assert crc32c(b"123456789") == 0xE3069283
    assert checksum("CRC32", b"123456789") == base64.b64encode(bytes.fromhex("cbf43926")).decode()
    assert checksum("CRC64NVME", b"") == base64.b64encode(bytes(8)).decode()


def test_head_with_checksum_mode_answers_the_objects_algorithm_and_value_computed_from_its_bytes(
    modelled: FaultProxy, s3: Any, direct: Any, bucket: str
) -> None:
    assert modelled.model is not None
    body = b"x" * 1000
    modelled.model.put_algorithm[bucket] = "CRC64NVME"  # as a tool that sends no checksum uploads it
    s3.put_object(Bucket=bucket, Key="default", Body=body)
    del modelled.model.put_algorithm[bucket]
    s3.put_object(Bucket=bucket, Key="boto3", Body=body)  # boto3 sends CRC32
    direct.put_object(Bucket=bucket, Key="unseen", Body=body)  # written behind the model's back: S3's default

    default = s3.head_object(Bucket=bucket, Key="default", ChecksumMode="ENABLED")
    boto3_put = s3.head_object(Bucket=bucket, Key="boto3", ChecksumMode="ENABLED")
    unseen = s3.head_object(Bucket=bucket, Key="unseen", ChecksumMode="ENABLED")
    plain = s3.head_object(Bucket=bucket, Key="boto3")

    assert default["ChecksumCRC64NVME"] == unseen["ChecksumCRC64NVME"] == checksum("CRC64NVME", body)
    assert default["ChecksumType"] == "FULL_OBJECT" and "ChecksumCRC32" not in default
    assert boto3_put["ChecksumCRC32"] == checksum("CRC32", body) and "ChecksumCRC64NVME" not in boto3_put
    assert boto3_put["ContentLength"] == 1000  # asked as a GET upstream, answered as a HEAD
    assert not any(name.startswith("Checksum") for name in plain)
    got = s3.get_object(Bucket=bucket, Key="boto3", ChecksumMode="ENABLED")  # botocore validates the CRC32 itself
    assert got["Body"].read() == body and got["ChecksumCRC32"] == checksum("CRC32", body)
    assert listed(s3, bucket)["boto3"]["ChecksumAlgorithm"] == ["CRC32"]
    assert listed(s3, bucket)["default"]["ChecksumAlgorithm"] == ["CRC64NVME"]


def test_a_copy_gets_the_algorithm_it_asks_for_or_keeps_the_sources(modelled: FaultProxy, s3: Any, bucket: str) -> None:
    """moto labels the source's CRC32 as CRC64NVME on such a copy; the model answers S3's values."""
    body = b"copied, checksummed\n" * 50
    s3.put_object(Bucket=bucket, Key="src", Body=body)  # CRC32, as boto3 uploads

    asked = s3.copy_object(
        Bucket=bucket, Key="asked", CopySource={"Bucket": bucket, "Key": "src"}, ChecksumAlgorithm="CRC64NVME"
    )
    kept = s3.copy_object(Bucket=bucket, Key="kept", CopySource={"Bucket": bucket, "Key": "src"})

    result = asked["CopyObjectResult"]
    assert result["ChecksumCRC64NVME"] == checksum("CRC64NVME", body) and result["ChecksumType"] == "FULL_OBJECT"
    assert "ChecksumCRC32" not in result
    assert s3.head_object(Bucket=bucket, Key="asked", ChecksumMode="ENABLED")["ChecksumCRC64NVME"] == (
        checksum("CRC64NVME", body)
    )
    assert kept["CopyObjectResult"]["ChecksumCRC32"] == checksum("CRC32", body)
    assert s3.head_object(Bucket=bucket, Key="kept", ChecksumMode="ENABLED")["ChecksumCRC32"] == checksum("CRC32", body)


def test_a_multipart_upload_lands_with_the_algorithm_it_asked_for_and_an_encrypted_etag(
    modelled: FaultProxy, s3: Any, bucket: str
) -> None:
    assert modelled.model is not None
    modelled.model.encrypt(bucket, "aws:kms")
    body = b"one part\n" * 100
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32C")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=body)

    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]}
    )

    etag = done["ETag"].strip('"')
    assert re.fullmatch(r"[0-9a-f]{32}-1", etag)
    assert done["ChecksumCRC32C"] == checksum("CRC32C", body) and done["ServerSideEncryption"] == "aws:kms"
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert head["ETag"].strip('"') == etag and head["ChecksumCRC32C"] == checksum("CRC32C", body)


def test_moto_alone_gives_kms_objects_md5_etags_and_mislabels_a_copied_checksum(direct: Any, bucket: str) -> None:
    """Why the model exists; when this fails, moto has learnt what the model adds."""
    direct.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
        },
    )
    body = b"moto's view\n" * 10
    etag = direct.put_object(Bucket=bucket, Key="src", Body=body)["ETag"].strip('"')
    copy = direct.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, ChecksumAlgorithm="CRC64NVME"
    )

    assert etag == md5(body)  # S3: not the MD5 for SSE-KMS
    assert copy["CopyObjectResult"]["ChecksumCRC64NVME"] != checksum("CRC64NVME", body)
    assert copy["CopyObjectResult"]["ChecksumCRC64NVME"] == checksum("CRC32", body)  # the CRC32, mislabelled


def test_a_corrupted_landing_has_a_checksum_that_is_not_its_bytes(modelled: FaultProxy, s3: Any, bucket: str) -> None:
    assert modelled.model is not None
    s3.put_object(Bucket=bucket, Key="src", Body=b"source bytes")
    modelled.model.corrupt(bucket, "bad")
    modelled.model.corrupt(bucket, "ad-", exact=False, times=2)

    bad = s3.copy_object(Bucket=bucket, Key="bad", CopySource={"Bucket": bucket, "Key": "src"})
    good = s3.copy_object(Bucket=bucket, Key="good", CopySource={"Bucket": bucket, "Key": "src"})

    source = s3.head_object(Bucket=bucket, Key="src", ChecksumMode="ENABLED")["ChecksumCRC32"]
    assert good["CopyObjectResult"]["ChecksumCRC32"] == source
    assert bad["CopyObjectResult"]["ChecksumCRC32"] != source
    assert s3.head_object(Bucket=bucket, Key="bad", ChecksumMode="ENABLED")["ChecksumCRC32"] != source
    landings = [
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": "src"})["CopyObjectResult"]
        for key in ("bad-1", "bad-2", "bad-3")
    ]
    assert [landing["ChecksumCRC32"] == source for landing in landings] == [False, False, True]


# ---- throttling storms


def test_a_storm_throttles_its_share_of_requests_in_its_window_only(
    modelled: FaultProxy, s3: Any, direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="k", Body=b"x")
    modelled.start_storm(0.5, 60)
    during = [_status(s3, bucket) for _ in range(60)]
    modelled.start_storm(1.0, 0.3)  # its window opens at the next request
    short = [_status(s3, bucket)]
    time.sleep(0.5)
    short += [_status(s3, bucket) for _ in range(5)]

    assert set(during) == {200, 503} and 15 <= during.count(503) <= 45  # binomial(60, 0.5): 3.9 sd either side
    assert short == [503, 200, 200, 200, 200, 200]
    assert modelled.per_operation()["HeadObject"] == 66
    assert modelled.attempts_per_object(bucket) == {("HeadObject", bucket, "k"): 66}
    body = _raw_head_of_a_throttle(modelled, bucket)
    assert b"<Code>SlowDown</Code>" in body


def _status(s3: Any, bucket: str) -> int:
    try:
        s3.head_object(Bucket=bucket, Key="k")
        return 200
    except ClientError as err:
        return int(err.response["ResponseMetadata"]["HTTPStatusCode"])


def _raw_head_of_a_throttle(proxy: FaultProxy, bucket: str) -> bytes:
    proxy.add_rule(Rule(SLOWDOWN, operation="GetObject"))
    conn = raw_connection(proxy)
    try:
        conn.request("GET", presigned(proxy, "GET", bucket, "k"))
        response = conn.getresponse()
        assert (response.status, response.reason) == (503, "Slow Down")
        return response.read()
    finally:
        conn.close()


def test_repeats_of_a_throttled_request_are_counted_with_their_spacing(
    modelled: FaultProxy, direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="k", Body=b"x")
    retrying = s3_client(modelled.url, attempts=5)
    modelled.add_rule(Rule(SLOWDOWN, operation="HeadObject", times=2))

    retrying.head_object(Bucket=bucket, Key="k")

    assert modelled.attempts_per_object(bucket)[("HeadObject", bucket, "k")] == 3
    gaps = modelled.repeat_gaps(bucket)
    assert len(gaps) == 2 and all(gap > 0 for gap in gaps)  # botocore's standard mode backs off between tries


# ---- a server clock of its own


@pytest.mark.parametrize("offset", [600, -600])
def test_a_skewed_server_clock_moves_dates_and_last_modified_everywhere(
    modelled: FaultProxy, s3: Any, direct: Any, bucket: str, offset: int
) -> None:
    assert modelled.model is not None
    modelled.model.clock_offset = offset
    direct.put_object(Bucket=bucket, Key="k", Body=b"x")
    truth = direct.head_object(Bucket=bucket, Key="k")["LastModified"]

    head = s3.head_object(Bucket=bucket, Key="k")
    listing = listed(s3, bucket)["k"]
    copy = s3.copy_object(Bucket=bucket, Key="k2", CopySource={"Bucket": bucket, "Key": "k"})
    served = parsedate_to_datetime(head["ResponseMetadata"]["HTTPHeaders"]["date"])

    assert (head["LastModified"] - truth).total_seconds() == offset
    assert (listing["LastModified"] - truth).total_seconds() == offset
    assert abs((copy["CopyObjectResult"]["LastModified"] - datetime.now(UTC)).total_seconds() - offset) < 5
    assert abs((served - datetime.now(UTC)).total_seconds() - offset) < 5
    modelled.add_rule(Rule(SLOWDOWN, operation="HeadObject"))
    with pytest.raises(ClientError) as raised:
        s3.head_object(Bucket=bucket, Key="k")
    error_date = parsedate_to_datetime(raised.value.response["ResponseMetadata"]["HTTPHeaders"]["date"])
    assert abs((error_date - datetime.now(UTC)).total_seconds() - offset) < 5
