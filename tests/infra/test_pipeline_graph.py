"""The resource graph of the program under Pulumi mocks: what exists, how it is configured, what it exports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from handler.config import parse_config
from handler.layout import LEDGER_ROOT
from infra.function import HANDLER, handler_files
from infra.stack_config import FunctionSettings, StackConfig, Subscription, WorkflowSettings
from infra.workflow_definition import MAP_RESULTS_PREFIX, build_definition
from tests.infra.harness import (
    ACCOUNT,
    AUTONAME_SUFFIX,
    DEV_CONFIG,
    DEV_RAW,
    DEV_SOURCE,
    HANDLER_DIR,
    REGION,
    Deployment,
    RecordingMocks,
    dev_config,
    dev_stack_config,
    two_dataset_config,
)

BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FUNCTION = "aws:lambda/function:Function"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"
SCHEDULE = "aws:scheduler/schedule:Schedule"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
BUCKET_LOGGING = "aws:s3/bucketLogging:BucketLogging"
SCHEDULE_GROUP = "aws:scheduler/scheduleGroup:ScheduleGroup"
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# No config names the access log bucket: Pulumi names it `<logical>-<random>`, as the mocks do.
LOG_BUCKET = "ingestion-access-logs-bucket" + AUTONAME_SUFFIX

Build = Callable[[StackConfig], Deployment]
Run = Callable[[dict[str, str]], Deployment]


def bucket_settings(deployment: Deployment, typ: str) -> dict[str, dict[str, Any]]:
    """bucket name -> inputs of the one resource of `typ` configuring it."""
    settings: dict[str, dict[str, Any]] = {}
    for resource in deployment.of_type(typ):
        assert resource.inputs["bucket"] not in settings, f"two {typ} for {resource.inputs['bucket']}"
        settings[resource.inputs["bucket"]] = resource.inputs
    return settings


def lifecycle_rules(deployment: Deployment) -> dict[str, dict[str, dict[str, Any]]]:
    """bucket name -> rule id -> lifecycle rule, as the program registered them."""
    rules: dict[str, dict[str, dict[str, Any]]] = {}
    for bucket, inputs in bucket_settings(deployment, LIFECYCLE).items():
        ids = [rule["id"] for rule in inputs["rules"]]
        assert len(ids) == len(set(ids)), f"duplicate lifecycle rule ids on {bucket}: {ids}"
        rules[bucket] = {rule["id"]: rule for rule in inputs["rules"]}
    return rules


LEDGER_RULE = "expire-noncurrent-ledger-versions"
ABORT_RULE = "abort-incomplete-multipart-uploads"
MAP_RESULTS_RULE = "expire-map-results"


# --- which resources exist ------------------------------------------------------------------------


def test_dev_stack_creates_three_secured_buckets_their_log_bucket_and_one_of_everything_else(
    run_program: Run,
) -> None:
    deployment = run_program(dev_stack_config())
    counts = deployment.counts()
    for typ in (BUCKET, PUBLIC_ACCESS_BLOCK, OWNERSHIP, ENCRYPTION, VERSIONING, LIFECYCLE, BUCKET_POLICY):
        assert counts[typ] == 4, typ
    assert sorted(b.state["bucket"] for b in deployment.of_type(BUCKET)) == [
        DEV_CONFIG,
        DEV_SOURCE,
        DEV_RAW,
        LOG_BUCKET,
    ]
    assert counts[BUCKET_LOGGING] == 3  # every bucket but the log bucket logs into it
    assert counts[OBJECT] == 1
    assert counts[TOPIC] == 1
    assert counts.get(SUBSCRIPTION, 0) == 0  # the dev stack lists no addresses yet
    assert counts[FUNCTION] == 1
    assert counts[LOG_GROUP] == 2  # the function's and the state machine's
    assert counts[STATE_MACHINE] == 1
    assert counts[SCHEDULE] == 1
    assert counts[SCHEDULE_GROUP] == 1
    assert counts[ROLE] == 3  # function, state machine, scheduler
    assert counts[ROLE_POLICY] == 4  # function, state machine (two: before and after it exists), scheduler
    # Nothing else: a new resource type is a deliberate change to this list.
    components = {
        "data-file-ingestion:pipeline:IngestionPipeline": 1,
        "data-file-ingestion:storage:SecureBucket": 4,
        "data-file-ingestion:config:ConfigObjects": 1,
        "data-file-ingestion:notifications:Notifications": 1,
        "data-file-ingestion:compute:IngestFunction": 1,
        "data-file-ingestion:workflow:Workflow": 1,
        "data-file-ingestion:schedule:DatasetSchedules": 1,
        "data-file-ingestion:catalog:LedgerCatalog": 1,
        "data-file-ingestion:catalog:RawTables": 1,
        "data-file-ingestion:monitoring:Monitoring": 1,
    }
    # The database, the ledger's manifest and runs tables and MovieLens' four described tables; six alarms
    # (executions, the schedules' failures, and the one dataset's objects failed, freshness, dead letters and schema
    # drift); one
    # dashboard; the schedules' own group, and the one schedule's dead-letter queue with its TLS-only policy.
    operated = {
        "aws:glue/catalogDatabase:CatalogDatabase": 1,
        "aws:glue/catalogTable:CatalogTable": 2 + 4,
        "aws:cloudwatch/metricAlarm:MetricAlarm": 6,
        "aws:scheduler/scheduleGroup:ScheduleGroup": 1,
        "aws:sqs/queue:Queue": 1,
        "aws:sqs/queuePolicy:QueuePolicy": 1,
        "aws:cloudwatch/dashboard:Dashboard": 1,
        "aws:kms/key:Key": 1,  # the topic's: alarms cannot publish to a topic under SNS's AWS managed key
        "aws:lambda/layerVersion:LayerVersion": 1,  # the pinned SDK (lambdaSdkLayer, tests/infra/test_sdk_layer.py)
    }
    expected = {t: 4 for t in (BUCKET, PUBLIC_ACCESS_BLOCK, OWNERSHIP, ENCRYPTION, VERSIONING, LIFECYCLE)}
    expected.update(
        {
            BUCKET_POLICY: 4,
            BUCKET_LOGGING: 3,
            SCHEDULE_GROUP: 1,
            OBJECT: 1,
            TOPIC: 1,
            FUNCTION: 1,
            LOG_GROUP: 2,
            STATE_MACHINE: 1,
        }
    )
    expected.update({SCHEDULE: 1, ROLE: 3, ROLE_POLICY: 4, **components, **operated})
    assert counts == expected


def test_two_datasets_in_existing_buckets_get_no_source_bucket_but_one_schedule_and_config_each(
    build_pipeline: Build,
) -> None:
    deployment = build_pipeline(two_dataset_config())
    assert sorted(b.state["bucket"] for b in deployment.of_type(BUCKET)) == [
        "acme-ingestion-config",
        "acme-raw",
        LOG_BUCKET,
    ]
    assert len(deployment.of_type(SCHEDULE)) == 2
    assert sorted(o.inputs["key"] for o in deployment.of_type(OBJECT)) == [
        "config/click_stream.json",
        "config/orders.json",
    ]
    assert len(deployment.of_type(FUNCTION)) == 1
    assert len(deployment.of_type(STATE_MACHINE)) == 1


def test_every_cloud_resource_lives_in_a_component_of_the_pipeline(run_program: Run) -> None:
    deployment = run_program(dev_stack_config())
    # A URN's type part is `<parent type>$<own type>`.
    parent_of = {}
    for urn in deployment.urns:
        parent, _, own = urn.split("::")[2].rpartition("$")
        parent_of.setdefault(own, set()).add(parent)
    cloud = {t: p for t, p in parent_of.items() if t.startswith("aws:")}
    assert len(cloud) >= 10
    for typ, parents in cloud.items():
        for parent in parents:
            assert parent.startswith("data-file-ingestion:") and parent.count(":") == 2, (typ, parent)
            # Only single-concern components own cloud resources; the pipeline only composes them.
            assert parent != "data-file-ingestion:pipeline:IngestionPipeline", typ
    components = {t: p for t, p in parent_of.items() if t.startswith("data-file-ingestion:")}
    assert components.pop("data-file-ingestion:pipeline:IngestionPipeline") == {"pulumi:pulumi:Stack"}
    assert len(components) == 9
    assert all(p == {"data-file-ingestion:pipeline:IngestionPipeline"} for p in components.values())
    # Children are named from their component, so two pipelines in one stack could not collide.
    assert all(r.name.startswith("ingestion") for r in deployment.resources)


# --- buckets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kms", [False, True], ids=["sse-s3", "sse-kms"])
def test_every_bucket_is_private_encrypted_versioned_owner_enforced_and_tls_only(
    build_pipeline: Build, kms: bool
) -> None:
    config = dev_config()
    if kms:
        config = StackConfig(**{**config.__dict__, "kms_key_arn": KMS_KEY})
    deployment = build_pipeline(config)
    buckets = [b.state["bucket"] for b in deployment.of_type(BUCKET)]
    assert len(buckets) == 4

    public = bucket_settings(deployment, PUBLIC_ACCESS_BLOCK)
    ownership = bucket_settings(deployment, OWNERSHIP)
    encryption = bucket_settings(deployment, ENCRYPTION)
    versioning = bucket_settings(deployment, VERSIONING)
    lifecycle = bucket_settings(deployment, LIFECYCLE)
    policies = bucket_settings(deployment, BUCKET_POLICY)
    for bucket in buckets:
        assert public[bucket] | {"bucket": None} == {
            "bucket": None,
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": True,
        }
        assert ownership[bucket]["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
        (rule,) = encryption[bucket]["rules"]
        if kms and bucket != LOG_BUCKET:  # S3 delivers no access logs into an SSE-KMS bucket
            assert rule["applyServerSideEncryptionByDefault"] == {
                "sseAlgorithm": "aws:kms",
                "kmsMasterKeyId": KMS_KEY,
            }
            assert rule["bucketKeyEnabled"] is True
        else:
            assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
            assert "bucketKeyEnabled" not in rule
        assert versioning[bucket]["versioningConfiguration"] == {"status": "Enabled"}
        (abort,) = [rule for rule in lifecycle[bucket]["rules"] if rule["id"] == ABORT_RULE]
        assert abort["status"] == "Enabled"
        assert abort["filter"] == {"prefix": ""}
        assert abort["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 7
        policy = json.loads(policies[bucket]["policy"])
        assert policy["Statement"][0] == {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
        # Only the log bucket allows anything more: S3's log delivery (test_audit.py).
        assert len(policy["Statement"]) == (2 if bucket == LOG_BUCKET else 1)


def test_raw_bucket_expires_noncurrent_ledger_versions_after_7_days_by_default(run_program: Run) -> None:
    deployment = run_program(dev_stack_config())
    rule = lifecycle_rules(deployment)[DEV_RAW][LEDGER_RULE]
    assert rule == {
        "id": LEDGER_RULE,
        "status": "Enabled",
        "filter": {"prefix": "_ingestion/"},
        "noncurrentVersionExpiration": {"noncurrentDays": 7},
        # Removes the delete markers left once a deleted work/ file's versions have expired.
        "expiration": {"expiredObjectDeleteMarker": True},
    }
    assert rule["filter"]["prefix"] == LEDGER_ROOT


def test_ledger_noncurrent_version_days_follow_the_stack_config_key(run_program: Run) -> None:
    config = {**dev_stack_config(), "data-file-ingestion:ledgerNoncurrentVersionDays": "30"}
    deployment = run_program(config)
    rule = lifecycle_rules(deployment)[DEV_RAW][LEDGER_RULE]
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": 30}


def test_only_the_raw_bucket_gets_the_ledger_rule(run_program: Run) -> None:
    deployment = run_program(dev_stack_config())
    rules = lifecycle_rules(deployment)
    assert set(rules) == {
        DEV_RAW,
        DEV_CONFIG,
        DEV_SOURCE,
        LOG_BUCKET,
    }
    assert set(rules[DEV_RAW]) == {ABORT_RULE, LEDGER_RULE, MAP_RESULTS_RULE}
    # The config bucket and a created source bucket hold no ledger: their versions are the safety net.
    assert set(rules[DEV_CONFIG]) == {ABORT_RULE}
    assert set(rules[DEV_SOURCE]) == {ABORT_RULE}


@pytest.mark.parametrize("which", ["dev", "two-datasets"])
def test_no_lifecycle_rule_expires_current_versions_or_touches_landed_data(build_pipeline: Build, which: str) -> None:
    config = dev_config() if which == "dev" else two_dataset_config(ledger_noncurrent_version_days=1)
    deployment = build_pipeline(config)
    target_prefixes = {ds.target.prefix for ds in config.datasets.datasets.values()}
    assert target_prefixes and all(target_prefixes)
    for bucket, rules in lifecycle_rules(deployment).items():
        if bucket == LOG_BUCKET:
            continue  # holds access logs, which expire (test_audit.py), and no data
        for rule_id, rule in rules.items():
            if rule_id == MAP_RESULTS_RULE:
                # The one rule that expires current versions: the state machine's Map results, which nothing
                # reads, under a prefix no dataset's ledger or target overlaps.
                assert rule["filter"] == {"prefix": MAP_RESULTS_PREFIX}, bucket
                assert rule["expiration"] == {"days": 7}, bucket
                for ds in config.datasets.datasets.values():
                    assert not MAP_RESULTS_PREFIX.startswith(ds.ledger_prefix) and not ds.target.prefix.startswith(
                        LEDGER_ROOT
                    )
                continue
            # Raw data is kept: nothing ever expires or transitions a current version.
            expiration = rule.get("expiration") or {}
            assert "days" not in expiration and "date" not in expiration, (bucket, rule_id)
            assert not rule.get("transitions") and not rule.get("noncurrentVersionTransitions"), (bucket, rule_id)
            if rule_id == ABORT_RULE:
                assert set(rule) == {"id", "status", "filter", "abortIncompleteMultipartUpload"}
                continue
            # Any rule that deletes versions or markers is confined to the ledger, which no target prefix
            # overlaps (the runtime refuses target prefixes and landed keys under it).
            prefix = rule["filter"]["prefix"]
            assert prefix == LEDGER_ROOT, (bucket, rule_id)
            assert set(rule["filter"]) == {"prefix"}, (bucket, rule_id)
            for target in target_prefixes:
                assert not target.startswith(prefix) and not prefix.startswith(target), (bucket, rule_id, target)


def test_buckets_keep_their_objects_on_destroy_unless_the_stack_says_otherwise(build_pipeline: Build) -> None:
    deployment = build_pipeline(two_dataset_config())
    assert [b.inputs.get("forceDestroy", False) for b in deployment.of_type(BUCKET)] == [False, False, False]


# --- config objects --------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["dev", "two-datasets"])
def test_config_objects_hold_exactly_the_validated_stack_config(build_pipeline: Build, which: str) -> None:
    config = dev_config() if which == "dev" else two_dataset_config()
    deployment = build_pipeline(config)
    objects = {o.inputs["key"]: o.inputs for o in deployment.of_type(OBJECT)}
    assert set(objects) == {f"config/{name}.json" for name in config.datasets.datasets}
    for name, ds in config.datasets.datasets.items():
        obj = objects[f"config/{name}.json"]
        assert obj["bucket"] == config.config_bucket
        assert obj["contentType"] == "application/json"
        document = json.loads(obj["content"])
        assert document == {"datasets": {name: ds.to_dict()}}
        # What the Lambda will parse is the dataset the stack validated, field for field.
        assert parse_config(document).dataset(name) == ds


# --- notifications ---------------------------------------------------------------------------------


def test_topic_is_encrypted_and_every_configured_subscriber_is_subscribed(build_pipeline: Build) -> None:
    subscribers = (
        Subscription("email", "data-team@example.com"),
        Subscription("email", "oncall@example.com"),
        Subscription("https", "https://hooks.example.com/ingest"),
    )
    deployment = build_pipeline(two_dataset_config(subscriptions=subscribers))
    (topic,) = deployment.of_type(TOPIC)
    assert topic.inputs["kmsMasterKeyId"] == deployment.of_type("aws:kms/key:Key")[0].arn
    subscriptions = deployment.of_type(SUBSCRIPTION)
    assert sorted((s.inputs["protocol"], s.inputs["endpoint"]) for s in subscriptions) == sorted(
        (s.protocol, s.endpoint) for s in subscribers
    )
    assert {s.inputs["topic"] for s in subscriptions} == {topic.arn}


def test_topic_uses_the_stack_key_when_one_is_configured(build_pipeline: Build) -> None:
    deployment = build_pipeline(two_dataset_config(kms_key_arn=KMS_KEY))
    (topic,) = deployment.of_type(TOPIC)
    assert topic.inputs["kmsMasterKeyId"] == KMS_KEY


# --- function --------------------------------------------------------------------------------------


def test_function_runs_the_handler_package_with_configured_size_and_environment(build_pipeline: Build) -> None:
    config = two_dataset_config(
        function=FunctionSettings(memory_mb=2048, timeout_seconds=600, reserved_concurrency=40),
        workflow=WorkflowSettings(map_concurrency=30),
    )
    deployment = build_pipeline(config)
    (function,) = deployment.of_type(FUNCTION)
    (topic,) = deployment.of_type(TOPIC)
    inputs = function.inputs
    assert inputs["runtime"] in {aws.lambda_.Runtime.PYTHON3D12.value, aws.lambda_.Runtime.PYTHON3D13.value}
    assert inputs["handler"] == "handler.lambda_function.handler" == HANDLER
    assert inputs["memorySize"] == 2048
    assert inputs["timeout"] == 600
    assert inputs["reservedConcurrentExecutions"] == 40
    assert inputs["environment"] == {
        "variables": {
            "CONFIG_BUCKET": "acme-ingestion-config",
            "CONFIG_KEY": "config/{dataset}.json",
            "SNS_TOPIC_ARN": topic.arn,
            "METRICS_NAMESPACE": "data-file-ingestion/test",
            # Where each commit registers its night's partitions: the stack's database.
            "GLUE_DATABASE": "data_file_ingestion_test",
        }
    }
    assert inputs["role"] == deployment.named("ingestion-lambda-role").arn


def test_function_timeout_defaults_to_fifteen_minutes_and_reserves_what_both_datasets_runs_need(
    build_pipeline: Build,
) -> None:
    deployment = build_pipeline(two_dataset_config())
    (function,) = deployment.of_type(FUNCTION)
    assert function.inputs["timeout"] == 900
    # Two datasets, each a run of at most mapConcurrency (100) invocations at once, plus one.
    assert function.inputs["reservedConcurrentExecutions"] == 2 * (100 + 1)


def test_function_reserves_nothing_when_reservation_is_turned_off(build_pipeline: Build) -> None:
    deployment = build_pipeline(two_dataset_config(function=FunctionSettings(reserve_concurrency=False)))
    (function,) = deployment.of_type(FUNCTION)
    assert "reservedConcurrentExecutions" not in function.inputs


def test_the_dev_stack_deploys_a_function_without_reservation(run_program: Run) -> None:
    (function,) = run_program(dev_stack_config()).of_type(FUNCTION)
    assert "reservedConcurrentExecutions" not in function.inputs


def test_function_gets_2048_mb_of_ephemeral_storage_by_default(build_pipeline: Build) -> None:
    deployment = build_pipeline(two_dataset_config())
    (function,) = deployment.of_type(FUNCTION)
    assert function.inputs["ephemeralStorage"] == {"size": 2048}


def test_function_ephemeral_storage_follows_the_stack_config_key(run_program: Run) -> None:
    config = {**dev_stack_config(), "data-file-ingestion:lambdaEphemeralStorageMb": "10240"}
    deployment = run_program(config)
    (function,) = deployment.of_type(FUNCTION)
    assert function.inputs["ephemeralStorage"] == {"size": 10240}


def test_program_refuses_an_ephemeral_storage_lambda_cannot_have(run_program: Run, mocks: RecordingMocks) -> None:
    config = {**dev_stack_config(), "data-file-ingestion:lambdaEphemeralStorageMb": "256"}
    with pytest.raises(pulumi.RunError, match=r"data-file-ingestion:lambdaEphemeralStorageMb: must be between 512"):
        run_program(config)
    assert mocks.resources == []


def test_lambda_archive_holds_the_handler_package_and_nothing_else(build_pipeline: Build) -> None:
    deployment = build_pipeline(two_dataset_config())
    (function,) = deployment.of_type(FUNCTION)
    archive = function.inputs["code"]
    assert isinstance(archive, pulumi.AssetArchive)
    on_disk = {
        f"handler/{p.relative_to(HANDLER_DIR).as_posix()}": p
        for p in HANDLER_DIR.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert set(archive.assets) == set(on_disk)
    assert {"handler/__init__.py", "handler/config.py", "handler/errors.py"} <= set(archive.assets)
    for name, asset in archive.assets.items():
        assert isinstance(asset, pulumi.FileAsset)
        assert Path(asset.path).resolve() == on_disk[name].resolve()


def test_the_handler_setting_names_a_module_in_the_archive() -> None:
    module = HANDLER.rsplit(".", 1)[0].replace(".", "/") + ".py"

    assert (HANDLER_DIR.parent / module).is_file()
    assert module in handler_files(HANDLER_DIR)
    assert {"handler/steps/__init__.py", "handler/steps/plan.py"} <= set(handler_files(HANDLER_DIR))


def test_archive_leaves_out_caches_hidden_files_and_non_python_files(tmp_path: Path) -> None:
    package = tmp_path / "handler"
    (package / "__pycache__").mkdir(parents=True)
    (package / "sub").mkdir()
    (package / ".mypy_cache").mkdir()
    for name in ("__init__.py", "lambda_function.py", "sub/__init__.py", "sub/x.py"):
        (package / name).write_text("")
    for name in ("__pycache__/config.cpython-313.pyc", "__pycache__/stale.py", ".mypy_cache/a.py", "notes.txt"):
        (package / name).write_text("")
    assert sorted(handler_files(package)) == [
        "handler/__init__.py",
        "handler/lambda_function.py",
        "handler/sub/__init__.py",
        "handler/sub/x.py",
    ]


def test_function_has_its_own_log_group_with_the_configured_retention(build_pipeline: Build) -> None:
    deployment = build_pipeline(two_dataset_config(log_retention_days=60))
    (function,) = deployment.of_type(FUNCTION)
    group = deployment.named("ingestion-lambda-logs")
    assert group.inputs["name"] == f"/aws/lambda/{function.state['name']}"
    assert group.inputs["retentionInDays"] == 60


# --- state machine ---------------------------------------------------------------------------------


def test_state_machine_runs_the_definition_for_this_function_and_topic(build_pipeline: Build) -> None:
    config = two_dataset_config(workflow=WorkflowSettings(map_concurrency=25, tolerated_failure_percentage=5))
    deployment = build_pipeline(config)
    (machine,) = deployment.of_type(STATE_MACHINE)
    (function,) = deployment.of_type(FUNCTION)
    (topic,) = deployment.of_type(TOPIC)
    assert machine.inputs["type"] == "STANDARD"
    assert machine.inputs["roleArn"] == deployment.named("ingestion-workflow-role").arn
    assert json.loads(machine.inputs["definition"]) == build_definition(
        function.arn, topic.arn, 25, 5.0, config.raw_bucket
    )


@pytest.mark.parametrize("level", ["ERROR", "ALL"])
def test_state_machine_logs_to_its_own_group_without_execution_data(build_pipeline: Build, level: str) -> None:
    config = two_dataset_config(workflow=WorkflowSettings(log_level=level), log_retention_days=90)
    deployment = build_pipeline(config)
    (machine,) = deployment.of_type(STATE_MACHINE)
    group = deployment.named("ingestion-workflow-logs")
    assert group.state["name"].startswith("/aws/vendedlogs/states/")
    assert group.inputs["retentionInDays"] == 90
    assert machine.inputs["loggingConfiguration"] == {
        "level": level,
        "includeExecutionData": False,
        "logDestination": f"{group.arn}:*",
    }


# --- schedules -------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["dev", "two-datasets"])
def test_one_schedule_per_dataset_starts_the_state_machine_for_that_dataset(build_pipeline: Build, which: str) -> None:
    config = dev_config() if which == "dev" else two_dataset_config()
    deployment = build_pipeline(config)
    (machine,) = deployment.of_type(STATE_MACHINE)
    scheduler_role = deployment.named("ingestion-schedules-role")
    schedules = {s.name.removeprefix("ingestion-schedules-"): s.inputs for s in deployment.of_type(SCHEDULE)}
    assert set(schedules) == set(config.datasets.datasets)
    (group,) = deployment.of_type("aws:scheduler/scheduleGroup:ScheduleGroup")
    queues = {
        q.name.removeprefix("ingestion-schedules-").removesuffix("-dlq"): q
        for q in deployment.of_type("aws:sqs/queue:Queue")
    }
    assert set(queues) == set(schedules)
    for name, ds in config.datasets.datasets.items():
        schedule = schedules[name]
        assert schedule["scheduleExpression"] == ds.schedule.strip()
        assert schedule["scheduleExpressionTimezone"] == ds.timezone
        assert schedule["flexibleTimeWindow"] == {"mode": "OFF"}
        target = schedule["target"]
        assert target["arn"] == machine.arn
        assert target["roleArn"] == scheduler_role.arn
        # The scheduler fills in the time it fired for; the run's night is that time's date in the dataset's zone.
        assert json.loads(target["input"]) == {"dataset": name, "scheduled_time": "<aws.scheduler.scheduled-time>"}
        assert target["retryPolicy"]["maximumRetryAttempts"] >= 1
        assert 60 <= target["retryPolicy"]["maximumEventAgeInSeconds"] <= 86_400
        # A start that still fails goes to the dataset's own dead-letter queue instead of being dropped.
        assert target["deadLetterConfig"] == {"arn": queues[name].arn}
        assert schedule["groupName"] == group.state["name"]
        queue = queues[name].inputs
        assert queue["messageRetentionSeconds"] == 14 * 24 * 3600  # SQS's longest
        assert queue["sqsManagedSseEnabled"] is True
        assert "fifoQueue" not in queue  # Scheduler takes only a standard queue as a DLQ


def test_schedules_use_the_expression_and_time_zone_from_stack_config(build_pipeline: Build) -> None:
    deployment = build_pipeline(two_dataset_config())
    schedules = {s.name: s.inputs for s in deployment.of_type(SCHEDULE)}
    assert schedules["ingestion-schedules-orders"]["scheduleExpression"] == "cron(30 2 * * ? *)"
    assert schedules["ingestion-schedules-orders"]["scheduleExpressionTimezone"] == "Europe/Berlin"
    # No schedule in config: the default, 20:00 every day.
    assert schedules["ingestion-schedules-click_stream"]["scheduleExpression"] == "cron(0 20 * * ? *)"
    assert schedules["ingestion-schedules-click_stream"]["scheduleExpressionTimezone"] == "UTC"


# --- the program: outputs and bad config -------------------------------------------------------------


def test_program_exports_bucket_names_topic_state_machine_function_and_schedules(run_program: Run) -> None:
    deployment = run_program(dev_stack_config())
    (machine,) = deployment.of_type(STATE_MACHINE)
    (function,) = deployment.of_type(FUNCTION)
    (topic,) = deployment.of_type(TOPIC)
    (schedule,) = deployment.of_type(SCHEDULE)
    (group,) = deployment.of_type("aws:scheduler/scheduleGroup:ScheduleGroup")
    (queue,) = deployment.of_type("aws:sqs/queue:Queue")
    exports = dict(deployment.exports, alarmNames=sorted(deployment.exports["alarmNames"]))
    assert exports == {
        "rawBucketName": DEV_RAW,
        "accessLogBucketName": LOG_BUCKET,
        "configBucketName": DEV_CONFIG,
        "sourceBucketNames": {DEV_SOURCE: DEV_SOURCE},
        "configObjectKeys": {"movielens": "config/movielens.json"},
        "topicArn": topic.arn,
        "functionName": function.state["name"],
        "functionRoleArn": deployment.named("ingestion-lambda-role").arn,
        "stateMachineArn": machine.arn,
        "stateMachineName": machine.state["name"],
        "scheduleNames": {"movielens": schedule.state["name"]},
        "scheduleGroupName": "data-file-ingestion-test",
        "deadLetterQueueUrls": {"movielens": queue.state["url"]},
        "glueDatabaseName": "data_file_ingestion_test",
        "glueTableNames": [
            "manifest",
            "movielens_links",
            "movielens_movies",
            "movielens_ratings",
            "movielens_tags",
            "runs",
        ],
        "metricsNamespace": "data-file-ingestion/test",
        "dashboardName": "ingestion-monitoring-test",
        "alarmNames": sorted(a.state["name"] for a in deployment.of_type(ALARM)),
        "logsKeyPolicyStatement": deployment.exports["logsKeyPolicyStatement"],  # test_audit.py checks it
    }


def test_program_stops_before_creating_anything_when_the_stack_config_is_wrong(
    run_program: Run, mocks: RecordingMocks
) -> None:
    config = dev_stack_config()
    datasets = json.loads(config["data-file-ingestion:datasets"])
    datasets["movielens"]["schedule"] = "cron(0 25 * * ? *)"
    config["data-file-ingestion:datasets"] = json.dumps(datasets)
    with pytest.raises(pulumi.RunError, match=r"data-file-ingestion:datasets\.movielens\.schedule: .*hours"):
        run_program(config)
    assert mocks.resources == []
