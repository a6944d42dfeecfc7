"""OpenLineage delivery from the CLI: `run --openlineage-url` sends the run's events once it is committed, and
`send-lineage` sends a night's again (a Lambda's runs included: they are in the ledger). A backend that is
down is a warning, never the run's outcome."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from handler.openlineage import run_uuid
from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    DATASET,
    Stage,
    moto_server_fixture,
    one_json,
    stage_fixture,
)

NIGHT = "2026-01-02"


class Marquez(BaseHTTPRequestHandler):
    """Stands in for a lineage backend: takes POSTs at /api/v1/lineage and keeps them."""

    events: list[dict[str, Any]] = []
    authorization: list[str | None] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = self.path == "/api/v1/lineage"
        if ok:
            Marquez.events.append(json.loads(body))
            Marquez.authorization.append(self.headers.get("Authorization"))
        self.send_response(201 if ok else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[str]:
    Marquez.events, Marquez.authorization = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Marquez)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_run_sends_its_start_and_complete_events_once_committed(stage: Stage, backend: str) -> None:
    stage.put("movielens/a.csv", b"a,b\n1,2\n")

    proc = stage.run(stage.config(), "--json", "--date", NIGHT, "--openlineage-url", backend)

    assert proc.returncode == 0, proc.stderr
    answer = one_json(proc)
    assert answer["lineage_events_sent"] == 2
    assert [e["eventType"] for e in Marquez.events] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in Marquez.events} == {run_uuid(DATASET, answer["run_id"])}
    assert Marquez.events[1]["outputs"][0]["outputFacets"]["outputStatistics"]["fileCount"] == 1


def test_the_url_and_api_key_come_from_openlineages_own_variables(stage: Stage, backend: str) -> None:
    stage.put("movielens/a.csv", b"a")

    proc = stage.run(stage.config(), "--date", NIGHT, env={"OPENLINEAGE_URL": backend, "OPENLINEAGE_API_KEY": "k3y"})

    assert proc.returncode == 0, proc.stderr
    assert len(Marquez.events) == 2 and Marquez.authorization == ["Bearer k3y", "Bearer k3y"]
    assert "k3y" not in proc.stdout + proc.stderr


def test_a_backend_that_is_down_is_a_warning_and_send_lineage_sends_the_events_later(
    stage: Stage, backend: str
) -> None:
    stage.put("movielens/a.csv", b"a")
    proc = stage.run(stage.config(), "--json", "--date", NIGHT, "--openlineage-url", "http://127.0.0.1:9")

    assert proc.returncode == 0, proc.stderr
    answer = one_json(proc)
    assert answer["status"] == "succeeded" and "could not reach" in answer["lineage_error"]
    assert "warning: the lineage events were not sent" in proc.stderr

    resent = stage.cli(*stage.argv("send-lineage", stage.config(), "--json", "--openlineage-url", backend))

    assert resent.returncode == 0, resent.stderr
    assert one_json(resent)["sent"] == 2
    assert [e["eventType"] for e in Marquez.events] == ["START", "COMPLETE"]
    assert Marquez.events[0]["run"]["runId"] == run_uuid(DATASET, answer["run_id"])


def test_send_lineage_picks_a_night_or_a_run_and_refuses_what_it_cannot_answer(stage: Stage, backend: str) -> None:
    stage.put("movielens/a.csv", b"a")
    first = one_json(stage.run(stage.config(), "--json", "--date", NIGHT))
    stage.put("movielens/b.csv", b"b")
    second = one_json(stage.run(stage.config(), "--json", "--date", "2026-01-03"))
    common = stage.argv("send-lineage", stage.config(), "--json", "--openlineage-url", backend)

    by_date = stage.cli(*common, "--date", NIGHT)
    by_run = stage.cli(*common, "--run", second["run_id"])
    unknown = stage.cli(*common, "--run", "20260101T000000000Z-nope00")
    no_url = stage.cli(*stage.argv("send-lineage", stage.config(), "--json"), env={"OPENLINEAGE_URL": ""})

    assert (by_date.returncode, by_run.returncode) == (0, 0), by_date.stderr + by_run.stderr
    runs = [e["run"]["runId"] for e in Marquez.events]
    assert runs == [run_uuid(DATASET, first["run_id"])] * 2 + [run_uuid(DATASET, second["run_id"])] * 2
    assert unknown.returncode == 2 and "no committed run" in one_json(unknown)["error"]
    assert no_url.returncode == 2 and "--openlineage-url" in one_json(no_url)["error"]
