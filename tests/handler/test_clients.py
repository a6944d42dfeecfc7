"""The clients the runtime makes: answers that botocore could mis-read are read as what they are."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from handler.errors import ConfigError, CorruptDocument
from handler.store import Store, retries
from handler.store.errors import Transient
from handler.store.lean import ENV_SWITCH as ROAD_OFF
from tests.stub_server import Quiet, serving

# The resumes below are botocore's road (a body cut off there is resumed with a ranged GET); on the short road a
# cut body is dropped and read again through botocore (tests/handler/test_lean.py).


class _FailingWithChecksum(Quiet):
    """A 500 with the object's checksum header, as `rclone serve s3` answers a GET during a rewrite."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b"<Error><Code>InternalError</Code><Message>busy</Message></Error>"
        self._answer(500, body, {"Content-Type": "application/xml", "x-amz-checksum-crc32": "AAAAAA=="})


@pytest.fixture(name="endpoint")
def endpoint_fixture() -> Iterator[str]:
    with serving(_FailingWithChecksum) as url:
        yield url


def test_a_server_error_carrying_a_checksum_header_is_a_transient_error_not_a_crash(endpoint, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    store = Store.sized(concurrency=1, endpoint_url=endpoint)

    with pytest.raises(Transient, match="InternalError"):
        store.get_json("ledger-bucket", "_ingestion/movielens/lock.json")


class _RewrittenWhileRead(Quiet):
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


def test_a_document_rewritten_while_it_was_read_is_read_again_whole(monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv(ROAD_OFF, "0")
    with serving(_RewrittenWhileRead) as url:
        store = Store.sized(concurrency=1, endpoint_url=url)

        document, etag = store.get_json("ledger-bucket", "_ingestion/movielens/lock.json")

    assert (document, etag) == ({"run_id": "new-run", "renewed_at": 2.0}, '"new"')
    assert _RewrittenWhileRead.gets == 3, "the cut read, the refused resume, the new version read whole"


class _ResumeIgnoringIfMatch(Quiet):
    """As `rclone serve s3` serves lock.json rewritten, longer, during a read: the first answer stops half-way,
    and the resume (If-Match ignored) is served from the new version, with the new version's ETag."""

    old = b'{"run_id": "old-run", "renewed_at": 1.0, "padding": "' + b"x" * 60 + b'"}'
    new = b'{"run_id": "new-run", "renewed_at": 22.0, "padding": "' + b"y" * 90 + b'"}'
    gets = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).gets += 1
        first = type(self).gets == 1
        body = self.old if first else self.new
        start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("ETag", '"old"' if first else '"new"')
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if first:
            self.wfile.write(body[:40])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


class _MixedThenWhole(Quiet):
    """A whole-looking answer made of two versions (parsed, it has bytes after the document), then a good one."""

    gets = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).gets += 1
        body = b'{"run_id": "a"}"}' if type(self).gets == 1 else b'{"run_id": "b"}'
        self._answer(200, body, {"ETag": f'"{type(self).gets}"'})


def _get_json_from(handler: type[Quiet], monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv(ROAD_OFF, "0")
    with serving(handler) as url:
        return Store.sized(concurrency=1, endpoint_url=url).get_json("ledger-bucket", "_ingestion/movielens/lock.json")


def test_a_resume_served_from_another_version_is_refused_and_the_document_read_again(monkeypatch):
    """Seen at 1M keys on rclone: old bytes + the new version's tail, 'JSONDecodeError: Extra data', exit 1."""
    assert _get_json_from(_ResumeIgnoringIfMatch, monkeypatch) == (
        {"run_id": "new-run", "renewed_at": 22.0, "padding": "y" * 90},
        '"new"',
    )
    assert _ResumeIgnoringIfMatch.gets == 3, "the cut read, the resume from the other version, a whole read"


def test_a_body_of_two_versions_is_read_again_not_a_crash(monkeypatch):
    assert _get_json_from(_MixedThenWhole, monkeypatch) == ({"run_id": "b"}, '"2"')


class _NeverJson(Quiet):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(200, b"not json", {"ETag": '"x"'})


def test_a_document_that_stays_unreadable_is_reported_by_name(monkeypatch):
    monkeypatch.setattr("handler.store.store.time.sleep", lambda seconds: None)
    with pytest.raises(CorruptDocument, match=r"s3://ledger-bucket/_ingestion/movielens/lock.json is not a JSON"):
        _get_json_from(_NeverJson, monkeypatch)


def test_an_unknown_retry_mode_is_refused_with_the_modes_there_are(monkeypatch):
    monkeypatch.setenv("AWS_RETRY_MODE", "fastest")
    with pytest.raises(ConfigError, match=r"AWS_RETRY_MODE='fastest' is not a retry mode; use one of standard, adapt"):
        Store.sized(endpoint_url="http://127.0.0.1:9")


@pytest.mark.parametrize("mode", ["standard", "adaptive", "legacy"])
def test_every_retry_mode_keeps_the_short_road_and_one_policy_for_both_roads(mode, monkeypatch):
    monkeypatch.setenv("AWS_RETRY_MODE", mode)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "7")
    store = Store.sized(endpoint_url="http://127.0.0.1:9")

    road = store.fast_road
    assert road is not None
    assert road.policy is retries.policy_of(store.client)
    assert road.policy.max_attempts == 7
    assert (road.policy.limiter is not None) == (mode == "adaptive")
