"""An object S3 may not decrypt with its KMS key fails with a reason that names both halves of the key's grant.

S3's answers are sent as bytes by a loopback stand-in (tests/stub_server.py) to the runtime's own client
(handler.store.Store.sized, both its roads), so botocore parses them as it parses S3's: an AccessDenied whose
message is KMS's refusal (the forms S3 is seen to send, quoted in handler/store/errors.py), and a refused HEAD, whose
answer has no body. The copier's tests then inject those parsed answers under moto, as tests/handler/test_copier.py
does, and read the object's manifest line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from handler.copier import COPIED, FAILED, CopyContext, copy_items
from handler.records import BatchItem
from handler.store import Store
from handler.store.errors import HEAD_REFUSAL_ADVICE, KEY_GRANT_ADVICE, AccessDenied, KeyAccessDenied
from tests.stub_server import Answering, serving

KEY = "arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE = "arn:aws:sts::111122223333:assumed-role/ingestion-lambda-role-7f3a2c1/ingestion-lambda"
NO_IDENTITY_POLICY = (
    f"User: {ROLE} is not authorized to perform: kms:Decrypt on resource: {KEY} because no identity-based policy "
    "allows the kms:Decrypt action"
)
# KMS's wording when the key policy is the missing half, as S3 would pass it on like the one above (the two
# others are quoted from S3 answers in public bug reports; this one is KMS's, not seen in an S3 answer here).
NO_KEY_POLICY = (
    f"User: {ROLE} is not authorized to perform: kms:Decrypt on the resource associated with this ciphertext "
    "because the resource does not exist in this Region, no resource-based policies allow access, or a "
    "resource-based policy explicitly denies access"
)
OLD_CIPHERTEXT = (
    "The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you "
    "are not allowed to access."
)


class _Refusing(Answering):
    """Answers every request with `status` and `body` (a HEAD gets the status alone, as from S3)."""

    status = 403
    body = b""

    def _handle(self) -> None:
        self._drain()
        self._answer(type(self).status, type(self).body, {"Content-Type": "application/xml"})

    do_HEAD = do_GET = do_PUT = _handle  # noqa: N815 - http.server's naming


@pytest.fixture(name="refusing")
def refusing_fixture() -> Iterator[Any]:
    def answer(code: str, message: str, status: int = 403) -> None:
        _Refusing.status = status
        _Refusing.body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()

    with serving(_Refusing) as endpoint:
        answer.client = Store.sized(endpoint_url=endpoint)  # type: ignore[attr-defined]
        yield answer


def refusal(store: Store, operation: str) -> BaseException:
    calls = {
        "GetObject": lambda: store.get_bytes("partner-orders-export", "daily/a.csv"),
        "CopyObject": lambda: store.copy_object(
            Bucket="acme-raw", Key="a.csv", CopySource={"Bucket": "partner-orders-export", "Key": "daily/a.csv"}
        ),
        "HeadObject": lambda: store.head("partner-orders-export", "daily/a.csv", checksums=True),
    }
    with pytest.raises(AccessDenied) as info:
        calls[operation]()
    return info.value


# ---- what S3 sends, as the runtime's client reads it ------------------------------------------------------------


@pytest.mark.parametrize("operation", ["GetObject", "CopyObject"])
@pytest.mark.parametrize(
    ("message", "named"),
    [(NO_IDENTITY_POLICY, f" ({KEY})"), (NO_KEY_POLICY, ""), (OLD_CIPHERTEXT, "")],
    ids=["no-identity-policy", "no-key-policy", "old-ciphertext-message"],
)
def test_an_access_denied_from_kms_keeps_s3s_answer_and_names_both_halves_of_the_grant(
    refusing: Any, operation: str, message: str, named: str
) -> None:
    refusing("AccessDenied", message)

    err = refusal(refusing.client, operation)

    assert isinstance(err, KeyAccessDenied)
    assert err.code == "AccessDenied"
    assert err.reason == f"AccessDenied: {message} ({operation}); {KEY_GRANT_ADVICE.format(key=named)}"
    # Both halves: the dataset field the stack turns into the role's IAM statement, and the key owner's policy.
    assert "source.kms_key_arn" in err.reason
    assert "inventory.kms_key_arn" in err.reason
    assert "have the key's owner allow that role (stack output functionRoleArn) kms:Decrypt in the key policy" in (
        err.reason
    )


def test_s3s_kms_error_code_form_is_a_key_refusal_too(refusing: Any) -> None:
    refusing("KMS.AccessDeniedException", NO_IDENTITY_POLICY, status=400)

    err = refusal(refusing.client, "GetObject")

    assert isinstance(err, KeyAccessDenied)
    assert err.reason.endswith(KEY_GRANT_ADVICE.format(key=f" ({KEY})"))


@pytest.mark.parametrize(
    "message",
    [
        "Access Denied",
        f"User: {ROLE} is not authorized to perform: s3:GetObject on resource: "
        '"arn:aws:s3:::partner-orders-export/daily/a.csv" because no resource-based policy allows the s3:GetObject '
        "action",
        # The write side: the raw bucket's key, which the stack grants itself; no source field would help.
        f"User: {ROLE} is not authorized to perform: kms:GenerateDataKey on this resource because no identity-based "
        "policy allows the kms:GenerateDataKey action",
    ],
    ids=["plain", "bucket-policy", "generate-data-key"],
)
def test_any_other_access_denied_reads_as_before(refusing: Any, message: str) -> None:
    refusing("AccessDenied", message)

    err = refusal(refusing.client, "CopyObject")

    assert type(err) is AccessDenied
    assert err.reason == f"AccessDenied: {message} (CopyObject)"


def test_a_refused_head_has_no_reason_from_s3_so_the_reason_lists_what_it_can_be_key_grant_included(
    refusing: Any,
) -> None:
    refusing("AccessDenied", NO_IDENTITY_POLICY)  # the body is never sent for a HEAD

    err = refusal(refusing.client, "HeadObject")

    assert type(err) is AccessDenied
    assert err.reason == f"403: Forbidden (HeadObject); {HEAD_REFUSAL_ADVICE}"
    assert "source.kms_key_arn" in err.reason
    assert "kms:Decrypt in the key policy" in err.reason


# ---- the object's manifest line ------------------------------------------------------------------------------


class _Inject:
    """Answers one operation on one key with a parsed S3 error instead of moto (as test_copier's S3Calls does)."""

    def __init__(self, s3: Any, operation: str, key: str, code: str, message: str) -> None:
        self.rule = (operation, key)
        self.error = {"Code": code, "Message": message}
        s3.meta.events.register("before-parameter-build.s3", self._mark)
        s3.meta.events.register("before-call.s3", self._answer)

    def _mark(self, params: dict[str, Any], model: Any, context: dict[str, Any], **kwargs: Any) -> None:
        if (model.name, params.get("Key")) == self.rule:
            context["injected"] = True

    def _answer(self, context: dict[str, Any], **kwargs: Any) -> Any:
        if not context.get("injected"):
            return None
        parsed = {"Error": self.error, "ResponseMetadata": {"HTTPStatusCode": 403, "HTTPHeaders": {}}}
        return AWSResponse("https://s3.amazonaws.com/", 403, {}, None), parsed


MiB = 1024 * 1024


def _copy(s3: Any, source: str, raw: str, keys: list[str], refuse: tuple[str, str, str, str]) -> dict[str, Any]:
    """Copy the objects at `keys` (written first) while S3 answers `refuse` (operation, key, code, message)."""
    items = []
    for key in keys:
        etag = s3.put_object(Bucket=source, Key=key, Body=key.encode())["ETag"].strip('"')
        items.append(BatchItem(key, etag, len(key), f"landed/{key}"))
    _Inject(s3, *refuse)
    ctx = CopyContext(
        dataset="orders",
        run_id="20261127T200000Z-abc123",
        date="2026-11-27",
        source_bucket=source,
        target_bucket=raw,
        multipart_threshold=256 * MiB,
    )
    with Store(s3).transfer_manager(concurrency=2, threshold=256 * MiB, chunk=64 * MiB) as tm:
        return {line.source_key: line for line in copy_items(Store(s3), tm, items, ctx, concurrency=2)}


def test_a_source_object_under_a_refused_key_fails_naming_both_halves_and_the_rest_lands(s3: Any, buckets: Any) -> None:
    source, raw = buckets
    refuse = ("CopyObject", "landed/daily/secret.csv", "AccessDenied", NO_IDENTITY_POLICY)

    lines = _copy(s3, source, raw, ["daily/secret.csv", "daily/open.csv"], refuse)

    secret = lines["daily/secret.csv"]
    assert secret.status == FAILED
    assert secret.reason == (
        f"AccessDenied: {NO_IDENTITY_POLICY} (CopyObject); {KEY_GRANT_ADVICE.format(key=f' ({KEY})')}"
    )
    assert lines["daily/open.csv"].status == COPIED


def test_a_source_head_refused_fails_the_object_with_what_a_refused_head_can_be(s3: Any, buckets: Any) -> None:
    """With `source_metadata: carry` (the default) the source's HEAD, which asks for checksums, comes first."""
    source, raw = buckets
    refuse = ("HeadObject", "daily/secret.csv", "403", "Forbidden")

    lines = _copy(s3, source, raw, ["daily/secret.csv", "daily/open.csv"], refuse)

    assert lines["daily/secret.csv"].status == FAILED
    assert lines["daily/secret.csv"].reason == f"403: Forbidden (HeadObject); {HEAD_REFUSAL_ADVICE}"
    assert lines["daily/open.csv"].status == COPIED
