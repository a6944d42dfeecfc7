"""A faulty network between an S3 client and an S3 server: the campaign's way to make S3 misbehave.

The runtime's exactly-once promise has to survive what real networks and real S3 do: throttling, 500s, answers
lost after the write was applied, connections reset before or during an answer, slow requests. None of that can
be produced by moto or rclone themselves, and patching botocore would test a different client than the one in
production. So the client (the real CLI in a child process) talks to this proxy, which forwards every request
byte for byte (Host included: rclone checks SigV4 over it) to the real server and, where told, breaks it.

Two ways to inject: seeded random rates per request (one `random.Random` draw per request under a lock, so a
seed reproduces the sequence as closely as the client's concurrency allows) and targeted rules (the n-th
CopyObject of a key, every PutObject of `lock.json`, ...), which are consulted first.

Requests are classified into S3 operation names from their method, path-style path, query and the
`x-amz-copy-source` header only, so the classification holds for any client and any server.

A throttling storm (`start_storm`: 503 SlowDown at a rate for a window of time) and the proxy's timeline
(`per_operation`, `attempts_per_object`, `repeat_gaps`) measure what a client does under throttling. With an
`S3Model` (s3model.py) the answers become S3's where the server's differ: encryption ETags, checksums, a server
clock of its own.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from tests.faults.s3model import S3Model

UPSTREAM_TIMEOUT = 120.0
"""Seconds: only bounds a hung server; matches the runtime's read timeout."""
DRAIN_WAIT = 2.0
"""Seconds a cut answer waits for the client to read what it was sent before the reset (see `_reset`)."""


class Fault(StrEnum):
    """What the proxy does to one request instead of forwarding it faithfully."""

    SLOWDOWN = "SlowDown"
    """503 SlowDown, not forwarded: S3 throttling."""
    ERROR_500 = "InternalError"
    """500 InternalError, not forwarded: S3 failed before applying anything."""
    LOST_AFTER = "LostAfter"
    """Forwarded and applied by the server, then answered 500: the worst kind of error for a write."""
    RESET_BEFORE = "ResetBefore"
    """Forwarded and applied, then the connection is reset (RST) without any answer."""
    RESET_BODY = "ResetBody"
    """Forwarded and applied; status line, headers and about half the body are sent, then RST. A response
    without a body (HEAD, 204) is cut in the middle of its headers instead."""
    DELAY = "Delay"
    """Forwarded normally after a sleep: opens the window for races."""


SLOWDOWN = Fault.SLOWDOWN
ERROR_500 = Fault.ERROR_500
LOST_AFTER = Fault.LOST_AFTER
RESET_BEFORE = Fault.RESET_BEFORE
RESET_BODY = Fault.RESET_BODY
DELAY = Fault.DELAY

ALL_FAULTS: tuple[Fault, ...] = tuple(Fault)

# Subresources that turn a bucket or object request into a different, uninteresting operation.
_OTHER_SUBRESOURCES = frozenset(
    "accelerate acl analytics attributes cors encryption intelligent-tiering inventory legal-hold lifecycle "
    "location logging metrics notification object-lock ownershipControls policy policyStatus publicAccessBlock "
    "replication requestPayment restore retention select tagging torrent versioning website".split()
)


def classify(method: str, target: str, *, copy_source: bool = False) -> tuple[str, str | None, str | None]:
    """(operation, bucket, key) of a path-style S3 request; the key is URL-decoded, None for bucket requests.

    `target` is the request line's target (path and query, still percent-encoded), `copy_source` whether the
    request carries `x-amz-copy-source`.
    """
    parts = urlsplit(target)
    path = parts.path
    params = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    stripped = path.lstrip("/")
    if not stripped:
        return ("ListBuckets" if method == "GET" else "other"), None, None
    bucket_raw, slash, key_raw = stripped.partition("/")
    bucket = unquote(bucket_raw)
    key = unquote(key_raw) if slash and key_raw else None
    if params & _OTHER_SUBRESOURCES:
        return "other", bucket, key
    if key is None:
        return _bucket_operation(method, params), bucket, None
    return _object_operation(method, params, copy_source), bucket, key


def _bucket_operation(method: str, params: set[str]) -> str:
    if method == "GET":
        if "list-type" in params:
            return "ListObjectsV2"
        if "uploads" in params:
            return "ListMultipartUploads"
        if "versions" in params:
            return "ListObjectVersions"
        return "ListObjects"
    if method == "HEAD":
        return "HeadBucket"
    if method == "PUT":
        return "CreateBucket"
    if method == "POST" and "delete" in params:
        return "DeleteObjects"
    if method == "DELETE":
        return "DeleteBucket"
    return "other"


def _object_operation(method: str, params: set[str], copy_source: bool) -> str:
    if method == "GET":
        return "ListParts" if "uploadId" in params else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        if "partNumber" in params and "uploadId" in params:
            return "UploadPartCopy" if copy_source else "UploadPart"
        return "CopyObject" if copy_source else "PutObject"
    if method == "POST":
        if "uploads" in params:
            return "CreateMultipartUpload"
        if "uploadId" in params:
            return "CompleteMultipartUpload"
        return "other"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in params else "DeleteObject"
    return "other"


@dataclass(frozen=True)
class Request:
    """One classified request, as a rule's matcher and action see it."""

    method: str
    target: str
    operation: str
    bucket: str | None
    key: str | None


class Logged(NamedTuple):
    """One request the proxy saw, and the fault it injected (None: forwarded faithfully)."""

    operation: str
    key: str | None
    fault: Fault | None


class Seen(NamedTuple):
    """One request on the proxy's timeline: when it arrived (time.monotonic()), what it was, what was done to it."""

    at: float
    operation: str
    bucket: str | None
    key: str | None
    fault: Fault | None


OBJECT_OPERATIONS = frozenset(
    {"HeadObject", "GetObject", "PutObject", "CopyObject", "DeleteObject", "UploadPartCopy", "UploadPart"}
    | {"CreateMultipartUpload", "CompleteMultipartUpload", "AbortMultipartUpload"}
)


@dataclass
class Storm:
    """503 SlowDown at `rate` for `seconds` from its start (the first request after it was set, or when set)."""

    rate: float
    seconds: float
    operations: frozenset[str] | None
    rng: random.Random
    started: float | None = None

    def window(self, now: float) -> bool:
        if self.started is None:
            self.started = now
        return now - self.started < self.seconds


class Applied(NamedTuple):
    """A write the server answered 2xx (whether or not the client got that answer): what landed, and when.

    `meta` is the request's user metadata (`x-amz-meta-*` headers, names lower-cased, prefix dropped), so two
    applied copies onto one key can be told apart from one copy retransmitted byte for byte.
    """

    operation: str
    bucket: str | None
    key: str | None
    status: int
    meta: dict[str, str]


WRITES = frozenset({"PutObject", "CopyObject", "CreateMultipartUpload", "CompleteMultipartUpload", "DeleteObject"})

KeyMatcher = str | re.Pattern[str] | None


@dataclass(eq=False)  # a rule is a counter: identity, not value
class Rule:
    """A targeted fault: hits the first `times` matching requests after skipping `after` of them.

    `operation` is one name or several; `key` a substring of the decoded key, a compiled regex (searched), or
    None for any key (a str or regex never matches a bucket request). `times=None` hits every match from
    `after` on. `fault=None` forwards faithfully, which with `action` makes a hook: `action(request)` runs in
    the proxy before the fault (and before forwarding), e.g. to rewrite a source object exactly when its copy
    arrives. Rules are consulted in the order added; the first whose window holds the request is applied, and
    rules after it do not see (or count) that request.
    """

    fault: Fault | None
    operation: str | Collection[str] | None = None
    key: KeyMatcher = None
    bucket: str | None = None
    times: int | None = 1
    after: int = 0
    delay: float = 1.0
    action: Callable[[Request], None] | None = None
    matched: int = field(default=0, init=False)
    """Matching requests seen so far (inside the window or not)."""
    hits: int = field(default=0, init=False)
    """Requests this rule was applied to."""

    def matches(self, request: Request) -> bool:
        if self.operation is not None:
            names = {self.operation} if isinstance(self.operation, str) else set(self.operation)
            if request.operation not in names:
                return False
        if self.bucket is not None and request.bucket != self.bucket:
            return False
        if self.key is None:
            return True
        if request.key is None:
            return False
        if isinstance(self.key, str):
            return self.key in request.key
        return self.key.search(request.key) is not None

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def _claim(self, request: Request) -> bool:
        """Count a match and say whether this request falls in the window (called under the proxy's lock)."""
        if not self.matches(request):
            return False
        self.matched += 1
        in_window = self.matched > self.after and (self.times is None or self.matched <= self.after + self.times)
        if in_window:
            self.hits += 1
        return in_window


@dataclass(frozen=True)
class _Decision:
    fault: Fault | None
    delay: float = 0.0
    action: Callable[[Request], None] | None = None


class FaultProxy:
    """A threaded HTTP proxy in front of one S3 server; see the module docstring.

    `with FaultProxy("http://127.0.0.1:5000", seed=7, rates={SLOWDOWN: 0.02}) as proxy: ... proxy.url`.
    `rate_operations` limits random faults to some operations (None: every request); `delay` is how long a
    random DELAY sleeps; `model` makes the server's answers S3's (s3model.py: encryption ETags, checksums, a
    server clock of its own). Two proxies may share one model: one faulty for the client under test, one clean
    for the test's own view of the same S3.
    """

    def __init__(
        self,
        upstream: str,
        *,
        seed: int | None = None,
        rates: Mapping[Fault, float] | None = None,
        rate_operations: Collection[str] | None = None,
        delay: float = 0.5,
        model: S3Model | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = upstream
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port
        self.seed = seed
        self.delay = delay
        self.model = model
        """What S3 does that the server does not (s3model.py); None: answers are forwarded as they are."""
        self.storm: Storm | None = None
        self.injected: Counter[tuple[Fault, str]] = Counter()
        self.log: list[Logged] = []
        self.timeline: list[Seen] = []
        self.applied: list[Applied] = []
        self.rules: list[Rule] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._rates: list[tuple[Fault, float]] = []
        self._rate_operations: frozenset[str] | None = None
        self.set_rates(rates or {}, operations=rate_operations)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_all()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=10)
        self._server = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the proxy is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ---- what to inject -----------------------------------------------------------------------------------

    def set_rates(self, rates: Mapping[Fault, float], *, operations: Collection[str] | None = None) -> None:
        """Random faults per request from now on (the RNG's sequence carries on; it is not reseeded)."""
        total = sum(rates.values())
        if any(rate < 0 for rate in rates.values()) or total > 1:
            raise ValueError(f"rates must be non-negative and add up to at most 1: {dict(rates)}")
        with self._lock:
            # A fixed order, so one seed means one mapping from draws to faults.
            self._rates = [(fault, float(rates[fault])) for fault in ALL_FAULTS if rates.get(fault)]
            self._rate_operations = None if operations is None else frozenset(operations)

    def start_storm(
        self,
        rate: float,
        seconds: float,
        *,
        operations: Collection[str] | None = None,
        now: bool = False,
        seed: int | None = None,
    ) -> Storm:
        """A throttling storm: 503 SlowDown (S3's XML body) for a share `rate` of the requests arriving within
        `seconds` of its start, which is the first request from now on (or now, with `now=True`). Drawn from an
        RNG of its own (seeded from `seed`, else the proxy's seed), so rates set beside it keep their sequence;
        rules still come first, random rates apply to what the storm lets through."""
        if not 0 <= rate <= 1 or seconds < 0:
            raise ValueError(f"a storm needs 0 <= rate <= 1 and seconds >= 0, not {rate}, {seconds}")
        storm = Storm(
            rate,
            seconds,
            None if operations is None else frozenset(operations),
            random.Random(self.seed if seed is None else seed),
            time.monotonic() if now else None,
        )
        with self._lock:
            self.storm = storm
        return storm

    def per_operation(self) -> Counter[str]:
        """Requests seen, by operation."""
        with self._lock:
            return Counter(seen.operation for seen in self.timeline)

    def attempts_per_object(
        self, bucket: str | None = None, operations: Collection[str] = OBJECT_OPERATIONS
    ) -> Counter[tuple[str, str, str]]:
        """(operation, bucket, key) -> requests seen for it: how often each object's request was sent."""
        with self._lock:
            return Counter(
                (seen.operation, seen.bucket or "", seen.key)
                for seen in self.timeline
                if seen.key is not None and seen.operation in operations and (bucket is None or seen.bucket == bucket)
            )

    def repeat_gaps(
        self,
        bucket: str | None = None,
        operations: Collection[str] = OBJECT_OPERATIONS,
        leave_out: str | None = None,
    ) -> list[float]:
        """Seconds between a throttled object request and the next request of the same operation and key: how
        long the client waited before asking again. `leave_out`: keys under this prefix are not counted (a
        document several threads read, such as the lock, is asked again by another caller, not retried)."""
        last: dict[tuple[str, str | None, str], Seen] = {}
        gaps = []
        with self._lock:
            timeline = list(self.timeline)
        for seen in timeline:
            if seen.key is None or seen.operation not in operations or (bucket is not None and seen.bucket != bucket):
                continue
            if leave_out is not None and seen.key.startswith(leave_out):
                continue
            ident = (seen.operation, seen.bucket, seen.key)
            before = last.get(ident)
            if before is not None and before.fault is Fault.SLOWDOWN:
                gaps.append(seen.at - before.at)
            last[ident] = seen
        return gaps

    def add_rule(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def remove_rule(self, rule: Rule) -> None:
        with self._lock:
            if rule in self.rules:
                self.rules.remove(rule)

    def clear(self) -> None:
        """No more faults: rules and rates removed (the counters and the log are kept)."""
        with self._lock:
            self.rules.clear()
            self._rates = []
            self._rate_operations = None
            self.storm = None

    def reset(self, seed: int | None = None) -> None:
        """As if freshly started with `seed`: no rules or rates, empty counters and logs, the RNG reseeded."""
        self.clear()
        with self._lock:
            self.seed = seed
            self._rng = random.Random(seed)
            self.injected.clear()
            self.log.clear()
            self.timeline.clear()
            self.applied.clear()

    def requests(self, operation: str | None = None) -> list[Logged]:
        with self._lock:
            return [entry for entry in self.log if operation is None or entry.operation == operation]

    def _record_applied(self, request: Request, status: int, headers: Iterable[tuple[str, str]]) -> None:
        if request.operation not in WRITES or not 200 <= status < 300:
            return
        meta = {
            name.lower().removeprefix("x-amz-meta-"): value
            for name, value in headers
            if name.lower().startswith("x-amz-meta-")
        }
        with self._lock:
            self.applied.append(Applied(request.operation, request.bucket, request.key, status, meta))

    def _decide(self, request: Request) -> _Decision:
        with self._lock:
            decision = _Decision(None)
            for rule in self.rules:
                if rule._claim(request):
                    decision = _Decision(rule.fault, rule.delay, rule.action)
                    break
            else:
                decision = self._storm(request) or self._draw(request)
            if decision.fault is not None:
                self.injected[(decision.fault, request.operation)] += 1
            self.log.append(Logged(request.operation, request.key, decision.fault))
            self.timeline.append(Seen(time.monotonic(), request.operation, request.bucket, request.key, decision.fault))
            return decision

    def _storm(self, request: Request) -> _Decision | None:
        storm = self.storm
        if storm is None or not storm.window(time.monotonic()):
            return None
        draw = storm.rng.random()
        if storm.operations is not None and request.operation not in storm.operations:
            return None
        return _Decision(Fault.SLOWDOWN) if draw < storm.rate else None

    def _draw(self, request: Request) -> _Decision:
        """One draw per request whenever rates are set, eligible or not, so the sequence depends only on order."""
        if not self._rates:
            return _Decision(None)
        draw = self._rng.random()
        if self._rate_operations is not None and request.operation not in self._rate_operations:
            return _Decision(None)
        threshold = 0.0
        for fault, rate in self._rates:
            threshold += rate
            if draw < threshold:
                return _Decision(fault, self.delay)
        return _Decision(None)

    def _fetch(self, bucket: str, key: str, etag: str | None) -> tuple[int, str, bytes]:
        """A GET straight to the server (never faulted, never logged), pinned to `etag` when given: the model
        computes a checksum from the bytes of the very version it describes."""
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=UPSTREAM_TIMEOUT)
        try:
            # moto wants a SigV4-shaped Authorization but checks no signature (the model is for moto: s3model.py).
            headers = {
                "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, "
                "SignedHeaders=host, Signature=0",
                **({"If-Match": f'"{etag}"'} if etag else {}),
            }
            conn.request("GET", f"/{quote(bucket, safe='')}/{quote(key, safe='/~')}", headers=headers)
            response = conn.getresponse()
            body = response.read()
            return response.status, (response.getheader("ETag") or "").strip('"'), body
        finally:
            conn.close()


class _Buffered:
    """A whole answer in memory, rewritten by the model, with the little of HTTPResponse the relay uses."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.reason, self._headers = status, reason, headers
        self._body = body
        self.chunked = False
        self.length: int | None = len(body)

    def getheaders(self) -> list[tuple[str, str]]:
        return self._headers

    def read(self) -> bytes:
        body, self._body, self.length = self._body, b"", 0
        return body

    def read1(self, size: int = -1) -> bytes:
        size = len(self._body) if size < 0 else size
        chunk, self._body = self._body[:size], self._body[size:]
        self.length = len(self._body)
        return chunk


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the CLI opens up to 2 * concurrency + 8 connections at once
    proxy: FaultProxy

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def close_all(self) -> None:
        """Idle keep-alive connections would keep their handler threads (and the client's pool) alive."""
        with self.connections_lock:
            for sock in list(self.connections):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-answer (a SIGKILLed CLI) is routine here, not worth a traceback."""


def _s3_error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        "<RequestId>fault-proxy</RequestId><HostId>fault-proxy</HostId></Error>"
    ).encode()


_ERRORS = {
    Fault.SLOWDOWN: (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    Fault.ERROR_500: (500, "Internal Server Error", "InternalError", "We encountered an internal error."),
    Fault.LOST_AFTER: (500, "Internal Server Error", "InternalError", "We encountered an internal error."),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        """Silent: the proxy's own log is `FaultProxy.log`."""

    def _proxy(self) -> None:
        try:
            self._serve()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _proxy

    def _serve(self) -> None:
        operation, bucket, key = classify(
            self.command, self.path, copy_source=self.headers.get("x-amz-copy-source") is not None
        )
        request = Request(self.command, self.path, operation, bucket, key)
        body = self._read_body()
        decision = self.server.proxy._decide(request)
        if decision.action is not None:
            decision.action(request)
        fault = decision.fault
        if fault is Fault.DELAY:
            time.sleep(decision.delay)
        if fault in (Fault.SLOWDOWN, Fault.ERROR_500):
            self._answer_error(fault)
            return
        proxy = self.server.proxy
        headers, method = list(self.headers.items()), self.command
        if proxy.model is not None:
            headers, method = proxy.model.prepare(operation, method, bucket, headers)
        try:
            upstream, response = self._forward(body, headers, method)
            if proxy.model is not None:
                response = self._modelled(proxy.model, request, headers, response)
        except (ConnectionError, TimeoutError, http.client.HTTPException, OSError):
            self._answer(502, "Bad Gateway", _s3_error("BadGateway", "fault proxy: the upstream server failed"))
            return
        proxy._record_applied(request, response.status, self.headers.items())
        try:
            if fault is Fault.LOST_AFTER:
                response.read()  # the server has applied it; its answer is dropped
                self._answer_error(fault)
            elif fault is Fault.RESET_BEFORE:
                response.read()
                self._reset()
            elif fault is Fault.RESET_BODY:
                self._half_then_reset(response)
            else:
                self._relay(response)
        finally:
            upstream.close()

    # ---- the request --------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        """The request body exactly as sent, framing included (a chunked body is forwarded still chunked)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # a killed client: forwarding a short body would hang the server
            raise ConnectionError("client closed mid-body")
        return body

    def _read_chunked(self) -> bytes:
        raw = bytearray()
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("client closed mid-body")
            raw += line
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers (aws-chunked puts its checksum here), then the blank line
                    trailer = self.rfile.readline(65537)
                    raw += trailer
                    if trailer in (b"\r\n", b"\n", b""):
                        return bytes(raw)
            data = self.rfile.read(size + 2)
            if len(data) < size + 2:
                raise ConnectionError("client closed mid-body")
            raw += data

    def _modelled(
        self, model: S3Model, request: Request, headers: list[tuple[str, str]], response: http.client.HTTPResponse
    ) -> _Buffered:
        """The server's whole answer, rewritten into S3's by the model."""
        data = response.read()
        out_headers, out_body = model.respond(
            self.command,
            request.operation,
            request.target,
            request.bucket,
            request.key,
            headers,
            response.status,
            response.getheaders(),
            data,
            self.server.proxy._fetch,
        )
        return _Buffered(response.status, response.reason, out_headers, out_body)

    def _forward(
        self, body: bytes, headers: Iterable[tuple[str, str]], method: str
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send the request upstream unchanged: same method, target, headers (Host too) and body bytes (the model,
        if any, has translated its conditions, and may ask a HEAD as a GET).

        One upstream connection per request: a reused one that the server had closed could not tell "not sent"
        from "applied", which is exactly the ambiguity this proxy injects on purpose only.
        """
        proxy = self.server.proxy
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=UPSTREAM_TIMEOUT)
        try:
            upstream.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                upstream.putheader(name, value)
            upstream.endheaders()
            if body:
                upstream.send(body)
            return upstream, upstream.getresponse()
        except BaseException:
            upstream.close()
            raise

    # ---- the answer ---------------------------------------------------------------------------------------

    def _head_bytes(self, status: int, reason: str, headers: Iterable[tuple[str, str]]) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason}\r\n"] + [f"{name}: {value}\r\n" for name, value in headers]
        return ("".join(lines) + "\r\n").encode("latin-1")

    def _bodiless(self, status: int) -> bool:
        return self.command == "HEAD" or status in (204, 304) or 100 <= status < 200

    def _answer(self, status: int, reason: str, body: bytes) -> None:
        model = self.server.proxy.model
        headers = [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("x-amz-request-id", "fault-proxy"),
            ("Date", model.date_header() if model is not None else formatdate(usegmt=True)),
        ]
        self.wfile.write(self._head_bytes(status, reason, headers) + (b"" if self._bodiless(status) else body))

    def _answer_error(self, fault: Fault) -> None:
        status, reason, code, message = _ERRORS[fault]
        self._answer(status, reason, _s3_error(code, message))

    def _relay(self, response: http.client.HTTPResponse) -> None:
        """Stream the server's answer back as it comes (re-chunked if it came chunked)."""
        headers = response.getheaders()
        if any(n.lower() == "connection" and "close" in v.lower() for n, v in headers):
            self.close_connection = True
        self.wfile.write(self._head_bytes(response.status, response.reason, headers))
        if self._bodiless(response.status):
            return
        if response.chunked:
            while chunk := response.read1(65536):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
            return
        if response.length is None:
            self.close_connection = True  # delimited by the close, so close it is
        while chunk := response.read1(65536):
            self.wfile.write(chunk)
        if response.length:
            # The server closed before the body it declared was whole (rclone does, when a GET meets a rewrite of
            # the same object in place). http.client's read1 ends quietly there; keeping the client's connection
            # open would leave it waiting for the missing bytes until its read timeout. Close it, as the server
            # did, so the client sees the cut at once.
            self.close_connection = True

    def _half_then_reset(self, response: http.client.HTTPResponse) -> None:
        body = response.read()
        head = self._head_bytes(response.status, response.reason, response.getheaders())
        if self._bodiless(response.status) or not body:
            # No body to cut: cut the headers, and reset at once. A FIN here would let a lenient client (http.client
            # stops at EOF) take the first half of the headers for all of them: a 200 HEAD without its metadata.
            self.wfile.write(head[: len(head) // 2])
            self._reset()
            return
        if response.chunked:
            half = body[: max(1, len(body) // 2)]
            self.wfile.write(head + b"%x\r\n%s\r\n" % (len(half), half))
        else:
            self.wfile.write(head + body[: len(body) // 2])
        self._reset(after_delivery=True)

    def _reset(self, *, after_delivery: bool = False) -> None:
        """RST, not FIN: SO_LINGER 0, then close the socket for real (the reader's file holds a reference).

        A peer's kernel drops received data its reader has not consumed yet when an RST arrives, so a cut
        answer (`after_delivery`) first half-closes (FIN after the bytes sent) and waits, up to DRAIN_WAIT, for
        the client to read them and hang up; only then is the connection reset.
        """
        self.close_connection = True
        sock = self.connection
        if after_delivery:
            try:
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(DRAIN_WAIT)
                while sock.recv(65536):
                    pass
            except OSError:
                pass
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.rfile.close()
        except OSError:
            pass
        sock.close()
