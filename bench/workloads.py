"""The data sets every tool copies, and seeding them into `bench-source`.

Bodies are made on demand, never held all at once: the large set is 1 GiB and the no-op set 300,000 keys. On
`rclone serve s3` the sets are written straight into the served folder (a bucket of rclone's local backend is a
directory, so a file is an object): seeding 20,000 objects then takes a second instead of 20,000 PUTs. moto
keeps its objects in memory, so there they are PUT.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import KIB, MIB, REPO, SOURCE_BUCKET, iter_objects
from bench.scale.seed import PREFIX as NOOP_PREFIX
from bench.scale.seed import Layout, content, write_objects

if TYPE_CHECKING:
    from bench.servers import Server

MOVIELENS_DIR = REPO.parent / "shared/data/ml-latest-small"  # shared/ sits beside the clone (dev and CI)
SEED = 20261127


@dataclass
class DataSet:
    name: str  # our dataset's name in its config, too
    short: str  # in target bucket names
    prefix: str  # in the source bucket; the targets use the same prefix
    count: int
    total_bytes: int
    largest: int
    files: Callable[[], Iterator[tuple[str, bytes]]]  # (key relative to the prefix, body), made on demand
    description: str = ""
    write_into: Callable[[Path], int] | None = None  # a faster way to write it into a bucket's folder

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "count": self.count, "bytes": self.total_bytes, "description": self.description}


def movielens(directory: Path | None) -> DataSet | None:
    """The real ml-latest-small files, read from `shared/data` (never copied into the repository)."""
    directory = directory or MOVIELENS_DIR
    if not directory.is_dir():
        return None
    paths = [p for p in sorted(directory.iterdir()) if p.is_file()]
    sizes = [p.stat().st_size for p in paths]

    def files() -> Iterator[tuple[str, bytes]]:
        for path in paths:
            yield f"ml-latest-small/{path.name}", path.read_bytes()

    description = f"MovieLens ml-latest-small: {len(paths)} files, {sum(sizes) / 1e6:.1f} MB"
    return DataSet("movielens", "ml", "movielens/", len(paths), sum(sizes), max(sizes), files, description)


def small(count: int) -> DataSet:
    """`count` objects of 4 KiB in nested folders (8 regions x 10 days): per-object overhead dominates."""

    def files() -> Iterator[tuple[str, bytes]]:
        rng = random.Random(SEED)  # the same bytes every time, in this order
        for i in range(count):
            yield f"region={i % 8}/day={(i // 8) % 10:02d}/part-{i:05d}.csv", rng.randbytes(4 * KIB)

    folders = min(count, 80)
    description = f"generated: {count:,} objects of 4 KiB in {folders} nested folders, {count * 4 * KIB / 1e6:.1f} MB"
    return DataSet("small", "sm", "small/", count, count * 4 * KIB, 4 * KIB, files, description)


def large(count: int) -> DataSet:
    """`count` objects of 1 MiB in one folder: bytes per second start to matter, requests per object less."""

    def files() -> Iterator[tuple[str, bytes]]:
        rng = random.Random(SEED + 1)
        for i in range(count):
            yield f"part-{i:05d}.bin", rng.randbytes(MIB)

    description = f"generated: {count:,} objects of 1 MiB, {count * MIB / 1e6:,.0f} MB"
    return DataSet("large", "lg", "large/", count, count * MIB, MIB, files, description)


def noop(count: int) -> DataSet:
    """The no-op night's source: `count` objects of 100-300 bytes, the scale harness's keys and contents
    (`data/part=NNNN/file-NNNNNNN.csv`, 500 a folder), written by its multi-process writer."""
    layout = Layout()

    def files() -> Iterator[tuple[str, bytes]]:
        for n in range(count):
            yield layout.key(n)[len(NOOP_PREFIX) :], content(n)

    def write_into(bucket_dir: Path) -> int:
        return write_objects(bucket_dir, layout, range(count))

    total = sum(len(content(n)) for n in range(count))
    description = f"generated: {count:,} objects of 100-300 bytes in {-(-count // layout.per_folder):,} folders"
    return DataSet("noop", "noop", NOOP_PREFIX, count, total, 300, files, description, write_into)


def seed(server: Server, data: DataSet) -> None:
    """Put the data set into the source bucket (untimed) and check that all of it is listed."""
    if server.served:
        bucket_dir = server.served.bucket_dir(SOURCE_BUCKET)
        if data.write_into:
            data.write_into(bucket_dir)
        else:
            for key, body in data.files():
                path = bucket_dir / data.prefix / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
        server.forget()
    else:
        _put_all(server.s3, data)
    listed = sum(1 for _ in iter_objects(server.s3, SOURCE_BUCKET, data.prefix))
    if listed != data.count:
        raise RuntimeError(f"seeding {data.name}: listed {listed} objects, expected {data.count}")


def _put_all(s3: Any, data: DataSet, workers: int = 16) -> None:
    """PUT every object, at most `4 * workers` bodies in memory at once."""

    def put(key: str, body: bytes) -> None:
        content_type = "text/csv" if key.endswith(".csv") else "application/octet-stream"
        s3.put_object(Bucket=SOURCE_BUCKET, Key=data.prefix + key, Body=body, ContentType=content_type)

    with ThreadPoolExecutor(workers) as pool:
        pending: set[Future[None]] = set()
        for key, body in data.files():
            if len(pending) >= 4 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for job in done:
                    job.result()
            pending.add(pool.submit(put, key, body))
        for job in pending:
            job.result()
