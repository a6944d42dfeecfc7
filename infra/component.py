"""What every component of the stack shares: its type token's package and the options its children take."""

from __future__ import annotations

import pulumi

TYPE_PACKAGE = "data-file-ingestion"
"""The package part of every component's type token (`data-file-ingestion:storage:SecureBucket`): part of each
resource's URN, so changing it would replace the whole stack."""


class Component(pulumi.ComponentResource):
    """A ComponentResource of type `data-file-ingestion:<kind>`, whose children are created with `self.child`."""

    child: pulumi.ResourceOptions
    """`parent=` this component: its children's logical names and URNs are scoped by it."""

    def __init__(self, kind: str, name: str, opts: pulumi.ResourceOptions | None) -> None:
        super().__init__(f"{TYPE_PACKAGE}:{kind}", name, None, opts)
        self.child = pulumi.ResourceOptions(parent=self)
