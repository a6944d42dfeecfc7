"""The clients the runtime makes: answers that botocore could mis-read are read as what they are."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from handler import s3io
from handler.clients import s3_client
from handler.s3errors import Transient


class _FailingWithChecksum(BaseHTTPRequestHandler):
    """A 500 with the object's checksum header, as `rclone serve s3` answers a GET during a rewrite."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b"<Error><Code>InternalError</Code><Message>busy</Message></Error>"
        self.send_response(500)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-checksum-crc32", "AAAAAA==")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(name="endpoint")
def endpoint_fixture() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailingWithChecksum)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_server_error_carrying_a_checksum_header_is_a_transient_error_not_a_crash(endpoint, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    s3 = s3_client(concurrency=1, endpoint_url=endpoint)

    with pytest.raises(Transient, match="InternalError"):
        s3io.get_json(s3, "ledger-bucket", "_ingestion/movielens/lock.json")


class _RewrittenWhileRead(BaseHTTPRequestHandler):
    """lock.json rewritten, shorter, while a reader had its first answer (as rclone serve s3 serves it): the first
    GET promises the old length and stops half-way, the resume gets 416, a fresh GET gets the new document."""

    old = b'{"run_id": "old-run", "renewed_at": 1.0, "padding": "' + b"x" * 60 + b'"}'
    new = b'{"run_id": "new-run", "renewed_at": 2.0}'
    gets = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).gets += 1
        if self.headers.get("Range"):
            self.send_response(416)
            body = b"<Error><Code>InvalidRange</Code><Message>not satisfiable</Message></Error>"
            self.send_header("Content-Type", "application/xml")
        elif type(self).gets == 1:
            self.send_response(200)
            self.send_header("ETag", '"old"')
            self.send_header("Content-Length", str(len(self.old)))
            self.end_headers()
            self.wfile.write(self.old[:40])
            self.wfile.flush()
            self.close_connection = True
            return
        else:
            self.send_response(200)
            body = self.new
            self.send_header("ETag", '"new"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_document_rewritten_while_it_was_read_is_read_again_whole(monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RewrittenWhileRead)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        s3 = s3_client(concurrency=1, endpoint_url=f"http://127.0.0.1:{server.server_address[1]}")

        document, etag = s3io.get_json(s3, "ledger-bucket", "_ingestion/movielens/lock.json")
    finally:
        server.shutdown()

    assert (document, etag) == ({"run_id": "new-run", "renewed_at": 2.0}, '"new"')
    assert _RewrittenWhileRead.gets == 3, "the cut read, the refused resume, the new version read whole"
