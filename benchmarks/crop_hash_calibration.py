"""Crop-tolerant pHash candidates and the 256-bit detail check (``curator.crop_hash``) on real
images: what `curator dedup` groups, per kind and transform, and where ``--detail-threshold``
should sit.

Images (``benchmarks/real_images.py``, written under ``--out``): emoji ``views``, crops of colour
``photos`` and ``grey`` photos, ``faces`` and handwritten ``digits``, each with 20 planted copies
per transform (re-encode, 80% resize, 3-5% crop a side, brightness, saturation, hue) and the
look-alikes that must stay apart (skin tones of one emoji in one view, two views of one emoji,
crops of one photo, two digits of one class); plus ``sample``: curator's ``sample_data/`` library
and pool (plain emoji drawings, skin tones), its planted pairs and a 3-5% crop of 60 of its
library images. Every image is hashed by ``curator.image_probe.hash_bytes`` (what an import stores)
and judged as ``curator.dedup`` judges it: candidates within ``--threshold`` bits at some
alignment (``crop_hash.candidate_pairs``), then the colour check, then the detail check; pairs
are joined into groups (connected components), as `dedup` does.

Printed per kind and rule: recall / precision per transform (recall: original and copy in one
group; precision: of the pairs of images sharing a group that touch a family of that transform,
the share that are the original and its copy) and the look-alike pairs grouped. Rules: the old
one (whole-image pHash and colour), candidates with colour, and candidates with the detail check
at each ``--detail`` value, with and without the colour check.

Usage:
    .venv/bin/python benchmarks/crop_hash_calibration.py                 # ~3 min on 2 cores
    .venv/bin/python benchmarks/crop_hash_calibration.py --detail 30 34 38 --json benchmarks/out/crop_hash.json
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import random
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import real_images  # noqa: E402

from curator import crop_hash, dedup, dedup_index, image_probe  # noqa: E402
from curator.defaults import DEFAULT_COLOR_THRESHOLD, DEFAULT_DETAIL_THRESHOLD, DEFAULT_THRESHOLD  # noqa: E402


def kind_data(kind: str, out: Path, seed: int, per_kind: int) -> dict:
    paths, _ = real_images.labelled_set(kind, out / kind, seed)
    planted = real_images.plant_duplicates(paths, out / kind / "planted", seed, per_kind=per_kind)
    negatives = real_images.negative_pairs(kind, out / kind, seed)
    return {"paths": paths, "planted": planted, "negatives": negatives}


def sample_data(out: Path, seed: int) -> dict:
    from PIL import Image

    sample = ROOT / "sample_data"
    paths = sorted((sample / "library").rglob("*.png")) + sorted((sample / "pool").rglob("*.png"))
    expected = json.loads((sample / "expected.json").read_text())
    planted = [(sample / a, sample / b, t) for a, b, t in expected["near_duplicate_pairs"]]
    rng = random.Random(f"crop-hash-sample-{seed}")
    folder = out / "sample-crops"
    folder.mkdir(parents=True, exist_ok=True)
    taken = {p for a, b, _ in planted for p in (a, b)}
    for original in rng.sample([p for p in sorted((sample / "library").rglob("*.png")) if p not in taken], 60):
        img = Image.open(original)
        w, h = img.size
        cut = [rng.uniform(0.03, 0.05) for _ in range(4)]
        copy = folder / f"{original.stem}-crop.png"
        img.crop((round(w * cut[0]), round(h * cut[1]), w - round(w * cut[2]), h - round(h * cut[3]))).save(copy)
        planted.append((original, copy, "crop"))
    return {"paths": paths, "planted": planted, "negatives": []}


def signatures(paths) -> dict:
    """Path -> what an import stores of it (pHash, colour signature, crop hashes)."""
    return {p: image_probe.hash_bytes(Path(p).read_bytes()) for p in paths}


def grouped(d: dict, sig: dict, *, crops: bool, color: float | None, detail: int | None, bits: int) -> list[int]:
    """Each image's group (index of a representative) under one rule."""
    order = sorted(sig)
    phash = np.array([sig[p]["phash"] for p in order], dtype=np.int64)
    if crops:
        inner = crop_hash.inner_hashes([sig[p]["crop_phashes"] for p in order], phash)
        pairs = crop_hash.candidate_pairs(phash, inner, bits)
    else:
        pairs = dedup_index.near_pairs(phash, bits)
    a, b = pairs[:, 0], pairs[:, 1]
    keep = np.ones(len(a), dtype=bool)
    if color is not None and len(a):
        col = np.stack([np.frombuffer(sig[p]["color_sig"], dtype="<u2") / 65535.0 for p in order])
        keep &= dedup.color_distance(col[a], col[b]) <= color
    if detail is not None and len(a):
        fine = [sig[p]["fine_hashes"] for p in order]
        keep &= crop_hash.detail_distances([fine[i] for i in a], [fine[j] for j in b]) <= detail
    return dedup_index.groups(len(order), pairs[keep]).tolist()


def score(d: dict, sig: dict, gid: list[int]) -> dict:
    order = sorted(sig)
    index = {p: k for k, p in enumerate(order)}
    family, transform = {}, {}
    for original, copy, t in d["planted"]:
        o, c = index[original], index[copy]
        family[o] = family[c] = o
        transform[o] = t
    members = collections.defaultdict(list)
    for k, g in enumerate(gid):
        members[g].append(k)
    out = {}
    for t in sorted(set(transform.values()), key=lambda t: (t not in real_images.TRANSFORMS, t)):
        fams = [f for f, tt in transform.items() if tt == t]
        recall = np.mean([gid[f] == gid[c] for f in fams for c in family if family[c] == f and c != f])
        touching = true = 0
        for m in members.values():
            mine = [k for k in m if transform.get(family.get(k)) == t]
            touching += math.comb(len(m), 2) - math.comb(len(m) - len(mine), 2)
            true += sum(math.comb(n, 2) for n in collections.Counter(family[k] for k in mine).values())
        out[t] = {"n": len(fams), "recall": round(float(recall), 3), "precision": round(true / touching, 3) if touching else 1.0}
    look = collections.Counter(r for a, b, r in d["negatives"] if gid[index[a]] == gid[index[b]])
    total = sum(math.comb(len(m), 2) for m in members.values())
    true = sum(math.comb(n, 2) for m in members.values() for n in collections.Counter(family[k] for k in m if k in family).values())
    return {"transforms": out, "look_alikes": dict(look), "false_pairs": total - true,
            "largest": max(map(len, members.values()), default=0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", default=[*real_images.KINDS, "sample"], choices=[*real_images.KINDS, "sample"])
    ap.add_argument("--out", type=Path, default=HERE / "out" / "crop-hash")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-kind", type=int, default=20, help="planted copies per transform")
    ap.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD, help="64-bit pHash bits")
    ap.add_argument("--color-threshold", type=float, default=DEFAULT_COLOR_THRESHOLD)
    ap.add_argument("--detail", type=int, nargs="+", default=[30, 32, 34, 36, 40])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rules = {"old: pHash + colour": dict(crops=False, color=args.color_threshold, detail=None),
             "crops + colour": dict(crops=True, color=args.color_threshold, detail=None)}
    for t in args.detail:
        rules[f"crops + detail {t}"] = dict(crops=True, color=None, detail=t)
        mark = " (dedup's default)" if t == DEFAULT_DETAIL_THRESHOLD else ""
        rules[f"crops + detail {t} + colour{mark}"] = dict(crops=True, color=args.color_threshold, detail=t)
    results = {}
    for kind in args.kinds:
        d = sample_data(args.out, args.seed) if kind == "sample" else kind_data(kind, args.out, args.seed, args.per_kind)
        files = {*d["paths"], *(p for a, b, _ in d["planted"] for p in (a, b)), *(p for a, b, _ in d["negatives"] for p in (a, b))}
        sig = signatures(sorted(files))
        print(f"\n## {kind}: {len(sig)} images, {len(d['planted'])} planted copies, {len(d['negatives'])} look-alike pairs\n")
        results[kind] = {}
        for name, rule in rules.items():
            r = results[kind][name] = score(d, sig, grouped(d, sig, bits=args.threshold, **rule))
            cells = "  ".join(f"{t} {v['recall']:.2f}/{v['precision']:.2f}" for t, v in r["transforms"].items())
            print(f"{name:30s} {cells}  look-alikes {r['look_alikes'] or 0}  false pairs {r['false_pairs']}  largest {r['largest']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
