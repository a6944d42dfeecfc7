"""The tools we are compared with: aws-cli, s5cmd and rclone, each with its own defaults (no tuning)."""

from __future__ import annotations

import sys
from typing import Any

from bench.common import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    SOURCE_BUCKET,
    Sample,
    Timed,
    Tool,
    clean_env,
    first_line,
)
from bench.scale.peers import commands as list_commands
from bench.scale.peers import count_listed  # the one parser of both listers' output
from bench.workloads import DataSet


def versions(binaries: dict[str, str]) -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    try:
        import boto3
        import moto

        found.update(boto3=boto3.__version__, moto=moto.__version__)
    except ImportError:
        pass
    probes = {"aws": ["--version"], "s5cmd": ["version"], "rclone": ["version"]}
    for tool, path in binaries.items():
        found[tool] = first_line([path, *probes[tool]])
    return found


class Peer(Tool):
    """A peer's run: its command line, then the lines of its own output that each report one copied object."""

    def run(self, data: DataSet, target: str, *, incremental: bool) -> Sample:
        timed = self.timed(self.command(data, target, incremental))
        copies = self.copies(timed)
        self.expect(data, target, len(copies), incremental)
        return self.sample(timed, len(copies), incremental, **self.details(copies))

    def command(self, data: DataSet, target: str, incremental: bool) -> list[str]:
        raise NotImplementedError

    def copies(self, timed: Timed) -> list[str]:
        raise NotImplementedError

    def details(self, copies: list[str]) -> dict[str, Any]:
        return {}


class AwsCli(Peer):
    name = "aws"
    concurrency = "10 requests (max_concurrent_requests default)"
    again = "aws s3 sync"

    def command(self, data: DataSet, target: str, incremental: bool) -> list[str]:
        src, dst = f"s3://{SOURCE_BUCKET}/{data.prefix}", f"s3://{target}/{data.prefix}"
        base = [str(self.binary), "--endpoint-url", self.server.endpoint, "s3"]
        if incremental:
            return [*base, "sync", src, dst, "--no-progress"]
        return [*base, "cp", "--recursive", src, dst, "--no-progress"]

    def copies(self, timed: Timed) -> list[str]:
        return [line for line in timed.stdout.splitlines() if line.startswith("copy:")]


class S5cmd(Peer):
    name = "s5cmd"
    concurrency = "256 workers (--numworkers default)"
    again = "s5cmd sync"

    def command(self, data: DataSet, target: str, incremental: bool) -> list[str]:
        src, dst = f"s3://{SOURCE_BUCKET}/{data.prefix}*", f"s3://{target}/{data.prefix}"
        return [str(self.binary), "--endpoint-url", self.server.endpoint, "sync" if incremental else "cp", src, dst]

    def copies(self, timed: Timed) -> list[str]:
        return [line for line in timed.stdout.splitlines() if line.startswith("cp ")]


class RcloneCopy(Peer):
    """`rclone copy` with one remote (`bench:`) from RCLONE_CONFIG_BENCH_* variables, so both buckets share it
    and rclone can copy server-side."""

    name = "rclone"
    concurrency = "4 transfers, 8 checkers (defaults)"
    again = "rclone copy, again"

    def environment(self) -> dict[str, str]:
        return clean_env(
            RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER=self.server.rclone_provider,
            RCLONE_CONFIG_BENCH_ENDPOINT=self.server.endpoint,
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=ACCESS_KEY,
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SECRET_KEY,
            RCLONE_CONFIG_BENCH_REGION=REGION,
        )

    def command(self, data: DataSet, target: str, incremental: bool) -> list[str]:
        src, dst = f"bench:{SOURCE_BUCKET}/{data.prefix}", f"bench:{target}/{data.prefix}"
        return [str(self.binary), "copy", src, dst, "--s3-no-check-bucket", "-v", "--stats", "0"]

    def copies(self, timed: Timed) -> list[str]:
        return [line for line in timed.stderr.splitlines() if ": Copied (" in line]

    def details(self, copies: list[str]) -> dict[str, Any]:
        # rclone says per file whether it was a server-side copy or streamed through the client.
        server_side = sum(1 for line in copies if "server-side copy" in line)
        return {"server_side_copies": server_side, "streamed_copies": len(copies) - server_side}


PEERS: dict[str, type[Tool]] = {"aws": AwsCli, "s5cmd": S5cmd, "rclone": RcloneCopy}


class Lister(Tool):
    """A bare listing of the source prefix, beside our no-op re-run: what a night that decides nothing costs
    with nothing but the listing (the scale harness's command lines, `bench.scale.peers.commands`)."""

    command_name = ""  # its key in `bench.scale.peers.commands`

    def run(self, data: DataSet, target: str, *, incremental: bool) -> Sample:
        cmd = list_commands(self.binary, self.server.endpoint, SOURCE_BUCKET, data.prefix)[self.command_name]
        timed = self.timed(cmd)
        listed = count_listed(self.command_name, timed.stdout)
        if listed != data.count:
            raise RuntimeError(f"{self.name} on {self.server.name}: listed {listed} keys, expected {data.count}")
        return Sample(self.name, "list", timed.seconds, timed.client_cpu, timed.server_cpu, 0, {"listed": listed})


class S5cmdLs(Lister):
    name = "s5cmd ls"
    command_name = "s5cmd ls"
    concurrency = "one listing, page after page"


class Boto3List(Lister):
    name = "boto3 list"
    command_name = "boto3 ListObjectsV2"
    concurrency = "one paginator in a child Python process"


# The no-op night's listers, by the tool whose binary they need (boto3's is this interpreter).
LISTERS: dict[str, type[Lister]] = {"s5cmd": S5cmdLs, "boto3": Boto3List}
