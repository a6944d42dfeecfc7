"""`rclone serve s3` for the scale harness: a folder we write into directly, with rclone's remote control on.

Why not `bench.servers.start_rclone_server`: the harness writes source objects as files behind rclone's back,
and rclone's VFS caches directory listings (`--dir-cache-time`, 5 minutes by default), so new files would stay
invisible and the measurement would depend on how old the cache is. Here the cache never expires by itself
(`--dir-cache-time 1000h`) and the harness drops it (`vfs/forget` over the remote control, loopback only)
before every measured command: each listing reads the folder, the same way every time. Changes made through
S3 (the copies) show at once either way. Metadata (our lineage) lives in rclone's memory only; the limit is
raised above the object count so that no landed object forgets its lineage mid-measurement.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.common import ACCESS_KEY, SECRET_KEY, clean_env, cpu_seconds, rss_bytes, stop_process


@dataclass
class RcloneServe:
    endpoint: str
    control: str
    process: subprocess.Popen
    folder: Path

    def bucket_dir(self, bucket: str) -> Path:
        """A bucket is a top-level directory of the served folder."""
        path = self.folder / bucket
        path.mkdir(exist_ok=True)
        return path

    def forget(self) -> None:
        """Drop rclone's cached directory listings, so files written behind its back are seen."""
        request = urllib.request.Request(
            self.control + "vfs/forget", data=b"{}", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=600) as answer:  # noqa: S310 - our own loopback server
            json.loads(answer.read() or b"{}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process so far, from /proc."""
        return cpu_seconds(self.process.pid)

    def rss_bytes(self) -> int:
        return rss_bytes(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process, timeout=30)


def start(rclone: str, workdir: Path, max_objects: int) -> RcloneServe:
    """Serve `workdir/served` on a free loopback port, remote control on another; wait until both are up."""
    folder = workdir / "served"
    folder.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "rclone-serve.log"
    log = open(log_path, "w")  # noqa: SIM115 - lives as long as the server
    cmd = [rclone, "serve", "s3", "--addr", "127.0.0.1:0", "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}"]
    cmd += ["--dir-cache-time", "1000h", "--metadata-max-objects", str(max(100_000, max_objects))]
    cmd += ["--rc", "--rc-addr", "127.0.0.1:0", "--rc-no-auth", f":local:{folder}"]
    env = clean_env(RCLONE_CONFIG=str(workdir / "rclone.conf"))
    (workdir / "rclone.conf").write_text("")
    process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log_path.read_text()
        s3 = re.search(r"Starting s3 server on \[?(http://127\.0\.0\.1:\d+/)", text)
        rc = re.search(r"Serving remote control on (http://127\.0\.0\.1:\d+/)", text)
        if s3 and rc:
            return RcloneServe(s3.group(1).rstrip("/"), rc.group(1), process, folder)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError(f"rclone serve s3 did not start:\n{log_path.read_text()[-2000:]}")
