"""Ctrl-C and progress with worker processes, as a person at a terminal meets them (issue 26, items 1-3).

The CLI runs with stderr on a pseudo-terminal (so it draws progress) in a session of its own, and Ctrl-C is sent
the way a terminal sends it: SIGINT to the whole process group, the worker processes included. What is checked is
what the person sees (the exit code, no traceback, progress that moves), that the process ends in bounded time,
and that the next run completes the interrupted one with every object landed exactly once.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.cli_fixtures import CLI_TIMEOUT, Stage, moto_server_fixture, one_json, reap, stage_fixture  # noqa: F401 (fixtures)
from tests.e2e.test_crash_and_race import (
    FIRST_DATE,
    assert_landed_exactly_once,
    assert_ledger_matches_bucket,
    first_date_for,
    nth_target,
)

INTERRUPTED = 128 + signal.SIGINT
DRAWN = re.compile(r"\r([\d,]+)/([\d,]+) objects  \S+ \S+/\S+ \S+  (-/s|\S+ \S+/s [\d,]+ obj/s)  ETA ([\d:-]+)")


class Terminal:
    """A CLI process with stderr on a pseudo-terminal, read as it arrives (stdout piped: the JSON answer)."""

    def __init__(self, stage: Stage, *argv: str):
        controller, terminal = pty.openpty()
        self.proc = stage.start(*argv, stderr=terminal, start_new_session=True)
        os.close(terminal)
        self._controller = controller
        self._shown = bytearray()
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._controller, 65536)
            except OSError:  # EIO: every process holding the terminal has ended
                chunk = b""
            with self._changed:
                self._shown += chunk
                self._changed.notify_all()
            if not chunk:
                return

    @property
    def shown(self) -> str:
        with self._changed:
            return self._shown.decode("utf-8", "replace")

    def wait_for(self, what: Callable[[str], bool], timeout: float = 90) -> None:
        """Until what the terminal showed satisfies `what`; fail if the run ends first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not what(self._shown.decode("utf-8", "replace")):
                if self.proc.poll() is not None:
                    pytest.fail(f"the run ended (exit {self.proc.returncode}) first:\n{self.shown}")
                if not self._changed.wait(timeout=max(deadline - time.monotonic(), 0.01)):
                    if time.monotonic() >= deadline:
                        pytest.fail(f"not shown within {timeout}s:\n{self._shown.decode('utf-8', 'replace')}")

    def ctrl_c(self) -> None:
        """What a terminal does on Ctrl-C: SIGINT to the foreground process group, workers included."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def finish(self, timeout: float = CLI_TIMEOUT) -> tuple[int, str, str]:
        """(exit code, stdout, what the terminal showed) once the process ended within `timeout`."""
        out, _ = self.proc.communicate(timeout=timeout)
        self._reader.join(timeout=30)
        os.close(self._controller)
        return self.proc.returncode, out, self.shown


@pytest.fixture(name="terminals")
def terminals_fixture() -> Iterator[list[Terminal]]:
    started: list[Terminal] = []
    yield started
    for terminal in started:
        if terminal.proc.poll() is None:
            os.killpg(terminal.proc.pid, signal.SIGKILL)
        reap([terminal.proc])


def draws(shown: str) -> list[tuple[int, str, str]]:
    """Each progress line drawn: (objects done, its rate, its ETA)."""
    return [(int(done.replace(",", "")), rate, left) for done, _, rate, left in DRAWN.findall(shown)]


def workers_of(pid: int) -> list[int]:
    """The CLI's pool workers (spawned children; not multiprocessing's resource tracker), from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat, command = (entry / "stat").read_text(), (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in command:
                children.append(int(entry.name))
    return children


def run_argv(stage: Stage, config: Path, *args: str) -> list[str]:
    return stage.argv("run", config, "--json", "--workers", "2", "--date", FIRST_DATE, *args)


def assert_the_next_run_completes_it(stage: Stage, config: Path, objects: int) -> None:
    after = stage.run(config, "--json", "--date", "2026-01-03")

    assert after.returncode == 0, after.stderr
    answer = one_json(after)
    done = answer["copied"] + sum(r["copied"] for r in answer["resumed_runs"])
    assert done <= objects
    lineage = assert_landed_exactly_once(stage, first_date_for(stage))
    assert len(lineage) == objects
    assert_ledger_matches_bucket(stage, lineage, tidy=False)


def test_progress_with_two_workers_moves_as_each_batch_ends(stage: Stage, terminals: list[Terminal]) -> None:
    stage.seed(300)
    config = stage.config(concurrency=1, batch_max_objects=10)
    terminals.append(terminal := Terminal(stage, *run_argv(stage, config)))

    code, out, shown = terminal.finish()

    assert code == 0, shown
    assert one_json(out)["copied"] == 300
    seen = draws(shown)
    steps = sorted({done for done, _, _ in seen if 0 < done < 300})
    assert len(steps) >= 3, f"progress jumped instead of moving batch by batch: {seen}"
    assert [done for done, _, _ in seen] == sorted(done for done, _, _ in seen), "progress went backwards"
    assert all((rate, left) == ("-/s", "-:--") for done, rate, left in seen if done == 0), "a rate from nothing done"
    assert all(rate != "-/s" and left != "-:--" for done, rate, left in seen if done > 0)
    assert seen[-1][0] == 300 and seen[-1][2] == "0:00"
    assert "Traceback" not in shown


def test_ctrl_c_with_workers_running_exits_130_without_a_traceback_and_loses_nothing(
    stage: Stage, terminals: list[Terminal]
) -> None:
    stage.seed(300)
    config = stage.config(concurrency=1, batch_max_objects=10, lock_ttl_seconds=900)
    terminals.append(terminal := Terminal(stage, *run_argv(stage, config)))
    terminal.wait_for(lambda shown: any(0 < done for done, _, _ in draws(shown)))

    terminal.ctrl_c()
    code, out, shown = terminal.finish(timeout=60)

    assert code == INTERRUPTED, shown
    assert (one_json(out)["status"], one_json(out)["exit_code"]) == ("interrupted", INTERRUPTED)
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown
    assert "error: interrupted by SIGINT (Ctrl-C)" in shown
    assert_the_next_run_completes_it(stage, config, 300)


def test_a_second_ctrl_c_stops_the_running_batches_at_once(stage: Stage, terminals: list[Terminal]) -> None:
    objects = stage.seed(600)
    # Two batches of 300, one object at a time: either takes far longer than the test waits for the exit.
    config = stage.config(concurrency=1, batch_max_objects=300, lock_ttl_seconds=900)
    terminals.append(terminal := Terminal(stage, *run_argv(stage, config)))
    stage.wait_for_object(nth_target(objects, 5), terminal.proc)

    terminal.ctrl_c()
    terminal.wait_for(lambda shown: "Ctrl-C again stops them at once" in shown)
    terminal.ctrl_c()
    stopped = time.monotonic()
    code, out, shown = terminal.finish(timeout=60)

    assert time.monotonic() - stopped < 20, "the second Ctrl-C did not stop the run promptly"
    assert code == INTERRUPTED, shown
    assert one_json(out)["status"] == "interrupted"
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown
    assert len(stage.settled_landed()) < 600, "the batches ran to their end: the second Ctrl-C was not heard"
    assert_the_next_run_completes_it(stage, config, 600)


@pytest.mark.parametrize("presses", [1, 2], ids=["once", "twice"])
def test_ctrl_c_while_the_workers_start_prints_no_traceback(
    stage: Stage, terminals: list[Terminal], presses: int
) -> None:
    stage.seed(100)
    config = stage.config(concurrency=1, batch_max_objects=10, lock_ttl_seconds=900)
    terminals.append(terminal := Terminal(stage, *run_argv(stage, config)))
    deadline = time.monotonic() + 60
    while not workers_of(terminal.proc.pid):  # a spawned worker is importing: the first second of its life
        assert terminal.proc.poll() is None and time.monotonic() < deadline, terminal.shown
        time.sleep(0.005)

    for press in range(presses):
        time.sleep(0.05 * press)
        terminal.ctrl_c()
    code, out, shown = terminal.finish(timeout=60)

    # A second Ctrl-C in the last milliseconds of the interpreter's exit (its handlers already reset) ends it by
    # SIGINT itself, which a shell reports as 130 too.
    assert code == INTERRUPTED or (presses == 2 and code == -signal.SIGINT), shown
    if code == INTERRUPTED:
        assert one_json(out)["status"] == "interrupted"
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown
    assert_the_next_run_completes_it(stage, config, 100)


def test_workers_are_gone_when_an_interrupted_run_has_exited(stage: Stage, terminals: list[Terminal]) -> None:
    stage.seed(100)
    config = stage.config(concurrency=1, batch_max_objects=10, lock_ttl_seconds=900)
    terminals.append(terminal := Terminal(stage, *run_argv(stage, config)))
    terminal.wait_for(lambda shown: any(0 < done for done, _, _ in draws(shown)))
    workers = workers_of(terminal.proc.pid)
    assert workers

    terminal.ctrl_c()
    terminal.ctrl_c()
    code, _, shown = terminal.finish(timeout=60)

    assert code == INTERRUPTED, shown
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists() and _state(pid) != "Z"]
    assert alive == []


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_a_double_ctrl_c_in_a_run_without_workers_exits_130_and_loses_nothing(
    stage: Stage, terminals: list[Terminal]
) -> None:
    objects = stage.seed(300)
    config = stage.config(concurrency=1, batch_max_objects=100, lock_ttl_seconds=900)
    terminals.append(terminal := Terminal(stage, *run_argv(stage, config, "--workers", "1")))  # the last wins
    stage.wait_for_object(nth_target(objects, 5), terminal.proc)

    terminal.ctrl_c()
    terminal.ctrl_c()
    code, out, shown = terminal.finish(timeout=60)

    assert code in (INTERRUPTED, -signal.SIGINT), shown
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown
    assert_the_next_run_completes_it(stage, config, 300)
