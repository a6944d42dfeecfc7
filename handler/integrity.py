"""Whether a landed copy is the listed source version: what each comparison can prove, decided without I/O.

An ETag is an MD5 of the bytes only for an object written in one part (PutObject, CopyObject) and stored with
SSE-S3 or no encryption. SSE-KMS, DSSE-KMS and SSE-C objects have ETags that are not an MD5, and a multipart
object's ETag never is (AWS S3 API reference, "Object", `ETag`:
https://docs.aws.amazon.com/AmazonS3/latest/API/API_Object.html). A listing does not say an object's encryption,
so a listed 32-hex ETag may be a KMS one: two ETags that differ prove a different content only when both
objects are known, from a HEAD or a copy's answer, to be single-part SSE-S3 or unencrypted.

A content checksum means the same whatever the encryption or part size: since December 2024 S3 stores a
CRC-based whole-object checksum for every new object (CRC64NVME when the writer sent none, "Amazon S3 adds new
default data integrity protections"), a copy computes one for the landed object with the algorithm the
request names (`x-amz-checksum-algorithm`, CopyObject API reference), and HeadObject returns them with
`x-amz-checksum-mode: ENABLED`. Two full-object checksums of one algorithm are comparable; a composite
(multipart, per-part) checksum is comparable with nothing but itself, so it is never compared.

What is sound where neither decides is the conditional copy (CopySourceIfMatch on the listed ETag, which S3
honours) and the landed size: `size`. A landed copy is removed only on a comparison that proves a difference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DEFAULT_ALGORITHM = "CRC64NVME"
"""What a copy asks for when the source has no full-object checksum to match: S3's own default, full-object
for single-part and multipart objects alike."""

MULTIPART_ALGORITHMS = frozenset({"CRC64NVME"})
"""What a managed (multipart) copy can ask for. s3transfer 0.19.3 passes `ChecksumAlgorithm` on to
CreateMultipartUpload but refuses `ChecksumType` in a copy's extra args, and only CRC64NVME is full-object
without it (CRC32 and CRC32C default to composite for multipart uploads; SHA-1 and SHA-256 are composite only)."""

FULL_OBJECT, COMPOSITE, UNTYPED = "FULL_OBJECT", "COMPOSITE", "UNTYPED"
MD5_ENCRYPTIONS = frozenset({"", "AES256"})
"""Encryptions whose single-part ETags are an MD5 of the bytes: none, and SSE-S3."""
UNKNOWN = "?"
"""Encryption not known: the listing does not say it, and no HEAD or copy answer was read."""

_CHECKSUM_FIELD = re.compile(r"Checksum([A-Z0-9]+)\Z")
_MD5_ETAG = re.compile(r"[0-9a-fA-F]{32}\Z")


class Verified(StrEnum):
    """How a landed copy was shown to be the listed version (a manifest line's `verified`)."""

    ETAG = "etag"
    """Its ETag equals the listed one."""
    CHECKSUM = "checksum"
    """Its full-object checksum equals the source's, same algorithm."""
    SIZE = "size"
    """Its size is the listed one, and the copy was conditional on the listed ETag; nothing else compares."""


@dataclass(frozen=True)
class Checksum:
    """One content checksum S3 reported: algorithm, base64 value, and its type (FULL_OBJECT, COMPOSITE, or
    UNTYPED: a multipart object's checksum reported without `ChecksumType`, which may be either)."""

    algorithm: str
    value: str
    type: str = FULL_OBJECT

    @property
    def full_object(self) -> bool:
        return self.type == FULL_OBJECT

    def __str__(self) -> str:
        """The manifest's form, `CRC64NVME:<base64>`; one that is not full-object ends in `:<type>`."""
        text = f"{self.algorithm}:{self.value}"
        return text if self.full_object else f"{text}:{self.type}"

    @classmethod
    def parse(cls, text: str | None) -> Checksum | None:
        """The manifest's form read back (None for a line written before checksums, or a damaged one)."""
        if not text:
            return None
        parts = str(text).split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            return None
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else FULL_OBJECT)

    def comparable(self, other: Checksum | None) -> bool:
        return other is not None and self.full_object and other.full_object and self.algorithm == other.algorithm


def checksum_of(answer: Mapping[str, Any], etag: str = "") -> Checksum | None:
    """The checksum in a HeadObject answer or a CopyObjectResult (botocore's field names), or None.

    Without `ChecksumType` (some servers leave it out) a checksum is taken as full-object only for a single-part
    object: a multipart one's may be composite, and comparing it as full-object could call equal bytes different.
    """
    found = [(m.group(1), str(v)) for k, v in answer.items() if v and (m := _CHECKSUM_FIELD.match(k))]
    if not found:
        return None
    found.sort(key=lambda pair: pair[0] != DEFAULT_ALGORITHM)  # one per object in practice; prefer S3's default
    algorithm, value = found[0]
    kind = answer.get("ChecksumType")
    if not kind:
        kind = FULL_OBJECT if "-" not in etag and not re.search(r"-\d+\Z", value) else UNTYPED
    return Checksum(algorithm, value, str(kind))


@dataclass(frozen=True)
class Facts:
    """What S3 said about one object version that bears on comparing it with another."""

    etag: str
    """Unquoted."""
    encryption: str = UNKNOWN
    """`x-amz-server-side-encryption` ("" when an answer that carries it had none); UNKNOWN when not read."""
    checksum: Checksum | None = None

    @classmethod
    def listed(cls, etag: str) -> Facts:
        return cls(etag.strip('"'))

    @classmethod
    def of(cls, answer: Mapping[str, Any], result: Mapping[str, Any] | None = None) -> Facts:
        """From a HeadObject answer, or a CopyObject answer (its headers) and its CopyObjectResult."""
        fields = result if result is not None else answer
        etag = str(fields.get("ETag") or "").strip('"')
        encryption = str(answer.get("ServerSideEncryption") or "")
        if answer.get("SSECustomerAlgorithm"):
            encryption = "SSE-C"
        return cls(etag, encryption, checksum_of(fields, etag))

    @property
    def md5_etag(self) -> bool:
        """Whether this ETag is known to be an MD5 of the bytes: single-part, and SSE-S3 or unencrypted."""
        return self.encryption in MD5_ENCRYPTIONS and _MD5_ETAG.match(self.etag) is not None


@dataclass(frozen=True)
class Judgement:
    """A comparison's outcome: verified (how), a proven difference (why), or undecided until the source is read."""

    verified: Verified | None = None
    mismatch: str | None = None

    @property
    def undecided(self) -> bool:
        return self.verified is None and self.mismatch is None


UNDECIDED = Judgement()


def judge(listed_etag: str, source: Facts | None, landed: Facts, now: Facts | None = None) -> Judgement:
    """Whether `landed` is the listed version.

    `source` is what a HEAD of the listed version said before the copy (None: not read); `now` what a HEAD of
    the source said after it (None: not read yet; its ETag the listed one's when it was unchanged, or the newer
    version's; `Facts.listed(etag)` when it could not be read). Undecided means: read the source now, and ask
    again.

    Checksums of one algorithm, both full-object, decide first (equal or not). Then equal ETags verify, and
    differing ETags prove a difference when both are known MD5s. A copy that matches a newer source version is
    that version (a server that ignored CopySourceIfMatch). Otherwise only the size and the conditional copy
    remain: `size`, never a removal.
    """
    listed = listed_etag.strip('"')
    versions = [f for f in (source, now) if f is not None and f.etag == listed]  # what is known of the listed one
    for facts in versions:
        if facts.checksum is not None and facts.checksum.comparable(landed.checksum):
            assert landed.checksum is not None
            algorithm, found, wanted = landed.checksum.algorithm, landed.checksum.value, facts.checksum.value
            if found == wanted:
                return Judgement(verified=Verified.CHECKSUM)
            return Judgement(
                mismatch=f"verification failed: landed {algorithm} checksum {found} differs from the source's "
                f"{wanted} (the source changed during the copy); it lands on the next run"
            )
    if landed.etag == listed:
        return Judgement(verified=Verified.ETAG)
    if landed.md5_etag and any(facts.md5_etag for facts in versions):
        return Judgement(
            mismatch=f"verification failed: landed ETag {landed.etag} differs from listed {listed} "
            "(the source changed during the copy); it lands on the next run"
        )
    if now is None:
        return UNDECIDED
    if now.etag != listed and (
        landed.etag == now.etag
        or (now.checksum is not None and now.checksum == landed.checksum and now.checksum.comparable(landed.checksum))
    ):
        return Judgement(
            mismatch=f"verification failed: the landed copy is the source's newer version (ETag {now.etag}), not the "
            f"listed {listed} (the source changed during the copy); it lands on the next run"
        )
    return Judgement(verified=Verified.SIZE)


def copy_algorithm(source: Facts | None, *, multipart: bool) -> str | None:
    """The checksum algorithm a copy asks S3 for (`x-amz-checksum-algorithm`), so that the landed checksum and
    the source's compare.

    With the source read: its algorithm when its checksum is full-object and the copy can compute it, else S3's
    default. Not read (`source_metadata: lineage`): None, ask for nothing, and S3 gives the landed object the
    source's checksum algorithm ("If the CopyObject request does not include this x-amz-checksum-algorithm
    header, the checksum algorithm will be copied from the source object", CopyObject API reference), whichever
    it is: asking CRC64NVME would make a CRC32 source (boto3's default since 2025) incomparable."""
    if source is None:
        return None if not multipart else DEFAULT_ALGORITHM
    checksum = source.checksum
    if checksum is None or not checksum.full_object:
        return DEFAULT_ALGORITHM
    if multipart and checksum.algorithm not in MULTIPART_ALGORITHMS:
        return DEFAULT_ALGORITHM
    return checksum.algorithm
