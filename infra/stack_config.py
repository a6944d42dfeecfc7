"""Stack config -> frozen, validated dataclasses: the one place the program reads `pulumi.Config`.

The datasets use the runtime's own schema (`handler.config.parse_config`), so a dataset that deploys is a
dataset the Lambda accepts, and the object the stack writes for the Lambda is the validated config itself.
The stack adds what only a deployment has: bucket names, the KMS key, subscribers and sizes.

Every problem is reported at once, each prefixed with the stack config key it belongs to (for example
`data-file-ingestion:datasets.movielens.schedule`), and `pulumi up` stops before any resource is created.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from handler.config import ProcessConfig, bucket_name_problem, did_you_mean, parse_config
from handler.errors import ConfigError

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
MAX_MAP_CONCURRENCY = 10_000  # the Distributed Map's own limit on concurrent child executions

# A key ARN, not an alias: IAM grants on an alias ARN do not cover using the key it points to.
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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


@dataclass(frozen=True)
class FunctionSettings:
    """Sizing of the one Lambda function that runs every step."""

    memory_mb: int = 1024
    timeout_seconds: int = 900
    reserved_concurrency: int | None = None
    # /tmp. Planning keeps the run's plan in an on-disk SQLite file there (about 200-300 bytes a source
    # key) and finalize spools the compressed state and the manifest there too: Lambda's default 512 MB
    # would cap a dataset at about a million keys.
    ephemeral_storage_mb: int = 2048


@dataclass(frozen=True)
class WorkflowSettings:
    """How wide the Distributed Map fans out and how much failure a run tolerates."""

    map_concurrency: int = 10
    tolerated_failure_percentage: float = 0.0
    log_level: str = "ERROR"


@dataclass(frozen=True)
class StackConfig:
    """Everything one stack deploys; constructing it validates it, so an invalid one cannot exist."""

    raw_bucket: str
    config_bucket: str
    datasets: ProcessConfig
    kms_key_arn: str | None = None
    subscriptions: tuple[Subscription, ...] = ()
    function: FunctionSettings = field(default_factory=FunctionSettings)
    workflow: WorkflowSettings = field(default_factory=WorkflowSettings)
    log_retention_days: int = 30
    force_destroy_buckets: bool = False
    # Days a replaced or deleted version under the raw bucket's `_ingestion/` (the ledger) is kept.
    ledger_noncurrent_version_days: int = 7

    def __post_init__(self) -> None:
        problems = stack_problems(
            raw_bucket=self.raw_bucket,
            config_bucket=self.config_bucket,
            datasets=self.datasets,
            kms_key_arn=self.kms_key_arn,
            subscriptions=self.subscriptions,
            function=self.function,
            workflow=self.workflow,
            log_retention_days=self.log_retention_days,
            ledger_noncurrent_version_days=self.ledger_noncurrent_version_days,
        )
        if problems:
            raise StackConfigError(problems)

    @property
    def created_source_buckets(self) -> tuple[str, ...]:
        """Source buckets this stack creates (`source.create: true`), each once, in a stable order."""
        return tuple(sorted({ds.source.bucket for ds in self.datasets.datasets.values() if ds.create_source}))


# key -> kind. The kinds drive how a Pulumi config string is decoded.
KEYS: dict[str, str] = {
    "rawBucket": "str",
    "configBucket": "str",
    "datasets": "json",
    "kmsKeyArn": "str",
    "notificationEmails": "json",
    "subscriptions": "json",
    "lambdaMemoryMb": "int",
    "lambdaTimeoutSeconds": "int",
    "lambdaReservedConcurrency": "int",
    "lambdaEphemeralStorageMb": "int",
    "logRetentionDays": "int",
    "ledgerNoncurrentVersionDays": "int",
    "mapConcurrency": "int",
    "toleratedFailurePercentage": "number",
    "workflowLogLevel": "str",
    "forceDestroyBuckets": "bool",
}


def load_stack_config(config: pulumi.Config) -> StackConfig:
    """Read this project's keys from the stack config and validate them (raises StackConfigError)."""
    values = {name: config.get(name) for name in KEYS}
    return parse_stack_config(
        {name: value for name, value in values.items() if value is not None},
        configured=_configured_keys(config.name),
    )


def parse_stack_config(values: Mapping[str, Any], configured: set[str] | None = None) -> StackConfig:
    """Validate stack config values (Pulumi's strings, or already-decoded values) as a whole.

    `configured` is every key set under the namespace, so a misspelt optional key is reported instead of
    silently falling back to its default.
    """
    problems: list[str] = []
    for name in sorted(set(configured or ()) | set(values)):
        if name not in KEYS:
            problems.append(f"{key(name)}: unknown key{did_you_mean(name, KEYS, 'known keys')}")

    raw = _Reader(values, problems)
    raw_bucket = raw.required_str("rawBucket")
    config_bucket = raw.required_str("configBucket")
    kms_key_arn = raw.optional_str("kmsKeyArn")
    datasets = _parse_datasets(raw.structured("datasets"), "datasets" in values, problems)
    subscriptions = _parse_subscriptions(
        raw.structured("notificationEmails"), raw.structured("subscriptions"), problems
    )
    function = FunctionSettings(
        memory_mb=raw.integer("lambdaMemoryMb", 1024, 128, 10_240),
        timeout_seconds=raw.integer("lambdaTimeoutSeconds", 900, 1, 900),
        reserved_concurrency=raw.integer("lambdaReservedConcurrency", None, 1, 100_000),
        ephemeral_storage_mb=raw.integer("lambdaEphemeralStorageMb", 2048, 512, 10_240),
    )
    workflow = WorkflowSettings(
        map_concurrency=raw.integer("mapConcurrency", 10, 1, MAX_MAP_CONCURRENCY),
        tolerated_failure_percentage=raw.number("toleratedFailurePercentage", 0.0, 0.0, 100.0),
        log_level=(raw.optional_str("workflowLogLevel") or "ERROR").upper(),
    )
    log_retention_days = raw.integer("logRetentionDays", 30, 1, 3653)
    ledger_noncurrent_version_days = raw.integer("ledgerNoncurrentVersionDays", 7, 1, 3650)
    force_destroy = raw.boolean("forceDestroyBuckets", False)

    problems.extend(
        stack_problems(
            raw_bucket=raw_bucket,
            config_bucket=config_bucket,
            datasets=datasets,
            kms_key_arn=kms_key_arn,
            subscriptions=subscriptions,
            function=function,
            workflow=workflow,
            log_retention_days=log_retention_days,
            ledger_noncurrent_version_days=ledger_noncurrent_version_days,
        )
    )
    if problems or datasets is None or raw_bucket is None or config_bucket is None:
        raise StackConfigError(_unique(problems))
    return StackConfig(
        raw_bucket=raw_bucket,
        config_bucket=config_bucket,
        datasets=datasets,
        kms_key_arn=kms_key_arn,
        subscriptions=subscriptions,
        function=function,
        workflow=workflow,
        log_retention_days=log_retention_days,
        force_destroy_buckets=force_destroy,
        ledger_noncurrent_version_days=ledger_noncurrent_version_days,
    )


def stack_problems(
    *,
    raw_bucket: str | None,
    config_bucket: str | None,
    datasets: ProcessConfig | None,
    kms_key_arn: str | None,
    subscriptions: tuple[Subscription, ...],
    function: FunctionSettings,
    workflow: WorkflowSettings,
    log_retention_days: int,
    ledger_noncurrent_version_days: int,
) -> list[str]:
    """Checks across keys and the ones only a deployment needs; a None value was already reported."""
    problems: list[str] = []
    for name, bucket in (("rawBucket", raw_bucket), ("configBucket", config_bucket)):
        if bucket is not None and (problem := bucket_name_problem(bucket)):
            problems.append(f"{key(name)}: {problem}")
    if raw_bucket is not None and raw_bucket == config_bucket:
        problems.append(
            f"{key('configBucket')}: must differ from rawBucket: the Lambda may read only its config objects "
            "in the config bucket, but writes landed data in the raw bucket"
        )
    if kms_key_arn is not None and not _KMS_KEY_ARN.match(kms_key_arn):
        problems.append(
            f"{key('kmsKeyArn')}: {kms_key_arn!r} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>); "
            "an alias cannot be used because IAM grants on an alias do not cover the key"
        )
    if log_retention_days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in sorted(LOG_RETENTION_DAYS))
        problems.append(f"{key('logRetentionDays')}: {log_retention_days} is not one of {allowed}")
    if not 1 <= ledger_noncurrent_version_days <= 3650:
        problems.append(f"{key('ledgerNoncurrentVersionDays')}: must be between 1 and 3650")
    if workflow.log_level not in WORKFLOW_LOG_LEVELS:
        problems.append(
            f"{key('workflowLogLevel')}: {workflow.log_level!r} must be ALL or ERROR (execution data is never "
            "logged either way)"
        )
    if not 1 <= workflow.map_concurrency <= MAX_MAP_CONCURRENCY:
        problems.append(f"{key('mapConcurrency')}: must be between 1 and {MAX_MAP_CONCURRENCY}")
    if not 0 <= workflow.tolerated_failure_percentage <= 100:
        problems.append(f"{key('toleratedFailurePercentage')}: must be between 0 and 100")
    if not 128 <= function.memory_mb <= 10_240:
        problems.append(f"{key('lambdaMemoryMb')}: must be between 128 and 10240")
    if not 1 <= function.timeout_seconds <= 900:
        problems.append(f"{key('lambdaTimeoutSeconds')}: must be between 1 and 900")
    if not 512 <= function.ephemeral_storage_mb <= 10_240:
        problems.append(f"{key('lambdaEphemeralStorageMb')}: must be between 512 and 10240")
    reserved = function.reserved_concurrency
    if reserved is not None and reserved < workflow.map_concurrency:
        problems.append(
            f"{key('lambdaReservedConcurrency')}: {reserved} is below mapConcurrency "
            f"({workflow.map_concurrency}): the Map would start more copy steps than the function may run, "
            "and the throttled ones fail after their retries; raise it or lower mapConcurrency"
        )
    seen: set[tuple[str, str]] = set()
    for sub in subscriptions:
        if (sub.protocol, sub.endpoint) in seen:
            problems.append(f"{key('subscriptions')}: {sub.protocol} {sub.endpoint!r} is subscribed twice")
        seen.add((sub.protocol, sub.endpoint))
    if datasets is not None and raw_bucket is not None and config_bucket is not None:
        problems.extend(_dataset_problems(datasets, raw_bucket, config_bucket))
    return problems


def _dataset_problems(datasets: ProcessConfig, raw_bucket: str, config_bucket: str) -> list[str]:
    """What the runtime schema allows but this stack cannot deploy."""
    problems: list[str] = []
    creators: dict[str, str] = {}
    for ds in datasets.datasets.values():
        if ds.create_source:
            creators.setdefault(ds.source.bucket, ds.name)
    for ds in datasets.datasets.values():
        where = key(f"datasets.{ds.name}")
        if ds.target.bucket != raw_bucket:
            problems.append(
                f"{where}.target.bucket: {ds.target.bucket!r} is not this stack's raw bucket ({raw_bucket!r}). "
                "A stack lands data only in the raw bucket it creates and secures (rawBucket); set "
                "target.bucket to it, or deploy another stack for the other bucket"
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
    return problems


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


class _Reader:
    """Decodes Pulumi config values (always strings from the CLI) and records what is wrong with them."""

    def __init__(self, values: Mapping[str, Any], problems: list[str]):
        self.values = values
        self.problems = problems

    def required_str(self, name: str) -> str | None:
        value = self.optional_str(name)
        if value is None and name not in self.values:
            self.problems.append(f"{key(name)}: missing; set it with `pulumi config set {name} <value>`")
        return value

    def optional_str(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problems.append(f"{key(name)}: must be a non-empty string")
            return None
        return value.strip()

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

    def integer(self, name: str, default: int | None, low: int, high: int) -> Any:
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.append(f"{key(name)}: must be a whole number between {low} and {high}, got {value!r}")
            return default
        if not low <= value <= high:
            self.problems.append(f"{key(name)}: must be between {low} and {high}, got {value}")
            return default
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.values.get(name)
        if value is None:
            return default
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number != number:  # NaN compares unequal to itself
            self.problems.append(f"{key(name)}: must be a number between {low:g} and {high:g}, got {value!r}")
            return default
        if not low <= number <= high:
            self.problems.append(f"{key(name)}: must be between {low:g} and {high:g}, got {number:g}")
            return default
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        self.problems.append(f"{key(name)}: must be true or false, got {value!r}")
        return default


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
