"""The local S3 servers: each a child process bound to 127.0.0.1 on a free port.

`python -m bench.servers` is the moto child process itself (see `start_moto`).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ACCESS_KEY, REPO, SECRET_KEY, bench_s3, clean_env, version_of

SERVERS = ("moto", "rclone")


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

    @functools.cached_property
    def s3(self) -> Any:
        """The bench's own client for this server (seeding, checking, cleaning up)."""
        return bench_s3(self.endpoint)

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
                    self.process.stdin.close()  # the moto child exits when its stdin closes
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


def start(name: str, rclone: str | None) -> Server:
    if name == "moto":
        return start_moto()
    if not rclone:
        raise ValueError("rclone serve s3 needs the rclone binary")
    return start_rclone_server(rclone)


def start_moto() -> Server:
    """moto's ThreadedMotoServer in its own process, so it never shares a GIL with the client being measured."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.servers"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
        cwd=REPO,
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
        notes=f"moto {version_of('moto')} ThreadedMotoServer (werkzeug, one Python process)",
    )


def serve_moto() -> None:
    """The moto child process: serve until stdin closes. Werkzeug's per-request log is silenced."""
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
    env = clean_env(RCLONE_CONFIG=str(workdir / "rclone.conf"))
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


if __name__ == "__main__":
    serve_moto()
