"""Source objects for the scale harness, written straight into the folder `rclone serve s3` serves.

Going through S3 would cost a request per object (minutes per million on two cores); a bucket of rclone's local
backend is a top-level directory, so plain files are objects. Keys and contents are a pure function of the
object's number, so the change night can rewrite exactly 1 % of them and add 0.1 % new ones without a key list
in memory.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

PREFIX = "data/"
LAYOUTS = ("nested", "flat")
_FILLER = (b"lorem,ipsum,dolor,sit,amet,consectetur,adipiscing,elit,sed,do,eiusmod,tempor,incididunt\n" * 4)[:300]


@dataclass(frozen=True)
class Layout:
    """How object numbers map to keys: `data/part=NNNN/file-NNNNNNN.csv` (nested) or `data/file-...` (flat)."""

    kind: str = "nested"
    per_folder: int = 500

    def key(self, number: int) -> str:
        name = f"file-{number:07d}.csv"
        if self.kind == "flat":
            return PREFIX + name
        return f"{PREFIX}part={number // self.per_folder:04d}/{name}"


def content(number: int, version: int = 1) -> bytes:
    """100-300 bytes, different per object and per version (so a rewrite changes the ETag and the size)."""
    head = f"id,version,payload\n{number},{version},".encode()
    size = 100 + (number * 7919 + version * 104729) % 201
    return head + _FILLER[: max(0, size - len(head))]


def _write_range(root: str, kind: str, per_folder: int, numbers: range, version: int) -> int:
    """One worker's share, with bare os calls (no Path objects, no buffering): about 10 us per file."""
    layout = Layout(kind, per_folder)
    made: set[str] = set()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for number in numbers:
        path = os.path.join(root, layout.key(number))
        folder = os.path.dirname(path)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, content(number, version))
        finally:
            os.close(fd)
    return len(numbers)


def write_objects(bucket_dir: Path, layout: Layout, numbers: range, version: int = 1, workers: int = 2) -> int:
    """Write objects `numbers` (all at `version`) under `bucket_dir`, split over `workers` processes by folder."""
    if len(numbers) == 0:
        return 0
    if numbers.step != 1:
        return _write_range(str(bucket_dir), layout.kind, layout.per_folder, numbers, version)
    # About 8 tasks a worker, each whole folders (makedirs(exist_ok) copes with a folder two tasks share).
    chunk = -(-len(numbers) // (workers * 8))
    chunk = -(-chunk // layout.per_folder) * layout.per_folder
    parts = [range(s, min(s + chunk, numbers.stop)) for s in range(numbers.start, numbers.stop, chunk)]
    if workers <= 1 or len(parts) == 1:
        return sum(_write_range(str(bucket_dir), layout.kind, layout.per_folder, p, version) for p in parts)
    with ProcessPoolExecutor(workers) as pool:
        jobs = [pool.submit(_write_range, str(bucket_dir), layout.kind, layout.per_folder, p, version) for p in parts]
        return sum(job.result() for job in jobs)


@dataclass(frozen=True)
class Change:
    """The 1 % change night: which objects are rewritten and which are new."""

    rewritten: range
    added: range


def change_night(total: int, layout: Layout) -> Change:
    """Every 100th object rewritten (spread over all folders, as real updates are), plus 0.1 % new objects
    numbered after the last (so nested ones fill the last folder and open new ones)."""
    return Change(range(37 % max(total, 1), total, 100), range(total, total + max(1, total // 1000)))


def apply_change(bucket_dir: Path, layout: Layout, change: Change, workers: int = 2) -> None:
    write_objects(bucket_dir, layout, change.rewritten, version=2, workers=1)
    write_objects(bucket_dir, layout, change.added, version=1, workers=workers)
