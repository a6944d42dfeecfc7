"""Key ranges: cutting, merging, splitting and indexing shards, as pure functions."""

from __future__ import annotations

import pytest

from handler.shards import (
    BATCH_STRIDE,
    RunShard,
    StateIndex,
    StatePart,
    batch_number,
    boundaries_from_prefixes,
    in_range,
    run_shards,
    shard_of_batch,
    split_sizes,
)


def test_a_range_is_open_below_and_closed_above_in_listing_order():
    assert in_range("b", "a", "b") and not in_range("a", "a", "b")
    assert in_range("z", "a", None) and in_range("", None, "a")
    assert in_range("données/é", "données/e", None), "code points compare as S3's UTF-8 bytes do"


def test_batch_numbers_of_shard_zero_are_the_numbers_before_shards_existed():
    assert [batch_number(0, n) for n in range(3)] == [0, 1, 2]
    assert batch_number(4, 7) == 4 * BATCH_STRIDE + 7 and shard_of_batch(batch_number(4, 7)) == 4
    with pytest.raises(ValueError):
        batch_number(1, BATCH_STRIDE)


def test_an_empty_state_is_one_shard_over_every_key():
    assert run_shards(StateIndex.empty(), 1000) == [RunShard(0, None, None, (), False)]


def test_small_neighbouring_parts_are_planned_as_one_shard_that_rewrites_them():
    index = StateIndex((StatePart(None, "p0", 100), StatePart("b", "p1", 100), StatePart("m", "p2", 900)))

    shards = run_shards(index, 1000)

    assert shards == [
        RunShard(0, None, "m", ("p0", "p1"), True),
        RunShard(1, "m", None, ("p2",), False),
    ]


def test_discovered_folders_cut_a_first_run_and_share_its_one_part():
    shards = run_shards(StateIndex((StatePart(None, "legacy", -1),)), 1000, ["data/b", "data/c"])

    assert [(s.start_after, s.end_at, s.parts, s.rewrite) for s in shards] == [
        (None, "data/b", ("legacy",), True),
        ("data/b", "data/c", ("legacy",), True),
        ("data/c", None, ("legacy",), True),
    ]


def test_folders_become_cut_points_without_their_slash_thinned_to_a_limit():
    assert boundaries_from_prefixes(["d/b/", "d/a/", "d/c/"]) == ["d/b", "d/c"]
    cuts = boundaries_from_prefixes([f"d/{n:04d}/" for n in range(1000)], limit=10)
    assert len(cuts) == 9 and cuts == sorted(cuts)


def test_a_shard_over_the_limit_splits_into_pieces_of_about_half_of_it():
    assert split_sizes(999, 1000) == [999]
    assert split_sizes(1001, 1000) == [334, 334, 333]
    assert sum(split_sizes(12_345, 5000)) == 12_345 and max(split_sizes(12_345, 5000)) <= 2500
    assert split_sizes(0, 1000) == [0]


def test_the_committed_index_is_sorted_open_below_and_drops_keyless_ranges():
    before = StateIndex((StatePart(None, "old0", 5), StatePart("k", "old1", 5)))
    pieces = [StatePart("k", "new1", 7), StatePart(None, None, 0), StatePart("c", "new0", 3)]

    index = StateIndex.of(pieces, "run-2", before)

    assert index.parts == (StatePart(None, "new0", 3), StatePart("k", "new1", 7))
    assert index.replaced == ("old0", "old1")
    assert StateIndex.from_json(index.to_json()) == index
    assert [end for _, end in index.ranges()] == ["k", None]


def test_an_index_of_nothing_is_the_empty_index():
    index = StateIndex.of([StatePart(None, None, 0)], "run-1", StateIndex.empty())

    assert index.same_parts(StateIndex.empty())
