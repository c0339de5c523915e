"""Near-duplicate pairs among 64-bit perceptual hashes, without comparing all pairs.

``near_pairs(hashes, threshold)`` returns every pair of hashes within ``threshold`` bits
(Hamming distance), exactly: no pair is missed and none is reported that is further apart.
``groups(n, pairs)`` turns the pairs into duplicate groups (connected components).

The algorithm is multi-index hashing (Norouzi, Punjani and Fleet, CVPR 2012):

1. Split the 64 bits into ``m`` substrings of about ``b = 64/m`` bits. Pigeonhole: two hashes
   within ``threshold = s*m + a`` bits (``0 <= a < m``) agree within ``s`` bits on one of any
   ``a+1`` chosen substrings, or within ``s-1`` bits on one of the others; otherwise they
   differ by at least ``(a+1)(s+1) + (m-a-1)s > threshold`` bits. So ``a+1`` substrings are
   searched at radius ``s`` and the rest at ``s-1`` (not at all when that is -1).
2. Per substring, a bucket index: item indices sorted by the substring's key, with direct
   tables of ``2**b`` slots (item count, first item, offset into the sorted order).
3. Every query probes the buckets of its key XOR each mask of at most ``radius`` bits:
   ``sum(C(b, k) for k <= radius)`` probes. Each item found is a candidate, verified by a
   popcount of the full 64-bit XOR. When every item is a query (``new_from=0``) a pair in two
   buckets is probed from both ends, so only the probe towards the larger key is made; pairs
   in one bucket keep the smaller index as ``i``. A pair that several substrings find is kept
   only from the first one that must find it: every pair comes back exactly once.

Cost per query: the sum over substrings of ``probes * (c_probe + c_item * N / 2**b)``: few
substrings mean long keys, sparse buckets and many probes; many substrings mean few probes
into crowded buckets. ``plan`` evaluates this model (constants measured with numpy 2: ~10 ns a
probe, ~20 ns a candidate, plus building the tables) for ``m = 3..16`` and takes the cheapest.
For N = 1,000,000 and threshold 8 that is ``m = 3`` (22/21/21-bit substrings, radius 2 each):
~720 probes and ~280 candidates per item, 5-10 s on two cores (``benchmarks/dedup.py``). The
neighbourhood grows fast with the threshold: at 1M, threshold 10 needs ~3,600 probes and
~1,300 candidates per item (~20 s), threshold 12 ~12,000 and ~3,700 (~70 s). So do chance
pairs: 1M uniform hashes hold ~140 pairs within 8 bits, ~5,000 within 10 and ~114,000 within 12.

Queries are searched in blocks (by default as many as make ~2**21 probes) and bucket hits
expanded in chunks of at most ~2**22 candidates, so memory is the input, one substring's
tables (~36 MiB at 22 bits plus 12 bytes per item) and ~100 MiB per worker thread, whatever N.

Incremental runs: with ``new_from=k`` only pairs whose larger index is at least ``k`` are
returned, so appending new hashes and passing ``new_from=len(old)`` compares new against all
and never old against old again.

The output holds every pair: 10,000 identical hashes (blank images, say) are 50 million pairs.
"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from curator.errors import InvalidInput

HASH_BITS = 64
MIN_PARTS, MAX_PARTS = 3, 16  # at most 22-bit substrings: direct tables of 2**22 slots
PROBES_PER_BLOCK = 1 << 21  # queries x probes held at once, per worker
CANDIDATES_PER_CHUNK = 1 << 22  # bucket hits expanded at once, per worker
# Cost model, nanoseconds (numpy 2.4, one core; benchmarks/dedup.py measures the real thing).
_NS_PROBE = 10.0
_NS_CANDIDATE = 20.0
_NS_TABLE_SLOT = 3.0
_NS_SORT_ITEM = 150.0
_NO_PAIRS = np.zeros((0, 3), dtype=np.int64)


# -- small helpers ---------------------------------------------------------------------------


def to_unsigned(hashes) -> np.ndarray:
    """The hashes as uint64, same shape: int64 values are reinterpreted bit for bit.

    A pHash stored as a signed int64 (``value - 2**64`` when the top bit is set) comes back
    as the original 64-bit value.

    Raises:
        InvalidInput: the values are not integers that fit in 64 bits.
    """
    # A list of Python ints mixing negative values and values >= 2**63 would become float64.
    is_list = isinstance(hashes, (list, tuple))
    arr = np.array(hashes, dtype=object) if is_list else np.asarray(hashes)
    if arr.dtype.kind == "u" or (arr.dtype.kind == "f" and arr.size == 0):
        return arr.astype(np.uint64, copy=False)
    if arr.dtype.kind == "i":
        return arr.astype(np.int64, copy=False).view(np.uint64)
    if arr.dtype == object:
        bad = [v for v in arr.flat if not _fits_64_bits(v)][:1]
        if bad:
            raise InvalidInput(f"hashes must be 64-bit integers (int64 or uint64), got {bad[0]!r}")
        flat = [int(v) & ((1 << HASH_BITS) - 1) for v in arr.flat]
        return np.array(flat, dtype=np.uint64).reshape(arr.shape)
    raise InvalidInput(f"hashes must be 64-bit integers (int64 or uint64), got dtype {arr.dtype}")


def _fits_64_bits(v) -> bool:
    ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    return ok and -(1 << 63) <= v < 1 << 64


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount(x) -> np.ndarray:
    """Set bits of each element of a uint64 array, as uint8 (same shape)."""
    x = np.asarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    as_bytes = np.ascontiguousarray(x).view(np.uint8).reshape(x.shape + (8,))
    return _BYTE_BITS[as_bytes].sum(axis=-1, dtype=np.uint8)


def hamming(a, b) -> np.ndarray:
    """Hamming distances between 64-bit hashes ``a`` and ``b`` (broadcast), as int64."""
    return popcount(to_unsigned(a) ^ to_unsigned(b)).astype(np.int64)


# -- the plan: substrings, radii, cost -------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One substring: bits ``[shift, shift + bits)`` of the hash, searched within ``radius``."""

    shift: int
    bits: int
    radius: int

    @property
    def probes(self) -> int:
        """Keys probed per query: the masks of at most ``radius`` of ``bits`` bits."""
        return sum(math.comb(self.bits, k) for k in range(min(self.radius, self.bits) + 1))


def _part_cost(bits: int, radius: int, n: int) -> float:
    """Nanoseconds per query to search one substring of uniform hashes (0: not searched)."""
    if radius < 0:
        return 0.0
    return Part(0, bits, radius).probes * (_NS_PROBE + _NS_CANDIDATE * n / 2.0**bits)


def _split(m: int, threshold: int, n: int) -> list[Part]:
    """``m`` substrings, radius ``s`` on the ``a+1`` cheapest to widen and ``s-1`` elsewhere."""
    s, a = divmod(threshold, m)
    sizes = [HASH_BITS // m + (i < HASH_BITS % m) for i in range(m)]
    extra = [_part_cost(b, s, n) - _part_cost(b, s - 1, n) for b in sizes]
    wide = set(sorted(range(m), key=lambda i: (extra[i], i))[: a + 1])
    parts, shift = [], HASH_BITS
    for i, bits in enumerate(sizes):
        shift -= bits
        parts.append(Part(shift, bits, s if i in wide else s - 1))
    return [p for p in parts if p.radius >= 0]


def plan_cost(parts: list[Part], n: int, queries: int) -> float:
    """Estimated single-core seconds to search ``queries`` new items among ``n``."""
    build = sum(n * _NS_SORT_ITEM + 2**p.bits * _NS_TABLE_SLOT for p in parts)
    search = queries * sum(_part_cost(p.bits, p.radius, n) for p in parts)
    return (build + search) * 1e-9


def plan(n: int, threshold: int, *, queries: int | None = None) -> list[Part]:
    """The cheapest split of the 64 bits for ``n`` hashes, ``queries`` of them new (default n).

    Tries ``m = 3..16`` substrings under the cost model in the module docstring.
    """
    queries = n if queries is None else queries
    options = [_split(m, threshold, n) for m in range(MIN_PARTS, MAX_PARTS + 1)]
    return min(options, key=lambda parts: plan_cost(parts, n, queries))


# -- one substring's index -------------------------------------------------------------------


def _masks(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit mask with at most ``radius`` bits set, as int64, 0 first."""
    out = [0]
    for k in range(1, min(radius, bits) + 1):
        out.extend(sum(1 << i for i in combo) for combo in itertools.combinations(range(bits), k))
    return np.array(out, dtype=np.int64)


class _Index:
    """Items bucketed by one substring's key, with direct tables of ``2**bits`` slots."""

    def __init__(self, u: np.ndarray, part: Part):
        shifted = u >> np.uint64(part.shift)
        self.keys = (shifted & np.uint64((1 << part.bits) - 1)).astype(np.int64)
        self.masks = _masks(part.bits, part.radius)
        idx = np.int32 if u.size < 2**31 else np.int64
        counts = np.bincount(self.keys, minlength=1 << part.bits)
        self.small = np.minimum(counts, 255).astype(np.uint8)  # 0: empty; exact below 255
        self.order = np.argsort(self.keys, kind="stable").astype(idx)
        self.starts = np.zeros(counts.size + 1, dtype=idx)
        np.cumsum(counts, out=self.starts[1:])
        self.first = np.take(self.order, np.minimum(self.starts[:-1], u.size - 1))

    def candidates(self, queries: np.ndarray, masks: np.ndarray, *, above: bool):
        """Yield (query, candidate) index arrays: the items in the buckets each query probes.

        With ``above``, only probes whose key is larger than the query's own are made.
        """
        qkey = self.keys[queries]
        probe = qkey[:, None] ^ masks[None, :]
        small = np.take(self.small, probe)
        wanted = (small != 0) & (probe > qkey[:, None]) if above else small
        hit = np.flatnonzero(wanted)
        key, count = probe.ravel()[hit], small.ravel()[hit]
        q = queries[hit // masks.size]
        one = count == 1  # most hits in sparse buckets: one table look-up gives the item
        yield q[one], np.take(self.first, key[one])
        yield from self._expand(q[~one], key[~one])

    def _expand(self, q: np.ndarray, key: np.ndarray):
        """Every item of bucket ``key[p]`` against query ``q[p]``, in chunks of ~2**22 items."""
        start = np.take(self.starts, key)
        count = np.take(self.starts, key + 1) - start
        ends = np.cumsum(count, dtype=np.int64)  # a bucket's items end here in the expansion
        lo = 0
        while lo < key.size:
            base = ends[lo - 1] if lo else 0
            hi = max(lo + 1, int(np.searchsorted(ends, base + CANDIDATES_PER_CHUNK, "right")))
            # item t of the chunk is order[start[p] + t - (first t of bucket p)]
            pos = np.repeat(start[lo:hi] - (ends[lo:hi] - count[lo:hi] - base), count[lo:hi])
            pos += np.arange(pos.size, dtype=pos.dtype)
            yield np.repeat(q[lo:hi], count[lo:hi]), np.take(self.order, pos)
            lo = hi


# -- the search ------------------------------------------------------------------------------


def near_pairs(
    hashes,
    threshold: int,
    *,
    new_from: int = 0,
    block: int | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """Every pair of hashes within ``threshold`` bits of each other.

    Args:
        hashes: (N,) int64 or uint64 64-bit perceptual hashes (int64 is read bit for bit).
        threshold: largest Hamming distance that makes a pair, 0..64 (8 suits pHash; 10 is
            imagededup's default). Cost grows steeply above ~12 (see the module docstring).
        new_from: items with index ``>= new_from`` are new; pairs of two old items are not
            returned (0: all pairs).
        block: queries searched at once per substring; None: about 2**21 / probes per query.
        workers: threads searching blocks in parallel; None: the usable cores.

    Returns:
        (P, 3) int64 rows ``(i, j, distance)`` with ``i < j`` and ``j >= new_from``, sorted by
        ``(i, j)``: every such pair, once.

    Raises:
        InvalidInput: hashes that are not (N,) 64-bit integers, or a threshold, ``new_from``,
            ``block`` or ``workers`` out of range.
    """
    u = to_unsigned(hashes)
    _check(u, threshold, new_from, block, workers)
    if u.size - max(new_from, 1) <= 0:
        return _NO_PAIRS.copy()
    parts = plan(u.size, threshold, queries=u.size - new_from)
    with ThreadPoolExecutor(workers or _usable_cores()) as pool:
        found = [
            _search_part(u, parts, k, threshold, new_from=new_from, block=block, pool=pool)
            for k in range(len(parts))
        ]
    pairs = np.concatenate([_NO_PAIRS, *itertools.chain.from_iterable(found)])
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _check(u: np.ndarray, threshold, new_from: int, block, workers) -> None:
    if u.ndim != 1:
        raise InvalidInput(f"hashes must be one-dimensional (N,), got shape {u.shape}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)):
        raise InvalidInput(f"threshold must be a whole number of bits, got {threshold!r}")
    if not 0 <= threshold <= HASH_BITS:
        raise InvalidInput(f"threshold must be 0..{HASH_BITS} bits, got {threshold}")
    if not 0 <= new_from <= u.size:
        raise InvalidInput(f"new_from must be 0..{u.size} (the number of hashes), got {new_from}")
    for name, value in (("block", block), ("workers", workers)):
        if value is not None and value < 1:
            raise InvalidInput(f"{name} must be at least 1, got {value}")


def _search_part(u, parts, k, threshold, *, new_from, block, pool) -> list[np.ndarray]:
    """Verified pairs that substring ``k`` is the first to find, block by block."""
    index = _Index(u, parts[k])
    block = block or max(1, PROBES_PER_BLOCK // index.masks.size)

    def search(lo: int) -> np.ndarray:
        queries = np.arange(lo, min(lo + block, u.size))
        return _search_block(u, index, queries, parts[:k], threshold, everyone=new_from == 0)

    return list(pool.map(search, range(new_from, u.size, block)))


def _search_block(u, index: _Index, queries, earlier, threshold, *, everyone) -> np.ndarray:
    """Verified pairs between ``queries`` and lower-ordered items, found in one substring."""
    if everyone:
        # Every item is a query, so a pair in two buckets is probed from both ends: probe
        # only towards the larger key. A pair in one bucket keeps the smaller index as i.
        chunks = itertools.chain(
            index.candidates(queries, index.masks[1:], above=True),
            (_lower(q, c) for q, c in index.candidates(queries, index.masks[:1], above=False)),
        )
    else:
        chunks = (_lower(q, c) for q, c in index.candidates(queries, index.masks, above=False))
    found = [_verify(u, q, c, earlier, threshold) for q, c in chunks]
    return np.concatenate([_NO_PAIRS, *found])


def _lower(q: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = c < q
    return q[keep], c[keep]


def _verify(u, q, c, earlier: list[Part], threshold: int) -> np.ndarray:
    """Rows (i, j, distance) of the candidates within threshold that no earlier part finds."""
    x = np.take(u, q) ^ np.take(u, c)
    near = np.flatnonzero(popcount(x) <= threshold)
    q, c, x = q[near], c[near], x[near]
    for part in earlier:  # survivors are few (true near pairs): cheap
        sub = x & np.uint64(((1 << part.bits) - 1) << part.shift)
        keep = popcount(sub) > part.radius
        q, c, x = q[keep], c[keep], x[keep]
    i, j = np.minimum(q, c).astype(np.int64), np.maximum(q, c).astype(np.int64)
    return np.stack([i, j, popcount(x).astype(np.int64)], axis=1)


# -- groups ----------------------------------------------------------------------------------


def groups(n: int, pairs) -> np.ndarray:
    """Duplicate groups: connected components of the pair graph (a~b and b~c: one group).

    Args:
        n: number of items.
        pairs: (P, 2) or (P, 3) integer array; the first two columns are item indices in
            ``0..n-1`` (a third, such as ``near_pairs``'s distance, is ignored).

    Returns:
        (n,) int64 group label per item, numbered from 0 in order of each group's first item.
        An item in no pair is a group of its own.

    Raises:
        InvalidInput: ``pairs`` has the wrong shape or an index outside ``0..n-1``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = np.asarray(pairs, dtype=np.int64)
    if pairs.size == 0:
        pairs = pairs.reshape(0, 2)
    if pairs.ndim != 2 or pairs.shape[1] not in (2, 3):
        raise InvalidInput(f"pairs must be (P, 2) or (P, 3), got shape {pairs.shape}")
    ends = pairs[:, :2]
    if ends.size and (ends.min() < 0 or ends.max() >= n):
        raise InvalidInput(f"pairs must index items 0..{n - 1}, got {ends.min()}..{ends.max()}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.ones(len(ends), dtype=np.int8)
    graph = coo_matrix((edges, (ends[:, 0], ends[:, 1])), shape=(n, n)).tocsr()
    return connected_components(graph, directed=False)[1].astype(np.int64)
