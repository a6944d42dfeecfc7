"""The state machine's walk through the Lambda steps, each step a process of its own (one cold invocation).

Why processes: a Lambda invocation's limits (memory, /tmp, 15 minutes) apply per invocation, so each step
must be measured alone. The driver follows the answers, not a fixed list, so it works on today's flow and on
the sharded one being added:

- `plan`; when its answer has no `stage` (today): finalized if `batch_count` is 0, else copy its batches;
- `stage: "planning"`: `plan_shard` for each item of `answer["shards"]`, then `seal_plan`, whose answer has a
  stage again (`planning` repeats);
- `stage: "copying"`: `copy_batch` for each item of `answer["batches"]`, then `finalize_shard` for each item of
  `answer["final_shards"]` if there is one, then `finalize`;
- `stage: "finalized"`: done;
- a finalize (or finalized plan) answering `replan: true` plans again, as after a resumed run.

Lists of items are JSON arrays in S3 (`{"bucket", "key"}`), as a Distributed Map's ItemReader reads them;
each item plus `action` is the event. Up to `workers` steps of one list run at once, like a Map.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.scale.measure import Measured, run_measured

CHILD = Path(__file__).resolve().parent / "lambda_child.py"
MAX_ROUNDS = 50  # plan/seal rounds and replans in one night: a driver bug or a looping answer stops here


class StepFailed(RuntimeError):
    pass


@dataclass
class StepRun:
    action: str
    event: dict[str, Any]
    measured: Measured
    answer: dict[str, Any]

    def record(self) -> dict[str, Any]:
        return {"action": self.action, "event": self.event, **self.measured.figures()}


@dataclass
class StepDriver:
    repo: Path
    env: dict[str, str]
    tmp_root: Path
    s3: Any
    workers: int = 2
    log: Callable[[str], None] = lambda line: None
    runs: list[StepRun] = field(default_factory=list)
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, event: dict[str, Any]) -> StepRun:
        """One step in its own process, measured; raises StepFailed on an error answer."""
        with self._lock:
            self._count += 1
            number = self._count
        cmd = [sys.executable, str(CHILD), json.dumps(event)]
        env = dict(self.env, PYTHONPATH=str(self.repo))
        measured = run_measured(cmd, env, self.tmp_root / f"step-{number:05d}", cwd=self.repo)
        answer = measured.answer()
        if answer is None:
            answer = {"errorType": "NoAnswer", "errorMessage": measured.stderr[-2000:]}
        run = StepRun(str(event.get("action")), event, measured, answer)
        with self._lock:
            self.runs.append(run)
        if measured.returncode != 0 or "errorType" in answer:
            raise StepFailed(f"{event}: exit {measured.returncode}: {answer} {measured.stderr[-1500:]}")
        return run

    def fan_out(self, action: str, pointer: dict[str, str]) -> list[StepRun]:
        """Every item of the JSON list at `pointer` as one `action` step, `workers` at a time."""
        body = self.s3.get_object(Bucket=pointer["bucket"], Key=pointer["key"])["Body"].read()
        items = json.loads(body)
        self.log(f"    {action} x {len(items)}")
        with ThreadPoolExecutor(max(1, self.workers)) as pool:
            futures = [pool.submit(self.invoke, {**item, "action": action}) for item in items]
            errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise StepFailed(f"{len(errors)} of {len(items)} {action} steps failed; first: {errors[0]}")
        return [f.result() for f in futures]

    def night(self, dataset: str, date: str) -> list[dict[str, Any]]:
        """Drive one scheduled execution; returns the summaries of every run it finalized (resumed ones first)."""
        plan_event = {"action": "plan", "dataset": dataset, "date": date}
        answer = self.invoke(plan_event).answer
        summaries: list[dict[str, Any]] = []
        for _ in range(MAX_ROUNDS):
            stage = answer.get("stage")
            run_id = answer.get("run_id")
            if stage == "planning":
                self.fan_out("plan_shard", answer["shards"])
                answer = self.invoke({"action": "seal_plan", "dataset": dataset, "run_id": run_id}).answer
                continue
            if stage == "finalized" or (stage is None and not answer.get("batch_count")):
                final = answer
            else:
                if answer.get("batches"):
                    self.fan_out("copy_batch", answer["batches"])
                if answer.get("final_shards"):
                    self.fan_out("finalize_shard", answer["final_shards"])
                final = self.invoke({"action": "finalize", "dataset": dataset, "run_id": run_id}).answer
            if final.get("summary") is not None:
                summaries.append(final["summary"])
            if not final.get("replan"):
                return summaries
            answer = self.invoke(plan_event).answer
        raise StepFailed(f"no end after {MAX_ROUNDS} plan rounds; last answer {answer}")


def per_kind(runs: list[StepRun]) -> dict[str, dict[str, Any]]:
    """Per step kind: how many, the largest single invocation (each figure on its own) and the totals."""
    kinds: dict[str, dict[str, Any]] = {}
    for run in runs:
        m = run.measured
        k = kinds.setdefault(
            run.action,
            {"count": 0, "max_wall_s": 0.0, "max_cpu_s": 0.0, "max_rss_bytes": 0, "max_tmp_bytes": 0,
             "total_wall_s": 0.0, "total_cpu_s": 0.0},
        )  # fmt: skip
        k["count"] += 1
        k["max_wall_s"] = max(k["max_wall_s"], round(m.wall, 3))
        k["max_cpu_s"] = max(k["max_cpu_s"], round(m.cpu, 3))
        k["max_rss_bytes"] = max(k["max_rss_bytes"], m.peak_rss)
        k["max_tmp_bytes"] = max(k["max_tmp_bytes"], m.peak_tmp)
        k["total_wall_s"] = round(k["total_wall_s"] + m.wall, 3)
        k["total_cpu_s"] = round(k["total_cpu_s"] + m.cpu, 3)
    return kinds


def timed_night(driver: StepDriver, dataset: str, date: str) -> tuple[float, list[dict[str, Any]], str | None]:
    """(wall of the whole execution, summaries, error or None); the runs are in driver.runs."""
    start = time.perf_counter()
    try:
        summaries, error = driver.night(dataset, date), None
    except StepFailed as err:
        summaries, error = [], str(err)
    return time.perf_counter() - start, summaries, error
