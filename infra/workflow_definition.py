"""The ingestion state machine, as Amazon States Language built from Python data.

One execution ingests one dataset: input `{"dataset": "<name>"}`, optionally with `"date"`. The steps are
the Lambda actions of docs/lambda-contract.md, so the shape follows that contract:

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
- Each batch is its own child execution so one slow or failing batch is retried on its own. The Map may
  tolerate a share of failed batches (`tolerated_failure_percentage`; at 0 any failed batch fails the run):
  `finalize` reconciles batches that never reported by looking at what landed, so a tolerated failure loses
  nothing already copied and its objects land on the next run.
- `finalize` may answer `replan: true` (the plan resumed an interrupted run); the machine then plans
  again so tonight's files are still ingested.
- Every task catches everything into one `NotifyFailure` step that builds its message from the caught
  error alone, so even a Lambda that crashed before returning anything produces a notification.
  `RunInProgress` from `plan` is not a failure: another execution is doing the work, so this one says
  it skipped and succeeds (failing would page someone for an overlap that heals itself).

`build_definition` is a plain function (no Pulumi) so tests can run the definition in moto's interpreter.
"""

from __future__ import annotations

from typing import Any

from handler.config import LEDGER_ROOT

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SNS_PUBLISH = "arn:aws:states:::sns:publish"
S3_GET_OBJECT = "arn:aws:states:::s3:getObject"
S3_PUT_OBJECT = "arn:aws:states:::s3:putObject"
MAP_RESULTS_PREFIX = f"{LEDGER_ROOT}_map-results/"
"""Where each Map's ResultWriter puts its children's outputs (`<prefix><map run id>/...`) in the raw bucket: under
the ledger root, outside every dataset's ledger (dataset names start with a letter or digit). Nothing reads them;
a lifecycle rule expires them (infra/storage.py)."""

# Errors of the Lambda service itself (throttling, a sandbox that died, a lost response): the function may not
# have run. copy_batch and finalize are idempotent; a plan retried after a lost response finds its own lock and
# ends as skipped, and the next run resumes the plan it wrote.
LAMBDA_SERVICE_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",
]

# Errors the runtime raises on purpose (handler/errors.py): running the step again gives the same answer.
# `LockLost` above all must not be retried: another run owns the dataset now.
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

SERVICE_RETRY = {
    "ErrorEquals": LAMBDA_SERVICE_ERRORS,
    "IntervalSeconds": 2,
    "MaxAttempts": 6,
    "BackoffRate": 2.0,
    "MaxDelaySeconds": 60,
    "JitterStrategy": "FULL",
}
NO_RETRY = {"ErrorEquals": NOT_RETRYABLE_ERRORS, "MaxAttempts": 0}
# Anything else escaped the handler after boto3's own retries: an outage or a bug. copy_batch and finalize
# are idempotent, so a couple of slow retries cost little and ride out the outage.
OTHER_RETRY = {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "MaxAttempts": 2, "BackoffRate": 3.0}

CATCH_ALL = {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NotifyFailure"}
RELEASE_THEN_NOTIFY = {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ReleaseLock"}
"""After the plan stored a run, a failed step hands the lock back before the failure notification: the run
stays open for the next execution, which should not have to wait out the lock's TTL to complete it."""


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
    function_arn: str, topic_arn: str, map_concurrency: int, tolerated_failure_percentage: float, results_bucket: str
) -> dict[str, Any]:
    """The state machine definition (a STANDARD workflow) for one Lambda function and one SNS topic."""
    if map_concurrency < 1:
        raise ValueError(f"map_concurrency must be at least 1, got {map_concurrency}")
    if not 0 <= tolerated_failure_percentage <= 100:
        raise ValueError(f"tolerated_failure_percentage must be within 0-100, got {tolerated_failure_percentage}")

    def invoke(payload: dict[str, Any]) -> dict[str, Any]:
        return {"FunctionName": function_arn, "Payload": payload}

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

    def distributed_map(items_path: str, action: str, unit: str, next_state: str) -> dict[str, Any]:
        """One Lambda invocation per item of the list at `items_path`, each retried on its own."""
        return {
            "Type": "Map",
            "ItemReader": {
                "Resource": S3_GET_OBJECT,
                "ReaderConfig": {"InputType": "JSON"},
                "Parameters": {"Bucket.$": f"{items_path}.bucket", "Key.$": f"{items_path}.key"},
            },
            "ItemSelector": {
                "action": action,
                "dataset.$": "$$.Map.Item.Value.dataset",
                "run_id.$": "$$.Map.Item.Value.run_id",
                f"{unit}.$": f"$$.Map.Item.Value.{unit}",
            },
            "MaxConcurrency": int(map_concurrency),
            "ItemProcessor": {
                # STANDARD children: a step can run for the Lambda's full 15 minutes and then be retried,
                # longer than an EXPRESS child may live.
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Step",
                "States": {
                    "Step": {
                        "Type": "Task",
                        "Resource": LAMBDA_INVOKE,
                        "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
                        # The answer stays in the child's history; each child returns only its number, so the
                        # Map's collected result stays far below the 256 KiB payload limit.
                        "ResultPath": None,
                        "OutputPath": f"$.{unit}",
                        "Retry": [NO_RETRY, SERVICE_RETRY, OTHER_RETRY],
                        "End": True,
                    }
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
            "Catch": [RELEASE_THEN_NOTIFY],
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
    }

    notify_retry = {
        "ErrorEquals": ["States.TaskFailed"],
        "IntervalSeconds": 2,
        "MaxAttempts": 3,
        "BackoffRate": 2.0,
    }

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
                {"Variable": "$.dataset", "IsPresent": True, "Next": "PlanRequestForToday"},
            ],
            "Default": "InvalidInput",
        },
        "InvalidInput": {
            "Type": "Fail",
            "Error": "InvalidInput",
            "Cause": 'The execution input must be {"dataset": "<name>"} with an optional "date".',
        },
        # The plan request is built once, so a replan after a resumed run asks exactly the same question.
        "PlanRequestForDate": {
            "Type": "Pass",
            "Parameters": {"action": "plan", "dataset.$": "$.dataset", "date.$": "$.date"},
            "ResultPath": "$.plan_request",
            "Next": "Plan",
        },
        "PlanRequestForToday": {
            "Type": "Pass",
            "Parameters": {"action": "plan", "dataset.$": "$.dataset"},
            "ResultPath": "$.plan_request",
            "Next": "Plan",
        },
        # Plan is not retried on errors of its own: it takes the dataset's lock, and a retry after a crash
        # would find that lock held. The next scheduled run resumes the interrupted plan instead.
        "Plan": {
            "Type": "Task",
            "Resource": LAMBDA_INVOKE,
            "Parameters": {"FunctionName": function_arn, "Payload.$": "$.plan_request"},
            "ResultSelector": plan_answer,
            "ResultPath": "$.plan",
            "Retry": [NO_RETRY, SERVICE_RETRY],
            "Catch": [
                {"ErrorEquals": ["RunInProgress"], "ResultPath": "$.error", "Next": "NotifySkipped"},
                CATCH_ALL,
            ],
            "Next": "PlanStage",
        },
        # A new run's shards are planned first; a resumed run's plan is sealed already.
        "PlanStage": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.plan.stage", "StringEquals": "planning", "Next": "PlanShards"}],
            "Default": "AnythingToCopy",
        },
        "PlanShards": distributed_map("$.plan.shards", "plan_shard", "shard", "SealPlan"),
        # Another round (shards that listed their key budget hand on the rest), or the durable plan.
        "SealPlan": {
            "Type": "Task",
            "Resource": LAMBDA_INVOKE,
            "Parameters": invoke({"action": "seal_plan", "dataset.$": "$.dataset", "run_id.$": "$.plan.run_id"}),
            "ResultSelector": plan_answer,
            "ResultPath": "$.plan",
            "Retry": [NO_RETRY, SERVICE_RETRY, OTHER_RETRY],
            "Catch": [RELEASE_THEN_NOTIFY],
            "Next": "PlanStage",
        },
        "AnythingToCopy": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.plan.batch_count", "NumericEquals": 0, "Next": "NotifyNothingToCopy"}],
            "Default": "CopyBatches",
        },
        "NotifyNothingToCopy": {
            "Type": "Task",
            "Resource": SNS_PUBLISH,
            "Parameters": publish_notification("$.plan.notification"),
            "ResultPath": None,
            "Retry": [notify_retry],
            "Catch": [CATCH_ALL],
            "Next": "PlanAgainAfterEmptyRun",
        },
        # An interrupted run with nothing left to copy is finished by plan itself; then plan tonight's work.
        "PlanAgainAfterEmptyRun": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.plan.replan", "BooleanEquals": True, "Next": "Plan"}],
            "Default": "PlanOutcome",
        },
        "PlanOutcome": outcome_choice("$.plan.summary.status"),
        "CopyBatches": {
            **distributed_map("$.plan.batches", "copy_batch", "batch", "FinalizeShards"),
            # The Map may tolerate a share of failed batches: finalize reconciles them from what landed.
            # Always a float: moto's grammar (like a JSON schema for a percentage) wants a number with a
            # fraction here and rejects a bare `0`.
            "ToleratedFailurePercentage": float(tolerated_failure_percentage),
        },
        "FinalizeShards": distributed_map("$.plan.final_shards", "finalize_shard", "shard", "Finalize"),
        "Finalize": {
            "Type": "Task",
            "Resource": LAMBDA_INVOKE,
            "Parameters": invoke({"action": "finalize", "dataset.$": "$.dataset", "run_id.$": "$.plan.run_id"}),
            "ResultSelector": {
                "summary.$": "$.Payload.summary",
                "notification.$": "$.Payload.notification",
                "replan.$": "$.Payload.replan",
            },
            "ResultPath": "$.finalize",
            "Retry": [NO_RETRY, SERVICE_RETRY, OTHER_RETRY],
            "Catch": [RELEASE_THEN_NOTIFY],
            "Next": "NotifyRun",
        },
        # Keeps the caught error in $.error: the failure notification and the execution's error name it.
        "ReleaseLock": {
            "Type": "Task",
            "Resource": LAMBDA_INVOKE,
            "Parameters": invoke({"action": "release", "dataset.$": "$.dataset", "run_id.$": "$.plan.run_id"}),
            "ResultPath": None,
            "Retry": [SERVICE_RETRY],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.release_error", "Next": "NotifyFailure"}],
            "Next": "NotifyFailure",
        },
        "NotifyRun": {
            "Type": "Task",
            "Resource": SNS_PUBLISH,
            "Parameters": publish_notification("$.finalize.notification"),
            "ResultPath": None,
            "Retry": [notify_retry],
            "Catch": [CATCH_ALL],
            "Next": "PlanAgain",
        },
        "PlanAgain": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.finalize.replan", "BooleanEquals": True, "Next": "Plan"}],
            "Default": "RunOutcome",
        },
        "RunOutcome": outcome_choice("$.finalize.summary.status"),
        # Objects that failed to land fail the execution (after the notification went out), so the
        # ExecutionsFailed metric and alarms on it see them; the objects are retried by the next run.
        "ObjectsFailed": {
            "Type": "Fail",
            "Error": "ObjectsFailed",
            "Cause": "Some objects did not land; the notification and the run's manifest name them and why.",
        },
        "Done": {"Type": "Succeed"},
        "NotifySkipped": {
            "Type": "Task",
            "Resource": SNS_PUBLISH,
            "Parameters": publish_status(
                "skipped",
                "States.Format('[ingestion] {}: skipped, another run is in progress', $.dataset)",
                "States.Format('Ingestion of dataset {} skipped: another run is in progress "
                "(execution {}).', $.dataset, $$.Execution.Name)",
            ),
            "ResultPath": None,
            "Retry": [notify_retry],
            "Next": "Skipped",
        },
        "Skipped": {"Type": "Succeed"},
        # Built from $.error as a whole: a crashed Lambda's error may have no Cause, and a missing path
        # here would fail the one step that must not fail.
        "NotifyFailure": {
            "Type": "Task",
            "Resource": SNS_PUBLISH,
            "Parameters": publish_status(
                "failed",
                "States.Format('[ingestion] {}: failed', $.dataset)",
                "States.Format('Ingestion of dataset {} failed (execution {}). Error: {}', "
                "$.dataset, $$.Execution.Name, States.JsonToString($.error))",
            ),
            "ResultPath": None,
            "Retry": [notify_retry],
            "Next": "Failed",
        },
        # The caught error's name becomes the execution's, so a list of failed executions says why.
        "Failed": {
            "Type": "Fail",
            "ErrorPath": "$.error.Error",
            "Cause": "A step failed; the failure notification carries the error and its cause.",
        },
    }
    return {
        "Comment": "Ingest one dataset: plan shards, copy batches, finalize shards (Distributed Maps), commit, notify.",
        "StartAt": "CheckInput",
        "States": states,
    }
