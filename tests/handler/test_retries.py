"""A throttling storm is absorbed by one retry policy on both of a client's roads (handler/store/retries.py): every
attempt AWS_MAX_ATTEMPTS allows, counted across both roads, with botocore's backoff between them, and the same
again for the next request however long the storm lasted (a warm Lambda keeps its client).

The server is a loopback stand-in that answers 503 SlowDown to the requests a test chooses; which road sent a
request is told by its User-Agent (the short road signs its own). `time.sleep` and `random.random` are replaced
so the backoff is recorded instead of waited, and drawn at its largest."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from handler.store import Store, lean, retries
from handler.store.errors import Throttled
from tests.stub_server import Answering, serving

ROAD = "data-file-ingestion (lean)"
SLOWDOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
INTERNAL = b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"
COPY_RESULT = (
    b'<CopyObjectResult><ETag>"aa"</ETag><LastModified>2026-12-03T06:48:57.000Z</LastModified></CopyObjectResult>'
)


class _Server(Answering):
    """Answers each request as `decide(road, number, nth)` says ("ok", "slowdown", "internal", "forbidden"): `road`
    whether the short road sent it, `number` its place among all requests, `nth` among those for its path."""

    decide: Callable[[bool, int, int], str] = staticmethod(lambda road, number, nth: "ok")
    seen: list[tuple[str, bool, float]] = []
    per_path: dict[str, int] = {}
    sdk_request: list[str] = []  # botocore's amz-sdk-request header ("attempt=2; max=4")
    lock = threading.Lock()

    def _handle(self) -> None:
        cls = type(self)
        road = self.headers.get("User-Agent", "").startswith(ROAD)
        self._drain()
        path = self.path.split("?")[0]
        with cls.lock:
            cls.seen.append((self.command, road, time.monotonic()))
            number = len(cls.seen)
            nth = cls.per_path[path] = cls.per_path.get(path, 0) + 1
            cls.sdk_request.append(self.headers.get("amz-sdk-request", ""))
        what = cls.decide(road, number, nth)
        if what == "slowdown":
            self._answer(503, SLOWDOWN, {"Content-Type": "application/xml"})
        elif what == "internal":
            self._answer(500, INTERNAL, {"Content-Type": "application/xml"})
        elif what == "forbidden":
            self._answer(403, b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>", {})
        elif self.command == "PUT" and self.headers.get("x-amz-copy-source"):
            self._answer(200, COPY_RESULT, {"Content-Type": "application/xml"})
        elif self.command == "GET" and "list-type" in self.path:
            body = b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>"
            self._answer(200, body, {"Content-Type": "application/xml"})
        elif self.command == "GET":
            self._answer(200, b'{"n": 1}', {"ETag": '"e"'})
        else:
            self._answer(200, b"", {"ETag": '"aa"', "Last-Modified": "Thu, 03 Dec 2026 06:48:57 GMT"})

    do_HEAD = do_GET = do_PUT = _handle  # noqa: N815 - http.server's naming


@pytest.fixture(name="server")
def server_fixture() -> Iterator[type[_Server]]:
    _Server.seen = []
    _Server.per_path = {}
    _Server.sdk_request = []
    _Server.decide = staticmethod(lambda road, number, nth: "ok")
    with serving(_Server) as url:
        _Server.url = url  # type: ignore[attr-defined]
        yield _Server


@pytest.fixture(name="slept")
def slept_fixture(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff each retry was given (both roads sleep with time.sleep), drawn at its largest."""
    delays: list[float] = []
    monkeypatch.setattr(time, "sleep", delays.append)
    monkeypatch.setattr("random.random", lambda: 1.0)
    return delays


def _client(server: type[_Server]) -> Any:
    return Store.sized(concurrency=2, endpoint_url=server.url)  # type: ignore[attr-defined]


def _roads(server: type[_Server]) -> list[bool]:
    return [road for _, road, _ in server.seen]


def test_a_throttled_request_is_retried_on_the_short_road_with_backoff_until_it_succeeds(server, slept, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "10")
    server.decide = staticmethod(lambda road, number, nth: "slowdown" if number <= 6 else "ok")
    store = _client(server)

    assert store.head("b", "k")["ETag"] == '"aa"'

    assert _roads(server) == [True] * 7, "every attempt on the road that met the throttling"
    assert slept == [1, 2, 4, 8, 16, 20], "full-jitter exponential backoff: 1 s doubling, capped at 20 s"
    counts = retries.report(store.client)
    assert (counts.calls, counts.attempts, counts.retries, counts.throttled, counts.gave_up) == (1, 7, 6, 6, 0)
    assert counts.most_attempts == 7


def test_a_server_error_is_retried_with_the_shorter_backoff_of_errors_that_are_not_throttling(server, slept):
    server.decide = staticmethod(lambda road, number, nth: "internal" if number <= 3 else "ok")
    store = _client(server)

    answer = store.copy_object(Bucket="b", Key="t", CopySource={"Bucket": "b", "Key": "k"}, IfNoneMatch="*")

    assert answer["CopyObjectResult"]["ETag"] == '"aa"'
    assert _roads(server) == [True] * 4
    assert slept == pytest.approx([0.05, 0.1, 0.2])
    assert retries.report(store.client).throttled == 0


@pytest.mark.parametrize("road_off", [False, True], ids=["short road", "botocore's road"])
def test_a_request_throttled_on_every_attempt_gets_exactly_the_attempts_and_says_so(
    server, slept, monkeypatch, road_off
):
    """AWS_MAX_ATTEMPTS=4 is four requests in all: before, one on the road and four more through botocore (five
    through botocore alone: its `max_attempts` setting counts retries), and the error did not say why."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "4")
    if road_off:
        monkeypatch.setenv(lean.ENV_SWITCH, "0")
    server.decide = staticmethod(lambda road, number, nth: "slowdown")
    store = _client(server)

    with pytest.raises(Throttled) as raised:
        store.get_json("b", "_ingestion/movielens/lock.json")

    assert len(server.seen) == 4
    assert _roads(server) == [not road_off] * 4
    assert "throttled by S3 on all 4 attempts" in str(raised.value)
    assert str(raised.value).startswith("SlowDown: Please reduce your request rate.")
    assert slept == [1, 2, 4]
    assert retries.report(store.client).gave_up == 1
    if road_off:
        assert server.sdk_request[-1].endswith("attempt=4; max=4"), "botocore tells S3 the same count"


def test_attempts_are_counted_across_both_roads(server, slept, monkeypatch):
    """Two throttles on the road, then an answer only botocore reads (a 403): botocore's road gets the two
    attempts left of five, not five more."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "5")

    def decide(road: bool, number: int, nth: int) -> str:
        if road:
            return "slowdown" if number <= 2 else "forbidden"
        return "slowdown"

    server.decide = staticmethod(decide)
    store = _client(server)

    with pytest.raises(Throttled, match="throttled by S3 on all 5 attempts"):
        store.head("b", "k")

    assert _roads(server) == [True, True, True, False, False]
    assert slept == [1, 2, 8], "one backoff: botocore's road continues the count (its first retry is the 4th)"


def test_a_listing_page_declined_by_the_road_leaves_botocore_the_attempts_that_are_left(server, slept, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")

    def decide(road: bool, number: int, nth: int) -> str:
        return "forbidden" if road else "slowdown"

    server.decide = staticmethod(decide)
    store = _client(server)

    with pytest.raises(Throttled, match="on all 3 attempts"):
        list(store.iter_keys("b", "movielens/"))

    assert _roads(server) == [True, False, False]


def test_after_a_long_storm_the_next_requests_still_get_every_attempt(server, slept, monkeypatch):
    """The warm-Lambda case: one client through a storm that failed many requests, then requests throttled twice
    each. botocore's retry quota (500; 10 taken by each request that failed after two throttled retries, none
    given back) was empty after 50 of them, and the next requests failed at their first throttle."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    server.decide = staticmethod(lambda road, number, nth: "slowdown")
    store = _client(server)
    for n in range(60):
        with pytest.raises(Throttled):
            store.head("b", f"storm{n}")
    assert len(server.seen) == 180, "every failed request had its three attempts"

    server.decide = staticmethod(lambda road, number, nth: "slowdown" if nth <= 2 else "ok")
    for n in range(20):
        assert store.head("b", f"after{n}")["ETag"] == '"aa"'
    assert len(server.seen) == 180 + 20 * 3


def test_adaptive_mode_keeps_the_short_road_and_slows_its_sends_after_throttling(server, slept, monkeypatch):
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    server.decide = staticmethod(lambda road, number, nth: "slowdown" if number <= 2 else "ok")
    store = _client(server)
    assert store.fast_road is not None, "adaptive mode once closed the road (its limiter is a before-send handler)"

    for n in range(3):
        assert store.head("b", f"k{n}")["ETag"] == '"aa"'

    assert all(_roads(server)), "every request on the short road"
    times = [at for _, _, at in server.seen]
    # After a throttle botocore's limiter sends at its lowest rate (0.5 a second), then speeds up as answers come.
    assert max(later - earlier for earlier, later in zip(times, times[1:], strict=False)) > 1.0
    assert retries.report(store.client).rate_limited_seconds > 1.0
