"""The exactly-once fault campaign (issue 7): the real CLI through the fault proxy, night after bad night.

Each test is one setting, parametrized over seeded trials (FAULT_TRIALS, default 1; `make faults` runs 30). A
trial runs `python -m handler run` through the proxy, retries like an operator until exit 0, and then the
verifier judges the buckets and the ledger alone. A failure names the setting, the seed (replay it with
FAULT_SEED), every violation and the last CLI's output. docs/RELIABILITY.md lists the settings and their -k.

moto runs in this process (tests/e2e/cli_fixtures.py); rclone, where a setting also runs there, is started as
the bench starts it. Settings that need conditional writes (pauses past the TTL, concurrent runs, source races
that rely on CopySourceIfMatch) run on moto only: rclone ignores conditional writes, so the CLI runs there with
--allow-unprotected and promises nothing about concurrent runs.
"""

from __future__ import annotations

import re
import signal
import time
from datetime import date as Date
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli_fixtures import Stage, moto_server_fixture, stage_fixture  # noqa: F401 (fixtures)
from tests.faults.campaign import EXIT_IN_PROGRESS, EXIT_OK, FULL, Attempt, Trial, reap, trial, trial_params
from tests.faults.proxy import DELAY, ERROR_500, LOST_AFTER, RESET_BEFORE, RESET_BODY, SLOWDOWN, Fault, Rule
from tests.faults.servers import RCLONE_CREDENTIALS, rclone_server_fixture, s3_client  # noqa: F401 (fixture)
from tests.faults.verifier import kind_of

NIGHT = Date(2026, 5, 11)
RANDOM_RATES: dict[str, dict[Fault, float]] = {
    "SlowDown": {SLOWDOWN: 0.05},
    "InternalError": {ERROR_500: 0.05},
    "LostAfter": {LOST_AFTER: 0.04},
    "ResetBefore": {RESET_BEFORE: 0.04},
    "ResetBody": {RESET_BODY: 0.04},
    "Delay": {DELAY: 0.10},
    "mixed": {
        SLOWDOWN: 0.015,
        ERROR_500: 0.015,
        LOST_AFTER: 0.015,
        RESET_BEFORE: 0.015,
        RESET_BODY: 0.015,
        DELAY: 0.03,
    },
}
PROXY_DELAY = 0.3


def day(offset: int = 0) -> str:
    return (NIGHT + timedelta(days=offset)).isoformat()


def moto_trial(stage: Stage, setting: str, seed: int, **proxy_options: Any) -> Any:
    return trial(
        setting,
        seed,
        upstream=stage.url,
        s3=stage.s3,
        workdir=stage.workdir,
        buckets=(stage.source, stage.raw),
        **proxy_options,
    )


def rclone_trial(rclone_server: str, tmp_path: Path, setting: str, seed: int, **proxy_options: Any) -> Any:
    return trial(
        setting,
        seed,
        upstream=rclone_server,
        s3=s3_client(rclone_server, credentials=RCLONE_CREDENTIALS),
        workdir=tmp_path,
        server="rclone",
        credentials=RCLONE_CREDENTIALS,
        flags=("--allow-unprotected",),
        **proxy_options,
    )


def change_some(t: Trial, changed: int = 3, added: int = 2) -> None:
    """Between two nights: a few sources rewritten, a few new ones."""
    for key in t.rng.sample(t.source_keys(), changed):
        t.put_source(key)
    for n in range(added):
        t.put_source(f"movielens/ml-new/added-{n:02d}.csv")


# ---- (a) random faults at seeded rates ------------------------------------------------------------------------


def two_nights_under_random_faults(t: Trial, rates: dict[Fault, float]) -> None:
    """Night one lands everything, night two (full campaign only) the changes, both through a network that keeps
    failing."""
    first = t.seed_source()
    t.config(ttl=4)
    t.proxy.set_rates(rates)
    t.until_ok("--date", day(0), label="night 1")
    t.check(first)
    if not FULL:
        return
    before = t.snapshot()
    change_some(t)
    t.proxy.set_rates(rates)  # the operator's healing, if it happened, lasted one night only
    t.until_ok("--date", day(1), label="night 2")
    t.check(t.source_versions(), before=before)


@pytest.mark.parametrize(("kind", "seed"), trial_params("random", tuple(RANDOM_RATES), quick=("mixed",)))
def test_random_faults(stage: Stage, kind: str, seed: int) -> None:
    with moto_trial(stage, f"random-{kind}", seed, delay=PROXY_DELAY) as t:
        two_nights_under_random_faults(t, RANDOM_RATES[kind])


@pytest.mark.parametrize(("kind", "seed"), trial_params("rclone-random", tuple(RANDOM_RATES), quick=("mixed",)))
def test_random_faults_on_rclone(rclone_server: str, tmp_path: Path, kind: str, seed: int) -> None:
    with rclone_trial(rclone_server, tmp_path, f"rclone-random-{kind}", seed, delay=PROXY_DELAY) as t:
        two_nights_under_random_faults(t, RANDOM_RATES[kind])


# ---- (b) SIGKILL at random moments ----------------------------------------------------------------------------


def killed_then_retried(t: Trial) -> None:
    """One or two runs killed at a random request (forwarded or not) or a random time, then the operator."""
    objects = t.seed_source()
    t.config(ttl=2)
    for number in range(t.rng.choice([1, 1, 2])):
        proc = None
        if t.rng.random() < 0.75:
            # Somewhere in the whole run: plan, copies, commit. A run makes roughly 3 requests an object.
            at = t.rng.randint(1, 3 * len(objects) + 30)
            forwarded = t.rng.random() < 0.5
            rule = Rule(None if forwarded else ERROR_500, after=at - 1, times=1)
            arm, fired = t.signal_at(rule, signal.SIGKILL)
            proc = t.spawn("--date", day(0))
            arm(proc)
            attempt = t.finish(proc, f"killed run {number + 1}", f"SIGKILL at request {at}, forwarded={forwarded}")
            t.proxy.remove_rule(rule)
            attempt.note += "" if fired.is_set() else " (finished before it)"
        else:
            after = t.rng.uniform(0.3, 4.0)
            proc = t.spawn("--date", day(0))
            time.sleep(after)
            alive = proc.poll() is None
            if alive:
                proc.send_signal(signal.SIGKILL)
            t.finish(proc, f"killed run {number + 1}", f"SIGKILL after {after:.2f}s" + ("" if alive else " (too late)"))
    t.until_ok("--date", day(0), label="after the kill")
    t.check(objects)


@pytest.mark.parametrize("seed", trial_params("kill", quick=True))
def test_sigkill_at_a_random_moment(stage: Stage, seed: int) -> None:
    with moto_trial(stage, "kill", seed) as t:
        killed_then_retried(t)


@pytest.mark.parametrize("seed", trial_params("rclone-kill", quick=True))
def test_sigkill_at_a_random_moment_on_rclone(rclone_server: str, tmp_path: Path, seed: int) -> None:
    with rclone_trial(rclone_server, tmp_path, "rclone-kill", seed) as t:
        killed_then_retried(t)


# ---- (c) SIGSTOP past the lock's TTL, a second run in between -------------------------------------------------


def pause_rule(t: Trial, phase: str, objects: int) -> tuple[Rule, str]:
    """Where in the run the pause falls, seeded: a request of that phase."""
    ledger = "_ingestion/movielens/"
    if phase == "plan":
        choices = [
            ("ListObjectsV2", t.source, None, "listing the source"),
            ("PutObject", t.raw, re.compile(r"/work/[^/]+/batches/"), "storing a batch"),
            ("PutObject", t.raw, ledger + "open-run.json", "storing the open run"),
        ]
    elif phase == "copy":
        nth = t.rng.randint(0, objects - 1)
        rule = Rule(None, operation="CopyObject", key="ingest_date=", after=nth, times=1)
        return rule, f"the copy #{nth + 1}"
    else:
        choices = [
            ("PutObject", t.raw, ledger + "manifest/", "writing the manifest"),
            ("PutObject", t.raw, ledger + "state/", "writing the state"),
            ("PutObject", t.raw, ledger + "summary/", "writing the summary"),
            ("PutObject", t.raw, ledger + "last-run.json", "writing last-run.json"),
            ("DeleteObject", t.raw, ledger + "open-run.json", "deleting the open run"),
        ]
    operation, bucket, key, what = t.rng.choice(choices)
    return Rule(None, operation=operation, bucket=bucket, key=key, times=1), what


def paused_past_ttl(t: Trial, phase: str) -> None:
    objects = t.seed_source()
    t.config(ttl=2)
    rule, where = pause_rule(t, phase, len(objects))
    arm, stopped = t.signal_at(rule, signal.SIGSTOP)
    first = t.spawn("--date", day(0))
    second = None
    try:
        arm(first)
        deadline = time.monotonic() + 60
        while not stopped.wait(0.05) and first.poll() is None and time.monotonic() < deadline:
            pass
        if not stopped.is_set():
            t.finish(first, "first run", f"never paused at {where}")
            t.problems.append(f"setup: the first run never reached {where}")
            t.check()
            return
        time.sleep(t.ttl + 0.5)  # frozen: its heartbeat cannot renew, the lock expires
        second = t.spawn("--date", day(1))
        resume = t.rng.choice(["when the second holds the lock", "after the second's copies began", "after it ends"])
        deadline = time.monotonic() + 120  # only bounds a hung second run; no trial is judged by its speed
        if resume == "when the second holds the lock":
            while t.lock_owner_pid() != second.pid and second.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        elif resume == "after the second's copies began":
            copies = len(t.proxy.requests("CopyObject"))
            while (
                len(t.proxy.requests("CopyObject")) < copies + 3
                and second.poll() is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
        else:
            second.wait(timeout=120)
        first.send_signal(signal.SIGCONT)
        t.finish(second, "second run", f"started while the first was paused at {where}")
        t.finish(first, "first run", f"paused at {where} past the TTL, continued {resume}")
    finally:
        reap(first, *([second] if second else []))
    t.until_ok("--date", day(2), label="third run")
    t.check(t.source_versions())


@pytest.mark.parametrize(("phase", "seed"), trial_params("pause", ("plan", "copy", "finalize"), quick=True))
def test_sigstop_past_the_lock_ttl_then_a_second_run(stage: Stage, phase: str, seed: int) -> None:
    with moto_trial(stage, f"pause-{phase}", seed) as t:
        paused_past_ttl(t, phase)


# ---- (d) races ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutation", "seed"), trial_params("race", ("deleted", "overwritten", "added"), quick=("overwritten",))
)
def test_the_source_changes_between_listing_and_copy(stage: Stage, mutation: str, seed: int) -> None:
    """The proxy holds the runtime's HEAD or CopyObject of an object while the test changes the source, so the
    change falls exactly between the listing and the copy."""
    with moto_trial(stage, f"race-{mutation}", seed) as t:
        t.seed_source()
        t.config(ttl=4)
        victims = t.rng.sample(t.source_keys(), t.rng.randint(1, 3))
        for n, key in enumerate(victims):
            name = key.rsplit("/", 1)[1]
            operation, bucket, matcher = t.rng.choice(
                [("HeadObject", t.source, re.compile(re.escape(key) + "$")), ("CopyObject", t.raw, "/" + name)]
            )

            def mutate(request: Any, key: str = key, n: int = n) -> None:
                if mutation == "deleted":
                    t.s3.delete_object(Bucket=t.source, Key=key)
                elif mutation == "overwritten":
                    t.put_source(key, f"rewritten between listing and copy {n}\n".encode())
                else:
                    t.put_source(f"{key.rsplit('/', 1)[0]}/arrived-mid-run-{n}.csv")

            t.proxy.add_rule(Rule(DELAY, operation=operation, bucket=bucket, key=matcher, delay=0.1, action=mutate))
        t.run("--date", day(0), label="the raced run")
        t.until_ok("--date", day(0), label="operator")
        t.check(t.source_versions())


@pytest.mark.parametrize("seed", trial_params("together", quick=True))
def test_two_runs_started_together(stage: Stage, seed: int) -> None:
    with moto_trial(stage, "together", seed, delay=0.05, rates={DELAY: 0.2}) as t:
        objects = t.seed_source()
        t.config(ttl=4)
        procs = [t.spawn("--date", day(0))]
        time.sleep(t.rng.uniform(0, 0.5))
        procs.append(t.spawn("--date", day(0)))
        try:
            done = [t.finish(proc, f"run {n + 1} of two") for n, proc in enumerate(procs)]
        finally:
            reap(*procs)
        codes = sorted(a.returncode for a in done)
        if codes not in ([EXIT_OK, EXIT_IN_PROGRESS], [EXIT_OK, EXIT_OK]):
            t.problems.append(f"exit: two runs started together exited {codes}, not one 0 and one 3 (or two 0s)")
        t.proxy.clear()
        t.until_ok("--date", day(0), label="operator")
        t.check(objects)


@pytest.mark.parametrize("seed", trial_params("dates"))
def test_same_date_reruns_and_backfills_never_touch_earlier_landings(stage: Stage, seed: int) -> None:
    with moto_trial(stage, "dates", seed, delay=PROXY_DELAY, rates=RANDOM_RATES["mixed"]) as t:
        first = t.seed_source()
        t.config(ttl=4)
        t.until_ok("--date", day(1), label="night of day 1")
        t.check(first)
        before = t.snapshot()
        change_some(t)
        t.until_ok("--date", day(1), label="re-run of day 1")  # changed files must not replace day 1's landings
        t.check(before=before)
        before = t.snapshot()
        change_some(t)
        t.until_ok("--date", day(0), label="backfill of day 0")
        t.check(before=before)
        before = t.snapshot()
        t.until_ok("--date", day(2), label="night of day 2")
        t.check(t.source_versions(), before=before)


@pytest.mark.parametrize("seed", trial_params("doubled-slash", quick=True))
def test_a_doubled_slash_key_never_overwrites_the_single_slash_landing(stage: Stage, seed: int) -> None:
    """`a//b.csv` renders to the same target as `a/b.csv`: the earlier landing must stay, the new one land later."""
    with moto_trial(stage, "doubled-slash", seed) as t:
        t.seed_source(t.rng.randint(5, 15))
        t.put_source("movielens/a/b.csv", b"the single-slash file\n")
        t.config(ttl=4)
        t.until_ok("--date", day(0), label="night 1")
        before = t.snapshot()
        t.put_source("movielens/a//b.csv", b"the doubled-slash file\n")
        same = t.run("--date", day(0), label="same-date re-run")
        t.check(before=before, settled=same.returncode in (0, 1))
        t.until_ok("--date", day(1), label="next night")
        t.check(t.source_versions(), before=before)


def test_trials_report_their_seed_setting_violations_and_output(stage: Stage) -> None:
    """The campaign's failure report is the only thing a person gets from a failed night: it must name it all."""
    with moto_trial(stage, "report", 42) as t:
        t.attempts.append(Attempt("night 1 #1", ["python", "-m", "handler", "run"], 1, '{"status": "partial"}', "boom"))
        t.attempts.append(Attempt("night 1 #2", ["python", "-m", "handler", "run"], 0, '{"status": "ok"}', "fine"))
        t.problems.append("liveness: made up for this test")
        t.s3.put_object(Bucket=t.raw, Key="movielens/stray.csv", Body=b"no lineage")
        violations = t.verdict({"movielens/never.csv": "0" * 32})
        report = t.report(violations)
    assert kind_of(violations[0]) == "liveness"
    assert {"orphan", "lineage", "lost"} <= {kind_of(v) for v in violations}
    assert "setting report on moto, seed 42" in report
    assert "FAULT_SEED=42" in report
    assert all(v in report for v in violations)
    assert "night 1 #1: exit 1; night 1 #2: exit 0" in report
    assert 'its stdout: {"status": "partial"}' in report and "its stderr:\nboom" in report
    assert 'last stdout: {"status": "ok"}' in report
    assert report.endswith("fine")
