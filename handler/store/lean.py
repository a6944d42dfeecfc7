"""The run's hot requests on a short road, with botocore's whole road behind it.

Measured on `rclone serve s3` over loopback (docs/BENCHMARKS.md), botocore spends 1.4-1.8 ms of CPU on each
HEAD or CopyObject: endpoint rules, a dozen events, its SigV4 signer, the email parser on the answer's
headers, a walk over sixty modelled fields. For a 4 KiB object that is several times what the server spends,
and the main reason a night of small files took four times s5cmd's time. The same request signed here (SigV4
over the few headers we send) and sent on a kept-alive connection (http1.py) costs about 0.3 ms.

The road carries the per-object calls (HeadObject, CopyObject), the ledger's small documents (GetObject of a
whole small object, PutObject of bytes in memory, with Content-MD5) and ListObjectsV2 pages.
Only the plain cases take this road, and each answer is what botocore would have returned for it:

- 200, 404 and 412 (the last two are final): answered here, in botocore's response shape (a 404 or 412 as the
  ClientError botocore raises, so errors.py translates both roads alike).
- A 5xx or a throttle (what botocore's standard retry rules retry): retried here, with the client's retry policy
  (retries.py: botocore's rules and backoff, shared with botocore's road), and after the last attempt raised as
  the ClientError botocore raises then.
- Anything else (a redirect, a 403, a cut-off or unparseable body, a reset, a timeout, a request with a
  parameter or a non-ASCII value this module does not send): this attempt is dropped and the call is made again
  through botocore, whose redirects and error parsing decide, with the attempts left. A write whose answer was
  lost is retried exactly as botocore retries its own: the copy carries `If-None-Match: *` and the copier reads
  the target back on a refusal (copier.py); a conditional ledger write carries its write id and is read back
  the same way (store/writes.py).

A client whose requests something answers before they are sent (moto's mock, botocore's Stubber) stays on
botocore's road (`intercepted`). Other botocore event handlers registered on the client do not see requests on
the road (botocore's own handlers are what it replaces): code that hooks a client's requests makes that client
without `Store.sized` (and wraps it in a plain `Store(client)`).

Where requests go, and how they are signed, is botocore's own answer: each bucket's URL and signing scope come
from one SigV4 presigned URL per bucket (made by a twin of the client that presigns with SigV4, as the client
signs its requests). TLS is verified against the CA bundle botocore would use (AWS_CA_BUNDLE or its own). The
road is closed (every call goes to botocore) when a proxy, a client certificate or a signature version is
configured, for directory buckets and ARNs, for a bucket that answers from another region (botocore's redirector
finds it), when a presigned URL is not plain SigV4 for `s3`, when the client has no credentials, or with
INGEST_LEAN_REQUESTS=0.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import logging
import os
import re
import ssl
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from html import unescape
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, quote, unquote_plus, urlsplit

import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

from . import http1, retries
from .parsing import complete_listing, timestamp

log = logging.getLogger(__name__)

ENV_SWITCH = "INGEST_LEAN_REQUESTS"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")
PROBE_KEY = "ingest-lean-probe"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_META = "x-amz-meta-"

# CopyObject parameters this road sends, and the header each becomes; any other parameter goes to botocore.
COPY_HEADERS = {
    "ContentType": "content-type",
    "ContentEncoding": "content-encoding",
    "ContentDisposition": "content-disposition",
    "ContentLanguage": "content-language",
    "CacheControl": "cache-control",
    "MetadataDirective": "x-amz-metadata-directive",
    "CopySourceIfMatch": "x-amz-copy-source-if-match",
    "IfNoneMatch": "if-none-match",
    "ChecksumAlgorithm": "x-amz-checksum-algorithm",
}
# Content checksums: each algorithm's header (HeadObject with `x-amz-checksum-mode: ENABLED`) and the field botocore
# names it in a HeadObject answer and a CopyObjectResult (CRC64NVME -> ChecksumCRC64NVME).
CHECKSUM_ALGORITHMS = (
    "CRC32",
    "CRC32C",
    "CRC64NVME",
    "SHA1",
    "SHA256",
    "SHA512",
    "MD5",
    "XXHASH64",
    "XXHASH3",
    "XXHASH128",
)
CHECKSUM_FIELDS = {f"x-amz-checksum-{a.lower()}": f"Checksum{a}" for a in CHECKSUM_ALGORITHMS}
# HeadObject's answer, as botocore names its fields (those the handler reads, and a few more).
HEAD_FIELDS = {
    "etag": "ETag",
    "x-amz-version-id": "VersionId",
    "content-type": "ContentType",
    "content-encoding": "ContentEncoding",
    "content-disposition": "ContentDisposition",
    "content-language": "ContentLanguage",
    "cache-control": "CacheControl",
    "x-amz-server-side-encryption": "ServerSideEncryption",
    "x-amz-server-side-encryption-aws-kms-key-id": "SSEKMSKeyId",
    "x-amz-storage-class": "StorageClass",
    "x-amz-server-side-encryption-customer-algorithm": "SSECustomerAlgorithm",
    "x-amz-checksum-type": "ChecksumType",
    **CHECKSUM_FIELDS,
}
_COPY_RESULT = re.compile(rb"<CopyObjectResult[\s>].*<ETag>([^<]*)</ETag>.*</CopyObjectResult>\s*\Z", re.S)
_RESULT_CHECKSUM = re.compile(rb"<(Checksum(?:[A-Z0-9]+|Type))>([^<]*)</\1>")
_LAST_MODIFIED = re.compile(rb"<LastModified>([^<]*)</LastModified>")
_ERROR_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_CONTENTS = re.compile(r"<Contents>(.*?)</Contents>", re.S)
_FIELD = re.compile(r"<(Key|LastModified|ETag|Size|StorageClass)>([^<]*)</\1>")
_IS_TRUNCATED = re.compile(r"<IsTruncated>(\w+)</IsTruncated>")
_NEXT_TOKEN = re.compile(r"<NextContinuationToken>([^<]*)</NextContinuationToken>")
_ERROR_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")


class Declined(Exception):
    """This road does not answer this call; botocore's does."""


class _Bucket:
    """Where one bucket's objects are, and how requests to it are signed (from botocore's presigned URL)."""

    def __init__(self, scheme: str, netloc: str, path_prefix: str, region: str):
        self.scheme = scheme
        self.netloc = netloc
        self.path_prefix = path_prefix  # "/bucket/" (path style) or "/" (virtual host)
        self.region = region


class _Connections:
    """Kept-alive connections per host, handed to one thread at a time (they outlive the copy threads)."""

    def __init__(self, limit: int, connect_timeout: float, read_timeout: float, context: ssl.SSLContext | None):
        self._idle: dict[tuple[str, str], list[http1.Connection]] = {}
        self._lock = threading.Lock()
        self._limit = limit
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._context = context

    def take(self, scheme: str, netloc: str) -> http1.Connection:
        with self._lock:
            idle = self._idle.get((scheme, netloc))
            if idle:
                return idle.pop()
        return http1.Connection(
            scheme,
            netloc,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            context=self._context if scheme == "https" else None,
        )

    def give_back(self, conn: http1.Connection) -> None:
        if not conn.is_open:
            return
        with self._lock:
            idle = self._idle.setdefault((conn.scheme, conn.netloc), [])
            if len(idle) < self._limit:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()


class LeanS3:
    """HeadObject and CopyObject for one botocore S3 client, answered here when the answer is plain."""

    def __init__(self, s3: Any, credentials: Any, make_presigner: Callable[[], Any]):
        self._s3 = s3
        self._make_presigner = make_presigner
        self._presigner: Any = None  # the twin client that presigns, made at the first bucket located
        self._credentials = credentials
        config = s3.meta.config
        self._connections = _Connections(
            limit=config.max_pool_connections or 10,
            connect_timeout=config.connect_timeout or 60,
            read_timeout=config.read_timeout or 60,
            context=_tls_context(),
        )
        self._buckets: dict[str, _Bucket | None] = {}
        self._buckets_lock = threading.Lock()
        self._keys: dict[tuple[str, str, str], bytes] = {}
        self._agent = f"data-file-ingestion (lean) botocore/{botocore.__version__}"
        # The client's retry policy, shared with botocore's road (retries.py).
        self.policy = retries.policy_of(s3) or retries.install(s3)
        self._operation_models: dict[str, Any] = {}

    # -- the two calls ---------------------------------------------------------------------------------------

    def head_object(
        self, Bucket: str, Key: str, IfMatch: str | None = None, ChecksumMode: str | None = None
    ) -> dict[str, Any]:
        """botocore's head_object answer; raises ClientError for 404 and 412; Declined for anything else."""
        headers = {"if-match": IfMatch} if IfMatch else {}
        if ChecksumMode:
            headers["x-amz-checksum-mode"] = ChecksumMode
        status, answer, _ = self._send("HEAD", Bucket, Key, headers)
        if status == 200:
            return _head_answer(answer)
        if status in (404, 412):
            raise _client_error(status, str(status), HTTPStatus(status).phrase, "HeadObject", answer)
        raise Declined(f"HEAD answered {status}")

    def copy_object(self, **params: Any) -> dict[str, Any]:
        """botocore's copy_object answer for a plain copy; ClientError for 404 and 412; Declined otherwise."""
        bucket, key, source = params.pop("Bucket"), params.pop("Key"), params.pop("CopySource")
        metadata = params.pop("Metadata", None) or {}
        unknown = set(params) - set(COPY_HEADERS)
        if unknown or not isinstance(source, Mapping) or set(source) - {"Bucket", "Key", "VersionId"}:
            raise Declined(f"CopyObject with {sorted(unknown) or 'a CopySource'} this road does not send")
        copy_source = quote(f"{source['Bucket']}/{source['Key']}", safe="/-._~")
        if source.get("VersionId"):
            copy_source += f"?versionId={quote(source['VersionId'], safe='')}"
        headers = {"x-amz-copy-source": copy_source}
        headers.update({COPY_HEADERS[name]: str(value) for name, value in params.items()})
        headers.update({_META + name: str(value) for name, value in metadata.items()})
        status, answer, body = self._send("PUT", bucket, key, headers)
        if status == 200:
            match = _COPY_RESULT.search(body)
            if match is None:  # S3's 200 that carries an error, or a cut-off body: botocore retries those
                raise Declined("CopyObject answered 200 without a whole CopyObjectResult")
            return _copy_answer(answer, body, match.group(1))
        if status in (404, 412):
            code = _xml_text(_ERROR_CODE, body) or str(status)
            raise _client_error(status, code, _xml_text(_ERROR_MESSAGE, body), "CopyObject", answer)
        raise Declined(f"CopyObject answered {status}")

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        """A whole small object (a ledger document): ETag, ContentLength and the bytes as Body; ClientError for
        404; Declined for anything else, a body shorter than its Content-Length included."""
        status, answer, body = self._send("GET", Bucket, Key, {})
        if status == 200:
            length = answer.get("content-length")
            if length is None or int(length) != len(body):
                raise Declined(f"GET answered {len(body)} bytes of {length}")
            return {
                "ETag": answer.get("etag"),
                "ContentLength": len(body),
                "Body": io.BytesIO(body),
                "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": answer.lowered()},
            }
        if status == 404:
            code = _xml_text(_ERROR_CODE, body) or "NoSuchKey"
            raise _client_error(status, code, _xml_text(_ERROR_MESSAGE, body), "GetObject", answer)
        raise Declined(f"GET answered {status}")

    def put_object(
        self,
        Bucket: str,
        Key: str,
        Body: bytes,
        ContentType: str,
        Metadata: Mapping[str, str] | None = None,
        IfNoneMatch: str | None = None,
        IfMatch: str | None = None,
    ) -> dict[str, Any]:
        """PutObject of bytes in memory, its integrity checked by S3 (Content-MD5 and the signed SHA-256);
        ClientError for 404 and 412; Declined otherwise."""
        if not isinstance(Body, bytes):
            raise Declined("PutObject of a stream (botocore reads and checksums it)")
        headers = {"content-type": ContentType, "content-md5": base64.b64encode(hashlib.md5(Body).digest()).decode()}
        if IfNoneMatch:
            headers["if-none-match"] = IfNoneMatch
        if IfMatch:
            headers["if-match"] = IfMatch
        headers.update({_META + name: str(value) for name, value in (Metadata or {}).items()})
        status, answer, body = self._send("PUT", Bucket, Key, headers, body=Body)
        if status == 200 and answer.get("etag"):
            metadata = {"HTTPStatusCode": 200, "HTTPHeaders": answer.lowered()}
            return {"ETag": answer["etag"], "ResponseMetadata": metadata}
        if status in (404, 412):
            code = _xml_text(_ERROR_CODE, body) or str(status)
            raise _client_error(status, code, _xml_text(_ERROR_MESSAGE, body), "PutObject", answer)
        raise Declined(f"PutObject answered {status}")

    def list_page(
        self, bucket: str, prefix: str, *, start_after: str | None = None, token: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One ListObjectsV2 page (1,000 keys) as botocore's paginator gives its Contents, and the token of the
        next page (None: the last); Declined for anything but a whole page."""
        params = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
        if start_after is not None:
            params["start-after"] = start_after
        if token is not None:
            params["continuation-token"] = token
        query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))
        try:
            status, _, body = self._send("GET", bucket, "", {}, query=query)
            if status != 200 or not complete_listing(body):
                raise Declined(f"ListObjectsV2 answered {status} without a whole ListBucketResult")
            return _list_answer(body)
        except Declined:
            # the store asks botocore for this page next, on this thread: it has the attempts that are left.
            self.policy.carry(getattr(_sent, "attempts", 0))
            raise

    def close(self) -> None:
        self._connections.close()

    # -- one request -----------------------------------------------------------------------------------------

    def _send(
        self, method: str, bucket: str, key: str, headers: dict[str, str], *, query: str = "", body: bytes = b""
    ) -> tuple[int, Any, bytes]:
        """One call's answer, its retryable answers (5xx, throttling) retried here with the client's policy
        (retries.py); the last attempt's retryable answer is raised as botocore's ClientError. A call declined
        after k attempts leaves botocore's road the rest (`Policy.carry`, done by `answer` and `list_page`)."""
        _sent.attempts = 0
        where = self._bucket(bucket)
        if where is None:
            raise Declined(f"bucket {bucket!r} is not reached by plain SigV4")
        if not all(value.isascii() for value in headers.values()):
            raise Declined("a header value is not ASCII (botocore refuses it with its own error)")
        path = where.path_prefix + quote(key, safe="/~") if key else where.path_prefix.rstrip("/") or "/"
        target = f"{path}?{query}" if query else path
        policy = self.policy
        attempt = 0
        while True:
            attempt += 1
            _sent.attempts = attempt
            policy.before_send()
            signed = self._signed(method, where, path, query, headers, body)  # signed again: a fresh x-amz-date
            conn = self._connections.take(where.scheme, where.netloc)
            try:
                status, answer, data = conn.exchange(method, target, signed, body)
            except (OSError, http1.ProtocolError) as err:
                policy.count(attempt)
                raise Declined(f"{method} failed on the short road: {type(err).__name__}: {err}") from err
            self._connections.give_back(conn)
            if status in (301, 307, 400) and answer.get("x-amz-bucket-region"):
                # The bucket lives in another region: botocore's redirector knows where; this road stays closed to it.
                log.info(
                    "bucket %r is in region %s; its requests go through botocore",
                    bucket,
                    answer.get("x-amz-bucket-region"),
                )
                with self._buckets_lock:
                    self._buckets[bucket] = None
            parsed = _error_parsed(status, answer, data)
            if parsed is None and policy.limiter is None:  # a success: nothing to decide (the hot path)
                policy.count(attempt)
                return status, answer, data
            operation = _operation(method, headers, query)
            context, kwargs = policy.context(attempt, self._operation_model(operation), status, answer, parsed)
            delay = policy.decide(context, kwargs)
            if delay is None:
                if parsed is not None and context.get_retry_metadata().get("MaxAttemptsReached"):
                    raise _exhausted(status, parsed, operation, answer, attempt)
                return status, answer, data
            log.debug("%s %s answered %s; attempt %d in %.2f s", operation, key, status, attempt + 1, delay)
            policy.wait(delay)

    def _operation_model(self, operation: str) -> Any:
        model = self._operation_models.get(operation)
        if model is None:
            model = self._operation_models[operation] = self._s3.meta.service_model.operation_model(operation)
        return model

    def _signed(
        self, method: str, where: _Bucket, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> dict[str, str]:
        """SigV4 for S3 (the path encoded once, the payload's SHA-256), every header we send signed."""
        frozen = self._credentials.get_frozen_credentials()
        now = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        day = now[:8]
        payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        headers = {**headers, "host": where.netloc, "x-amz-date": now, "x-amz-content-sha256": payload}
        if body:
            headers["content-length"] = str(len(body))
        if frozen.token:
            headers["x-amz-security-token"] = frozen.token
        names = sorted(headers)
        signed_names = ";".join(names)
        canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names)
        canonical = f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed_names}\n{payload}"
        scope = f"{day}/{where.region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{now}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(frozen.secret_key, day, where.region), to_sign.encode(), "sha256")
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature.hexdigest()}"
        )
        headers["user-agent"] = self._agent
        return headers

    def _signing_key(self, secret: str, day: str, region: str) -> bytes:
        cached = self._keys.get((secret, day, region))
        if cached is None:
            cached = hmac.new(("AWS4" + secret).encode(), day.encode(), "sha256").digest()
            for part in (region, "s3", "aws4_request"):
                cached = hmac.new(cached, part.encode(), "sha256").digest()
            self._keys = {(secret, day, region): cached}  # one key a day; replacing the dict is thread-safe
        return cached

    def _bucket(self, bucket: str) -> _Bucket | None:
        try:
            return self._buckets[bucket]
        except KeyError:
            pass
        with self._buckets_lock:
            if bucket not in self._buckets:
                if self._presigner is None:  # made here: a run that never takes the road never pays for it
                    self._presigner = self._make_presigner()
                self._buckets[bucket] = _locate(self._presigner, bucket)
            return self._buckets[bucket]


def _locate(presigner: Any, bucket: str) -> _Bucket | None:
    """botocore's own answer to "where is this bucket's key, signed how": one presigned URL, no request."""
    if bucket.endswith("--x-s3") or bucket.startswith("arn:"):
        log.info("bucket %r is a directory bucket or an ARN; its requests go through botocore", bucket)
        return None
    url = presigner.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": PROBE_KEY}, ExpiresIn=60)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    credential = (query.get("X-Amz-Credential") or [""])[0].split("/")
    plain = (
        parts.scheme in ("http", "https")
        and parts.path.endswith("/" + PROBE_KEY)
        and query.get("X-Amz-Algorithm") == ["AWS4-HMAC-SHA256"]
        and len(credential) == 5
        and credential[3] == "s3"
    )
    if not plain:
        log.info("bucket %r is not reached by plain SigV4 (%s); its requests go through botocore", bucket, url[:80])
        return None
    return _Bucket(parts.scheme, parts.netloc, parts.path[: -len(PROBE_KEY)], credential[2])


def _tls_context() -> ssl.SSLContext:
    """Verified as botocore verifies: against AWS_CA_BUNDLE if set, else the bundle botocore ships or finds."""
    from botocore.httpsession import get_cert_path

    return ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True))


def _head_answer(headers: http1.Headers) -> dict[str, Any]:
    answer: dict[str, Any] = {"ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": headers.lowered()}}
    metadata: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(_META):
            metadata[name[len(_META) :]] = value
        elif lower in HEAD_FIELDS:
            answer[HEAD_FIELDS[lower]] = value
        elif lower == "content-length":
            answer["ContentLength"] = int(value)
        elif lower == "last-modified":
            answer["LastModified"] = timestamp(value)
    answer["Metadata"] = metadata
    return answer


def _copy_answer(headers: http1.Headers, body: bytes, etag: bytes) -> dict[str, Any]:
    result: dict[str, Any] = {"ETag": unescape(etag.decode())}
    modified = _xml_text(_LAST_MODIFIED, body)
    if modified:
        result["LastModified"] = timestamp(modified)
    for name, value in _RESULT_CHECKSUM.findall(body):  # ChecksumCRC64NVME, ..., ChecksumType
        result[name.decode()] = unescape(value.decode("utf-8", "replace"))
    answer: dict[str, Any] = {
        "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": headers.lowered()},
        "CopyObjectResult": result,
    }
    for header, name in (
        ("x-amz-server-side-encryption", "ServerSideEncryption"),
        ("x-amz-server-side-encryption-aws-kms-key-id", "SSEKMSKeyId"),
        ("x-amz-version-id", "VersionId"),
        ("x-amz-copy-source-version-id", "CopySourceVersionId"),
    ):
        if headers.get(header) is not None:
            answer[name] = headers[header]
    return answer


def _list_answer(body: bytes) -> tuple[list[dict[str, Any]], str | None]:
    text = body.decode("utf-8")
    contents = []
    for block in _CONTENTS.findall(text):
        fields = dict(_FIELD.findall(block))
        if "Key" not in fields or "LastModified" not in fields:
            raise Declined("a listed object without Key or LastModified")
        item: dict[str, Any] = {
            "Key": unquote_plus(unescape(fields["Key"])),  # as botocore decodes url encoding (a space is +)
            "LastModified": timestamp(fields["LastModified"]),
            "ETag": unescape(fields.get("ETag", "")),
            "Size": int(fields.get("Size") or 0),
        }
        if "StorageClass" in fields:
            item["StorageClass"] = fields["StorageClass"]
        contents.append(item)
    truncated = _IS_TRUNCATED.search(text)
    if truncated is None or truncated.group(1) != "true":
        return contents, None
    token = _NEXT_TOKEN.search(text)
    if token is None:
        raise Declined("a truncated listing without NextContinuationToken")
    return contents, unescape(token.group(1))


def _operation(method: str, headers: Mapping[str, str], query: str) -> str:
    """The S3 operation of a request this road sends (for botocore's retry rules and error messages)."""
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
    return "ListObjectsV2" if query else "GetObject"


def _error_parsed(status: int, headers: http1.Headers, body: bytes) -> dict[str, Any] | None:
    """An error answer as botocore parses it for its retry rules: S3's code, or the status for a HEAD's
    bodiless error (botocore's own fallback); None for a success."""
    if status < 300:
        return None
    code = _xml_text(_ERROR_CODE, body) or str(status)
    message = _xml_text(_ERROR_MESSAGE, body) or _phrase(status)
    return {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers.lowered()},
    }


def _exhausted(
    status: int, parsed: dict[str, Any], operation: str, headers: http1.Headers, attempts: int
) -> ClientError:
    """The ClientError botocore raises when a call's last attempt was answered with a retryable error."""
    error = parsed["Error"]
    answer = _client_error(status, error["Code"], error["Message"], operation, headers)
    answer.response["ResponseMetadata"].update(
        {"RetryAttempts": attempts - 1, "MaxAttemptsReached": True, retries.TOTAL_ATTEMPTS: attempts}
    )
    return answer


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


_sent = threading.local()  # attempts the last `_send` on this thread made (what a decline leaves to botocore)


def _client_error(status: int, code: str, message: str, operation: str, headers: http1.Headers) -> ClientError:
    """The ClientError botocore raises for this answer, so errors.py translates both roads alike."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers.lowered()},
        },
        operation,
    )


def _xml_text(pattern: re.Pattern[bytes], body: bytes) -> str:
    match = pattern.search(body)
    return unescape(match.group(1).decode("utf-8", "replace")) if match else ""


# -- which clients take the road -----------------------------------------------------------------------------

CARRIED = frozenset({"head_object", "copy_object", "get_object", "put_object", "list_objects_v2"})
"""The client operations this road answers (the store sends the rest, and any call it declines, to botocore)."""

_LIST_PARAMS = frozenset({"Bucket", "Prefix", "StartAfter", "ContinuationToken"})


def closed_because(s3: Any, credentials: Any) -> str | None:
    """Why a client made now may not take the short road (see the module's docstring), or None when it may."""
    switch = os.environ.get(ENV_SWITCH, "1").strip().lower()
    if switch in ("0", "false", "no", "off"):
        return f"{ENV_SWITCH}={switch}"
    proxy = next((name for name in PROXY_VARIABLES if os.environ.get(name)), None)
    if proxy:
        return f"{proxy} is set: a proxy is botocore's to honour"
    if credentials is None:
        return "the client has no credentials"
    config = s3.meta.config
    if config.proxies:
        return "the client's config names proxies"
    if getattr(config, "client_cert", None):
        return "the client's config names a client certificate"
    if config.signature_version not in (None, "s3v4", "v4"):
        return f"the client signs with {config.signature_version}"
    return None


def open_road(s3: Any, credentials: Any, presigner: Callable[[Any], Any]) -> LeanS3:
    """The short road of this client (`closed_because` has said it may take one).

    `presigner(config)` makes the client's twin with that config (the same session and endpoint)."""
    config = s3.meta.config
    return LeanS3(s3, credentials, lambda: presigner(config.merge(Config(signature_version="s3v4"))))


def answer(road: LeanS3, operation: str, params: dict[str, Any], botocore_call: Callable[[], Any]) -> Any:
    """`operation(**params)` on the road when its answer is plain, else `botocore_call()` with the attempts the
    road left it (retries.py). Errors are the caller's to translate."""
    _sent.attempts = 0
    try:
        if operation == "list_objects_v2":
            if set(params) - _LIST_PARAMS:
                raise Declined(f"ListObjectsV2 with {sorted(set(params) - _LIST_PARAMS)}")
            contents, token = road.list_page(
                params["Bucket"],
                params.get("Prefix", ""),
                start_after=params.get("StartAfter"),
                token=params.get("ContinuationToken"),
            )
            page: dict[str, Any] = {"Contents": contents, "IsTruncated": token is not None}
            if token is not None:
                page["NextContinuationToken"] = token
            return page
        return getattr(road, operation)(**params)
    except Declined as why:
        log.debug("%s %s through botocore: %s", operation, params.get("Key", params.get("Prefix")), why)
    # The same call, on botocore's road with the attempts the short road left it (retries.py).
    road.policy.carry(getattr(_sent, "attempts", 0))
    try:
        return botocore_call()
    finally:
        road.policy.drop_carry()


def intercepted(s3: Any) -> bool:
    """Whether a `before-send` handler answers this client's requests (moto's mock while it is on, botocore's
    Stubber, a user's hook): then they must all go botocore's way. Asked on every call, since a mock can start
    after the client was made. botocore keeps its handlers private; if it stops, nothing takes the road."""
    try:
        handlers = s3.meta.events._emitter._handlers.prefix_search("before-send.s3.HeadObject")
    except AttributeError:
        return True
    # moto registers one stubber for every client, switched on and off by its mock (`enabled`). The adaptive
    # mode's rate limiter (retries.py) waits before a send and answers nothing.
    return any(
        getattr(handler, "enabled", True) and not isinstance(getattr(handler, "__self__", None), retries.Policy)
        for handler in handlers
    )
