"""Dedup benchmark: curator's ``near_pairs`` + ``groups`` against imagededup, on the same hashes.

For each N (10,000, 100,000 and 1,000,000 by default) it generates N seeded 64-bit hashes,
uniform random, in which 2% of the items get 1-3 copies each at 1..threshold bits (random bits
flipped; the copies take random slots), then groups them, each run in a fresh subprocess so
that peak memory (VmHWM, the peak RSS: ``measure.peak_mib``) belongs to that run alone:

  curator           ``near_pairs(hashes, threshold)`` then ``groups(n, pairs)``, timed together
                    (both cores: ``workers=None``); then "add 1%": the last 1% of the items
                    searched as new (``new_from=N - N//100``) plus grouping, as an incremental
                    re-run does; at N <= 20,000 the pairs are checked against brute force.
  curator-crops     what ``curator dedup`` runs since migration 0010: ``crop_hash.candidate_pairs``
                    over each item's hash and its ``len(CUTS)`` inner-crop hashes (seeded,
                    uniform: the search's worst case, every hash distinct), then ``groups``;
                    "add 1%" likewise. Its scores count the chance pairs the extra hashes add.
  imagededup        ``PHash().find_duplicates(encoding_map={name: hex}, max_distance_threshold=
                    threshold)`` with its Linux default ``search_method='brute_force_cython'``
                    and 2 distance workers (timed: the call alone, not turning its dict into
                    groups).
  imagededup-bktree the same with ``search_method='bktree'`` (a RecursionError is reported).
  bktree-build      at the largest N only: imagededup's BK-tree construction alone (its insert
                    is recursive): seconds and tree depth, or the RecursionError.

A peer run is killed (with its worker processes) after ``--peer-timeout`` seconds (600 by
default), and is not tried at larger N once it has timed out or failed.

Scores, the same for every method (a planted pair is an original and one of its copies; a
family pair is any two of an original and its copies within the threshold):

  recall       planted pairs whose two ends land in one group
  pair recall  family pairs the method reported as pairs
  precision    reported pairs that are family pairs. Uniform hashes are not all far apart:
               C(N, 2) * P(distance <= threshold) chance pairs are expected (~139 at 1M and 8
               bits); they are real near pairs, counted as "chance" and against precision.
  wrong        reported pairs further apart than the threshold (an exact method has none)

Usage (imagededup is for the benchmark only: ``.venv/bin/pip install imagededup``):
    .venv/bin/python benchmarks/dedup.py                    # N = 10k, 100k, 1M; threshold 8
    .venv/bin/python benchmarks/dedup.py --threshold 10 --peer-timeout 300
    .venv/bin/python benchmarks/dedup.py --quick            # N = 10k, peers limited to 120 s
    .venv/bin/python benchmarks/dedup.py --n 200000 --peers none --json benchmarks/out/dedup.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import children_peak_mib, peak_mib, print_result, run_child, table  # noqa: E402

SIZES = [10_000, 100_000, 1_000_000]
PEERS = {"imagededup": "brute_force_cython", "imagededup-bktree": "bktree"}
PLANT_FRACTION = 0.02  # items that get copies
MAX_COPIES = 3
SEED = 0
BRUTE_FORCE_UP_TO = 20_000


# -- the hashes ------------------------------------------------------------------------------


def make_hashes(n: int, threshold: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """N uniform 64-bit hashes with planted near copies; the hashes and (P, 2) planted pairs.

    ``PLANT_FRACTION`` of the items are originals with 1..MAX_COPIES copies each, at a uniform
    1..threshold bits (0 when the threshold is 0), written over other random items.
    """
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 2**64, n, dtype=np.uint64)
    slots = rng.permutation(n)
    originals = slots[: int(n * PLANT_FRACTION)]
    copies_of = np.repeat(originals, rng.integers(1, MAX_COPIES + 1, originals.size))
    copies_of = copies_of[: n - originals.size]
    copy_slots = slots[originals.size : originals.size + copies_of.size]
    bits = rng.integers(1, threshold + 1, copies_of.size) if threshold else np.zeros(copies_of.size)
    chosen = rng.random((copies_of.size, 64)).argsort(axis=1) < bits[:, None]  # `bits` of 64
    weights = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))
    u[copy_slots] = u[copies_of] ^ (chosen * weights).sum(axis=1, dtype=np.uint64)
    return u, np.stack([copies_of, copy_slots], axis=1).astype(np.int64)


def expected_chance_pairs(n: int, threshold: int) -> float:
    """Pairs of N uniform 64-bit hashes expected within ``threshold`` bits by chance."""
    p = sum(math.comb(64, k) for k in range(threshold + 1)) / 2.0**64
    return n * (n - 1) / 2 * p


# -- scoring ---------------------------------------------------------------------------------


def family_pairs(u: np.ndarray, planted: np.ndarray, threshold: int) -> np.ndarray:
    """Keys ``i * n + j`` (i < j) of the pairs within threshold among an original and its copies."""
    from curator.dedup_index import hamming

    members: dict[int, list[int]] = {}
    for original, copy in planted.tolist():
        members.setdefault(original, [original]).append(copy)
    ends = np.array(
        [sorted((f[a], f[b])) for f in members.values() for a in range(len(f)) for b in range(a)],
        dtype=np.int64,
    ).reshape(-1, 2)
    ends = ends[hamming(u[ends[:, 0]], u[ends[:, 1]]) <= threshold]
    return np.unique(ends[:, 0] * u.size + ends[:, 1])


def score(u, planted, pairs: np.ndarray, labels: np.ndarray, threshold: int) -> dict:
    """Recall, pair recall, precision and counts of found, chance and wrong pairs."""
    from curator.dedup_index import hamming

    n = u.size
    found = np.unique(pairs[:, 0] * n + pairs[:, 1]) if len(pairs) else np.zeros(0, np.int64)
    truth = family_pairs(u, planted, threshold)
    distance = hamming(u[found // n], u[found % n]) if found.size else found
    wrong = int((distance > threshold).sum())
    in_family = int(np.isin(found, truth).sum())
    return {
        "recall": float(np.mean(labels[planted[:, 0]] == labels[planted[:, 1]])),
        "pair_recall": in_family / truth.size if truth.size else 1.0,
        "precision": in_family / found.size if found.size else 1.0,
        "found": int(found.size),
        "planted": int(len(planted)),
        "family_pairs": int(truth.size),
        "chance": int(found.size - in_family - wrong),
        "chance_expected": float(f"{expected_chance_pairs(n, threshold):.3g}"),
        "wrong": wrong,
    }


def brute_force_pairs(u: np.ndarray, threshold: int, rows: int = 500) -> np.ndarray:
    """All pairs within threshold, block by block (N <= ~20,000): the exactness check."""
    from curator.dedup_index import popcount

    out = []
    for lo in range(0, u.size, rows):
        d = popcount(u[lo : lo + rows, None] ^ u[None, :])
        i, j = np.nonzero(d <= threshold)
        keep = j > i + lo
        out.append(np.stack([i[keep] + lo, j[keep]], axis=1))
    return np.concatenate(out).astype(np.int64)


# -- the runs (each in its own process) ------------------------------------------------------


def run_curator(n: int, threshold: int) -> dict:
    from curator.dedup_index import groups, near_pairs, plan

    import scipy.sparse.csgraph  # noqa: F401 - imported before the clock, as imagededup is

    u, planted = make_hashes(n, threshold)
    before = peak_mib()
    start = time.perf_counter()
    pairs = near_pairs(u, threshold)
    pairs_seconds = time.perf_counter() - start
    labels = groups(n, pairs)
    seconds, peak = time.perf_counter() - start, peak_mib()
    new_from = n - n // 100
    start = time.perf_counter()
    new = near_pairs(u, threshold, new_from=new_from)
    groups(n, np.concatenate([pairs[pairs[:, 1] < new_from], new]))
    add_seconds = time.perf_counter() - start
    exact = None
    if n <= BRUTE_FORCE_UP_TO:
        exact = bool(np.array_equal(pairs[:, :2], brute_force_pairs(u, threshold)))
    return {
        "status": "ok", "seconds": round(seconds, 3), "pairs_seconds": round(pairs_seconds, 3),
        "add_1pct_seconds": round(add_seconds, 3),
        "incremental_matches": bool(np.array_equal(new, pairs[pairs[:, 1] >= new_from])),
        "exact": exact, "peak_mib": peak, "before_mib": before,
        "plan": [[p.bits, p.radius] for p in plan(n, threshold)],
        **score(u, planted, pairs, labels, threshold),
    }


def run_imagededup(n: int, threshold: int, search_method: str) -> dict:
    from imagededup.methods import PHash

    from curator.dedup_index import groups

    u, planted = make_hashes(n, threshold)
    encoding_map = {str(i): f"{v:016x}" for i, v in enumerate(u.tolist())}
    before = peak_mib()
    start = time.perf_counter()
    try:
        found = PHash(verbose=False).find_duplicates(
            encoding_map=encoding_map, max_distance_threshold=threshold,
            search_method=search_method, num_dist_workers=2,
        )
    except RecursionError as e:
        return {"status": f"RecursionError: {e}", "seconds": round(time.perf_counter() - start, 1)}
    seconds = time.perf_counter() - start
    pairs = sorted({tuple(sorted((int(k), int(v)))) for k, vs in found.items() for v in vs})
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return {
        "status": "ok", "seconds": round(seconds, 3), "before_mib": before,
        "peak_mib": max(peak_mib(), children_peak_mib()),  # itself or its largest worker
        **score(u, planted, pairs, groups(n, pairs), threshold),
    }


def run_bktree_build(n: int, threshold: int) -> dict:
    """Only imagededup's BK-tree construction (recursive insertion): time, depth, or the error."""
    from imagededup.handlers.search.bktree import BKTree
    from imagededup.methods import PHash

    u, _ = make_hashes(n, threshold)
    encoding_map = {str(i): f"{v:016x}" for i, v in enumerate(u.tolist())}
    start = time.perf_counter()
    try:
        tree = BKTree(encoding_map, PHash.hamming_distance)
    except RecursionError as e:
        return {"status": f"RecursionError: {e}", "seconds": round(time.perf_counter() - start, 1)}
    seconds, depth, stack = time.perf_counter() - start, 0, [(tree.ROOT, 1)]
    while stack:
        name, level = stack.pop()
        depth = max(depth, level)
        stack.extend((c, level + 1) for c in tree.dict_all[name].children)
    return {"status": f"ok: built, depth {depth}", "seconds": round(seconds, 3),
            "peak_mib": peak_mib()}


def run_curator_crops(n: int, threshold: int) -> dict:
    from curator import crop_hash
    from curator.dedup_index import groups

    import scipy.sparse.csgraph  # noqa: F401

    u, planted = make_hashes(n, threshold)
    inner = np.random.default_rng(SEED + 1).integers(0, 2**63, size=(n, len(crop_hash.CUTS)), dtype=np.int64)
    signed = u.view(np.int64) if u.dtype == np.uint64 else u
    before = peak_mib()
    start = time.perf_counter()
    pairs = crop_hash.candidate_pairs(signed, inner, threshold)
    pairs_seconds = time.perf_counter() - start
    labels = groups(n, pairs)
    seconds, peak = time.perf_counter() - start, peak_mib()
    new_from = n - n // 100
    start = time.perf_counter()
    new = crop_hash.candidate_pairs(signed, inner, threshold, new_from=new_from)
    groups(n, np.concatenate([pairs[pairs[:, 1] < new_from], new]))
    add_seconds = time.perf_counter() - start
    return {
        "status": "ok", "seconds": round(seconds, 3), "pairs_seconds": round(pairs_seconds, 3),
        "add_1pct_seconds": round(add_seconds, 3),
        "incremental_matches": bool(np.array_equal(new, pairs[pairs[:, 1] >= new_from])),
        "exact": None, "peak_mib": peak, "before_mib": before,
        **score(u, planted, pairs, labels, threshold),
    }


def child(method: str, n: int, threshold: int) -> None:
    if method == "curator":
        result = run_curator(n, threshold)
    elif method == "curator-crops":
        result = run_curator_crops(n, threshold)
    elif method == "bktree-build":
        result = run_bktree_build(n, threshold)
    else:
        result = run_imagededup(n, threshold, PEERS[method])
    print_result(result)


def spawn(method: str, n: int, threshold: int, timeout: float | None) -> dict:
    """Run one method at one N in a fresh process (own session: a time-out kills its pool too)."""
    return run_child([sys.executable, __file__, "--child", method, "--n", str(n), "--threshold", str(threshold)],
                     timeout)


# -- the report ------------------------------------------------------------------------------

COLUMNS = [  # (heading, key, format)
    ("N", "n", "{:,}"), ("method", "method", "{}"), ("seconds", "seconds", "{:.2f}"),
    ("add 1% s", "add_1pct_seconds", "{:.2f}"), ("peak MiB", "peak_mib", "{:.0f}"),
    ("base MiB", "before_mib", "{:.0f}"),
    ("recall", "recall", "{:.4f}"), ("pair rec.", "pair_recall", "{:.4f}"),
    ("precision", "precision", "{:.4f}"), ("found", "found", "{:,}"),
    ("chance (exp.)", "chance_text", "{}"), ("wrong", "wrong", "{}"), ("status", "status", "{}"),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=int, default=8, help="bits (default 8)")
    parser.add_argument("--n", type=int, action="append", help="N to run (repeatable)")
    parser.add_argument("--quick", action="store_true", help="N = 10,000 only, peers 120 s")
    parser.add_argument("--peers", choices=["all", "imagededup", "none"], default="all")
    parser.add_argument("--peer-timeout", type=float, help="seconds per peer run (default 600)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.n[0], args.threshold)
    sizes = args.n or ([10_000] if args.quick else SIZES)
    timeout = args.peer_timeout or (120 if args.quick else 600)
    peers = {"all": list(PEERS), "imagededup": ["imagededup"], "none": []}[args.peers]
    rows = []
    for method in ["curator", "curator-crops", *peers]:
        stopped = None
        for n in sizes:
            if stopped:
                result = {"status": f"not run: {stopped}"}
            else:
                result = spawn(method, n, args.threshold, None if method.startswith("curator") else timeout)
                if not result["status"].startswith("ok"):
                    stopped = f"{result['status'].split(':')[0]} at N={n:,}"
            rows.append({"n": n, "method": method, "threshold": args.threshold, **result})
            print(json.dumps(rows[-1]), flush=True)
    if "imagededup-bktree" in peers:  # does the recursive insertion itself fail at the largest N?
        result = spawn("bktree-build", sizes[-1], args.threshold, timeout)
        rows.append({"n": sizes[-1], "method": "bktree-build", "threshold": args.threshold,
                     **result})
    print(f"\nthreshold {args.threshold} bits, {PLANT_FRACTION:.0%} of items with 1-{MAX_COPIES} "
          f"planted copies, seed {SEED}, numpy {np.__version__}, {os.cpu_count()} cores\n")
    for row in rows:  # the "chance (exp.)" cell, kept in the JSON too
        if "chance" in row:
            row["chance_text"] = f"{row['chance']} ({row['chance_expected']:g})"
    print(table(rows, COLUMNS))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
