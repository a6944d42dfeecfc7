"""Integrity without trusting the ETag to be an MD5 (issue 22, item 1): the decision table, and the copier on a
client that models what moto does not.

The table runs every combination of source encryption, target encryption, source and copy part layouts, source
checksum, checksums reported or not, `source_metadata` mode and a source changed during the copy (by a server
that ignored CopySourceIfMatch) through integrity.judge, the way the copier does, with ETags and checksums made
as S3 documents them (handler/integrity.py cites the pages): a single-part SSE-S3 or unencrypted object's ETag
is the MD5 of its bytes, any other ETag is opaque; a checksum is a function of the bytes and its algorithm.

The copier tests use `KmsS3`, a stand-in client with S3's answers for encrypted objects (moto gives every object
an MD5 ETag and a wrong CRC64NVME on copy), at the seam the copier calls: head_object, copy_object,
delete_object. It honours If-None-Match on the copy and If-Match on HEAD and DELETE as S3 does; CopySourceIfMatch
is honoured unless the test says the server ignores it.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError

from handler import metadata as meta
from handler.copier import COPIED, FAILED, CopyContext, copy_one
from handler.integrity import (
    COMPOSITE,
    FULL_OBJECT,
    UNTYPED,
    Checksum,
    Facts,
    Verified,
    checksum_of,
    copy_algorithm,
    judge,
)
from handler.records import BatchItem, ManifestLine
from handler.store import Store

# ---- S3's rules, as a model ---------------------------------------------------------------------------------

MD5_KINDS = ("", "AES256")


def digest(body: bytes, algorithm: str) -> str:
    """A checksum value: a function of the bytes and the algorithm (CRC32 and SHA256 real, the rest stand-ins)."""
    if algorithm == "CRC32":
        raw = zlib.crc32(body).to_bytes(4, "big")
    elif algorithm == "SHA256":
        raw = hashlib.sha256(body).digest()
    else:
        raw = hashlib.blake2b(body, digest_size=8, person=algorithm.encode()[:16]).digest()
    return base64.b64encode(raw).decode()


def etag_of(body: bytes, encryption: str, parts: int) -> str:
    """S3's ETag: MD5 of the bytes for a single-part SSE-S3 or unencrypted object; opaque otherwise."""
    if parts > 1:
        size = -(-len(body) // parts)
        md5s = b"".join(hashlib.md5(body[i : i + size]).digest() for i in range(0, len(body), size))
        return f"{hashlib.md5(md5s).hexdigest()}-{parts}"
    if encryption in MD5_KINDS:
        return hashlib.md5(body).hexdigest()
    return uuid.uuid4().hex  # KMS, DSSE-KMS and SSE-C ETags: 32 hex digits, not an MD5 of the bytes


@dataclass(frozen=True)
class Version:
    """One stored object version, as S3 would describe it."""

    body: bytes
    encryption: str
    parts: int
    algorithm: str | None
    composite: bool = False

    @property
    def etag(self) -> str:
        return etag_of(self.body, self.encryption, self.parts)

    def facts(self, etag: str, *, checksums_reported: bool = True) -> Facts:
        checksum = None
        if self.algorithm and checksums_reported:
            value = digest(self.body, self.algorithm) + (f"-{self.parts}" if self.composite else "")
            checksum = Checksum(self.algorithm, value, COMPOSITE if self.composite else FULL_OBJECT)
        return Facts(etag, self.encryption, checksum)


def run_judge(
    listed: Version,
    landed_from: Version,
    target: str,
    copy_parts: int,
    *,
    carry: bool,
    changed: bool,
    reported: bool,
) -> tuple[Any, bool, str]:
    """The copier's decision on one copy: judge with what a carry HEAD read, then, if undecided, with the source
    as read after the copy. Returns (judgement, whether the source had to be read, the algorithm asked for)."""
    listed_etag = listed.etag
    source = listed.facts(listed_etag, checksums_reported=reported) if carry else None
    algorithm = copy_algorithm(source, multipart=copy_parts > 1)
    if algorithm is None:  # not asked: S3 carries the copied version's algorithm over, or gives its default
        algorithm = landed_from.algorithm if landed_from.algorithm and not landed_from.composite else "CRC64NVME"
    landed = Version(landed_from.body, target, copy_parts, algorithm).facts(
        etag_of(landed_from.body, target, copy_parts), checksums_reported=reported
    )
    judgement = judge(listed_etag, source, landed)
    if not judgement.undecided:
        return judgement, False, algorithm
    if changed:  # the source is now the newer version (a HEAD If-Match on the listed ETag was refused)
        now = landed_from.facts(landed_from.etag, checksums_reported=reported)
    else:
        now = listed.facts(listed_etag, checksums_reported=reported)
    return judge(listed_etag, source, landed, now), True, algorithm


SOURCE_ENCRYPTIONS = ("", "AES256", "aws:kms", "aws:kms:dsse", "SSE-C")
TARGET_ENCRYPTIONS = ("AES256", "aws:kms", "aws:kms:dsse")
SOURCE_CHECKSUMS = (None, ("CRC64NVME", False), ("CRC32", False), ("CRC32", True), ("SHA256", False))

CASES = [
    (src, tgt, src_parts, copy_parts, checksum, reported, carry, changed)
    for src, tgt, src_parts, copy_parts, checksum, reported, carry, changed in itertools.product(
        SOURCE_ENCRYPTIONS,
        TARGET_ENCRYPTIONS,
        (1, 3),
        (1, 2),
        SOURCE_CHECKSUMS,
        (True, False),
        (True, False),
        (False, True),
    )
    if not (checksum and checksum[1] and src_parts == 1)  # a composite checksum exists only on a multipart object
]


def _versions(src: str, src_parts: int, checksum: Any, changed: bool) -> tuple[Version, Version]:
    algorithm, composite = checksum if checksum else (None, False)
    listed = Version(b"listed version: 1,31,2.5\n" * 50, src, src_parts, algorithm, composite)
    newer = Version(b"newer version!: 9,99,0.5\n" * 50, src, src_parts, algorithm, composite)
    return listed, newer if changed else listed


@pytest.mark.parametrize("src, tgt, src_parts, copy_parts, checksum, reported, carry, changed", CASES)
def test_the_decision_never_removes_a_good_copy_and_never_keeps_one_it_can_prove_wrong(
    src, tgt, src_parts, copy_parts, checksum, reported, carry, changed
):
    listed, landed_from = _versions(src, src_parts, checksum, changed)

    judgement, _, algorithm = run_judge(
        listed, landed_from, tgt, copy_parts, carry=carry, changed=changed, reported=reported
    )

    assert not judgement.undecided
    if not changed:
        assert judgement.mismatch is None, "a copy of the listed bytes was judged different"
        return
    # The landed bytes are the newer version's. Provable when one checksum algorithm compares full-object values,
    # or both ETags are MD5s of the bytes (the landed copy then also equals the newer version's, read after).
    full = checksum is not None and not checksum[1]
    same_algorithm = full and reported and checksum[0] == algorithm
    both_md5 = src in MD5_KINDS and src_parts == 1 and tgt in MD5_KINDS and copy_parts == 1
    if same_algorithm or both_md5:
        assert judgement.mismatch, "a copy of another version was kept though a comparison proves it"
    else:
        assert judgement.verified == Verified.SIZE, "accepted by a comparison that cannot mean what it claims"


@pytest.mark.parametrize(
    "src, tgt, src_parts, copy_parts, checksum, carry, verified, reads_source",
    [
        # SSE-KMS and DSSE-KMS sources, single-part: checksums decide, whatever the ETags are.
        ("aws:kms", "AES256", 1, 1, ("CRC64NVME", False), True, Verified.CHECKSUM, False),
        ("aws:kms", "AES256", 1, 1, ("CRC64NVME", False), False, Verified.CHECKSUM, True),
        ("aws:kms", "aws:kms:dsse", 1, 1, ("CRC32", False), True, Verified.CHECKSUM, False),
        ("aws:kms:dsse", "aws:kms", 1, 1, ("SHA256", False), True, Verified.CHECKSUM, False),
        # Lineage mode asks for no algorithm: S3 carries the source's over, so a CRC32 source compares too.
        ("aws:kms", "AES256", 1, 1, ("CRC32", False), False, Verified.CHECKSUM, True),
        # An SSE-KMS object from before default checksums: size and the conditional copy.
        ("aws:kms", "AES256", 1, 1, None, True, Verified.SIZE, True),
        # SSE-S3 or unencrypted, single-part, into SSE-S3: the MD5 ETags agree without a second request.
        ("AES256", "AES256", 1, 1, None, False, Verified.ETAG, False),
        ("", "AES256", 1, 1, None, True, Verified.ETAG, False),
        # ... and into SSE-KMS: the landed ETag is no MD5; the checksum decides, else size.
        ("AES256", "aws:kms", 1, 1, ("CRC64NVME", False), False, Verified.CHECKSUM, True),
        ("AES256", "aws:kms", 1, 1, None, True, Verified.SIZE, True),
        # Multipart copies: CRC64NVME compares; a CRC32 source's full-object checksum cannot be asked through
        # s3transfer's managed copy (no ChecksumType), and a composite one compares with nothing.
        ("aws:kms", "AES256", 3, 2, ("CRC64NVME", False), True, Verified.CHECKSUM, False),
        ("AES256", "AES256", 3, 2, ("CRC32", False), True, Verified.SIZE, True),
        ("AES256", "AES256", 3, 2, ("CRC32", True), True, Verified.SIZE, True),
    ],
)
def test_what_verifies_each_kind_of_copy(src, tgt, src_parts, copy_parts, checksum, carry, verified, reads_source):
    """The README's table "what is verified how", row by row."""
    listed, _ = _versions(src, src_parts, checksum, changed=False)

    judgement, read, _ = run_judge(listed, listed, tgt, copy_parts, carry=carry, changed=False, reported=True)

    assert (judgement.verified, read) == (verified, reads_source)


def old_rule_removes(listed_etag: str, landed_etag: str, target_encryption: str) -> bool:
    """The copier's rule before issue 22: every 32-hex listed ETag an MD5, exempt only an `aws:kms` target."""
    plain_md5 = "-" not in listed_etag and len(listed_etag) == 32
    return plain_md5 and target_encryption != "aws:kms" and landed_etag != listed_etag


@pytest.mark.parametrize("src, tgt", [("aws:kms", "AES256"), ("aws:kms", "aws:kms:dsse"), ("AES256", "aws:kms:dsse")])
def test_the_old_rule_removed_every_good_single_part_copy_of_these_and_the_new_one_keeps_them(src, tgt):
    """Item 1 of the issue: an SSE-KMS source into SSE-S3, and anything into DSSE-KMS, never landed."""
    listed = Version(b"the very same bytes\n", src, 1, "CRC64NVME")
    landed_etag = etag_of(listed.body, tgt, 1)

    assert old_rule_removes(listed.etag, landed_etag, tgt)
    judgement, _, _ = run_judge(listed, listed, tgt, 1, carry=True, changed=False, reported=True)
    assert judgement.verified == Verified.CHECKSUM


# ---- the manifest's form of a checksum ----------------------------------------------------------------------


def test_a_checksum_reads_back_from_its_manifest_form_and_old_lines_still_read():
    full, composite = Checksum("CRC64NVME", "AbCd+/Ef=="), Checksum("CRC32", "AbCd==-3", COMPOSITE)
    untyped = Checksum("CRC64NVME", "AbCd+/Ef==", UNTYPED)

    assert str(full) == "CRC64NVME:AbCd+/Ef==" and str(composite) == "CRC32:AbCd==-3:COMPOSITE"
    assert [Checksum.parse(str(c)) for c in (full, composite, untyped)] == [full, composite, untyped]
    assert not untyped.comparable(full) and not full.comparable(untyped)
    assert Checksum.parse(None) is None and Checksum.parse("garbage") is None
    old = {"source_key": "k", "source_etag": "e", "size": 1, "target_key": "t", "status": "copied"}
    line = ManifestLine.from_json(old)
    assert (line.checksum, line.source_checksum, line.verified) == (None, None, None)


def test_a_checksum_without_a_type_is_full_object_only_on_a_single_part_object():
    assert checksum_of({"ChecksumCRC32": "AAAA"}, "d41d8cd98f00b204e9800998ecf8427e").full_object
    assert not checksum_of({"ChecksumCRC32": "AAAA"}, "d41d8cd98f00b204e9800998ecf8427e-2").full_object
    assert checksum_of({"ChecksumCRC32": "AAAA", "ChecksumType": "FULL_OBJECT"}, "x-2").full_object
    assert not checksum_of({"ChecksumCRC32C": "AAAA-4", "ChecksumType": "COMPOSITE"}, "x-4").full_object
    assert checksum_of({"ETag": "x"}) is None


# ---- the copier on a client with S3's answers for encrypted objects -----------------------------------------


@dataclass
class Stored:
    body: bytes
    etag: str
    encryption: str
    checksums: dict[str, str]
    metadata: dict[str, str] = field(default_factory=dict)


def _error(status: int, code: str, operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


class KmsS3:
    """Two buckets with default encryptions; answers as S3 does for what the copier asks (single-part copies).

    Objects uploaded without a checksum get CRC64NVME, as S3 has since 2025 (`legacy` ones have none); a copy
    computes the checksum asked for, else carries the source's. `ignores_copy_source_if_match` models a server
    that copies whatever version is current."""

    def __init__(self, encryption: dict[str, str], *, ignores_copy_source_if_match: bool = False):
        self.encryption = encryption
        self.objects: dict[tuple[str, str], Stored] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.ignores_copy_source_if_match = ignores_copy_source_if_match
        self.before_copy: Any = None

    def put(self, bucket: str, key: str, body: bytes, *, algorithm: str | None = "CRC64NVME") -> Stored:
        encryption = self.encryption[bucket]
        checksums = {algorithm: digest(body, algorithm)} if algorithm else {}
        stored = Stored(body, etag_of(body, encryption, 1), encryption, checksums)
        self.objects[(bucket, key)] = stored
        return stored

    def _get(self, bucket: str, key: str, operation: str) -> Stored:
        try:
            return self.objects[(bucket, key)]
        except KeyError:
            raise _error(404, "404" if operation == "HeadObject" else "NoSuchKey", operation) from None

    def head_object(self, Bucket: str, Key: str, IfMatch: str | None = None, ChecksumMode: str | None = None):
        self.calls.append(("HeadObject", {"Bucket": Bucket, "Key": Key, "IfMatch": IfMatch, "Mode": ChecksumMode}))
        stored = self._get(Bucket, Key, "HeadObject")
        if IfMatch is not None and IfMatch.strip('"') != stored.etag:
            raise _error(412, "PreconditionFailed", "HeadObject")
        answer: dict[str, Any] = {
            "ETag": f'"{stored.etag}"',
            "ContentLength": len(stored.body),
            "ContentType": "text/csv",
            "Metadata": dict(stored.metadata),
        }
        if stored.encryption:
            answer["ServerSideEncryption"] = stored.encryption
        if ChecksumMode == "ENABLED":
            answer.update({f"Checksum{a}": v for a, v in stored.checksums.items()})
            if stored.checksums:
                answer["ChecksumType"] = "FULL_OBJECT"
        return answer

    def copy_object(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("CopyObject", params))
        if self.before_copy is not None:
            self.before_copy()
        source = self._get(params["CopySource"]["Bucket"], params["CopySource"]["Key"], "CopyObject")
        wanted = params.get("CopySourceIfMatch")
        if wanted and wanted.strip('"') != source.etag and not self.ignores_copy_source_if_match:
            raise _error(412, "PreconditionFailed", "CopyObject")
        bucket, key = params["Bucket"], params["Key"]
        if params.get("IfNoneMatch") == "*" and (bucket, key) in self.objects:
            raise _error(412, "PreconditionFailed", "CopyObject")
        algorithm = params.get("ChecksumAlgorithm")
        checksums = {algorithm: digest(source.body, algorithm)} if algorithm else dict(source.checksums)
        encryption = self.encryption[bucket]
        landed = Stored(source.body, etag_of(source.body, encryption, 1), encryption, checksums)
        landed.metadata = dict(params.get("Metadata") or {})
        self.objects[(bucket, key)] = landed
        result = {"ETag": f'"{landed.etag}"', **{f"Checksum{a}": v for a, v in checksums.items()}}
        if checksums:
            result["ChecksumType"] = "FULL_OBJECT"
        return {"CopyObjectResult": result, "ServerSideEncryption": encryption}

    def delete_object(self, Bucket: str, Key: str, IfMatch: str | None = None) -> dict[str, Any]:
        self.calls.append(("DeleteObject", {"Bucket": Bucket, "Key": Key, "IfMatch": IfMatch}))
        stored = self._get(Bucket, Key, "DeleteObject")
        if IfMatch is not None and IfMatch.strip('"') != stored.etag:
            raise _error(412, "PreconditionFailed", "DeleteObject")
        del self.objects[(Bucket, Key)]
        return {}

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.calls if op == operation)


SOURCE, RAW = "source-bucket", "raw-bucket"
KEY = "movielens/ratings.csv"
BODY = b"userId,movieId,rating\n1,31,2.5\n"


def ctx(*, carry: bool) -> CopyContext:
    return CopyContext(
        dataset="movielens",
        run_id="20261127T200000Z-abc123",
        date="2026-11-27",
        source_bucket=SOURCE,
        target_bucket=RAW,
        multipart_threshold=256 * 1024 * 1024,
        check_target=False,
        carry_source_metadata=carry,
    )


def item_of(stored: Stored) -> BatchItem:
    return BatchItem(KEY, stored.etag, len(stored.body), "movielens/ingest_date=2026-11-27/ratings.csv")


@pytest.mark.parametrize("carry", [True, False], ids=["carry", "lineage"])
@pytest.mark.parametrize(
    "source_encryption, target_encryption",
    [("aws:kms", "AES256"), ("aws:kms", "aws:kms"), ("aws:kms", "aws:kms:dsse"), ("AES256", "aws:kms:dsse")],
)
def test_an_encrypted_source_lands_verified_by_its_checksum(source_encryption, target_encryption, carry):
    s3 = KmsS3({SOURCE: source_encryption, RAW: target_encryption})
    stored = s3.put(SOURCE, KEY, BODY)
    item = item_of(stored)

    line = copy_one(Store(s3), None, item, ctx(carry=carry))

    assert (line.status, line.reason) == (COPIED, "")
    landed = s3.objects[(RAW, item.target)]
    assert landed.body == BODY
    assert meta.landed_from(landed.metadata) == (SOURCE, KEY, stored.etag)
    assert line.verified == "checksum"
    assert line.checksum == f"CRC64NVME:{digest(BODY, 'CRC64NVME')}" == line.source_checksum
    assert s3.count("DeleteObject") == 0
    (copy,) = [params for op, params in s3.calls if op == "CopyObject"]
    assert copy.get("ChecksumAlgorithm") == ("CRC64NVME" if carry else None)  # lineage: S3 carries the source's
    assert copy["IfNoneMatch"] == "*" and copy["CopySourceIfMatch"] == f'"{stored.etag}"'


def test_a_source_without_a_checksum_lands_verified_by_size_after_reading_both_sides():
    s3 = KmsS3({SOURCE: "aws:kms", RAW: "AES256"})
    stored = s3.put(SOURCE, KEY, BODY, algorithm=None)
    item = item_of(stored)

    line = copy_one(Store(s3), None, item, ctx(carry=False))

    assert (line.status, line.verified, line.source_checksum) == (COPIED, "size", None)
    assert s3.objects[(RAW, item.target)].body == BODY
    heads = [params for op, params in s3.calls if op == "HeadObject"]
    assert [(h["Bucket"], h["IfMatch"]) for h in heads] == [(SOURCE, f'"{stored.etag}"'), (RAW, None)]


def test_a_copy_of_a_rewritten_kms_source_is_removed_when_its_checksum_proves_it():
    """A server that ignored CopySourceIfMatch copied the newer version: its checksum is not the listed one's."""
    s3 = KmsS3({SOURCE: "aws:kms", RAW: "AES256"}, ignores_copy_source_if_match=True)
    stored = s3.put(SOURCE, KEY, BODY)
    item = item_of(stored)
    s3.before_copy = lambda: s3.put(SOURCE, KEY, b"rewritten during the copy\n")

    line = copy_one(Store(s3), None, item, ctx(carry=True))

    assert line.status == FAILED
    assert line.reason.startswith("verification failed: landed CRC64NVME checksum")
    assert (RAW, item.target) not in s3.objects
    (delete,) = [params for op, params in s3.calls if op == "DeleteObject"]
    assert delete["IfMatch"] is not None  # pinned to the ETag of the object this run landed


def test_in_lineage_mode_a_copy_that_is_the_newer_version_is_removed():
    s3 = KmsS3({SOURCE: "aws:kms", RAW: "aws:kms:dsse"}, ignores_copy_source_if_match=True)
    stored = s3.put(SOURCE, KEY, BODY, algorithm=None)
    item = item_of(stored)
    s3.before_copy = lambda: s3.put(SOURCE, KEY, b"rewritten during the copy\n")

    line = copy_one(Store(s3), None, item, ctx(carry=False))

    assert line.status == FAILED
    assert "the landed copy is the source's newer version" in line.reason
    assert (RAW, item.target) not in s3.objects


def test_with_nothing_to_compare_a_kms_copy_is_kept_on_its_size_never_removed_on_its_etag():
    """No checksum on either side, KMS ETags: the differing ETags prove nothing, so the copy stands."""
    s3 = KmsS3({SOURCE: "aws:kms", RAW: "AES256"})
    stored = s3.put(SOURCE, KEY, BODY, algorithm=None)
    item = item_of(stored)

    line = copy_one(Store(s3), None, item, ctx(carry=True))

    assert (line.status, line.verified) == (COPIED, "size")
    assert s3.count("DeleteObject") == 0


def test_a_plain_md5_source_whose_copy_differs_is_still_removed():
    """Both ETags are known MD5s (SSE-S3, single-part, read by HEAD): a difference is proven, as before."""
    s3 = KmsS3({SOURCE: "AES256", RAW: "AES256"}, ignores_copy_source_if_match=True)
    stored = s3.put(SOURCE, KEY, BODY, algorithm=None)
    item = item_of(stored)
    s3.before_copy = lambda: s3.put(SOURCE, KEY, b"rewritten during the copy\n", algorithm=None)

    line = copy_one(Store(s3), None, item, ctx(carry=True))

    assert line.status == FAILED
    assert line.reason.startswith("verification failed: landed ETag")
    assert (RAW, item.target) not in s3.objects


def test_a_copy_asks_for_the_source_algorithm_so_the_two_compare():
    s3 = KmsS3({SOURCE: "aws:kms", RAW: "AES256"})
    stored = s3.put(SOURCE, KEY, BODY, algorithm="CRC32")

    line = copy_one(Store(s3), None, item_of(stored), ctx(carry=True))

    (copy,) = [params for op, params in s3.calls if op == "CopyObject"]
    assert copy["ChecksumAlgorithm"] == "CRC32"
    assert (line.verified, line.checksum) == ("checksum", f"CRC32:{digest(BODY, 'CRC32')}")
