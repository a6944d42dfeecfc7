"""The data sets every tool copies: the real MovieLens files, and a generated set of many small files."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import REPO, SOURCE_BUCKET, iter_objects

MOVIELENS_DIR = REPO.parent / "shared/data/ml-latest-small"  # shared/ sits beside the clone (dev and CI)


@dataclass
class DataSet:
    name: str
    short: str  # in target bucket names
    prefix: str  # in the source bucket; the targets use the same prefix
    files: dict[str, bytes | Path]  # key relative to the prefix -> bytes or a local file
    description: str = ""

    @property
    def count(self) -> int:
        return len(self.files)

    @property
    def total_bytes(self) -> int:
        return sum(_size(v) for v in self.files.values())

    @property
    def largest(self) -> int:
        return max(_size(v) for v in self.files.values())

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "count": self.count, "bytes": self.total_bytes, "description": self.description}


def _size(body: bytes | Path) -> int:
    return len(body) if isinstance(body, bytes) else body.stat().st_size


def movielens(directory: Path | None) -> DataSet | None:
    directory = directory or MOVIELENS_DIR
    if not directory.is_dir():
        return None
    files: dict[str, bytes | Path] = {
        f"ml-latest-small/{p.name}": p for p in sorted(directory.iterdir()) if p.is_file()
    }
    data = DataSet("movielens", "ml", "movielens/", files)
    data.description = f"MovieLens ml-latest-small: {data.count} files, {data.total_bytes / 1e6:.1f} MB"
    return data


def many_small(count: int, seed: int = 20261127) -> DataSet:
    """`count` files of 1-20 KiB in nested folders (8 x 10 x ...), deterministic for a given seed."""
    rng = random.Random(seed)
    files: dict[str, bytes | Path] = {
        f"region={i % 8}/day={(i // 8) % 10:02d}/part-{i:05d}.csv": rng.randbytes(rng.randint(1024, 20 * 1024))
        for i in range(count)
    }
    data = DataSet("many-small", "sm", "small/", files)
    folders = len({k.rsplit("/", 1)[0] for k in files})
    data.description = (
        f"generated: {data.count} files of 1-20 KiB in {folders} nested folders, {data.total_bytes / 1e6:.1f} MB"
    )
    return data


def seed(s3: Any, data: DataSet) -> None:
    """Put the data set into the source bucket (untimed) and check that all of it is listed."""

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
