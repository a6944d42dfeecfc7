"""The ledger's footprint per key at scale: the real engine over a generated source of N keys.

Each key shape runs in a child process (`python -m bench.footprint KEYS SHAPE`) whose TMPDIR is a fresh
directory, against moto in that process, through handler's public API only: `parse_config(...).dataset(name)`,
`handler.store.Store.sized` and `Engine(store, dataset)` with its `plan`, `copy_batch` and `finalize` steps, as
Step Functions calls them. A TmpWatch samples the directory (and the process's open, unlinked temp files)
every 5 ms during each step, so the /tmp figures are what the step really kept there, whatever the engine's
internals are; the state object and the manifest are measured by listing `_ingestion/<dataset>/`.

The steps, over the same N keys:

1. first run, plan: an empty state, every key planned;
2. first run, finalize, after every batch was copied: the landed table, the manifest and the state spools;
3. the next day, nothing new: the state loaded, nothing planned (such a run finalizes inside its plan);
4. every source object rewritten (new ETags), plan: the state and a full plan in one file.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.common import REGION, REPO, LedgerObjects, TmpWatch, clean_env

KEY_SHAPES: dict[str, Callable[[int, random.Random], str]] = {
    # like the generated many-small set: short, nested, sequential names
    "short": lambda i, rng: f"small/region={i % 8}/day={(i // 8) % 10:02d}/part-{i:06d}.csv",
    # a common lake layout: Hive folders and a random UUID file name, as Spark or Firehose write them
    "long": lambda i, rng: (
        f"small/year=2026/month=11/day={1 + i % 28:02d}/source=sensor-{i % 50:03d}/"
        f"part-{i % 1000:05d}-{rng.randbytes(16).hex()}.snappy.parquet"
    ),
}
DATASET, SOURCE, TARGET = "many-small", "bench-source", "bench-raw"
FIRST_RUN = date(2026, 11, 27)
# The sampler is a thread beside the engine: it gets the GIL every switch interval at the latest, so both are
# short, or a temp file that lives for a few milliseconds (the state spool of a small run) goes unseen.
SAMPLE_SECONDS = 0.001
SWITCH_INTERVAL_SECONDS = 0.0005
# moto spools an object bigger than this into a temp file, which would land in the sampled TMPDIR: keep them
# all in memory (the manifest of 20,000 long keys is ~11 MB).
MOTO_BUFFER = {"MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(1 << 30)}


def footprint(keys: int, shape: str, log: Callable[[str], None]) -> dict[str, Any]:
    """Run one key shape in its own process with its own TMPDIR; returns its measurements."""
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        env = clean_env(TMPDIR=tmp, **MOTO_BUFFER)
        cmd = [sys.executable, "-m", "bench.footprint", str(keys), shape]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"ledger footprint ({keys} {shape} keys) exited {proc.returncode}")
    result = json.loads(proc.stdout)
    log(
        f"    {keys} {shape} keys (~{result['avg_source_key_chars']:.0f} chars): state "
        f"{result['state_bytes'] / keys:.1f} B/key, /tmp peak {result['tmp_peak'] / keys:.0f} B/key "
        f"({result['seconds']:.0f} s)"
    )
    return result


def measure(keys: int, shape: str) -> dict[str, Any]:
    """The child process: every step of two runs and a third plan, each sampled on its own."""
    import boto3
    from moto import mock_aws

    from handler.config import parse_config
    from handler.runner import Engine
    from handler.store import Store

    started = time.monotonic()
    tmp = Path(tempfile.gettempdir())
    rng = random.Random(7)
    names = [KEY_SHAPES[shape](i, rng) for i in range(keys)]
    sizes = [rng.randint(1024, 20 * 1024) for _ in names]
    result: dict[str, Any] = {
        "keys": keys,
        "shape": shape,
        "example_key": names[-1],
        "avg_source_key_chars": sum(map(len, names)) / keys,
        "sample_seconds": SAMPLE_SECONDS,
    }
    config = parse_config(
        {
            "datasets": {
                DATASET: {
                    "source": {"bucket": SOURCE, "prefix": "small/"},
                    "target": {"bucket": TARGET, "prefix": "small/"},
                }
            }
        }
    )

    def step(label: str, action: Callable[[], Any]) -> Any:
        switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        try:
            with TmpWatch(tmp, pid=os.getpid(), interval=SAMPLE_SECONDS) as watch:
                value = action()
        finally:
            sys.setswitchinterval(switch)
        result[f"sqlite_{label}"] = watch.peak_named
        result[f"tmp_peak_{label}"] = watch.peak_total
        return value

    with mock_aws():
        session = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name=REGION)
        store = Store.sized(session)
        s3 = store.client
        s3.create_bucket(Bucket=SOURCE)
        s3.create_bucket(Bucket=TARGET)
        seed(s3, names, sizes, rng)
        engine = Engine(store, config.dataset(DATASET))

        # plan_all: the plan step and every shard's, in this process, as the state machine's Maps run them.
        plan = step("plan_first_run", lambda: engine.plan_all(run_date=FIRST_RUN))
        expect(plan["planned"] == keys and not plan["summary"], f"first plan: {plan}")
        for number in engine.ledger.batch_numbers(plan["run_id"]):
            engine.copy_batch(plan["run_id"], number)
        summary = step("finalize_first_run", lambda: engine.finalize(plan["run_id"])["summary"])
        expect((summary["status"], summary["copied"]) == ("succeeded", keys), f"first run: {summary}")

        ledger = LedgerObjects.listed(s3, TARGET, DATASET)
        result["state_bytes"] = ledger.state_bytes
        result["manifest_bytes"] = ledger.manifest_bytes
        parts = [s3.get_object(Bucket=TARGET, Key=key)["Body"].read() for key in ledger.state_keys]
        result["state_uncompressed_bytes"] = sum(len(gzip.decompress(part)) for part in parts)

        again = step("plan_nothing_new", lambda: engine.plan_all(run_date=FIRST_RUN + timedelta(days=1)))
        expect((again["summary"] or {}).get("status") == "nothing_new", f"second run: {again}")

        seed(s3, names, sizes, rng)  # new bytes under every key: every ETag changes
        changed = step("plan_all_changed", lambda: engine.plan_all(run_date=FIRST_RUN + timedelta(days=2)))
        expect(changed["planned"] == keys, f"third plan: {changed}")

    result["sqlite_peak"] = max(v for k, v in result.items() if k.startswith("sqlite_"))
    result["tmp_peak"] = max(v for k, v in result.items() if k.startswith("tmp_peak_"))
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def seed(s3: Any, names: list[str], sizes: list[int], rng: random.Random) -> None:
    for name, size in zip(names, sizes, strict=True):
        s3.put_object(Bucket=SOURCE, Key=name, Body=rng.randbytes(size))


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise RuntimeError(f"ledger footprint: unexpected {what[:1000]}")


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]), sys.argv[2])))
