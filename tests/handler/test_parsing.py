"""S3's answers parsed the cheap way read exactly as botocore reads them, and bad pages are still retried."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from botocore.utils import parse_timestamp

from handler.store import Store
from handler.store.parsing import complete_listing, timestamp
from tests.stub_server import Quiet, serving

TIMESTAMPS = [
    "2026-12-03T06:48:57.000Z",
    "2026-12-03T06:48:57Z",
    "2026-12-03T06:48:57.123456Z",
    "2026-12-03T06:48:57.5+02:00",
    "Thu, 03 Dec 2026 06:48:57 GMT",
    "Sun, 29 Feb 2032 23:59:59 GMT",
    "Mon, 01 Jan 2001 00:00:00 GMT",
    "Wed, 15 Sep 2027 12:05:09 GMT",
    "1764744537",
    1764744537,
    "2026-12-03 06:48:57",
]


@pytest.mark.parametrize("value", TIMESTAMPS)
def test_a_timestamp_reads_as_botocore_reads_it(value):
    ours, theirs = timestamp(value), parse_timestamp(value)

    assert ours == theirs
    assert ours.utcoffset() == theirs.utcoffset()


def test_a_timestamp_that_is_no_timestamp_is_refused_as_botocore_refuses_it():
    with pytest.raises(ValueError):
        parse_timestamp("not a date")
    with pytest.raises(ValueError):
        timestamp("not a date")


PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Name>source</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
    b"<Contents><Key>a.csv</Key><LastModified>2026-12-03T06:48:57.000Z</LastModified><ETag>&quot;aa&quot;</ETag>"
    b"<Size>3</Size><StorageClass>STANDARD</StorageClass></Contents>"
    b"<Contents><Key>b.csv</Key><LastModified>2026-12-02T01:02:03.000Z</LastModified><ETag>&quot;bb&quot;</ETag>"
    b"<Size>4</Size><StorageClass>STANDARD</StorageClass></Contents>"
    b"</ListBucketResult>\n"
)
ERROR = b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>x</Message></Error>'


def test_only_a_whole_list_page_counts_as_complete():
    assert complete_listing(PAGE)
    assert not complete_listing(PAGE[: len(PAGE) // 2])
    assert not complete_listing(ERROR)
    assert not complete_listing(b"")


class _FlakyLister(Quiet):
    """Answers a list with 200s that are not pages (an embedded error, a cut-off body), then the page."""

    answers: list[bytes] = []
    served = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        cls = type(self)
        body = cls.answers[min(cls.served, len(cls.answers) - 1)]
        cls.served += 1
        self._answer(200, body, {"Content-Type": "application/xml"})


@pytest.fixture(name="lister")
def lister_fixture() -> Iterator[str]:
    with serving(_FlakyLister) as url:
        yield url


@pytest.mark.parametrize("bad", [ERROR, PAGE[:-40]], ids=["error-in-a-200", "cut-off-page"])
def test_a_200_that_is_not_a_whole_page_is_retried_and_the_page_then_read(lister, bad, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    _FlakyLister.answers, _FlakyLister.served = [bad, PAGE], 0
    store = Store.sized(concurrency=1, endpoint_url=lister)

    listed = list(store.iter_source_objects("source", ""))

    assert [(o.key, o.etag, o.size) for o in listed] == [("a.csv", "aa", 3), ("b.csv", "bb", 4)]
    assert listed[0].last_modified == datetime(2026, 12, 3, 6, 48, 57, tzinfo=UTC)
    assert _FlakyLister.served == 2, "the bad 200 was retried once"
