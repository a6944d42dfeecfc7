"""How many copy_batch invocations a run lets run at once: the copy Map's width, sized to S3's write rate.

The planning and finalizing Maps fan out as wide as the stack allows (`mapConcurrency`): their shards list and
read disjoint key ranges spread over many prefixes, and a 100-million-key source needs the width to be listed in
minutes. The copy Map is different: every copy is a write to the target, and a night's keys usually land under one
new key range (`.../ingest_date=<date>/...`), which S3 serves at 3,500 PUT/COPY/POST/DELETE requests a second until
it has split it (https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html). Above that S3
answers 503 SlowDown; the copier backs off and nothing fails (handler/store/retries.py), but a wave offering nine times
the rate only buys refused requests and Lambda time spent waiting. So plan and seal_plan answer a width
(`copy_width`) that offers about `s3_writes_per_second`, and the state machine's copy Map reads it
(`MaxConcurrencyPath`, infra/workflow_definition.py). docs/SCALE.md, *Capacity*, has the numbers.

Why the layout is not read from `key_template`: a template that puts the source's folders ahead of the date spreads
a night over many key ranges, but S3's partitions are key ranges it splits under load, not folders, and a bucket
that has never been under load is served as one. Whether a dataset's folders are partitioned is not something a
template (or the runtime) can tell, so the width assumes one partition's rate, and a stack whose nights are known to
spread over partitioned prefixes raises the rate it is sized to (`s3WritesPerSecond`, docs/deploy.md).
"""

from __future__ import annotations

import math
import os

S3_WRITES_PER_SECOND = 3_500
"""S3's write rate per partitioned prefix (PUT/COPY/POST/DELETE), AWS's performance guidelines."""
COPY_ROUND_TRIP_SECONDS = 0.06
"""One small-object CopyObject round trip in-region: an assumption (docs/SCALE.md's model), not a measurement. A
shorter one makes each invocation faster and the width narrower, so it is the conservative side only down to it."""
COPIES_PER_VCPU_SECOND = 310
"""Copies a second one copy_batch makes on one vCPU: 1,000 objects in 3.2 s, CPU-bound (2.77 ms an object plus the
invocation's overhead, measured by `make scale`, docs/SCALE.md)."""
ONE_VCPU_MB = 1_769
"""Lambda gives a function one vCPU at 1,769 MB, in proportion below it. The copier's threads share one
interpreter, so more than one vCPU does not copy faster."""
MAX_MAP_WIDTH = 10_000
"""The Distributed Map's own limit on concurrent children: the width when the caller gives no cap."""


def copies_per_second(concurrency: int, memory_mb: int) -> float:
    """What one copy_batch invocation offers S3: its `concurrency` copies in flight at one round trip each, or what
    its CPU share can drive, whichever is less."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if memory_mb < 1:
        raise ValueError(f"memory_mb must be at least 1, got {memory_mb}")
    io_bound = concurrency / COPY_ROUND_TRIP_SECONDS
    cpu_bound = COPIES_PER_VCPU_SECOND * min(1.0, memory_mb / ONE_VCPU_MB)
    return min(io_bound, cpu_bound)


def copy_width(
    concurrency: int,
    memory_mb: int = ONE_VCPU_MB,
    *,
    cap: int = MAX_MAP_WIDTH,
    writes_per_second: int = S3_WRITES_PER_SECOND,
) -> int:
    """The copy Map's width: as many invocations as together offer at most `writes_per_second` copies a second
    (rounded down, so the wave stays under the rate), at least one and at most `cap` (the stack's mapConcurrency,
    which the function's reserved concurrency is sized to). At the defaults (concurrency 32, 1,769 MB): 11
    invocations, about 3,410 copies a second."""
    if cap < 1:
        raise ValueError(f"cap must be at least 1, got {cap}")
    if writes_per_second < 1:
        raise ValueError(f"writes_per_second must be at least 1, got {writes_per_second}")
    # The 1e-9 keeps a rate that divides exactly (3,500 / 35.0) from rounding down a whole invocation.
    width = math.floor(writes_per_second / copies_per_second(concurrency, memory_mb) + 1e-9)
    return max(1, min(cap, width))


MEMORY_ENV = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
"""Set by Lambda to the function's memory in MB, which sets its CPU share."""


def function_memory_mb() -> int:
    """The memory of the Lambda function this runs in (one vCPU's worth where Lambda does not say)."""
    memory = os.environ.get(MEMORY_ENV, "")
    return int(memory) if memory.isdigit() and int(memory) > 0 else ONE_VCPU_MB
