"""Where the stack deploys: the partition, region and account its provider's credentials point at."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pulumi

T = TypeVar("T")


@dataclass(frozen=True)
class Environment:
    """Asked of the provider, never written in code, so the same program deploys anywhere the stack config points it.

    Outputs: whatever is built from them (ARNs, trust conditions, key policies) waits until all three are known.
    """

    partition: pulumi.Input[str]
    region: pulumi.Input[str]
    account_id: pulumi.Input[str]

    def apply(self, build: Callable[[str, str, str], T]) -> pulumi.Output[T]:
        """`build(partition, region, account_id)`, once all three are known."""
        return pulumi.Output.all(self.partition, self.region, self.account_id).apply(lambda known: build(*known))
