"""A stand-in OpenLineage backend on loopback (Marquez's HTTP API): it keeps what it is sent and answers as the
test says, so delivery is checked on the wire, headers and all, rather than by replacing the sender."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.stub_server import Quiet, serving

LINEAGE_PATH = "/api/v1/lineage"
"""Where OpenLineage's HTTP transport posts by default; `events` counts only what arrived there."""


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    event: dict[str, Any]


@dataclass
class LineageBackend:
    url: str = ""
    status: int = 201
    """What it answers every post; a test sets 500 to play a backend that refuses."""
    posts: list[Post] = field(default_factory=list)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events posted to the lineage API's own path, in the order they came."""
        return [post.event for post in self.posts if post.path == LINEAGE_PATH]

    @property
    def authorization(self) -> list[str | None]:
        return [post.headers.get("Authorization") for post in self.posts if post.path == LINEAGE_PATH]


@contextmanager
def lineage_backend() -> Iterator[LineageBackend]:
    """A fresh backend serving for the block."""
    backend = LineageBackend()

    class Receiver(Quiet):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            backend.posts.append(Post(self.path, dict(self.headers), json.loads(body)))
            self._answer(backend.status, b"", {})

    with serving(Receiver) as url:
        backend.url = url
        yield backend
