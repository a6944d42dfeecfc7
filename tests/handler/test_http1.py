"""The short road's wire: whole answers are read, anything cut short or malformed raises, nothing is retried.

Each test scripts a loopback server byte for byte: what it answers to each request on one connection, and
what it received, so the request's bytes are checked too.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from handler.store.http1 import Connection, ProtocolError


class Script:
    """A one-connection-at-a-time server that answers the n-th request with answers[n] (bytes, then close
    if the answer is followed by None)."""

    def __init__(self, answers: list[bytes | None]):
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # close() ended the test with answers left over: nobody else will connect
                return
            self.connections += 1
            with conn:
                reader = conn.makefile("rb")
                while self.answers:
                    request = _read_request(reader)
                    if request is None:
                        break
                    self.requests.append(request)
                    answer = self.answers.pop(0)
                    if answer is None:
                        break
                    conn.sendall(answer)
                    if self.answers and self.answers[0] is None:
                        self.answers.pop(0)
                        break

    def close(self) -> None:
        self._listener.close()


def _read_request(reader) -> bytes | None:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        if not line:
            return None
        head += line
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + reader.read(length)


@contextmanager
def scripted(*answers: bytes | None) -> Iterator[tuple[Script, Connection]]:
    script = Script(list(answers))
    conn = Connection("http", f"127.0.0.1:{script.port}", connect_timeout=5, read_timeout=5, context=None)
    try:
        yield script, conn
    finally:
        conn.close()
        script.close()


OK = b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Amz-Meta-Color: blue\r\nETag: "abc"\r\n\r\nhello'


def test_a_whole_answer_is_read_and_the_connection_is_kept_for_the_next_request():
    with scripted(OK, OK) as (script, conn):
        first = conn.exchange("GET", "/b/k", {"host": "h", "x-amz-date": "d"})
        second = conn.exchange("GET", "/b/k2", {"host": "h"})
    assert first[0] == 200 and first[2] == b"hello" and second[2] == b"hello"
    assert first[1].get("etag") == '"abc"' and first[1]["ETAG"] == '"abc"'
    assert ("X-Amz-Meta-Color", "blue") in first[1].items()  # names as the server wrote them
    assert script.connections == 1
    assert script.requests[0] == b"GET /b/k HTTP/1.1\r\nhost: h\r\nx-amz-date: d\r\n\r\n"


def test_a_put_sends_its_length_even_without_a_body_and_a_body_after_its_headers():
    with scripted(OK, OK) as (script, conn):
        conn.exchange("PUT", "/b/copy", {"host": "h"})
        conn.exchange("PUT", "/b/doc", {"host": "h"}, b"x" * 70_000)
    assert b"content-length: 0\r\n" in script.requests[0]
    assert script.requests[1].endswith(b"\r\n\r\n" + b"x" * 70_000)
    assert b"content-length: 70000\r\n" in script.requests[1]


def test_a_head_answer_has_no_body_whatever_its_content_length_says():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n"
    with scripted(head, OK) as (_, conn):
        status, headers, body = conn.exchange("HEAD", "/b/k", {"host": "h"})
        assert (status, headers["content-length"], body) == (200, "4096", b"")
        assert conn.exchange("GET", "/b/k", {"host": "h"})[2] == b"hello"  # the next answer is not misread


def test_a_chunked_answer_is_joined_and_an_interim_100_is_skipped():
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\n<Cop\r\n9\r\nyResult/>\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    with scripted(chunked, OK) as (script, conn):
        assert conn.exchange("PUT", "/b/k", {"host": "h"})[:3:2] == (200, b"<CopyResult/>")
        assert conn.exchange("GET", "/b/k", {"host": "h"})[2] == b"hello"
    assert script.connections == 1


def test_connection_close_is_honoured_and_the_next_request_opens_a_new_connection():
    closing = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    with scripted(closing, None, OK) as (script, conn):
        assert conn.exchange("GET", "/b/k", {"host": "h"})[2] == b"ok"
        assert not conn.is_open
        assert conn.exchange("GET", "/b/k", {"host": "h"})[2] == b"hello"
    assert script.connections == 2


@pytest.mark.parametrize(
    "answer, says",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", "stopped at 5 of 10"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Amz-Meta-A: 1\r\n", "stopped mid-line|closed before"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "stopped mid-line"),
        (b"", "closed before the answer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "stopped at 3 of 5"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\n\r\nread to close", "without Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", "more than 100 headers"),
    ],
)
def test_an_answer_cut_short_or_malformed_raises_and_closes_the_connection(answer, says):
    with scripted(answer, None) as (_, conn):
        with pytest.raises(ProtocolError, match=says):
            conn.exchange("GET", "/b/k", {"host": "h"})
        assert not conn.is_open


@pytest.mark.parametrize("headers", [{"x-amz-meta-a": "1\r\nx-evil: 2"}, {"x-amz-meta-a": "1\n"}, {"a\rb": "1"}])
def test_a_header_with_a_line_break_is_never_sent(headers):
    with scripted(OK) as (script, conn):
        with pytest.raises(ProtocolError, match="line break"):
            conn.exchange("GET", "/b/k", {"host": "h", **headers})
        assert script.requests == []


def test_a_server_that_does_not_answer_in_time_raises_a_timeout():
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel's backlog), never answers
    conn = Connection(
        "http", f"127.0.0.1:{listener.getsockname()[1]}", connect_timeout=5, read_timeout=0.3, context=None
    )
    try:
        with pytest.raises(TimeoutError):
            conn.exchange("GET", "/b/k", {"host": "h"})
        assert not conn.is_open
    finally:
        listener.close()


@pytest.mark.parametrize(
    "netloc, host, port",
    [
        ("s3.amazonaws.com", "s3.amazonaws.com", 443),
        ("127.0.0.1:9000", "127.0.0.1", 9000),
        ("[::1]:8080", "::1", 8080),
        ("[::1]", "::1", 443),
    ],
)
def test_netloc_is_split_into_host_and_port(netloc, host, port):
    conn = Connection("https", netloc, connect_timeout=1, read_timeout=1, context=None)
    assert (conn._host, conn._port) == (host, port)
