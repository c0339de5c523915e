"""pHash + colour duplicate check on real images: which planted near duplicates it groups, which
look-alikes it wrongly groups, and where the colour threshold should sit.

Images (``benchmarks/real_images.py``, written under ``--out``): emoji ``views``, crops of colour
``photos`` and ``grey`` photos, ``faces`` and handwritten ``digits``; plus ``sample``: curator's
own ``sample_data/`` (plain emoji drawings in six skin tones; planted pairs from its
expected.json), on which the threshold was first set. Each image is hashed by
``curator.image_probe.probe`` (what ``curator import`` stores: pHash and colour signature) and each
pair is judged as ``curator dedup`` judges it: pHash Hamming distance <= ``--threshold`` and
``curator.dedup.color_distance`` <= ``--color-threshold``.

Printed:

1. Planted pairs, per kind and transform (re-encode, 80% resize, 3-5% crop, brightness,
   saturation, hue; ``real_images.plant_duplicates``): how many, the share within the pHash
   threshold, the share grouped (pHash and colour: the recall), and the colour distances of
   the pHash-near ones (median, 95th percentile, max).
2. Look-alikes that must stay apart (``real_images.negative_pairs``: skin tones of one emoji in
   one view, crops of one photo, two digits of one class; for ``sample``, every unplanted pair
   within the pHash threshold: skin tones and the other vendor's drawing): how many are within
   the pHash threshold and how many pHash + colour groups.
3. Per kind, every pair of its images (originals, copies and look-alikes): the pairs grouped and
   the precision (grouped pairs that are an original and its copy, or two copies of one).
4. ``--sweep``: per colour threshold, the recall of re-encodes and resizes over every kind, of
   colour shifts, and the skin-tone pairs grouped, for curator's colour distance and for the
   one it replaced (the mean of the three channels instead of the worst).

Usage:
    .venv/bin/python benchmarks/phash_calibration.py                    # ~1 min on 2 cores
    .venv/bin/python benchmarks/phash_calibration.py --per-kind 60 --sweep 0.09 0.12 0.15 0.18
    .venv/bin/python benchmarks/phash_calibration.py --color-threshold 0.09 --json benchmarks/out/phash.json
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import itertools
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import real_images  # noqa: E402
from curator import dedup, image_probe  # noqa: E402
from curator.defaults import DEFAULT_COLOR_THRESHOLD, DEFAULT_THRESHOLD  # noqa: E402

SAMPLE = ROOT / "sample_data"
SHOULD_CATCH = ("reencode", "resize")  # what pHash + colour is for; crops and colour shifts: see README
COLOUR_SHIFTS = ("brightness", "saturation", "hue")


def hashes(paths) -> dict[Path, tuple[int, np.ndarray]]:
    """pHash (unsigned) and (24,) colour shares of each file, as ``curator import`` computes them."""
    out = {}
    for p in sorted(set(paths)):
        meta = image_probe.probe(str(p))
        if meta["reason"]:
            raise SystemExit(f"{p}: {meta['reason']}")
        out[p] = (meta["phash"] & (2**64 - 1), np.frombuffer(meta["color_sig"], "<u2") / 65535.0)
    return out


def mean_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The colour distance curator used before 2026-11-30: the mean of the three channels."""
    return np.abs(a - b).sum(axis=1) / 6


def judge(h, pairs, distance=dedup.color_distance) -> tuple[np.ndarray, np.ndarray]:
    """pHash bits and colour distance of each (a, b, ...) pair."""
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0)
    a = np.array([h[p[0]][0] for p in pairs], dtype=np.uint64)
    b = np.array([h[p[1]][0] for p in pairs], dtype=np.uint64)
    ca, cb = np.stack([h[p[0]][1] for p in pairs]), np.stack([h[p[1]][1] for p in pairs])
    return np.bitwise_count(a ^ b).astype(np.int64), distance(ca, cb)


def kind_data(kind: str, out: Path, seed: int, per_kind: int) -> dict:
    """Planted pairs, look-alike pairs, families (image -> its original) and hashes of a kind."""
    if kind == "sample":
        return sample_data()
    paths, _ = real_images.labelled_set(kind, out, seed)
    planted = real_images.plant_duplicates(paths, out / "planted" / kind, seed, per_kind=per_kind)
    negatives = real_images.negative_pairs(kind, out, seed)
    files = set(paths) | {c for _, c, _ in planted} | {x for a, b, _ in negatives for x in (a, b)}
    family = {c: o for o, c, _ in planted}
    return {"planted": planted, "negatives": negatives, "family": family, "hashes": hashes(files)}


def sample_data() -> dict:
    """sample_data/'s library and pool (one path per distinct file), its planted pairs, and as
    look-alikes every other pair within 8 bits (skin tones, the other vendor's drawing)."""
    expected = json.loads((SAMPLE / "expected.json").read_text())
    planted = [(SAMPLE / a, SAMPLE / b, kind) for a, b, kind in expected["near_duplicate_pairs"]]
    files = sorted(p for d in ("library", "pool") for p in (SAMPLE / d).rglob("*.*") if p.suffix != ".md")
    first = {}  # exact duplicates (the same bytes) are one image, as an import makes them
    for p in files:
        first.setdefault(hashlib.sha256(p.read_bytes()).digest(), p)
    one = {p: first[hashlib.sha256(p.read_bytes()).digest()] for p in files}
    h = hashes(first.values())
    planted = [(one[a], one[b], kind) for a, b, kind in planted]
    keep = {frozenset(p[:2]) for p in planted}
    near = [(a, b, "skin-tone-or-vendor") for a, b in itertools.combinations(sorted(h), 2)
            if frozenset((a, b)) not in keep and bin(h[a][0] ^ h[b][0]).count("1") <= DEFAULT_THRESHOLD]
    return {"planted": planted, "negatives": near, "family": {b: a for a, b, _ in planted}, "hashes": h}


def by_label(h, pairs) -> list[tuple[str, list, np.ndarray, np.ndarray]]:
    """(label, pairs, pHash bits, colour distances) of the (a, b, label) pairs, per label."""
    groups = collections.defaultdict(list)
    for p in pairs:
        groups[p[2]].append(p)
    return [(label, ps, *judge(h, ps)) for label, ps in groups.items()]


def planted_rows(kind: str, d: dict, bits: int, color: float) -> list[dict]:
    rows = []
    for t, pairs, ph, cd in by_label(d["hashes"], d["planted"]):
        near = cd[ph <= bits]
        q = np.percentile(near, [50, 95, 100]).round(3).tolist() if len(near) else [None] * 3
        rows.append({"kind": kind, "transform": t, "pairs": len(pairs), "phash_near": round(float(np.mean(ph <= bits)), 3),
                     "recall": round(float(np.mean((ph <= bits) & (cd <= color))), 3),
                     "color_p50": q[0], "color_p95": q[1], "color_max": q[2]})
    return rows


def negative_rows(kind: str, d: dict, bits: int, color: float) -> list[dict]:
    return [{"kind": kind, "relation": rel, "pairs": len(pairs), "phash_near": int(np.sum(ph <= bits)),
             "grouped": int(np.sum((ph <= bits) & (cd <= color)))}
            for rel, pairs, ph, cd in by_label(d["hashes"], d["negatives"])]


def precision_row(kind: str, d: dict, bits: int, color: float) -> dict:
    """Every pair of the kind's images within ``bits``, judged by colour; true when both are one family."""
    paths = sorted(d["hashes"])
    ph = np.array([d["hashes"][p][0] for p in paths], dtype=np.uint64)
    near = [(i, j) for i in range(len(paths)) for j in
            (i + 1 + np.flatnonzero(np.bitwise_count(ph[i + 1:] ^ ph[i]) <= bits)).tolist()]
    pairs = [(paths[i], paths[j]) for i, j in near]
    _, cd = judge(d["hashes"], pairs)
    grouped = [p for p, c in zip(pairs, cd) if c <= color]
    family = d["family"]  # copy -> its original
    true = sum(family.get(a, a) == family.get(b, b) for a, b in grouped)
    return {"kind": kind, "images": len(paths), "phash_near_pairs": len(pairs), "grouped_pairs": len(grouped),
            "true": true, "precision": round(true / len(grouped), 3) if grouped else None}


def sweep(data: dict, bits: int, thresholds: list[float]) -> list[dict]:
    """Per threshold and distance: recall of re-encodes + resizes, of colour shifts, and skin tones grouped."""
    rows = []
    for name, distance in (("worst channel (now)", dedup.color_distance), ("mean of channels (before)", mean_distance)):
        judged = collections.defaultdict(list)  # group -> colour distance, inf beyond the pHash threshold
        for kind, d in data.items():
            for group, pairs in _sweep_groups(kind, d):
                ph, cd = judge(d["hashes"], pairs, distance)
                judged[group].append(np.where(ph <= bits, cd, np.inf))
        judged = {g: np.concatenate(v) for g, v in judged.items()}
        near = {k: int(np.isfinite(judged[f"skin-{k}"]).sum()) for k in ("sample", "views")}
        for t in thresholds:
            rows.append({"distance": name, "threshold": t,
                         "reencode_resize_recall": round(float(np.mean(judged["catch"] <= t)), 4),
                         "colour_shift_recall": round(float(np.mean(judged["shift"] <= t)), 3),
                         "sample_skin_grouped": int(np.sum(judged["skin-sample"] <= t)),
                         "views_skin_grouped": int(np.sum(judged["skin-views"] <= t)),
                         "skin_phash_near": (near["sample"], near["views"])})
    return rows


def _sweep_groups(kind: str, d: dict):
    catch = [p for p in d["planted"] if p[2] in SHOULD_CATCH or kind == "sample" and p[2] != "crop"]
    yield "catch", catch  # sample_data's jpeg and resize pairs count with the re-encodes and resizes
    yield "shift", [p for p in d["planted"] if p[2] in COLOUR_SHIFTS]
    yield f"skin-{kind}", [p for p in d["negatives"] if "skin" in p[2]]


def table(rows: list[dict]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join(" --- " for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join("-" if r[c] is None else str(r[c]) for c in cols) + " |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "out" / "real")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-kind", type=int, default=40, help="planted copies per transform and kind")
    ap.add_argument("--kinds", nargs="+", default=[*real_images.KINDS, "sample"])
    ap.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD)
    ap.add_argument("--color-threshold", type=float, default=DEFAULT_COLOR_THRESHOLD)
    ap.add_argument("--sweep", type=float, nargs="*", default=[])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    data = {k: kind_data(k, args.out, args.seed, args.per_kind) for k in args.kinds}
    bits, color = args.threshold, args.color_threshold
    result = {
        "threshold": bits, "color_threshold": color,
        "planted": [r for k, d in data.items() for r in planted_rows(k, d, bits, color)],
        "negatives": [r for k, d in data.items() for r in negative_rows(k, d, bits, color)],
        "precision": [precision_row(k, d, bits, color) for k, d in data.items()],
        "sweep": sweep(data, bits, args.sweep) if args.sweep and {"sample", "views"} <= data.keys() else [],
    }
    print(f"pHash <= {bits} bits and colour <= {color}\n")
    for part in ("planted", "negatives", "precision", "sweep"):
        table(result[part])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
