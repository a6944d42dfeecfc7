"""How S3's answers are parsed: the two places where botocore's defaults cost more CPU than the request.

Profiled on a no-op night of 1,000,000 keys (docs/BENCHMARKS.md), a third of the client's CPU went to
`dateutil.parser.parse` on every listed LastModified, and a tenth to botocore parsing each list page's XML a
second time only to learn whether a 200 carries an `<Error>`. Both answers stay exactly what botocore would
give (an aware datetime; a 200 with an error, or a cut-off body, still becomes a retried 500): only the cheap
cases take a cheaper road, and anything unusual takes botocore's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore import handlers
from botocore.utils import parse_timestamp

# What S3 puts in XML (2026-12-03T06:48:57.000Z) and in headers (Thu, 03 Dec 2026 06:48:57 GMT).
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})\Z")
_HTTP_DATE = re.compile(r"[A-Z][a-z]{2}, (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT\Z")
_MONTHS = {name: number for number, name in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}

# botocore's check of every S3 answer for an error inside a 200 (private; absent in some future release).
_BOTOCORE_200_CHECK: Callable[..., Any] | None = getattr(handlers, "_handle_200_error", None)
_LIST_ROOT = b"<ListBucketResult"
_LIST_END = b"</ListBucketResult>"


def timestamp(value: Any) -> datetime:
    """An aware datetime, as botocore.utils.parse_timestamp gives, without dateutil for S3's two forms."""
    if isinstance(value, str):
        if _ISO.match(value):
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        http_date = _HTTP_DATE.match(value)
        if http_date and http_date.group(2) in _MONTHS:  # every HEAD's Last-Modified: read here, not by email.utils
            day, month, year, hour, minute, second = http_date.groups()
            return datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    return parse_timestamp(value)


def complete_listing(body: bytes) -> bool:
    """Whether a 200's body is a whole ListBucketResult: its root is not `<Error>` and nothing was cut off."""
    return _LIST_ROOT in body[:512] and body.rstrip().endswith(_LIST_END)


def check_200(operation_model: Any, response_dict: dict[str, Any], **kwargs: Any) -> None:
    """botocore's 200-error check, except that a whole list page is not parsed twice to learn it is one."""
    if (
        operation_model.name in ("ListObjectsV2", "ListObjects")
        and response_dict
        and response_dict.get("status_code") == 200
        and complete_listing(response_dict.get("body") or b"")
    ):
        return
    if _BOTOCORE_200_CHECK is not None:
        _BOTOCORE_200_CHECK(operation_model=operation_model, response_dict=response_dict, **kwargs)


def tune_session(core_session: Any) -> None:
    """Clients created from this botocore session afterwards parse timestamps with `timestamp`."""
    core_session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=timestamp)


def tune_client(s3: Any) -> None:
    """Swap botocore's 200-error check for `check_200` on this client only (a no-op if botocore lacks it)."""
    if _BOTOCORE_200_CHECK is None:
        return
    events = s3.meta.events
    events.unregister("before-parse.s3.*", _BOTOCORE_200_CHECK)
    events.register_first("before-parse.s3.*", check_200)
