"""Where a source object lands: every placeholder, awkward keys, and a landed key that never escapes its prefix."""

from __future__ import annotations

import random
from datetime import date

import pytest

from handler.layout import (
    MAX_KEY_BYTES,
    UNMATCHED_TABLE,
    AmbiguousTable,
    KeyParts,
    KeyTooLong,
    UnsafeKey,
    key_parts,
    printable,
    relative_key,
    render_target_key,
    table_folder,
    table_of,
)
from handler.templates import DEFAULT_KEY_TEMPLATE, DEFAULT_TABLE_KEY_TEMPLATE, TEMPLATE_SAMPLE_KEYS
from tests.awkward_keys import AWKWARD_KEYS

RUN_DATE = date(2024, 3, 7)
RUN_ID = "20240307T200000Z-ab12"


def render(relative: str, template: str = DEFAULT_KEY_TEMPLATE, prefix: str = "raw/") -> str:
    return render_target_key(template, prefix, dataset="sales", relative=relative, run_date=RUN_DATE, run_id=RUN_ID)


# ---- placeholders --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{dataset}/{date}/{path}", "raw/sales/2024-03-07/2024/jan/rates.v2.csv"),
        ("{date}/{path}", "raw/2024-03-07/2024/jan/rates.v2.csv"),
        ("{dir}/{date}/{name}", "raw/2024/jan/2024-03-07/rates.v2.csv"),
        ("{dir}/{date}/{stem}{ext}", "raw/2024/jan/2024-03-07/rates.v2.csv"),
        ("{dir}/{stem}/{date}{ext}", "raw/2024/jan/rates.v2/2024-03-07.csv"),
        ("{yyyy}/{mm}/{dd}/{path}", "raw/2024/03/07/2024/jan/rates.v2.csv"),
        ("{dir}/{run_id}/{date}/{name}", "raw/2024/jan/20240307T200000Z-ab12/2024-03-07/rates.v2.csv"),
        (DEFAULT_KEY_TEMPLATE, "raw/2024/jan/ingest_date=2024-03-07/rates.v2.csv"),
        ("{{x}}/{date}/{path}", "raw/{x}/2024-03-07/2024/jan/rates.v2.csv"),
    ],
)
def test_every_placeholder_renders_its_part_of_the_key(template: str, expected: str) -> None:
    assert render("2024/jan/rates.v2.csv", template) == expected


def test_single_digit_month_and_day_are_zero_padded() -> None:
    key = render_target_key(
        "{yyyy}-{mm}-{dd}/{date}/{path}",
        "",
        dataset="sales",
        relative="a.csv",
        run_date=date(987, 1, 2),
        run_id=RUN_ID,
    )

    assert key == "0987-01-02/0987-01-02/a.csv"


@pytest.mark.parametrize(
    ("relative", "parts"),
    [
        ("a/b/c.csv", KeyParts(path="a/b/c.csv", dir="a/b", name="c.csv", stem="c", ext=".csv")),
        ("c.csv", KeyParts(path="c.csv", dir="", name="c.csv", stem="c", ext=".csv")),
        (
            "a/archive.tar.gz",
            KeyParts(path="a/archive.tar.gz", dir="a", name="archive.tar.gz", stem="archive.tar", ext=".gz"),
        ),
        ("README", KeyParts(path="README", dir="", name="README", stem="README", ext="")),
        (".env", KeyParts(path=".env", dir="", name=".env", stem=".env", ext="")),
        ("conf/.gitignore", KeyParts(path="conf/.gitignore", dir="conf", name=".gitignore", stem=".gitignore", ext="")),
        (".config/.bashrc.bak", KeyParts(".config/.bashrc.bak", ".config", ".bashrc.bak", ".bashrc", ".bak")),
        ("/lead.csv", KeyParts(path="lead.csv", dir="", name="lead.csv", stem="lead", ext=".csv")),
        ("x//y.csv", KeyParts(path="x/y.csv", dir="x", name="y.csv", stem="y", ext=".csv")),
        ("x/y/", KeyParts(path="x/y", dir="x", name="y", stem="y", ext="")),
    ],
)
def test_key_parts_split_a_relative_key(relative: str, parts: KeyParts) -> None:
    assert key_parts(relative) == parts


@pytest.mark.parametrize("name", [".env", ".gitignore", "dir/.hidden"])
def test_dotfile_has_no_extension_so_stem_and_ext_rebuild_its_name(name: str) -> None:
    assert render(name, "{dir}/{date}/{stem}|{ext}|").endswith(f"/{name.rsplit('/', 1)[-1]}||")


# ---- {dir} and slashes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "raw/", "a/b/"])
def test_empty_dir_leaves_no_leading_or_doubled_slash(prefix: str) -> None:
    key = render("rates.csv", prefix=prefix)

    assert key == f"{prefix}ingest_date=2024-03-07/rates.csv"
    assert not key.startswith("/")
    assert "//" not in key


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("/lead.csv", "raw/ingest_date=2024-03-07/lead.csv"),
        ("//lead.csv", "raw/ingest_date=2024-03-07/lead.csv"),
        ("x//y.csv", "raw/x/ingest_date=2024-03-07/y.csv"),
        ("x///y//z.csv", "raw/x/y/ingest_date=2024-03-07/z.csv"),
        ("/x/y.csv", "raw/x/ingest_date=2024-03-07/y.csv"),
    ],
)
def test_leading_and_doubled_slashes_are_dropped(relative: str, expected: str) -> None:
    assert render(relative) == expected


@pytest.mark.parametrize(
    ("relative", "segment"),
    [
        ("a/../b.csv", ".."),
        ("../b.csv", ".."),
        ("a/..", ".."),
        ("./a.csv", "."),
        ("a/./b.csv", "."),
        ("a/.", "."),
        ("..//etc/passwd", ".."),
    ],
)
def test_dot_and_dotdot_segments_make_the_key_unsafe_with_the_reason(relative: str, segment: str) -> None:
    with pytest.raises(UnsafeKey) as info:
        render(relative)

    assert str(info.value) == f"key has a {segment!r} segment, which could escape the target prefix"
    assert not isinstance(info.value, KeyTooLong)


@pytest.mark.parametrize("relative", ["", "/", "///"])
def test_key_with_no_file_name_is_unsafe(relative: str) -> None:
    with pytest.raises(UnsafeKey, match="key has no file name after the source prefix"):
        render(relative)


@pytest.mark.parametrize("run_id", ["..", "."])
def test_template_value_that_renders_a_dotdot_segment_is_unsafe(run_id: str) -> None:
    with pytest.raises(UnsafeKey, match="key template renders .* which has an empty, '.' or '..' segment"):
        render_target_key(
            "{run_id}/{date}/{path}", "raw/", dataset="s", relative="a.csv", run_date=RUN_DATE, run_id=run_id
        )


@pytest.mark.parametrize("relative", ["...", "a/.../b.csv", "..a", "a..", ".a."])
def test_segments_that_only_contain_dots_are_ordinary_names(relative: str) -> None:
    key = render(relative, "{date}/{path}")

    assert key == f"raw/2024-03-07/{relative}"


# ---- awkward characters ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("relative", AWKWARD_KEYS)
def test_awkward_characters_pass_through_unchanged(relative: str) -> None:
    assert render(relative, "{date}/{path}") == f"raw/2024-03-07/{relative}"


# ---- length ------------------------------------------------------------------------------------------------------


def test_key_of_exactly_1024_bytes_is_allowed() -> None:
    fixed = len("raw/2024-03-07/")
    key = render("k" * (MAX_KEY_BYTES - fixed), "{date}/{path}")

    assert len(key.encode("utf-8")) == MAX_KEY_BYTES == 1024


def test_key_of_1025_bytes_is_too_long() -> None:
    fixed = len("raw/2024-03-07/")

    with pytest.raises(KeyTooLong) as info:
        render("k" * (MAX_KEY_BYTES - fixed + 1), "{date}/{path}")

    assert isinstance(info.value, UnsafeKey)
    assert str(info.value).startswith("target key would be 1025 bytes, over S3's 1024-byte limit")
    assert "shorten the source key or the key_template" in str(info.value)


@pytest.mark.parametrize(("char", "width"), [("é", 2), ("文", 3), ("😀", 4)])
def test_multibyte_characters_count_as_their_utf8_bytes(char: str, width: int) -> None:
    fixed = len("raw/2024-03-07/")
    chars = (MAX_KEY_BYTES - fixed) // width + 1
    relative = char * chars
    assert len("raw/2024-03-07/" + relative) < MAX_KEY_BYTES

    with pytest.raises(KeyTooLong, match=f"target key would be {fixed + chars * width} bytes"):
        render(relative, "{date}/{path}")


def test_template_growth_is_counted_against_the_limit() -> None:
    relative = "k" * 1000

    assert render(relative, "{date}/{path}")
    with pytest.raises(KeyTooLong):
        render(relative, "{dataset}/{run_id}/{date}/{path}")


# ---- relative keys ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "key", "relative"),
    [
        ("in/", "in/a/b.csv", "a/b.csv"),
        ("", "in/a/b.csv", "in/a/b.csv"),
        ("in/", "in/", ""),
        ("in/", "inbox/a.csv", "inbox/a.csv"),
        ("données/", "données/été.csv", "été.csv"),
    ],
)
def test_relative_key_strips_only_the_source_prefix(prefix: str, key: str, relative: str) -> None:
    assert relative_key(prefix, key) == relative


# ---- property: a landed key never leaves the target prefix ------------------------------------------------------

_PIECES = ["a", "b", "data", ".", "..", "...", "", " ", "é", "😀", "%2F", "?", "#", "+", "~", "\\", "x.csv", ".env"]
_TEMPLATES = [
    DEFAULT_KEY_TEMPLATE,
    "{date}/{path}",
    "{dataset}/{yyyy}/{mm}/{dd}/{dir}/{stem}{ext}",
    "{dir}/{run_id}/{date}/{name}",
]


def _awkward_keys(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    keys = []
    for _ in range(count):
        segments = ["".join(rng.choices(_PIECES, k=rng.randint(1, 3))) for _ in range(rng.randint(1, 6))]
        key = "/".join(segments)
        if rng.random() < 0.2:
            key = "/" + key
        if rng.random() < 0.1:
            key = key + "/"
        if rng.random() < 0.02:
            key = "long" * 300 + key
        keys.append(key)
    return keys


@pytest.mark.parametrize("template", _TEMPLATES)
@pytest.mark.parametrize("prefix", ["", "raw/", "a/b/"])
def test_landed_key_never_leaves_the_target_prefix_nor_has_empty_or_dot_segments(template: str, prefix: str) -> None:
    rendered = unsafe = too_long = 0
    for relative in _awkward_keys(600, seed=20240307):
        segments = [s for s in relative.split("/") if s]
        try:
            key = render(relative, template, prefix)
        except KeyTooLong:
            assert len((prefix + relative).encode()) > MAX_KEY_BYTES - 40
            too_long += 1
            continue
        except UnsafeKey:
            # Refused only when the key really has a dot segment or no name at all.
            assert not segments or any(s in (".", "..") for s in segments), relative
            unsafe += 1
            continue
        rendered += 1
        assert key.startswith(prefix), (relative, key)
        rest = key[len(prefix) :].split("/")
        assert all(s not in ("", ".", "..") for s in rest), (relative, key)
        assert len(key.encode("utf-8")) <= MAX_KEY_BYTES
    assert rendered > 300 and unsafe > 50 and too_long > 0  # the generator really produced every kind


@pytest.mark.parametrize("template", _TEMPLATES)
def test_distinct_source_paths_never_share_a_landed_key(template: str) -> None:
    landed: dict[str, str] = {}
    for relative in _awkward_keys(1500, seed=7):
        try:
            key = render(relative, template)
        except UnsafeKey:
            continue
        path = "/".join(s for s in relative.split("/") if s)
        assert landed.setdefault(key, path) == path, (key, landed[key], path)


@pytest.mark.parametrize(
    ("relative", "template"),
    [("_ingestion/movielens/lock.json", "{path}/{date}"), ("x.csv", "_ingestion/{dir}/{date}/{name}")],
)
def test_a_key_that_would_land_inside_the_ledger_is_unsafe(relative: str, template: str) -> None:
    with pytest.raises(UnsafeKey, match="reserved ledger prefix"):
        render(relative, template=template, prefix="")


# ---- the template check's sample keys ----------------------------------------------------------------------------


def test_the_samples_a_template_is_checked_with_are_distinct_safe_keys_of_several_shapes() -> None:
    paths = [key_parts(sample).path for sample in TEMPLATE_SAMPLE_KEYS]

    assert len(set(paths)) == len(paths) == len(TEMPLATE_SAMPLE_KEYS)
    assert {"a.csv", ".env"} <= set(paths)
    assert any(not p.isascii() for p in paths)
    assert any(p.count("/") >= 2 and p.endswith(".tar.gz") for p in paths)
    assert max(len(p.encode()) for p in paths) >= 150


# ---- keys shown to a person ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("esc\x1b[31mred.csv", "esc\\x1b[31mred.csv"),
        ("two\nlines.csv", "two\\nlines.csv"),
        ("cr\rback.csv", "cr\\rback.csv"),
        ("tab\tkey.csv", "tab\\tkey.csv"),
        ("bell\x07.csv", "bell\\x07.csv"),
        ("del\x7f.csv", "del\\x7f.csv"),
        ("nul\x00.csv", "nul\\x00.csv"),
        ("bidi\u202egnp.exe", "bidi\\u202egnp.exe"),
        ("isolate\u2066x\u2069.csv", "isolate\\u2066x\\u2069.csv"),
        ("c1\x85.csv", "c1\\x85.csv"),
    ],
)
def test_control_and_bidi_characters_are_escaped_for_display(key: str, shown: str) -> None:
    assert printable(key) == shown
    assert printable(key).isprintable()


@pytest.mark.parametrize("key", ["café.csv", "cafe\u0301.csv", "中文/文件.txt", "emoji/🎬.json", "a b/c+d%20.csv"])
def test_ordinary_unicode_stays_readable(key: str) -> None:
    assert printable(key) == key


# ---- tables ------------------------------------------------------------------------------------------------------

TABLES = (("ratings", ("ratings*.csv", "*/ratings*.csv")), ("movies", ("movies.csv",)))


def render_table(relative: str, template: str = DEFAULT_TABLE_KEY_TEMPLATE, prefix: str = "raw/") -> str:
    return render_target_key(
        template, prefix, dataset="sales", relative=relative, run_date=RUN_DATE, run_id=RUN_ID, tables=TABLES
    )


@pytest.mark.parametrize(
    ("relative", "table"),
    [
        ("ratings.csv", "ratings"),
        ("ratings_late.csv", "ratings"),
        ("2024/ratings.csv", "ratings"),
        ("movies.csv", "movies"),
        ("2024/movies.csv", UNMATCHED_TABLE),
        ("Ratings.csv", UNMATCHED_TABLE),
        ("README.txt", UNMATCHED_TABLE),
    ],
)
def test_a_key_belongs_to_the_table_whose_patterns_it_matches_as_include_would(relative: str, table: str) -> None:
    assert table_of(relative, TABLES) == table


def test_a_key_matching_two_tables_is_ambiguous_naming_both_and_the_patterns() -> None:
    with pytest.raises(AmbiguousTable) as info:
        table_of("ratings.csv", (("ratings", ("ratings*",)), ("csv", ("*.txt", "*.csv"))))

    assert str(info.value) == (
        "ambiguous table: the key matches the patterns of 'ratings' ('ratings*'), 'csv' ('*.csv'); it is not copied "
        "until the patterns are changed so that it matches one table"
    )


def test_two_patterns_of_one_table_are_not_ambiguous() -> None:
    assert table_of("x/ratings.csv", (("ratings", ("*ratings*", "*.csv")),)) == "ratings"


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("ratings.csv", "raw/ratings/ingest_date=2024-03-07/ratings.csv"),
        ("2024/jan/ratings.csv", "raw/ratings/ingest_date=2024-03-07/2024/jan/ratings.csv"),
        ("movies.csv", "raw/movies/ingest_date=2024-03-07/movies.csv"),
        ("README.txt", "raw/_unmatched/ingest_date=2024-03-07/README.txt"),
    ],
)
def test_the_table_template_lands_each_table_in_its_own_partitioned_folder(relative: str, expected: str) -> None:
    assert render_table(relative) == expected


def test_a_template_without_table_ignores_the_tables() -> None:
    assert render_table("ratings.csv", DEFAULT_KEY_TEMPLATE) == "raw/ingest_date=2024-03-07/ratings.csv"


@pytest.mark.parametrize(
    ("template", "folder"),
    [
        (DEFAULT_TABLE_KEY_TEMPLATE, "raw/ratings/"),
        ("{dataset}/{table}/ingest_date={date}/{name}/{path}", "raw/sales/ratings/"),
        ("/tables//{table}_v2/ingest_date={date}/{run_id}/{path}", "raw/tables/ratings_v2/"),
    ],
)
def test_the_table_folder_is_where_every_key_of_the_table_lands_above_its_partition(template: str, folder: str) -> None:
    assert table_folder(template, "raw/", dataset="sales", table="ratings") == folder
    for relative in ("ratings.csv", "a/b/ratings_2.csv", "//ratings.csv"):
        assert render_table(relative, template).startswith(f"{folder}ingest_date=2024-03-07/")


@pytest.mark.parametrize(
    "template",
    ["{dir}/{table}/ingest_date={date}/{name}", "{table}/{date}/{path}", "ingest_date={date}/{table}/{path}"],
)
def test_a_template_without_one_folder_per_table_has_no_table_folder(template: str) -> None:
    with pytest.raises(ValueError):
        table_folder(template, "raw/", dataset="sales", table="ratings")
