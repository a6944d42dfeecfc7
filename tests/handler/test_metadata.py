"""Lineage metadata: ASCII on the wire, exact source key back out, names read whatever their case."""

from __future__ import annotations

from typing import Any

import pytest

from handler.metadata import (
    DATASET,
    DATE,
    MAX_METADATA_BYTES,
    RUN_ID,
    SOURCE_BUCKET,
    SOURCE_ETAG,
    SOURCE_KEY,
    TIMESTAMP,
    Lineage,
    MetadataTooLarge,
    encode_value,
    landed_from,
    lineage,
    merged,
)
from tests.conftest import unique_bucket

AWKWARD_KEYS = [
    "plain/key.csv",
    "données/été 2024.csv",
    "a%2Fb.csv",
    "100%.csv",
    "%",
    "what?.csv",
    "hash#tag.csv",
    "plus+sign and space.csv",
    "emoji/😀.json",
    "中文/文件.txt",
    "amp&eq=semi;.csv",
    "tab\tnewline\n.csv",
    "quote\"apos'.csv",
    "/leading//doubled/",
    "~tilde/back\\slash",
]


def lineage_for(key: str) -> dict[str, str]:
    return lineage(
        source_bucket="src-bucket",
        source_key=key,
        source_etag="9b2cf535f27731c974343645a3985328",
        dataset="sales",
        date="2024-03-07",
        timestamp="2024-03-07T20:00:05Z",
        run_id="20240307T200000Z-ab12",
    )


def test_lineage_names_every_fact() -> None:
    assert lineage_for("a/b.csv") == {
        "ingest-source-bucket": "src-bucket",
        "ingest-source-key": "a/b.csv",
        "ingest-source-etag": "9b2cf535f27731c974343645a3985328",
        "ingest-dataset": "sales",
        "ingest-date": "2024-03-07",
        "ingest-timestamp": "2024-03-07T20:00:05Z",
        "ingest-run-id": "20240307T200000Z-ab12",
    }
    assert {SOURCE_BUCKET, SOURCE_KEY, SOURCE_ETAG, DATASET, DATE, TIMESTAMP, RUN_ID} == set(lineage_for("k"))


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("données/été.csv", "donn%C3%A9es/%C3%A9t%C3%A9.csv"),
        ("a%2Fb.csv", "a%252Fb.csv"),
        ("what?.csv", "what%3F.csv"),
        ("a b+c.csv", "a%20b%2Bc.csv"),
        ("emoji/😀", "emoji/%F0%9F%98%80"),
        ("keep/slashes/", "keep/slashes/"),
        ("safe-_.~chars", "safe-_.~chars"),
    ],
)
def test_source_key_is_percent_encoded_utf8_with_slashes_kept(key: str, encoded: str) -> None:
    assert encode_value(key) == encoded
    assert lineage_for(key)[SOURCE_KEY] == encoded


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_every_lineage_value_is_printable_ascii(key: str) -> None:
    for name, value in lineage_for(key).items():
        assert name.isascii() and value.isascii(), (name, value)
        assert value.isprintable(), (name, value)


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_landed_from_gives_back_the_exact_source_key(key: str) -> None:
    assert landed_from(lineage_for(key)) == ("src-bucket", key, "9b2cf535f27731c974343645a3985328")


@pytest.mark.parametrize("key", ["données/été.csv", "a%2Fb.csv", "what?.csv", "emoji/😀.json", "plus+sign and space"])
def test_lineage_survives_a_real_put_and_head(s3: Any, key: str) -> None:
    bucket = unique_bucket("raw")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="landed.csv", Body=b"x", Metadata=lineage_for(key))

    metadata = s3.head_object(Bucket=bucket, Key="landed.csv")["Metadata"]

    assert landed_from(metadata) == ("src-bucket", key, "9b2cf535f27731c974343645a3985328")


@pytest.mark.parametrize("key", AWKWARD_KEYS[:6])
def test_metadata_names_are_read_case_insensitively(key: str) -> None:
    title_cased = {name.title(): value for name, value in lineage_for(key).items()}
    assert "Ingest-Source-Key" in title_cased

    assert landed_from(title_cased) == ("src-bucket", key, "9b2cf535f27731c974343645a3985328")


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {},
        {"owner": "team"},
        {SOURCE_KEY: "a.csv"},
        {SOURCE_ETAG: "e"},
    ],
)
def test_object_without_key_and_etag_lineage_was_not_landed_by_us(metadata: dict[str, str] | None) -> None:
    assert landed_from(metadata) is None


def test_missing_bucket_reads_as_empty() -> None:
    assert landed_from({"Ingest-Source-Key": "a%20b", "INGEST-SOURCE-ETAG": "e"}) == ("", "a b", "e")


# ---- merging with the source's own metadata ------------------------------------------------------------------


def test_source_user_metadata_is_kept_beside_lineage() -> None:
    result = merged({"owner": "finance", "Content-Origin": "sftp"}, lineage_for("a.csv"))

    assert result == {"owner": "finance", "content-origin": "sftp", **lineage_for("a.csv")}


@pytest.mark.parametrize(
    "forged_name", ["ingest-source-key", "Ingest-Source-Key", "INGEST-RUN-ID", "ingest-something-else"]
)
def test_source_ingest_names_are_replaced_by_ours(forged_name: str) -> None:
    result = merged({forged_name: "forged", "owner": "finance"}, lineage_for("a.csv"))

    assert result == {"owner": "finance", **lineage_for("a.csv")}
    assert "forged" not in result.values()


def test_no_source_metadata_gives_lineage_alone() -> None:
    assert merged(None, lineage_for("a.csv")) == lineage_for("a.csv")


def _lineage_bytes(values: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in values.items())


def test_metadata_of_exactly_2_kb_is_allowed() -> None:
    values = lineage_for("a.csv")
    room = MAX_METADATA_BYTES - _lineage_bytes(values) - len("note")

    result = merged({"note": "n" * room}, values)

    assert _lineage_bytes(result) == MAX_METADATA_BYTES == 2048


def test_metadata_over_2_kb_is_too_large() -> None:
    values = lineage_for("a.csv")
    room = MAX_METADATA_BYTES - _lineage_bytes(values) - len("note")

    with pytest.raises(MetadataTooLarge) as info:
        merged({"note": "n" * (room + 1)}, values)

    assert str(info.value) == "user metadata plus lineage would be 2049 bytes, over S3's 2048-byte limit"


def test_long_encoded_source_key_counts_against_the_limit() -> None:
    # 700 two-byte characters become 4,200 ASCII bytes once percent-encoded.
    with pytest.raises(MetadataTooLarge, match="over S3's 2048-byte limit"):
        merged({}, lineage_for("é" * 700))


def test_replaced_source_ingest_values_do_not_count_against_the_limit() -> None:
    values = lineage_for("a.csv")

    assert merged({"ingest-source-key": "x" * 4000}, values) == values


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_lineage_decodes_every_fact_with_the_exact_source_key(key: str) -> None:
    decoded = Lineage.of(lineage_for(key))

    assert decoded == Lineage(
        source_bucket="src-bucket",
        source_key=key,
        source_etag="9b2cf535f27731c974343645a3985328",
        dataset="sales",
        date="2024-03-07",
        run_id="20240307T200000Z-ab12",
        ingested_at="2024-03-07T20:00:05Z",
    )


def test_lineage_is_read_from_title_cased_names_and_is_none_without_source_key_or_etag() -> None:
    title_cased = {name.title(): value for name, value in lineage_for("a.csv").items()}

    assert Lineage.of(title_cased) == Lineage.of(lineage_for("a.csv"))
    assert Lineage.of({"ingest-source-key": "a.csv"}) is None
    assert Lineage.of(None) is None
