"""`ingest ... | head -1`: a command whose reader goes away ends quietly with 141 (128 + SIGPIPE), as `seq` and
rclone do, never with a traceback or "this is a bug" (handler/pipes.py says why 141). Real pipes: the CLI runs in a
child process whose stdout is a pipe this test closes."""

from __future__ import annotations

import subprocess

import pytest

from handler.pipes import EXIT_PIPE
from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    CLI_TIMEOUT,
    Stage,
    moto_server_fixture,
    stage_fixture,
)

LINES = 2000
"""COPY lines of the dry run: about 300 KB, several times what a pipe holds (64 KiB on Linux) and Python's buffer."""


def assert_quiet(stderr: str) -> None:
    for noise in ("Traceback", "BrokenPipeError", "Broken pipe", "Exception ignored", "error:", "this is a bug"):
        assert noise not in stderr, stderr


def test_a_dry_run_piped_into_head_stops_quietly_with_141(stage: Stage) -> None:
    stage.seed(LINES)
    config = stage.config()
    proc = stage.start(*stage.argv("run", config, "--dry-run", "--date", "2026-01-02"))
    assert proc.stdout is not None and proc.stderr is not None

    first = proc.stdout.readline()  # `head -1`: one line, then the pipe closes
    proc.stdout.close()
    stderr = proc.stderr.read()
    code = proc.wait(timeout=CLI_TIMEOUT)

    assert first.startswith(f"COPY  s3://{stage.source}/movielens/part-")
    assert code == EXIT_PIPE == 141, stderr
    assert_quiet(stderr)
    assert stage.everything() == {}, "a dry run writes nothing, cut short or not"


@pytest.mark.parametrize("argv", [["history"], ["history", "--json"], ["status"]], ids=" ".join)
def test_a_command_whose_reader_left_before_it_wrote_stops_quietly_with_141(stage: Stage, argv: list[str]) -> None:
    """`| head -0`, or a reader that died: the pipe is closed before the command writes its first byte, so the
    write that fails is the last flush, the one Python reported as "Exception ignored" at exit."""
    proc = stage.start(*stage.argv(argv[0], stage.config(), *argv[1:]), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()

    _, stderr = proc.communicate(timeout=CLI_TIMEOUT)

    assert proc.returncode == EXIT_PIPE, stderr
    assert_quiet(stderr)


def test_a_failing_command_whose_reader_left_still_says_why_on_stderr(stage: Stage) -> None:
    """Only the closed pipe is quiet: the error the command met is still told, on stderr, where the user looks."""
    missing = str(stage.workdir / "missing.json")
    proc = stage.start(*stage.argv("history", missing, "--json"))
    assert proc.stdout is not None
    proc.stdout.close()

    _, stderr = proc.communicate(timeout=CLI_TIMEOUT)

    assert proc.returncode == EXIT_PIPE
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert stderr.splitlines() == [
        f"error: invalid config: cannot read config file {missing!r}: No such file or directory"
    ]
