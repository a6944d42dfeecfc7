"""The short road carries content checksums as botocore does (issue 22): `x-amz-checksum-mode` on HEAD,
`x-amz-checksum-algorithm` on CopyObject, and the checksum fields of both answers, named as botocore names them.

A stub endpoint answers as S3 does for an SSE-KMS object (its ETag no MD5, `x-amz-checksum-type`), which moto
does not; the same answer read through botocore is the reference."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from handler.integrity import Checksum, Facts
from handler.store import Store
from tests.conftest import REGION
from tests.stub_server import Answering, serving

KMS_ETAG = '"9b2cf535f27731c974343645a3985328"'
CRC = "Q2hlY2tzdW0="
COPIED_CRC = "TGFuZGVkIQ=="


class _KmsObject(Answering):
    """One SSE-KMS object with a CRC64NVME checksum, and copies of it, as S3 answers them."""

    requests: list[tuple[str, dict[str, str]]] = []

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        type(self).requests.append(("HEAD", {k.lower(): v for k, v in self.headers.items()}))
        headers = {
            "ETag": KMS_ETAG,
            "Last-Modified": "Thu, 03 Dec 2026 06:48:57 GMT",
            "Content-Type": "text/csv",
            "x-amz-server-side-encryption": "aws:kms",
            "x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:us-east-1:111122223333:key/k",
        }
        if self.headers.get("x-amz-checksum-mode") == "ENABLED":
            headers.update({"x-amz-checksum-crc64nvme": CRC, "x-amz-checksum-type": "FULL_OBJECT"})
        self._answer(200, b"", headers)

    def do_PUT(self) -> None:  # noqa: N802
        type(self).requests.append(("PUT", {k.lower(): v for k, v in self.headers.items()}))
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult><ETag>"0c4f0b5e8f1a6f1f9d1e7a2b3c4d5e6f"</ETag>'
            b"<LastModified>2026-12-03T06:48:57.000Z</LastModified>"
            b"<ChecksumType>FULL_OBJECT</ChecksumType><ChecksumCRC64NVME>"
            + COPIED_CRC.encode()
            + b"</ChecksumCRC64NVME>"
            b"</CopyObjectResult>"
        )
        self._answer(200, body, {"Content-Type": "application/xml", "x-amz-server-side-encryption": "aws:kms:dsse"})


@pytest.fixture(name="kms")
def kms_fixture() -> Iterator[str]:
    _KmsObject.requests = []
    with serving(_KmsObject) as url:
        yield url


def _botocore(url: str) -> Any:
    return boto3.client("s3", endpoint_url=url, region_name=REGION)


HEAD_FIELDS = ("ETag", "ServerSideEncryption", "SSEKMSKeyId", "ChecksumCRC64NVME", "ChecksumType", "ContentType")


def test_a_head_with_checksum_mode_answers_the_checksum_as_botocore_does(kms):
    road = Store.sized(endpoint_url=kms).fast_road
    assert road is not None

    ours = road.head_object(Bucket="src", Key="k.csv", ChecksumMode="ENABLED")
    theirs = _botocore(kms).head_object(Bucket="src", Key="k.csv", ChecksumMode="ENABLED")

    assert {f: ours.get(f) for f in HEAD_FIELDS} == {f: theirs.get(f) for f in HEAD_FIELDS}
    assert ours["ChecksumCRC64NVME"] == CRC and ours["ChecksumType"] == "FULL_OBJECT"
    assert [headers.get("x-amz-checksum-mode") for _, headers in _KmsObject.requests] == ["ENABLED", "ENABLED"]
    assert Facts.of(ours) == Facts(KMS_ETAG.strip('"'), "aws:kms", Checksum("CRC64NVME", CRC))


def test_a_head_without_checksum_mode_does_not_ask_for_one(kms):
    answer = Store.sized(endpoint_url=kms).head("src", "k.csv")

    assert "ChecksumCRC64NVME" not in answer
    assert "x-amz-checksum-mode" not in _KmsObject.requests[0][1]


def test_a_copy_asking_for_a_checksum_takes_the_road_and_answers_it_as_botocore_does(kms):
    store = Store.sized(endpoint_url=kms)
    params = {
        "Bucket": "raw",
        "Key": "landed.csv",
        "CopySource": {"Bucket": "src", "Key": "k.csv"},
        "IfNoneMatch": "*",
        "CopySourceIfMatch": KMS_ETAG,
        "ChecksumAlgorithm": "CRC64NVME",
    }

    ours = store.fast_road.copy_object(**params)  # Declined (and so botocore's) if the road did not send it
    theirs = _botocore(kms).copy_object(**params)

    for answer in (ours, theirs):
        result = answer["CopyObjectResult"]
        assert (result["ChecksumCRC64NVME"], result["ChecksumType"]) == (COPIED_CRC, "FULL_OBJECT")
        assert answer["ServerSideEncryption"] == "aws:kms:dsse"
    assert ours["CopyObjectResult"]["ETag"] == theirs["CopyObjectResult"]["ETag"]
    sent = [headers for method, headers in _KmsObject.requests if method == "PUT"]
    assert [h["x-amz-checksum-algorithm"] for h in sent] == ["CRC64NVME", "CRC64NVME"]
    assert sent[0]["user-agent"].startswith("data-file-ingestion (lean)")
    landed = Facts.of(ours, ours["CopyObjectResult"])
    assert (landed.encryption, landed.checksum) == ("aws:kms:dsse", Checksum("CRC64NVME", COPIED_CRC))
    assert not landed.md5_etag
