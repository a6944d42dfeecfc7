"""The context object the Lambda runtime hands the function: the attributes the handler may read of it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from tests.conftest import REGION

ACCOUNT = "123456789012"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ingest"


@dataclass
class LambdaContext:
    function_name: str = "ingest"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = FUNCTION_ARN
    memory_limit_in_mb: int = 1024

    def get_remaining_time_in_millis(self) -> int:
        return 900_000
