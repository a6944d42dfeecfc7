"""What a run prints while it works: progress on a terminal (a real pseudo-terminal here), nothing of it in a pipe
or under -q, and each object under -v, from worker processes too."""

from __future__ import annotations

import os
import pty
from typing import Any

from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    CLI_TIMEOUT,
    Stage,
    moto_server_fixture,
    stage_fixture,
)

NIGHT = "2026-01-02"


def seed(stage: Stage, count: int = 4) -> list[str]:
    keys = [f"movielens/f{n}.csv" for n in range(count)]
    for key in keys:
        stage.put(key, b"0123456789")
    return keys


def on_a_terminal(stage: Stage, *argv: str) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal; (exit code, stdout, what the terminal showed)."""
    controller, terminal = pty.openpty()
    proc = stage.start(*argv, stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    out, _ = proc.communicate(timeout=CLI_TIMEOUT)
    return proc.returncode, out, shown.decode("utf-8", "replace")


def run_argv(stage: Stage, *args: str, **config: Any) -> list[str]:
    return stage.argv("run", stage.config(**config), "--date", NIGHT, *args)


def test_a_run_on_a_terminal_shows_objects_bytes_rate_and_eta_redrawn_in_place(stage: Stage) -> None:
    seed(stage)

    code, out, shown = on_a_terminal(stage, *run_argv(stage, "--workers", "1"))

    assert code == 0, shown
    assert "\r0/4 objects  0 B/40 B  " in shown
    final = shown.split("\r4/4 objects")[-1]
    assert final.startswith("  40 B/40 B  ") and "/s" in final and "ETA 0:00" in final
    assert "status" in out and "succeeded" in out


def test_quiet_shows_no_progress_and_prints_nothing_for_a_run_that_succeeded(stage: Stage) -> None:
    seed(stage)

    code, out, shown = on_a_terminal(stage, *run_argv(stage, "-q"))

    assert (code, out, shown) == (0, "", "")
    assert len(stage.landed()) == 4


def test_no_progress_reaches_a_pipe(stage: Stage) -> None:
    seed(stage)

    proc = stage.cli(*run_argv(stage))

    assert proc.returncode == 0, proc.stderr
    assert "objects" not in proc.stderr and "\r" not in proc.stderr


def test_verbose_logs_each_object_also_from_worker_processes(stage: Stage) -> None:
    keys = seed(stage, 6)

    before = stage.cli("-v", *run_argv(stage, "--workers", "2", batch_max_objects=2))

    assert before.returncode == 0, before.stderr
    logged = [line for line in before.stderr.splitlines() if line.startswith("INFO handler.steps.copy: copied ")]
    assert sorted(logged) == sorted(
        f"INFO handler.steps.copy: copied {key} -> movielens/ingest_date={NIGHT}/{key.split('/')[-1]}" for key in keys
    )
    assert "botocore" not in before.stderr, "-v is this package's log, not the SDK's"


def test_verbose_after_the_command_is_the_same_and_quiet_with_verbose_is_refused(stage: Stage) -> None:
    seed(stage, 1)

    after = stage.cli(*run_argv(stage, "-v"))
    both = stage.cli(*run_argv(stage, "-q", "-v"))

    assert after.returncode == 0, after.stderr
    assert "INFO handler.steps.copy: copied movielens/f0.csv" in after.stderr
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr
