"""One measured child process: wall time, CPU, peak RSS and peak /tmp of its whole process tree.

Why sample the tree and not only read rusage: `wait4`'s rusage covers the child and the descendants *it*
waited for, and its `ru_maxrss` is one process's peak, never a sum. A run that fans out to a process pool (or
leaves a grandchild behind) would be under-counted. So a thread walks the tree every `interval` seconds
(psutil, i.e. /proc): RSS summed over the live processes (shared pages count once per process, so the sum is an
upper bound of real memory use; the sampling interval makes the peak a lower bound of that), and each
process's last seen CPU, summed. CPU is reported as the larger of rusage and the sampled tree.

The child gets a fresh TMPDIR; every `tmp_interval` seconds its size is taken: the files visible there
(SQLite scratch files) plus the files any process of the tree holds open there after unlinking them
(`tempfile.TemporaryFile` spools, seen through /proc/<pid>/fd), each counted once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.common import tmp_bytes


@dataclass
class Measured:
    wall: float
    cpu_rusage: float
    cpu_tree: float
    peak_rss: int
    maxrss_one: int  # ru_maxrss of wait4: the largest single waited-for process, bytes
    peak_tmp: int
    peak_tmp_named: int
    processes: int  # distinct processes seen in the tree
    returncode: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)

    @property
    def cpu(self) -> float:
        return max(self.cpu_rusage, self.cpu_tree)

    def answer(self) -> Any:
        """The last line of stdout as JSON (the CLI's `--json` summary, a step's answer), or None without one."""
        try:
            return json.loads(self.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            return None

    def figures(self) -> dict[str, float | int]:
        """The numbers, for the JSON output (stdout and stderr stay out)."""
        return {
            "wall_s": round(self.wall, 3),
            "cpu_s": round(self.cpu, 3),
            "cpu_rusage_s": round(self.cpu_rusage, 3),
            "cpu_tree_sampled_s": round(self.cpu_tree, 3),
            "peak_rss_bytes": self.peak_rss,
            "maxrss_one_process_bytes": self.maxrss_one,
            "peak_tmp_bytes": self.peak_tmp,
            "peak_tmp_named_bytes": self.peak_tmp_named,
            "processes": self.processes,
            "returncode": self.returncode,
        }


class _TreeSampler:
    def __init__(self, pid: int, tmpdir: Path, interval: float, tmp_interval: float):
        self.root = psutil.Process(pid)
        self.tmpdir = os.path.realpath(tmpdir)
        self.interval, self.tmp_interval = interval, tmp_interval
        self.cpu: dict[tuple[int, float], float] = {}  # (pid, create_time) -> last seen user+sys
        self.peak_rss = self.peak_tmp = self.peak_named = 0
        self._last_tmp = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            procs = self._tree()
            rss = 0
            for proc in procs:
                try:
                    with proc.oneshot():
                        rss += proc.memory_info().rss
                        times = proc.cpu_times()
                        self.cpu[(proc.pid, proc.create_time())] = times.user + times.system
                except psutil.Error:
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            now = time.monotonic()
            if now - self._last_tmp >= self.tmp_interval:
                self._last_tmp = now
                self._sample_tmp(procs)
            self._stop.wait(self.interval)

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return []

    def _sample_tmp(self, procs: list[psutil.Process]) -> None:
        named, total = tmp_bytes(self.tmpdir, (proc.pid for proc in procs))
        self.peak_named = max(self.peak_named, named)
        self.peak_tmp = max(self.peak_tmp, total)


def run_measured(
    cmd: list[str],
    env: dict[str, str],
    tmpdir: Path,
    *,
    cwd: Path | None = None,
    interval: float = 0.2,
    tmp_interval: float = 0.5,
    timeout: float = 6 * 3600,
) -> Measured:
    """Run `cmd` with TMPDIR=`tmpdir` (created fresh, removed after), sampled as the module docstring says.

    Safe to call from several threads at once: each call waits for its own child with wait4, so the rusage is
    that child's alone (no RUSAGE_CHILDREN deltas shared between threads).
    """
    shutil.rmtree(tmpdir, ignore_errors=True)
    tmpdir.mkdir(parents=True)
    out_path, err_path = tmpdir.with_name(tmpdir.name + ".out"), tmpdir.with_name(tmpdir.name + ".err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=dict(env, TMPDIR=str(tmpdir)), cwd=cwd
        )
        sampler = _TreeSampler(proc.pid, tmpdir, interval, tmp_interval)
        sampler.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            wall = time.perf_counter() - start
            sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    for path in (out_path, err_path):
        path.unlink()
    shutil.rmtree(tmpdir, ignore_errors=True)
    return Measured(
        wall=wall,
        cpu_rusage=usage.ru_utime + usage.ru_stime,
        cpu_tree=sum(sampler.cpu.values()),
        peak_rss=max(sampler.peak_rss, usage.ru_maxrss * 1024),
        maxrss_one=usage.ru_maxrss * 1024,
        peak_tmp=sampler.peak_tmp,
        peak_tmp_named=sampler.peak_named,
        processes=len(sampler.cpu),
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
    )
