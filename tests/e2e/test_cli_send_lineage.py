"""OpenLineage delivery from the CLI: `run --openlineage-url` sends the run's events once it is committed, and
`send-lineage` sends a night's again (a Lambda's runs included: they are in the ledger). A backend that is
down is a warning, never the run's outcome."""

from __future__ import annotations

from handler.openlineage import run_uuid
from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    DATASET,
    Stage,
    moto_server_fixture,
    one_json,
    stage_fixture,
)
from tests.lineage_backend import LineageBackend

NIGHT = "2026-01-02"


def test_a_run_sends_its_start_and_complete_events_once_committed(
    stage: Stage, lineage_backend: LineageBackend
) -> None:
    stage.put("movielens/a.csv", b"a,b\n1,2\n")

    proc = stage.run(stage.config(), "--json", "--date", NIGHT, "--openlineage-url", lineage_backend.url)

    assert proc.returncode == 0, proc.stderr
    answer = one_json(proc)
    assert answer["lineage_events_sent"] == 2
    assert [e["eventType"] for e in lineage_backend.events] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in lineage_backend.events} == {run_uuid(DATASET, answer["run_id"])}
    assert lineage_backend.events[1]["outputs"][0]["outputFacets"]["outputStatistics"]["fileCount"] == 1


def test_the_url_and_api_key_come_from_openlineages_own_variables(
    stage: Stage, lineage_backend: LineageBackend
) -> None:
    stage.put("movielens/a.csv", b"a")

    proc = stage.run(
        stage.config(), "--date", NIGHT, env={"OPENLINEAGE_URL": lineage_backend.url, "OPENLINEAGE_API_KEY": "k3y"}
    )

    assert proc.returncode == 0, proc.stderr
    assert len(lineage_backend.events) == 2 and lineage_backend.authorization == ["Bearer k3y", "Bearer k3y"]
    assert "k3y" not in proc.stdout + proc.stderr


def test_a_backend_that_is_down_is_a_warning_and_send_lineage_sends_the_events_later(
    stage: Stage, lineage_backend: LineageBackend
) -> None:
    stage.put("movielens/a.csv", b"a")
    proc = stage.run(stage.config(), "--json", "--date", NIGHT, "--openlineage-url", "http://127.0.0.1:9")

    assert proc.returncode == 0, proc.stderr
    answer = one_json(proc)
    assert answer["status"] == "succeeded" and "could not reach" in answer["lineage_error"]
    assert "warning: the lineage events were not sent" in proc.stderr

    resent = stage.cli(*stage.argv("send-lineage", stage.config(), "--json", "--openlineage-url", lineage_backend.url))

    assert resent.returncode == 0, resent.stderr
    assert one_json(resent)["sent"] == 2
    assert [e["eventType"] for e in lineage_backend.events] == ["START", "COMPLETE"]
    assert lineage_backend.events[0]["run"]["runId"] == run_uuid(DATASET, answer["run_id"])


def test_send_lineage_picks_a_night_or_a_run_and_refuses_what_it_cannot_answer(
    stage: Stage, lineage_backend: LineageBackend
) -> None:
    stage.put("movielens/a.csv", b"a")
    first = one_json(stage.run(stage.config(), "--json", "--date", NIGHT))
    stage.put("movielens/b.csv", b"b")
    second = one_json(stage.run(stage.config(), "--json", "--date", "2026-01-03"))
    common = stage.argv("send-lineage", stage.config(), "--json", "--openlineage-url", lineage_backend.url)

    by_date = stage.cli(*common, "--date", NIGHT)
    by_run = stage.cli(*common, "--run", second["run_id"])
    unknown = stage.cli(*common, "--run", "20260101T000000000Z-nope00")
    no_url = stage.cli(*stage.argv("send-lineage", stage.config(), "--json"), env={"OPENLINEAGE_URL": ""})

    assert (by_date.returncode, by_run.returncode) == (0, 0), by_date.stderr + by_run.stderr
    runs = [e["run"]["runId"] for e in lineage_backend.events]
    assert runs == [run_uuid(DATASET, first["run_id"])] * 2 + [run_uuid(DATASET, second["run_id"])] * 2
    assert unknown.returncode == 2 and "no committed run" in one_json(unknown)["error"]
    assert no_url.returncode == 2 and "--openlineage-url" in one_json(no_url)["error"]
