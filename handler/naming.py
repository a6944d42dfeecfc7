"""Naming rules: what a dataset, a bucket, a time zone, an SNS topic and a KMS key must be called.

The runtime and the stack check names before anything talks to AWS, so a URI or an ARN pasted where a name
belongs, or an alias where only a key ARN works, is refused with a hint at deploy time instead of failing
later as an opaque AWS error. Each rule names what is wrong; the caller says which field it is.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# S3 bucket naming rules (general purpose buckets); dots allowed but not adjacent.
_BUCKET_NAME = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def dataset_name_problem(name: str) -> str | None:
    """Why `name` cannot name a dataset, or None: it is used in S3 keys and resource names."""
    if _DATASET_NAME.match(name):
        return None
    return (
        "dataset name must be 1-63 lowercase letters, digits, '-' or '_', starting with a letter "
        "or digit (it is used in S3 keys and resource names)"
    )


def bucket_name_problem(bucket: str) -> str | None:
    """Why `bucket` is not an S3 bucket name, or None; the hint names the usual mistake (an ARN or a URI)."""
    if _BUCKET_NAME.match(bucket):
        return None
    return (
        f"{bucket!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, '.' or '-'); "
        "give the name, not an ARN or s3:// URI"
    )


def bucket_problems(bucket: Any) -> list[str]:
    """A bucket setting's check: a document may hold anything there, and only a string can be a name."""
    if not isinstance(bucket, str):
        return ["must be a non-empty string"]
    problem = bucket_name_problem(bucket)
    return [problem] if problem else []


def did_you_mean(name: str, known: Iterable[str], listing: str = "allowed") -> str:
    """The tail of an "unknown name" message: the closest known name, or else all of them under `listing`.

    A misspelt optional field would otherwise fall back to its default without a word; naming the likely
    intended one makes the fix obvious.
    """
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; {listing}: {', '.join(names)}"


def _valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def timezone_problems(name: Any) -> list[str]:
    if isinstance(name, str) and _valid_timezone(name):
        return []
    return [f"{name!r} is not an IANA time zone name (e.g. 'UTC', 'America/Chicago')"]


def glue_database_problems(name: Any) -> list[str]:
    """A Glue database name as Athena reads it without quotes: the stack's `glueDatabase` and a dataset's
    `glue_database` are held to the same rule."""
    if isinstance(name, str) and re.fullmatch(r"[a-z0-9_]{1,255}", name):
        return []
    return [f"{name!r} must be 1-255 lower-case letters, digits or '_' (what Athena reads without quotes)"]


def topic_arn_problems(arn: Any) -> list[str]:
    if isinstance(arn, str) and arn.startswith("arn:"):
        return []
    return ["must be an SNS topic ARN (arn:aws:sns:...) or omitted"]


_KEY_ID = r"(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
_KMS_KEY_ARN = re.compile(rf"^arn:aws[a-z-]*:kms:[a-z]{{2}}(?:-[a-z]+)+-\d+:\d{{12}}:key/{_KEY_ID}$")
_KMS_KEY_SHAPE = "arn:<partition>:kms:<region>:<12-digit account>:key/<key id>"
# Why a key ARN and nothing shorter (AWS KMS developer guide, "Specifying KMS keys in IAM policy statements"):
# an IAM policy names a key only by its key ARN, never by a key id, an alias name or an alias ARN.
_WHY_KEY_ARN = "an IAM policy can allow a key (above all one of another account) only by its key ARN"


def kms_key_arn_problems(arn: Any) -> list[str]:
    """Why `arn` cannot name the KMS key a source (or its inventory reports) is encrypted with (empty: it can).

    The stack puts the value in the Resource of the function role's kms:Decrypt statement, where only a key ARN
    matches the key: an alias or a bare key id would deploy a statement that allows nothing, and every object
    would fail with AccessDenied at night. Each wrong form is named, with the form that works.
    """
    if isinstance(arn, str) and _KMS_KEY_ARN.match(arn):
        return []
    if not isinstance(arn, str):
        return [f"must be a KMS key ARN ({_KMS_KEY_SHAPE}), got {arn!r}"]
    if arn.startswith("alias/") or re.match(r"^arn:[^:]*:kms:[^:]*:[^:]*:alias/", arn):
        what = "an alias, not a key ARN"
    elif re.fullmatch(_KEY_ID, arn):
        what = "a key id, not a key ARN"
    else:
        what = "not a KMS key ARN"
    return [
        f"{arn!r} is {what}: give the key's full ARN, {_KMS_KEY_SHAPE} (`aws kms describe-key --key-id <alias or "
        f"id> --query KeyMetadata.Arn`, run in the key's account), because {_WHY_KEY_ARN}"
    ]
