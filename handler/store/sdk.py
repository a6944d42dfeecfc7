"""The botocore this runtime needs, checked before anything else happens.

The Lambda runs on the boto3 and botocore of the SDK layer the stack builds from requirements.txt's pins
(infra/sdk_layer.py), or, with `lambdaSdkLayer: false`, on its runtime's own; a CLI runs on whatever its
environment has. Both rely on request parameters that older releases do not know:

- `IfNoneMatch` and `IfMatch` on PutObject and `IfNoneMatch` on CompleteMultipartUpload (the lock, fenced ledger
  writes and multipart copies that never overwrite), and `IfMatch` on DeleteObject (the lock's release): botocore
  1.36.0 and later;
- `IfNoneMatch` on CopyObject (a copy never overwrites what landed): botocore 1.40.61 and later;
- the client setting `response_checksum_validation` (clients.py): botocore 1.36.0 and later.

An older botocore refuses those parameters with a ParamValidationError at the first write, mid-run, or (for a
setting) fails at client creation with a message about a config key. Checked at start instead, it is one clear
error naming the version found, the version needed and what to do. The releases were found by reading the S3
service model of each botocore release on PyPI (docs/deploy.md).
"""

from __future__ import annotations

import os
import re

from ..errors import SdkTooOld

MIN_BOTOCORE = (1, 40, 61)
"""The first botocore whose S3 model has every parameter listed above (CopyObject's IfNoneMatch is the newest)."""


def parse_version(text: str) -> tuple[int, ...] | None:
    """(1, 40, 61) for "1.40.61" (and for "1.40.61.dev0" or "1.40.61rc1"); None for text without a version."""
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", text.strip())
    return tuple(int(part) for part in match.groups()) if match else None


def check_botocore(version: str) -> None:
    """Raise SdkTooOld when `version` is older than MIN_BOTOCORE. A version that does not parse (a build from a
    checkout) is let through: the first request then shows what it lacks."""
    found = parse_version(version)
    if found is None or found >= MIN_BOTOCORE:
        return
    needed = ".".join(map(str, MIN_BOTOCORE))
    raise SdkTooOld(
        f"botocore {version} is too old for this runtime: it needs botocore {needed} or later, for the "
        "conditional writes and copies that keep runs from overwriting each other (If-None-Match on CopyObject "
        "is the newest). In Lambda, deploy with the stack's SDK layer (stack config lambdaSdkLayer: true, the "
        "default; docs/deploy.md); "
        f"elsewhere, pip install 'botocore>={needed}'."
    )


def require_botocore() -> None:
    """`check_botocore` on the botocore this process imports."""
    import botocore

    check_botocore(botocore.__version__)


def versions() -> str:
    """The boto3 and botocore this process imported (the CLI's --version line)."""
    import boto3
    import botocore

    return f"boto3 {boto3.__version__}, botocore {botocore.__version__}"


def loaded_sdk() -> str:
    """Which SDK this process imported, and from where: in Lambda, /opt/python is the stack's layer and anything
    else the runtime's own (logged at cold start, so a deployment shows which one it runs on)."""
    import boto3
    import botocore

    where = os.path.dirname(os.path.dirname(botocore.__file__))
    return f"boto3 {boto3.__version__}, botocore {botocore.__version__} from {where}"
