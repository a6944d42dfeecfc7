"""Rules AWS enforces on a state machine definition that asl-validator does not check, as pure functions.

Each rule returns what breaks it (empty: the definition keeps it), so a test can also show it rejecting a
broken copy. The facts behind them, and where AWS documents them: docs/step-functions-offline.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from infra.workflow_definition import LAMBDA_INVOKE, TASK_TIMEOUT_MARGIN_SECONDS

MAX_STATE_NAME_CHARACTERS = 80
MAX_DEFINITION_BYTES = 1_048_576
MAX_PAYLOAD_BYTES = 262_144
"""Step Functions' quota on a task's, state's or execution's input or output: 256 KiB as UTF-8 bytes."""
MAX_EXECUTION_SECONDS = 365 * 24 * 3600
"""A Standard execution may run for a year."""
DEFAULT_MAX_ATTEMPTS = 3
"""A retrier without MaxAttempts retries three times."""

State = Mapping[str, Any]


def scopes(machine: State, where: str = "the top level") -> Iterator[tuple[str, State]]:
    """Every object holding `StartAt` and `States`, with where it is: the machine itself, each Map's ItemProcessor
    (or Iterator) and each Parallel branch, nested to any depth."""
    yield where, machine
    for name, state in machine.get("States", {}).items():
        if state.get("Type") == "Map":
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor is not None:
                yield from scopes(processor, f"{name}'s item processor")
        elif state.get("Type") == "Parallel":
            for number, branch in enumerate(state.get("Branches", [])):
                yield from scopes(branch, f"{name}'s branch {number}")


def states(machine: State) -> Iterator[tuple[str, State]]:
    """Every state of the machine, nested ones included, with its name."""
    for _, scope in scopes(machine):
        yield from scope.get("States", {}).items()


def invokes_lambda(state: State) -> bool:
    resource = str(state.get("Resource", ""))
    return state.get("Type") == "Task" and (resource.startswith(LAMBDA_INVOKE) or ":lambda:" in resource)


def duplicate_state_names(machine: State) -> list[str]:
    """Names used by more than one state: AWS wants them unique across the whole machine, nested states included."""
    seen: set[str] = set()
    twice: list[str] = []
    for name, _ in states(machine):
        if name in seen and name not in twice:
            twice.append(name)
        seen.add(name)
    return twice


def long_state_names(machine: State) -> list[str]:
    return [name for name, _ in states(machine) if len(name) > MAX_STATE_NAME_CHARACTERS]


def tasks_without_timeout(machine: State) -> list[str]:
    """Tasks without their own TimeoutSeconds: Step Functions would wait for them for up to a year."""
    return [
        name
        for name, state in states(machine)
        if state.get("Type") == "Task" and not isinstance(state.get("TimeoutSeconds"), int)
    ]


def lambda_tasks_timing_out_first(machine: State, function_timeout_seconds: int) -> list[str]:
    """Lambda Tasks whose timeout is not the function's timeout plus the margin: `States.Timeout` would fire while
    the function still runs (and a retry would run beside it), instead of the function's own timeout."""
    least = function_timeout_seconds + TASK_TIMEOUT_MARGIN_SECONDS
    found = []
    for name, state in states(machine):
        timeout = state.get("TimeoutSeconds")
        if invokes_lambda(state) and not (isinstance(timeout, int) and timeout >= least):
            found.append(f"{name} ({timeout} s < {least} s)")
    return found


def execution_timeout_problems(machine: State) -> list[str]:
    """The execution's own TimeoutSeconds: present, longer than any one step, and at most a year."""
    timeout = machine.get("TimeoutSeconds")
    if not isinstance(timeout, int):
        return ["no top-level TimeoutSeconds: a stuck execution would run for a year"]
    steps = [state["TimeoutSeconds"] for _, state in states(machine) if isinstance(state.get("TimeoutSeconds"), int)]
    longest = max(steps, default=0)
    problems = []
    if timeout <= longest:
        problems.append(f"TimeoutSeconds {timeout} s does not exceed the longest step's {longest} s")
    if timeout > MAX_EXECUTION_SECONDS:
        problems.append(f"TimeoutSeconds {timeout} s exceeds the year a Standard execution may run")
    return problems


def deployed_bytes(machine: State) -> int:
    """The definition's size as the stack deploys it (infra/workflow.py: json.dumps)."""
    return len(json.dumps(machine).encode("utf-8"))


def oversized_item_batchers(machine: State) -> list[str]:
    """Maps with an ItemBatcher that may hand a child more than the 256 KiB a state's input may hold."""
    found = []
    for name, state in states(machine):
        batcher = state.get("ItemBatcher")
        if state.get("Type") == "Map" and batcher is not None:
            size = batcher.get("MaxInputBytesPerBatch")
            if not isinstance(size, int) or size > MAX_PAYLOAD_BYTES:
                found.append(f"{name} (MaxInputBytesPerBatch {size})")
    return found


def dangling_transitions(machine: State) -> list[str]:
    """StartAt, Next, Default and Catch Next naming no state of their own scope (a Map's children cannot leave it)."""
    found = []
    for where, scope in scopes(machine):
        names = set(scope.get("States", {}))
        if scope.get("StartAt") not in names:
            found.append(f"StartAt of {where} -> {scope.get('StartAt')!r}")
        for name, state in scope.get("States", {}).items():
            targets = [state.get("Next"), state.get("Default")]
            targets += [rule.get("Next") for rule in state.get("Choices", [])]
            targets += [catcher.get("Next") for catcher in state.get("Catch", [])]
            found += [f"{name} -> {target!r} ({where})" for target in targets if target and target not in names]
    return found


def catch_alls_not_last(machine: State) -> list[str]:
    """Retriers and catchers on `States.ALL` that are not the last of their list, or share it with other names."""
    found = []
    for name, state in states(machine):
        for field in ("Retry", "Catch"):
            entries = state.get(field, [])
            for number, entry in enumerate(entries):
                names = entry.get("ErrorEquals", [])
                if "States.ALL" in names and (number != len(entries) - 1 or len(names) != 1):
                    found.append(f"{name}.{field}[{number}]")
    return found


def first_retrier(state: State, error: str) -> Mapping[str, Any] | None:
    """The retrier Step Functions applies to `error`: the first whose ErrorEquals matches it (`States.ALL` matches
    everything, `States.TaskFailed` everything but `States.Timeout`)."""
    for retrier in state.get("Retry", []):
        names = retrier.get("ErrorEquals", [])
        if error in names or "States.ALL" in names or ("States.TaskFailed" in names and error != "States.Timeout"):
            return retrier
    return None


def retries(state: State, error: str) -> bool:
    retrier = first_retrier(state, error)
    return retrier is not None and retrier.get("MaxAttempts", DEFAULT_MAX_ATTEMPTS) > 0


def lambda_retry_problems(machine: State, retried: list[str], never_retried: list[str]) -> list[str]:
    """Lambda Tasks that do not retry each of `retried` or that retry any of `never_retried`."""
    found = []
    for name, state in states(machine):
        if invokes_lambda(state):
            found += [f"{name} does not retry {error}" for error in retried if not retries(state, error)]
            found += [f"{name} retries {error}" for error in never_retried if retries(state, error)]
    return found


MAX_RETRY_INTEGER = 99_999_999
"""AWS's bound on a retrier's IntervalSeconds and MaxAttempts."""
MAX_DELAY_SECONDS = 31_622_400
"""AWS's bound on a retrier's MaxDelaySeconds (a year and a day)."""
JITTER_STRATEGIES = ("FULL", "NONE")


def retrier_field_problems(machine: State) -> list[str]:
    """Retriers whose fields AWS would refuse, by the ranges the Step Functions guide gives ("Retrying after an
    error"). asl-validator 4.0.0 checks only that IntervalSeconds, MaxAttempts and BackoffRate are numbers of at
    least 0, and not MaxDelaySeconds or JitterStrategy at all."""
    found = []
    for name, state in states(machine):
        for number, retrier in enumerate(state.get("Retry", [])):
            where = f"{name}.Retry[{number}]"
            interval = retrier.get("IntervalSeconds", 1)
            if not (isinstance(interval, int) and 1 <= interval <= MAX_RETRY_INTEGER):
                found.append(f"{where}.IntervalSeconds {interval!r}")
            attempts = retrier.get("MaxAttempts", DEFAULT_MAX_ATTEMPTS)
            if not (isinstance(attempts, int) and 0 <= attempts <= MAX_RETRY_INTEGER):
                found.append(f"{where}.MaxAttempts {attempts!r}")
            rate = retrier.get("BackoffRate", 2.0)
            if not (isinstance(rate, int | float) and rate >= 1.0):
                found.append(f"{where}.BackoffRate {rate!r}")
            if "MaxDelaySeconds" in retrier:
                delay = retrier["MaxDelaySeconds"]
                if not (isinstance(delay, int) and 1 <= delay <= MAX_DELAY_SECONDS):
                    found.append(f"{where}.MaxDelaySeconds {delay!r}")
            if retrier.get("JitterStrategy", "NONE") not in JITTER_STRATEGIES:
                found.append(f"{where}.JitterStrategy {retrier['JitterStrategy']!r}")
    return found


def retry_delays(retrier: Mapping[str, Any]) -> list[float]:
    """The longest wait before each retry: IntervalSeconds x BackoffRate^n, capped at MaxDelaySeconds. With
    `JitterStrategy: FULL` each actual wait is drawn between 0 and this."""
    interval = retrier.get("IntervalSeconds", 1)
    rate = retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds", float("inf"))
    return [min(interval * rate**n, cap) for n in range(retrier.get("MaxAttempts", DEFAULT_MAX_ATTEMPTS))]
