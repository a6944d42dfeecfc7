"""Pulumi components of the ingestion pipeline; `__main__.py` composes them from the stack config.

Nothing here reads config or creates resources at import time: `infra.stack_config` turns the stack
config into validated dataclasses, and the components receive those.
"""
