"""near_pairs and groups against a brute-force reference: exact pairs, incremental runs, edges."""

from __future__ import annotations

import numpy as np
import pytest

from curator import dedup_index
from curator.dedup_index import groups, hamming, near_pairs, plan, popcount, to_unsigned
from curator.errors import InvalidInput


def brute_force(u: np.ndarray, threshold: int, new_from: int = 0) -> np.ndarray:
    """Every (i, j, distance) with i < j, j >= new_from, distance <= threshold, all pairs."""
    d = hamming(u[:, None], u[None, :])
    i, j = np.nonzero(np.triu(d <= threshold, k=1))
    keep = j >= new_from
    i, j = i[keep], j[keep]
    return np.stack([i, j, d[i, j]], axis=1).astype(np.int64).reshape(-1, 3)


def flip(rng, bits: int) -> np.uint64:
    """A mask of exactly ``bits`` random bits of 64."""
    return np.uint64(sum(1 << int(b) for b in rng.choice(64, bits, replace=False)))


def plant(n: int, distances, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """n uniform hashes in which disjoint random pairs sit at exactly the given distances;
    the hashes and those pairs (i < j), one per distance."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 2**64, n, dtype=np.uint64)
    slots = rng.permutation(n)
    for t, d in enumerate(distances):
        u[slots[2 * t + 1]] = u[slots[2 * t]] ^ flip(rng, d)
    pairs = [tuple(sorted(map(int, slots[2 * t : 2 * t + 2]))) for t in range(len(distances))]
    return u, pairs


def planted(n: int, distances, seed: int = 0) -> np.ndarray:
    return plant(n, distances, seed)[0]


def fill(n: int, top: int = 14) -> list[int]:
    """Distances 0..top over and over, as many pairs as n items hold (half the items)."""
    return [t % (top + 1) for t in range(n // 4 or n // 2)]


@pytest.mark.parametrize("threshold", range(13))
@pytest.mark.parametrize("n", [2, 40, 1500])
def test_matches_brute_force(n, threshold):
    u = planted(n, fill(n), seed=n + threshold)
    expected = brute_force(u, threshold)
    assert np.array_equal(near_pairs(u, threshold), expected)


@pytest.mark.parametrize("m", range(3, 17))
@pytest.mark.parametrize("threshold", [0, 3, 8, 12])
def test_every_split_is_exact(monkeypatch, m, threshold):
    """Whatever the cost model picks, any number of substrings gives the same pairs."""
    u = planted(600, fill(600), seed=m)
    monkeypatch.setattr(dedup_index, "plan", lambda n, t, queries=None: dedup_index._split(m, t, n))
    assert np.array_equal(near_pairs(u, threshold), brute_force(u, threshold))


@pytest.mark.parametrize("threshold", [0, 1, 5, 8, 10, 12])
def test_planted_distance_found_exactly_up_to_threshold(threshold):
    distances = list(range(16))
    u, planted_pairs = plant(200, distances, seed=threshold)
    found = {(i, j): d for i, j, d in near_pairs(u, threshold).tolist()}
    for pair, d in zip(planted_pairs, distances):
        assert (found.get(pair) == d) if d <= threshold else (pair not in found)


@pytest.mark.parametrize("new_from", [0, 1, 17, 500, 999, 1000])
@pytest.mark.parametrize("threshold", [0, 6, 10])
def test_incremental_is_new_against_all(new_from, threshold):
    u = planted(1000, fill(1000), seed=new_from)
    old = near_pairs(u[:new_from], threshold)
    new = near_pairs(u, threshold, new_from=new_from)
    assert (new[:, 1] >= new_from).all()
    assert np.array_equal(new, brute_force(u, threshold, new_from))
    union = np.concatenate([old, new])
    assert np.array_equal(union[np.lexsort((union[:, 1], union[:, 0]))], near_pairs(u, threshold))


def test_signed_int64_hashes_with_the_top_bit_set():
    # As ingest stores them: value - 2**64 when the top bit is set.
    values = [0x8000_0000_0000_0001, 0x1, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FF00]
    stored = np.array([v - (1 << 64) if v >= 1 << 63 else v for v in values], dtype=np.int64)
    assert to_unsigned(stored).tolist() == values
    assert near_pairs(stored, 8).tolist() == [[0, 1, 1], [2, 3, 8]]
    assert np.array_equal(near_pairs(stored, 8), near_pairs(np.array(values, dtype=np.uint64), 8))
    u = planted(500, fill(500), seed=7)
    assert np.array_equal(near_pairs(u.view(np.int64), 8), brute_force(u, 8))
    assert near_pairs([2**64 - 1, -1, 2**63], 1).tolist() == [[0, 1, 0]]  # plain Python ints


@pytest.mark.parametrize(
    "hashes, new_from",
    [([], 0), (np.zeros(0, dtype=np.int64), 0), ([12345], 0), ([12345], 1), ([1, 1], 2)],
)
def test_empty_single_and_nothing_new(hashes, new_from):
    pairs = near_pairs(hashes, 8, new_from=new_from)
    assert pairs.shape == (0, 3) and pairs.dtype == np.int64
    assert groups(len(hashes), pairs).tolist() == list(range(len(hashes)))


def test_identical_hashes_are_all_pairs_at_distance_zero():
    u = np.array([42] * 30 + [-1] * 3 + [43], dtype=np.int64)
    pairs = near_pairs(u, 0)
    assert len(pairs) == 30 * 29 // 2 + 3 and (pairs[:, 2] == 0).all()
    assert groups(len(u), pairs).tolist() == [0] * 30 + [1] * 3 + [2]
    assert len(near_pairs(u, 1)) == len(pairs) + 30  # 43 is one bit from 42


def test_bucket_expansion_in_small_chunks(monkeypatch):
    monkeypatch.setattr(dedup_index, "CANDIDATES_PER_CHUNK", 5)
    u = np.concatenate([np.full(40, 7, dtype=np.uint64), planted(300, fill(300))])
    assert np.array_equal(near_pairs(u, 4), brute_force(u, 4))


@pytest.mark.parametrize("block, workers", [(1, 1), (7, 2), (None, 1), (None, 3), (10_000, 2)])
def test_blocks_and_workers_do_not_change_pairs(block, workers):
    u = planted(800, fill(800), seed=3)
    assert np.array_equal(near_pairs(u, 9, block=block, workers=workers), brute_force(u, 9))


@pytest.mark.parametrize(
    "n, pairs, expected",
    [
        (4, [(0, 1), (1, 2)], [0, 0, 0, 1]),  # a~b, b~c: one group, though a and c are far
        (5, [(3, 4), (0, 2)], [0, 1, 0, 2, 2]),
        (3, [(2, 1, 5), (1, 0, 5)], [0, 0, 0]),  # (P, 3) rows from near_pairs
        (3, [(1, 1)], [0, 1, 2]),
        (2, np.zeros((0, 3), dtype=np.int64), [0, 1]),
        (0, [], []),
    ],
)
def test_groups(n, pairs, expected):
    labels = groups(n, pairs)
    assert labels.dtype == np.int64 and labels.tolist() == expected


def test_groups_of_a_chain_of_near_duplicates():
    a = np.uint64(0x0123_4567_89AB_CDEF)
    b = a ^ np.uint64(0xFF)  # 8 bits from a
    c = b ^ np.uint64(0xFF00)  # 8 from b, 16 from a
    u = np.array([a, 99, b, c], dtype=np.uint64)
    pairs = near_pairs(u, 8)
    assert pairs.tolist() == [[0, 2, 8], [2, 3, 8]]
    assert groups(4, pairs).tolist() == [0, 1, 0, 0]


def test_popcount_without_numpy_bitwise_count(monkeypatch):
    x = np.array([0, 1, 2**64 - 1, 0x8000_0000_0000_0000, 0xF0F0], dtype=np.uint64)
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert popcount(x).tolist() == [0, 1, 64, 1, 8]
    u = planted(300, fill(300), seed=5)
    assert np.array_equal(near_pairs(u, 7), brute_force(u, 7))


@pytest.mark.parametrize("n", [10, 10_000, 1_000_000, 10_000_000])
@pytest.mark.parametrize("threshold", range(17))
def test_plan_covers_the_threshold(n, threshold):
    """Pigeonhole: missing a pair in every part means at least sum(radius + 1) bits differ."""
    parts = plan(n, threshold)
    assert sum(p.radius + 1 for p in parts) == threshold + 1
    spans = sorted((p.shift, p.shift + p.bits) for p in parts)
    assert all(hi <= lo2 for (_, hi), (lo2, _) in zip(spans, spans[1:]))  # disjoint bits


def test_plan_for_a_million_at_threshold_8_is_three_22_bit_parts():
    parts = plan(1_000_000, 8)
    assert [(p.bits, p.radius) for p in parts] == [(22, 2), (21, 2), (21, 2)]


@pytest.mark.parametrize(
    "hashes, threshold, kwargs, message",
    [
        ([1, 2], -1, {}, "threshold must be 0..64 bits, got -1"),
        ([1, 2], 65, {}, "threshold must be 0..64 bits, got 65"),
        ([1, 2], 2.5, {}, "threshold must be a whole number of bits, got 2.5"),
        ([1, 2], 8, {"new_from": 3}, "new_from must be 0..2 (the number of hashes), got 3"),
        ([1, 2], 8, {"block": 0}, "block must be at least 1, got 0"),
        ([1, 2], 8, {"workers": 0}, "workers must be at least 1, got 0"),
        ([[1, 2]], 8, {}, "hashes must be one-dimensional (N,), got shape (1, 2)"),
        (["ab"], 8, {}, "hashes must be 64-bit integers (int64 or uint64), got 'ab'"),
        ([1, 1.5], 8, {}, "hashes must be 64-bit integers (int64 or uint64), got 1.5"),
        ([2**64], 8, {}, f"hashes must be 64-bit integers (int64 or uint64), got {2**64}"),
        (np.array([1.5]), 8, {}, "hashes must be 64-bit integers (int64 or uint64), got dtype "
         "float64"),
    ],
)
def test_invalid_input(hashes, threshold, kwargs, message):
    with pytest.raises(InvalidInput) as e:
        near_pairs(hashes, threshold, **kwargs)
    assert str(e.value) == message


@pytest.mark.parametrize(
    "n, pairs, message",
    [
        (3, [(0, 3)], "pairs must index items 0..2, got 0..3"),
        (3, [(0, 1, 2, 3)], "pairs must be (P, 2) or (P, 3), got shape (1, 4)"),
        (3, [0, 1], "pairs must be (P, 2) or (P, 3), got shape (2,)"),
    ],
)
def test_groups_invalid_input(n, pairs, message):
    with pytest.raises(InvalidInput) as e:
        groups(n, pairs)
    assert str(e.value) == message
