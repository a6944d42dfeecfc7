"""Lineage metadata: ASCII on the wire, exact source key back out, names read whatever their case."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

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
    decode_value,
    encode_value,
    encoded_size_bound,
    encoded_word,
    landed_from,
    merged,
)
from tests.awkward_keys import AWKWARD_KEYS
from tests.conftest import new_bucket

KEYS = [*AWKWARD_KEYS, "/leading//doubled/"]
"""A name ending in a slash never lands (it is a folder marker), but metadata must carry it all the same."""


def lineage_for(key: str) -> dict[str, str]:
    return Lineage(
        source_bucket="src-bucket",
        source_key=key,
        source_etag="9b2cf535f27731c974343645a3985328",
        dataset="sales",
        date="2024-03-07",
        ingested_at="2024-03-07T20:00:05Z",
        run_id="20240307T200000Z-ab12",
    ).metadata()


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


@pytest.mark.parametrize("key", KEYS)
def test_every_lineage_value_is_printable_ascii(key: str) -> None:
    for name, value in lineage_for(key).items():
        assert name.isascii() and value.isascii(), (name, value)
        assert value.isprintable(), (name, value)


@pytest.mark.parametrize("key", KEYS)
def test_landed_from_gives_back_the_exact_source_key(key: str) -> None:
    assert landed_from(lineage_for(key)) == ("src-bucket", key, "9b2cf535f27731c974343645a3985328")


@pytest.mark.parametrize("key", ["données/été.csv", "a%2Fb.csv", "what?.csv", "emoji/😀.json", "plus+sign and space"])
def test_lineage_survives_a_real_put_and_head(s3: Any, key: str) -> None:
    bucket = new_bucket(s3, "raw")
    s3.put_object(Bucket=bucket, Key="landed.csv", Body=b"x", Metadata=lineage_for(key))

    metadata = s3.head_object(Bucket=bucket, Key="landed.csv")["Metadata"]

    assert landed_from(metadata) == ("src-bucket", key, "9b2cf535f27731c974343645a3985328")


@pytest.mark.parametrize("key", KEYS[:6])
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

    assert str(info.value) == (
        "user metadata plus lineage would be 2049 bytes, over S3's 2048-byte limit on user metadata: the source's "
        f"own user metadata (1 name, {4 + room + 1} bytes) does not fit beside the lineage ({_lineage_bytes(values)} "
        "bytes); trim the source's metadata, or set source_metadata: lineage for this dataset to land it without"
    )


def test_a_source_key_too_long_to_carry_says_what_length_would_fit() -> None:
    # 1,400 bytes of UTF-8: more than an S3 key can be, so only a lineage grown by other fields could meet it.
    with pytest.raises(MetadataTooLarge) as info:
        merged({}, lineage_for("é" * 700))

    room = MAX_METADATA_BYTES - (_lineage_bytes(lineage_for("")) - len(encode_value("")))
    fits = 3 * ((room - len("=?UTF-8?B??=")) // 4)
    assert str(info.value).startswith("lineage metadata would be ")
    assert f"the source key is 1400 bytes of UTF-8, {len(encoded_word('é' * 700))} once encoded as ASCII" in str(
        info.value
    )
    assert str(info.value).endswith(
        f"a source key of up to {fits} bytes fits beside this lineage, so rename the file shorter"
    )
    merged({}, lineage_for("é" * (fits // 2)))  # and that length does fit
    assert encoded_size_bound(fits) <= room


# ---- long non-ASCII keys: an encoding that does not triple them -------------------------------------------------

CJK_1024 = "in/" + "映" * 340 + "x"
"""The longest key S3 allows (1,024 bytes), in a 3-byte script: 3,063 characters percent-encoded."""


def worst_case_lineage(key: str) -> dict[str, str]:
    """The longest every other lineage value can be: a 63-character bucket and dataset, a multipart ETag."""
    return Lineage(
        source_bucket="b" * 63,
        source_key=key,
        source_etag="0" * 32 + "-10000",
        dataset="d" * 63,
        date="2026-12-07",
        ingested_at="2026-12-07T14:44:55.123Z",
        run_id="20261207T144455123Z-ab12cd",
    ).metadata()


def test_a_1024_byte_key_of_3_byte_characters_fits_with_room_to_spare() -> None:
    """Percent-encoding made every non-ASCII key of about 610 bytes or more unlandable; base64 takes 4/3."""
    assert len(CJK_1024.encode()) == 1024 and len(quote(CJK_1024, safe="/")) == 3064

    values = merged({}, worst_case_lineage(CJK_1024))

    assert values[SOURCE_KEY] == "=?UTF-8?B?" + base64.b64encode(CJK_1024.encode()).decode() + "?="
    assert len(values[SOURCE_KEY]) == encoded_size_bound(1024) == 1380
    assert _lineage_bytes(values) == 1713  # 335 bytes left for the source's own metadata
    assert landed_from(values) == ("b" * 63, CJK_1024, "0" * 32 + "-10000")


@pytest.mark.parametrize(("chars", "form"), [(204, "%E6%98%A0"), (205, "=?UTF-8?B?"), (300, "=?UTF-8?B?"), (341, "=?")])
def test_non_ascii_keys_past_the_old_limit_now_fit_and_the_rest_keep_their_form(chars: int, form: str) -> None:
    """204 characters (612 bytes) fitted percent-encoded and still are; from 205 on, the run failed the object."""
    key = "映" * chars

    values = merged({}, lineage_for(key))

    assert values[SOURCE_KEY].startswith(form)
    assert Lineage.of(values).source_key == key  # type: ignore[union-attr]


def test_the_source_s_own_metadata_can_be_what_makes_the_key_take_its_compact_form() -> None:
    key = "données/" * 20 + "été.csv"
    values = lineage_for(key)
    room = MAX_METADATA_BYTES - _lineage_bytes(values) - len("note")

    assert merged({"note": "n" * room}, values)[SOURCE_KEY] == quote(key, safe="/")
    assert merged({"note": "n" * (room + 1)}, values)[SOURCE_KEY].startswith("=?UTF-8?B?")
    assert landed_from(merged({"note": "n" * (room + 1)}, values))[1] == key  # type: ignore[index]


@pytest.mark.parametrize("key", [*KEYS, "映" * 341])
def test_the_compact_form_is_printable_ascii_decodes_exactly_and_keeps_its_bound(key: str) -> None:
    word = encoded_word(key)

    assert word.isascii() and word.isprintable()
    assert decode_value(word) == key
    assert len(word) == encoded_size_bound(len(key.encode()))
    assert decode_value(encode_value(key)) == key


@pytest.mark.parametrize("key", ["中文/文件.txt", "映" * 200, "données/été.csv", "100%.csv", "what?.csv"])
def test_lineage_written_percent_encoded_by_earlier_versions_still_reads(key: str) -> None:
    """Objects landed before the second form existed keep their percent-encoded lineage: the copier's read-back,
    finalize, verify and `lineage` all go through `landed_from` / `Lineage.of`."""
    old = {**lineage_for(key), SOURCE_KEY: quote(key, safe="/")}

    assert landed_from(old) == ("src-bucket", key, "9b2cf535f27731c974343645a3985328")
    assert Lineage.of(old).source_key == key  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value",
    [
        "=?utf-8?b?" + base64.b64encode("映画/café.csv".encode()).decode() + "?=",  # lower-case, as some servers
        "=?UTF-8?Q?=E6=98=A0=E7=94=BB/caf=C3=A9.csv?=",  # Q encoding
        "=?UTF-8?B?"
        + base64.b64encode("映画/".encode()).decode()
        + "?= =?UTF-8?B?"
        + base64.b64encode(b"caf\xc3\xa9.csv").decode()
        + "?=",
    ],
)
def test_an_rfc_2047_word_a_server_re_encoded_still_decodes(value: str) -> None:
    """R2 decodes RFC 2047 values when it stores them and encodes them again when it answers."""
    assert decode_value(value) == "映画/café.csv"


def test_a_1024_byte_key_lands_with_its_lineage_through_a_real_put_and_head(s3: Any) -> None:
    bucket = new_bucket(s3, "raw")
    s3.put_object(Bucket=bucket, Key="landed.csv", Body=b"x", Metadata=merged({}, worst_case_lineage(CJK_1024)))

    metadata = s3.head_object(Bucket=bucket, Key="landed.csv")["Metadata"]

    assert landed_from(metadata) == ("b" * 63, CJK_1024, "0" * 32 + "-10000")


def test_replaced_source_ingest_values_do_not_count_against_the_limit() -> None:
    values = lineage_for("a.csv")

    assert merged({"ingest-source-key": "x" * 4000}, values) == values


@pytest.mark.parametrize("key", KEYS)
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
