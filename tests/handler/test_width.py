"""The copy Map's width (handler/width.py): as many copy_batch invocations as offer S3's write rate, no more."""

from __future__ import annotations

import pytest

from handler.width import (
    COPIES_PER_VCPU_SECOND,
    COPY_ROUND_TRIP_SECONDS,
    S3_WRITES_PER_SECOND,
    copies_per_second,
    copy_width,
)


@pytest.mark.parametrize(
    ("concurrency", "memory_mb", "rate"),
    [
        (32, 1769, 310.0),  # the defaults: CPU-bound at one vCPU (32 in flight at 60 ms would allow 533)
        (32, 3538, 310.0),  # two vCPUs copy no faster: the copier's threads share one interpreter
        (32, 885, 155.0),  # half a vCPU, half the rate (to within the MB)
        (16, 1769, 266.7),  # I/O-bound: 16 in flight at 60 ms
        (2, 1769, 33.3),
        (1, 128, 1 / COPY_ROUND_TRIP_SECONDS),  # 16.7 a second either way: 128 MB allows 22
    ],
)
def test_one_invocation_copies_as_fast_as_its_copies_in_flight_or_its_cpu_allow(concurrency, memory_mb, rate):
    assert copies_per_second(concurrency, memory_mb) == pytest.approx(rate, abs=0.1)


@pytest.mark.parametrize(
    ("concurrency", "memory_mb", "cap", "writes", "width"),
    [
        (32, 1769, 100, 3500, 11),  # the defaults: 11 × 310 = 3,410 a second, under 3,500; 12 would offer 3,720
        (32, 1024, 100, 3500, 19),  # 0.58 vCPU: 179 a second an invocation
        (8, 1769, 100, 3500, 26),  # 133 a second an invocation
        (2, 1769, 100, 3500, 100),  # 105 would offer 3,500; mapConcurrency caps it
        (2, 1769, 1000, 3500, 105),  # 3,500 / 33.3 is 104.99999999999999 in floating point: still 105
        (32, 1769, 5, 3500, 5),  # a stack narrower than the rate
        (32, 1769, 100, 7000, 22),  # a stack sized to two partitioned prefixes
        (32, 1769, 100, 100, 1),  # a rate one invocation already exceeds: still one, never 0 (0 means unlimited)
        (15, 1769, 100, 3500, 14),  # 250 a second exactly: 3,500 / 250 is 14, not 13.999
        (1024, 10240, 10_000, 100_000, 322),  # the highest settings: CPU-bound, 100,000 / 310
    ],
)
def test_the_copy_map_offers_at_most_the_write_rate_within_the_cap(concurrency, memory_mb, cap, writes, width):
    got = copy_width(concurrency, memory_mb, cap=cap, writes_per_second=writes)

    assert got == width
    offered = got * copies_per_second(concurrency, memory_mb)
    if 1 < got < cap:  # sized by the rate: under it, and one more invocation would pass it
        assert offered <= writes + 1e-6 < offered + copies_per_second(concurrency, memory_mb)


def test_the_defaults_are_s3s_one_prefix_rate_and_the_measured_copy_rate():
    assert S3_WRITES_PER_SECOND == 3500
    assert COPIES_PER_VCPU_SECOND == 310  # 1,000 objects in 3.2 s, docs/SCALE.md
    assert copy_width(32) == 11


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: copy_width(0), "concurrency must be at least 1, got 0"),
        (lambda: copy_width(32, 0), "memory_mb must be at least 1, got 0"),
        (lambda: copy_width(32, cap=0), "cap must be at least 1, got 0"),
        (lambda: copy_width(32, writes_per_second=0), "writes_per_second must be at least 1, got 0"),
    ],
)
def test_nonsense_inputs_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
