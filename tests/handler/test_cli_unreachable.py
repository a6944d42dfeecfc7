"""An endpoint nobody answers, as a user meets it: a subprocess whose stderr says it is retrying at once, then one
error naming the endpoint and what to check, exit 1 (README, "Commands")."""

from __future__ import annotations

import os
import re
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

from handler.cli import EXIT_FAILED
from tests.conftest import REPO, write_config

RETRYING = re.compile(r"; retrying \(attempt [23]/3\)$")
"""The short road's first attempt hands a failed connection to botocore's, which retries what is left."""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(tmp_path: Path, endpoint: str, *extra: str) -> subprocess.Popen[str]:
    config = write_config(tmp_path / "config.json", "src-bucket", "raw-bucket")
    env = {**os.environ, "AWS_MAX_ATTEMPTS": "3", "PYTHONUNBUFFERED": "1"}
    command = ["status", "--config", str(config), "--dataset", "movielens", "--endpoint-url", endpoint, *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "handler", *command],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stderr_lines(process: subprocess.Popen[str], deadline: float, seen: dict[str, float] | None = None) -> list[str]:
    """Every stderr line until the process ends, each read as it comes (`seen`: when each was read, in seconds
    after the call); fails past the deadline."""
    assert process.stderr is not None
    started = time.monotonic()
    lines: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                process.kill()
                raise AssertionError(f"still running after the deadline; stderr so far: {lines}")
            if selector.select(timeout=left):
                line = process.stderr.readline()
                if not line:
                    return lines
                lines.append(line.rstrip("\n"))
                if seen is not None:
                    seen.setdefault(lines[-1], time.monotonic() - started)


def test_an_unreachable_endpoint_says_it_is_retrying_then_fails_naming_it(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    process = start(tmp_path, endpoint)
    seen: dict[str, float] = {}

    lines = stderr_lines(process, time.monotonic() + 30, seen)

    assert process.wait(timeout=10) == EXIT_FAILED
    retrying = [n for n, line in enumerate(lines) if RETRYING.search(line)]
    assert retrying, lines
    assert "S3 endpoint not reachable" in lines[retrying[0]] and endpoint in lines[retrying[0]]
    assert seen[lines[retrying[0]]] < 10  # said as the retries start (Python's start-up included), not at the end
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], lines
    assert endpoint in errors[0]
    assert "check --endpoint-url" in errors[0]
    assert "Traceback" not in "\n".join(lines)


def test_quiet_keeps_only_the_error(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    process = start(tmp_path, endpoint, "-q")

    lines = stderr_lines(process, time.monotonic() + 30)

    assert process.wait(timeout=10) == EXIT_FAILED
    assert len(lines) == 1 and lines[0].startswith("error: ") and endpoint in lines[0], lines
