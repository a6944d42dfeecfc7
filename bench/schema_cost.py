"""What schema contracts cost: the same night of a described table's files landed with `check_schema` on and off.

`python -m bench.schema_cost [--files N] [--reps N] [--servers rclone,moto]` lands N small CSV files of a described
table (and a few of 1 MiB, to show the read stops at the first range) into a fresh raw bucket per round, on local
servers only, alternating the two settings round by round, and prints the median wall time per file of each, the
difference, and the ranged GETs and bytes the header reads took (counted from the answers). Timing is local and
only a guide: on S3 the GET is one more first-byte latency per file (tens of milliseconds), spread over the copy's
`concurrency`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import boto3

from bench.common import ACCESS_KEY, REGION, SECRET_KEY
from bench.servers import Server, start
from handler.config import parse_config
from handler.runner import Engine
from handler.store import Store

HEADER = "userId,movieId,rating,timestamp\n"
ROW = "1,296,5.0,1147880044\n"
COLUMNS = [{"name": n, "type": "string"} for n in ("userId", "movieId", "rating", "timestamp")]


class Reads:
    """Ranged GETs and the bytes their answers carried."""

    def __init__(self) -> None:
        self.requests = self.bytes = 0

    def attach(self, s3: Any) -> None:
        s3.meta.events.register("after-call.s3.GetObject", self._count)

    def _count(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        if parsed.get("ContentRange"):  # a ranged answer: the run reads nothing else with a range
            self.requests += 1
            self.bytes += int(parsed.get("ContentLength") or 0)


def _seed(s3: Any, source: str, files: int, large: int) -> None:
    small = (HEADER + ROW * 200).encode()  # about 4 KiB
    big = (HEADER + ROW * (1024 * 1024 // len(ROW))).encode()
    for n in range(files):
        s3.put_object(Bucket=source, Key=f"in/ratings-{n:05d}.csv", Body=small if n >= large else big)


def _night(server: Server, source: str, raw: str, check: bool, reads: Reads, source_metadata: str) -> float:
    config = {
        "source": {"bucket": source, "prefix": "in/"},
        "target": {"bucket": raw, "prefix": "out/"},
        "tables": {"ratings": {"pattern": "ratings-*.csv", "columns": COLUMNS}},
        "check_schema": check,
        "source_metadata": source_metadata,
    }
    dataset = parse_config({"datasets": {"bench": config}}).dataset("bench")
    session = boto3.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION)
    store = Store.sized(session, concurrency=dataset.concurrency, endpoint_url=server.endpoint)
    reads.attach(store.client)
    engine = Engine(store, dataset, allow_unprotected=server.name != "moto")
    started = time.perf_counter()
    (summary,) = engine.run()
    elapsed = time.perf_counter() - started
    assert summary["copied"] == summary["planned"], summary
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--large", type=int, default=5, help="of them, files of 1 MiB")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--servers", default="rclone,moto")
    parser.add_argument("--source-metadata", default="carry", choices=("carry", "lineage"))
    args = parser.parse_args()
    rclone = shutil.which("rclone") or str(Path(".venv/bin/rclone").resolve())
    for name in args.servers.split(","):
        server = start(name, rclone)
        try:
            s3 = server.s3
            source = f"schema-source-{name}"
            s3.create_bucket(Bucket=source)
            _seed(s3, source, args.files, args.large)
            times: dict[bool, list[float]] = {True: [], False: []}
            reads: dict[bool, Reads] = {}
            for rep in range(args.reps):
                for check in (True, False) if rep % 2 == 0 else (False, True):
                    raw = f"schema-raw-{name}-{rep}-{int(check)}"
                    s3.create_bucket(Bucket=raw)
                    counted = Reads()
                    times[check].append(_night(server, source, raw, check, counted, args.source_metadata))
                    reads[check] = counted
            on, off = statistics.median(times[True]), statistics.median(times[False])
            per = 1000 / args.files
            print(
                f"{server.name}, source_metadata {args.source_metadata}: {args.files} files ({args.large} of 1 MiB), "
                f"median of {args.reps}: "
                f"check_schema on {on * per:.2f} ms/file, off {off * per:.2f} ms/file, "
                f"difference {(on - off) * per:+.2f} ms/file; header reads: {reads[True].requests} ranged GETs, "
                f"{reads[True].bytes} bytes ({reads[True].bytes / args.files:.0f} bytes/file); off: "
                f"{reads[False].requests} GETs"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
