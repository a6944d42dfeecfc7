"""The machine fails the run, not S3: a full TMPDIR, too few file descriptors, a worker killed by a signal.

Each is made for real on a CLI run against moto's server: a tmpfs of 64 KiB as TMPDIR (mounted in a user
namespace, no root needed), RLIMIT_NOFILE lowered in the child before it starts, a pool worker sent SIGKILL as the
kernel's out-of-memory killer would. Each time the message must name the cause and what to do (not "a bug", not
the endpoint), the exit code must be 1 as for any failed run, and the next run, on a healthy machine, must land
everything exactly once: nothing lost, nothing twice.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    CLI,
    CLI_TIMEOUT,
    Stage,
    moto_server_fixture,
    one_json,
    reap,
    stage_fixture,
)
from tests.faults.verifier import verify

NOT_THE_CAUSE = ("this is a bug", "unexpected error", "EndpointConnectionError", "check --endpoint-url", "Traceback")
"""What these failures used to be reported as."""


def assert_named_not_misread(text: str) -> None:
    for wrong in NOT_THE_CAUSE:
        assert wrong not in text, text


def assert_everything_landed_once(stage: Stage, config: Path, objects: dict[str, bytes]) -> None:
    """The next run, on a healthy machine: every source object lands, once, and the ledger agrees."""
    proc = stage.run(config, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(stage.landed()) == len(objects)
    assert verify(stage.s3, stage.source, stage.raw, "movielens", settled=True) == []


# ---- too many open files --------------------------------------------------------------------------------------


def test_too_many_open_files_is_named_with_the_limit_and_what_to_do(stage: Stage) -> None:
    objects = stage.seed(200)
    config = stage.config(concurrency=16)
    limit = 11  # the interpreter and the run's files fit; sixteen connections at once do not

    def lowered() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    # One attempt a request: with the default ten, a connection refused for want of a descriptor is retried after
    # a backoff and usually gets one as others close (the run lands everything and logs its retries), so only a
    # shortage that outlasts the attempts reaches the answer. One attempt makes every shortage reach it.
    proc = stage.cli(
        *stage.argv("run", config, "--json", "--workers", "1"),
        preexec_fn=lowered,
        env={"AWS_MAX_ATTEMPTS": "1"},
    )

    assert proc.returncode == 1, proc.stdout + proc.stderr
    answer = one_json(proc)
    told = answer.get("error") or "\n".join(f["reason"] for f in answer["failures"])
    assert "too many open files (EMFILE)" in told, told
    assert f"RLIMIT_NOFILE soft {limit}, hard {limit}" in told
    assert "only root raises" in told and "lower --concurrency or --workers" in told
    assert_named_not_misread(told + proc.stderr)
    for line in stage.manifest_lines():
        if line["status"] == "failed":
            assert line["reason"].startswith("too many open files (EMFILE)"), line

    assert_everything_landed_once(stage, config, objects)


# ---- a full TMPDIR ------------------------------------------------------------------------------------------------


def _user_namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True, check=False, timeout=30
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _user_namespaces(), reason="needs unprivileged user namespaces to mount a tiny tmpfs")
def test_a_full_tmpdir_is_named_with_the_directory_and_what_to_do(stage: Stage, tmp_path: Path) -> None:
    objects = stage.seed(1500)
    config = stage.config()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # A 64 KiB filesystem as TMPDIR: the listing's scratch database outgrows it, and the kernel answers ENOSPC.
    mount = [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        'mount -t tmpfs -o size=64k tmpfs "$0" && exec "$@"',
        str(scratch),
    ]

    proc = stage.cli(*stage.argv("run", config, "--json"), program=[*mount, *CLI], env={"TMPDIR": str(scratch)})

    assert proc.returncode == 1, proc.stdout + proc.stderr
    error = one_json(proc)["error"]
    assert error.startswith(f"run failed: no space left in the temporary directory {scratch} (ENOSPC"), error
    assert "point TMPDIR at a filesystem with room" in error
    assert "the next run picks up where this one stopped" in error
    assert_named_not_misread(proc.stderr)
    assert f"error: run failed: no space left in the temporary directory {scratch}" in proc.stderr

    assert_everything_landed_once(stage, config, objects)


# ---- a worker killed by a signal ----------------------------------------------------------------------------------


def _workers_of(pid: int) -> list[int]:
    """The pool's spawned processes among `pid`'s children (not multiprocessing's resource tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the pool's workers through /proc")
def test_a_worker_killed_by_sigkill_is_named_with_the_likely_cause_and_the_next_run_resumes(stage: Stage) -> None:
    objects = stage.seed(1200)
    config = stage.config(batch_max_objects=20, concurrency=2)
    proc = stage.spawn(config, "--json", "--workers", "2")
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            workers = _workers_of(proc.pid)
            landed = stage.s3.list_objects_v2(Bucket=stage.raw, Prefix="movielens/", MaxKeys=1).get("KeyCount", 0)
            if len(workers) == 2 and landed:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before a worker could be killed"
        os.kill(workers[0], signal.SIGKILL)  # what the out-of-memory killer sends
        stdout, stderr = proc.communicate(timeout=CLI_TIMEOUT)
    finally:
        reap([proc])

    assert proc.returncode == 1, stdout + stderr
    error = one_json(stdout)["error"]
    assert error.startswith("run failed: a worker process was killed by SIGKILL (signal 9) during copy_batch: "), error
    assert "out-of-memory killer" in error and "lower --workers or --concurrency" in error
    assert "the next run picks up where this one stopped" in error
    assert_named_not_misread(stderr)
    runs = json.loads(stage.cli(*stage.argv("history", config, "--json")).stdout)["runs"]
    assert (runs[0]["status"], runs[0]["stage"], runs[0]["live"]) == ("in_progress", "copying", False), runs[0]

    assert_everything_landed_once(stage, config, objects)
