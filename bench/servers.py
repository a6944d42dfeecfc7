"""The local S3 servers: each a child process bound to 127.0.0.1 on a free port.

`python -m bench.servers` is the moto child process itself (see `start_moto`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from bench.common import REPO, bench_s3, clean_env, cpu_seconds, drop_bucket, stop_process, version_of
from bench.scale import server as scale_server

SERVERS = ("rclone", "moto")  # rclone serve s3 first: the primary server (Go, not the bottleneck)


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
    served: scale_server.RcloneServe | None = None  # rclone's served folder, for direct seeding

    @functools.cached_property
    def s3(self) -> Any:
        """The bench's own client for this server (seeding, checking, cleaning up)."""
        return bench_s3(self.endpoint)

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far (from /proc; 0 where unavailable)."""
        try:
            return cpu_seconds(self.process.pid)
        except (OSError, IndexError, ValueError):
            return 0.0

    def forget(self) -> None:
        """Before every measured command: rclone drops its cached listings, so each command reads the folder
        the same way (moto has no such cache)."""
        if self.served:
            self.served.forget()

    def through(self, endpoint: str) -> Server:
        """The same server reached at another address (the counting proxy). The bench's own checks keep the
        direct client, so only the tool's requests go through the proxy; never stop this copy."""
        view = dataclasses.replace(self, endpoint=endpoint)
        view.__dict__["s3"] = self.s3  # the cached_property's slot
        return view

    def drop(self, bucket: str) -> None:
        """Empty and delete a target bucket (untimed). rclone can refuse the delete (BucketNotEmpty) for the
        empty folders a ledger's deleted work files leave behind; the bench owns that folder, so it goes."""
        try:
            drop_bucket(self.s3, bucket)
        except ClientError as err:
            if not self.served or err.response.get("Error", {}).get("Code") != "BucketNotEmpty":
                raise
            shutil.rmtree(self.served.bucket_dir(bucket))
            self.served.forget()

    def stop(self) -> None:
        if self.process.poll() is None and self.process.stdin:
            try:
                self.process.stdin.close()  # the moto child exits when its stdin closes
            except OSError:
                pass
        stop_process(self.process, timeout=10)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start(name: str, rclone: str | None, max_objects: int = 100_000) -> Server:
    """Start one server by its --servers name; `max_objects` sizes rclone's in-memory metadata."""
    if name == "moto":
        return start_moto()
    if not rclone:
        raise ValueError("rclone serve s3 needs the rclone binary")
    return start_rclone_server(rclone, max_objects)


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


def start_rclone_server(rclone: str, max_objects: int = 100_000) -> Server:
    """`rclone serve s3` on a temp folder, as the scale harness starts it (`bench.scale.server.start`): 127.0.0.1
    on a free port, SigV4 with one key pair, and a folder the bench may write source objects into directly.

    Why that server and not rclone's defaults: seeding 20,000 objects as files takes a second where PUTs take
    minutes, and rclone caches directory listings, so files written behind its back are only seen after
    `Server.forget()`; its listings never expire by themselves (`--dir-cache-time 1000h`), so every measured
    command starts from the same, freshly dropped cache. Metadata (our lineage) lives in rclone's memory, for at
    most `max_objects` objects. Other defaults that matter (see `rclone serve s3 --help`): --vfs-cache-mode off
    (objects are plain files), ETag is the MD5, CopyObject is supported but UploadPartCopy is not, conditional
    writes are not honoured.
    """
    workdir = Path(tempfile.mkdtemp(prefix="bench-rclone-"))
    served = scale_server.start(rclone, workdir, max_objects)
    return Server(
        "rclone-serve-s3",
        served.endpoint,
        served.process,
        rclone_provider="Rclone",
        ours_flags=("--allow-unprotected",),
        upload_part_copy=False,
        notes="rclone serve s3 on a temp folder (Go); ignores conditional writes, so ours runs with "
        "--allow-unprotected",
        workdir=workdir,
        served=served,
    )


if __name__ == "__main__":
    serve_moto()
