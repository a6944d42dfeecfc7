"""One trial of the fault campaign: a seeded dataset, the real CLI through the fault proxy, an operator who runs
it again until it exits 0, and a verdict from the buckets and the ledger alone.

A trial is what a person would do on a bad night: the network throttles, drops answers and resets connections;
the machine dies or freezes; someone starts a second run; the source changes underfoot. Afterwards the raw bucket
must hold every version exactly once, the ledger must say so, and nothing landed earlier may have changed.

Trials are reproducible from their seed: the dataset, the config, the fault sequence and the moments of kills
and pauses all come from `random.Random(seed)`. The CLI's own concurrency makes the order of requests, and so the
exact fault sequence, vary a little between replays; the seed still reproduces the kind of night.

Environment: FAULT_TRIALS (trials per setting; unset, as in `make test`, only the quick settings run, once each;
`make faults` runs 30 of every setting), FAULT_SEED (replay one seed in every selected setting), FAULT_ATTEMPTS
(the operator's patience under faults), FAULT_RUNTIME (the checkout whose handler/ the CLI runs),
FAULT_STORM_LONG (run the 3-minute throttling-storm measurement) and FAULT_STORM_REPORT (a file the storm
settings append their measurements to, one JSON line each).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, write_config
from tests.e2e.cli_fixtures import CLI_TIMEOUT, child_env
from tests.faults.proxy import FaultProxy, Request, Rule
from tests.faults.s3model import NOT_MD5, S3Model, checksum, describe
from tests.faults.servers import MOTO_CREDENTIALS, Credentials, s3_client
from tests.faults.verifier import LEDGER_ROOT, Snapshot, overwritten, snapshot, verify

SKEWED_CLOCK = Path(__file__).parent / "skewed_clock"
"""A folder whose sitecustomize.py moves a child's wall clock by FAULT_CLOCK_OFFSET seconds."""

DATASET = "movielens"
TRIALS = int(os.environ.get("FAULT_TRIALS") or 1)
"""Trials per setting (`make faults`: 30)."""
REPLAY = os.environ.get("FAULT_SEED")
FAULTY_ATTEMPTS = int(os.environ.get("FAULT_ATTEMPTS") or 6)
"""How often the operator retries while the network is still bad."""
HEALED_ATTEMPTS = 2
"""Then the network heals (faults off) and the operator tries this many more times."""
RUNTIME = Path(os.environ.get("FAULT_RUNTIME") or REPO)
"""The checkout whose `handler/` the CLI runs (default: this one), e.g. a `git worktree` of an older commit to
see which findings a change fixed."""
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_IN_PROGRESS = 0, 1, 2, 3


FULL = bool(os.environ.get("FAULT_TRIALS") or REPLAY)
"""Without FAULT_TRIALS (plain `make test`) only the quick settings run, one trial each: the whole package must
stay within about 90 s of the suite. `make faults` sets FAULT_TRIALS and runs every setting."""
FULL_ONLY = "full campaign only: `make faults` (or FAULT_TRIALS=N) runs this setting"


def versions_in(s3: Any, bucket: str) -> dict[str, str]:
    """What a bucket holds now: key -> ETag (unquoted)."""
    paginator = s3.get_paginator("list_objects_v2")
    return {
        o["Key"]: o["ETag"].strip('"') for page in paginator.paginate(Bucket=bucket) for o in page.get("Contents", [])
    }


def seeds(setting: str, *, quick: bool = False) -> list[int]:
    """The trials' seeds of one setting, stable across runs (so a failure's seed names the same night next time).

    FAULT_SEED replays one seed; otherwise FAULT_TRIALS seeds, or one for a quick setting when it is unset.
    """
    if REPLAY:
        return [int(REPLAY)]
    if not FULL and not quick:
        return []
    base = zlib.crc32(setting.encode()) % 9000 + 1000
    return [base * 1000 + n for n in range(TRIALS)]


def trial_params(setting: str, variants: tuple[str, ...] = (), quick: tuple[str, ...] | bool = False) -> list[Any]:
    """pytest params `(variant, seed)` (or `seed` alone without variants), with ids `variant-seed`; a setting
    that has no trials in this mode appears once, skipped with FULL_ONLY, so a reader sees it exists."""
    params = []
    for variant in variants or (None,):
        name = f"{setting}-{variant}" if variant else setting
        is_quick = quick if isinstance(quick, bool) else variant in quick
        values: tuple[Any, ...] = (variant,) if variant else ()
        prefix = f"{variant}-" if variant else ""
        found = seeds(name, quick=is_quick)
        params += [pytest.param(*values, seed, id=f"{prefix}{seed}") for seed in found]
        if not found:
            params.append(pytest.param(*values, 0, id=f"{prefix}full-only", marks=pytest.mark.skip(reason=FULL_ONLY)))
    return params


@dataclass
class Attempt:
    """One CLI run: what the operator saw."""

    label: str
    argv: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    note: str = ""

    def summary(self) -> str:
        return f"{self.label}: exit {self.returncode}{f' ({self.note})' if self.note else ''}"

    def answer(self) -> dict[str, Any] | None:
        """The --json answer, when stdout is exactly one JSON object."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        try:
            document = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            return None
        return document if isinstance(document, dict) else None


@dataclass
class Trial:
    """One seeded night against one server, through one proxy."""

    setting: str
    seed: int
    server: str
    """"moto" or "rclone": for the report."""
    proxy: FaultProxy
    s3: Any
    """Straight to the server (never through the proxy): seeding, mutating, verifying."""
    source: str
    raw: str
    workdir: Path
    credentials: Credentials = MOTO_CREDENTIALS
    flags: tuple[str, ...] = ()
    rng: random.Random = field(init=False)
    attempts: list[Attempt] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Campaign-level findings besides the verifier's (liveness, unexpected exit codes)."""
    ttl: int = 4
    config_path: Path | None = None
    server_s3: Any = None
    """Straight to the server, past the model too (moto's own view: backdating, its MD5 ETags)."""
    cli_timeout: float = CLI_TIMEOUT
    """Seconds before a CLI run counts as hung (a long storm measurement raises it)."""
    clock_offset: float = 0.0
    """The CLI's machine clock, seconds off the real one (`spawn(clock_offset=...)` for one run)."""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        print(f"fault trial {self.setting} on {self.server}: seed {self.seed}")

    # ---- the dataset --------------------------------------------------------------------------------------------

    def seed_source(self, count: int | None = None) -> dict[str, str]:
        """40-60 small objects (40 in quick mode; a few empty) with unique names in a few folders; returns
        key -> ETag."""
        count = count if count is not None else (self.rng.randint(40, 60) if FULL else 40)
        folders = ["ml-a", "ml-b", "ml-c/sub"]
        for n in range(count):
            key = f"movielens/{self.rng.choice(folders)}/part-{n:03d}.csv"
            self.put_source(key)
        return self.source_versions()

    def put_source(self, key: str, body: bytes | None = None) -> str:
        """A new version of one source object (random bytes unless given); returns its ETag."""
        if body is None:
            size = 0 if self.rng.random() < 0.05 else self.rng.randint(1, 3000)
            body = f"{key}\n".encode() + self.rng.randbytes(size)
        return self.s3.put_object(Bucket=self.source, Key=key, Body=body)["ETag"].strip('"')

    def source_versions(self) -> dict[str, str]:
        """What the source holds now: key -> ETag (unquoted)."""
        return versions_in(self.s3, self.source)

    def source_keys(self) -> list[str]:
        return sorted(self.source_versions())

    def config(self, ttl: int | None = None, **overrides: Any) -> Path:
        """A seeded config: concurrency and batch size vary per trial, the lock TTL is short to keep waits short."""
        self.ttl = ttl if ttl is not None else self.ttl
        fields = {
            "concurrency": self.rng.choice([1, 4, 8]),
            "batch_max_objects": self.rng.choice([7, 20, 1000]),
            "lock_ttl_seconds": self.ttl,
            **overrides,
        }
        self.config_path = write_config(self.workdir / "config.json", self.source, self.raw, DATASET, **fields)
        return self.config_path

    # ---- running the CLI ----------------------------------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        assert self.config_path is not None, "call config() first"
        return [
            sys.executable,
            "-m",
            "handler",
            "run",
            "--config",
            str(self.config_path),
            "--dataset",
            DATASET,
            "--endpoint-url",
            self.proxy.url,
            "--json",
            *self.flags,
            *args,
        ]

    def env(self, clock_offset: float | None = None) -> dict[str, str]:
        env = child_env(self.credentials.env())
        offset = self.clock_offset if clock_offset is None else clock_offset
        if offset:
            env["FAULT_CLOCK_OFFSET"] = str(offset)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SKEWED_CLOCK), env.get("PYTHONPATH")) if p)
        return env

    def spawn(self, *args: str, clock_offset: float | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            cwd=RUNTIME,
            env=self.env(clock_offset),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, proc: subprocess.Popen[str], label: str, note: str = "") -> Attempt:
        """Wait for a spawned run and record it as an attempt."""
        try:
            out, err = proc.communicate(timeout=self.cli_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=30)
            note = (note + "; " if note else "") + f"hung: killed after {self.cli_timeout:.0f}s"
            self.problems.append(f"liveness: {label} hung for {self.cli_timeout:.0f}s")
        attempt = Attempt(label, list(proc.args), proc.returncode, out, err, note)  # type: ignore[arg-type]
        self.attempts.append(attempt)
        return attempt

    def run(self, *args: str, label: str = "run") -> Attempt:
        return self.finish(self.spawn(*args), label)

    def until_ok(self, *args: str, label: str = "retry") -> Attempt:
        """The operator: run again until exit 0, waiting out a lock after exit 3; faults stay on for
        FAULTY_ATTEMPTS runs, then the network heals for HEALED_ATTEMPTS more. Never reaching 0 is a finding."""
        attempt: Attempt | None = None
        for number in range(FAULTY_ATTEMPTS + HEALED_ATTEMPTS):
            if number == FAULTY_ATTEMPTS:
                self.proxy.clear()
                self.problems.append(
                    f"liveness: no exit 0 after {FAULTY_ATTEMPTS} runs under faults "
                    f"(exits {[a.returncode for a in self.attempts]}); the network was healed"
                )
            if attempt is not None and attempt.returncode == EXIT_IN_PROGRESS:
                self.wait_out_lock()
            attempt = self.run(*args, label=f"{label} #{number + 1}")
            if attempt.returncode == EXIT_OK:
                return attempt
        assert attempt is not None
        self.problems.append(f"liveness: no exit 0 even after the network healed; last: {attempt.summary()}")
        return attempt

    def wait_out_lock(self) -> None:
        """Sleep until the dataset's lock (if any) has expired, by its own `expires_at`, at most a TTL and a bit."""
        key = f"{LEDGER_ROOT}{DATASET}/lock.json"
        try:
            document = json.loads(self.s3.get_object(Bucket=self.raw, Key=key)["Body"].read())
            expires_at = float(document.get("expires_at", 0))
        except Exception:  # no lock, or not a lock we can read: a short pause is all that is sensible
            expires_at = time.time()
        time.sleep(min(max(0.0, expires_at - time.time()), self.ttl + 1.0) + 0.3)

    def lock_owner_pid(self) -> int | None:
        """The pid in the lock's owner (`host:pid`), for telling which of two runs holds it."""
        try:
            body = self.s3.get_object(Bucket=self.raw, Key=f"{LEDGER_ROOT}{DATASET}/lock.json")["Body"].read()
            return int(str(json.loads(body).get("owner", "")).rsplit(":", 1)[-1])
        except Exception:
            return None

    # ---- hooks into a running CLI -------------------------------------------------------------------------------

    def signal_at(self, rule: Rule, signum: int) -> tuple[Callable[[subprocess.Popen[str]], None], threading.Event]:
        """Make `rule` send `signum` to a process when it matches; returns (arm with the process, fired event).

        The signal is sent from the proxy while it holds the matching request, before forwarding it: the process
        stops or dies with that request sent and its answer not yet read.
        """
        target: list[subprocess.Popen[str]] = []
        armed, fired = threading.Event(), threading.Event()
        previous = rule.action

        def act(request: Request) -> None:
            if armed.wait(30) and target[0].poll() is None:
                os.kill(target[0].pid, signum)
                fired.set()
            if previous is not None:
                previous(request)

        rule.action = act
        self.proxy.add_rule(rule)

        def arm(proc: subprocess.Popen[str]) -> None:
            target.append(proc)
            armed.set()

        return arm, fired

    # ---- the verdict --------------------------------------------------------------------------------------------

    @property
    def opaque_etags(self) -> bool:
        """Whether the model gives the source or the raw bucket ETags that are not MD5s (KMS, DSSE, SSE-C)."""
        model = self.proxy.model
        return model is not None and any(
            (e := model.encryption.get(b)) is not None and e.algorithm in NOT_MD5 for b in (self.source, self.raw)
        )

    def checksums(self) -> list[str]:
        """Every landed object whose source still holds the version it claims: its checksum, as S3 answers it
        (HEAD with checksum mode, through the model), must be that of the source's bytes. A landing whose bytes
        are right but whose checksum is not (`S3Model.corrupt`) is what a copy must never count as copied."""
        problems = []
        source = versions_in(self.s3, self.source)
        for key, (_, lineage) in sorted(self.snapshot().items()):
            source_key, source_etag = lineage.get("ingest-source-key"), lineage.get("ingest-source-etag")
            if not source_key or source.get(source_key) != source_etag:
                continue
            head = self.s3.head_object(Bucket=self.raw, Key=key, ChecksumMode="ENABLED")
            algorithm = next((n[8:] for n in head if n.startswith("Checksum") and n != "ChecksumType"), None)
            if algorithm is None:
                problems.append(f"checksum: {key!r} answers no checksum")
                continue
            body = self.s3.get_object(Bucket=self.source, Key=source_key)["Body"].read()
            if head[f"Checksum{algorithm}"] != checksum(algorithm, body):
                problems.append(
                    f"checksum: {key!r} has {algorithm} {head[f'Checksum{algorithm}']}, but its source "
                    f"{source_key!r} (ETag {source_etag}) has {checksum(algorithm, body)}"
                )
        return problems

    def failed_objects(self, attempt: Attempt) -> int | None:
        """How many objects a run reported failed (its --json answer, or the sum over its runs), None if it gave no
        such answer."""
        answer = attempt.answer() or {}
        if isinstance(answer.get("failed"), int):
            return int(answer["failed"])
        runs = answer.get("runs")
        if not isinstance(runs, list):
            return None
        return sum(int(run.get("failed") or 0) for run in runs if isinstance(run, dict))

    def snapshot(self) -> Snapshot:
        return snapshot(self.s3, self.raw)

    def rewrites(self) -> list[str]:
        """From the proxy's record of applied writes: a landed key written by two different copies while the
        first was still there. A retransmitted request (same metadata) is not a second copy; a copy the runtime
        deleted again (a failed verification) does not count as overwritten by the next."""
        present: dict[str, dict[str, str]] = {}
        problems = []
        for applied in self.proxy.applied:
            if applied.bucket != self.raw or not applied.key or applied.key.startswith(LEDGER_ROOT):
                continue
            if applied.operation == "DeleteObject":
                present.pop(applied.key, None)
                continue
            earlier = present.get(applied.key)
            if earlier is not None and earlier != applied.meta:
                problems.append(
                    f"overwritten: {applied.key!r} landed by run {earlier.get('ingest-run-id')} "
                    f"({earlier.get('ingest-source-key')} ETag {earlier.get('ingest-source-etag')}) was overwritten "
                    f"by a {applied.operation} of run {applied.meta.get('ingest-run-id')} "
                    f"({applied.meta.get('ingest-source-key')} ETag {applied.meta.get('ingest-source-etag')})"
                )
            present[applied.key] = applied.meta
        return problems

    def verdict(
        self,
        expected: Mapping[str, str] | None = None,
        *,
        settled: bool | None = None,
        before: Snapshot | None = None,
    ) -> list[str]:
        """Every violation found, the campaign's own findings first. `settled` defaults to "the last run
        exited 0"."""
        if settled is None:
            settled = bool(self.attempts) and self.attempts[-1].returncode == EXIT_OK
        violations = list(self.problems)
        violations += verify(
            self.s3,
            self.source,
            self.raw,
            DATASET,
            expected=expected,
            settled=settled,
            check_bytes=self.proxy.model is not None,
            etags_are_md5=not self.opaque_etags,
            checksum_verified=self.proxy.model is not None,
        )
        violations += self.rewrites()
        if self.proxy.model is not None:
            violations += self.checksums()
        if before is not None:
            violations += overwritten(before, self.snapshot())
        return list(dict.fromkeys(violations))  # the same finding from two checks once

    def check(
        self,
        expected: Mapping[str, str] | None = None,
        *,
        settled: bool | None = None,
        before: Snapshot | None = None,
    ) -> None:
        """Fail the test with a report that is enough to start debugging from."""
        violations = self.verdict(expected, settled=settled, before=before)
        if violations:
            pytest.fail(self.report(violations), pytrace=False)

    def report(self, violations: list[str]) -> str:
        current = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
        selector = current.split("::")[-1] if current else self.setting
        last = self.attempts[-1] if self.attempts else None
        shown = violations[:40]
        lines = [
            f"setting {self.setting} on {self.server}, seed {self.seed}: {len(violations)} violation(s)",
            f"replay: FAULT_SEED={self.seed} .venv/bin/python -m pytest tests/faults/test_campaign.py -k '{selector}'",
            *(f"  - {v}" for v in shown),
            *([f"  ... and {len(violations) - len(shown)} more"] if len(violations) > len(shown) else []),
            "attempts: " + "; ".join(a.summary() for a in self.attempts),
            "faults injected: "
            + (", ".join(f"{f}/{op} x{n}" for (f, op), n in sorted(self.proxy.injected.items())) or "none"),
            *([f"S3 model: {describe(self.proxy.model)}"] if self.proxy.model is not None else []),
        ]
        failed = next((a for a in reversed(self.attempts) if a.returncode != EXIT_OK), None)
        if failed is not None and failed is not last:
            lines += [
                f"last failed CLI ({failed.summary()}): {' '.join(failed.argv[1:])}",
                "its stdout: " + (failed.stdout.strip()[-2000:] or "(empty)"),
                "its stderr:\n" + (failed.stderr.strip()[-3000:] or "(empty)"),
            ]
        if last is not None:
            lines += [
                f"last CLI ({last.summary()}): {' '.join(last.argv[1:])}",
                "last stdout: " + (last.stdout.strip()[-3000:] or "(empty)"),
                "last stderr:\n" + (last.stderr.strip()[-4000:] or "(empty)"),
            ]
        return "\n".join(lines)


@contextmanager
def trial(
    setting: str,
    seed: int,
    *,
    upstream: str,
    s3: Any,
    workdir: Path,
    server: str = "moto",
    credentials: Credentials = MOTO_CREDENTIALS,
    flags: tuple[str, ...] = (),
    buckets: tuple[str, str] | None = None,
    model: S3Model | None = None,
    **proxy_options: Any,
) -> Iterator[Trial]:
    """A trial behind a fresh proxy; `buckets` (source, raw) are made here when not given. Any CLI left running
    by a failed trial is killed (and continued, if it was stopped) on the way out.

    With a `model` (s3model.py) the server answers as S3 would, and the trial's own client (seeding, mutating,
    verifying) sees the same S3 through a second, faultless proxy sharing the model; `Trial.server_s3` is the
    server itself."""
    if buckets is None:
        suffix = uuid.uuid4().hex[:10]
        buckets = (f"source-{suffix}", f"raw-{suffix}")
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket)
    with FaultProxy(upstream, seed=seed, model=model, **proxy_options) as proxy:
        if model is None:
            running = Trial(setting, seed, server, proxy, s3, *buckets, workdir, credentials, flags, server_s3=s3)
            yield running
            return
        with FaultProxy(upstream, model=model) as clean:
            view = s3_client(clean.url, credentials=credentials, response_checksum_validation="when_required")
            running = Trial(setting, seed, server, proxy, view, *buckets, workdir, credentials, flags, server_s3=s3)
            yield running


def reap(*procs: subprocess.Popen[str]) -> None:
    """Whatever a failed trial left running: continued (if stopped) and killed."""
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGCONT)
            except ProcessLookupError:
                pass
            proc.kill()
            proc.communicate(timeout=30)


def direct_client(url: str, credentials: Credentials = MOTO_CREDENTIALS) -> Any:
    return s3_client(url, credentials=credentials)
