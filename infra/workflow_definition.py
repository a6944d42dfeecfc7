"""The ingestion state machine, as Amazon States Language built from Python data.

One execution ingests one dataset: input `{"dataset": "<name>"}`, optionally with `"date"` (a night to land,
`YYYY-MM-DD`) or `"scheduled_time"` (the schedule's `<aws.scheduler.scheduled-time>`: the night is that time's
date in the dataset's time zone, however late the execution starts). The steps are the Lambda actions of
docs/lambda-contract.md, so the shape follows that contract:

- `plan` takes the lock and cuts the run into key-range shards; a Distributed Map plans each shard
  (`plan_shard`: it lists only its range and writes its own batches), then `seal_plan` either starts another
  round (shards that listed their key budget hand the rest of their range on) or makes the plan durable. So
  no invocation's time depends on the dataset's size (docs/SCALE.md).
- Shards, batches and the shards to finalize are read by Distributed Map `ItemReader`s from lists the runtime
  writes to S3 rather than passed inline, because a large run's lists would not fit in the 256 KiB state
  payload; and batches are written already batched because `ItemBatcher` would hide the batch number the
  runtime's ledger is keyed by (moto's interpreter also rejects it). Each child returns nothing, so the
  Maps' collected results stay small.
- After the copies, a Map finalizes each shard (`finalize_shard`: its manifest part and state parts) and one
  `finalize` commits the run.
- A plan with nothing to copy is already finalized by the runtime, so the machine only publishes the
  notification the plan returned.
- A run in which objects failed (`partial`, `failed`) ends the execution FAILED with `ObjectsFailed`
  after its notification is out, so CloudWatch's ExecutionsFailed metric counts it.
- The planning and finalizing Maps run `map_concurrency` children at once; the copy Map runs as many as the
  dataset's copies need to offer S3's write rate (`copy_width`, which plan and seal_plan answer within
  `map_concurrency`; handler/width.py), because every copy writes to the target.
- Each batch is its own child execution so one slow or failing batch is retried on its own. The Map may
  tolerate a share of failed batches (`tolerated_failure_percentage`; at 0 any failed batch fails the run):
  `finalize` reconciles batches that never reported by looking at what landed, so a tolerated failure loses
  nothing already copied and its objects land on the next run.
- `finalize` may answer `replan: true` (the plan resumed an interrupted run); the machine then plans
  again so tonight's files are still ingested.

At-least-once delivery. Lambda may run an invocation whose answer is lost, die part-way (`Lambda.Unknown`,
`Sandbox.Timedout`), or run beside its own retry; Step Functions retries all of these. Every event carries
the execution's id (`$$.Execution.Id`), which the lock records: a retried `plan` takes its own execution's
lock back instead of meeting "another run", and a second attempt of any step accepts what its sibling already
wrote. So every Task here is retried on the Lambda service's errors and on its own deaths, and only the
runtime's deliberate errors (`NOT_RETRYABLE_ERRORS`) are final. A redriven execution keeps its id, so it takes
its lock back too (docs/lambda-contract.md, "Redrive").

Truthful endings. SUCCEEDED means the run committed, nothing was due, or another execution holds the dataset
(`RunInProgress` from `plan`: the skipped notification names that execution; failing would page someone for an
overlap that heals itself). Any other failure is caught into one path that names the step that failed and what
the error means (a timeout as a timeout), hands the lock back (`release`, by execution id), notifies, and ends
FAILED with the error's name.

`build_definition` is a plain function (no Pulumi) so tests can run the definition in moto's interpreter.
"""

from __future__ import annotations

from typing import Any

from handler.contract import (
    COPY_BATCH,
    FINALIZE,
    FINALIZE_SHARD,
    PLAN,
    PLAN_SHARD,
    RELEASE,
    SEAL_PLAN,
    SEND_LINEAGE,
    Step,
)
from handler.layout import LEDGER_ROOT
from handler.width import S3_WRITES_PER_SECOND

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SNS_PUBLISH = "arn:aws:states:::sns:publish"
S3_GET_OBJECT = "arn:aws:states:::s3:getObject"
S3_PUT_OBJECT = "arn:aws:states:::s3:putObject"
MAP_RESULTS_PREFIX = f"{LEDGER_ROOT}_map-results/"
"""Where each Map's ResultWriter puts its children's outputs (`<prefix><map run id>/...`) in the raw bucket: under
the ledger root, outside every dataset's ledger (dataset names start with a letter or digit). Nothing reads them;
a lifecycle rule expires them (infra/storage.py)."""

LAMBDA_SERVICE_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
]
"""Errors of the Lambda service itself (throttling, a lost answer): the function may have run completely, partially
or not at all. Every step is idempotent under that (docs/lambda-contract.md), so these are retried generously."""

LAMBDA_DEATHS = ["Lambda.Unknown", "Sandbox.Timedout", "States.Timeout"]
"""The function died part-way: Lambda reports a timeout or an out-of-memory kill as `Lambda.Unknown` (newer runtimes:
`Sandbox.Timedout`), and a Task's own TimeoutSeconds as `States.Timeout` (the function may still be running). Its
writes up to then stay applied; the retry finishes its work. Retried less than a lost answer: a step that times out
for its size would time out again."""

NOT_RETRYABLE_ERRORS = [
    "LockLost",
    "RunInProgress",
    "RunNotFound",
    "ConfigError",
    "UnknownDataset",
    "ConditionalWritesUnsupported",
    "CredentialsError",
    "SdkTooOld",
]
"""Errors the runtime raises on purpose (handler/errors.py): running the step again gives the same answer.
`LockLost` above all must not be retried: another execution owns the dataset now."""

TASK_TIMEOUT_MARGIN_SECONDS = 60
"""A Lambda Task's TimeoutSeconds is the function's timeout plus this: the function's own timeout always fires
first (reported as a death, its logs say where), and `States.Timeout` only covers an invocation Lambda lost."""
SNS_TASK_TIMEOUT_SECONDS = 60
DEFAULT_EXECUTION_TIMEOUT_SECONDS = 24 * 3600
"""A night's execution that has not ended in a day is stuck; it times out (the ExecutionsTimedOut alarm) and
its lock expires by its TTL, so the next execution completes the run."""

LAMBDA_THROTTLED = "Lambda.TooManyRequestsException"
"""Lambda refused the invocation for want of concurrency (the function's reservation or the account's pool is in use):
the function did not run. It clears when other invocations end, which takes as long as they run."""

THROTTLE_RETRY = {
    "ErrorEquals": [LAMBDA_THROTTLED],
    "IntervalSeconds": 2,
    "MaxAttempts": 20,
    "BackoffRate": 2.0,
    "MaxDelaySeconds": 120,
    "JitterStrategy": "FULL",
}
"""Throttling is retried for a budget of minutes, not seconds: the capped delays are 2, 4, ... 64 s, then 120 s
fourteen times, 1,806 s (about 30 minutes) in all, and FULL jitter waits a random share of each (on average half:
about 15 minutes, one function timeout), so the children of a Map throttled together do not all come back in the
same second. A slot frees when any running step ends, and the longest a step can run is the function's timeout
(15 minutes), so a throttled step outlasts a neighbour that takes its whole time. Each retry is one state
transition. The fields (`MaxDelaySeconds` 1 to 31,622,400, `JitterStrategy` FULL or NONE, `BackoffRate` at least 1):
https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html (Retrying after an error)."""

SERVICE_RETRY = {
    # Throttling has its own retrier (THROTTLE_RETRY): the first retrier whose ErrorEquals matches is the one used.
    "ErrorEquals": [error for error in LAMBDA_SERVICE_ERRORS if error != LAMBDA_THROTTLED],
    "IntervalSeconds": 2,
    "MaxAttempts": 6,
    "BackoffRate": 2.0,
    "MaxDelaySeconds": 60,
    "JitterStrategy": "FULL",
}
DEATH_RETRY = {"ErrorEquals": LAMBDA_DEATHS, "IntervalSeconds": 5, "MaxAttempts": 2, "BackoffRate": 2.0}
NO_RETRY = {"ErrorEquals": NOT_RETRYABLE_ERRORS, "MaxAttempts": 0}
# Anything else escaped the handler after boto3's own retries: an outage or a bug. Every step is idempotent,
# so a couple of slow retries cost little and ride out the outage.
OTHER_RETRY = {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "MaxAttempts": 2, "BackoffRate": 3.0}
LAMBDA_RETRY = [NO_RETRY, THROTTLE_RETRY, SERVICE_RETRY, DEATH_RETRY, OTHER_RETRY]
"""Every Lambda Task's retriers, in order: Step Functions uses the first whose ErrorEquals matches. The runtime's own
errors come first (never retried); the next three name disjoint errors, so their order among themselves does not
matter; `States.ALL` last, as AWS requires."""

NOTIFY_RETRY = {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2.0}

FAILURE_MEANINGS: dict[str, tuple[str, ...]] = {
    "timed out or ran out of memory": ("Lambda.Unknown", "Sandbox.Timedout", "States.Timeout"),
    "the Lambda service kept failing or throttling": tuple(LAMBDA_SERVICE_ERRORS),
    "some of its child steps failed (each child's error is in the Map Run's history)": (
        "States.ExceedToleratedFailureThreshold",
    ),
    "another execution took the dataset's lock over": ("LockLost",),
    "the configuration is wrong": ("ConfigError", "UnknownDataset"),
    "no usable AWS credentials": ("CredentialsError",),
}
"""What a failed step's error means, for the failure notification; any other error is named as it is."""


RESERVED_ERROR_NAMES = {
    "States.Timeout": "StepTimedOut",
    "States.ExceedToleratedFailureThreshold": "StepChildrenFailed",
    "States.*": "StepFailed",
}
"""The execution's error for a step that failed with a Step Functions error (`States.`, which a Fail state may not
raise): a timeout, a Map past its tolerated failures, or any other (the last, a pattern, must stay last)."""


def outcome_choice(status_path: str) -> dict[str, Any]:
    """Succeed unless the run's summary says objects failed (`partial` or `failed`)."""
    return {
        "Type": "Choice",
        "Choices": [
            {
                # On AWS a Choice on a path that is not there is a runtime error, not a false rule.
                "And": [
                    {"Variable": status_path, "IsPresent": True},
                    {
                        "Or": [
                            {"Variable": status_path, "StringEquals": "partial"},
                            {"Variable": status_path, "StringEquals": "failed"},
                        ]
                    },
                ],
                "Next": "ObjectsFailed",
            }
        ],
        "Default": "Done",
    }


def build_definition(
    function_arn: str,
    topic_arn: str,
    map_concurrency: int,
    tolerated_failure_percentage: float,
    results_bucket: str,
    *,
    s3_writes_per_second: int = S3_WRITES_PER_SECOND,
    lambda_timeout_seconds: int = 900,
    execution_timeout_seconds: int = DEFAULT_EXECUTION_TIMEOUT_SECONDS,
    send_lineage: bool = False,
) -> dict[str, Any]:
    """The state machine definition (a STANDARD workflow) for one Lambda function and one SNS topic. With
    `send_lineage` (the stack names a lineage destination), each committed run's OpenLineage events are delivered
    after its notification (`lineage_states`)."""
    if map_concurrency < 1:
        raise ValueError(f"map_concurrency must be at least 1, got {map_concurrency}")
    if s3_writes_per_second < 1:
        raise ValueError(f"s3_writes_per_second must be at least 1, got {s3_writes_per_second}")
    if not 0 <= tolerated_failure_percentage <= 100:
        raise ValueError(f"tolerated_failure_percentage must be within 0-100, got {tolerated_failure_percentage}")
    if not 1 <= lambda_timeout_seconds <= 900:
        raise ValueError(f"lambda_timeout_seconds must be within 1-900 (Lambda's limit), got {lambda_timeout_seconds}")
    if execution_timeout_seconds <= lambda_timeout_seconds + TASK_TIMEOUT_MARGIN_SECONDS:
        raise ValueError(
            f"execution_timeout_seconds ({execution_timeout_seconds}) must exceed one step's timeout "
            f"({lambda_timeout_seconds + TASK_TIMEOUT_MARGIN_SECONDS} s)"
        )
    task_timeout = int(lambda_timeout_seconds) + TASK_TIMEOUT_MARGIN_SECONDS
    execution = "$$.Execution.Id"

    def lambda_task(payload: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """A Lambda invocation with the timeout and retriers every step shares."""
        return {
            "Type": "Task",
            "Resource": LAMBDA_INVOKE,
            "Parameters": {"FunctionName": function_arn, **payload},
            "TimeoutSeconds": task_timeout,
            "Retry": LAMBDA_RETRY,
            **fields,
        }

    def failed_at(step: str) -> list[dict[str, Any]]:
        """Catch everything into the failure path, remembering which step failed."""
        return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": f"{step}Failed"}]

    def publish_notification(path: str) -> dict[str, Any]:
        """sns:publish of a notification the runtime built (subject, message, attributes) at `path`."""
        return {
            "TopicArn": topic_arn,
            "Subject.$": f"{path}.subject",
            "Message.$": f"{path}.message",
            "MessageAttributes.$": f"{path}.attributes",
        }

    def publish_status(status: str, subject: str, message: str) -> dict[str, Any]:
        """sns:publish of a message built here, with the same attributes as the runtime's."""
        return {
            "TopicArn": topic_arn,
            "Subject.$": subject,
            "Message.$": message,
            "MessageAttributes": {
                "dataset": {"DataType": "String", "StringValue.$": "$.dataset"},
                "status": {"DataType": "String", "StringValue": status},
            },
        }

    def sns_task(parameters: dict[str, Any], next_state: str, *, catch: bool = True) -> dict[str, Any]:
        task: dict[str, Any] = {
            "Type": "Task",
            "Resource": SNS_PUBLISH,
            "Parameters": parameters,
            "TimeoutSeconds": SNS_TASK_TIMEOUT_SECONDS,
            "ResultPath": None,
            "Retry": [NOTIFY_RETRY],
            "Next": next_state,
        }
        if catch:
            task["Catch"] = failed_at("Notify")
        return task

    def report_run(answer: str, status_path: str, notify: str, replan: str, outcome: str) -> dict[str, Any]:
        """The states that end a run, whichever step finished it: publish the notification the answer at `answer`
        carries, plan tonight's run when the answer asks to (it finished an interrupted run first), else end on
        the run's outcome."""
        lineage = lineage_states(f"SendLineage{notify.removeprefix('Notify')}", replan) if send_lineage else {}
        return {
            notify: sns_task(publish_notification(f"{answer}.notification"), next(iter(lineage), replan)),
            **lineage,
            replan: {
                "Type": "Choice",
                "Choices": [{"Variable": f"{answer}.replan", "BooleanEquals": True, "Next": "PlanTonight"}],
                "Default": outcome,
            },
            outcome: outcome_choice(status_path),
        }

    def lineage_states(name: str, next_state: str) -> dict[str, Any]:
        """Deliver the committed run's OpenLineage events (the `send_lineage` step), then go on whatever happened:
        the step answers a failed delivery as a warning (`$.lineage.warning`, kept in the execution's output), and
        anything else that breaks it (the Lambda service, a bug) is caught into `$.lineage_error`; a night is never
        failed by its lineage. The plan's run id and date name the run: the run `finalize` committed, or the one
        `plan` committed itself (nothing to copy, or an interrupted run finished first)."""
        return {
            name: lambda_task(
                {
                    "Payload": step_event(
                        SEND_LINEAGE,
                        dataset="$.dataset",
                        run_id="$.plan.run_id",
                        date="$.plan.date",
                        execution=execution,
                    )
                },
                ResultSelector={"sent.$": "$.Payload.sent", "warning.$": "$.Payload.warning"},
                ResultPath="$.lineage",
                Retry=[THROTTLE_RETRY, SERVICE_RETRY, DEATH_RETRY],
                Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.lineage_error", "Next": next_state}],
                Next=next_state,
            )
        }

    def distributed_map(
        name: str,
        child: str,
        items_path: str,
        step: Step,
        next_state: str,
        *,
        width: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One Lambda invocation per item of the list at `items_path`, each retried on its own. The child state is
        named for what it does: state names are unique across the whole machine, nested processors included."""
        return {
            "Type": "Map",
            "ItemReader": {
                "Resource": S3_GET_OBJECT,
                "ReaderConfig": {"InputType": "JSON"},
                "Parameters": {"Bucket.$": f"{items_path}.bucket", "Key.$": f"{items_path}.key"},
            },
            "ItemSelector": step_event(
                step,
                dataset="$$.Map.Item.Value.dataset",
                run_id="$$.Map.Item.Value.run_id",
                **{str(step.unit): f"$$.Map.Item.Value.{step.unit}"},
                execution=execution,
            ),
            # `width` replaces it (MaxConcurrency and MaxConcurrencyPath are mutually exclusive).
            **(width or {"MaxConcurrency": int(map_concurrency)}),
            "ItemProcessor": {
                # STANDARD children: a step can run for the Lambda's full 15 minutes and then be retried,
                # longer than an EXPRESS child may live.
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": child,
                "States": {
                    child: lambda_task(
                        {"Payload.$": "$"},
                        # The answer stays in the child's history; each child returns only its number, so the
                        # Map's collected result stays far below the 256 KiB payload limit.
                        ResultPath=None,
                        OutputPath=f"$.{step.unit}",
                        End=True,
                    )
                },
            },
            # A Distributed Map collects its children's outputs, and an execution fails past 256 KiB of them (a
            # 100-million-key first run has 100,000 batches): the ResultWriter puts them in S3 instead, and the
            # Map's own output is a pointer to them. Not needed later (the next step reads the ledger).
            "ResultWriter": {
                "Resource": S3_PUT_OBJECT,
                "Parameters": {"Bucket": results_bucket, "Prefix": MAP_RESULTS_PREFIX},
            },
            "ResultPath": None,
            "Catch": failed_at(name),
            "Next": next_state,
        }

    plan_answer = {
        "run_id.$": "$.Payload.run_id",
        "date.$": "$.Payload.date",
        "stage.$": "$.Payload.stage",
        "resumed.$": "$.Payload.resumed",
        "shard_count.$": "$.Payload.shard_count",
        "shards.$": "$.Payload.shards",
        "batch_count.$": "$.Payload.batch_count",
        "planned.$": "$.Payload.planned",
        "batches.$": "$.Payload.batches",
        "final_shards.$": "$.Payload.final_shards",
        "notification.$": "$.Payload.notification",
        # Filled in when the plan finalized the run itself (nothing to copy): the outcome and
        # whether an interrupted run was finished first.
        "summary.$": "$.Payload.summary",
        "replan.$": "$.Payload.replan",
        # The copy Map's width for this dataset, sized to S3's write rate (handler/width.py).
        "copy_width.$": "$.Payload.copy_width",
    }
    # What plan and seal_plan size the copy Map's width within: it never exceeds mapConcurrency, which the function's
    # reserved concurrency is sized to (infra/stack_config.py, needed_concurrency).
    sizing = {"max_copy_width": int(map_concurrency), "s3_writes_per_second": int(s3_writes_per_second)}

    def plan_request(**fields: str) -> dict[str, Any]:
        # The plan request is built once, so a replan after a resumed run asks exactly the same question.
        return {
            "Type": "Pass",
            "Parameters": step_event(PLAN, dataset="$.dataset", **fields, **sizing, execution=execution),
            "ResultPath": "$.plan_request",
            "Next": "Plan",
        }

    failing_steps = ["Plan", "PlanShards", "SealPlan", "CopyBatches", "FinalizeShards", "Finalize", "Notify"]
    states: dict[str, Any] = {
        # The scheduler always sends a dataset; without one there is nothing to name in a notification.
        "CheckInput": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.dataset", "IsPresent": True},
                        {"Variable": "$.date", "IsPresent": True},
                    ],
                    "Next": "PlanRequestForDate",
                },
                {
                    "And": [
                        {"Variable": "$.dataset", "IsPresent": True},
                        {"Variable": "$.scheduled_time", "IsPresent": True},
                    ],
                    "Next": "PlanRequestForScheduledTime",
                },
                {"Variable": "$.dataset", "IsPresent": True, "Next": "PlanRequestForToday"},
            ],
            "Default": "InvalidInput",
        },
        "InvalidInput": {
            "Type": "Fail",
            "Error": "InvalidInput",
            "Cause": 'The execution input must be {"dataset": "<name>"} with an optional "date" or "scheduled_time".',
        },
        "PlanRequestForDate": plan_request(date="$.date"),
        "PlanRequestForScheduledTime": plan_request(scheduled_time="$.scheduled_time"),
        "PlanRequestForToday": plan_request(),
        # A retried plan takes its own execution's lock back (the event carries the execution id), so a lost
        # answer or a death part-way is retried like any other step's.
        "Plan": lambda_task(
            {"Payload.$": "$.plan_request"},
            ResultSelector=plan_answer,
            ResultPath="$.plan",
            Catch=[
                {"ErrorEquals": ["RunInProgress"], "ResultPath": "$.error", "Next": "ReadSkipCause"},
                *failed_at("Plan"),
            ],
            Next="PlanStage",
        ),
        # A new run's shards are planned first; a resumed run's plan is sealed already.
        "PlanStage": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.plan.stage", "StringEquals": "planning", "Next": "PlanShards"}],
            "Default": "AnythingToCopy",
        },
        "PlanShards": distributed_map("PlanShards", "PlanShard", "$.plan.shards", PLAN_SHARD, "SealPlan"),
        # Another round (shards that listed their key budget hand on the rest), or the durable plan.
        "SealPlan": lambda_task(
            {
                "Payload": step_event(
                    SEAL_PLAN, dataset="$.dataset", run_id="$.plan.run_id", **sizing, execution=execution
                )
            },
            ResultSelector=plan_answer,
            ResultPath="$.plan",
            Catch=failed_at("SealPlan"),
            Next="PlanStage",
        ),
        "AnythingToCopy": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.plan.batch_count", "NumericEquals": 0, "Next": "NotifyNothingToCopy"}],
            "Default": "CopyBatches",
        },
        # An interrupted run with nothing left to copy is finished by plan itself; then plan tonight's work.
        **report_run("$.plan", "$.plan.summary.status", "NotifyNothingToCopy", "PlanAgainAfterEmptyRun", "PlanOutcome"),
        # After a resumed run, plan tonight's with only the input: the resumed run's answers are notified already,
        # and a second run's beside them could pass the 256 KiB state limit.
        "PlanTonight": {
            "Type": "Pass",
            "Parameters": {"dataset.$": "$.dataset", "plan_request.$": "$.plan_request"},
            "Next": "Plan",
        },
        "CopyBatches": {
            # Every copy is a write to the target, so this Map is as wide as the dataset's copies need to offer S3's
            # write rate, not as wide as planning: the width plan/seal_plan answered, at most mapConcurrency.
            # MaxConcurrencyPath reads it from the state input (AWS CDK reference, DistributedMapProps); as for
            # MaxConcurrency, 0 would mean no limit, so the runtime never answers less than 1.
            # https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.aws_stepfunctions.DistributedMapProps.html
            **distributed_map(
                "CopyBatches",
                "CopyBatch",
                "$.plan.batches",
                COPY_BATCH,
                "FinalizeShards",
                width={"MaxConcurrencyPath": "$.plan.copy_width"},
            ),
            # The Map may tolerate a share of failed batches: finalize reconciles them from what landed.
            # Always a float: moto's grammar (like a JSON schema for a percentage) wants a number with a
            # fraction here and rejects a bare `0`.
            "ToleratedFailurePercentage": float(tolerated_failure_percentage),
        },
        "FinalizeShards": distributed_map(
            "FinalizeShards", "FinalizeShard", "$.plan.final_shards", FINALIZE_SHARD, "Finalize"
        ),
        "Finalize": lambda_task(
            {"Payload": step_event(FINALIZE, dataset="$.dataset", run_id="$.plan.run_id", execution=execution)},
            # Only what the next states read: the execution's state stays far below 256 KiB.
            ResultSelector={
                "status.$": "$.Payload.summary.status",
                "notification.$": "$.Payload.notification",
                "replan.$": "$.Payload.replan",
            },
            ResultPath="$.finalize",
            Catch=failed_at("Finalize"),
            Next="NotifyRun",
        ),
        **report_run("$.finalize", "$.finalize.status", "NotifyRun", "PlanAgain", "RunOutcome"),
        # Objects that failed to land fail the execution (after the notification went out), so the
        # ExecutionsFailed metric and alarms on it see them; the objects are retried by the next run.
        "ObjectsFailed": {
            "Type": "Fail",
            "Error": "ObjectsFailed",
            "Cause": "Some objects did not land; the notification and the run's manifest name them and why.",
        },
        "Done": {"Type": "Succeed"},
        # RunInProgress names the execution that holds the dataset; the notification passes that on.
        "ReadSkipCause": {
            "Type": "Pass",
            "Parameters": {"cause.$": "States.StringToJson($.error.Cause)"},
            "ResultPath": "$.skip",
            "Next": "NotifySkipped",
        },
        "NotifySkipped": sns_task(
            publish_status(
                "skipped",
                "States.Format('[ingestion] {}: skipped, another run is in progress', $.dataset)",
                "States.Format('Ingestion of dataset {} skipped by execution {}: {}', $.dataset, "
                "$$.Execution.Name, $.skip.cause.errorMessage)",
            ),
            "Skipped",
            catch=False,
        ),
        "Skipped": {"Type": "Succeed"},
        **{
            f"{step}Failed": {"Type": "Pass", "Result": step, "ResultPath": "$.failed_step", "Next": "ReleaseLock"}
            for step in failing_steps
        },
        # Hands back whatever lock this execution holds (by its id: a plan that failed has no run id to give), so
        # the next execution need not wait out the TTL; an open run stays open and is completed by it. Keeps the
        # caught error in $.error: the failure notification and the execution's error name it.
        "ReleaseLock": lambda_task(
            {"Payload": step_event(RELEASE, dataset="$.dataset", execution=execution)},
            ResultPath=None,
            Retry=[THROTTLE_RETRY, SERVICE_RETRY, DEATH_RETRY],
            Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.release_error", "Next": "DescribeFailure"}],
            Next="DescribeFailure",
        ),
        "DescribeFailure": {
            "Type": "Choice",
            "Choices": [
                {
                    "Or": [{"Variable": "$.error.Error", "StringEquals": name} for name in names],
                    "Next": f"Failure{n}",
                }
                for n, names in enumerate(FAILURE_MEANINGS.values())
            ],
            "Default": "FailureOther",
        },
        **{
            f"Failure{n}": {"Type": "Pass", "Result": meaning, "ResultPath": "$.meaning", "Next": "NotifyFailure"}
            for n, meaning in enumerate(FAILURE_MEANINGS)
        },
        "FailureOther": {"Type": "Pass", "Result": "failed", "ResultPath": "$.meaning", "Next": "NotifyFailure"},
        # Built from $.error as a whole: a crashed Lambda's error may have no Cause, and a missing path
        # here would fail the one step that must not fail.
        "NotifyFailure": sns_task(
            publish_status(
                "failed",
                "States.Format('[ingestion] {}: failed at {}', $.dataset, $.failed_step)",
                "States.Format('Ingestion of dataset {} failed at step {} (execution {}): {} ({}). Error: {}', "
                "$.dataset, $.failed_step, $$.Execution.Name, $.meaning, $.error.Error, "
                "States.JsonToString($.error))",
            ),
            "FailAs",
            catch=False,
        ),
        # The caught error's name becomes the execution's, so a list of failed executions says why; but a Fail
        # state may not raise a name of the reserved `States.` family (moto ends such an execution States.Runtime),
        # so those are named for what they were.
        "FailAs": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.error.Error", "StringMatches": "States.*", "Next": f"Failed{name}"}
                if name == "StepFailed"
                else {"Variable": "$.error.Error", "StringEquals": reserved, "Next": f"Failed{name}"}
                for reserved, name in RESERVED_ERROR_NAMES.items()
            ],
            "Default": "Failed",
        },
        **{
            f"Failed{name}": {
                "Type": "Fail",
                "Error": name,
                "Cause": f"A step failed with {reserved}; the failure notification names the step and the error.",
            }
            for reserved, name in RESERVED_ERROR_NAMES.items()
        },
        "Failed": {
            "Type": "Fail",
            "ErrorPath": "$.error.Error",
            "Cause": "A step failed; the failure notification names the step, the error and its cause.",
        },
    }
    return {
        "Comment": "Ingest one dataset: plan shards, copy batches, finalize shards (Distributed Maps), commit, notify.",
        "StartAt": "CheckInput",
        "TimeoutSeconds": int(execution_timeout_seconds),
        "States": states,
    }


def step_event(step: Step, **fields: Any) -> dict[str, Any]:
    """A task's event for `step` (a path for each field that starts with `$`, else the value itself). Each field
    must be one the contract lets the step take (handler/contract.py): a field the Lambda would refuse fails the
    stack's build, not the night."""
    unknown = sorted(set(fields) - step.fields)
    if unknown:
        raise ValueError(f"the {step.action} step takes no field {', '.join(unknown)} (handler/contract.py)")
    return {"action": step.action} | {
        f"{name}.$" if isinstance(value, str) and value.startswith("$") else name: value
        for name, value in fields.items()
    }
