"""Stack config -> frozen, validated dataclasses: the one place the program reads `pulumi.Config`.

The datasets use the runtime's own schema (`handler.config.parse_config`), so a dataset that deploys is a
dataset the Lambda accepts, and the object the stack writes for the Lambda is the validated config itself.
The stack adds what only a deployment has: bucket names, the KMS key, subscribers and sizes.

Every stack key is one row of `STACK_SETTINGS` (a `handler.settings.Setting`): its type, default, range and
doc are written there only. The dataclass defaults, the reader's decoding, the checks of `stack_problems`
and the key table in docs/deploy.md (`stack_keys_markdown`) all read it.

Every problem is reported at once, each prefixed with the stack config key it belongs to (for example
`data-file-ingestion:datasets.movielens.schedule`), and `pulumi up` stops before any resource is created.

Two things only a stack does to a dataset before the runtime's schema sees it: every bucket name may hold
`{account_id}` and `{region}` (bucket names are global, so a shipped stack file names its buckets per
account and region), and a dataset that leaves out `target.bucket` lands in `rawBucket`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pulumi

from handler.config import ProcessConfig, parse_config
from handler.errors import ConfigError
from handler.lineage_destination import LineageDestination, destination_problems
from handler.naming import bucket_problems, did_you_mean, glue_database_problems
from handler.settings import REQUIRED, Setting, markdown_table
from handler.width import MAX_MAP_WIDTH

NAMESPACE = "data-file-ingestion"
"""The project name in Pulumi.yaml: stack config keys are `data-file-ingestion:<key>`."""

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
# Protocols a subscriber can use without resources this stack does not own (a Lambda or Firehose
# subscriber needs a permission or role on the subscriber's side; plain http would send run reports
# in clear text).
SUBSCRIPTION_PROTOCOLS = frozenset({"email", "email-json", "https", "sqs", "sms"})
WORKFLOW_LOG_LEVELS = frozenset({"ALL", "ERROR"})
MAX_MAP_CONCURRENCY = MAX_MAP_WIDTH  # the Distributed Map's own limit on concurrent child executions

# A key ARN, not an alias: IAM grants on an alias ARN do not cover using the key it points to.
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# What every AWS service that takes tags accepts (Tagging AWS resources, "Tag naming limits and
# requirements": https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html): letters, digits and
# spaces in UTF-8, and `_ . : / = + - @`. Some services accept more; these tags go on every resource, so
# only what all of them accept.
_TAG_TEXT = re.compile(r"^[\w .:/=+\-@]*$")
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_STACK_TAGS = 40
"""AWS allows 50 user tags on a resource; 10 stay free for tags a team adds by hand or another tool adds."""

PLACEHOLDERS: dict[str, str] = {
    "account_id": "the 12-digit id of the account deployed to",
    "region": "the region deployed to",
}
"""What a bucket name in stack config may contain in braces, each filled in when the program runs."""
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# The dataset fields that name a bucket (each may hold placeholders).
_DATASET_BUCKETS = (("source", "bucket"), ("target", "bucket"), ("inventory", "bucket"))
# Fills a dataset's left-out target.bucket while rawBucket is itself reported wrong, so the dataset's other
# fields are still checked and its target is not blamed for rawBucket's problem. Never deployed: a stack
# whose rawBucket is wrong cannot be constructed.
_RAW_BUCKET_STAND_IN = "raw-bucket-not-set"

Placeholders = Callable[[], Mapping[str, str]]
"""Asked at most once, and only when a name holds a placeholder: `{"account_id": ..., "region": ...}`."""


class StackConfigError(ConfigError):
    """The stack config is wrong; nothing was deployed. Each message names the stack config key."""

    def __init__(self, problems: list[str] | str):
        super().__init__(problems)
        # Same problems as ConfigError, but the headline says which config is wrong.
        self.args = ("invalid stack config:\n  - " + "\n  - ".join(self.problems),)


def key(name: str) -> str:
    """The full stack config key, as `pulumi config set` spells it."""
    return f"{NAMESPACE}:{name}"


@dataclass(frozen=True)
class Subscription:
    """One subscriber of the run notifications."""

    protocol: str
    endpoint: str


def _kms_key_problems(arn: Any) -> list[str]:
    if isinstance(arn, str) and _KMS_KEY_ARN.match(arn):
        return []
    return [
        f"{arn!r} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>); "
        "an alias cannot be used because IAM grants on an alias do not cover the key"
    ]


def _log_level_problems(level: Any) -> list[str]:
    if isinstance(level, str) and level in WORKFLOW_LOG_LEVELS:
        return []
    return [f"{level!r} must be {' or '.join(sorted(WORKFLOW_LOG_LEVELS))} (execution data is never logged either way)"]


def _whole_percentage_problems(value: Any) -> list[str]:
    """asl-validator's States Language schema takes only a whole ToleratedFailurePercentage, and no AWS page says
    CreateStateMachine takes a fraction: refuse one at preview rather than risk a rejected deploy."""
    if isinstance(value, int | float) and float(value).is_integer():
        return []
    return [f"must be a whole percentage (0, 1, ... 100), got {value!r}"]


def tag_problems(tags: Any) -> list[str]:
    """AWS's tag rules, checked before anything is deployed; each problem names the tag.

    A tag key starting with `aws:` is reserved for AWS (any case), and a service refuses the whole request
    for one bad tag, so one bad tag here would fail every resource's creation.
    """
    if not isinstance(tags, Mapping):
        return ['must be an object of tag key -> value: {"owner": "data-team", "cost-centre": "cc-1234"}']
    problems: list[str] = []
    if len(tags) > MAX_STACK_TAGS:
        problems.append(
            f"{len(tags)} tags; at most {MAX_STACK_TAGS}, so every resource stays under AWS's 50 with room to spare"
        )
    for tag, value in tags.items():
        if not isinstance(tag, str) or not 1 <= len(tag) <= MAX_TAG_KEY:
            problems.append(f"tag key {tag!r} must be 1 to {MAX_TAG_KEY} characters")
        elif tag.lower().startswith("aws:"):
            problems.append(f"tag key {tag!r}: the prefix 'aws:' is reserved for AWS's own tags")
        elif not _TAG_TEXT.match(tag):
            problems.append(f"tag key {tag!r} may hold only letters, digits, spaces and _ . : / = + - @")
        if not isinstance(value, str):
            problems.append(f"tag {tag!r}: the value must be a string (quote numbers and booleans), got {value!r}")
        elif len(value) > MAX_TAG_VALUE:
            problems.append(f"tag {tag!r}: the value must be at most {MAX_TAG_VALUE} characters")
        elif not _TAG_TEXT.match(value):
            problems.append(f"tag {tag!r}: the value may hold only letters, digits, spaces and _ . : / = + - @")
    return problems


STACK_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "rawBucket",
        str,
        REQUIRED,
        "Name of the raw bucket the stack creates, where every dataset lands: a dataset may leave `target.bucket` "
        "out, and one it gives must be this bucket. May contain `{account_id}` and `{region}`.",
        attribute="raw_bucket",
        check=bucket_problems,
    ),
    Setting(
        "configBucket",
        str,
        REQUIRED,
        "Name of the config bucket the stack creates. May contain `{account_id}` and `{region}`.",
        attribute="config_bucket",
        check=bucket_problems,
    ),
    Setting(
        "datasets",
        dict,
        REQUIRED,
        "Object of dataset name → dataset config: the same schema as the process config's `datasets` "
        "(`handler/config.py`), validated by the same code. Here `target.bucket` may be left out (it is "
        "`rawBucket`) and every bucket name may contain `{account_id}` and `{region}`.",
    ),
    Setting(
        "kmsKeyArn",
        str,
        None,
        "A KMS key ARN (not an alias) for the buckets and the topic; without one, SSE-S3.",
        attribute="kms_key_arn",
        check=_kms_key_problems,
    ),
    Setting(
        "notificationEmails",
        list,
        (),
        "Email addresses subscribed to run reports: `pulumi config set --path 'notificationEmails[0]' "
        "you@example.com`. Each address gets a confirmation email to click once.",
        attribute="subscriptions",
    ),
    Setting(
        "subscriptions",
        list,
        (),
        'Other subscribers: `[{"protocol": "https", "endpoint": "https://..."}]`; protocols '
        + ", ".join(f"`{p}`" for p in sorted(SUBSCRIPTION_PROTOCOLS))
        + ". An SQS queue must allow the topic to send to it.",
    ),
    Setting(
        "lambdaMemoryMb",
        int,
        1769,
        "Function memory in MB. 1,769 MB is one full vCPU, which the per-object work of planning and copying "
        "uses; less is proportionally slower, for about the same GB-seconds (docs/SCALE.md).",
        128,
        10_240,
        attribute="function.memory_mb",
    ),
    Setting(
        "lambdaTimeoutSeconds", int, 900, "Function timeout in seconds.", 1, 900, attribute="function.timeout_seconds"
    ),
    Setting(
        "lambdaSdkLayer",
        bool,
        True,
        "Attach a layer, built from requirements.txt's pins as installed in `.venv`, with boto3, botocore and their "
        "dependencies, so the function runs on the SDK the tests ran against. `false`: the runtime's own SDK "
        "(the function still refuses one older than botocore 1.40.61).",
        attribute="function.sdk_layer",
    ),
    Setting(
        "lambdaEphemeralStorageMb",
        int,
        2048,
        "Function `/tmp` in MB. A shard's plan and finalize keep its keys in an on-disk SQLite file and spool its "
        "state part and manifest part there, about 600 bytes a key at the peak: 2048 MB holds a shard of "
        "`shard_max_keys` (500,000) keys with room to spare, whatever the dataset's size. Storage above 512 MB is "
        "billed per GB-second.",
        512,
        10_240,
        attribute="function.ephemeral_storage_mb",
    ),
    Setting(
        "lambdaReservedConcurrency",
        int,
        None,
        "Concurrency reserved for the function, so its Maps never wait for the account's other functions. Left out "
        "(none): datasets × (mapConcurrency + 1), what every dataset's run needs at once (docs/SCALE.md, "
        "*Capacity*). A number given must be at least `mapConcurrency`. Lambda refuses a reservation that leaves "
        "the account fewer than 100 unreserved, and `pulumi up` then fails: lower it, raise the account's quota, "
        "or set `reserveLambdaConcurrency` false.",
        1,
        100_000,
        attribute="function.reserved_concurrency",
    ),
    Setting(
        "reserveLambdaConcurrency",
        bool,
        True,
        "Whether the function reserves `lambdaReservedConcurrency`. `false` reserves nothing: the function shares the "
        "account's unreserved pool, and a step that finds it full is throttled and retried for up to 30 minutes. For "
        "an account whose concurrency quota cannot spare the reservation and 100 more (new accounts may have 10).",
        attribute="function.reserve_concurrency",
    ),
    Setting(
        "mapConcurrency",
        int,
        100,
        "Shards planned and finalized at once per run (each a Lambda invocation), and the most batches copied at "
        "once: the copy Map runs only as many as offer `s3WritesPerSecond` (11 at the default `concurrency` and "
        "memory). The default plans a 100-million-key dataset in about 4 minutes and lands 10 million changed "
        "objects in about an hour (docs/SCALE.md); each run needs that much Lambda concurrency, which the function "
        "reserves (`lambdaReservedConcurrency`).",
        1,
        MAX_MAP_CONCURRENCY,
        attribute="workflow.map_concurrency",
    ),
    Setting(
        "s3WritesPerSecond",
        int,
        3_500,
        "The S3 write rate each run's copies are sized to: the copy Map runs as many `copy_batch` invocations as "
        "offer this many copies a second (from the dataset's `concurrency` and the function's memory), at most "
        "`mapConcurrency`. 3,500 is what S3 serves one partitioned prefix, where a night under "
        "`.../ingest_date=<date>/` lands. Raise it only for nights that spread over prefixes S3 has already "
        "partitioned; above what S3 serves, copies are refused (503 SlowDown) and retried (docs/SCALE.md, "
        "*Capacity*).",
        1,
        100_000,
        attribute="workflow.s3_writes_per_second",
    ),
    Setting(
        "toleratedFailurePercentage",
        float,
        0.0,
        "Share of batches that may fail before the Map fails, a whole percentage; finalize reconciles what did land.",
        0.0,
        100.0,
        attribute="workflow.tolerated_failure_percentage",
        check=_whole_percentage_problems,
    ),
    Setting(
        "workflowLogLevel",
        str,
        "ERROR",
        "The state machine's log level. Execution data is never logged.",
        attribute="workflow.log_level",
        check=_log_level_problems,
        choices=tuple(sorted(WORKFLOW_LOG_LEVELS)),
        decode=str.upper,
    ),
    Setting(
        "workflowTimeoutHours",
        int,
        24,
        "Hours an execution may run before Step Functions ends it TIMED_OUT (`States.Timeout`, which the executions "
        "alarm reports); its lock is not handed back but expires by its TTL, and the next execution completes the "
        "run. At most 8,760: a Standard execution may run for a year.",
        1,
        8_760,
        attribute="workflow.timeout_hours",
    ),
    Setting(
        "logRetentionDays",
        int,
        30,
        "Retention of both log groups, in days: one of the periods CloudWatch Logs accepts.",
        1,
        3653,
        attribute="log_retention_days",
        choices=tuple(sorted(LOG_RETENTION_DAYS)),
    ),
    Setting(
        "ledgerNoncurrentVersionDays",
        int,
        7,
        "Days S3 keeps a replaced or deleted version of a ledger object under the raw bucket's `_ingestion/`. The "
        "runtime rewrites `lock.json` on every heartbeat, `open-run.json`, `last-run.json` and the state on every "
        "run, and deletes each run's `work/` files at finalize; without expiry those versions would pile up "
        "forever. Current versions (and all landed data under the target prefixes) are never expired.",
        1,
        3650,
        attribute="ledger_noncurrent_version_days",
    ),
    Setting(
        "glueDatabase",
        str,
        None,
        "Glue database of the ledger's `manifest` and `runs` tables (and the raw tables datasets describe); "
        "without one, `<project>_<stack>` in lower case with `_` for anything else (`data_file_ingestion_dev`).",
        attribute="glue_database",
        check=glue_database_problems,
    ),
    Setting(
        "freshnessGraceHours",
        int,
        3,
        "Hours past the longest gap between two runs of a dataset's schedule before its freshness alarm says no "
        "run succeeded in time (a nightly schedule alarms after 24 + 1 (DST) + this). No alarm for schedules "
        "that run once, or whose window would exceed the 168 hours a CloudWatch alarm can watch.",
        0,
        144,
        attribute="freshness_grace_hours",
    ),
    Setting(
        "forceDestroyBuckets",
        bool,
        False,
        "Let `pulumi destroy` delete the stack's buckets with every object and version in them (landed data and "
        "ledgers included). Takes effect once a `pulumi up` has stored it. Only in a `disposable` stack.",
        attribute="force_destroy_buckets",
    ),
    Setting(
        "disposable",
        bool,
        False,
        "A stack that may be thrown away (dev, a test). Otherwise every bucket the stack creates (raw, config, "
        "access logs, created sources) and its own KMS key are `protect`ed (no `pulumi up` or `pulumi destroy` may "
        "delete or replace them) and "
        "`retainOnDelete` (a delete only forgets them). `forceDestroyBuckets` needs it.",
        attribute="disposable",
    ),
    Setting(
        "accessLogRetentionDays",
        int,
        365,
        "Days S3 keeps a server access log of the raw, config and created source buckets in the stack's access "
        "log bucket (each log object and its noncurrent versions).",
        1,
        3650,
        attribute="access_log_retention_days",
    ),
    Setting(
        "logsKmsKeyArn",
        str,
        None,
        "A KMS key ARN (not an alias) in the stack's region for the function's and the state machine's log "
        "groups; without one, CloudWatch Logs' own encryption. Its key policy must let CloudWatch Logs use it "
        "first: the stack exports the statement as `logsKeyPolicyStatement`.",
        attribute="logs_kms_key_arn",
        check=_kms_key_problems,
    ),
    Setting(
        "tags",
        dict,
        None,
        'Tags for every taggable resource of the stack: `{"owner": "data-team", "cost-centre": "cc-1234", '
        '"data-classification": "internal"}`. Keys 1-128 and values 0-256 characters of letters, digits, spaces '
        "and `_ . : / = + - @`; no key may start with `aws:`; at most 40 tags.",
        attribute="tags",
    ),
    Setting(
        "lineage",
        dict,
        None,
        "Where the state machine delivers each run's OpenLineage events after its commit. An OpenLineage HTTP "
        'endpoint: `{"url": "https://...", "apiKeySecret": "<Secrets Manager secret name or ARN>"}`, or '
        "`apiKeyParameter` (an SSM SecureString name) instead, `kmsKeyArn` (the customer managed key either is "
        "encrypted with) and `endpoint` (the path, `api/v1/lineage`). Or Amazon DataZone: "
        '`{"datazoneDomain": "dzd_..."}`. The key is read at delivery, never kept in config. Left out: the events '
        "stay in the ledger (`send-lineage` sends them).",
        attribute="lineage",
    ),
)
"""Every key of the stack config, in the order docs/deploy.md lists them."""

_BY_PATH = {s.path: s for s in STACK_SETTINGS}
_T = TypeVar("_T")
# Structured keys are JSON, decoded and checked by their own parsers; every other key is one plain value.
_STRUCTURED = (dict, list)
_REGION = Setting("aws:region", str, REQUIRED, "Region of every resource.")

# key -> kind: how a Pulumi config string is decoded.
KEYS: dict[str, str] = {
    s.name: {str: "str", dict: "json", list: "json", int: "int", float: "number", bool: "bool"}[s.type]
    for s in STACK_SETTINGS
}


def stack_keys_markdown() -> str:
    """The stack config table of docs/deploy.md; a test holds the doc to exactly this text."""
    return markdown_table([_REGION, *STACK_SETTINGS], headers=("Key", "Default", "Range", "Meaning"))


def _setting_defaults(group: str = "") -> Callable[[type[_T]], type[_T]]:
    """Gives each field of the class its STACK_SETTINGS row's default, found by path (`<group>.<field>`), so a
    default is written only in its row and a field cannot take another row's by mistake. A field with a default of
    its own keeps it; one without is required when its row is. Goes below `@dataclass`, which reads the defaults."""

    def give(cls: type[_T]) -> type[_T]:
        for name in cls.__annotations__:
            if name in vars(cls):
                continue
            setting = _BY_PATH.get(f"{group}.{name}" if group else name)
            if setting is None:
                raise TypeError(f"{cls.__name__}.{name}: no STACK_SETTINGS row has the path to give it a default")
            if setting.default is not REQUIRED:
                setattr(cls, name, setting.default)
        return cls

    return give


@dataclass(frozen=True)
@_setting_defaults("function")
class FunctionSettings:
    """Sizing of the one Lambda function that runs every step (defaults and ranges: STACK_SETTINGS)."""

    memory_mb: int
    timeout_seconds: int
    sdk_layer: bool
    reserved_concurrency: int | None
    """The reservation asked for; None: derived from the datasets (StackConfig.reserved_concurrency)."""
    ephemeral_storage_mb: int
    reserve_concurrency: bool


@dataclass(frozen=True)
@_setting_defaults("workflow")
class WorkflowSettings:
    """How wide the Distributed Map fans out, how much failure a run tolerates and how long an execution may run
    (defaults and ranges: STACK_SETTINGS)."""

    map_concurrency: int
    s3_writes_per_second: int
    tolerated_failure_percentage: float
    log_level: str
    timeout_hours: int


@dataclass(frozen=True)
@_setting_defaults()
class StackConfig:
    """Everything one stack deploys; constructing it validates it, so an invalid one cannot exist (defaults and
    ranges: STACK_SETTINGS)."""

    raw_bucket: str
    config_bucket: str
    datasets: ProcessConfig
    kms_key_arn: str | None
    subscriptions: tuple[Subscription, ...] = ()
    function: FunctionSettings = field(default_factory=FunctionSettings)
    workflow: WorkflowSettings = field(default_factory=WorkflowSettings)
    log_retention_days: int
    force_destroy_buckets: bool
    ledger_noncurrent_version_days: int
    glue_database: str | None
    freshness_grace_hours: int
    disposable: bool
    access_log_retention_days: int
    logs_kms_key_arn: str | None
    tags: Mapping[str, str] | None
    lineage: LineageDestination | None

    def __post_init__(self) -> None:
        problems = stack_problems(self)
        if problems:
            raise StackConfigError(problems)

    @property
    def reserved_concurrency(self) -> int | None:
        """The concurrency the function reserves: the number given, else what the datasets' runs need at once
        (`needed_concurrency`); None when `reserveLambdaConcurrency` is false."""
        if not self.function.reserve_concurrency:
            return None
        if self.function.reserved_concurrency is not None:
            return self.function.reserved_concurrency
        return needed_concurrency(len(self.datasets.datasets), self.workflow.map_concurrency)

    @property
    def created_source_buckets(self) -> tuple[str, ...]:
        """Source buckets this stack creates (`source.create: true`), each once, in a stable order."""
        return tuple(sorted({ds.source.bucket for ds in self.datasets.datasets.values() if ds.create_source}))


def needed_concurrency(datasets: int, map_concurrency: int) -> int:
    """The most invocations of the function the stack's own executions can have running at once.

    One execution ingests one dataset, and runs its steps one after another: a Map (up to `map_concurrency`
    children, each one invocation at a time) or a single step (plan, seal_plan, finalize, release), never two at
    once. So one run needs at most `map_concurrency`. One more per dataset covers what can overlap a run: a second
    execution of the same dataset (started by hand, or a schedule's retried start) runs only its plan, which finds
    the lock and skips; a retried invocation starting while Lambda still runs the first (a lost answer); a
    one-shot run invoked directly. Datasets run side by side (each its own schedule and execution), so their
    needs add up.
    """
    return datasets * (map_concurrency + 1)


def load_stack_config(config: pulumi.Config, placeholders: Placeholders | None = None) -> StackConfig:
    """Read this project's keys from the stack config and validate them (raises StackConfigError)."""
    values = {name: config.get(name) for name in KEYS}
    return parse_stack_config(
        {name: value for name, value in values.items() if value is not None},
        configured=_configured_keys(config.name),
        placeholders=placeholders,
    )


def parse_stack_config(
    values: Mapping[str, Any], configured: set[str] | None = None, placeholders: Placeholders | None = None
) -> StackConfig:
    """Validate stack config values (Pulumi's strings, or already-decoded values) as a whole.

    `configured` is every key set under the namespace, so a misspelt optional key is reported instead of
    silently falling back to its default. `placeholders` gives what `{account_id}` and `{region}` in bucket
    names stand for; they are filled in first, so every check sees the names that will be deployed. What
    cannot be decoded is reported here; everything else is checked by constructing the StackConfig, the same
    checks a StackConfig built in code gets.
    """
    problems: list[str] = []
    for name in sorted(set(configured or ()) | set(values)):
        if name not in KEYS:
            problems.append(f"{key(name)}: unknown key{did_you_mean(name, KEYS, 'known keys')}")

    names = _BucketNames(placeholders, problems)
    values = {
        **values,
        **{name: names.fill(key(name), values[name]) for name in ("rawBucket", "configBucket") if name in values},
    }
    raw = _Reader(values, problems)
    plain: dict[str, Any] = {"function": {}, "workflow": {}}
    for setting in STACK_SETTINGS:
        if setting.type not in _STRUCTURED:
            group, _, name = setting.path.rpartition(".")
            (plain[group] if group else plain)[name] = raw.read(setting)
    raw_bucket = plain["raw_bucket"]
    usable_raw = isinstance(raw_bucket, str) and not bucket_problems(raw_bucket)
    datasets = _parse_datasets(
        names.fill_datasets(raw.structured("datasets"), raw_bucket if usable_raw else _RAW_BUCKET_STAND_IN),
        values.get("datasets") is not None,
        problems,
    )
    subscriptions = _parse_subscriptions(
        raw.structured("notificationEmails"), raw.structured("subscriptions"), problems
    )
    try:
        config = StackConfig(
            datasets=datasets,  # None only when already reported
            subscriptions=subscriptions,
            tags=raw.structured("tags"),
            lineage=_parse_lineage(raw.structured("lineage"), problems),
            function=FunctionSettings(**plain.pop("function")),
            workflow=WorkflowSettings(**plain.pop("workflow")),
            **plain,
        )
    except StackConfigError as err:
        raise StackConfigError(names.only_placeholder_problems(_unique(problems + err.problems))) from None
    if problems:
        raise StackConfigError(names.only_placeholder_problems(_unique(problems)))
    return config


def stack_problems(config: StackConfig) -> list[str]:
    """Each key's own checks (its STACK_SETTINGS row), then the ones across keys and what only a deployment needs.

    A required value that is None was already reported by the reader as missing.
    """
    problems: list[str] = []
    wrong: set[str] = set()  # keys with a problem of their own, left out of the checks across keys
    for setting in STACK_SETTINGS:
        if setting.type not in _STRUCTURED:
            found = setting.problems(setting.read(config))
            problems.extend(f"{key(setting.name)}: {p}" for p in found)
            if found:
                wrong.add(setting.name)
    raw_bucket, config_bucket = config.raw_bucket, config.config_bucket
    if raw_bucket is not None and raw_bucket == config_bucket:
        problems.append(
            f"{key('configBucket')}: must differ from rawBucket: the Lambda may read only its config objects "
            "in the config bucket, but writes landed data in the raw bucket"
        )
    reserved, map_concurrency = config.function.reserved_concurrency, config.workflow.map_concurrency
    crossed = not wrong & {"lambdaReservedConcurrency", "mapConcurrency", "reserveLambdaConcurrency"}
    if crossed and reserved is not None and not config.function.reserve_concurrency:
        problems.append(
            f"{key('lambdaReservedConcurrency')}: {reserved} is set, but reserveLambdaConcurrency is false, so "
            "nothing would be reserved; remove one of the two"
        )
    elif crossed and reserved is not None and reserved < map_concurrency:
        problems.append(
            f"{key('lambdaReservedConcurrency')}: {reserved} is below mapConcurrency "
            f"({map_concurrency}): every Map would start more steps than the function may run, and the rest "
            "wait throttled; raise it, leave it out (it is then what the datasets need), or lower mapConcurrency"
        )
    if config.tags is not None:
        problems.extend(f"{key('tags')}: {p}" for p in tag_problems(config.tags))
    if config.force_destroy_buckets is True and config.disposable is False:
        problems.append(
            f"{key('forceDestroyBuckets')}: true only in a stack marked disposable: it lets `pulumi destroy` "
            "delete the raw bucket with every landed file and ledger, which a stack that is not disposable "
            "protects; set disposable to true as well (to tear the stack down), or forceDestroyBuckets to false"
        )
    seen: set[tuple[str, str]] = set()
    for sub in config.subscriptions:
        if (sub.protocol, sub.endpoint) in seen:
            problems.append(f"{key('subscriptions')}: {sub.protocol} {sub.endpoint!r} is subscribed twice")
        seen.add((sub.protocol, sub.endpoint))
    if config.datasets is not None and raw_bucket is not None and config_bucket is not None:
        # A wrong rawBucket is reported once, on its own key, not again on every dataset's target.
        usable_raw = raw_bucket if "rawBucket" not in wrong else None
        problems.extend(_dataset_problems(config.datasets, usable_raw, config_bucket))
    return problems


def _dataset_problems(datasets: ProcessConfig, raw_bucket: str | None, config_bucket: str) -> list[str]:
    """What the runtime schema allows but this stack cannot deploy (targets unchecked without a usable rawBucket)."""
    problems: list[str] = []
    creators: dict[str, str] = {}
    for ds in datasets.datasets.values():
        if ds.create_source:
            creators.setdefault(ds.source.bucket, ds.name)
    for ds in datasets.datasets.values():
        where = key(f"datasets.{ds.name}")
        if raw_bucket is not None and ds.target.bucket != raw_bucket:
            problems.append(
                f"{where}.target.bucket: {ds.target.bucket!r} is not this stack's raw bucket ({raw_bucket!r}). "
                "A stack lands data only in the raw bucket it creates and secures (rawBucket); leave "
                "target.bucket out (it then means rawBucket), or deploy another stack for the other bucket"
            )
        if ds.topic_arn:
            problems.append(
                f"{where}.topic_arn: not supported in a stack: the state machine notifies the stack's own "
                "topic; add recipients with notificationEmails or subscriptions instead"
            )
        if ds.create_source and ds.source.bucket in (raw_bucket, config_bucket):
            which = "rawBucket" if ds.source.bucket == raw_bucket else "configBucket"
            problems.append(
                f"{where}.source.create: {ds.source.bucket!r} is already created by this stack as {which}; "
                "set source.create to false"
            )
        creator = creators.get(ds.source.bucket)
        if creator is not None and not ds.create_source:
            problems.append(
                f"{where}.source.create: bucket {ds.source.bucket!r} is created by dataset {creator!r} "
                f"(source.create: true); set it to true here too, so removing {creator!r} from the stack "
                f"cannot delete a bucket {ds.name!r} still reads"
            )
        if ds.glue_database:
            problems.append(
                f"{where}.glue_database: not supported in a stack: the function registers partitions in the "
                "stack's own database (glueDatabase), the only one its role may write to; leave it out"
            )
    return problems


class _BucketNames:
    """Fills `{account_id}` and `{region}` into the stack's bucket names, and a left-out `target.bucket`.

    Placeholders are asked for only when a name holds one, so a stack without them validates before any
    call to AWS. A name with an unknown placeholder gets that problem alone: the invalid bucket name it
    leaves behind would only repeat it.
    """

    def __init__(self, placeholders: Placeholders | None, problems: list[str]):
        self._placeholders = placeholders
        self._values: Mapping[str, str] | None = None
        self._problems = problems
        self._reported: dict[str, str] = {}  # key -> its placeholder problem

    def fill(self, where: str, name: Any) -> Any:
        """`name` with its placeholders filled in; anything else, or a name that cannot be filled, unchanged."""
        if not isinstance(name, str):
            return name
        found = _PLACEHOLDER.findall(name)
        if not found:
            return name
        unknown = [p for p in found if p not in PLACEHOLDERS]
        if unknown:
            listing = ", ".join(f"{{{p}}} ({doc})" for p, doc in PLACEHOLDERS.items())
            self._report(where, f"{{{unknown[0]}}} is not a placeholder; a bucket name may contain {listing}")
            return name
        if self._placeholders is None:
            self._report(where, f"{name!r}: placeholders are filled in only by the Pulumi program (`pulumi up`)")
            return name
        if self._values is None:
            self._values = self._placeholders()
        return _PLACEHOLDER.sub(lambda m: self._values[m.group(1)], name)  # type: ignore[index]

    def fill_datasets(self, datasets: Any, raw_bucket: str) -> Any:
        """The datasets object with its bucket names filled in, and each left-out target.bucket set to rawBucket."""
        if not isinstance(datasets, Mapping):
            return datasets
        filled = copy.deepcopy(dict(datasets))
        for name, dataset in filled.items():
            if not isinstance(dataset, dict):
                continue
            target = dataset.get("target")
            if isinstance(target, dict) and target.get("bucket") is None:
                target["bucket"] = raw_bucket
            for section, field_name in _DATASET_BUCKETS:
                part = dataset.get(section)
                if isinstance(part, dict) and field_name in part:
                    part[field_name] = self.fill(key(f"datasets.{name}.{section}.{field_name}"), part[field_name])
        return filled

    def only_placeholder_problems(self, problems: list[str]) -> list[str]:
        """Of the problems of a key with a placeholder problem, that one alone."""
        kept = []
        for problem in problems:
            where = problem.split(": ", 1)[0]
            if where not in self._reported or problem == self._reported[where]:
                kept.append(problem)
        return kept

    def _report(self, where: str, problem: str) -> None:
        self._reported[where] = f"{where}: {problem}"
        self._problems.append(self._reported[where])


def _parse_datasets(value: Any, present: bool, problems: list[str]) -> ProcessConfig | None:
    if not present:
        problems.append(
            f"{key('datasets')}: missing; set it to an object of dataset name -> dataset config "
            "(the same schema as the process config's 'datasets')"
        )
        return None
    if value is None:  # undecodable JSON, already reported
        return None
    try:
        return parse_config({"datasets": value})
    except ConfigError as err:
        problems.extend(_stack_key_problem(p) for p in err.problems)
        return None


def _parse_lineage(value: Any, problems: list[str]) -> LineageDestination | None:
    """The `lineage` setting, checked by the same code the function reads it back with (None: left out or wrong,
    each problem reported under the key)."""
    if value is None:
        return None
    found = destination_problems(value, key("lineage"))
    problems.extend(found)
    return None if found else LineageDestination.parse(value)


def _stack_key_problem(problem: str) -> str:
    """parse_config names fields from the document root (`datasets.x.schedule: ...`); add the namespace."""
    if problem.startswith("datasets."):
        return f"{NAMESPACE}:{problem}"
    return f"{key('datasets')}: {problem}"


def _parse_subscriptions(emails: Any, others: Any, problems: list[str]) -> tuple[Subscription, ...]:
    subscriptions: list[Subscription] = []
    if emails is not None:
        if not isinstance(emails, list):
            problems.append(f"{key('notificationEmails')}: must be a list of email addresses")
        else:
            for i, email in enumerate(emails):
                if not isinstance(email, str) or not _EMAIL.match(email):
                    problems.append(f"{key('notificationEmails')}[{i}]: {email!r} is not an email address")
                else:
                    subscriptions.append(Subscription("email", email))
    if others is not None:
        if not isinstance(others, list):
            problems.append(f'{key("subscriptions")}: must be a list of {{"protocol": ..., "endpoint": ...}}')
            return tuple(subscriptions)
        for i, item in enumerate(others):
            where = f"{key('subscriptions')}[{i}]"
            if not isinstance(item, Mapping) or set(item) != {"protocol", "endpoint"}:
                problems.append(f"{where}: must be an object with exactly 'protocol' and 'endpoint'")
                continue
            protocol, endpoint = item["protocol"], item["endpoint"]
            if protocol not in SUBSCRIPTION_PROTOCOLS:
                problems.append(
                    f"{where}.protocol: {protocol!r} is not supported; use one of "
                    + ", ".join(sorted(SUBSCRIPTION_PROTOCOLS))
                )
            elif not isinstance(endpoint, str) or not endpoint.strip():
                problems.append(f"{where}.endpoint: must be a non-empty string")
            elif protocol.startswith("email") and not _EMAIL.match(endpoint):
                problems.append(f"{where}.endpoint: {endpoint!r} is not an email address")
            elif protocol == "https" and not endpoint.startswith("https://"):
                problems.append(f"{where}.endpoint: {endpoint!r} must start with https://")
            elif protocol == "sqs" and not endpoint.startswith("arn:"):
                problems.append(f"{where}.endpoint: {endpoint!r} must be an SQS queue ARN")
            else:
                subscriptions.append(Subscription(protocol, endpoint))
    return tuple(subscriptions)


_UNREADABLE = object()


def _decode(kind: type, value: Any) -> Any:
    """A Pulumi config value (the CLI's string, or the stack YAML's own value) as `kind`, or _UNREADABLE."""
    if kind is str:
        return value.strip() if isinstance(value, str) and value.strip() else _UNREADABLE
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = value.strip().lower() if isinstance(value, str) else ""
        return text == "true" if text in ("true", "false") else _UNREADABLE
    if kind is int:
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else _UNREADABLE
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    return _UNREADABLE if number is None or number != number else number  # NaN compares unequal to itself


class _Reader:
    """Decodes Pulumi config values (always strings from the CLI) and records what cannot be decoded."""

    def __init__(self, values: Mapping[str, Any], problems: list[str]):
        self.values = values
        self.problems = problems

    def read(self, setting: Setting) -> Any:
        """A plain key's value as its type, its default when absent, or (reported) its default when unreadable.

        Ranges and allowed values are not checked here: StackConfig checks them, for a config read from a stack
        and one built in code alike.
        """
        name = setting.name
        value = self.values.get(name)
        default = None if setting.default is REQUIRED else setting.default
        if value is None:
            if setting.default is REQUIRED:
                self.problems.append(f"{key(name)}: missing; set it with `pulumi config set {name} <value>`")
            return default
        decoded = _decode(setting.type, value)
        if decoded is _UNREADABLE:
            if setting.type is str:
                why = "must be a non-empty string"
            elif setting.type is bool:
                why = f"must be true or false, got {value!r}"
            else:
                why = setting.problems(value)[0]
            self.problems.append(f"{key(name)}: {why}")
            return default
        return setting.decode(decoded) if setting.decode else decoded

    def structured(self, name: str) -> Any:
        value = self.values.get(name)
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            self.problems.append(
                f"{key(name)}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno}); "
                "set structured values in the stack YAML or with `pulumi config set --path`"
            )
            return None


def _configured_keys(namespace: str) -> set[str]:
    """Every key set under the namespace, to catch misspelt optional keys.

    The SDK has no public way to list config keys; the program's config lives in the runtime's config map
    (or PULUMI_CONFIG). If a future SDK moves it, this returns nothing and only the typo check is lost.
    """
    try:
        from pulumi.runtime import config as runtime_config

        names = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    except Exception:  # noqa: BLE001 - best effort by design, see docstring
        return set()
    prefix = namespace + ":"
    return {name[len(prefix) :] for name in names if name.startswith(prefix)}


def _unique(problems: list[str]) -> list[str]:
    return list(dict.fromkeys(problems))
