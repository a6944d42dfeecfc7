"""One Lambda invocation in its own process: `python bench/scale/lambda_child.py '<event JSON>'`.

Run as a script, not `-m bench...`, and importing nothing from bench/, so that PYTHONPATH alone decides which
checkout's `handler` package answers (the harness measures older commits from git worktrees, whose bench/ may
not have this file). The answer is printed as one JSON line on stdout; an error as `{"errorType", "errorMessage"}`
with exit code 1, the way Lambda reports a raised exception.

rclone serve s3 ignores conditional writes, and the Lambda has no `--allow-unprotected`: the Engine the
Lambda module builds is wrapped to pass `allow_unprotected=True`, exactly what the CLI does with the flag. Only
the probe is skipped; every step runs its real code.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _unprotected(module: Any) -> None:
    engine = getattr(module, "Engine", None)
    if engine is None:
        print("lambda_child: handler.lambda_function has no Engine to wrap; the probe may refuse", file=sys.stderr)
        return

    class Unprotected(engine):  # a subclass, not a partial: class attributes and isinstance keep working
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "allow_unprotected": True})

    module.Engine = Unprotected


def main(argv: list[str]) -> int:
    event = json.loads(argv[1])
    import handler.lambda_function as lambda_function

    _unprotected(lambda_function)
    try:
        answer = lambda_function.handler(event, None)
    except Exception as err:  # noqa: BLE001 - reported like Lambda's errorType, for the driver to show
        print(json.dumps({"errorType": type(err).__name__, "errorMessage": str(err)}))
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
