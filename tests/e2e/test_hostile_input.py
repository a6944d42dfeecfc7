"""Hostile source keys through the real CLI over HTTP: each one lands byte-exact or gets a clear manifest line, and
nothing else in the run is disturbed.

S3 keys are any UTF-8 up to 1,024 bytes. A source bucket the pipeline does not own may hold ESC sequences, bidi
overrides, keys that differ only in Unicode normalisation, `..` segments, doubled slashes, and keys at the length
limit. None of them may escape the target prefix, overwrite another object, break the run, or reach the terminal
unescaped.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from handler.metadata import decode_value
from tests.e2e.cli_fixtures import (  # noqa: F401 (fixtures)
    DATASET,
    Stage,
    moto_server_fixture,
    one_json,
    stage_fixture,
)

DATE = "2026-01-02"
FIXED = len("movielens/") + len(f"ingest_date={DATE}/")
"""What the default template adds around a flat file name: its landed key is FIXED bytes longer than the name."""

NFC = unicodedata.normalize("NFC", "movielens/café.csv")
NFD = unicodedata.normalize("NFD", "movielens/café.csv")
NEAR_LIMIT = "movielens/" + "n" * (1024 - FIXED)
OVER_LIMIT = "movielens/" + "é" + "o" * (1024 - FIXED - 1)  # 1,025 bytes once landed: é is two
NEWLINE = "movielens/two\nlines.csv"
PAIR = ("movielens/pair\x1b[2J/x.csv", "movielens/pair\x1b[2J//x.csv")

LANDS = {
    "movielens/ratings.csv": f"movielens/ingest_date={DATE}/ratings.csv",
    "movielens/sub/tags.csv": f"movielens/sub/ingest_date={DATE}/tags.csv",
    "movielens/esc\x1b[31mred.csv": f"movielens/ingest_date={DATE}/esc\x1b[31mred.csv",
    "movielens/bidi\u202egnp.exe.csv": f"movielens/ingest_date={DATE}/bidi\u202egnp.exe.csv",
    "movielens/tab\there.csv": f"movielens/ingest_date={DATE}/tab\there.csv",
    "movielens/bell\x07.csv": f"movielens/ingest_date={DATE}/bell\x07.csv",
    "movielens/del\x7f.csv": f"movielens/ingest_date={DATE}/del\x7f.csv",
    "movielens/cr\rreturn.csv": f"movielens/ingest_date={DATE}/cr\rreturn.csv",
    NFC: f"movielens/ingest_date={DATE}/" + NFC.rpartition("/")[2],
    NFD: f"movielens/ingest_date={DATE}/" + NFD.rpartition("/")[2],
    "movielens/a//b.csv": f"movielens/a/ingest_date={DATE}/b.csv",
    NEAR_LIMIT: f"movielens/ingest_date={DATE}/" + NEAR_LIMIT.rpartition("/")[2],
}
"""Source key -> where it must land, byte for byte."""

UNSAFE = ["movielens/../escape.csv", "movielens/sub/./dot.csv", "movielens/sub/.."]
"""Skipped as unsafe keys, with the reason in the manifest: never rewritten into another object's place."""

WITH_BYTES = ["movielens/report.csv/", "movielens/sub/data/"]
"""Keys ending in `/` that hold bytes: not folder markers, whatever their name says. Failed, never dropped unseen."""

FAILS = {
    OVER_LIMIT: "1024-byte limit",
    PAIR[0]: "collision",
    PAIR[1]: "collision",
    **dict.fromkeys(WITH_BYTES, "key ends in '/' but holds "),
}
"""Failed at plan time with the reason in the manifest; the rest of the run goes on."""

FOLDERS = ["movielens/", "movielens//", "movielens/sub/"]
"""The prefix itself, the prefix plus `/`, and a folder marker, all zero bytes (as the S3 console and DataSync make
them): counted as folder markers, never landed, no manifest line."""


def seed(stage: Stage, keys: list[str]) -> dict[str, bytes]:
    """Write straight into the server's backend: a key like `movielens/../escape.csv` would be normalised by an
    HTTP client on the way in, and what is under test is the run reading such keys back, not the upload."""
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    bodies = {key: f"body of {key!r}".encode() for key in keys}
    for key, body in bodies.items():
        backend.put_object(stage.source, key, body)
    return bodies


def by_source(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["source_key"]: line for line in lines}


def assert_nothing_raw(text: str) -> None:
    """Terminal output: every line printable, so no key can recolour, clear or reorder the screen."""
    for line in text.splitlines():
        assert line.isprintable(), repr(line)


@pytest.fixture
def hostile(stage: Stage) -> dict[str, bytes]:
    assert NFC != NFD and len(NEAR_LIMIT.encode()) <= 1024 and len(OVER_LIMIT.encode()) <= 1024
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for marker in FOLDERS:
        backend.put_object(stage.source, marker, b"")
    return seed(stage, [*LANDS, *UNSAFE, *FAILS])


def test_hostile_keys_land_exactly_or_are_reported_and_the_rest_of_the_run_lands(
    stage: Stage, hostile: dict[str, bytes]
) -> None:
    proc = stage.run(stage.config(), "--json", "--date", DATE)

    assert proc.returncode == 1, proc.stderr  # some objects failed: exit 1, as documented
    assert "Traceback" not in proc.stderr
    summary = one_json(proc)
    assert (summary["status"], summary["copied"], summary["failed"]) == ("partial", len(LANDS), len(FAILS))
    assert summary["skipped_by_reason"] == {"unsafe key": len(UNSAFE), "folder marker": len(FOLDERS)}

    assert set(stage.landed()) == set(LANDS.values()), "nothing may land anywhere else"
    for source, target in LANDS.items():
        assert stage.body(stage.raw, target) == hostile[source], repr(source)
        assert stage.lineage(target)["ingest-source-key"] == source

    manifest = by_source(stage.manifest_lines())
    assert {key: line["status"] for key, line in manifest.items()} == {
        **dict.fromkeys(LANDS, "copied"),
        **dict.fromkeys(UNSAFE, "skipped"),
        **dict.fromkeys(FAILS, "failed"),
    }
    for key in UNSAFE:
        assert manifest[key]["reason"].startswith("unsafe key: key has a "), manifest[key]
        assert manifest[key]["target_key"] is None
    for key, reason in FAILS.items():
        assert reason in manifest[key]["reason"], manifest[key]
    for key in WITH_BYTES:
        assert manifest[key]["size"] == len(hostile[key]) and manifest[key]["target_key"] is None
        assert "write it under a file name" in manifest[key]["reason"]


def test_nfc_and_nfd_spellings_are_two_objects_and_neither_overwrites_the_other(
    stage: Stage, hostile: dict[str, bytes]
) -> None:
    assert stage.run(stage.config(), "--json", "--date", DATE).returncode == 1

    assert stage.body(stage.raw, LANDS[NFC]) == hostile[NFC]
    assert stage.body(stage.raw, LANDS[NFD]) == hostile[NFD]
    assert hostile[NFC] != hostile[NFD]
    state = {line["key"]: line["target"] for line in stage.state()}
    assert (state[NFC], state[NFD]) == (LANDS[NFC], LANDS[NFD])


def test_a_dry_run_and_a_text_run_show_hostile_keys_escaped_and_ordinary_unicode_as_it_is(
    stage: Stage, hostile: dict[str, bytes]
) -> None:
    config = stage.config()
    # A newline could forge a whole line of output. (Only here: moto's server cannot route such a key, so a real
    # run would fail it as gone, where S3 lands it; listing it works, which is all a dry run needs.)
    seed(stage, [NEWLINE])

    dry = stage.run(config, "--dry-run", "--date", DATE)

    assert dry.returncode == 1, dry.stderr  # it knows the collision fails, as the run does
    assert_nothing_raw(dry.stdout)
    assert_nothing_raw(dry.stderr)
    src = f"s3://{stage.source}"
    assert f"COPY  {src}/movielens/esc\\x1b[31mred.csv -> " in dry.stdout
    assert f"COPY  {src}/movielens/bidi\\u202egnp.exe.csv -> " in dry.stdout
    assert f"COPY  {src}/movielens/two\\nlines.csv -> " in dry.stdout
    assert f"COPY  {src}/{NFC} -> s3://{stage.raw}/{LANDS[NFC]}" in dry.stdout.splitlines()
    assert f"FAIL  {src}/movielens/pair\\x1b[2J/x.csv: collision" in dry.stdout
    assert stage.everything() == {}

    run = stage.run(config, "--date", DATE)

    assert run.returncode == 1, run.stderr
    assert_nothing_raw(run.stdout)
    assert_nothing_raw(run.stderr)
    listed = [line for line in run.stdout.splitlines() if line.startswith("  - ")]
    assert any(line.startswith("  - movielens/pair\\x1b[2J/x.csv: collision: 2 source objects") for line in listed)
    assert any(line.startswith("  - movielens/éooo") and "1024-byte limit" in line for line in listed), listed
    assert "  - movielens/report.csv/: key ends in '/' but holds " in "\n".join(listed), listed


LONG_CJK = "movielens/" + "映" * 330
"""1,000 bytes of key, 990 of them in a 3-byte script: 2,980 characters percent-encoded, past S3's 2 KB metadata
limit on its own, so it could never land; it lands 1,023 bytes long under the default template."""


def test_a_long_non_ascii_key_lands_with_its_lineage_and_every_reader_decodes_it(stage: Stage) -> None:
    (body,) = seed(stage, [LONG_CJK]).values()
    config = stage.config()
    target = f"movielens/ingest_date={DATE}/" + LONG_CJK.rpartition("/")[2]

    proc = stage.run(config, "--json", "--date", DATE)

    assert proc.returncode == 0, proc.stderr
    assert one_json(proc)["copied"] == 1
    assert stage.body(stage.raw, target) == body
    recorded = stage.s3.head_object(Bucket=stage.raw, Key=target)["Metadata"]["ingest-source-key"]
    assert recorded.startswith("=?UTF-8?B?") and recorded.isascii() and len(recorded) == 1348
    assert decode_value(recorded) == LONG_CJK
    assert [(line["source_key"], line["target_key"]) for line in stage.manifest_lines()] == [(LONG_CJK, target)]

    lineage = stage.cli("lineage", f"s3://{stage.raw}/{target}", "--endpoint-url", stage.url, "--json")
    assert lineage.returncode == 0, lineage.stderr
    assert one_json(lineage)["source"] == f"s3://{stage.source}/{LONG_CJK}"

    verify = stage.cli(*stage.argv("verify", config, "--json", "--date", DATE))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert one_json(verify)["status"] == "clean"

    again = stage.run(config, "--json", "--date", "2026-01-03")  # the ledger knows it: unchanged, not recopied
    assert again.returncode == 0, again.stderr
    assert one_json(again)["skipped_by_reason"] == {"unchanged": 1}
