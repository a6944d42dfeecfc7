"""Every state machine definition the stack can build is one AWS accepts (issue 21), checked offline.

Two layers over every definition the stack settings can produce (mapConcurrency, toleratedFailurePercentage,
lambdaTimeoutSeconds and workflowTimeoutHours at their lowest, default and highest): asl-validator, which `make
test` installs from .ci/asl, and the rules AWS enforces that no validator checks (tests/infra/asl_rules.py), each
also shown rejecting a hand-broken copy so that none can pass by checking nothing. moto's interpreter accepts
most of these mistakes (docs/step-functions-offline.md), so the end-to-end test cannot catch them. Last, the
payloads: the largest answers the runtime writes, and the state they make, against Step Functions' 256 KiB.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from handler.contract import state_machine_answer
from handler.ledger_keys import LedgerPaths
from handler.notify import build_notification
from handler.records import (
    Drifted,
    Failure,
    Finalized,
    ObjectStatus,
    OpenRun,
    PlanCounts,
    PlanOutcome,
    PlanResult,
    RunStatus,
    RunSummary,
    ShardOutcome,
    Tally,
)
from handler.schema_check import MAX_DESCRIPTION
from handler.selection import SkipKind
from handler.shards import BATCH_STRIDE, MAX_DISCOVERED_SHARDS, StatePart
from handler.steps.finalize import MAX_FAILURES_IN_SUMMARY
from handler.width import MAX_MAP_WIDTH
from infra.stack_config import STACK_SETTINGS, FunctionSettings, StackConfig, WorkflowSettings
from infra.workflow_definition import (
    LAMBDA_DEATHS,
    LAMBDA_SERVICE_ERRORS,
    LAMBDA_THROTTLED,
    NOT_RETRYABLE_ERRORS,
    TASK_TIMEOUT_MARGIN_SECONDS,
    build_definition,
)
from tests.infra import asl_rules as rules
from tests.infra.harness import ACCOUNT, REGION, ROOT, Deployment, dev_stack_config, two_dataset_config

ASL_VALIDATOR = ROOT / ".ci" / "asl" / "node_modules" / ".bin" / "asl-validator"
NOT_INSTALLED = (
    f"{ASL_VALIDATOR.relative_to(ROOT)} is missing: run `make test`, which installs asl-validator with `npm ci` "
    "from .ci/asl/package-lock.json"
)
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ingestion-lambda-function-7f3a2c1"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:ingestion-notifications-topic-7f3a2c1"
HOUR = 3600

State = dict[str, Any]
SETTING = {s.name: s for s in STACK_SETTINGS}


def spread(name: str, *more: Any) -> list[Any]:
    """A setting's lowest, default and highest value (and any `more`), each once."""
    setting = SETTING[name]
    return sorted({setting.low, setting.default, setting.high, *more})


@dataclass(frozen=True)
class Case:
    """One combination of the stack settings that change the definition."""

    map_concurrency: int
    tolerated_failure_percentage: float
    lambda_timeout_seconds: int
    timeout_hours: int
    s3_writes_per_second: int

    @property
    def id(self) -> str:
        return (
            f"map{self.map_concurrency}-tolerate{self.tolerated_failure_percentage:g}"
            f"-lambda{self.lambda_timeout_seconds}s-execution{self.timeout_hours}h"
            f"-writes{self.s3_writes_per_second}"
        )

    def config(self) -> StackConfig:
        """The stack config with these settings (constructing it checks the stack accepts them)."""
        return two_dataset_config(
            function=FunctionSettings(timeout_seconds=self.lambda_timeout_seconds),
            workflow=WorkflowSettings(
                map_concurrency=self.map_concurrency,
                tolerated_failure_percentage=self.tolerated_failure_percentage,
                timeout_hours=self.timeout_hours,
                s3_writes_per_second=self.s3_writes_per_second,
            ),
        )


def stack_definition(config: StackConfig) -> State:
    """The definition the pipeline deploys for `config`, its settings passed as infra/pipeline.py passes them (the
    Pulumi-mock test below checks the deployed timeouts)."""
    return build_definition(
        FUNCTION_ARN,
        TOPIC_ARN,
        config.workflow.map_concurrency,
        config.workflow.tolerated_failure_percentage,
        config.raw_bucket,
        s3_writes_per_second=config.workflow.s3_writes_per_second,
        lambda_timeout_seconds=config.function.timeout_seconds,
        execution_timeout_seconds=config.workflow.timeout_hours * HOUR,
        send_lineage=config.lineage is not None,
    )


SETTINGS = (
    "mapConcurrency",
    "toleratedFailurePercentage",
    "lambdaTimeoutSeconds",
    "workflowTimeoutHours",
    "s3WritesPerSecond",
)
"""The stack settings that change the definition, in Case's order."""
CASES = [Case(*values) for values in itertools.product(*(spread(name) for name in SETTINGS))]
"""Every combination of their lowest, default and highest values."""
DEFINITIONS = {case.id: stack_definition(case.config()) for case in CASES}
each_definition = pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)


def broken(definition: State, change: Callable[[State], None]) -> State:
    """A hand-broken copy: the definition as deployed (JSON, so no part is shared with the original) after `change`."""
    copied = json.loads(json.dumps(definition))
    change(copied)
    return copied


def rename_copy_child(name: str) -> Callable[[State], None]:
    """The CopyBatches Map's one child renamed to `name`."""

    def change(definition: State) -> None:
        processor = definition["States"]["CopyBatches"]["ItemProcessor"]
        processor["States"][name] = processor["States"].pop(processor["StartAt"])
        processor["StartAt"] = name

    return change


# ---- asl-validator ------------------------------------------------------------------------------------------

DUPLICATE_NAME = "copy-child-named-finalize"


def run_asl_validator(definitions: Mapping[str, State], folder: Path) -> dict[str, list[str]]:
    """Each definition's errors as asl-validator reports them (`CODE: message`; none: valid), from one run over all.

    asl-validator 4.0.0 has no JSON output: for each `--json-path` it prints `✓ State machine definition "<path>"
    is valid` to stdout, or `✕ State machine definition "<path>" is invalid:` and one `CODE: message` line per
    error to stderr; it exits 1 when any is invalid, 2 when it failed itself.
    """
    paths = {}
    for name, definition in definitions.items():
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps(definition), encoding="utf-8")
    arguments = [argument for path in paths.values() for argument in ("--json-path", str(path))]
    done = subprocess.run(
        [str(ASL_VALIDATOR), *arguments], capture_output=True, text=True, encoding="utf-8", timeout=120, check=False
    )
    assert done.returncode in (0, 1), f"asl-validator itself failed (exit {done.returncode}):\n{done.stderr}"
    valid = set(re.findall(r'^✓ State machine definition "(.+)" is valid$', done.stdout, flags=re.MULTILINE))
    invalid = {}
    for block in re.split(r'^✕ State machine definition "', done.stderr, flags=re.MULTILINE)[1:]:
        path, _, errors = block.partition('" is invalid:')
        invalid[path] = [line.strip() for line in errors.splitlines() if line.strip()]
    found = {}
    for name, path in paths.items():
        assert (str(path) in valid) != (str(path) in invalid), f"asl-validator gave no verdict on {path}:\n{done}"
        found[name] = invalid.get(str(path), [])
    return found


def one_at_a_time() -> list[Case]:
    """The defaults, each setting at its other values with the rest at their defaults, and all lowest, all highest.

    asl-validator checks each field on its own (about 0.2 s a definition), so these cover every value it sees;
    the pure rules below, which compare fields, take every combination.
    """
    defaults = Case(*(SETTING[name].default for name in SETTINGS))
    cases = [defaults]
    for field, name in zip(Case.__dataclass_fields__, SETTINGS, strict=True):
        cases += [replace(defaults, **{field: value}) for value in spread(name) if value != getattr(defaults, field)]
    cases += [Case(*(SETTING[name].low for name in SETTINGS)), Case(*(SETTING[name].high for name in SETTINGS))]
    return list(dict.fromkeys(cases))


VALIDATED = one_at_a_time()
FRACTION = "fractional-tolerated-failure-percentage"
TWO_WIDTHS = "copy-map-with-both-widths"


@pytest.fixture(scope="module")
def validator_findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]] | None:
    """asl-validator's findings on the definitions above and on one broken on purpose; None when not installed."""
    if not ASL_VALIDATOR.exists():
        return None
    checked = {case.id: DEFINITIONS[case.id] for case in VALIDATED}
    duplicate = broken(DEFINITIONS[VALIDATED[0].id], rename_copy_child("Finalize"))
    fraction = broken(
        DEFINITIONS[VALIDATED[0].id], lambda d: d["States"]["CopyBatches"].update(ToleratedFailurePercentage=2.5)
    )
    two_widths = broken(DEFINITIONS[VALIDATED[0].id], lambda d: d["States"]["CopyBatches"].update(MaxConcurrency=10))
    return run_asl_validator(
        {**checked, DUPLICATE_NAME: duplicate, FRACTION: fraction, TWO_WIDTHS: two_widths},
        tmp_path_factory.mktemp("asl"),
    )


@pytest.mark.parametrize("case", VALIDATED, ids=lambda case: case.id)
def test_asl_validator_accepts_every_definition_the_stack_can_build(
    case: Case, validator_findings: dict[str, list[str]] | None
) -> None:
    assert validator_findings is not None, NOT_INSTALLED
    assert validator_findings[case.id] == []


def test_a_fractional_tolerated_failure_percentage_is_refused_by_the_stack_as_by_asl_validator(
    validator_findings: dict[str, list[str]] | None,
) -> None:
    # asl-validator's schema takes a whole percentage; the stack refuses a fraction at preview rather than risk
    # a deploy that CreateStateMachine might reject.
    assert validator_findings is not None, NOT_INSTALLED
    assert validator_findings[FRACTION] != []
    check = SETTING["toleratedFailurePercentage"].check
    assert check is not None and check(2.5) == ["must be a whole percentage (0, 1, ... 100), got 2.5"]
    assert check(5.0) == []


def test_asl_validator_reads_the_copy_maps_width_path_and_refuses_a_second_width(
    validator_findings: dict[str, list[str]] | None,
) -> None:
    # The copy Map's MaxConcurrencyPath is a field asl-validator knows (it accepts every definition above, and
    # refuses it beside a MaxConcurrency, as AWS does: the two are mutually exclusive).
    assert validator_findings is not None, NOT_INSTALLED
    assert [finding.split(":")[0] for finding in validator_findings[TWO_WIDTHS]] == ["MAP_CONCURRENCY_ERROR"]


def test_asl_validator_rejects_a_map_child_named_like_a_top_level_state(
    validator_findings: dict[str, list[str]] | None,
) -> None:
    # moto runs this machine without a word; CreateStateMachine refuses it (DUPLICATE_STATE_NAME).
    assert validator_findings is not None, NOT_INSTALLED
    assert validator_findings[DUPLICATE_NAME] == [
        "DUPLICATE_STATE_NAMES: A state with this name already exists: Finalize"
    ]


# ---- the rules no validator checks ---------------------------------------------------------------------------


@each_definition
def test_state_names_are_unique_across_the_machine_and_its_map_children(case: Case) -> None:
    definition = DEFINITIONS[case.id]

    assert rules.duplicate_state_names(definition) == []
    assert rules.duplicate_state_names(broken(definition, rename_copy_child("Finalize"))) == ["Finalize"]
    # Two Map children of one name are as wrong as a child named like a top-level state.
    two_children = broken(definition, rename_copy_child("FinalizeShard"))
    assert rules.duplicate_state_names(two_children) == ["FinalizeShard"]


@each_definition
def test_every_lambda_task_times_out_a_margin_after_the_function(case: Case) -> None:
    definition = DEFINITIONS[case.id]
    function_timeout = case.lambda_timeout_seconds

    lambda_tasks = [name for name, state in rules.states(definition) if rules.invokes_lambda(state)]
    assert len(lambda_tasks) == 7  # Plan, SealPlan, Finalize, ReleaseLock and the three Maps' children
    assert rules.lambda_tasks_timing_out_first(definition, function_timeout) == []
    assert {state["TimeoutSeconds"] for _, state in rules.states(definition) if rules.invokes_lambda(state)} == {
        function_timeout + TASK_TIMEOUT_MARGIN_SECONDS
    }

    def at_the_function_timeout(d: State) -> None:
        d["States"]["CopyBatches"]["ItemProcessor"]["States"]["CopyBatch"]["TimeoutSeconds"] = function_timeout

    assert rules.lambda_tasks_timing_out_first(broken(definition, at_the_function_timeout), function_timeout) == [
        f"CopyBatch ({function_timeout} s < {function_timeout + TASK_TIMEOUT_MARGIN_SECONDS} s)"
    ]


@each_definition
def test_every_task_has_its_own_timeout(case: Case) -> None:
    definition = DEFINITIONS[case.id]

    assert rules.tasks_without_timeout(definition) == []

    def untimed(d: State) -> None:
        del d["States"]["NotifyRun"]["TimeoutSeconds"]
        del d["States"]["FinalizeShards"]["ItemProcessor"]["States"]["FinalizeShard"]["TimeoutSeconds"]

    assert rules.tasks_without_timeout(broken(definition, untimed)) == ["NotifyRun", "FinalizeShard"]


@each_definition
def test_the_execution_times_out_after_the_stack_setting_longer_than_any_step_and_within_a_year(case: Case) -> None:
    definition = DEFINITIONS[case.id]

    assert definition["TimeoutSeconds"] == case.timeout_hours * HOUR
    assert rules.execution_timeout_problems(definition) == []
    step = case.lambda_timeout_seconds + TASK_TIMEOUT_MARGIN_SECONDS
    assert rules.execution_timeout_problems(broken(definition, lambda d: d.pop("TimeoutSeconds"))) == [
        "no top-level TimeoutSeconds: a stuck execution would run for a year"
    ]
    assert rules.execution_timeout_problems(broken(definition, lambda d: d.update(TimeoutSeconds=step))) == [
        f"TimeoutSeconds {step} s does not exceed the longest step's {step} s"
    ]
    over_a_year = rules.MAX_EXECUTION_SECONDS + 1
    assert rules.execution_timeout_problems(broken(definition, lambda d: d.update(TimeoutSeconds=over_a_year))) == [
        f"TimeoutSeconds {over_a_year} s exceeds the year a Standard execution may run"
    ]


@each_definition
def test_state_names_fit_in_80_characters(case: Case) -> None:
    definition = DEFINITIONS[case.id]
    longest = "FinalizeShardWithAVeryLongNameThatSomeoneMightWriteToBeDescriptiveAboutWhatItDoes"

    assert rules.long_state_names(definition) == []
    assert len(longest) == 81
    assert rules.long_state_names(broken(definition, rename_copy_child(longest))) == [longest]


@each_definition
def test_the_definition_fits_in_one_mib(case: Case) -> None:
    definition = DEFINITIONS[case.id]

    assert rules.deployed_bytes(definition) < rules.MAX_DEFINITION_BYTES // 10  # far from it
    padded = broken(definition, lambda d: d.update(Comment="x" * rules.MAX_DEFINITION_BYTES))
    assert rules.deployed_bytes(padded) > rules.MAX_DEFINITION_BYTES


@each_definition
def test_no_map_batches_its_items_past_256_kib(case: Case) -> None:
    definition = DEFINITIONS[case.id]

    assert [name for name, state in rules.states(definition) if "ItemBatcher" in state] == []
    assert rules.oversized_item_batchers(definition) == []

    def batched(size: int) -> Callable[[State], None]:
        return lambda d: d["States"]["CopyBatches"].update(ItemBatcher={"MaxInputBytesPerBatch": size})

    assert rules.oversized_item_batchers(broken(definition, batched(rules.MAX_PAYLOAD_BYTES))) == []
    assert rules.oversized_item_batchers(broken(definition, batched(rules.MAX_PAYLOAD_BYTES + 1))) == [
        f"CopyBatches (MaxInputBytesPerBatch {rules.MAX_PAYLOAD_BYTES + 1})"
    ]


@each_definition
def test_every_transition_names_a_state_of_its_own_scope(case: Case) -> None:
    definition = DEFINITIONS[case.id]

    assert rules.dangling_transitions(definition) == []

    def out_of_its_map(d: State) -> None:
        child = d["States"]["CopyBatches"]["ItemProcessor"]["States"]["CopyBatch"]
        del child["End"]
        child["Next"] = "FinalizeShards"  # a top-level state: a Map's child cannot go there

    def misspelt(d: State) -> None:
        d["States"]["PlanStage"]["Default"] = "AnythingToCopyy"
        d["States"]["Finalize"]["Catch"][0]["Next"] = "FinalizeFailed "

    assert rules.dangling_transitions(broken(definition, out_of_its_map)) == [
        "CopyBatch -> 'FinalizeShards' (CopyBatches's item processor)"
    ]
    assert rules.dangling_transitions(broken(definition, misspelt)) == [
        "PlanStage -> 'AnythingToCopyy' (the top level)",
        "Finalize -> 'FinalizeFailed ' (the top level)",
    ]


@each_definition
def test_every_catch_all_comes_last(case: Case) -> None:
    definition = DEFINITIONS[case.id]

    assert rules.catch_alls_not_last(definition) == []

    def catch_all_first(d: State) -> None:
        retriers = d["States"]["Finalize"]["Retry"]
        d["States"]["Finalize"]["Retry"] = [retriers[-1], *retriers[:-1]]

    def catch_all_shared(d: State) -> None:
        d["States"]["Plan"]["Catch"] = [{"ErrorEquals": ["RunInProgress", "States.ALL"], "Next": "PlanFailed"}]

    assert rules.catch_alls_not_last(broken(definition, catch_all_first)) == ["Finalize.Retry[0]"]
    assert rules.catch_alls_not_last(broken(definition, catch_all_shared)) == ["Plan.Catch[0]"]


RETRIED = [*LAMBDA_SERVICE_ERRORS, *LAMBDA_DEATHS]
NEVER_RETRIED = ["LockLost", "RunInProgress"]


@each_definition
def test_every_lambda_task_retries_lost_answers_and_deaths_and_never_the_lock_errors(case: Case) -> None:
    definition = DEFINITIONS[case.id]

    assert set(NEVER_RETRIED) <= set(NOT_RETRYABLE_ERRORS)
    assert rules.lambda_retry_problems(definition, RETRIED, NEVER_RETRIED) == []
    for name, state in rules.states(definition):
        if rules.invokes_lambda(state) and name != "ReleaseLock":
            # The runtime's deliberate errors are listed first, with no attempt: nothing after them can retry one.
            assert state["Retry"][0] == {"ErrorEquals": NOT_RETRYABLE_ERRORS, "MaxAttempts": 0}, name

    def without_the_first_retrier(d: State) -> None:
        d["States"]["SealPlan"]["Retry"] = d["States"]["SealPlan"]["Retry"][1:]  # States.ALL now retries LockLost

    def without_death_retries(d: State) -> None:
        plan_shard = d["States"]["PlanShards"]["ItemProcessor"]["States"]["PlanShard"]
        plan_shard["Retry"] = [r for r in plan_shard["Retry"] if "Lambda.Unknown" not in r["ErrorEquals"]]
        plan_shard["Retry"][-1] = {**plan_shard["Retry"][-1], "ErrorEquals": ["States.TaskFailed"]}

    assert rules.lambda_retry_problems(broken(definition, without_the_first_retrier), RETRIED, NEVER_RETRIED) == [
        "SealPlan retries LockLost",
        "SealPlan retries RunInProgress",
    ]
    # States.TaskFailed matches every error but States.Timeout: a task timeout would go unretried.
    assert rules.lambda_retry_problems(broken(definition, without_death_retries), RETRIED, NEVER_RETRIED) == [
        "PlanShard does not retry States.Timeout"
    ]


@each_definition
def test_every_retrier_keeps_to_the_ranges_aws_documents(case: Case) -> None:
    definition = DEFINITIONS[case.id]

    assert rules.retrier_field_problems(definition) == []

    def out_of_range(d: State) -> None:
        retriers = d["States"]["Plan"]["Retry"]
        throttle = next(n for n, r in enumerate(retriers) if LAMBDA_THROTTLED in r["ErrorEquals"])
        retriers[throttle] = {**retriers[throttle], "MaxDelaySeconds": 0, "JitterStrategy": "full", "BackoffRate": 0.5}

    assert rules.retrier_field_problems(broken(definition, out_of_range)) == [
        "Plan.Retry[1].BackoffRate 0.5",
        "Plan.Retry[1].MaxDelaySeconds 0",
        "Plan.Retry[1].JitterStrategy 'full'",
    ]


THROTTLE_BUDGET_SECONDS = 900
"""A throttled step must wait out, on average, a neighbour that runs for Lambda's longest timeout (15 minutes)."""


@each_definition
def test_every_lambda_task_retries_throttling_for_minutes_with_jitter(case: Case) -> None:
    definition = DEFINITIONS[case.id]
    lambda_tasks = [(name, state) for name, state in rules.states(definition) if rules.invokes_lambda(state)]

    assert len(lambda_tasks) == 7
    for name, state in lambda_tasks:
        throttle = rules.first_retrier(state, LAMBDA_THROTTLED)
        assert throttle is not None and throttle["ErrorEquals"] == [LAMBDA_THROTTLED], name
        assert throttle["JitterStrategy"] == "FULL", name  # throttled children of one Map must not return in step
        delays = rules.retry_delays(throttle)
        # Full jitter waits a uniform share of each capped delay: on average half of the worst case.
        assert sum(delays) == 1806 and sum(delays) / 2 >= THROTTLE_BUDGET_SECONDS, name
        assert max(delays) == throttle["MaxDelaySeconds"] == 120, name
        # The other service errors keep their own, shorter budget (a lost answer is retried within minutes).
        for error in LAMBDA_SERVICE_ERRORS:
            if error != LAMBDA_THROTTLED:
                other = rules.first_retrier(state, error)
                assert other is not None and sum(rules.retry_delays(other)) <= 130, (name, error)

    def throttle_after_the_service_errors(d: State) -> None:
        # The old shape: throttling listed with the other service errors, whose retrier comes first.
        for _, state in rules.states(d):
            if rules.invokes_lambda(state):
                for retrier in state["Retry"]:
                    if "Lambda.ServiceException" in retrier["ErrorEquals"]:
                        retrier["ErrorEquals"] = [*retrier["ErrorEquals"], LAMBDA_THROTTLED]
                state["Retry"].sort(key=lambda r: "Lambda.ServiceException" not in r["ErrorEquals"])

    shadowed = broken(definition, throttle_after_the_service_errors)
    copy_batch = dict(rules.states(shadowed))["CopyBatch"]
    assert sum(rules.retry_delays(rules.first_retrier(copy_batch, LAMBDA_THROTTLED) or {})) == 122  # two minutes


# ---- the stack deploys the timeouts it is configured with -------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "function_timeout", "execution_hours"),
    [({}, 900, 24), ({"lambdaTimeoutSeconds": "300", "workflowTimeoutHours": "6"}, 300, 6)],
    ids=["defaults", "300s-function-6h-execution"],
)
def test_the_deployed_definition_times_out_each_lambda_step_after_the_function_and_the_execution_as_configured(
    run_program: Callable[[dict[str, str]], Deployment],
    settings: dict[str, str],
    function_timeout: int,
    execution_hours: int,
) -> None:
    config = {**dev_stack_config(), **{f"data-file-ingestion:{key}": value for key, value in settings.items()}}
    deployment = run_program(config)

    (machine,) = deployment.of_type("aws:sfn/stateMachine:StateMachine")
    (function,) = deployment.of_type("aws:lambda/function:Function")
    definition = json.loads(machine.inputs["definition"])
    assert function.inputs["timeout"] == function_timeout
    lambda_timeouts = [state["TimeoutSeconds"] for _, state in rules.states(definition) if rules.invokes_lambda(state)]
    assert lambda_timeouts == [function_timeout + TASK_TIMEOUT_MARGIN_SECONDS] * 7
    assert definition["TimeoutSeconds"] == execution_hours * HOUR


# ---- payloads: what the runtime answers and writes, against 256 KiB ---------------------------------------------

DATASET = "d" * 63  # the longest dataset name (handler/naming.py)
BUCKET = "b" * 63  # the longest bucket name
RUN_ID = "20261127T200000123Z-3f9a1c"  # handler.steps.new_run_id's shape
DATE = "2026-11-27"
EXECUTION = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{'s' * 80}:{'e' * 80}"
KEY_BYTES = 1024  # S3's limit on a key
SCALE_SHARDS = 400
"""docs/SCALE.md's 100-million-key dataset: 267 shards on its first night, about 400 once its parts split."""
PATHS = LedgerPaths.at(BUCKET, f"_ingestion/{DATASET}/")


def long_key(number: int) -> str:
    return f"{number:04d}/".ljust(KEY_BYTES, "x")


def access_denied(number: int) -> str:
    """An S3 failure's reason as handler/store/errors.py writes it; S3's AccessDenied message names the whole key."""
    return (
        f"AccessDenied: User: arn:aws:sts::{ACCOUNT}:assumed-role/{'r' * 64}/{'s' * 64} is not authorized to perform: "
        f's3:GetObject on resource: "arn:aws:s3:::{BUCKET}/{long_key(number)}" because no identity-based policy '
        "allows the s3:GetObject action (CopyObject)"
    )


def collision(number: int) -> str:
    """The longest reason the runtime writes (handler/planner.py): five colliding keys and their target."""
    keys = ", ".join(repr(long_key(number * 5 + n)) for n in range(5))
    return (
        f"collision: 6 source objects ({keys}) would land on {long_key(9999)!r}; none of them is copied. Rename them "
        "or change key_template"
    )


def largest_summary(shards: int, reason: Callable[[int], str]) -> RunSummary:
    """A run's summary at its largest: the most failures it lists, each on a 1 KiB key, and a manifest part a shard."""
    prefix = "/".join(["folder"] * 20) + "/"
    return RunSummary(
        dataset=DATASET,
        run_id=RUN_ID,
        date=DATE,
        status=RunStatus.PARTIAL,
        started_at="2026-11-27T20:00:00.123Z",
        finished_at="2026-11-28T19:59:59.999Z",
        duration_seconds=86_399.876,
        resumed=True,
        source=f"s3://{BUCKET}/{prefix}",
        target=f"s3://{BUCKET}/{prefix}",
        listed=10**11,
        excluded=10**11,
        planned=10**11,
        copied=10**11,
        skipped=10**11,
        unchanged=10**11,
        failed=10**11,
        bytes=10**18,
        skipped_by_reason={str(kind): 10**11 for kind in SkipKind},
        failures=tuple(Failure(long_key(n), reason(n)) for n in range(MAX_FAILURES_IN_SUMMARY)),
        manifest=PATHS.uri(PATHS.manifest_glob(date=DATE, run_id=RUN_ID)),
        manifest_parts=tuple(PATHS.uri(PATHS.manifest_part(date=DATE, run_id=RUN_ID, shard=n)) for n in range(shards)),
        marker=PATHS.uri(f"_ingestion/{DATASET}/complete/date={DATE}/{RUN_ID}.json"),
        last_landed_at="2026-11-28T19:59:59.999Z",
    )


def finalize_answer(summary: RunSummary) -> State:
    """finalize's answer as the Lambda returns it to the state machine."""
    return state_machine_answer(Finalized(summary, build_notification(summary)).to_json())


def plan_answer(shards: int, finalized: RunSummary | None = None) -> State:
    """plan's (and seal_plan's) answer: copying, or already finalized with `finalized` as its run's summary."""
    counts = PlanCounts(10**11, 10**11, 10**11, 10**18, 10**11, 10**11, {str(kind): 10**11 for kind in SkipKind})
    run = OpenRun(DATASET, RUN_ID, DATE, "2026-11-27T20:00:00.123Z", 10**7, counts, True, shards)
    answer = PlanResult(
        run,
        {"bucket": BUCKET, "key": PATHS.batch_index(run_id=RUN_ID)},
        {"bucket": BUCKET, "key": PATHS.final_shards(run_id=RUN_ID)},
        Finalized(finalized, build_notification(finalized)) if finalized else None,
    ).to_json()
    # The handler adds the copy Map's width to plan's and seal_plan's answers (at most the Map's own limit).
    return state_machine_answer({**answer, "copy_width": MAX_MAP_WIDTH})


def selected(selector: Mapping[str, str], answer: State) -> State:
    """What a Task's ResultSelector keeps of a Lambda answer (`"field.$": "$.Payload.<name>"`)."""
    kept = {}
    for field, path in selector.items():
        value: Any = {"Payload": answer}
        for step in path.removeprefix("$.").split("."):
            value = value[step]
        kept[field.removesuffix(".$")] = value
    return kept


def state_after(definition: State, plan: State, finalize: State | None) -> State:
    """The execution's state once Plan (and Finalize) answered, as the definition's ResultSelectors keep them."""
    top = definition["States"]
    state: State = {
        "dataset": DATASET,
        "scheduled_time": "2026-11-27T20:00:00Z",
        "plan_request": {"action": "plan", "dataset": DATASET, "scheduled_time": "2026-11-27T20:00:00Z"},
        "plan": selected(top["Plan"]["ResultSelector"], plan),
    }
    state["plan_request"]["execution"] = EXECUTION
    if finalize is not None:
        state["finalize"] = selected(top["Finalize"]["ResultSelector"], finalize)
    return state


def payload_bytes(value: Any) -> int:
    """The size Step Functions counts: the JSON as UTF-8."""
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def test_the_map_items_and_every_childs_answer_stay_well_within_256_kib() -> None:
    shard = 10**5
    shard_item = {"dataset": DATASET, "run_id": RUN_ID, "shard": shard}
    batch_item = {"dataset": DATASET, "run_id": RUN_ID, "batch": shard * BATCH_STRIDE + BATCH_STRIDE - 1}
    child_input = {"action": "finalize_shard", **shard_item, "execution": EXECUTION}  # after the ItemSelector
    counts = PlanCounts(10**11, 10**11, 10**11, 10**18, 10**11, 10**11, {str(kind): 10**11 for kind in SkipKind})
    plan_shard = PlanOutcome(shard, BATCH_STRIDE - 1, counts, long_key(0), True).to_json()
    copy_batch = {"batch": batch_item["batch"], **Tally(10**6, 10**6, 10**6, 10**18).to_json()}
    finalize_shard = ShardOutcome(
        shard,
        Tally(10**11, 10**11, 10**11, 10**18),
        tuple(Failure(long_key(n), collision(n)) for n in range(MAX_FAILURES_IN_SUMMARY)),
        tuple(StatePart(long_key(n), PATHS.state_part(run_id=RUN_ID, shard=shard, piece=n), 10**6) for n in range(4)),
        PATHS.uri(PATHS.manifest_part(date=DATE, run_id=RUN_ID, shard=shard)),
    ).to_json()

    for item in (shard_item, batch_item, child_input, plan_shard, copy_batch):
        assert payload_bytes(item) < 2_000, item
    # The largest: ten failures whose reasons each name six 1 KiB keys, and a shard's state split in four.
    assert payload_bytes(finalize_shard) < rules.MAX_PAYLOAD_BYTES // 3


@pytest.mark.parametrize("shards", [1, MAX_DISCOVERED_SHARDS])
def test_a_run_with_ten_long_failed_keys_fits_its_answers_its_state_and_its_message_in_256_kib(shards: int) -> None:
    # Up to the most shards a first run is cut into, with S3's own failure reasons (which name the key).
    definition = DEFINITIONS[CASES[0].id]
    summary = largest_summary(shards, access_denied)
    finalized = finalize_answer(summary)
    finalized_plan = plan_answer(shards, finalized=summary)
    copying_plan = plan_answer(shards)

    assert payload_bytes(finalized) < rules.MAX_PAYLOAD_BYTES
    assert payload_bytes(finalized_plan) < rules.MAX_PAYLOAD_BYTES
    assert payload_bytes(state_after(definition, copying_plan, finalized)) < rules.MAX_PAYLOAD_BYTES
    assert payload_bytes(state_after(definition, finalized_plan, None)) < rules.MAX_PAYLOAD_BYTES
    # What NotifyRun publishes: SNS takes at most 256 KiB too.
    notification = finalized["notification"]
    assert payload_bytes([notification["subject"], notification["message"], notification["attributes"]]) < (
        rules.MAX_PAYLOAD_BYTES
    )


def test_the_largest_finalize_answer_the_runtime_can_write_fits_256_kib() -> None:
    summary = largest_summary(SCALE_SHARDS, collision)

    assert payload_bytes(finalize_answer(summary)) < rules.MAX_PAYLOAD_BYTES


def test_a_replanned_execution_whose_plan_finalizes_keeps_only_tonights_run_in_its_state() -> None:
    definition = DEFINITIONS[CASES[0].id]
    top = definition["States"]
    resumed = finalize_answer(largest_summary(MAX_DISCOVERED_SHARDS, access_denied))
    tonight = plan_answer(1, finalized=largest_summary(1, collision))
    after_resumed = state_after(definition, plan_answer(MAX_DISCOVERED_SHARDS), resumed)

    # PlanAgain -> PlanTonight (a Pass whose Parameters rebuild the state from the input) -> Plan.
    assert top["PlanAgain"]["Choices"][0]["Next"] == "PlanTonight"
    assert top["PlanAgainAfterEmptyRun"]["Choices"][0]["Next"] == "PlanTonight"
    kept = {field.removesuffix(".$"): path for field, path in top["PlanTonight"]["Parameters"].items()}
    replanned = {field: after_resumed[path.removeprefix("$.")] for field, path in kept.items()}
    replanned["plan"] = selected(top["Plan"]["ResultSelector"], tonight)

    assert "finalize" not in replanned, "the resumed run's answer is not carried into tonight's"
    assert payload_bytes(after_resumed) < rules.MAX_PAYLOAD_BYTES
    assert payload_bytes(replanned) < rules.MAX_PAYLOAD_BYTES


# ---- each Map's width --------------------------------------------------------------------------------------


@each_definition
def test_planning_and_finalizing_maps_run_map_concurrency_wide_and_the_copy_map_the_plans_width(case: Case) -> None:
    definition = DEFINITIONS[case.id]
    states = definition["States"]

    assert states["PlanShards"]["MaxConcurrency"] == case.map_concurrency
    assert states["FinalizeShards"]["MaxConcurrency"] == case.map_concurrency
    copy = states["CopyBatches"]
    assert "MaxConcurrency" not in copy
    assert copy["MaxConcurrencyPath"] == "$.plan.copy_width"
    # $.plan is the answer of plan or seal_plan: both select the width, and both are told what to size it within.
    sizing = {"max_copy_width": case.map_concurrency, "s3_writes_per_second": case.s3_writes_per_second}
    for step in ("Plan", "SealPlan"):
        assert states[step]["ResultSelector"]["copy_width.$"] == "$.Payload.copy_width"
        assert states[step]["ResultPath"] == "$.plan"
    for request in ("PlanRequestForDate", "PlanRequestForScheduledTime", "PlanRequestForToday"):
        assert sizing.items() <= states[request]["Parameters"].items(), request
    assert sizing.items() <= states["SealPlan"]["Parameters"]["Payload"].items()


@pytest.mark.parametrize("shards", [1, MAX_DISCOVERED_SHARDS])
def test_a_run_with_ten_long_failures_and_ten_long_drifted_files_fits_its_answers_and_its_message(shards: int) -> None:
    # Schema contracts: ten drifted files on 1 KiB keys, quarantined under 1 KiB targets, each with the longest
    # description a drift keeps, beside the ten longest failures a summary lists.
    definition = DEFINITIONS[CASES[0].id]
    drifted = tuple(
        Drifted(long_key(n), ObjectStatus.COPIED, "_quarantine/" + long_key(n), "d" * MAX_DESCRIPTION)
        for n in range(MAX_FAILURES_IN_SUMMARY)
    )
    summary = replace(largest_summary(shards, access_denied), schema_drift=10**11, schema_drift_files=drifted)
    finalized = finalize_answer(summary)
    finalized_plan = plan_answer(shards, finalized=summary)

    assert "schema_drift_files" not in finalized["summary"] and finalized["summary"]["schema_drift"] == 10**11
    assert payload_bytes(finalized) < rules.MAX_PAYLOAD_BYTES
    assert payload_bytes(state_after(definition, plan_answer(shards), finalized)) < rules.MAX_PAYLOAD_BYTES
    assert payload_bytes(state_after(definition, finalized_plan, None)) < rules.MAX_PAYLOAD_BYTES
    notification = finalized["notification"]
    assert f"Schema drift in {10**11} file(s); first 10:" in notification["message"]
    assert payload_bytes([notification["subject"], notification["message"], notification["attributes"]]) < (
        rules.MAX_PAYLOAD_BYTES
    )
