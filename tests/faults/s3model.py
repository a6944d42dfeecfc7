"""What real S3 answers where moto and `rclone serve s3` answer differently: the fault proxy's S3 model.

moto gives every object an MD5 ETag, computes (and mislabels) its own checksums and shares the client's clock. A
runtime tested only against that can rest on guarantees S3 does not give. The proxy (proxy.py) runs every
request and answer through an `S3Model`, which rewrites them so the server behaves like S3 on four points:

- **Encryption per bucket.** S3: "Objects created by the PUT Object, POST Object, or Copy operation ... and are
  encrypted by SSE-C or SSE-KMS, have ETags that are not an MD5 digest of their object data"; "If an object is
  created by either the Multipart Upload or Part Copy operation, the ETag is not an MD5 digest, regardless of the
  method of encryption" (https://docs.aws.amazon.com/AmazonS3/latest/API/API_Object.html). A bucket marked
  `aws:kms`, `aws:kms:dsse` or `SSE-C` answers, for every object in it, an ETag derived from the bucket, the key
  and the server's ETag (32 hex, keeping a multipart `-N`), the same in listings, HEAD/GET, PutObject,
  CopyObjectResult and CompleteMultipartUploadResult; conditions the client sends with such an ETag (`If-Match`,
  `If-None-Match`, `x-amz-copy-source-if-match`, `x-amz-copy-source-if-none-match`) are translated back, so they
  hold or fail as on S3. Answers carry `x-amz-server-side-encryption` (`AES256`, `aws:kms`, `aws:kms:dsse`) and
  `x-amz-server-side-encryption-aws-kms-key-id` for KMS (API_HeadObject.html, API_CopyObject.html), or the SSE-C
  algorithm and key-MD5 headers. Part ETags (UploadPart, UploadPartCopy, ListParts) are left as they are.
- **Checksums.** S3 adds a full-object CRC64NVME checksum to every object uploaded without one; a CopyObject
  without `x-amz-checksum-algorithm` keeps the source's algorithm, with it the copy gets that algorithm
  (API_CopyObject.html, "x-amz-checksum-algorithm"; API_CopyObjectResult.html); HeadObject and GetObject with
  `x-amz-checksum-mode: ENABLED` answer `x-amz-checksum-<algorithm>` and `x-amz-checksum-type`. The model
  remembers each object's algorithm, computes the value from the object's bytes, and strips the server's own
  checksum headers and elements (moto labels a copied CRC32 as CRC64NVME). Every checksum is FULL_OBJECT (S3
  also has COMPOSITE multipart checksums; the model does not). `corrupt()` makes a landed object's checksum
  read as if its bytes differed, so a checker can be shown to catch it.
- **A server clock of its own.** `clock_offset` seconds are added to `Date` and `Last-Modified` headers and to
  every `<LastModified>` of an XML answer; requests are untouched.

The model rewrites requests' condition headers, which breaks a SigV4 signature a server checks: use encrypted
buckets in front of moto (which does not check), not rclone. Unencrypted buckets' requests are never changed.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

# ---- checksums ------------------------------------------------------------------------------------------------


def _reflected_table(poly: int, width: int) -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc & ((1 << width) - 1))
    return table


_CRC64NVME_TABLE = _reflected_table(0x9A6C9329AC4BC9B5, 64)
_CRC32C_TABLE = _reflected_table(0x82F63B78, 32)
_MASK64 = (1 << 64) - 1


def crc64nvme(data: bytes) -> int:
    """CRC-64/NVME (reflected polynomial 0x9A6C9329AC4BC9B5, init and xorout all ones): S3's default checksum.
    botocore computes it only with awscrt, which the suite does not install, so it is computed here."""
    crc = _MASK64
    table = _CRC64NVME_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK64


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


ALGORITHMS = ("CRC64NVME", "CRC32", "CRC32C", "SHA1", "SHA256")
DEFAULT_ALGORITHM = "CRC64NVME"
"""What S3 adds to an object uploaded without a checksum."""


def checksum(algorithm: str, data: bytes) -> str:
    """The value S3 answers for `algorithm`: the big-endian digest, base64."""
    algorithm = algorithm.upper()
    if algorithm == "CRC64NVME":
        digest = crc64nvme(data).to_bytes(8, "big")
    elif algorithm == "CRC32":
        digest = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm == "CRC32C":
        digest = crc32c(data).to_bytes(4, "big")
    elif algorithm == "SHA1":
        digest = hashlib.sha1(data).digest()
    elif algorithm == "SHA256":
        digest = hashlib.sha256(data).digest()
    else:
        raise ValueError(f"unknown checksum algorithm {algorithm!r}; S3 has {', '.join(ALGORITHMS)}")
    return base64.b64encode(digest).decode()


# ---- the model ------------------------------------------------------------------------------------------------

ENCRYPTIONS = ("AES256", "aws:kms", "aws:kms:dsse", "SSE-C")
NOT_MD5 = frozenset({"aws:kms", "aws:kms:dsse", "SSE-C"})
"""Encryptions whose ETags are not the MD5 of the object's bytes."""


@dataclass(frozen=True)
class Encryption:
    algorithm: str
    key_id: str | None = None

    def headers(self) -> list[tuple[str, str]]:
        """What S3 adds to an object answer (PUT, HEAD, GET, Copy, multipart) in a bucket so encrypted."""
        if self.algorithm == "SSE-C":
            md5 = base64.b64encode(hashlib.md5(b"fault-proxy customer key").digest()).decode()
            return [
                ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
                ("x-amz-server-side-encryption-customer-key-MD5", md5),
            ]
        headers = [("x-amz-server-side-encryption", self.algorithm)]
        if self.algorithm.startswith("aws:kms") and self.key_id:
            headers.append(("x-amz-server-side-encryption-aws-kms-key-id", self.key_id))
        return headers


class _Landed(NamedTuple):
    upstream_etag: str
    algorithm: str
    corrupt: bool


OBJECT_ANSWERS = frozenset(
    {
        "HeadObject",
        "GetObject",
        "PutObject",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
    }
)
LISTINGS = frozenset({"ListObjectsV2", "ListObjects", "ListObjectVersions"})
CONDITIONS = ("if-match", "if-none-match", "x-amz-copy-source-if-match", "x-amz-copy-source-if-none-match")

Fetch = Callable[[str, str, str | None], tuple[int, str, bytes]]
"""(bucket, key, upstream ETag to pin or None) -> (status, upstream ETag, bytes): a GET straight to the server."""

_CHECKSUM_ELEMENT = re.compile(
    rb"\s*<Checksum(?:CRC32|CRC32C|CRC64NVME|SHA1|SHA256|MD5|Type|Algorithm)>[^<]*"
    rb"</Checksum(?:CRC32|CRC32C|CRC64NVME|SHA1|SHA256|MD5|Type|Algorithm)>"
)
_ETAG_ELEMENT = re.compile(rb"<ETag>([^<]*)</ETag>")
_LAST_MODIFIED = re.compile(rb"<LastModified>([^<]*)</LastModified>")
_ENTRY = re.compile(rb"<(Contents|Version)>(.*?)</\1>", re.S)
_KEY_ELEMENT = re.compile(rb"<Key>([^<]*)</Key>")
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]*)</UploadId>")


class S3Model:
    """S3's behaviour on top of a lenient server; see the module docstring. Thread-safe (the proxy is threaded)."""

    def __init__(self, *, clock_offset: float = 0.0) -> None:
        self.clock_offset = clock_offset
        self.encryption: dict[str, Encryption] = {}
        self.put_algorithm: dict[str, str] = {}
        """bucket -> the algorithm every PutObject there gets whatever the request says: objects uploaded by a
        tool we do not control (CRC64NVME: S3's default for uploads without a checksum)."""
        self._lock = threading.Lock()
        self._upstream: dict[str, str] = {}  # an ETag this model answered (unquoted) -> the server's
        self._landed: dict[tuple[str, str], _Landed] = {}  # (bucket, key) -> the last write seen
        self._uploads: dict[str, str] = {}  # multipart upload id -> the algorithm it asked for
        self._corrupt_next: list[list[Any]] = []  # [bucket, key or part of one, exact, landings left]
        self._values: dict[tuple[str, str, str, str, bool], str] = {}
        self.computed = 0
        """How many checksums were computed from bytes (the rest came from the cache)."""

    # ---- configuration --------------------------------------------------------------------------------------

    def encrypt(self, bucket: str, algorithm: str, key_id: str | None = None) -> Encryption:
        """Every object of `bucket` is encrypted so (the bucket's default encryption, as S3 applies it to new
        objects; earlier objects are treated the same, which a bucket encrypted from the start makes true)."""
        if algorithm not in ENCRYPTIONS:
            raise ValueError(f"encryption must be one of {ENCRYPTIONS}, not {algorithm!r}")
        if algorithm.startswith("aws:kms") and key_id is None:
            digest = hashlib.sha256(bucket.encode()).hexdigest()
            key_id = f"arn:aws:kms:us-east-1:123456789012:key/{digest[:8]}-{digest[8:12]}-{digest[12:16]}-" + (
                f"{digest[16:20]}-{digest[20:32]}"
            )
        encryption = Encryption(algorithm, key_id)
        with self._lock:
            self.encryption[bucket] = encryption
        return encryption

    def corrupt(self, bucket: str, key: str, *, exact: bool = True, times: int = 1) -> None:
        """The next `times` objects that land at `key` (or, with `exact=False`, at any key containing it) by a
        put, a copy or a completed upload have a checksum that is not their bytes': what a checker comparing the
        source's checksum with the landed one must catch. The bytes themselves are intact."""
        with self._lock:
            self._corrupt_next.append([bucket, key, exact, times])

    # ---- ETags ----------------------------------------------------------------------------------------------

    def etag(self, bucket: str, key: str, upstream: str) -> str:
        """The ETag S3 would answer for the server's `upstream` ETag (unquoted in, unquoted out)."""
        encryption = self.encryption.get(bucket)
        if encryption is None or encryption.algorithm not in NOT_MD5 or not upstream:
            return upstream
        parts = upstream.partition("-")[2]
        digest = hashlib.md5(f"{encryption.algorithm}\0{bucket}\0{key}\0{upstream}".encode()).hexdigest()
        public = f"{digest}-{parts}" if parts else digest
        with self._lock:
            self._upstream[public] = upstream
        return public

    def upstream_etag(self, public: str) -> str:
        """Back from an ETag this model answered to the server's; any other value unchanged."""
        return self._upstream.get(public, public)

    def _condition(self, value: str, bucket: str | None) -> str:
        """A condition header's value (`*`, or ETags, quoted or not, comma-separated) in the server's ETags. In a
        bucket whose ETags are not MD5s, a value this model never answered (the MD5 of the bytes, say) matches
        nothing, as on S3; the server would have taken it for its own ETag."""
        if value.strip() == "*":
            return value
        encryption = self.encryption.get(bucket or "")
        opaque = encryption is not None and encryption.algorithm in NOT_MD5
        out = []
        for item in value.split(","):
            raw = item.strip()
            weak = raw.startswith("W/")
            bare = raw.removeprefix("W/").strip('"')
            upstream = self._upstream.get(bare) or (f"no-such-etag-{bare}" if opaque else bare)
            out.append(("W/" if weak else "") + (f'"{upstream}"' if raw.endswith('"') else upstream))
        return ", ".join(out)

    # ---- the request ----------------------------------------------------------------------------------------

    def prepare(
        self, operation: str, method: str, bucket: str | None, headers: Iterable[tuple[str, str]]
    ) -> tuple[list[tuple[str, str]], str]:
        """The headers to forward (conditions in the server's ETags) and the method to forward with: a HEAD that
        asks for checksums is sent as a GET, so its checksum is computed from the very version it describes."""
        headers = list(headers)
        source = unquote(_header(headers, "x-amz-copy-source").split("?", 1)[0]).lstrip("/").partition("/")[0]
        out = []
        for name, value in headers:
            lower = name.lower()
            if lower in CONDITIONS:
                value = self._condition(value, source if lower.startswith("x-amz-copy-source") else bucket)
            out.append((name, value))
        if method == "HEAD" and operation == "HeadObject" and _checksum_mode(out):
            method = "GET"
        return out, method

    # ---- the answer -----------------------------------------------------------------------------------------

    def respond(
        self,
        method: str,
        operation: str,
        target: str,
        bucket: str | None,
        key: str | None,
        request_headers: list[tuple[str, str]],
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        fetch: Fetch,
    ) -> tuple[list[tuple[str, str]], bytes]:
        """The answer S3 would give, from the server's: see the module docstring."""
        headers = [(n, self._skewed_header(n, v)) for n, v in headers]
        ok = 200 <= status < 300
        if operation in LISTINGS and ok and bucket:
            body = self._listing(bucket, target, body)
        elif operation in OBJECT_ANSWERS and bucket and key:
            headers, body = self._object(operation, target, bucket, key, request_headers, status, headers, body, fetch)
        if self.clock_offset and b"<LastModified>" in body:
            body = _LAST_MODIFIED.sub(self._skewed_element, body)
        if method == "HEAD" or status in (204, 304):
            # No body goes to the client: the server's Content-Length (the object's size) stays.
            return [(n, v) for n, v in headers if n.lower() != "transfer-encoding"], b""
        return _with_length(headers, body), body

    def _object(
        self,
        operation: str,
        target: str,
        bucket: str,
        key: str,
        request_headers: list[tuple[str, str]],
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        fetch: Fetch,
    ) -> tuple[list[tuple[str, str]], bytes]:
        ok = 200 <= status < 300
        asked = {n.lower(): v for n, v in request_headers}
        headers = [
            (n, v) for n, v in headers if not n.lower().startswith(("x-amz-checksum-", "x-amz-server-side-encryption"))
        ]
        if not ok:
            return headers, body
        upstream = _header(headers, "etag").strip('"')
        if operation == "CreateMultipartUpload":
            match = _UPLOAD_ID.search(body)
            if match and asked.get("x-amz-checksum-algorithm"):
                with self._lock:
                    self._uploads[match.group(1).decode()] = asked["x-amz-checksum-algorithm"].upper()
        elif operation == "PutObject":
            self._land(bucket, key, upstream, self._put_algorithm(bucket, asked))
        elif operation == "CopyObject":
            match = _ETAG_ELEMENT.search(body)
            upstream = match.group(1).decode().replace("&quot;", '"').strip('"') if match else ""
            wanted = asked.get("x-amz-checksum-algorithm")
            self._land(bucket, key, upstream, wanted.upper() if wanted else self._source_algorithm(asked))
        elif operation == "CompleteMultipartUpload":
            match = _ETAG_ELEMENT.search(body)
            upstream = match.group(1).decode().replace("&quot;", '"').strip('"') if match else ""
            upload_id = dict(parse_qsl(urlsplit(target).query)).get("uploadId", "")
            with self._lock:
                algorithm = self._uploads.pop(upload_id, DEFAULT_ALGORITHM)
            self._land(bucket, key, upstream, algorithm)
        encryption = self.encryption.get(bucket)
        if encryption is not None:
            headers += encryption.headers()
        if operation in ("HeadObject", "GetObject", "PutObject") and upstream:
            headers = [(n, f'"{self.etag(bucket, key, upstream)}"' if n.lower() == "etag" else v) for n, v in headers]
        if operation in ("CopyObject", "CompleteMultipartUpload") and upstream:
            body = self._result(bucket, key, upstream, body, fetch)
        if operation in ("HeadObject", "GetObject") and _checksum_mode(request_headers) and "range" not in asked:
            algorithm, value = self._checksum_of(bucket, key, upstream, body if status == 200 else None, fetch)
            if value:
                headers += [(f"x-amz-checksum-{algorithm.lower()}", value), ("x-amz-checksum-type", "FULL_OBJECT")]
        if operation == "PutObject" and upstream:
            algorithm, value = self._checksum_of(bucket, key, upstream, None, fetch)
            if value:
                headers += [(f"x-amz-checksum-{algorithm.lower()}", value), ("x-amz-checksum-type", "FULL_OBJECT")]
        return headers, body

    def _put_algorithm(self, bucket: str, asked: dict[str, str]) -> str:
        forced = self.put_algorithm.get(bucket)
        if forced:
            return forced
        declared = asked.get("x-amz-sdk-checksum-algorithm") or asked.get("x-amz-checksum-algorithm")
        if not declared:
            trailer = asked.get("x-amz-trailer", "")
            named = [n for n in asked if n.startswith("x-amz-checksum-") and n[15:].upper() in ALGORITHMS]
            declared = trailer[15:] if trailer.startswith("x-amz-checksum-") else (named[0][15:] if named else "")
        return declared.upper() if declared and declared.upper() in ALGORITHMS else DEFAULT_ALGORITHM

    def _source_algorithm(self, asked: dict[str, str]) -> str:
        """A copy without `x-amz-checksum-algorithm` keeps the source's algorithm (S3's documented default)."""
        source = unquote(asked.get("x-amz-copy-source", "").split("?", 1)[0]).lstrip("/")
        src_bucket, _, src_key = source.partition("/")
        landed = self._landed.get((src_bucket, src_key))
        return landed.algorithm if landed else DEFAULT_ALGORITHM

    def _land(self, bucket: str, key: str, upstream: str, algorithm: str) -> None:
        with self._lock:
            corrupt = False
            for entry in self._corrupt_next:
                wanted_bucket, wanted, exact, left = entry
                if left > 0 and wanted_bucket == bucket and (key == wanted if exact else wanted in key):
                    entry[3] -= 1
                    corrupt = True
                    break
            self._landed[(bucket, key)] = _Landed(upstream, algorithm, corrupt)

    def algorithm_of(self, bucket: str, key: str, upstream: str) -> str:
        landed = self._landed.get((bucket, key))
        return landed.algorithm if landed and landed.upstream_etag == upstream else DEFAULT_ALGORITHM

    def _checksum_of(
        self, bucket: str, key: str, upstream: str, data: bytes | None, fetch: Fetch
    ) -> tuple[str, str | None]:
        """(algorithm, value) of the object whose server ETag is `upstream`; its bytes fetched when not given."""
        landed = self._landed.get((bucket, key))
        current = landed is not None and landed.upstream_etag == upstream
        algorithm = landed.algorithm if landed and current else DEFAULT_ALGORITHM
        corrupt = bool(landed and current and landed.corrupt)
        cache = (bucket, key, upstream, algorithm, corrupt)
        value = self._values.get(cache)
        if value is None:
            if data is None:
                status, fetched_etag, data = fetch(bucket, key, upstream)
                if status != 200 or fetched_etag != upstream:
                    return algorithm, None  # rewritten or deleted since: S3 would have answered, we cannot
            value = checksum(algorithm, data + b"\0corrupt" if corrupt else data)
            with self._lock:
                self._values[cache] = value
                self.computed += 1
        return algorithm, value

    def _result(self, bucket: str, key: str, upstream: str, body: bytes, fetch: Fetch) -> bytes:
        """A CopyObjectResult or CompleteMultipartUploadResult: S3's ETag, its checksum elements, the server's
        own removed."""
        body = _CHECKSUM_ELEMENT.sub(b"", body)
        public = self.etag(bucket, key, upstream).encode()
        quoted = b"&quot;" if b"<ETag>&quot;" in body else b'"'
        body = _ETAG_ELEMENT.sub(lambda _: b"<ETag>" + quoted + public + quoted + b"</ETag>", body, count=1)
        algorithm, value = self._checksum_of(bucket, key, upstream, None, fetch)
        if value:
            extra = f"<Checksum{algorithm}>{value}</Checksum{algorithm}><ChecksumType>FULL_OBJECT</ChecksumType>"
            body = re.sub(rb"(</ETag>)", lambda m: m.group(1) + extra.encode(), body, count=1)
        return body

    def _listing(self, bucket: str, target: str, body: bytes) -> bytes:
        url_encoded = dict(parse_qsl(urlsplit(target).query)).get("encoding-type") == "url"

        def entry(match: re.Match[bytes]) -> bytes:
            tag, inner = match.group(1), match.group(2)
            key_match = _KEY_ELEMENT.search(inner)
            etag_match = _ETAG_ELEMENT.search(inner)
            if key_match is None or etag_match is None:
                return match.group(0)
            raw_key = _unescape(key_match.group(1).decode())
            key = unquote_plus(raw_key) if url_encoded else raw_key
            raw_etag = etag_match.group(1).decode()
            quoted = "&quot;" if raw_etag.startswith("&quot;") else ('"' if raw_etag.startswith('"') else "")
            upstream = _unescape(raw_etag).strip('"')
            public = self.etag(bucket, key, upstream)
            algorithm = self.algorithm_of(bucket, key, upstream)
            inner = _CHECKSUM_ELEMENT.sub(b"", inner)
            inner = _ETAG_ELEMENT.sub(
                lambda _: (
                    f"<ETag>{quoted}{public}{quoted}</ETag>"
                    f"<ChecksumAlgorithm>{algorithm}</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType>".encode()
                ),
                inner,
                count=1,
            )
            return b"<" + tag + b">" + inner + b"</" + tag + b">"

        return _ENTRY.sub(entry, body)

    # ---- the clock ------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The server's clock, as this model answers it."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset)

    def date_header(self) -> str:
        return format_datetime(self.now(), usegmt=True)

    def _skewed_header(self, name: str, value: str) -> str:
        if not self.clock_offset or name.lower() not in ("date", "last-modified"):
            return value
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return value
        return format_datetime((moment + timedelta(seconds=self.clock_offset)).astimezone(UTC), usegmt=True)

    def _skewed_element(self, match: re.Match[bytes]) -> bytes:
        return b"<LastModified>" + self._skewed_iso(match.group(1)) + b"</LastModified>"

    def _skewed_iso(self, raw: bytes) -> bytes:
        text = raw.decode()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return raw
        moved = (moment + timedelta(seconds=self.clock_offset)).astimezone(UTC)
        return (moved.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moved.microsecond // 1000:03d}Z").encode()


def _checksum_mode(headers: Iterable[tuple[str, str]]) -> bool:
    return any(n.lower() == "x-amz-checksum-mode" and v.strip().upper() == "ENABLED" for n, v in headers)


def _header(headers: list[tuple[str, str]], name: str) -> str:
    return next((v for n, v in headers if n.lower() == name), "")


def _unescape(text: str) -> str:
    return text.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _with_length(headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
    """A rewritten body's framing: its own Content-Length, never the server's chunking."""
    kept = [(n, v) for n, v in headers if n.lower() not in ("content-length", "transfer-encoding")]
    return kept + [("Content-Length", str(len(body)))]


def describe(model: S3Model) -> dict[str, Any]:
    """What a trial's report says about the model."""
    return {
        "encryption": {b: e.algorithm for b, e in model.encryption.items()},
        "put_algorithm": dict(model.put_algorithm),
        "clock_offset": model.clock_offset,
    }
