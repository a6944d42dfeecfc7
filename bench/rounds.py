"""The measurement plan: interleaved rounds of every tool on the same server and objects, the no-op night, and
one extra, untimed round per tool that counts its requests through a proxy.

Why rounds: the machine's noise (other work, the page cache, the server warming up) drifts over minutes, so
every tool runs once per round, in an order rotated per round so nobody always goes first, and each peer's time
is divided by ours from the same round. Before every measured command rclone drops its cached listings, so
every command reads the folder the same way. Timed commands always go straight to the server; only the
counting round goes through the proxy.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.common import Sample, Tool
from bench.proxy import CountingProxy
from bench.servers import Server
from bench.workloads import DataSet

Log = Callable[[str], None]
Requests = dict[str, dict[str, dict[str, int]]]  # tool -> phase -> S3 operation -> requests


def rotated(names: list[str], rep: int) -> list[str]:
    return names[rep % len(names) :] + names[: rep % len(names)]


def copy_rounds(server: Server, data: DataSet, tools: dict[str, Tool], reps: int, log: Log) -> list[Sample]:
    """Per round, per tool: its full copy into a fresh bucket, its second run over it (nothing new), then the
    bucket emptied and deleted (untimed), so the server holds one target at a time (the large set is 1 GiB).

    Before round 1, one untimed copy by the first tool: the first command after seeding pays for a cold
    server (its first reads of the source files), measured at up to 1.5x the later rounds on the 1 MiB set,
    and only one tool ever goes first in round 1."""
    warm = next(iter(tools))
    target = f"w-{data.short}-{warm}"
    server.s3.create_bucket(Bucket=target)
    server.forget()
    log(f"    warm-up (untimed): {warm} {tools[warm].run(data, target, incremental=False).seconds:.2f}s")
    server.drop(target)
    samples: list[Sample] = []
    for rep in range(reps):
        line = []
        for name in rotated(list(tools), rep):
            target = f"t-{data.short}-{name}-{rep}"
            server.s3.create_bucket(Bucket=target)
            for incremental in (False, True):
                server.forget()
                sample = tools[name].run(data, target, incremental=incremental)
                sample.rep = rep
                samples.append(sample)
                line.append(f"{name}{'(again)' if incremental else ''} {sample.seconds:.2f}s")
            server.drop(target)
        log(f"    round {rep + 1}/{reps}: " + ", ".join(line))
    return samples


def noop_rounds(
    server: Server, data: DataSet, ours: Tool, listers: dict[str, Tool], reps: int, target: str, log: Log
) -> tuple[Sample, list[Sample]]:
    """Our first ingest of the set into `target` (once, timed on its own), then per round our no-op re-run
    over it beside each bare listing of the same prefix. The target stays for the counting round."""
    server.s3.create_bucket(Bucket=target)
    server.forget()
    first = ours.run(data, target, incremental=False)
    first.rep = -1
    log(f"    first ingest (once): {first.seconds:.1f}s")
    runners = {"ours": ours, **listers}
    samples: list[Sample] = []
    for rep in range(reps):
        line = []
        for name in rotated(list(runners), rep):
            server.forget()
            sample = runners[name].run(data, target, incremental=True)
            sample.rep = rep
            samples.append(sample)
            line.append(f"{sample.tool} {sample.seconds:.2f}s")
        log(f"    round {rep + 1}/{reps}: " + ", ".join(line))
    return first, samples


def count_copy_requests(server: Server, data: DataSet, tools: dict[str, Tool], log: Log) -> Requests:
    """The extra round: every tool's full copy and second run through the counting proxy (untimed)."""
    counted: Requests = {}
    with CountingProxy(server.endpoint) as proxy:
        for name, tool in tools.items():
            target = f"c-{data.short}-{name}"
            server.s3.create_bucket(Bucket=target)
            counted[name] = dict(
                _counted(proxy, server, tool, data, target, incremental) for incremental in (False, True)
            )
            server.drop(target)
    log("    requests counted: " + _summary(counted, data.count))
    return counted


def count_noop_requests(server: Server, data: DataSet, runners: dict[str, Tool], target: str, log: Log) -> Requests:
    """The extra round of the no-op night: our re-run over `target` and each listing, through the proxy."""
    with CountingProxy(server.endpoint) as proxy:
        counted = {name: dict([_counted(proxy, server, tool, data, target, True)]) for name, tool in runners.items()}
    log("    requests counted: " + _summary(counted, data.count))
    return counted


def _counted(
    proxy: CountingProxy, server: Server, tool: Tool, data: DataSet, target: str, incremental: bool
) -> tuple[str, dict[str, int]]:
    """One run of `tool` pointed at the proxy (its own checks still go direct): its phase and its requests."""
    runner = type(tool)(server.through(proxy.endpoint), tool.binary, tool.workdir)
    server.forget()
    with proxy.counting() as counts:
        sample = runner.run(data, target, incremental=incremental)
    return sample.phase, dict(counts)


def _summary(counted: Requests, objects: int) -> str:
    return ", ".join(
        f"{name} {phase} {sum(ops.values()) / objects:.3g}/object"
        for name, phases in counted.items()
        for phase, ops in phases.items()
    )
