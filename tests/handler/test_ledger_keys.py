"""The ledger's key templates: every key renders to the exact text the ledger has always had on disk, and a
folder holds the keys that are listed under it. The expected keys are written out by hand, so a template that
changes by one character fails here, not in a bucket written by an older version."""

from __future__ import annotations

import pytest

from handler.ledger_keys import Fixed, LedgerPaths, Template

ROOT = "_ingestion/sales/"
RUN = "20261127T200000000Z-ab12"
SAMPLE = {"run_id": RUN, "date": "2026-11-27", "shard": 7, "piece": 3, "batch": 12, "round": 2, "event": "end"}

EXPECTED = {
    "lock": "_ingestion/sales/lock.json",
    "probe": "_ingestion/sales/probe/",
    "open_run": "_ingestion/sales/open-run.json",
    "last_run": "_ingestion/sales/last-run.json",
    "states": "_ingestion/sales/state/",
    "state_index": "_ingestion/sales/state/index.json",
    "legacy_state": "_ingestion/sales/state/current.jsonl.gz",
    "run_state_parts": "_ingestion/sales/state/parts/20261127T200000000Z-ab12/",
    "state_parts": "_ingestion/sales/state/parts/20261127T200000000Z-ab12/00007-",
    "state_part": "_ingestion/sales/state/parts/20261127T200000000Z-ab12/00007-003.jsonl.gz",
    "all_work": "_ingestion/sales/work/",
    "work": "_ingestion/sales/work/20261127T200000000Z-ab12/",
    "planning": "_ingestion/sales/work/20261127T200000000Z-ab12/planning.json",
    "report": "_ingestion/sales/work/20261127T200000000Z-ab12/inventory.json",
    "shard_list": "_ingestion/sales/work/20261127T200000000Z-ab12/shards-002.json",
    "run_shard": "_ingestion/sales/work/20261127T200000000Z-ab12/shards/00007.json",
    "plan_outcomes": "_ingestion/sales/work/20261127T200000000Z-ab12/planned/",
    "plan_outcome": "_ingestion/sales/work/20261127T200000000Z-ab12/planned/00007.json",
    "plan_notes": "_ingestion/sales/work/20261127T200000000Z-ab12/notes/00007.jsonl",
    "legacy_plan_notes": "_ingestion/sales/work/20261127T200000000Z-ab12/plan.jsonl",
    "batch_index": "_ingestion/sales/work/20261127T200000000Z-ab12/batches.json",
    "batch": "_ingestion/sales/work/20261127T200000000Z-ab12/batches/000012.json",
    "batch_started": "_ingestion/sales/work/20261127T200000000Z-ab12/started/000012",
    "results": "_ingestion/sales/work/20261127T200000000Z-ab12/results/",
    "result": "_ingestion/sales/work/20261127T200000000Z-ab12/results/000012.jsonl",
    "final_shards": "_ingestion/sales/work/20261127T200000000Z-ab12/final-shards.json",
    "shard_outcomes": "_ingestion/sales/work/20261127T200000000Z-ab12/final/",
    "shard_outcome": "_ingestion/sales/work/20261127T200000000Z-ab12/final/00007.json",
    "manifests": "_ingestion/sales/manifest/",
    "manifest_folder": "_ingestion/sales/manifest/date=2026-11-27/",
    "manifest_parts": "_ingestion/sales/manifest/date=2026-11-27/20261127T200000000Z-ab12-",
    "manifest_part": "_ingestion/sales/manifest/date=2026-11-27/20261127T200000000Z-ab12-00007.jsonl",
    "manifest_glob": "_ingestion/sales/manifest/date=2026-11-27/20261127T200000000Z-ab12-*.jsonl",
    "legacy_manifest": "_ingestion/sales/manifest/date=2026-11-27/20261127T200000000Z-ab12.jsonl",
    "summaries": "_ingestion/sales/summary/",
    "summary_folder": "_ingestion/sales/summary/date=2026-11-27/",
    "summary": "_ingestion/sales/summary/date=2026-11-27/20261127T200000000Z-ab12.json",
    "markers": "_ingestion/sales/complete/",
    "marker": "_ingestion/sales/complete/date=2026-11-27/20261127T200000000Z-ab12.json",
    "lineage": "_ingestion/sales/lineage/",
    "lineage_event": "_ingestion/sales/lineage/date=2026-11-27/20261127T200000000Z-ab12-end.json",
}

FOLDERS = {
    "probe": (),
    "states": ("state_index", "legacy_state", "run_state_parts"),
    "run_state_parts": ("state_parts",),
    "state_parts": ("state_part",),
    "all_work": ("work",),
    "work": (
        "planning",
        "report",
        "shard_list",
        "run_shard",
        "plan_outcomes",
        "plan_notes",
        "legacy_plan_notes",
        "batch_index",
        "batch",
        "batch_started",
        "results",
        "final_shards",
        "shard_outcomes",
    ),
    "plan_outcomes": ("plan_outcome",),
    "results": ("result",),
    "shard_outcomes": ("shard_outcome",),
    "manifests": ("manifest_folder",),
    "manifest_folder": ("manifest_parts", "legacy_manifest"),
    "manifest_parts": ("manifest_part", "manifest_glob"),
    "summaries": ("summary_folder",),
    "summary_folder": ("summary",),
    "markers": ("marker",),
    "lineage": ("lineage_event",),
}
"""A folder and the keys found by listing it (a run's work cleared with its folder, a date's parts by a run)."""

PATHS = LedgerPaths.at("raw-bucket", ROOT)


def rendered(name: str) -> str:
    key = getattr(PATHS, name)
    if isinstance(getattr(LedgerPaths, name), Fixed):
        return key
    return key(**{field: SAMPLE[field] for field in getattr(LedgerPaths, name).fields})


def test_every_key_renders_to_the_text_the_ledger_has_on_disk() -> None:
    assert [key.name for key in LedgerPaths.keys()] == list(EXPECTED), "one expected key for each of the table's"
    assert {name: rendered(name) for name in EXPECTED} == EXPECTED


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_folder_holds_the_keys_listed_under_it(folder: str) -> None:
    assert rendered(folder).endswith(("/", "-"))
    for key in FOLDERS[folder]:
        assert rendered(key).startswith(rendered(folder)), key


def test_a_template_is_rendered_by_name_only_with_exactly_its_fields() -> None:
    with pytest.raises(TypeError):
        PATHS.summary("2026-11-27", RUN)  # by position: a template reordered would swap them unseen
    with pytest.raises(TypeError, match="summary takes date, run_id"):
        PATHS.summary(date="2026-11-27", run=RUN)
    with pytest.raises(TypeError, match="summary takes date, run_id"):
        PATHS.summary(date="2026-11-27", run_id=RUN, shard=1)


def test_a_key_read_off_the_class_is_its_template() -> None:
    assert isinstance(LedgerPaths.batch, Template)
    assert LedgerPaths.batch.fields == ("run_id", "batch")
    assert LedgerPaths.manifest_folder.render("", date="${date}") == "manifest/date=${date}/"
    assert LedgerPaths.lock.render(ROOT) == PATHS.lock


def test_paths_at_any_root_render_under_it() -> None:
    paths = LedgerPaths.at("raw-bucket", "_ingestion/${dataset}/")
    assert paths.summary_folder(date="${date}") == "_ingestion/${dataset}/summary/date=${date}/"
    assert paths.uri(paths.lock) == "s3://raw-bucket/_ingestion/${dataset}/lock.json"


def test_a_template_without_fields_or_a_fixed_key_with_some_is_refused() -> None:
    with pytest.raises(ValueError):
        Template("lock.json")
    with pytest.raises(ValueError):
        Fixed("work/{run_id}/")
