"""The Glue Data Catalog, where a committed night's partitions are registered: the client, the one call, and its
errors as the package's own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import PartitionsFailed
from .clients import max_attempts

MAX_PARTITIONS_PER_CALL = 100
"""BatchCreatePartition's `PartitionInputList` holds at most 100 entries (botocore's model, `"max": 100`). The
client does not check it and moto does not enforce it: the caller must cut its lists, and its tests must count."""

ALREADY_EXISTS = "AlreadyExistsException"
"""The per-entry error of a partition that is there already: what a retried or repeated registration meets."""


def glue_client(session: Any = None) -> Any:
    """A Glue client retried as the S3 client is (AWS_MAX_ATTEMPTS, standard mode: throttling is retried)."""
    session = session or boto3.session.Session()
    config = Config(retries={"mode": "standard", "total_max_attempts": max_attempts()})
    return session.client("glue", config=config)


def create_partitions(glue: Any, database: str, table: str, inputs: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """One BatchCreatePartition of `inputs` (at most 100) into `database.table`: (created, already there).

    A partition that exists is success, so registering a night twice is harmless. Any other answer, for the call
    or for one entry (throttled after the retries, AccessDenied, no such table), raises PartitionsFailed naming
    the table and the first refused partition."""
    if len(inputs) > MAX_PARTITIONS_PER_CALL:
        raise ValueError(f"{len(inputs)} partitions in one BatchCreatePartition; Glue takes {MAX_PARTITIONS_PER_CALL}")
    if not inputs:
        return 0, 0
    try:
        answer = glue.batch_create_partition(DatabaseName=database, TableName=table, PartitionInputList=list(inputs))
    except (ClientError, BotoCoreError) as err:
        raise PartitionsFailed(
            f"Glue refused the partitions of {database}.{table}: {type(err).__name__}: {err}"
        ) from err
    errors = answer.get("Errors") or []
    refused = [e for e in errors if (e.get("ErrorDetail") or {}).get("ErrorCode") != ALREADY_EXISTS]
    if refused:
        first = refused[0]
        detail = first.get("ErrorDetail") or {}
        raise PartitionsFailed(
            f"Glue refused {len(refused)} partition(s) of {database}.{table}, e.g. {first.get('PartitionValues')}: "
            f"{detail.get('ErrorCode')}: {detail.get('ErrorMessage')}"
        )
    return len(inputs) - len(errors), len(errors)
