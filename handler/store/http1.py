"""One HTTP/1.1 request and its whole answer on a kept-alive connection: the short road's wire (lean.py).

Why not `http.client`: it parses every answer's headers with the email package (a FeedParser, a Message and
a policy call per header), and makes a socket file per answer. In a 20,000-object run with 32 copy threads
that was 22 % of the client's GIL time (py-spy, docs/BENCHMARKS.md), more than signing and the copy pool
together. S3's answers need none of it: a status line, header lines, a body delimited by Content-Length or
chunked. This reader is strict where http.client is lenient: an answer whose headers or body stop short (a
reset, a FIN mid-answer, a timeout) raises, and nothing here retries; the road's caller asks botocore again.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

MAX_LINE = 65536
MAX_HEADERS = 100  # as http.client


class ProtocolError(Exception):
    """The answer is not a whole HTTP/1.1 answer (cut short, malformed), or the request cannot be sent as is."""


class Headers:
    """An answer's headers: as received (`items`, names in the server's case), looked up by any case (`get`)."""

    __slots__ = ("_pairs", "_by_name")

    def __init__(self, pairs: list[tuple[str, str]]):
        self._pairs = pairs
        self._by_name: dict[str, str] = {}
        for name, value in pairs:
            lower = name.lower()
            known = self._by_name.get(lower)
            self._by_name[lower] = value if known is None else f"{known}, {value}"

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._by_name.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._by_name[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name

    def lowered(self) -> dict[str, str]:
        """Names in lower case, repeated headers joined with ", ": botocore's HTTPHeaders for this answer."""
        return dict(self._by_name)

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._pairs)


class Connection:
    """One kept-alive connection to `netloc`, opened at its first request; used by one thread at a time."""

    def __init__(
        self, scheme: str, netloc: str, *, connect_timeout: float, read_timeout: float, context: ssl.SSLContext | None
    ):
        self.scheme = scheme
        self.netloc = netloc
        self._host, self._port = _host_port(netloc, 443 if scheme == "https" else 80)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._context = context
        self._sock: socket.socket | None = None
        self._file = None

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def exchange(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, Headers, bytes]:
        """Send one request, read its whole answer: status, headers, body. Raises ProtocolError or OSError (a
        reset, a timeout), after which the connection is closed; it is also closed when the server says so."""
        if body or method in ("PUT", "POST"):
            headers = {**headers, "content-length": str(len(body))}  # as http.client sends a PUT's empty body
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        lines.append("\r\n")
        head = "".join(lines)
        if head.count("\n") != len(headers) + 2 or head.count("\r") != len(headers) + 2:
            raise ProtocolError("a header name or value holds a line break")  # never send a split header
        try:
            request = head.encode("ascii")
        except UnicodeEncodeError as err:
            raise ProtocolError("a header is not ASCII") from err
        try:
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            self._sock.sendall(request + body if len(body) < 65536 else request)
            if len(body) >= 65536:
                self._sock.sendall(body)
            status, version, answer = self._read_head()
            while 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
                status, version, answer = self._read_head()
            data = self._read_body(method, status, answer)
        except BaseException:
            self.close()
            raise
        if _closes(version, answer):
            self.close()
        return status, answer, data

    def close(self) -> None:
        sock, file = self._sock, self._file
        self._sock = self._file = None
        if file is not None:
            file.close()
        if sock is not None:
            sock.close()

    def _connect(self) -> None:
        sock = socket.create_connection((self._host, self._port), timeout=self._connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.scheme == "https":
                context = self._context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=self._host)
            sock.settimeout(self._read_timeout)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._file = sock.makefile("rb")

    def _line(self) -> bytes:
        assert self._file is not None
        line = self._file.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ProtocolError("an answer line longer than 64 KiB")
        if not line.endswith(b"\n"):
            raise ProtocolError("the answer stopped mid-line" if line else "the connection closed before the answer")
        return line

    def _read_head(self) -> tuple[int, str, Headers]:
        parts = self._line().decode("iso-8859-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise ProtocolError(f"not an HTTP/1.x status line: {' '.join(parts)[:80]!r}")
        pairs = []
        while True:
            line = self._line()
            if line in (b"\r\n", b"\n"):
                break
            if len(pairs) == MAX_HEADERS:
                raise ProtocolError(f"more than {MAX_HEADERS} headers")
            name, colon, value = line.decode("iso-8859-1").partition(":")
            if not colon or not name or name != name.strip():
                raise ProtocolError(f"a malformed header line: {line[:80]!r}")
            pairs.append((name, value.strip()))
        return int(parts[1]), parts[0], Headers(pairs)

    def _read_body(self, method: str, status: int, headers: Headers) -> bytes:
        if method == "HEAD" or status in (204, 304):
            return b""
        if "chunked" in (headers.get("transfer-encoding") or "").lower():
            return self._read_chunked()
        length = headers.get("content-length")
        if length is None:
            raise ProtocolError("an answer without Content-Length or chunked encoding")  # read-to-close: not S3's
        if not length.isdigit():
            raise ProtocolError(f"a malformed Content-Length: {length[:40]!r}")
        return self._read_exactly(int(length))

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size_field = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_field, 16)
            except ValueError as err:
                raise ProtocolError(f"a malformed chunk size: {size_field[:40]!r}") from err
            if size == 0:
                while self._line() not in (b"\r\n", b"\n"):  # trailers, unused
                    pass
                return b"".join(chunks)
            chunks.append(self._read_exactly(size))
            if self._line() not in (b"\r\n", b"\n"):
                raise ProtocolError("a chunk longer than its size")

    def _read_exactly(self, size: int) -> bytes:
        assert self._file is not None
        data = self._file.read(size)
        if len(data) != size:
            raise ProtocolError(f"the body stopped at {len(data)} of {size} bytes")
        return data


def _closes(version: str, headers: Headers) -> bool:
    tokens = {t.strip().lower() for t in (headers.get("connection") or "").split(",")}
    return "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)


def _host_port(netloc: str, default: int) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]` or `[v6]:port`."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default
    host, colon, port = netloc.rpartition(":")
    return (host, int(port)) if colon and port.isdigit() else (netloc, default)
