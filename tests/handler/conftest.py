"""Fixtures the runtime's unit tests share."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from handler.state import create_table


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    """An empty ledger state table in memory, as a step builds it before it loads the state parts."""
    connection = sqlite3.connect(":memory:")
    create_table(connection)
    yield connection
    connection.close()
