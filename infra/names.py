"""Names fixed before a resource exists, for resources a trust policy must name (`aws:SourceArn`)."""

from __future__ import annotations

import hashlib
import re


def stack_scoped_name(project: str, stack: str, limit: int) -> str:
    """`<project>-<stack>`: unique per stack in an account and region, and known before anything is created.

    Only `[A-Za-z0-9_-]`, which every service here accepts (a stack name may also hold `.`, which becomes `-`);
    a name over `limit` keeps its start and ends in a hash of the whole, so two long stack names stay apart.
    """
    name = re.sub(r"[^A-Za-z0-9_-]", "-", f"{project}-{stack}")
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}-{digest}"
