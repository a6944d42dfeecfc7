"""S3's time from its answers' `Date`: the clock the lock and the plan's ages are judged by (server_clock.py).

The clock's own rules are tested with a local clock the test moves (`handler.store.server_clock.time`); the lock's use
of it on in-process moto, whose answers are dated here by a botocore hook (moto leaves `Date` out of most), so
"S3's clock" can be put anywhere. tests/e2e/test_cli_skewed_clock.py tests whole runs on a skewed machine.
"""

from __future__ import annotations

import logging
import time
import types
from email.utils import formatdate
from typing import Any

import pytest
from botocore.exceptions import ClientError

from handler.ledger import Ledger
from handler.store import Store, server_clock
from handler.store.errors import NotFound, s3_errors
from handler.store.server_clock import ServerClock, headers_of
from tests.conftest import dataset_config, lock_document
from tests.stub_server import Answering, serving


def answer(date: float | None) -> dict[str, Any]:
    """A botocore answer dated `date` (epoch seconds; None: no Date header)."""
    headers = {} if date is None else {"date": formatdate(date, usegmt=True)}
    return {"ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": headers}}


class LocalClock:
    """This machine's clock, set by the test: replaces the `time` module server_clock reads."""

    def __init__(self, now: float):
        self.now = now

    def module(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(time=lambda: self.now)


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> LocalClock:
    clock = LocalClock(1_000_000.0)
    monkeypatch.setattr(server_clock, "time", clock.module())
    return clock


def exchange(clock: ServerClock, local: LocalClock, server_ahead: float, round_trip: float = 0.0) -> None:
    """One request and its answer, the server `server_ahead` seconds ahead of this machine, answering halfway."""
    sent = local.now
    date = sent + round_trip / 2 + server_ahead
    local.now = sent + round_trip
    clock.observe(answer(date), sent)


def test_a_machine_in_time_with_s3_keeps_its_own_clock_exactly(local: LocalClock) -> None:
    clock = ServerClock()
    for step in (0.0, 0.3, 0.9, 0.4):
        local.now += step
        exchange(clock, local, 0.0, round_trip=0.02)

    assert clock.offset == 0.0
    assert clock.now() == local.now


@pytest.mark.parametrize("skew", [600.0, -600.0])
def test_one_answer_puts_the_clock_within_half_a_second_of_s3s(local: LocalClock, skew: float) -> None:
    clock = ServerClock()
    local.now += 0.7  # the server's second is 0.7 in: its Date says 0.7 s less than its time

    exchange(clock, local, skew, round_trip=0.02)

    assert abs(clock.offset - skew) <= 0.52
    assert abs(clock.now() - (local.now + skew)) <= 0.52


def test_answers_at_different_fractions_of_a_second_pin_the_offset_down(local: LocalClock) -> None:
    clock = ServerClock()
    for seconds in (0.0, 3.5, 7.8, 12.25, 20.6):  # the server's time is 0.3 s further into each second
        local.now = 1_000_000.0 + seconds
        exchange(clock, local, 600.3)

    assert abs(clock.offset - 600.3) < 0.1


def test_an_answer_that_does_not_fit_starts_afresh_when_this_machines_clock_is_set(local: LocalClock) -> None:
    clock = ServerClock()
    exchange(clock, local, 600.0)
    local.now += 600.0  # NTP set this machine right

    exchange(clock, local, 0.0)

    assert clock.offset == 0.0


def test_now_never_goes_back(local: LocalClock) -> None:
    """A first answer leaves a second of doubt; a later one narrows it and may lower the offset: a time this clock
    gave (a run's start) is never followed by an earlier one (its end)."""
    clock = ServerClock()
    local.now = 1_000_000.0
    exchange(clock, local, -600.0)  # on the server's second: the offset is in (-600, -599), taken as -599.5
    local.now = 1_000_000.9
    first = clock.now()

    exchange(clock, local, -600.0)  # 0.9 s into the same second: (-600.9, -599.9); together (-600, -599.9)

    assert local.now + clock.offset < first, "the narrower offset alone would go back"
    assert clock.now() >= first


def test_an_answer_without_date_keeps_the_offset_and_warns_once(
    local: LocalClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(server_clock, "_warned", False)
    clock = ServerClock()
    exchange(clock, local, 600.0)
    learned = clock.offset

    with caplog.at_level(logging.WARNING, logger="handler.store.server_clock"):
        clock.observe(answer(None), local.now)
        clock.observe(answer(None), local.now)

    assert clock.offset == learned
    assert [r.getMessage() for r in caplog.records if "no Date header" in r.getMessage()] != []
    assert len(caplog.records) == 1


def test_a_fresh_clock_is_this_machines_until_an_answer_says_otherwise(local: LocalClock) -> None:
    clock = ServerClock()

    assert (clock.seen, clock.offset, clock.now()) == (False, 0.0, local.now)
    clock.observe(answer(None), local.now)
    assert (clock.seen, clock.offset) == (True, 0.0)


def test_a_refusals_date_counts_too() -> None:
    """A 404 (the lock nobody holds) is dated like any answer: the lock's first read learns the offset from it."""
    refusal = ClientError(
        {
            "Error": {"Code": "NoSuchKey", "Message": "gone"},
            "ResponseMetadata": {"HTTPStatusCode": 404, "HTTPHeaders": {"date": "Mon, 07 Dec 2026 14:47:09 GMT"}},
        },
        "GetObject",
    )
    with pytest.raises(NotFound) as translated, s3_errors():
        raise refusal

    assert headers_of(translated.value) == {"date": "Mon, 07 Dec 2026 14:47:09 GMT"}
    assert headers_of(refusal) == {"date": "Mon, 07 Dec 2026 14:47:09 GMT"}
    assert headers_of({"ETag": '"x"'}) is None


# -- the lock, on answers dated by S3's clock ---------------------------------------------------------------


def dated_by(client: Any, skew: float) -> None:
    """Every answer this client gets carries a Date `skew` seconds off this machine's clock (S3's clock there)."""

    def stamp(parsed: dict[str, Any], **_: Any) -> None:
        headers = parsed.setdefault("ResponseMetadata", {}).setdefault("HTTPHeaders", {})
        headers["date"] = formatdate(time.time() + skew, usegmt=True)

    client.meta.events.register("after-call.s3", stamp)


@pytest.mark.parametrize("skew", [600, -600])
def test_the_lock_is_written_in_s3s_time(s3: Any, buckets: tuple[str, str], skew: int) -> None:
    """A lock taken on a machine 10 minutes off S3 says when it was taken and when it expires by S3's clock, as
    the other machines that read it judge it (each by its own answers' Date)."""
    dated_by(s3, skew)
    ledger = Ledger(Store(s3), dataset_config(*buckets, lock_ttl_seconds=300))
    before = time.time() + skew

    lock = ledger.lock.acquire("run-1", owner="host-a:1")

    document = lock_document(ledger)
    after = time.time() + skew
    assert before - 1 <= document["acquired_at"] <= after + 1
    assert document["expires_at"] == pytest.approx(document["acquired_at"] + 300)
    assert lock.acquired_at == document["acquired_at"]
    lock.renew()
    assert before - 1 <= lock_document(ledger)["renewed_at"] <= time.time() + skew + 1
    assert lock.fresh(ledger.lock.clock.now())


class _DatedAhead(Answering):
    """An S3 stand-in whose clock is 10 minutes ahead: a lock document at `held.json`, a 404 for any other GET, a
    200 for every PUT."""

    agents: list[str] = []

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(time.time() + 600, usegmt=True)

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        type(self).agents.append(self.headers.get("User-Agent", ""))
        self._drain()
        super()._answer(status, body, headers)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.endswith("/held.json"):
            self._answer(200, b'{"run_id": "r"}', {"ETag": '"0123456789abcdef0123456789abcdef"'})
            return
        body = b"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"
        self._answer(404, body, {"Content-Type": "application/xml"})

    def do_PUT(self) -> None:  # noqa: N802
        self._answer(200, b"", {"ETag": '"0123456789abcdef0123456789abcdef"'})


@pytest.mark.parametrize("request_kind", ["read", "read-absent", "write"])
def test_the_short_roads_answers_carry_their_date(request_kind: str) -> None:
    """The lock's reads and writes go on the short road (lean.py) where it is open: its answers, a 404 too, carry
    the Date the clock learns S3's time from."""
    _DatedAhead.agents = []
    with serving(_DatedAhead) as url:
        store = Store.sized(endpoint_url=url)
        clock = ServerClock()
        if request_kind == "read":
            assert store.get_json("dated", "_ingestion/held.json", clock=clock)[0] == {"run_id": "r"}
        elif request_kind == "read-absent":
            assert store.get_json("dated", "_ingestion/lock.json", clock=clock) == (None, None)
        else:
            store.put_json("dated", "_ingestion/lock.json", {"n": 1}, if_none_match=True, clock=clock)

    assert _DatedAhead.agents and all("(lean)" in agent for agent in _DatedAhead.agents), _DatedAhead.agents
    assert abs(clock.offset - 600) <= 0.6


def test_now_goes_back_when_the_clock_really_went_back(local: LocalClock) -> None:
    """A machine 10 minutes slow set right by NTP: until an answer says so, its clock reads S3's time plus ten
    minutes; the next answer brings the clock back, and it does not hold on to the time ten minutes ahead (which
    would make every live lock look expired)."""
    clock = ServerClock()
    exchange(clock, local, 600.0)
    local.now += 600.0  # set right: the offset learned before is now 10 minutes too much
    assert clock.now() == pytest.approx(local.now + 600, abs=0.6)

    exchange(clock, local, 0.0)

    assert clock.now() == local.now
